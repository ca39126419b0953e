//! The paths rules protect, for collectors that must know where to look before any event
//! exists: fanotify marks directories and files, not patterns.

use super::compile::{parse_layers, PolicyError, PolicySource};
use super::spec::Condition;
use crate::envelope::Decision;

/// The path patterns of every rule that denies or asks (the verdicts an open can be refused
/// or questioned for), as written: `~/…`, `**/…` and absolute globs. Patterns under `not` are
/// left out: they say where a rule does not hold.
pub fn protected_path_patterns(sources: &[PolicySource]) -> Result<Vec<String>, Vec<PolicyError>> {
    let mut patterns = Vec::new();
    for rule in parse_layers(sources)? {
        if matches!(rule.spec.verdict, Decision::Deny | Decision::Ask) {
            collect(&rule.spec.condition, &mut patterns);
        }
    }
    patterns.sort();
    patterns.dedup();
    Ok(patterns)
}

fn collect(condition: &Condition, out: &mut Vec<String>) {
    out.extend(condition.path.iter().cloned());
    for child in condition.any.iter().chain(&condition.all) {
        collect(child, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deny_and_ask_paths_of_the_default_pack_are_listed_and_not_ones_are_not() {
        let patterns = protected_path_patterns(&crate::default_pack::default_sources()).unwrap();
        assert!(patterns.contains(&"~/.ssh/id_*".to_string()));
        assert!(patterns.contains(&"~/.claude/settings.json".to_string()));
        // alert-only rule (persistence.git-hooks) and the exception under `not`.
        assert!(!patterns.contains(&"**/.git/hooks/*".to_string()));
        assert!(!patterns.contains(&"**/*.pub".to_string()));
    }
}
