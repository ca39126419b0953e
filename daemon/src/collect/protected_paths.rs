//! From the path patterns policy protects to what fanotify can mark: directories (whose
//! children's opens are held) and single files. Marks cost every process that opens under
//! them, so they are as narrow as the patterns allow: a directory is marked only when a
//! pattern can match one of its children; a pattern whose files would sit directly in a busy
//! place (a home, `/etc`, a `bin` directory) marks the files that exist, not the place.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use quint_policy::rules::protected::ProtectedPath;
use quint_policy::ActionType;

/// One fanotify mark.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mark {
    /// Opens of the directory's children.
    Directory(PathBuf),
    /// Opens of this file only (an inode mark: a file replaced by rename needs marking again).
    File(PathBuf),
}

/// Where an agent's open is sensitive (worth a divergence alert when undeclared): under the
/// marks of the patterns policy protects for that kind of access. A file guarded only against
/// writes (`/etc/passwd`, which every user lookup reads) is not a sensitive read.
#[derive(Debug, Default)]
pub struct SensitivePlaces {
    read: BTreeSet<Mark>,
    write: BTreeSet<Mark>,
    exec: BTreeSet<Mark>,
}

impl SensitivePlaces {
    pub fn new(protected: &[ProtectedPath], homes: &[PathBuf]) -> SensitivePlaces {
        let marks = |actions: &[ActionType]| -> BTreeSet<Mark> {
            let patterns: Vec<String> = protected
                .iter()
                .filter(|p| actions.iter().any(|&a| p.protects(a)))
                .map(|p| p.pattern.clone())
                .collect();
            marks_for(&patterns, homes).into_iter().collect()
        };
        SensitivePlaces {
            read: marks(&[ActionType::FileRead]),
            write: marks(&[
                ActionType::FileWrite,
                ActionType::FileDelete,
                ActionType::FileRename,
                ActionType::PolicyTamper,
            ]),
            exec: marks(&[ActionType::ProcessExec]),
        }
    }

    /// Whether an open of `path` for `action` falls under a mark made for that action.
    pub fn covers(&self, action: ActionType, path: &Path) -> bool {
        let marks = match action {
            ActionType::FileRead => &self.read,
            ActionType::ProcessExec => &self.exec,
            _ => &self.write,
        };
        marks.contains(&Mark::File(path.to_path_buf()))
            || path
                .parent()
                .is_some_and(|dir| marks.contains(&Mark::Directory(dir.to_path_buf())))
    }
}

/// Directories walked per pattern, and marks in all: bounds on what a broad pattern costs.
const WALK_LIMIT: usize = 2_000;
const MARK_LIMIT: usize = 8_000;
const DEPTH_LIMIT: usize = 8;
/// Brace alternatives per pattern.
const EXPANSION_LIMIT: usize = 256;

/// Directories every process opens files in all the time: never marked whole.
fn busy(dir: &Path, homes: &[PathBuf]) -> bool {
    const SYSTEM: &[&str] = &[
        "/",
        "/etc",
        "/bin",
        "/sbin",
        "/usr",
        "/usr/bin",
        "/usr/sbin",
        "/usr/local/bin",
        "/lib",
        "/usr/lib",
        "/tmp",
        "/var",
        "/home",
        "/Users",
        "/private/etc",
    ];
    SYSTEM.iter().any(|s| dir == Path::new(s)) || homes.iter().any(|h| h == dir)
}

/// The marks for `patterns` (as policy writes them) on this machine now. `~/` and a leading
/// `**/` are anchored at each home (a `**/.aws/credentials` elsewhere is still matched by
/// policy, but only opens under marks are seen); relative patterns are skipped.
pub fn marks_for(patterns: &[String], homes: &[PathBuf]) -> Vec<Mark> {
    let mut marks = BTreeSet::new();
    for pattern in patterns {
        for expanded in expand_braces(pattern) {
            for anchored in anchor(&expanded, homes) {
                marks_for_one(&anchored, homes, &mut marks);
                if marks.len() >= MARK_LIMIT {
                    tracing::warn!(
                        limit = MARK_LIMIT,
                        "too many protected paths; the rest are not marked"
                    );
                    return marks.into_iter().collect();
                }
            }
        }
    }
    marks.into_iter().collect()
}

