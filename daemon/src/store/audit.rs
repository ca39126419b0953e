//! The tamper-evident audit log: every recorded action gets a record holding the SHA-256 of its
//! payload and of the previous record, and every so often an Ed25519-signed checkpoint of the
//! chain head. Editing a payload, a record, or deleting any record breaks a hash or a signature;
//! `verify` names the first record where that happens.

use std::fs;
use std::path::Path;

use anyhow::{bail, Context};
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use sha2::{Digest, Sha256};

const CHECKPOINT_CONTEXT: &[u8] = b"quint-audit-checkpoint-v1";
pub const GENESIS: [u8; 32] = [0; 32];

/// The newest record of the chain.
#[derive(Debug, Clone, Copy)]
pub struct ChainHead {
    pub seq: u64,
    pub hash: [u8; 32],
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// hash(n) = SHA-256(hash(n-1) ‖ n ‖ event_id ‖ SHA-256(payload)).
pub fn record_hash(
    prev: &[u8; 32],
    seq: u64,
    event_id: &str,
    payload_sha256: &[u8; 32],
) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(prev);
    hasher.update(seq.to_be_bytes());
    hasher.update(event_id.as_bytes());
    hasher.update(payload_sha256);
    hasher.finalize().into()
}

fn checkpoint_message(seq: u64, hash: &[u8; 32]) -> Vec<u8> {
    let mut message = CHECKPOINT_CONTEXT.to_vec();
    message.extend_from_slice(&seq.to_be_bytes());
    message.extend_from_slice(hash);
    message
}

pub fn read_head(conn: &Connection) -> rusqlite::Result<ChainHead> {
    let head = conn
        .query_row(
            "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
            [],
            |row| Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?)),
        )
        .optional()?;
    Ok(match head {
        Some((seq, hash)) => ChainHead {
            seq: seq as u64,
            hash: decode_hash(&hash).unwrap_or(GENESIS),
        },
        None => ChainHead {
            seq: 0,
            hash: GENESIS,
        },
    })
}

fn decode_hash(text: &str) -> Option<[u8; 32]> {
    hex::decode(text).ok()?.try_into().ok()
}

/// Signs checkpoints with the device's audit key, kept root-only in the state dir.
pub struct AuditSigner {
    key: Ed25519KeyPair,
}

impl AuditSigner {
    /// Loads the signing key, creating it (mode 0600) and its public half on first start.
    pub fn load_or_create(key_path: &Path, public_path: &Path) -> anyhow::Result<AuditSigner> {
        let pkcs8 = match fs::read(key_path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let generated = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
                    .map_err(|_| anyhow::anyhow!("cannot generate the audit signing key"))?;
                crate::key_file::create(key_path, generated.as_ref())?;
                generated.as_ref().to_vec()
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", key_path.display())),
        };
        let key = Ed25519KeyPair::from_pkcs8(&pkcs8)
            .map_err(|_| anyhow::anyhow!("{} is not an Ed25519 PKCS#8 key", key_path.display()))?;
        let public_hex = hex::encode(key.public_key().as_ref());
        if fs::read_to_string(public_path)
            .map(|t| t.trim() != public_hex)
            .unwrap_or(true)
        {
            fs::write(public_path, format!("{public_hex}\n"))
                .with_context(|| format!("writing {}", public_path.display()))?;
        }
        Ok(AuditSigner { key })
    }

    pub fn checkpoint(&self, conn: &Connection, head: ChainHead) -> rusqlite::Result<()> {
        if head.seq == 0 {
            return Ok(());
        }
        let signature = self.key.sign(&checkpoint_message(head.seq, &head.hash));
        conn.execute(
            "INSERT OR REPLACE INTO audit_checkpoints (seq, hash, signed_at, signature) VALUES (?1, ?2, ?3, ?4)",
            params![
                head.seq as i64,
                hex::encode(head.hash),
                chrono::Utc::now().to_rfc3339(),
                hex::encode(signature.as_ref())
            ],
        )?;
        Ok(())
    }
}

