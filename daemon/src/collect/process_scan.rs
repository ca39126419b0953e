//! Processes through sysinfo: the source on platforms without /proc (macOS), where the scan
//! every few seconds is all there is until Quint has an Endpoint Security client. Compiled
//! everywhere so that it is built and tested here too.

use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System, UpdateKind};

use super::process::ProcessInfo;

#[derive(Default)]
pub struct SysinfoSnapshot {
    system: System,
}

fn what_to_read() -> ProcessRefreshKind {
    ProcessRefreshKind::nothing()
        .with_exe(UpdateKind::Always)
        .with_cmd(UpdateKind::Always)
        .with_cwd(UpdateKind::Always)
        .with_user(UpdateKind::Always)
}

impl SysinfoSnapshot {
    /// Every process now.
    pub fn all(&mut self) -> Vec<ProcessInfo> {
        self.system
            .refresh_processes_specifics(ProcessesToUpdate::All, true, what_to_read());
        self.system.processes().values().map(process_info).collect()
    }

    /// One process; an exited one leaves only its pid.
    pub fn read(&mut self, pid: u32) -> ProcessInfo {
        let pid = Pid::from_u32(pid);
        self.system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[pid]),
            true,
            what_to_read(),
        );
        self.system
            .process(pid)
            .map(process_info)
            .unwrap_or(ProcessInfo {
                pid: pid.as_u32(),
                ..ProcessInfo::default()
            })
    }
}

fn process_info(process: &sysinfo::Process) -> ProcessInfo {
    let start = process.start_time();
    ProcessInfo {
        pid: process.pid().as_u32(),
        ppid: process.parent().map(|p| p.as_u32()),
        exe: process.exe().map(|p| p.display().to_string()),
        argv: process
            .cmd()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        cwd: process.cwd().map(|p| p.display().to_string()),
        uid: process.user_id().map(|uid| **uid),
        // Seconds since the epoch: coarse, but with the pid enough to tell processes apart.
        start_ticks: Some(start),
        started_ms: Some(start * 1000),
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn sysinfo_reads_a_process_as_proc_does() {
        let me = std::process::id();
        let through_sysinfo = SysinfoSnapshot::default().read(me);
        let through_proc = super::super::process::read_process(me);
        assert_eq!(through_sysinfo.exe, through_proc.exe);
        assert_eq!(through_sysinfo.argv, through_proc.argv);
        assert_eq!(through_sysinfo.cwd, through_proc.cwd);
        assert_eq!(through_sysinfo.uid, through_proc.uid);
        assert_eq!(through_sysinfo.ppid, through_proc.ppid);
        let (a, b) = (
            through_sysinfo.started_ms.unwrap(),
            through_proc.started_ms.unwrap(),
        );
        assert!(a.abs_diff(b) < 2_000, "{a} vs {b}");
        assert!(SysinfoSnapshot::default().all().iter().any(|p| p.pid == me));
    }
}
