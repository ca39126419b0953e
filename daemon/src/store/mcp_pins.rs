//! Pinned MCP tool definitions, per user and server name.
//!
//! The first complete `tools/list` of a server pins each tool's definition (a SHA-256 of its
//! name, description and input schema). Later listings are compared with the pin: a tool whose
//! definition differs is `changed`, a tool the pin never had is `new`. Only `quintctl mcp approve`
//! moves the pin. The table lives in quintd's root-owned database, so an agent running as the
//! user cannot approve its own rug pull by editing a file.

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

/// Descriptions are kept for `quintctl mcp list`, capped: the definition is pinned by hash.
const MAX_DESCRIPTION_CHARS: usize = 500;

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS mcp_tools (
    uid           INTEGER NOT NULL,
    server        TEXT NOT NULL,
    tool          TEXT NOT NULL,
    -- the approved definition; NULL for a tool that appeared after the server was pinned
    pinned_sha256 TEXT,
    -- the definition in the latest listing
    seen_sha256   TEXT NOT NULL,
    description   TEXT NOT NULL,
    first_seen    TEXT NOT NULL,
    last_seen     TEXT NOT NULL,
    changed_at    TEXT,
    -- 1 when the latest complete listing no longer had the tool
    removed       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (uid, server, tool)
);
";

/// One tool of a listing, as the wrapper fingerprinted it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ToolDefinition {
    pub name: String,
    pub sha256: String,
    pub description: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PinState {
    Pinned,
    Changed,
    New,
    Unlisted,
}

