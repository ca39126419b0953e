//! The hook spool: when quintd cannot be reached, `quintctl hook` decides with the snapshot and
//! leaves the decided event here as one file; quintd ingests and removes the files when it runs.
//!
//! A spooled event can hold anything the agent typed, pasted secrets included, and the hook
//! cannot redact with the device key (root-only). So files are sealed to quintd: a sealed box
//! (X25519 + XSalsa20-Poly1305, libsodium's `crypto_box_seal`) under a key pair whose public half
//! quintd publishes in the spool dir and whose secret half only quintd reads. Nothing readable
//! is left on disk; quintd opens, redacts and records the event when it ingests it.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crypto_box::aead::OsRng;
use crypto_box::{PublicKey, SecretKey};
use quint_policy::Event;

/// The published half of the spool key, in the spool dir, written by quintd.
pub const SEAL_PUBLIC_FILE: &str = "seal.pub";
const SEALED: &str = "sealed";
const PLAIN: &str = "json";

/// Writes one event atomically (temp file, fsync, rename): sealed to `seal` as
/// `<event_id>.sealed`, or as plain `<event_id>.json` when quintd has never published a key
/// (the caller redacts it first). Creates the spool directory when quintd has never run
/// (shared, sticky, unlistable).
pub fn write(dir: &Path, event: &Event, seal: Option<&PublicKey>) -> std::io::Result<PathBuf> {
    if !dir.exists() {
        fs::create_dir_all(dir)?;
        let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o1733));
    }
    let json = serde_json::to_vec(event)?;
    let (bytes, extension) = match seal {
        Some(key) => (
            key.seal(&mut OsRng, &json)
                .map_err(|_| std::io::Error::other("cannot seal the spooled event"))?,
            SEALED,
        ),
        None => (json, PLAIN),
    };
    let path = dir.join(format!("{}.{extension}", event.event_id));
    let temporary = dir.join(format!(".{}.tmp", event.event_id));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)?;
    file.write_all(&bytes)?;
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

fn is_spool_file(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == PLAIN || e == SEALED)
}

/// Lists up to `limit` spooled events, oldest file name first (UUID v7 names sort by time),
/// opening sealed ones with quintd's secret key.
pub fn read(dir: &Path, limit: usize, key: &SecretKey) -> std::io::Result<Vec<SpoolEntry>> {
    let mut paths: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| is_spool_file(p))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    paths.sort();
    paths.truncate(limit);
    Ok(paths
        .into_iter()
        .map(|path| {
            let sealed = path.extension().is_some_and(|e| e == SEALED);
            let (owner_uid, event) = match read_spool_file(&path) {
                Ok((uid, bytes)) => {
                    let opened = if sealed {
                        key.unseal(&bytes).map_err(|_| {
                            "cannot be opened with this device's spool key".to_string()
                        })
                    } else {
                        Ok(bytes)
                    };
                    (
                        uid,
                        opened.and_then(|b| Event::from_json(&b).map_err(|e| e.to_string())),
                    )
                }
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

/// quintd's spool key pair: the secret half from `secret_path` (created once, root-only), the
/// public half (re)published as `seal.pub` in the spool dir, world-readable.
pub fn load_or_create_seal_key(secret_path: &Path, dir: &Path) -> anyhow::Result<SecretKey> {
    let bytes = crate::redaction::load_or_create_key(secret_path)?;
    let secret = SecretKey::from_slice(&bytes)
        .map_err(|_| anyhow::anyhow!("{} is not a spool key", secret_path.display()))?;
    let published = dir.join(SEAL_PUBLIC_FILE);
    let temporary = dir.join(format!(".{SEAL_PUBLIC_FILE}.tmp"));
    let _ = fs::remove_file(&temporary);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&temporary)?;
    file.write_all(secret.public_key().as_bytes())?;
    file.sync_all()?;
    fs::rename(&temporary, &published)?;
    Ok(secret)
}

/// The public spool key a hook seals to, if quintd published one. It is trusted only if it is
/// a regular file owned by the spool dir's owner (quintd): any user can create files in the
/// spool dir, and a planted key would let its author read other users' spooled events.
pub fn published_seal_key(dir: &Path) -> Option<PublicKey> {
    let owner = fs::metadata(dir).ok()?.uid();
    let (file_owner, bytes) = read_spool_file(&dir.join(SEAL_PUBLIC_FILE)).ok()?;
    if file_owner != owner {
        return None;
    }
    PublicKey::from_slice(&bytes).ok()
}

pub fn pending(dir: &Path) -> usize {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| is_spool_file(&e.path()))
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
        let key = SecretKey::generate(&mut OsRng);
        let event = Event::new(Source::Hook, "codex", ActionType::ToolCall, "s");
        write(dir.path(), &event, None).unwrap();
        let secret = dir.path().join("secret.txt");
        fs::write(&secret, "root-only").unwrap();
        std::os::unix::fs::symlink(&secret, dir.path().join("link.json")).unwrap();
        let fifo = std::ffi::CString::new(dir.path().join("fifo.json").to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        fs::write(dir.path().join("huge.json"), vec![b' '; 2 << 20]).unwrap();

        let entries = read(dir.path(), 10, &key).unwrap();
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

    #[test]
    fn sealed_events_are_unreadable_on_disk_and_open_only_with_quintds_key() {
        let dir = tempfile::tempdir().unwrap();
        let key = load_or_create_seal_key(&dir.path().join("spool-seal.key"), dir.path()).unwrap();
        let public = published_seal_key(dir.path()).expect("quintd published its key");
        let mut event = Event::new(Source::Hook, "claude-code", ActionType::ToolCall, "s");
        event.target = Some("export TOKEN=canary-4f9d2c7b1e".into());
        let path = write(dir.path(), &event, Some(&public)).unwrap();
        assert_eq!(path.extension().unwrap(), SEALED);
        let on_disk = fs::read(&path).unwrap();
        assert!(!on_disk.windows(10).any(|w| w == b"canary-4f9"), "sealed");

        let entries = read(dir.path(), 10, &key).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(
            entries[0].event.as_ref().unwrap().target,
            event.target,
            "quintd opens it"
        );
        let stranger = SecretKey::generate(&mut OsRng);
        let refused = read(dir.path(), 10, &stranger).unwrap();
        assert!(refused[0].event.as_ref().unwrap_err().contains("spool key"));
        assert_eq!(pending(dir.path()), 1);
    }
}
