//! Redaction in quintd: the per-device fingerprint key, and scrubbing an event before it is
//! written anywhere (SQLite, logs, the relay).

use std::fs;
use std::path::Path;

use anyhow::Context;
use quint_policy::redact::Redactor;
use quint_policy::shape::{cap_field, shape_arguments};
use quint_policy::Event;
use ring::rand::SecureRandom;

/// The key fingerprints are computed under: 32 random bytes, created on first start, root-only.
pub fn load_or_create_key(path: &Path) -> anyhow::Result<Vec<u8>> {
    match fs::read(path) {
        Ok(key) if key.len() == 32 => Ok(key),
        Ok(key) => anyhow::bail!(
            "{} holds {} bytes, expected a 32-byte key",
            path.display(),
            key.len()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = vec![0u8; 32];
            ring::rand::SystemRandom::new()
                .fill(&mut key)
                .map_err(|_| anyhow::anyhow!("no randomness for the redaction key"))?;
            crate::key_file::create(path, &key)?;
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// The built-in rules under a random key nobody keeps, for redacting where the device key
/// cannot be read (a user's CLI while quintd is down): fingerprints from it match nothing.
pub fn one_off_redactor() -> anyhow::Result<Redactor> {
    let mut key = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| anyhow::anyhow!("no randomness for a one-off redaction key"))?;
    Redactor::builtin(&key).map_err(|errors| {
        let listed: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow::anyhow!(
            "built-in redaction rules do not compile:\n{}",
            listed.join("\n")
        )
    })
}

/// The one gate every event passes before the writer: arguments shaped for storage, the target
/// capped, then every kept string scrubbed. Returns how many secrets were replaced.
pub fn prepare_for_storage(redactor: &Redactor, event: &mut Event) -> usize {
    event.arguments = shape_arguments(&event.arguments);
    event.target = event.target.as_deref().map(cap_field);
    scrub_event(redactor, event)
}

/// Replaces every secret in the event's strings that came from the client: arguments, target,
/// session id, tool name, platform, and label keys and values. Returns how many were found.
pub fn scrub_event(redactor: &Redactor, event: &mut Event) -> usize {
    let mut found = 0;
    let mut scrub = |text: &str| redactor.redact_counted(text, &mut found);
    if let Some(target) = &event.target {
        event.target = Some(scrub(target));
    }
    if let Some(tool) = &event.tool_name {
        event.tool_name = Some(scrub(tool));
    }
    event.session_id = scrub(&event.session_id);
    event.platform = scrub(&event.platform);
    event.labels = std::mem::take(&mut event.labels)
        .into_iter()
        .map(|(key, value)| (scrub(&key), scrub(&value)))
        .collect();
    let (arguments, in_arguments) = redactor.redact_json(&event.arguments);
    event.arguments = arguments;
    found + in_arguments
}

#[cfg(test)]
mod tests {
    use super::*;
    use quint_policy::{ActionType, Source};

    const RULES: &str = r#"
rules:
  - id: test-token
    family: test
    description: a test token
    keywords: ["tok_"]
    regex: '\b(tok_[A-Za-z0-9]{20})\b'
"#;

    #[test]
    fn every_kept_string_is_scrubbed_and_the_key_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let key_path = dir.path().join("redaction.key");
        let key = load_or_create_key(&key_path).unwrap();
        assert_eq!(
            load_or_create_key(&key_path).unwrap(),
            key,
            "the key survives restarts"
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&key_path).unwrap().permissions().mode() & 0o777,
            0o600
        );

        let redactor = Redactor::compile(&[("t.yaml", RULES)], &key).unwrap();
        let secret = "tok_abcdefghij0123456789";
        let mut event = Event::new(Source::Hook, "claude-code", ActionType::ToolCall, "s");
        event.target = Some(format!("curl -H 'X: {secret}' https://x.example"));
        event.arguments = serde_json::json!({"command": format!("curl -H 'X: {secret}'"), "nested": [{"v": secret}]});
        event.labels.insert("cwd".into(), format!("/tmp/{secret}"));
        event.session_id = format!("session-{secret}");
        assert_eq!(scrub_event(&redactor, &mut event), 5);
        let stored = serde_json::to_string(&event).unwrap();
        assert!(!stored.contains(secret), "{stored}");
        assert!(stored.contains(&format!(
            "[REDACTED:test-token:{}]",
            redactor.fingerprint(secret)
        )));
    }
}
