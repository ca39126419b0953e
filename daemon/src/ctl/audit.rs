//! `quintctl audit verify`: walks the hash chain and the signed checkpoints.

use super::output::print_json;
use crate::config::Config;
use crate::store::{audit, open_reader};

pub fn verify(config: &Config, json: bool) -> i32 {
    let report = open_reader(&config.database_path()).and_then(|conn| {
        let key = std::fs::read_to_string(config.audit_public_key_path()).map_err(|e| {
            anyhow::anyhow!(
                "cannot read {}: {e}",
                config.audit_public_key_path().display()
            )
        })?;
        audit::verify(&conn, &key)
    });
    let report = match report {
        Ok(report) => report,
        Err(e) => {
            eprintln!("quintctl: cannot verify the audit log: {e:#}");
            return 2;
        }
    };
    if json {
        print_json(&report);
    } else if report.ok() {
        println!(
            "audit log OK: {} records, {} signed checkpoints (last at record {})",
            report.records,
            report.checkpoints,
            report
                .last_checkpoint_seq
                .map_or("none".into(), |s| s.to_string())
        );
    } else {
        let first = &report.problems[0];
        println!(
            "audit log ALTERED: first bad record #{}{}: {}",
            first.seq,
            first
                .event_id
                .as_ref()
                .map(|id| format!(" (event {id})"))
                .unwrap_or_default(),
            first.message
        );
        for problem in report.problems.iter().skip(1).take(20) {
            println!("  also #{}: {}", problem.seq, problem.message);
        }
    }
    if report.ok() {
        0
    } else {
        1
    }
}