impl PinState {
    pub fn as_str(self) -> &'static str {
        match self {
            PinState::Pinned => "pinned",
            PinState::Changed => "changed",
            PinState::New => "new",
            PinState::Unlisted => "unlisted",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ToolPin {
    pub name: String,
    pub state: PinState,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListingReply {
    pub tools: Vec<ToolPin>,
    /// This listing pinned the server (it was never seen before).
    pub first_listing: bool,
    /// Pinned tools the listing no longer has (complete listings only).
    pub removed: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PinnedTool {
    pub name: String,
    pub state: PinState,
    pub description: String,
    pub first_seen: String,
    pub last_seen: String,
    pub changed_at: Option<String>,
    pub removed: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerPins {
    pub server: String,
    pub uid: u32,
    pub tools: Vec<PinnedTool>,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn state_of(pinned: Option<&str>, seen: &str) -> PinState {
    match pinned {
        None => PinState::New,
        Some(pin) if pin == seen => PinState::Pinned,
        Some(_) => PinState::Changed,
    }
}

/// How many tools of the server this user has pinned or seen (0: never listed).
fn known_tools(conn: &Connection, uid: u32, server: &str) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT count(*) FROM mcp_tools WHERE uid = ?1 AND server = ?2",
        params![uid, server],
        |row| row.get(0),
    )
}

/// (pinned, seen) definition hashes of one tool, if it was ever listed.
fn tool_hashes(
    conn: &Connection,
    uid: u32,
    server: &str,
    tool: &str,
) -> rusqlite::Result<Option<(Option<String>, String)>> {
    conn.query_row(
        "SELECT pinned_sha256, seen_sha256 FROM mcp_tools
         WHERE uid = ?1 AND server = ?2 AND tool = ?3",
        params![uid, server, tool],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )
    .optional()
}

fn capped(text: &str) -> String {
    text.chars().take(MAX_DESCRIPTION_CHARS).collect()
}

/// Compares a listing with the pins, pinning everything if the server is new. `complete` is
/// true when the listing was not paginated, so missing tools really are gone.
pub fn check_listing(
    conn: &mut Connection,
    uid: u32,
    server: &str,
    tools: &[ToolDefinition],
    complete: bool,
) -> rusqlite::Result<ListingReply> {
    let tx = conn.transaction()?;
    let first_listing = known_tools(&tx, uid, server)? == 0;
    let at = now();
    let mut reply = ListingReply {
        tools: Vec::with_capacity(tools.len()),
        first_listing,
        removed: Vec::new(),
    };
    for tool in tools {
        let existing = tool_hashes(&tx, uid, server, &tool.name)?;
        let state = match &existing {
            None => {
                let pinned = first_listing.then_some(tool.sha256.as_str());
                tx.execute(
                    "INSERT INTO mcp_tools (uid, server, tool, pinned_sha256, seen_sha256,
                                            description, first_seen, last_seen, changed_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8)",
                    params![
                        uid,
                        server,
                        tool.name,
                        pinned,
                        tool.sha256,
                        capped(&tool.description),
                        at,
                        (!first_listing).then_some(&at),
                    ],
                )?;
                state_of(pinned, &tool.sha256)
            }
            Some((pinned, seen)) => {
                let definition_moved = seen != &tool.sha256;
                tx.execute(
                    "UPDATE mcp_tools SET seen_sha256 = ?4, description = ?5, last_seen = ?6,
                         removed = 0, changed_at = CASE WHEN ?7 THEN ?6 ELSE changed_at END
                     WHERE uid = ?1 AND server = ?2 AND tool = ?3",
                    params![
                        uid,
                        server,
                        tool.name,
                        tool.sha256,
                        capped(&tool.description),
                        at,
                        definition_moved,
                    ],
                )?;
                state_of(pinned.as_deref(), &tool.sha256)
            }
        };
        reply.tools.push(ToolPin {
            name: tool.name.clone(),
            state,
        });
    }
    if complete && !first_listing {
        let listed: std::collections::HashSet<&str> =
            tools.iter().map(|t| t.name.as_str()).collect();
        let mut statement = tx
            .prepare("SELECT tool FROM mcp_tools WHERE uid = ?1 AND server = ?2 AND removed = 0")?;
        let stored: Vec<String> = statement
            .query_map(params![uid, server], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        drop(statement);
        for name in stored.into_iter().filter(|n| !listed.contains(n.as_str())) {
            tx.execute(
                "UPDATE mcp_tools SET removed = 1 WHERE uid = ?1 AND server = ?2 AND tool = ?3",
                params![uid, server, name],
            )?;
            reply.removed.push(name);
        }
    }
    tx.commit()?;
    Ok(reply)
}

/// The pin state of one tool, for a call made without a listing in this session.
pub fn tool_state(
    conn: &Connection,
    uid: u32,
    server: &str,
    tool: &str,
) -> rusqlite::Result<PinState> {
    Ok(match tool_hashes(conn, uid, server, tool)? {
        None => PinState::Unlisted,
        Some((pinned, seen)) => state_of(pinned.as_deref(), &seen),
    })
}

/// Accepts every tool of the server as last listed. Returns how many pins moved; `None` when
/// the server was never seen for this user.
pub fn approve(conn: &mut Connection, uid: u32, server: &str) -> rusqlite::Result<Option<usize>> {
    let tx = conn.transaction()?;
    if known_tools(&tx, uid, server)? == 0 {
        return Ok(None);
    }
    let moved = tx.execute(
        "UPDATE mcp_tools SET pinned_sha256 = seen_sha256
         WHERE uid = ?1 AND server = ?2 AND pinned_sha256 IS NOT seen_sha256",
        params![uid, server],
    )?;
    tx.execute(
        "DELETE FROM mcp_tools WHERE uid = ?1 AND server = ?2 AND removed = 1",
        params![uid, server],
    )?;
    tx.commit()?;
    Ok(Some(moved))
}

/// Every pinned server, of one user or (`None`) of all.
pub fn list(conn: &Connection, uid: Option<u32>) -> rusqlite::Result<Vec<ServerPins>> {
    let mut statement = conn.prepare(
        "SELECT uid, server, tool, pinned_sha256, seen_sha256, description, first_seen,
                last_seen, changed_at, removed
         FROM mcp_tools WHERE ?1 IS NULL OR uid = ?1 ORDER BY uid, server, tool",
    )?;
    let rows = statement.query_map(params![uid], |row| {
        let pinned: Option<String> = row.get(3)?;
        let seen: String = row.get(4)?;
        Ok((
            row.get::<_, u32>(0)?,
            row.get::<_, String>(1)?,
            PinnedTool {
                name: row.get(2)?,
                state: state_of(pinned.as_deref(), &seen),
                description: row.get(5)?,
                first_seen: row.get(6)?,
                last_seen: row.get(7)?,
                changed_at: row.get(8)?,
                removed: row.get::<_, i64>(9)? != 0,
            },
        ))
    })?;
    let mut servers: Vec<ServerPins> = Vec::new();
    for row in rows {
        let (uid, server, tool) = row?;
        match servers.last_mut() {
            Some(last) if last.uid == uid && last.server == server => last.tools.push(tool),
            _ => servers.push(ServerPins {
                server,
                uid,
                tools: vec![tool],
            }),
        }
    }
    Ok(servers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        conn
    }

    fn tool(name: &str, sha: &str) -> ToolDefinition {
        ToolDefinition {
            name: name.into(),
            sha256: sha.into(),
            description: format!("{name} does things"),
        }
    }

    fn states(reply: &ListingReply) -> Vec<(String, PinState)> {
        reply
            .tools
            .iter()
            .map(|t| (t.name.clone(), t.state))
            .collect()
    }

    #[test]
    fn first_listing_pins_later_changes_are_flagged_until_approved() {
        let mut conn = database();
        let first = check_listing(&mut conn, 1000, "weather", &[tool("fetch", "a")], true).unwrap();
        assert!(first.first_listing);
        assert_eq!(states(&first), vec![("fetch".into(), PinState::Pinned)]);

        let listing = [tool("fetch", "b"), tool("delete", "c")];
        let second = check_listing(&mut conn, 1000, "weather", &listing, true).unwrap();
        assert!(!second.first_listing);
        assert_eq!(
            states(&second),
            vec![
                ("fetch".into(), PinState::Changed),
                ("delete".into(), PinState::New)
            ]
        );
        assert_eq!(
            tool_state(&conn, 1000, "weather", "fetch").unwrap(),
            PinState::Changed
        );
        // Another user's pins are their own.
        let other = check_listing(&mut conn, 1001, "weather", &listing, true).unwrap();
        assert!(other.first_listing);

        assert_eq!(approve(&mut conn, 1000, "weather").unwrap(), Some(2));
        let third = check_listing(&mut conn, 1000, "weather", &listing, true).unwrap();
        assert!(third.tools.iter().all(|t| t.state == PinState::Pinned));
        assert_eq!(approve(&mut conn, 1000, "unknown").unwrap(), None);
    }

    #[test]
    fn removed_tools_are_reported_only_for_complete_listings() {
        let mut conn = database();
        let both = [tool("a", "1"), tool("b", "2")];
        check_listing(&mut conn, 7, "s", &both, true).unwrap();
        let page = check_listing(&mut conn, 7, "s", &[tool("a", "1")], false).unwrap();
        assert!(page.removed.is_empty());
        let whole = check_listing(&mut conn, 7, "s", &[tool("a", "1")], true).unwrap();
        assert_eq!(whole.removed, vec!["b".to_string()]);
        let listed = list(&conn, Some(7)).unwrap();
        assert_eq!(listed.len(), 1);
        assert!(listed[0].tools.iter().any(|t| t.name == "b" && t.removed));
        assert_eq!(
            tool_state(&conn, 7, "s", "zzz").unwrap(),
            PinState::Unlisted
        );
    }
}
