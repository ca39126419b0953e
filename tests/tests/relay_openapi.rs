//! `/openapi.json` describes the API, and a bounded schemathesis run against it (PyPI,
//! installed by scripts/test.sh into target/st-venv, or named by QUINT_SCHEMATHESIS) finds no
//! server error and no response that breaks the document: statuses, content types and bodies.

use std::process::Command;

use quint_e2e::relay::Relay;

fn schemathesis() -> String {
    if let Ok(path) = std::env::var("QUINT_SCHEMATHESIS") {
        return path;
    }
    let venv = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../target/st-venv/bin/schemathesis"
    );
    assert!(
        std::path::Path::new(venv).exists(),
        "schemathesis not found at {venv}: scripts/test.sh installs it (python3 -m venv target/st-venv && target/st-venv/bin/pip install 'schemathesis==4.*'), or set QUINT_SCHEMATHESIS"
    );
    venv.to_string()
}

#[test]
fn the_openapi_document_lists_every_endpoint() {
    let relay = Relay::start();
    let doc = relay.call("GET", "/openapi.json", None, None);
    assert_eq!(doc.status, 200);
    let paths = doc.json["paths"].as_object().expect("paths");
    for path in [
        "/healthz",
        "/readyz",
        "/v1/enroll",
        "/v1/ingest",
        "/v1/devices",
        "/v1/devices/{id}",
        "/v1/deploy-tokens",
        "/v1/deploy-tokens/{id}",
        "/v1/actions",
        "/v1/sessions",
        "/v1/agents",
        "/v1/alerts",
        "/v1/alerts/{id}",
        "/v1/policy",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} missing from /openapi.json"
        );
    }
    assert!(doc.json["components"]["securitySchemes"]["api_key"].is_object());
}

#[test]
fn schemathesis_finds_no_server_errors_or_schema_violations() {
    let relay = Relay::start_with(&["--rate-limit", "100000", "--rate-burst", "100000"]);
    let tenant = relay.create_tenant("Fuzzed");
    let device = relay.enroll(&tenant, "laptop");
    let output = Command::new(schemathesis())
        .args([
            "run",
            &format!("{}/openapi.json", relay.base_url),
            "-H",
            &format!("Authorization: Bearer {}", tenant.api_key),
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--max-examples",
            "25",
            "--workers",
            "1",
            "--seed",
            "20261127",
        ])
        .output()
        .expect("run schemathesis");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{report}\n{}\nrelay log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        relay.log()
    );
    assert!(report.contains("passed"), "{report}");
    let _ = device;
}
