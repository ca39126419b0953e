//! What processes did to files after the fact: fanotify notification events (creates, deletes,
//! renames, writes closed) over whole filesystems, each with the directory's handle and the
//! entry's name (`FAN_REPORT_DFID_NAME`) and the pid that caused it. A filesystem mark sees a
//! whole tree with one mark, at the cost of hearing about every process; the caller's
//! `watched(pid)` drops the rest before any path is looked up.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use super::changes::{Change, ChangeSource, FileChange};
use super::fanotify;

pub struct FileEvents {
    fd: OwnedFd,
    /// An fd on each marked filesystem, by fsid: `open_by_handle_at` needs one to resolve the
    /// directory handles events carry.
    filesystems: std::sync::RwLock<HashMap<[i32; 2], OwnedFd>>,
    /// Events the kernel dropped because its queue was full.
    overflows: Arc<AtomicU64>,
    /// Directory handle (with its fsid) → path, and when it was looked up.
    directories: std::sync::Mutex<HashMap<Vec<u8>, (String, std::time::Instant)>>,
}

/// How long a directory's path is taken from the cache (see `FileEvents::directory`).
const DIRECTORY_KEPT: std::time::Duration = std::time::Duration::from_secs(1);
/// How long a batch of events waits before its pids are looked up.
const SETTLE: std::time::Duration = std::time::Duration::from_millis(20);

const MASK: u64 = libc::FAN_CREATE
    | libc::FAN_DELETE
    | libc::FAN_RENAME
    | libc::FAN_CLOSE_WRITE
    | libc::FAN_ONDIR;