/// Every home on this machine: /root, /home/*, /Users/* and `$HOME`.
pub fn homes() -> Vec<PathBuf> {
    let mut homes = vec![PathBuf::from("/root")];
    for parent in ["/home", "/Users"] {
        if let Ok(entries) = std::fs::read_dir(parent) {
            homes.extend(
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.is_dir()),
            );
        }
    }
    if let Some(home) = std::env::var_os("HOME") {
        homes.push(home.into());
    }
    homes.sort();
    homes.dedup();
    homes
}

fn anchor(pattern: &str, homes: &[PathBuf]) -> Vec<String> {
    let rest = if let Some(rest) = pattern.strip_prefix("~/") {
        rest
    } else if let Some(rest) = pattern.strip_prefix("**/") {
        rest
    } else if pattern.starts_with('/') {
        return vec![pattern.to_string()];
    } else {
        return Vec::new();
    };
    homes
        .iter()
        .map(|home| format!("{}/{rest}", home.display()))
        .collect()
}

fn has_meta(component: &str) -> bool {
    component.contains(['*', '?', '['])
}

fn marks_for_one(pattern: &str, homes: &[PathBuf], marks: &mut BTreeSet<Mark>) {
    let components: Vec<&str> = pattern.split('/').filter(|c| !c.is_empty()).collect();
    let Some(first_glob) = components.iter().position(|c| has_meta(c)) else {
        // A literal path: the file (or directory) itself when it exists, else its directory
        // so that creating it is seen.
        let path = PathBuf::from(pattern);
        if path.is_dir() {
            if !busy(&path, homes) {
                marks.insert(Mark::Directory(path));
            }
        } else if path.exists() {
            marks.insert(Mark::File(path));
        } else if let Some(parent) = path.parent().filter(|p| p.is_dir() && !busy(p, homes)) {
            marks.insert(Mark::Directory(parent.to_path_buf()));
        }
        return;
    };
    let base: PathBuf = std::iter::once("/")
        .chain(components[..first_glob].iter().copied())
        .collect();
    if !base.is_dir() {
        return;
    }
    let remaining = &components[first_glob..];
    let recursive = remaining.contains(&"**");
    // Files match in directories `remaining.len() - 1` below the base (any depth with `**`).
    let target = remaining.len() - 1;
    let Ok(matcher) = prefix_matchers(&base, remaining) else {
        return;
    };
    let mut stack = vec![(base, 0usize)];
    let mut walked = 0;
    while let Some((dir, depth)) = stack.pop() {
        walked += 1;
        if walked > WALK_LIMIT {
            tracing::warn!(
                pattern,
                limit = WALK_LIMIT,
                "protected pattern covers too many directories; the rest are not marked"
            );
            break;
        }
        if depth == target || (recursive && depth >= target.min(first_double_star(remaining))) {
            if busy(&dir, homes) {
                mark_existing_children(&dir, &matcher.files, marks);
            } else {
                marks.insert(Mark::Directory(dir.clone()));
            }
            if !recursive {
                continue;
            }
        }
        if depth >= DEPTH_LIMIT {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            // Not through symlinks: a link out of the tree would mark somewhere else.
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let child = entry.path();
            let child_depth = depth + 1;
            let matches = matcher
                .directories
                .get(child_depth - 1)
                .or(matcher.directories.last())
                .is_some_and(|glob| glob.is_match(&child));
            if matches {
                stack.push((child, child_depth));
            }
        }
    }
}

fn first_double_star(remaining: &[&str]) -> usize {
    remaining
        .iter()
        .position(|c| *c == "**")
        .unwrap_or(usize::MAX)
}

struct PrefixMatchers {
    /// `directories[k]` matches directories `k + 1` levels below the base that a file of the
    /// pattern can be under.
    directories: Vec<globset::GlobMatcher>,
    /// The whole pattern.
    files: globset::GlobMatcher,
}

fn prefix_matchers(base: &Path, remaining: &[&str]) -> Result<PrefixMatchers, globset::Error> {
    let glob = |parts: &[&str]| {
        globset::GlobBuilder::new(&format!("{}/{}", base.display(), parts.join("/")))
            .literal_separator(true)
            .build()
            .map(|g| g.compile_matcher())
    };
    let mut directories = Vec::new();
    for depth in 1..remaining.len() {
        let prefix = &remaining[..depth];
        directories.push(if prefix.contains(&"**") {
            // Below a `**` every directory can hold a match.
            let until = prefix.iter().position(|c| *c == "**").unwrap_or(0) + 1;
            glob(&remaining[..until])?
        } else {
            glob(prefix)?
        });
    }
    if remaining.last() == Some(&"**") {
        directories.push(glob(remaining)?);
    }
    Ok(PrefixMatchers {
        directories,
        files: glob(remaining)?,
    })
}

