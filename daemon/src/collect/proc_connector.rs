//! The Linux process events connector (`NETLINK_CONNECTOR`, `CN_IDX_PROC`): the kernel tells us
//! of every fork, exec and exit as it happens, so a process that lives a millisecond is still
//! seen. Needs CAP_NET_ADMIN. The wire structs are small and stable (linux/cn_proc.h,
//! linux/connector.h), so they are read by hand with libc's constants rather than a crate.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

const CN_IDX_PROC: u32 = 1;
const CN_VAL_PROC: u32 = 1;
const PROC_CN_MCAST_LISTEN: u32 = 1;

const PROC_EVENT_FORK: u32 = 0x0000_0001;
const PROC_EVENT_EXEC: u32 = 0x0000_0002;
const PROC_EVENT_EXIT: u32 = 0x8000_0000;

const NLMSG_HEADER: usize = 16;
/// struct cn_msg without its payload: cb_id (idx, val), seq, ack, len, flags.
const CN_MSG_HEADER: usize = 20;
/// struct proc_event up to its union: what, cpu, timestamp_ns.
const PROC_EVENT_HEADER: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcEvent {
    /// A new process (thread-group leader) `child` forked from `parent`.
    Fork {
        parent: u32,
        child: u32,
    },
    Exec {
        pid: u32,
    },
    Exit {
        pid: u32,
        exit_code: u32,
    },
}

pub struct ProcConnector {
    socket: OwnedFd,
    buffer: Vec<u8>,
    progress: Arc<Progress>,
}

/// Whether every process event the kernel has sent so far has been taken into the session
/// table: the kernel queues a fork's event before the child can run, so once this holds, a
/// process the table does not know is in no agent session. Readable from other threads.
pub struct Progress {
    /// A duplicate of the socket, for peeking.
    socket: OwnedFd,
    /// Set before the collector takes anything off the socket, cleared once it has processed
    /// everything and found the socket empty.
    busy: AtomicBool,
}