impl FileEvents {
    /// Needs CAP_SYS_ADMIN (root), and CAP_DAC_READ_SEARCH to resolve handles.
    pub fn open() -> io::Result<FileEvents> {
        // SAFETY: fanotify_init with constant flags; the fd is owned right away.
        let fd = unsafe {
            libc::fanotify_init(
                // Unlimited: a burst (a checkout, `npm install`) waits in the kernel instead of
                // being lost in an overflow that cannot say how many events it took; quintd
                // drains the queue and counts, one by one, what it cannot record.
                libc::FAN_CLASS_NOTIF
                    | libc::FAN_CLOEXEC
                    | libc::FAN_REPORT_DFID_NAME
                    | libc::FAN_UNLIMITED_QUEUE,
                (libc::O_RDONLY | libc::O_CLOEXEC) as u32,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(FileEvents {
            // SAFETY: fd is fresh and owned by nothing else.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            filesystems: Default::default(),
            overflows: Default::default(),
            directories: Default::default(),
        })
    }

    /// Watches the whole filesystem `path` is on (once per filesystem). Returns false when
    /// that filesystem was already watched.
    fn watch_filesystem_of(&self, path: &Path) -> io::Result<bool> {
        let fsid = fsid_of(path)?;
        let mut filesystems = self.filesystems.write().unwrap_or_else(|e| e.into_inner());
        if filesystems.contains_key(&fsid) {
            return Ok(false);
        }
        let c_path = fanotify::c_path(path)?;
        // SAFETY: a valid fanotify fd and a NUL-terminated path.
        let marked = unsafe {
            libc::fanotify_mark(
                self.fd.as_raw_fd(),
                libc::FAN_MARK_ADD | libc::FAN_MARK_FILESYSTEM,
                MASK,
                libc::AT_FDCWD,
                c_path.as_ptr(),
            )
        };
        if marked < 0 {
            return Err(io::Error::last_os_error());
        }
        let handle = std::fs::File::open(path)?;
        filesystems.insert(fsid, handle.into());
        Ok(true)
    }

    /// Reads events for ever; `watched(pid)` false drops an event before its path is looked
    /// up. Returns only when reading fails.
    fn read_events(
        &self,
        watched: &dyn Fn(u32) -> bool,
        each: &mut dyn FnMut(FileChange),
    ) -> io::Error {
        // Large enough that one read per SETTLE keeps up with the kernel's queue (16,384
        // events of ~64 bytes).
        let mut buffer = vec![0u8; 1 << 20];
        let mut changes = Vec::with_capacity(3);
        loop {
            let read = match fanotify::read(&self.fd, &mut buffer) {
                Ok(read) => read,
                Err(error) => return error,
            };
            // The process collector places a new process when it reads the fork, on another
            // thread: a quick `mv` can reach us first. Letting the batch settle costs latency
            // only (the kernel keeps queueing meanwhile).
            std::thread::sleep(SETTLE);
            for (event, record) in fanotify::events(&buffer[..read]) {
                if event.mask & libc::FAN_Q_OVERFLOW != 0 {
                    self.overflows
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::warn!("the kernel dropped file events: its queue was full");
                    continue;
                }
                let pid = event.pid as u32;
                if !watched(pid) {
                    continue;
                }
                self.parse(pid, event.mask, record, &mut changes);
                for change in changes.drain(..) {
                    each(change);
                }
            }
        }
    }

    /// The changes one event stands for. The kernel merges events on the same entry by the
    /// same process while they wait in its queue: a file created, written and deleted at once
    /// arrives as one event with all three bits, and is reported as its creation and deletion.
    fn parse(&self, pid: u32, mask: u64, infos: &[u8], out: &mut Vec<FileChange>) {
        parse_event(pid, mask, infos, |record| self.resolve(record), out)
    }

    /// The path of the directory a handle names. A busy directory (a build, a checkout) is
    /// named by thousands of events a second: its path is kept for `DIRECTORY_KEPT`, so a
    /// directory renamed meanwhile is reported under its old name for at most that long.
    fn directory(&self, fsid: [i32; 2], fsid_and_handle: &[u8]) -> String {
        let mut known = self.directories.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((path, at)) = known.get(fsid_and_handle) {
            if at.elapsed() < DIRECTORY_KEPT {
                return path.clone();
            }
        }
        let Some(path) = self
            .filesystems
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&fsid)
            .and_then(|mount| open_directory(mount, &fsid_and_handle[8..]))
        else {
            return "…".to_string();
        };
        if known.len() >= 4096 {
            known.clear();
        }
        known.insert(
            fsid_and_handle.to_vec(),
            (path.clone(), std::time::Instant::now()),
        );
        path
    }

    /// A DFID_NAME record as a path: the directory from its handle, then the name. A directory
    /// gone by now (a tree removed at once) leaves `…/name`.
    fn resolve(&self, record: &[u8]) -> Option<String> {
        const FSID_AT: usize = 4;
        const HANDLE_AT: usize = 12;
        if record.len() < HANDLE_AT + 8 {
            return None;
        }
        let word = |at: usize| i32::from_ne_bytes(record[at..at + 4].try_into().unwrap());
        let fsid = [word(FSID_AT), word(FSID_AT + 4)];
        let handle_bytes = u32::from_ne_bytes(record[HANDLE_AT..HANDLE_AT + 4].try_into().ok()?);
        let name_at = HANDLE_AT + 8 + handle_bytes as usize;
        if name_at > record.len() {
            return None;
        }
        let name_bytes = &record[name_at..];
        let name_end = name_bytes
            .iter()
            .position(|b| *b == 0)
            .unwrap_or(name_bytes.len());
        let name = String::from_utf8_lossy(&name_bytes[..name_end]);
        let directory = self.directory(fsid, &record[FSID_AT..name_at]);
        Some(if name.is_empty() || name == "." {
            directory
        } else if directory.ends_with('/') {
            format!("{directory}{name}")
        } else {
            format!("{directory}/{name}")
        })
    }
}

impl ChangeSource for FileEvents {
    fn describe(&self) -> (&'static str, String) {
        (
            "active",
            "fanotify change events (whole filesystems, with the pid of each change)".into(),
        )
    }

    fn whole_filesystems(&self) -> bool {
        true
    }

    fn watch(&self, root: &Path) -> io::Result<bool> {
        self.watch_filesystem_of(root)
    }

    fn serve(&self, watched: &dyn Fn(u32) -> bool, each: &mut dyn FnMut(FileChange)) -> io::Error {
        self.read_events(watched, each)
    }

