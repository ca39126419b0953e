//! The agents' JSON settings files that quintctl edits (hooks, MCP servers), done one way for all.
//!
//! Installing merges into what is there and is idempotent; the first install keeps the original
//! bytes in a `<file>.<sidecar>` file. Uninstalling restores those bytes exactly when the file is
//! as Quint left it (sha256), and otherwise removes only Quint's entries, keeping the user's edits.
//! A dry run returns the diff and writes nothing. Writes are atomic and keep the file's mode.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::output::print_json;

/// What the sidecar remembers of an install.
#[derive(Serialize, Deserialize)]
struct Backup {
    original_existed: bool,
    original: String,
    /// Empty when the file was edited between two installs: the original is then kept for the
    /// user's sake, but restoring it would drop those edits, so uninstall removes entries instead.
    installed_sha256: String,
}

pub fn backup_path(path: &Path, sidecar: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(sidecar);
    path.with_file_name(name)
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

pub fn read_optional(path: &Path) -> Result<Option<String>, String> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

fn read_backup(path: &Path) -> Option<Backup> {
    read_optional(path)
        .ok()
        .flatten()
        .and_then(|t| serde_json::from_str(&t).ok())
}

fn parse_document(path: &Path, text: Option<&str>) -> Result<Value, String> {
    match text {
        None => Ok(json!({})),
        Some(t) if t.trim().is_empty() => Ok(json!({})),
        Some(t) => serde_json::from_str(t)
            .map_err(|e| format!("cannot parse {} ({e}); left it unchanged", path.display())),
    }
}

pub fn render(document: &Value) -> String {
    let mut text = serde_json::to_string_pretty(document).unwrap_or_default();
    text.push('\n');
    text
}

/// Writes through a temp file and a rename, keeping the file's mode (0644 for a new file). A
/// symlink is followed, so a dotfile manager's link stays a link.
pub fn write_atomically(path: &Path, text: &str) -> Result<(), String> {
    let path = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mode = fs::metadata(&path)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o644);
    write_with_mode(&path, text, mode)
}

fn write_with_mode(path: &Path, text: &str, mode: u32) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(fail)?;
    }
    let temporary = path.with_extension("quint-tmp");
    // Created with the final mode, so the content is never readable more widely than the file.
    let _ = fs::remove_file(&temporary);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&temporary)
        .map_err(fail)?;
    file.write_all(text.as_bytes()).map_err(fail)?;
    file.sync_all().map_err(fail)?;
    fs::set_permissions(&temporary, fs::Permissions::from_mode(mode)).map_err(fail)?;
    fs::rename(&temporary, path).map_err(fail)
}

fn unified_diff(path: &Path, before: &str, after: &str) -> String {
    similar::TextDiff::from_lines(before, after)
        .unified_diff()
        .header(
            &format!("{} (before)", path.display()),
            &format!("{} (after)", path.display()),
        )
        .to_string()
}

/// What an install did to one file.
pub enum Installed {
    /// Quint's entries were all there already.
    Unchanged,
    /// Dry run: the diff that would be written.
    DryRun(String),
    /// Written, with the original in this sidecar.
    Written(PathBuf),
}

/// Adds Quint's entries with `add` (false: nothing to add) and writes the file with its backup.
/// A missing file counts as `{}`.
pub fn install(
    path: &Path,
    sidecar: &str,
    dry_run: bool,
    add: impl FnOnce(&mut Value) -> Result<bool, String>,
) -> Result<Installed, String> {
    let original = read_optional(path)?;
    let mut document = parse_document(path, original.as_deref())?;
    if !add(&mut document).map_err(|e| format!("{}: {e}; left it unchanged", path.display()))? {
        return Ok(Installed::Unchanged);
    }
    let updated = render(&document);
    if dry_run {
        return Ok(Installed::DryRun(unified_diff(
            path,
            original.as_deref().unwrap_or(""),
            &updated,
        )));
    }
    let backup_file = backup_path(path, sidecar);
    let installed_sha256 = sha256_hex(&updated);
    let backup = match (read_backup(&backup_file), &original) {
        // As Quint left it: keep the very first original.
        (Some(previous), Some(text)) if previous.installed_sha256 == sha256_hex(text) => Backup {
            installed_sha256,
            ..previous
        },
        // Edited since: restoring the original would drop those edits.
        (Some(previous), Some(_)) => Backup {
            installed_sha256: String::new(),
            ..previous
        },
        _ => Backup {
            original_existed: original.is_some(),
            original: original.unwrap_or_default(),
            installed_sha256,
        },
    };
    let backup_text = serde_json::to_string_pretty(&backup).unwrap_or_default();
    // The sidecar holds the whole original file, secrets in it included: owner only.
    write_with_mode(&backup_file, &backup_text, 0o600)?;
    write_atomically(path, &updated)?;
    Ok(Installed::Written(backup_file))
}

