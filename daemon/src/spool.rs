//! The hook spool: when quintd cannot be reached, `quintctl hook` decides with the snapshot and
//! leaves the decided event here as one file; quintd ingests and removes the files when it runs.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use quint_policy::Event;

/// Writes one event as `<event_id>.json`, atomically (temp file, fsync, rename).
/// Creates the spool directory when quintd has never run (shared, sticky, unlistable).
pub fn write(dir: &Path, event: &Event) -> std::io::Result<PathBuf> {
    if !dir.exists() {
        fs::create_dir_all(dir)?;
        let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o1733));
    }
    let path = dir.join(format!("{}.json", event.event_id));
    let temporary = dir.join(format!(".{}.tmp", event.event_id));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)?;
    file.write_all(&serde_json::to_vec(event)?)?;
    file.sync_all()?;
    fs::rename(&temporary, &path)?;
    Ok(path)
}

/// A spooled file: its path, its owner (the hook's user) and its event, or why it is unreadable.
pub struct SpoolEntry {
    pub path: PathBuf,
    pub owner_uid: u32,
    pub event: Result<Event, String>,
}

/// Lists up to `limit` spooled events, oldest file name first (UUID v7 names sort by time).
pub fn read(dir: &Path, limit: usize) -> std::io::Result<Vec<SpoolEntry>> {
    let mut paths: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    paths.sort();
    paths.truncate(limit);
    Ok(paths
        .into_iter()
        .map(|path| {
            let owner_uid = fs::metadata(&path).map(|m| m.uid()).unwrap_or(u32::MAX);
            let event = fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|bytes| Event::from_json(&bytes).map_err(|e| e.to_string()));
            SpoolEntry {
                path,
                owner_uid,
                event,
            }
        })
        .collect())
}

/// Moves an unreadable spool file aside so it is kept for inspection but not retried forever.
pub fn quarantine(dir: &Path, path: &Path) -> std::io::Result<PathBuf> {
    let rejected = dir.join("rejected");
    fs::create_dir_all(&rejected)?;
    let target = rejected.join(path.file_name().unwrap_or_default());
    fs::rename(path, &target)?;
    Ok(target)
}

pub fn pending(dir: &Path) -> usize {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                .count()
        })
        .unwrap_or(0)
}