    fn overflows(&self) -> Arc<AtomicU64> {
        self.overflows.clone()
    }
}

/// The changes one event stands for (see `FileEvents::parse`); `resolve` names a DFID_NAME
/// record's path.
fn parse_event(
    pid: u32,
    mask: u64,
    mut infos: &[u8],
    resolve: impl Fn(&[u8]) -> Option<String>,
    out: &mut Vec<FileChange>,
) {
    let (mut path, mut from) = (None, None);
    // Info records: header (type, pad, len), fsid, file_handle, then the name.
    while infos.len() >= 4 {
        let kind = infos[0];
        let length = u16::from_ne_bytes([infos[2], infos[3]]) as usize;
        if length < 4 || length > infos.len() {
            break;
        }
        let record = &infos[..length];
        infos = &infos[length..];
        let resolved = resolve(record);
        match kind {
            libc::FAN_EVENT_INFO_TYPE_DFID_NAME | libc::FAN_EVENT_INFO_TYPE_NEW_DFID_NAME => {
                path = resolved
            }
            libc::FAN_EVENT_INFO_TYPE_OLD_DFID_NAME => from = resolved,
            _ => {}
        }
    }
    let Some(path) = path.or_else(|| from.clone()) else {
        return;
    };
    let directory = mask & libc::FAN_ONDIR != 0;
    let mut push = |change: Change, from: Option<String>| {
        out.push(FileChange {
            pid: Some(pid),
            change,
            path: path.clone(),
            from,
            directory,
        })
    };
    // A creation includes what was written before the close.
    if mask & libc::FAN_CREATE != 0 {
        push(Change::Created, None);
    } else if mask & libc::FAN_CLOSE_WRITE != 0 {
        push(Change::Written, None);
    }
    if mask & libc::FAN_RENAME != 0 {
        push(Change::Renamed, from);
    }
    if mask & libc::FAN_DELETE != 0 {
        push(Change::Deleted, None);
    }
}

/// A `struct file_handle` (as the kernel wrote it) opened and named through /proc/self/fd.
fn open_directory(mount: &OwnedFd, handle: &[u8]) -> Option<String> {
    // file_handle wants 4-byte alignment: copy into u32 words.
    let mut words = vec![0u32; handle.len().div_ceil(4)];
    // SAFETY: words holds at least handle.len() bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(handle.as_ptr(), words.as_mut_ptr() as *mut u8, handle.len());
    }
    // SAFETY: a file_handle laid out by the kernel, in a buffer of its full length.
    let fd = unsafe {
        libc::open_by_handle_at(
            mount.as_raw_fd(),
            words.as_mut_ptr() as *mut libc::file_handle,
            libc::O_PATH | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return None;
    }
    // SAFETY: fd is fresh and ours.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .ok()
        .map(|p| p.display().to_string())
}

fn fsid_of(path: &Path) -> io::Result<[i32; 2]> {
    let c_path = fanotify::c_path(path)?;
    // SAFETY: statfs fills the struct we own.
    let mut stats: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c_path.as_ptr(), &mut stats) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fsid_t is two ints; libc keeps its field private.
    Ok(unsafe { std::mem::transmute::<libc::fsid_t, [i32; 2]>(stats.f_fsid) })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DFID_NAME info record as the kernel lays it out, naming `name` in a directory.
    fn record(kind: u8, name: &str) -> Vec<u8> {
        let mut record = vec![kind, 0, 0, 0];
        record.extend([0u8; 8]); // fsid
        record.extend(8u32.to_ne_bytes()); // handle_bytes
        record.extend(1i32.to_ne_bytes()); // handle_type
        record.extend([7u8; 8]); // f_handle
        record.extend(name.as_bytes());
        record.push(0);
        while record.len() % 4 != 0 {
            record.push(0);
        }
        let length = record.len() as u16;
        record[2..4].copy_from_slice(&length.to_ne_bytes());
        record
    }

    fn changes(mask: u64, infos: &[u8]) -> Vec<(Change, String, Option<String>)> {
        let resolve = |record: &[u8]| {
            let name = &record[28..];
            let end = name.iter().position(|b| *b == 0).unwrap();
            Some(format!("/work/{}", String::from_utf8_lossy(&name[..end])))
        };
        let mut out = Vec::new();
        parse_event(42, mask, infos, resolve, &mut out);
        out.into_iter()
            .map(|c| (c.change, c.path, c.from))
            .collect()
    }

    #[test]
    fn an_event_the_kernel_merged_is_every_change_it_stands_for() {
        let infos = record(libc::FAN_EVENT_INFO_TYPE_DFID_NAME, "scratch.txt");
        let merged = libc::FAN_CREATE | libc::FAN_CLOSE_WRITE | libc::FAN_DELETE;
        assert_eq!(
            changes(merged, &infos),
            [
                (Change::Created, "/work/scratch.txt".into(), None),
                (Change::Deleted, "/work/scratch.txt".into(), None)
            ]
        );
        assert_eq!(
            changes(libc::FAN_CLOSE_WRITE, &infos),
            [(Change::Written, "/work/scratch.txt".into(), None)]
        );
    }

    #[test]
    fn a_rename_carries_its_old_and_new_names() {
        let mut infos = record(libc::FAN_EVENT_INFO_TYPE_OLD_DFID_NAME, "draft.md");
        infos.extend(record(libc::FAN_EVENT_INFO_TYPE_NEW_DFID_NAME, "final.md"));
        assert_eq!(
            changes(libc::FAN_RENAME, &infos),
            [(
                Change::Renamed,
                "/work/final.md".into(),
                Some("/work/draft.md".into())
            )]
        );
    }
}
