//! Keys quintd keeps in its state dir: created once, owner-only, synced before use.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::Context;

/// Writes a new key file (mode 0600); fails if one exists, so a key is never replaced silently.
pub fn create(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

/// Replaces a file atomically (write aside, fsync, rename) with mode 0600: a crash leaves the
/// old content or the new, never half of either.
pub fn replace(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let aside = path.with_extension("tmp");
    let _ = fs::remove_file(&aside);
    create(&aside, bytes)?;
    fs::rename(&aside, path).with_context(|| format!("replacing {}", path.display()))
}