fn mark_existing_children(dir: &Path, files: &globset::GlobMatcher, marks: &mut BTreeSet<Mark>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_file()) && files.is_match(&path) {
            marks.insert(Mark::File(path));
        }
    }
}

/// `{a,b}` groups expanded (not nested), at most `EXPANSION_LIMIT` results.
fn expand_braces(pattern: &str) -> Vec<String> {
    let mut done = Vec::new();
    let mut pending = vec![pattern.to_string()];
    while let Some(current) = pending.pop() {
        let Some(open) = current.find('{') else {
            done.push(current);
            continue;
        };
        let Some(close) = current[open..].find('}').map(|c| open + c) else {
            done.push(current);
            continue;
        };
        for alternative in current[open + 1..close].split(',') {
            if done.len() + pending.len() >= EXPANSION_LIMIT {
                break;
            }
            pending.push(format!(
                "{}{alternative}{}",
                &current[..open],
                &current[close + 1..]
            ));
        }
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(paths: &[&str]) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        for path in paths {
            let full = root.path().join(path);
            if path.ends_with('/') {
                std::fs::create_dir_all(&full).unwrap();
            } else {
                std::fs::create_dir_all(full.parent().unwrap()).unwrap();
                std::fs::write(&full, "x").unwrap();
            }
        }
        root
    }

    fn marks(patterns: &[&str], home: &Path) -> Vec<Mark> {
        let patterns: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
        marks_for(&patterns, &[home.to_path_buf()])
    }

    #[test]
    fn a_glob_in_the_last_component_marks_its_directory() {
        let home = tree(&[".ssh/id_rsa", ".ssh/known_hosts", "project/"]);
        let dir = |p: &str| Mark::Directory(home.path().join(p));
        assert_eq!(
            marks(&["~/.ssh/id_*", "**/.ssh/*.pem"], home.path()),
            vec![dir(".ssh")]
        );
    }

    #[test]
    fn deeper_globs_mark_only_the_directories_that_can_hold_a_match() {
        let home = tree(&[
            ".config/google-chrome/Default/Cookies",
            ".config/google-chrome/Profile 1/",
            ".config/other/Default/",
            ".gnupg/private-keys-v1.d/sub/",
            ".gnupg/pubring.kbx",
        ]);
        let dir = |p: &str| Mark::Directory(home.path().join(p));
        let got = marks(
            &[
                "**/{.config/google-chrome*,.config/chromium}/*/{Cookies,Login Data}",
                "**/.gnupg/private-keys-v1.d/**",
            ],
            home.path(),
        );
        assert_eq!(
            got,
            vec![
                dir(".config/google-chrome/Default"),
                dir(".config/google-chrome/Profile 1"),
                dir(".gnupg/private-keys-v1.d"),
                dir(".gnupg/private-keys-v1.d/sub"),
            ]
        );
    }

    #[test]
    fn files_directly_in_a_home_are_marked_one_by_one_never_the_home() {
        let home = tree(&[".netrc", ".bashrc", "notes.txt", "x.quint-backup"]);
        let file = |p: &str| Mark::File(home.path().join(p));
        let got = marks(
            &[
                "~/.netrc",
                "~/.pgpass",
                "**/*.quint-backup",
                "{~,/nowhere}/.bashrc",
            ],
            home.path(),
        );
        assert_eq!(
            got,
            vec![file(".bashrc"), file(".netrc"), file("x.quint-backup")]
        );
    }

    #[test]
    fn a_missing_literal_file_marks_its_directory_so_its_creation_is_held() {
        let home = tree(&[".aws/config"]);
        let got = marks(&["~/.aws/credentials", "~/.kube/config"], home.path());
        assert_eq!(got, vec![Mark::Directory(home.path().join(".aws"))]);
    }

    #[test]
    fn braces_expand_to_every_alternative() {
        let mut got = expand_braces("/etc/{a,b}/{x,y}");
        got.sort();
        assert_eq!(got, ["/etc/a/x", "/etc/a/y", "/etc/b/x", "/etc/b/y"]);
    }
}
