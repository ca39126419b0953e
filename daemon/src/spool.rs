//! The hook spool: when quintd cannot be reached, `quintctl hook` decides with the snapshot and
//! leaves the decided event here as one file; quintd ingests and removes the files when it runs.

use std::fs;
use std::io::{Read, Write};
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
            let (owner_uid, event) = match read_spool_file(&path) {
                Ok((uid, bytes)) => (uid, Event::from_json(&bytes).map_err(|e| e.to_string())),
                Err(reason) => (u32::MAX, Err(reason)),
            };
            SpoolEntry {
                path,
                owner_uid,
                event,
            }
        })
        .collect())
}

/// A spooled event is small; anything bigger was not written by a hook.
const MAX_SPOOL_FILE_BYTES: u64 = 1 << 20;

/// Reads a spool file without following links and only if it is a small regular file: the
/// directory is writable by every user, and quintd reads it as root.
fn read_spool_file(path: &Path) -> Result<(u32, Vec<u8>), String> {
    let mut file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("cannot open: {e}"))?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.file_type().is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() > MAX_SPOOL_FILE_BYTES {
        return Err(format!(
            "{} bytes, larger than any spooled event",
            meta.len()
        ));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    std::io::Read::take(&mut file, MAX_SPOOL_FILE_BYTES)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    Ok((meta.uid(), bytes))
}

/// Moves an unreadable spool file aside so it is kept for inspection but not retried forever.
/// `rejected` is quintd's own directory (root-only, outside the shared spool dir, so no user
/// can plant a link there). If the move fails the file is deleted: it must not be retried forever.
pub fn quarantine(rejected: &Path, path: &Path) -> std::io::Result<PathBuf> {
    let meta = fs::symlink_metadata(rejected)?;
    if !meta.file_type().is_dir() {
        let _ = fs::remove_file(path);
        return Err(std::io::Error::other(format!(
            "{} is not a directory",
            rejected.display()
        )));
    }
    let target = rejected.join(path.file_name().unwrap_or_default());
    fs::rename(path, &target).inspect_err(|_| {
        let _ = fs::remove_file(path);
    })?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use quint_policy::{ActionType, Source};

    #[test]
    fn reads_written_events_and_refuses_planted_files() {
        let dir = tempfile::tempdir().unwrap();
        let event = Event::new(Source::Hook, "codex", ActionType::ToolCall, "s");
        write(dir.path(), &event).unwrap();
        let secret = dir.path().join("secret.txt");
        fs::write(&secret, "root-only").unwrap();
        std::os::unix::fs::symlink(&secret, dir.path().join("link.json")).unwrap();
        let fifo = std::ffi::CString::new(dir.path().join("fifo.json").to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        fs::write(dir.path().join("huge.json"), vec![b' '; 2 << 20]).unwrap();

        let entries = read(dir.path(), 10).unwrap();
        assert_eq!(entries.len(), 4);
        for entry in entries {
            let name = entry
                .path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .to_string();
            match name.as_str() {
                "link.json" | "fifo.json" | "huge.json" => {
                    assert!(entry.event.is_err(), "{name} must be refused")
                }
                _ => assert_eq!(entry.event.unwrap().event_id, event.event_id),
            }
        }
    }
}