/// What an uninstall did to one file.
pub enum Uninstalled {
    NoFile,
    /// The file has none of Quint's entries.
    NothingToRemove,
    DryRun(String),
    /// The file was as Quint left it: the original bytes are back (or the file is gone again).
    Restored,
    /// The file was edited since install: only Quint's entries were removed.
    Removed,
}

/// Undoes [`install`]. `remove` takes Quint's entries out of the document (false: there were
/// none); it also gets the original document from the backup (`null` if none), for details that
/// the installed entries no longer say.
pub fn uninstall(
    path: &Path,
    sidecar: &str,
    dry_run: bool,
    remove: impl FnOnce(&mut Value, &Value) -> bool,
) -> Result<Uninstalled, String> {
    let Some(current) = read_optional(path)? else {
        return Ok(Uninstalled::NoFile);
    };
    let backup_file = backup_path(path, sidecar);
    let backup = read_backup(&backup_file);
    let original_document = backup
        .as_ref()
        .filter(|b| b.original_existed)
        .and_then(|b| serde_json::from_str(&b.original).ok())
        .unwrap_or(Value::Null);
    let mut document = parse_document(path, Some(&current))?;
    let removed = remove(&mut document, &original_document);
    let untouched = backup
        .as_ref()
        .is_some_and(|b| b.installed_sha256 == sha256_hex(&current));
    let updated: Option<String> = match &backup {
        Some(b) if untouched => b.original_existed.then(|| b.original.clone()),
        _ if removed => Some(render(&document)),
        _ => {
            if !dry_run && backup.is_some() {
                let _ = fs::remove_file(&backup_file);
            }
            return Ok(Uninstalled::NothingToRemove);
        }
    };
    if dry_run {
        let diff = unified_diff(path, &current, updated.as_deref().unwrap_or(""));
        return Ok(Uninstalled::DryRun(diff));
    }
    match &updated {
        Some(text) => write_atomically(path, text)?,
        None => {
            fs::remove_file(path).map_err(|e| format!("cannot remove {}: {e}", path.display()))?
        }
    }
    let _ = fs::remove_file(&backup_file);
    Ok(if untouched {
        Uninstalled::Restored
    } else {
        Uninstalled::Removed
    })
}

/// One line of an install or uninstall report.
#[derive(Debug, Serialize)]
pub struct Outcome {
    pub agent: String,
    pub path: Option<String>,
    /// installed, already-installed, removed, not-installed, skipped, would-change, error
    pub result: String,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

impl Outcome {
    pub fn new(
        agent: &str,
        path: Option<&Path>,
        result: &str,
        detail: impl Into<String>,
    ) -> Outcome {
        Outcome {
            agent: agent.into(),
            path: path.map(|p| p.display().to_string()),
            result: result.into(),
            detail: detail.into(),
            diff: None,
        }
    }

    pub fn dry_run(agent: &str, path: &Path, diff: String) -> Outcome {
        Outcome {
            diff: Some(diff),
            ..Outcome::new(
                agent,
                Some(path),
                "would-change",
                "dry run: nothing written",
            )
        }
    }
}

/// Prints rows as a JSON array, or a line each (then `extra` lines and any diff); the exit code
/// is 1 when a row is an error.
pub fn report<T: Serialize>(
    rows: &[T],
    json: bool,
    outcome: impl Fn(&T) -> &Outcome,
    extra: impl Fn(&T) -> Vec<String>,
) -> i32 {
    if json {
        print_json(&rows);
    } else {
        let width = rows
            .iter()
            .map(|r| outcome(r).agent.len())
            .max()
            .unwrap_or(0)
            .max(12);
        for row in rows {
            let result = outcome(row);
            let path = result.path.as_deref().unwrap_or("-");
            println!(
                "{:<width$} {:<18} {path}  ({})",
                result.agent, result.result, result.detail
            );
            for line in extra(row) {
                println!("{line}");
            }
            if let Some(diff) = &result.diff {
                print!("{diff}");
            }
        }
    }
    i32::from(rows.iter().any(|r| outcome(r).result == "error"))
}
