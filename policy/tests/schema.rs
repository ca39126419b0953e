//! The JSON Schema shipped for editors (docs/policy-schema.json) must accept every rule file the
//! engine accepts, starting with the default pack, and reject what the engine rejects.

use quint_policy::default_pack::DEFAULT_PACK;

fn validator() -> jsonschema::Validator {
    let text = include_str!("../../docs/policy-schema.json");
    let schema: serde_json::Value = serde_json::from_str(text).expect("schema is JSON");
    jsonschema::validator_for(&schema).expect("schema compiles")
}

#[test]
fn default_pack_validates_against_the_published_schema() {
    let validator = validator();
    for (name, text) in DEFAULT_PACK {
        let document: serde_json::Value = serde_yaml::from_str(text).expect("YAML");
        let errors: Vec<String> = validator
            .iter_errors(&document)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{name}: {errors:#?}");
    }
}

#[test]
fn schema_rejects_what_the_engine_rejects() {
    let validator = validator();
    for bad in [
        "rules: [{id: a.b, description: x, match: {action: file.read}, verdict: block, severity: low}]",
        "rules: [{id: A B, description: x, match: {action: file.read}, verdict: deny, severity: low}]",
        "rules: [{id: a.b, description: x, match: {}, verdict: deny, severity: low}]",
        "rules: [{id: a.b, description: x, match: {paths: ['x']}, verdict: deny, severity: low}]",
    ] {
        let document: serde_json::Value = serde_yaml::from_str(bad).unwrap();
        assert!(!validator.is_valid(&document), "schema accepted {bad}");
        let source = quint_policy::PolicySource { name: "bad.yaml".into(), text: bad.into() };
        assert!(quint_policy::Policy::compile(&[source]).is_err(), "engine accepted {bad}");
    }
}
