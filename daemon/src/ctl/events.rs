//! `quintctl events`: recorded actions, newest last; `--follow` streams new ones.

use std::io::Write;

use crate::client::DaemonClient;
use crate::config::Config;
use crate::protocol::Request;
use crate::store::outbox::{EventFilter, StoredEvent};

pub fn run(config: &Config, filter: EventFilter, follow: bool, json: bool) -> i32 {
    let client = DaemonClient::new(&config.socket, std::time::Duration::from_secs(10));
    let print = |stored: &StoredEvent| {
        let line = if json {
            serde_json::to_string(stored).unwrap_or_default()
        } else {
            human_line(stored)
        };
        let mut stdout = std::io::stdout().lock();
        // A closed pipe (`| head`) ends the listing quietly.
        writeln!(stdout, "{line}")
            .and_then(|_| stdout.flush())
            .is_ok()
    };
    let result = if follow {
        client.stream::<StoredEvent>(&Request::Follow { filter }, |stored| print(&stored))
    } else {
        client
            .call::<Vec<StoredEvent>>(&Request::Events { filter })
            .map(|events| {
                for stored in &events {
                    if !print(stored) {
                        break;
                    }
                }
            })
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("quintctl: {e}");
            1
        }
    }
}

fn human_line(stored: &StoredEvent) -> String {
    let event = &stored.event;
    let text = |key: &str| event.get(key).and_then(|v| v.as_str()).unwrap_or("");
    let timestamp = text("timestamp");
    let time = timestamp.get(11..23).unwrap_or(timestamp);
    let rules = event
        .get("rule_ids")
        .and_then(|v| v.as_array())
        .filter(|ids| !ids.is_empty())
        .map(|ids| {
            format!(
                "  [{}]",
                ids.iter()
                    .filter_map(|v| v.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
        .unwrap_or_default();
    let target: String = text("target").chars().take(80).collect();
    format!(
        "{:>6} {} {:<11} {:<5} {:<13} {:<10} {}{}",
        stored.seq,
        time,
        text("platform"),
        text("decision"),
        text("action_type"),
        text("tool_name"),
        target,
        rules
    )
}
