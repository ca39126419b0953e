//! How quintctl prints: JSON for scripts (`--json`), short aligned text for people.

use serde::Serialize;

pub fn print_json(value: &impl Serialize) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("quintctl: cannot encode JSON: {e}"),
    }
}

/// `key   value` lines; keys are padded to one width across calls so blocks line up.
pub fn print_fields(fields: &[(&str, String)]) {
    const KEY_WIDTH: usize = 10;
    let width = fields
        .iter()
        .map(|(k, _)| k.len())
        .max()
        .unwrap_or(0)
        .max(KEY_WIDTH);
    for (key, value) in fields {
        println!("  {key:<width$}  {value}");
    }
}

pub fn human_duration(seconds: u64) -> String {
    match seconds {
        0..=59 => format!("{seconds}s"),
        60..=3599 => format!("{}m{:02}s", seconds / 60, seconds % 60),
        3600..=86399 => format!("{}h{:02}m", seconds / 3600, (seconds % 3600) / 60),
        _ => format!("{}d{:02}h", seconds / 86400, (seconds % 86400) / 3600),
    }
}
