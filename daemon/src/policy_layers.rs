//! Where quintd's policy comes from: the built-in default pack, then `policy.d/*.yaml` in name
//! order, then the tenant's layer from the relay when enrolled (later layers override rules by
//! id: the security team's word is last). The last policy that compiled is written as a
//! snapshot that hooks evaluate in-process when quintd cannot be reached.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use quint_policy::default_pack::default_sources;
use quint_policy::{Policy, PolicyError, PolicySource};
use serde::{Deserialize, Serialize};

/// A compiled policy with the sources it was built from.
pub struct LoadedPolicy {
    pub policy: Policy,
    pub sources: Vec<PolicySource>,
    pub loaded_at: chrono::DateTime<chrono::Utc>,
    /// Where the rules came from: `layers` (files as they are) or `snapshot` (last good).
    pub origin: &'static str,
}

/// Reads `*.yaml` / `*.yml` of a policy directory, sorted by name. A missing directory is an
/// empty layer; an unreadable file is an error that names it.
pub fn read_policy_dir(dir: &Path) -> (Vec<PolicySource>, Vec<PolicyError>) {
    let mut sources = Vec::new();
    let mut errors = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (sources, errors),
        Err(e) => {
            errors.push(file_error(dir, &e.to_string()));
            return (sources, errors);
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            )
        })
        .collect();
    paths.sort();
    for path in paths {
        match fs::read_to_string(&path) {
            Ok(text) => sources.push(PolicySource {
                name: path.display().to_string(),
                text,
            }),
            Err(e) => errors.push(file_error(&path, &e.to_string())),
        }
    }
    (sources, errors)
}

fn file_error(path: &Path, message: &str) -> PolicyError {
    PolicyError {
        file: path.display().to_string(),
        line: None,
        rule_id: None,
        message: message.into(),
    }
}

/// The tenant's policy layer as fetched from the relay.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TenantLayer {
    pub yaml: String,
    pub etag: String,
    pub fetched_at: String,
}

/// The name the tenant layer has in errors and status.
pub const TENANT_LAYER_NAME: &str = "tenant policy (relay)";

impl TenantLayer {
    /// The stored layer; `None` when there is none (or it cannot be read, which is logged).
    pub fn load(path: &Path) -> Option<TenantLayer> {
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::error!(error = %e, path = %path.display(), "cannot read the tenant policy");
                return None;
            }
        };
        serde_json::from_slice(&bytes)
            .map_err(|e| tracing::error!(error = %e, path = %path.display(), "the stored tenant policy is unreadable"))
            .ok()
    }
}

/// The default pack, the directory's files and the tenant layer, compiled; errors name file,
/// line and rule.
pub fn compile_layers(
    dir: &Path,
    tenant: Option<&TenantLayer>,
) -> Result<LoadedPolicy, Vec<PolicyError>> {
    let (local, read_errors) = read_policy_dir(dir);
    if !read_errors.is_empty() {
        return Err(read_errors);
    }
    let mut sources = default_sources();
    sources.extend(local);
    if let Some(layer) = tenant {
        sources.push(PolicySource {
            name: TENANT_LAYER_NAME.into(),
            text: layer.yaml.clone(),
        });
    }
    let policy = Policy::compile(&sources)?;
    Ok(LoadedPolicy {
        policy,
        sources,
        loaded_at: chrono::Utc::now(),
        origin: "layers",
    })
}

/// The policy to start with when the files do not compile: the last good snapshot if there is
/// one, else the default pack with only the local files that compile on their own.
pub fn fallback_policy(dir: &Path, snapshot: &Path) -> LoadedPolicy {
    if let Some(loaded) = load_snapshot(snapshot) {
        return loaded;
    }
    let (local, _) = read_policy_dir(dir);
    let mut sources = default_sources();
    for source in local {
        let mut candidate = sources.clone();
        candidate.push(source);
        if Policy::compile(&candidate).is_ok() {
            sources = candidate;
        }
    }
    let policy = Policy::compile(&sources).expect("the default pack compiles");
    LoadedPolicy {
        policy,
        sources,
        loaded_at: chrono::Utc::now(),
        origin: "layers",
    }
}

#[derive(Serialize, Deserialize)]
struct Snapshot {
    hash: String,
    written_at: String,
    sources: Vec<SnapshotSource>,
}

#[derive(Serialize, Deserialize)]
struct SnapshotSource {
    name: String,
    text: String,
}

/// Writes the snapshot atomically, readable by every user's hooks.
pub fn write_snapshot(path: &Path, loaded: &LoadedPolicy) -> std::io::Result<()> {
    let snapshot = Snapshot {
        hash: loaded.policy.hash().to_string(),
        written_at: chrono::Utc::now().to_rfc3339(),
        sources: loaded
            .sources
            .iter()
            .map(|s| SnapshotSource {
                name: s.name.clone(),
                text: s.text.clone(),
            })
            .collect(),
    };
    let temporary = path.with_extension("json.tmp");
    {
        let mut file = fs::File::create(&temporary)?;
        file.write_all(&serde_json::to_vec(&snapshot)?)?;
        file.sync_all()?;
        file.set_permissions(fs::Permissions::from_mode(0o644))?;
    }
    fs::rename(&temporary, path)
}

pub fn load_snapshot(path: &Path) -> Option<LoadedPolicy> {
    let bytes = fs::read(path).ok()?;
    let snapshot: Snapshot = serde_json::from_slice(&bytes).ok()?;
    let sources: Vec<PolicySource> = snapshot
        .sources
        .into_iter()
        .map(|s| PolicySource {
            name: s.name,
            text: s.text,
        })
        .collect();
    let policy = Policy::compile(&sources).ok()?;
    Some(LoadedPolicy {
        policy,
        sources,
        loaded_at: chrono::Utc::now(),
        origin: "snapshot",
    })
}
