//! The built-in default pack, compiled into every binary so policy works with no files at all.

use crate::rules::compile::PolicySource;

macro_rules! pack {
    ($($file:literal),+ $(,)?) => {
        &[$((concat!("builtin:", $file), include_str!(concat!("../rules/default/", $file)))),+]
    };
}

/// (name, YAML) of every file of the default pack.
pub const DEFAULT_PACK: &[(&str, &str)] = pack!(
    "credentials.yaml",
    "destructive.yaml",
    "download-exec.yaml",
    "reverse-shell.yaml",
    "exfiltration.yaml",
    "persistence.yaml",
    "privilege.yaml",
    "tamper.yaml",
    "mcp.yaml",
);

pub fn default_sources() -> Vec<PolicySource> {
    DEFAULT_PACK
        .iter()
        .map(|(name, text)| PolicySource {
            name: name.to_string(),
            text: text.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::compile::Policy;
    use crate::rules::testing::run_rule_tests;

    #[test]
    fn default_pack_compiles_and_every_rule_passes_its_own_tests() {
        let sources = default_sources();
        let policy = Policy::compile(&sources).unwrap_or_else(|errors| {
            panic!(
                "{}",
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        });
        assert!(
            policy.rules().len() >= 40,
            "only {} rules",
            policy.rules().len()
        );
        let report = run_rule_tests(&sources).unwrap();
        let failures: Vec<String> = report
            .failures
            .iter()
            .map(|f| format!("{}:{:?} {}: {}", f.file, f.line, f.rule_id, f.message))
            .collect();
        assert!(
            failures.is_empty(),
            "{} failures:\n{}",
            failures.len(),
            failures.join("\n")
        );
        assert!(
            report.incomplete.is_empty(),
            "rules without allow and verdict cases: {:?}",
            report.incomplete
        );
    }
}
