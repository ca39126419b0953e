//! The paths rules protect, for collectors that must know where to look before any event
//! exists: fanotify marks directories and files, not patterns.

use super::compile::{parse_layers, PolicyError, PolicySource};
use super::spec::Condition;
use crate::envelope::{ActionType, Decision};

/// A path pattern, as written (`~/…`, `**/…` or an absolute glob), that a deny or ask rule
/// names, and the actions it names it for: an open of a path only writes are refused on is
/// not a sensitive read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectedPath {
    pub pattern: String,
    /// Empty: the rule names no action, so every action.
    pub actions: Vec<ActionType>,
}

impl ProtectedPath {
    /// Whether the rules name this pattern for `action`.
    pub fn protects(&self, action: ActionType) -> bool {
        self.actions.is_empty() || self.actions.contains(&action)
    }
}

/// The path patterns of every rule that denies or asks (the verdicts an open can be refused
/// or questioned for), one entry per pattern with the union of the actions they are named
/// for. Patterns under `not` are left out: they say where a rule does not hold.
pub fn protected_paths(sources: &[PolicySource]) -> Result<Vec<ProtectedPath>, Vec<PolicyError>> {
    let mut found = Vec::new();
    for rule in parse_layers(sources)? {
        if matches!(rule.spec.verdict, Decision::Deny | Decision::Ask) {
            collect(&rule.spec.condition, &[], &mut found);
        }
    }
    found.sort_by(|a: &ProtectedPath, b| a.pattern.cmp(&b.pattern));
    let mut merged: Vec<ProtectedPath> = Vec::new();
    for path in found {
        match merged.last_mut() {
            Some(last) if last.pattern == path.pattern => {
                if last.actions.is_empty() || path.actions.is_empty() {
                    last.actions.clear();
                } else {
                    last.actions.extend(path.actions);
                    last.actions.sort_by_key(|a| a.bit());
                    last.actions.dedup();
                }
            }
            _ => merged.push(path),
        }
    }
    Ok(merged)
}

/// A condition's actions hold for its paths and, unless they name their own, its children's;
/// in an `all`, an action-only sibling sets them too.
fn collect(condition: &Condition, inherited: &[ActionType], out: &mut Vec<ProtectedPath>) {
    let actions = if condition.action.is_empty() {
        inherited
    } else {
        &condition.action
    };
    out.extend(condition.path.iter().map(|pattern| ProtectedPath {
        pattern: pattern.clone(),
        actions: actions.to_vec(),
    }));
    let all_actions = condition
        .all
        .iter()
        .find(|c| !c.action.is_empty() && c.path.is_empty())
        .map_or(actions, |c| &c.action[..]);
    for child in &condition.any {
        collect(child, actions, out);
    }
    for child in &condition.all {
        collect(child, all_actions, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deny_and_ask_paths_of_the_default_pack_are_listed_with_their_actions() {
        let paths = protected_paths(&crate::default_pack::default_sources()).unwrap();
        let find = |pattern: &str| paths.iter().find(|p| p.pattern == pattern);
        let keys = find("~/.ssh/id_*").expect("ssh keys");
        assert!(keys.protects(ActionType::FileRead));
        assert!(find("~/.claude/settings.json").is_some());
        // Only changing the account database is refused; reading it is not.
        let passwd = find("/etc/passwd").expect("/etc/passwd");
        assert!(passwd.protects(ActionType::FileWrite));
        assert!(!passwd.protects(ActionType::FileRead), "{passwd:?}");
        // alert-only rule (persistence.git-hooks) and the exception under `not`.
        assert!(find("**/.git/hooks/*").is_none());
        assert!(find("**/*.pub").is_none());
    }

    #[test]
    fn actions_are_inherited_and_merged_per_pattern() {
        let source = PolicySource {
            name: "test.yaml".into(),
            text: r#"
rules:
  - id: t.one
    description: read and write
    match:
      any:
        - action: [file.read]
          path: ["/srv/a"]
        - all:
            - action: [file.write]
            - path: ["/srv/a", "/srv/b"]
    verdict: deny
    severity: high
  - id: t.two
    description: any action
    match:
      path: ["/srv/c"]
    verdict: ask
    severity: low
"#
            .into(),
        };
        let paths = protected_paths(&[source]).unwrap();
        assert_eq!(
            paths,
            vec![
                ProtectedPath {
                    pattern: "/srv/a".into(),
                    actions: vec![ActionType::FileRead, ActionType::FileWrite],
                },
                ProtectedPath {
                    pattern: "/srv/b".into(),
                    actions: vec![ActionType::FileWrite],
                },
                ProtectedPath {
                    pattern: "/srv/c".into(),
                    actions: vec![],
                },
            ]
        );
    }
}
