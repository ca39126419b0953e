//! File changes (creates, writes, deletes, renames) from whichever source the platform gives
//! quintd: fanotify on Linux as root (whole filesystems, each change with its pid), or the
//! `notify` crate elsewhere and without root (inotify, FSEvents: the trees named, no pids, so
//! changes are placed by workspace and only observed).

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// What happened to a file or directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Created,
    Deleted,
    /// Closed after being opened for writing.
    Written,
    Renamed,
}

#[derive(Debug, Clone)]
pub struct FileChange {
    /// Who made the change, where the source can say.
    pub pid: Option<u32>,
    pub change: Change,
    /// Where the entry is now (for a delete: where it was).
    pub path: String,
    /// A rename's old path.
    pub from: Option<String>,
    pub directory: bool,
}

pub trait ChangeSource: Send + Sync {
    /// `active` or `fallback`, and how it watches, for `quintctl status`.
    fn describe(&self) -> (&'static str, String);
    /// Whether one `watch` covers a whole filesystem (cheap to ask for homes) or only a tree.
    fn whole_filesystems(&self) -> bool;
    /// Starts watching `root` (fanotify: its filesystem). `Ok(false)`: already watched.
    fn watch(&self, root: &Path) -> io::Result<bool>;
    /// Delivers changes until the source fails. `watched(pid)` false drops a change before
    /// its path is looked up, where the source knows pids.
    fn serve(&self, watched: &dyn Fn(u32) -> bool, each: &mut dyn FnMut(FileChange)) -> io::Error;
    /// Changes lost because the source's queue overflowed.
    fn overflows(&self) -> Arc<AtomicU64>;
}

/// The `notify` crate's recommended watcher (inotify, FSEvents), recursive on each root.
pub struct NotifyChanges {
    watcher: Mutex<notify::RecommendedWatcher>,
    events: Mutex<std::sync::mpsc::Receiver<notify::Result<notify::Event>>>,
    roots: Mutex<std::collections::HashSet<std::path::PathBuf>>,
    overflows: Arc<AtomicU64>,
}

impl NotifyChanges {
    pub fn open() -> notify::Result<NotifyChanges> {
        let (sender, events) = std::sync::mpsc::channel();
        let watcher = notify::recommended_watcher(move |event| {
            let _ = sender.send(event);
        })?;
        Ok(NotifyChanges {
            watcher: Mutex::new(watcher),
            events: Mutex::new(events),
            roots: Default::default(),
            overflows: Default::default(),
        })
    }
}

impl ChangeSource for NotifyChanges {
    fn describe(&self) -> (&'static str, String) {
        (
            "fallback",
            "the notify crate on each agent workspace (recursive): observation only, changes placed by workspace, no pid".into(),
        )
    }

    fn whole_filesystems(&self) -> bool {
        false
    }

    fn watch(&self, root: &Path) -> io::Result<bool> {
        use notify::Watcher;
        let mut roots = self.roots.lock().unwrap_or_else(|e| e.into_inner());
        if roots.iter().any(|known| root.starts_with(known)) {
            return Ok(false);
        }
        self.watcher
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .watch(root, notify::RecursiveMode::Recursive)
            .map_err(|e| io::Error::other(e.to_string()))?;
        roots.insert(root.to_path_buf());
        Ok(true)
    }

    fn serve(&self, _watched: &dyn Fn(u32) -> bool, each: &mut dyn FnMut(FileChange)) -> io::Error {
        let events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            match events.recv() {
                Ok(Ok(event)) => {
                    if event.need_rescan() {
                        self.overflows.fetch_add(1, Ordering::Relaxed);
                    }
                    if let Some(change) = from_notify(&event) {
                        each(change);
                    }
                }
                Ok(Err(e)) => {
                    self.overflows.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "file change watcher error");
                }
                Err(_) => return io::Error::other("the file change watcher stopped"),
            }
        }
    }

    fn overflows(&self) -> Arc<AtomicU64> {
        self.overflows.clone()
    }
}

fn from_notify(event: &notify::Event) -> Option<FileChange> {
    use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind, RemoveKind, RenameMode};
    use notify::EventKind;
    let path = |i: usize| event.paths.get(i).map(|p| p.display().to_string());
    let (change, directory, target, from) = match &event.kind {
        EventKind::Create(kind) => (Change::Created, *kind == CreateKind::Folder, path(0)?, None),
        EventKind::Remove(kind) => (Change::Deleted, *kind == RemoveKind::Folder, path(0)?, None),
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => {
            (Change::Written, false, path(0)?, None)
        }
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => {
            (Change::Renamed, false, path(1)?, path(0))
        }
        // The halves (`From`, `To`) come before `Both` for a rename inside the trees; a move
        // into or out of them has only one half, and is not reported.
        _ => return None,
    };
    let directory = directory || Path::new(&target).is_dir();
    Some(FileChange {
        pid: None,
        change,
        path: target,
        from,
        directory,
    })
}