/// The first problem `verify` found.
#[derive(Debug, Clone, Serialize)]
pub struct AuditProblem {
    pub seq: u64,
    pub event_id: Option<String>,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub records: u64,
    pub checkpoints: u64,
    pub last_checkpoint_seq: Option<u64>,
    /// Actions removed by the outbox's disk budget (allow decisions only), each on record.
    pub removed_by_budget: u64,
    pub problems: Vec<AuditProblem>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Walks the whole chain and every checkpoint. Problems are reported in record order.
pub fn verify(conn: &Connection, public_key_hex: &str) -> anyhow::Result<VerifyReport> {
    let public_key = hex::decode(public_key_hex.trim()).context("audit public key is not hex")?;
    if public_key.len() != 32 {
        bail!("audit public key must be 32 bytes");
    }
    let mut problems = Vec::new();
    let mut expected_seq = 1u64;
    let mut prev = GENESIS;
    let mut hashes = std::collections::HashMap::new();
    let mut budget_removed = 0;

    let mut statement = conn.prepare(
        "SELECT a.seq, a.event_id, a.payload_sha256, a.prev_hash, a.hash,
                x.event_id, x.decision, x.payload,
                x.session_id, x.platform, x.action_type, x.risk_score, x.timestamp,
                d.event_id
         FROM audit a LEFT JOIN actions x ON x.seq = a.seq
              LEFT JOIN budget_removals d ON d.seq = a.seq ORDER BY a.seq",
    )?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let seq = row.get::<_, i64>(0)? as u64;
        let event_id: String = row.get(1)?;
        let payload_sha: String = row.get(2)?;
        let prev_hash: String = row.get(3)?;
        let hash: String = row.get(4)?;
        let action_event_id: Option<String> = row.get(5)?;
        let action_decision: Option<String> = row.get(6)?;
        let payload: Option<String> = row.get(7)?;
        let columns = IndexedColumns {
            decision: action_decision,
            session_id: row.get(8)?,
            platform: row.get(9)?,
            action_type: row.get(10)?,
            risk_score: row.get(11)?,
            timestamp: row.get(12)?,
        };
        let problem = |message: String| AuditProblem {
            seq,
            event_id: Some(event_id.clone()),
            message,
        };

        if seq != expected_seq {
            problems.push(problem(format!(
                "records {expected_seq}..{} are missing (deleted)",
                seq.saturating_sub(1)
            )));
        }
        if decode_hash(&prev_hash) != Some(prev) {
            problems.push(problem(
                "prev_hash does not match the previous record (chain broken)".into(),
            ));
        }
        let computed = decode_hash(&payload_sha)
            .map(|p| record_hash(&prev_hash_or(&prev_hash, prev), seq, &event_id, &p));
        if computed.is_none() || computed != decode_hash(&hash) {
            problems.push(problem(
                "record hash does not match its contents (record edited)".into(),
            ));
        }
        let removed_by_budget: Option<String> = row.get(13)?;
        match (&payload, &action_event_id) {
            (None, _) if removed_by_budget.as_deref() == Some(event_id.as_str()) => {
                budget_removed += 1;
            }
            (None, _) => problems.push(problem("the action for this record was deleted".into())),
            (Some(payload), Some(action_id)) => {
                if hex::encode(sha256(payload.as_bytes())) != payload_sha {
                    problems.push(problem(
                        "action payload does not match its audit hash (action edited)".into(),
                    ));
                } else if action_id != &event_id || !columns.match_payload(payload) {
                    problems.push(problem(
                        "action columns do not match its payload (action edited)".into(),
                    ));
                }
            }
            (Some(_), None) => problems.push(problem("action row has no event id".into())),
        }
        prev = decode_hash(&hash).unwrap_or(GENESIS);
        hashes.insert(seq, hash);
        expected_seq = seq + 1;
    }
    let records = expected_seq - 1;

    let orphans: Vec<(i64, String)> = conn
        .prepare("SELECT seq, event_id FROM actions WHERE seq NOT IN (SELECT seq FROM audit) ORDER BY seq")?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (seq, event_id) in orphans {
        problems.push(AuditProblem {
            seq: seq as u64,
            event_id: Some(event_id),
            message: "action has no audit record (inserted outside quintd)".into(),
        });
    }

    let verifier = UnparsedPublicKey::new(&ED25519, public_key);
    let mut checkpoints = 0;
    let mut last_checkpoint_seq = None;
    let mut statement =
        conn.prepare("SELECT seq, hash, signature FROM audit_checkpoints ORDER BY seq")?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        checkpoints += 1;
        let seq = row.get::<_, i64>(0)? as u64;
        let hash: String = row.get(1)?;
        let signature: String = row.get(2)?;
        last_checkpoint_seq = Some(seq);
        let problem = |message: String| AuditProblem {
            seq,
            event_id: None,
            message,
        };
        let signed = decode_hash(&hash)
            .zip(hex::decode(&signature).ok())
            .is_some_and(|(h, sig)| verifier.verify(&checkpoint_message(seq, &h), &sig).is_ok());
        if !signed {
            problems.push(problem(format!(
                "checkpoint at record {seq} has a bad signature"
            )));
        } else if seq > records {
            problems.push(problem(format!(
                "checkpoint at record {seq} is past the last record {records}: records were deleted"
            )));
        } else if hashes.get(&seq) != Some(&hash) {
            problems.push(problem(format!(
                "record {seq} differs from its signed checkpoint (record edited)"
            )));
        }
    }
    problems.sort_by_key(|p| p.seq);
    Ok(VerifyReport {
        records,
        checkpoints,
        last_checkpoint_seq,
        removed_by_budget: budget_removed,
        problems,
    })
}

fn prev_hash_or(text: &str, fallback: [u8; 32]) -> [u8; 32] {
    decode_hash(text).unwrap_or(fallback)
}

/// The `actions` columns that listings filter on; they must say what the signed payload says.
struct IndexedColumns {
    decision: Option<String>,
    session_id: Option<String>,
    platform: Option<String>,
    action_type: Option<String>,
    risk_score: Option<i64>,
    timestamp: Option<String>,
}

impl IndexedColumns {
    fn match_payload(&self, payload: &str) -> bool {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(payload) else {
            return false;
        };
        let text = |key: &str| value.get(key).and_then(|v| v.as_str()).map(str::to_string);
        text("decision") == self.decision
            && text("session_id") == self.session_id
            && text("platform") == self.platform
            && text("action_type") == self.action_type
            && text("timestamp") == self.timestamp
            && value.get("risk_score").and_then(|v| v.as_i64()) == self.risk_score
    }
}