impl Progress {
    pub fn caught_up(&self) -> bool {
        // The socket first: an event already taken off it is covered by `busy`, which was set
        // before it was taken and is cleared only after it was processed.
        let mut byte = 0u8;
        // SAFETY: a zero-or-one byte peek into a byte we own; nothing is dequeued.
        let peeked = unsafe {
            libc::recv(
                self.socket.as_raw_fd(),
                &mut byte as *mut u8 as *mut libc::c_void,
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        let empty = peeked < 0 && io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock;
        empty && !self.busy.load(Ordering::SeqCst)
    }
}

impl ProcConnector {
    /// Subscribes to process events; fails without CAP_NET_ADMIN or inside a network namespace
    /// that is not the initial one.
    pub fn open() -> io::Result<ProcConnector> {
        // SAFETY: plain socket(2); the fd is owned right away.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                libc::NETLINK_CONNECTOR,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh, valid descriptor that nothing else owns.
        let socket = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: a zeroed sockaddr_nl is valid; the fields set are plain integers.
        let mut address: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        address.nl_family = libc::AF_NETLINK as u16;
        address.nl_pid = 0; // the kernel assigns a port id
        address.nl_groups = CN_IDX_PROC;
        // SAFETY: address is a valid sockaddr_nl of the size given.
        let bound = unsafe {
            libc::bind(
                socket.as_raw_fd(),
                &address as *const libc::sockaddr_nl as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if bound < 0 {
            return Err(io::Error::last_os_error());
        }
        // A bigger receive buffer rides out bursts (a build forking thousands of processes);
        // FORCE goes past rmem_max, which root may do; otherwise what the system allows.
        let size: libc::c_int = 4 << 20;
        for option in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
            // SAFETY: setsockopt with a valid int option value.
            let set = unsafe {
                libc::setsockopt(
                    socket.as_raw_fd(),
                    libc::SOL_SOCKET,
                    option,
                    &size as *const libc::c_int as *const libc::c_void,
                    std::mem::size_of::<libc::c_int>() as u32,
                )
            };
            if set == 0 {
                break;
            }
        }
        let progress = Arc::new(Progress {
            socket: socket.try_clone()?,
            busy: AtomicBool::new(false),
        });
        let connector = ProcConnector {
            socket,
            buffer: vec![0; 64 * 1024],
            progress,
        };
        connector.listen()?;
        Ok(connector)
    }

    fn listen(&self) -> io::Result<()> {
        let total = NLMSG_HEADER + CN_MSG_HEADER + 4;
        let mut message = Vec::with_capacity(total);
        // nlmsghdr: len, type NLMSG_DONE, flags 0, seq 0, pid (ours)
        message.extend_from_slice(&(total as u32).to_ne_bytes());
        message.extend_from_slice(&(libc::NLMSG_DONE as u16).to_ne_bytes());
        message.extend_from_slice(&0u16.to_ne_bytes());
        message.extend_from_slice(&0u32.to_ne_bytes());
        message.extend_from_slice(&std::process::id().to_ne_bytes());
        // cn_msg: idx, val, seq, ack, len, flags, then the operation
        message.extend_from_slice(&CN_IDX_PROC.to_ne_bytes());
        message.extend_from_slice(&CN_VAL_PROC.to_ne_bytes());
        message.extend_from_slice(&0u32.to_ne_bytes());
        message.extend_from_slice(&0u32.to_ne_bytes());
        message.extend_from_slice(&4u16.to_ne_bytes());
        message.extend_from_slice(&0u16.to_ne_bytes());
        message.extend_from_slice(&PROC_CN_MCAST_LISTEN.to_ne_bytes());
        // SAFETY: sending a buffer we own, of the length given.
        let sent = unsafe {
            libc::send(
                self.socket.as_raw_fd(),
                message.as_ptr() as *const libc::c_void,
                message.len(),
                0,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    pub fn progress(&self) -> Arc<Progress> {
        self.progress.clone()
    }

    /// Marks the collector idle and blocks until an event arrives, then marks it busy: call
    /// only when `next_events` has found the socket empty.
    pub fn wait(&self) -> io::Result<()> {
        self.progress.busy.store(false, Ordering::SeqCst);
        let mut waiting = libc::pollfd {
            fd: self.socket.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        loop {
            // SAFETY: one pollfd we own.
            if unsafe { libc::poll(&mut waiting, 1, -1) } >= 0 {
                break;
            }
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::Interrupted {
                return Err(error);
            }
        }
        self.progress.busy.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// The events of the next datagram, without waiting: `Ok(false)` when the socket is empty.
    /// `ENOBUFS` means the kernel dropped events because we fell behind: reported to the
    /// caller, who counts it.
    pub fn next_events(&mut self, events: &mut Vec<ProcEvent>) -> io::Result<bool> {
        events.clear();
        // SAFETY: receiving into a buffer we own, of the length given.
        let received = unsafe {
            libc::recv(
                self.socket.as_raw_fd(),
                self.buffer.as_mut_ptr() as *mut libc::c_void,
                self.buffer.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if received < 0 {
            let error = io::Error::last_os_error();
            return match error.kind() {
                io::ErrorKind::WouldBlock => Ok(false),
                _ => Err(error),
            };
        }
        parse_datagram(&self.buffer[..received as usize], events);
        Ok(true)
    }
}

fn u32_at(bytes: &[u8], offset: usize) -> Option<u32> {
    bytes
        .get(offset..offset + 4)
        .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

/// Splits a datagram into netlink messages and decodes the process events in them; anything
/// short or of another kind is skipped.
pub fn parse_datagram(datagram: &[u8], events: &mut Vec<ProcEvent>) {
    let mut offset = 0;
    while offset + NLMSG_HEADER <= datagram.len() {
        let Some(length) = u32_at(datagram, offset).map(|l| l as usize) else {
            return;
        };
        if length < NLMSG_HEADER || offset + length > datagram.len() {
            return;
        }
        let message = &datagram[offset..offset + length];
        if let Some(event) = parse_message(message) {
            events.push(event);
        }
        // Netlink messages are 4-byte aligned.
        offset += (length + 3) & !3;
    }
}

fn parse_message(message: &[u8]) -> Option<ProcEvent> {
    let cn = &message[NLMSG_HEADER..];
    if u32_at(cn, 0)? != CN_IDX_PROC || u32_at(cn, 4)? != CN_VAL_PROC {
        return None;
    }
    let event = cn.get(CN_MSG_HEADER..)?;
    let what = u32_at(event, 0)?;
    let data = event.get(PROC_EVENT_HEADER..)?;
    match what {
        PROC_EVENT_FORK => {
            // parent_pid, parent_tgid, child_pid, child_tgid: only new processes (a thread's
            // pid differs from its tgid) matter.
            let (parent_tgid, child_pid, child_tgid) =
                (u32_at(data, 4)?, u32_at(data, 8)?, u32_at(data, 12)?);
            (child_pid == child_tgid).then_some(ProcEvent::Fork {
                parent: parent_tgid,
                child: child_tgid,
            })
        }
        PROC_EVENT_EXEC => Some(ProcEvent::Exec {
            pid: u32_at(data, 4)?,
        }),
        PROC_EVENT_EXIT => {
            let (pid, tgid, exit_code) = (u32_at(data, 0)?, u32_at(data, 4)?, u32_at(data, 8)?);
            (pid == tgid).then_some(ProcEvent::Exit {
                pid: tgid,
                exit_code,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(what: u32, data: &[u32]) -> Vec<u8> {
        let length = NLMSG_HEADER + CN_MSG_HEADER + PROC_EVENT_HEADER + data.len() * 4;
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&(length as u32).to_ne_bytes());
        bytes.extend_from_slice(&[0; 12]);
        bytes.extend_from_slice(&CN_IDX_PROC.to_ne_bytes());
        bytes.extend_from_slice(&CN_VAL_PROC.to_ne_bytes());
        bytes.extend_from_slice(&[0; 12]);
        bytes.extend_from_slice(&what.to_ne_bytes());
        bytes.extend_from_slice(&[0; 12]);
        for value in data {
            bytes.extend_from_slice(&value.to_ne_bytes());
        }
        bytes
    }

    #[test]
    fn decodes_fork_exec_exit_and_skips_threads() {
        let mut datagram = message(PROC_EVENT_FORK, &[10, 10, 11, 11]);
        datagram.extend(message(PROC_EVENT_FORK, &[10, 10, 12, 10])); // a thread
        datagram.extend(message(PROC_EVENT_EXEC, &[11, 11]));
        datagram.extend(message(PROC_EVENT_EXIT, &[11, 11, 256, 17]));
        let mut events = Vec::new();
        parse_datagram(&datagram, &mut events);
        assert_eq!(
            events,
            vec![
                ProcEvent::Fork {
                    parent: 10,
                    child: 11
                },
                ProcEvent::Exec { pid: 11 },
                ProcEvent::Exit {
                    pid: 11,
                    exit_code: 256
                },
            ]
        );
        // A truncated datagram yields what is complete and nothing else.
        let mut events = Vec::new();
        parse_datagram(&datagram[..datagram.len() - 3], &mut events);
        assert_eq!(events.len(), 2);
    }

    #[test]
    fn sees_a_real_fork_and_exec_when_permitted() {
        let mut connector = match ProcConnector::open() {
            Ok(connector) => connector,
            Err(e) => {
                eprintln!("SKIPPED: the proc connector needs CAP_NET_ADMIN in the initial network namespace ({e})");
                return;
            }
        };
        let progress = connector.progress();
        let mut child = std::process::Command::new("/bin/true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        // The fork's event is queued before the child runs: not caught up until it is read.
        assert!(!progress.caught_up());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let (mut forked, mut execed) = (false, false);
        let mut events = Vec::new();
        while !(forked && execed) && std::time::Instant::now() < deadline {
            if !connector.next_events(&mut events).unwrap() {
                connector.wait().unwrap();
                continue;
            }
            for event in &events {
                match *event {
                    ProcEvent::Fork { child, .. } if child == pid => forked = true,
                    ProcEvent::Exec { pid: p } if p == pid => execed = true,
                    _ => {}
                }
            }
        }
        assert!(forked && execed, "fork {forked}, exec {execed}");
    }
}
