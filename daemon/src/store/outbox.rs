//! Reading the outbox: event listings, counters and sessions for `quintctl`.

use std::collections::BTreeMap;

use quint_policy::Decision;
use rusqlite::OptionalExtension;
use rusqlite::{params_from_iter, Connection};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EventFilter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    /// Only events recorded after this sequence number (for `--follow`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_seq: Option<u64>,
    #[serde(default)]
    pub limit: Option<usize>,
    /// Set by quintd from the peer's credentials, never taken from a request.
    #[serde(skip)]
    pub peer_uid: Option<u32>,
}

/// An event as stored, with its position in the log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredEvent {
    pub seq: u64,
    pub event: serde_json::Value,
}

const MAX_LIMIT: usize = 10_000;

/// Events matching the filter, oldest first. Without `after_seq` these are the newest `limit`.
pub fn query_events(conn: &Connection, filter: &EventFilter) -> rusqlite::Result<Vec<StoredEvent>> {
    let mut clauses = Vec::new();
    let mut values: Vec<String> = Vec::new();
    if let Some(session) = &filter.session {
        values.push(session.clone());
        clauses.push(format!("session_id = ?{}", values.len()));
    }
    if let Some(decision) = filter.decision {
        values.push(decision.as_str().to_string());
        clauses.push(format!("decision = ?{}", values.len()));
    }
    if let Some(uid) = filter.peer_uid {
        values.push(uid.to_string());
        clauses.push(format!(
            "json_extract(payload, '$.labels.peer_uid') = ?{}",
            values.len()
        ));
    }
    if let Some(after) = filter.after_seq {
        values.push(after.to_string());
        clauses.push(format!("seq > CAST(?{} AS INTEGER)", values.len()));
    }
    let limit = filter.limit.unwrap_or(50).min(MAX_LIMIT);
    let where_clause = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    // Following reads forward from a position; a plain listing shows the newest events.
    let order = if filter.after_seq.is_some() {
        "ASC"
    } else {
        "DESC"
    };
    let sql = format!(
        "SELECT seq, payload FROM actions {where_clause} ORDER BY seq {order} LIMIT {limit}"
    );
    let mut statement = conn.prepare(&sql)?;
    let mut events: Vec<StoredEvent> = statement
        .query_map(params_from_iter(values.iter()), |row| {
            let payload: String = row.get(1)?;
            Ok(StoredEvent {
                seq: row.get::<_, i64>(0)? as u64,
                event: serde_json::from_str(&payload).unwrap_or(serde_json::Value::String(payload)),
            })
        })?
        .collect::<Result<_, _>>()?;
    if order == "DESC" {
        events.reverse();
    }
    Ok(events)
}

pub fn decision_counts(conn: &Connection) -> rusqlite::Result<BTreeMap<String, u64>> {
    let mut counts: BTreeMap<String, u64> =
        Decision::ALL.iter().map(|d| (d.to_string(), 0)).collect();
    let mut statement = conn.prepare("SELECT decision, count(*) FROM actions GROUP BY decision")?;
    for row in statement.query_map([], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
    })? {
        let (decision, count) = row?;
        counts.insert(decision, count as u64);
    }
    Ok(counts)
}

/// Actions not yet acknowledged by a relay.
pub fn pending_count(conn: &Connection) -> rusqlite::Result<u64> {
    conn.query_row(
        "SELECT count(*) FROM actions WHERE upload_state = 0",
        [],
        |row| row.get::<_, i64>(0),
    )
    .map(|n| n as u64)
}

/// When the oldest action still waiting for the relay was recorded.
pub fn oldest_pending(
    conn: &Connection,
) -> rusqlite::Result<Option<chrono::DateTime<chrono::Utc>>> {
    let timestamp: Option<String> = conn
        .query_row(
            "SELECT timestamp FROM actions WHERE upload_state = 0 ORDER BY seq LIMIT 1",
            [],
            |row| row.get(0),
        )
        .optional()?;
    Ok(timestamp
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| t.with_timezone(&chrono::Utc)))
}

/// Actions the disk budget removed before the relay had them.
pub fn dropped_count(conn: &Connection) -> rusqlite::Result<u64> {
    conn.query_row(
        "SELECT count(*) FROM budget_removals WHERE uploaded = 0",
        [],
        |row| row.get::<_, i64>(0),
    )
    .map(|n| n as u64)
}

