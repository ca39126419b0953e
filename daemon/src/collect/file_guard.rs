//! Enforcement on `open()` on Linux: fanotify permission events (`FAN_OPEN_PERM`,
//! `FAN_OPEN_EXEC_PERM`) on the paths policy protects (`OpenGuard`). The kernel holds every open under a mark until
//! quintd answers, so the answer for a process outside any agent session is given at once,
//! before anything else is looked at; only agent processes are decided by policy. If quintd
//! dies, the kernel drops the marks with the fanotify group and pending opens proceed.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::fanotify;
use super::open_guard::{OpenGuard, OpenRequest};
use super::protected_paths::Mark;

/// How long the guard keeps polling after an event before it sleeps (see `serve`).
const SPIN_AFTER_EVENT: std::time::Duration = std::time::Duration::from_micros(50);

pub struct FileGuard {
    fd: OwnedFd,
}

/// Whether a process blocked in an open (as it is while its permission event waits for us)
/// opens for writing: fanotify does not say, but `/proc/<pid>/syscall` shows the open's flags
/// (root may read it). `None` when the syscall is not one this knows (openat2 keeps its flags
/// behind a pointer).
pub fn opening_for_write(pid: u32) -> Option<bool> {
    let line = std::fs::read_to_string(format!("/proc/{pid}/syscall")).ok()?;
    // "NR arg0 … arg5 sp pc": the number in decimal, the rest in hex.
    let mut words = line.split_whitespace();
    let number: u64 = words.next()?.parse().ok()?;
    let fields: Vec<u64> = std::iter::once(number)
        .chain(words.map(|f| u64::from_str_radix(f.trim_start_matches("0x"), 16).unwrap_or(0)))
        .collect();
    // (open, flags argument index), per architecture.
    #[cfg(target_arch = "x86_64")]
    let flags = match number {
        2 => fields.get(2)?,     // open(path, flags, mode)
        257 => fields.get(3)?,   // openat(dirfd, path, flags, mode)
        85 => return Some(true), // creat
        _ => return None,
    };
    #[cfg(target_arch = "aarch64")]
    let flags = match number {
        56 => fields.get(3)?, // openat(dirfd, path, flags, mode)
        _ => return None,
    };
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let flags: &u64 = {
        let _ = number;
        return None;
    };
    let flags = *flags as i32;
    Some(flags & libc::O_ACCMODE != libc::O_RDONLY || flags & (libc::O_TRUNC | libc::O_CREAT) != 0)
}

impl FileGuard {
    /// Needs CAP_SYS_ADMIN (root).
    pub fn open() -> io::Result<FileGuard> {
        // SAFETY: fanotify_init with constant flags; the fd is owned right away.
        let fd = unsafe {
            libc::fanotify_init(
                libc::FAN_CLASS_CONTENT | libc::FAN_CLOEXEC | libc::FAN_NONBLOCK,
                (libc::O_RDONLY | libc::O_LARGEFILE | libc::O_CLOEXEC) as u32,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is fresh and owned by nothing else.
        Ok(FileGuard {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// A directory mark covers the directory's direct children, no deeper.
    fn mark(&self, mark: &Mark) -> io::Result<()> {
        let (path, flags, events) = match mark {
            Mark::Directory(dir) => (
                dir,
                libc::FAN_MARK_ADD | libc::FAN_MARK_ONLYDIR,
                libc::FAN_OPEN_PERM | libc::FAN_OPEN_EXEC_PERM | libc::FAN_EVENT_ON_CHILD,
            ),
            Mark::File(file) => (
                file,
                libc::FAN_MARK_ADD,
                libc::FAN_OPEN_PERM | libc::FAN_OPEN_EXEC_PERM,
            ),
        };
        let path = fanotify::c_path(path)?;
        // SAFETY: a valid fanotify fd and a NUL-terminated path.
        let marked = unsafe {
            libc::fanotify_mark(
                self.fd.as_raw_fd(),
                flags,
                events,
                libc::AT_FDCWD,
                path.as_ptr(),
            )
        };
        if marked < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Answers opens for ever. `watched(pid)` false answers allow at once, before the path is
    /// even looked up (the common case: the process is in no agent session); otherwise
    /// `allow(request)` false means EPERM for that open. Returns only when reading fails.
    fn answer(
        &self,
        watched: &dyn Fn(u32) -> bool,
        allow: &mut dyn FnMut(&OpenRequest) -> bool,
    ) -> io::Error {
        let mut buffer = vec![0u8; 64 * 1024];
        let mut last_event = std::time::Instant::now();
        loop {
            let read = match fanotify::read(&self.fd, &mut buffer) {
                Ok(read) => read,
                // Opens come in bursts (a program reading its config, a shell's
                // redirections): a sleeping thread on an idle CPU takes tens of µs to wake,
                // which every held open would pay. So after an event the thread keeps looking
                // for SPIN_AFTER_EVENT before it sleeps.
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    if last_event.elapsed() < SPIN_AFTER_EVENT {
                        std::hint::spin_loop();
                    } else {
                        let mut waiting = libc::pollfd {
                            fd: self.fd.as_raw_fd(),
                            events: libc::POLLIN,
                            revents: 0,
                        };
                        // SAFETY: one pollfd we own.
                        unsafe { libc::poll(&mut waiting, 1, -1) };
                    }
                    continue;
                }
                Err(error) => return error,
            };
            last_event = std::time::Instant::now();
            for (event, _) in fanotify::events(&buffer[..read]) {
                if event.fd < 0 {
                    continue;
                }
                let pid = event.pid as u32;
                let permitted = !watched(pid) || {
                    let path = std::fs::read_link(format!("/proc/self/fd/{}", event.fd))
                        .map(|p| p.display().to_string())
                        .unwrap_or_default();
                    allow(&OpenRequest {
                        pid,
                        path: &path,
                        exec: event.mask & libc::FAN_OPEN_EXEC_PERM != 0,
                    })
                };
                let response = libc::fanotify_response {
                    fd: event.fd,
                    response: if permitted {
                        libc::FAN_ALLOW
                    } else {
                        libc::FAN_DENY
                    },
                };
                // SAFETY: writing a response struct we own; closing the event's fd, which the
                // kernel gave us to own.
                unsafe {
                    libc::write(
                        self.fd.as_raw_fd(),
                        &response as *const libc::fanotify_response as *const libc::c_void,
                        std::mem::size_of::<libc::fanotify_response>(),
                    );
                    libc::close(event.fd);
                }
            }
        }
    }
}

impl OpenGuard for FileGuard {
    fn protect(&self, mark: &Mark) -> io::Result<()> {
        self.mark(mark)
    }

    fn serve(
        &self,
        watched: &dyn Fn(u32) -> bool,
        allow: &mut dyn FnMut(&OpenRequest) -> bool,
    ) -> io::Error {
        self.answer(watched, allow)
    }
}