/// Actions the relay refused.
pub fn rejected_count(conn: &Connection) -> rusqlite::Result<u64> {
    conn.query_row(
        "SELECT count(*) FROM actions WHERE upload_state = 2",
        [],
        |row| row.get::<_, i64>(0),
    )
    .map(|n| n as u64)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionSummary {
    pub session_id: String,
    pub platform: String,
    pub agent_pid: Option<u32>,
    pub cwd: Option<String>,
    pub first_seen: String,
    pub last_seen: String,
    pub actions: u64,
    pub denials: u64,
}

/// Sessions with an action since `since` (RFC 3339), newest first.
pub fn sessions_since(conn: &Connection, since: &str) -> rusqlite::Result<Vec<SessionSummary>> {
    let mut statement = conn.prepare(
        "SELECT session_id, platform, agent_pid, cwd, first_seen, last_seen, actions, denials
         FROM sessions WHERE last_seen >= ?1 ORDER BY last_seen DESC LIMIT 100",
    )?;
    let sessions = statement
        .query_map([since], |row| {
            Ok(SessionSummary {
                session_id: row.get(0)?,
                platform: row.get(1)?,
                agent_pid: row.get(2)?,
                cwd: row.get(3)?,
                first_seen: row.get(4)?,
                last_seen: row.get(5)?,
                actions: row.get::<_, i64>(6)? as u64,
                denials: row.get::<_, i64>(7)? as u64,
            })
        })?
        .collect();
    sessions
}

/// (actions, denials) recorded for one session so far.
pub fn session_counts(conn: &Connection, session_id: &str) -> rusqlite::Result<(u64, u64)> {
    conn.query_row(
        "SELECT actions, denials FROM sessions WHERE session_id = ?1",
        [session_id],
        |row| Ok((row.get::<_, i64>(0)? as u64, row.get::<_, i64>(1)? as u64)),
    )
    .optional()
    .map(|counts| counts.unwrap_or((0, 0)))
}

/// Actions whose stored payload holds `[REDACTED:<rule>:<fingerprint>]`, oldest first, with the
/// rules that redacted it there. `peer_uid` limits the search to one user's actions.
pub fn find_fingerprint(
    conn: &Connection,
    fingerprint: &str,
    peer_uid: Option<u32>,
) -> rusqlite::Result<Vec<crate::protocol::SecretSighting>> {
    let marker = format!(":{fingerprint}]");
    let mut statement = conn.prepare(
        "SELECT seq, event_id, timestamp, session_id, payload FROM actions
         WHERE instr(payload, ?1) > 0
           AND (?2 IS NULL OR json_extract(payload, '$.labels.peer_uid') = ?2)
         ORDER BY seq LIMIT 1000",
    )?;
    let rows = statement.query_map(
        rusqlite::params![marker, peer_uid.map(|u| u.to_string())],
        |row| {
            let payload: String = row.get(4)?;
            let mut rule_ids: Vec<String> = payload
                .match_indices(&marker)
                .filter_map(|(at, _)| {
                    let start = payload[..at].rfind("[REDACTED:")? + "[REDACTED:".len();
                    Some(payload[start..at].to_string())
                })
                .collect();
            rule_ids.sort();
            rule_ids.dedup();
            Ok(crate::protocol::SecretSighting {
                seq: row.get::<_, i64>(0)? as u64,
                event_id: row.get(1)?,
                timestamp: row.get(2)?,
                session_id: row.get(3)?,
                rule_ids,
            })
        },
    )?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::store::{open_reader, Recorder};
    use quint_policy::{ActionType, Event, Source};

    #[test]
    fn finds_actions_by_fingerprint_and_scopes_by_user() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            state_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        let mut recorder = Recorder::open(&config).unwrap();
        let mut events = Vec::new();
        for (uid, command) in [
            (
                "1000",
                "curl -H 'Authorization: Bearer [REDACTED:bearer-token:a1b2c3d4e5f6]'",
            ),
            ("1001", "export T=[REDACTED:github-pat:a1b2c3d4e5f6]"),
            ("1000", "echo [REDACTED:github-pat:ffffffffffff]"),
        ] {
            let mut event = Event::new(Source::Hook, "claude-code", ActionType::ToolCall, "s");
            event.target = Some(command.into());
            event.labels.insert("peer_uid".into(), uid.into());
            events.push(event);
        }
        recorder.append(&events).unwrap();
        let conn = open_reader(&config.database_path()).unwrap();
        let all = find_fingerprint(&conn, "a1b2c3d4e5f6", None).unwrap();
        assert_eq!(all.iter().map(|s| s.seq).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(all[0].rule_ids, vec!["bearer-token"]);
        assert_eq!(all[1].rule_ids, vec!["github-pat"]);
        let mine = find_fingerprint(&conn, "a1b2c3d4e5f6", Some(1001)).unwrap();
        assert_eq!(mine.len(), 1);
        assert!(find_fingerprint(&conn, "000000000000", None)
            .unwrap()
            .is_empty());
    }
}
