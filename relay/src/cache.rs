//! Token lookups and policy documents cached so that most requests authenticate without a
//! database round trip: in this process, or in Redis (`REDIS_URL`) shared by all relay
//! processes, under `tenant:{id}:*` (token entries are found by hash, `quint:token:{hash}`, and
//! listed in their tenant's `tenant:{id}:keys`).
//!
//! Correctness rests on invalidation, not expiry. Postgres triggers NOTIFY `quint_tenant` when
//! a tenant is deleted or one of its API keys or devices is revoked, and `quint_policy` when its
//! policy changes; every relay process listens (notify.rs) and drops that tenant's entries at
//! once. Two races are closed: a lookup that read the database before a revocation committed
//! but fills the cache after the invalidation is discarded (fills carry the generation read
//! before the lookup; an invalidation bumps it), and a process that is not listening (its
//! connection lost) neither reads nor fills, and when it listens again distrusts what was
//! filled before (it may have missed notes): it empties its own memory, and Redis entries from
//! before are stale by the rule below. Entries also expire after a minute.
//!
//! Redis is an optimisation: an error or a slow answer falls through to Postgres. It is not
//! trusted either. Every entry is signed (HMAC-SHA256 with a key only the relay's database
//! role can read, migration 0003) together with its tenant and the time the lookup behind it
//! began, and a process accepts an entry only if it verifies, is under a minute old, and began
//! after the last invalidation of its tenant this process heard of (and after it began
//! listening), allowing `CLOCK_SKEW_MS` between relay hosts. So neither a forged entry, nor a
//! genuine one written back after a revocation, nor one Redis failed to delete is ever used.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use uuid::Uuid;

const TTL: Duration = Duration::from_secs(60);
/// A Redis answer slower than this is treated as a miss.
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);
/// The in-process cache is emptied rather than grown past this many entries.
const MAX_LOCAL_ENTRIES: usize = 100_000;
const GENERATION_KEY: &str = "quint:generation";
/// How far relay hosts' clocks may disagree (NTP keeps them far closer).
const CLOCK_SKEW_MS: u64 = 2_000;

pub struct Cache {
    store: Store,
    listening: AtomicBool,
    staleness: Mutex<Staleness>,
    last_redis_warning: Mutex<Option<Instant>>,
}

/// What this process knows makes older Redis entries stale (Unix milliseconds).
#[derive(Default)]
struct Staleness {
    listening_since: u64,
    invalidated: HashMap<Uuid, u64>,
}

impl Staleness {
    /// Entries whose lookup began at or before this are stale for `tenant`.
    fn stale_before(&self, tenant: Uuid) -> u64 {
        let invalidated = self.invalidated.get(&tenant).copied().unwrap_or(0);
        self.listening_since.max(invalidated) + CLOCK_SKEW_MS
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

enum Store {
    Local {
        entries: Mutex<HashMap<String, LocalEntry>>,
        generation: AtomicU64,
    },
    Redis {
        manager: redis::aio::ConnectionManager,
        signing: ring::hmac::Key,
    },
}

struct LocalEntry {
    tenant: Uuid,
    value: String,
    expires: Instant,
}

/// Read before a database lookup whose result may be cached: the invalidation count, and when
/// the lookup began.
#[derive(Clone, Copy)]
pub struct Generation {
    count: Option<u64>,
    began_ms: u64,
}

pub fn token_key(hash: &[u8]) -> String {
    format!("quint:token:{}", hex::encode(hash))
}

pub fn policy_key(tenant: Uuid) -> String {
    format!("tenant:{tenant}:policy")
}

fn tenant_keys(tenant: Uuid) -> String {
    format!("tenant:{tenant}:keys")
}

impl Cache {
    pub fn local() -> Cache {
        Cache::with_store(Store::Local {
            entries: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
        })
    }

    /// Redis at `url`, entries signed with `signing_key`; if it cannot be reached now, the
    /// in-process cache instead (said in the log), so that a cache outage never keeps the relay
    /// from starting.
    pub async fn connect(url: &str, signing_key: &[u8]) -> Cache {
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Duration::from_secs(2))
            .set_response_timeout(REDIS_TIMEOUT)
            .set_number_of_retries(1);
        let manager = match redis::Client::open(url) {
            Ok(client) => client.get_connection_manager_with_config(config).await,
            Err(e) => Err(e),
        };
        match manager {
            Ok(manager) => {
                tracing::info!("token and policy cache in Redis");
                Cache::with_store(Store::Redis {
                    manager,
                    signing: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, signing_key),
                })
            }
            Err(error) => {
                tracing::error!(%error, "Redis unreachable; caching in this process instead");
                Cache::local()
            }
        }
    }

    fn with_store(store: Store) -> Cache {
        Cache {
            store,
            listening: AtomicBool::new(false),
            staleness: Mutex::new(Staleness::default()),
            last_redis_warning: Mutex::new(None),
        }
    }

    /// Called by the notification listener: true once it listens (after emptying the cache),
    /// false when its connection is lost.
    pub async fn set_listening(&self, listening: bool) {
        if listening {
            *self.staleness.lock().unwrap_or_else(|e| e.into_inner()) = Staleness {
                listening_since: unix_ms(),
                invalidated: HashMap::new(),
            };
            self.drop_local(|_| true);
        }
        self.listening.store(listening, Ordering::SeqCst);
    }

    pub async fn get(&self, key: &str) -> Option<String> {
        if !self.listening.load(Ordering::SeqCst) {
            return None;
        }
        match &self.store {
            Store::Local { entries, .. } => {
                let entries = entries.lock().unwrap_or_else(|e| e.into_inner());
                entries
                    .get(key)
                    .filter(|e| e.expires > Instant::now())
                    .map(|e| e.value.clone())
            }
            Store::Redis { manager, signing } => {
                let entry = self.redis_get::<Option<String>>(manager, key).await??;
                let (tenant, began_ms, value) = verified(signing, key, &entry)?;
                let fresh = {
                    let staleness = self.staleness.lock().unwrap_or_else(|e| e.into_inner());
                    began_ms > staleness.stale_before(tenant)
                };
                (fresh && began_ms + TTL.as_millis() as u64 > unix_ms()).then_some(value)
            }
        }
    }

    pub async fn generation(&self) -> Generation {
        let began_ms = unix_ms();
        let count = match &self.store {
            Store::Local { generation, .. } => Some(generation.load(Ordering::SeqCst)),
            Store::Redis { manager, .. } => self
                .redis_get::<Option<u64>>(manager, GENERATION_KEY)
                .await
                .map(|g| g.unwrap_or(0)),
        };
        Generation { count, began_ms }
    }

    /// Stores `value` for `tenant` unless the tenant's entries were invalidated since
    /// `generation` was read, or this process is not listening.
    pub async fn fill(&self, key: &str, tenant: Uuid, value: &str, generation: Generation) {
        let Generation {
            count: Some(read),
            began_ms,
        } = generation
        else {
            return;
        };
        if !self.listening.load(Ordering::SeqCst) {
            return;
        }
        match &self.store {
            Store::Local {
                entries,
                generation,
            } => {
                let mut entries = entries.lock().unwrap_or_else(|e| e.into_inner());
                // Checked under the lock invalidation takes too.
                if generation.load(Ordering::SeqCst) != read {
                    return;
                }
                if entries.len() >= MAX_LOCAL_ENTRIES {
                    entries.clear();
                }
                entries.insert(
                    key.to_string(),
                    LocalEntry {
                        tenant,
                        value: value.to_string(),
                        expires: Instant::now() + TTL,
                    },
                );
            }
            Store::Redis { manager, signing } => {
                let script = redis::Script::new(
                    r"if (redis.call('GET', KEYS[3]) or '0') ~= ARGV[2] then return 0 end
                      redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
                      redis.call('SADD', KEYS[2], KEYS[1])
                      redis.call('EXPIRE', KEYS[2], ARGV[3])
                      return 1",
                );
                let mut connection = manager.clone();
                let mut invocation = script.prepare_invoke();
                invocation
                    .key(key)
                    .key(tenant_keys(tenant))
                    .key(GENERATION_KEY)
                    .arg(signed(signing, key, tenant, began_ms, value))
                    .arg(read)
                    .arg(TTL.as_secs());
                let fill = invocation.invoke_async::<i64>(&mut connection);
                self.redis_answer(tokio::time::timeout(REDIS_TIMEOUT, fill).await);
            }
        }
    }

    /// Drops every entry of `tenant`, and makes fills begun before now fail.
    pub async fn invalidate_tenant(&self, tenant: Uuid) {
        {
            let mut staleness = self.staleness.lock().unwrap_or_else(|e| e.into_inner());
            let now = unix_ms();
            // Entries older than the TTL are refused anyway: no need to remember them.
            let horizon = now.saturating_sub(TTL.as_millis() as u64 + CLOCK_SKEW_MS);
            staleness.invalidated.retain(|_, at| *at > horizon);
            staleness.invalidated.insert(tenant, now);
        }
        self.drop_local(|e| e.tenant == tenant);
        if let Store::Redis { manager, .. } = &self.store {
            let script = redis::Script::new(
                r"redis.call('INCR', KEYS[2])
                      local keys = redis.call('SMEMBERS', KEYS[1])
                      for _, key in ipairs(keys) do redis.call('DEL', key) end
                      redis.call('DEL', KEYS[1])
                      return #keys",
            );
            let mut connection = manager.clone();
            let mut invocation = script.prepare_invoke();
            invocation.key(tenant_keys(tenant)).key(GENERATION_KEY);
            // If this fails, the entries stay in Redis but are stale by `staleness`.
            let invalidate = invocation.invoke_async::<i64>(&mut connection);
            self.redis_answer(tokio::time::timeout(REDIS_TIMEOUT, invalidate).await);
        }
    }

    /// Drops this process's entries that `stale` picks, and makes fills begun before now fail.
    /// Redis needs no such pass: its entries are judged stale when read (`Staleness`).
    fn drop_local(&self, stale: impl Fn(&LocalEntry) -> bool) {
        if let Store::Local {
            entries,
            generation,
        } = &self.store
        {
            let mut entries = entries.lock().unwrap_or_else(|e| e.into_inner());
            generation.fetch_add(1, Ordering::SeqCst);
            entries.retain(|_, e| !stale(e));
        }
    }

    async fn redis_get<T: redis::FromRedisValue>(
        &self,
        manager: &redis::aio::ConnectionManager,
        key: &str,
    ) -> Option<T> {
        let mut connection = manager.clone();
        let mut get = redis::cmd("GET");
        get.arg(key);
        let answer = tokio::time::timeout(REDIS_TIMEOUT, get.query_async(&mut connection)).await;
        self.redis_answer(answer)
    }

    fn redis_answer<T>(
        &self,
        answer: Result<redis::RedisResult<T>, tokio::time::error::Elapsed>,
    ) -> Option<T> {
        match answer {
            Ok(Ok(value)) => Some(value),
            Ok(Err(error)) => {
                self.warn_redis(&error);
                None
            }
            Err(_) => {
                self.warn_redis(&"no answer in time");
                None
            }
        }
    }

    /// At most one warning every 10 s: a Redis outage must not flood the log.
    fn warn_redis(&self, error: &dyn std::fmt::Display) {
        let mut last = self
            .last_redis_warning
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if last.is_none_or(|at| at.elapsed() > Duration::from_secs(10)) {
            *last = Some(Instant::now());
            tracing::warn!(%error, "Redis cache unavailable; using Postgres");
        }
    }
}

/// A Redis entry: tenant, lookup start, value and the hex HMAC of all three and the Redis key,
/// tab-separated.
fn signed(
    signing: &ring::hmac::Key,
    key: &str,
    tenant: Uuid,
    began_ms: u64,
    value: &str,
) -> String {
    let body = format!("{tenant}\t{began_ms}\t{value}");
    let tag = ring::hmac::sign(signing, format!("{key}\n{body}").as_bytes());
    format!("{body}\t{}", hex::encode(tag.as_ref()))
}

/// Tenant, lookup start and value of a signed entry, if its signature verifies (constant-time
/// comparison).
fn verified(signing: &ring::hmac::Key, key: &str, signed: &str) -> Option<(Uuid, u64, String)> {
    let (body, tag) = signed.rsplit_once('\t')?;
    let tag = hex::decode(tag).ok()?;
    ring::hmac::verify(signing, format!("{key}\n{body}").as_bytes(), &tag).ok()?;
    let mut fields = body.splitn(3, '\t');
    let tenant = fields.next()?.parse().ok()?;
    let began_ms = fields.next()?.parse().ok()?;
    Some((tenant, began_ms, fields.next()?.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_cache_serves_only_while_listening_and_drops_a_tenant_at_once() {
        let cache = Cache::local();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let g = cache.generation().await;
        cache.fill("k1", a, "v1", g).await;
        assert_eq!(
            cache.get("k1").await,
            None,
            "not listening: no fill, no read"
        );

        cache.set_listening(true).await;
        let g = cache.generation().await;
        cache.fill("k1", a, "v1", g).await;
        cache.fill("k2", b, "v2", g).await;
        assert_eq!(cache.get("k1").await.as_deref(), Some("v1"));

        cache.invalidate_tenant(a).await;
        assert_eq!(cache.get("k1").await, None);
        assert_eq!(cache.get("k2").await.as_deref(), Some("v2"));

        // A lookup that began before the invalidation must not repopulate the cache.
        cache.fill("k1", a, "stale", g).await;
        assert_eq!(cache.get("k1").await, None);

        cache.set_listening(false).await;
        assert_eq!(cache.get("k2").await, None);
        cache.set_listening(true).await;
        assert_eq!(cache.get("k2").await, None, "emptied on listening again");
    }

    #[test]
    fn signed_entries_verify_only_unchanged_and_under_their_own_key() {
        let key = |k: &[u8]| ring::hmac::Key::new(ring::hmac::HMAC_SHA256, k);
        let signing = key(b"0123456789abcdef0123456789abcdef");
        let tenant = Uuid::now_v7();
        let entry = signed(&signing, "quint:token:aa", tenant, 42, "tenant device");
        let check = |k: &ring::hmac::Key, at: &str, e: &str| verified(k, at, e);
        assert_eq!(
            check(&signing, "quint:token:aa", &entry),
            Some((tenant, 42, "tenant device".to_string()))
        );
        assert_eq!(check(&signing, "quint:token:bb", &entry), None, "moved");
        let younger = entry.replacen("\t42\t", "\t43\t", 1);
        assert_eq!(
            check(&signing, "quint:token:aa", &younger),
            None,
            "made younger"
        );
        let forged = entry.replacen("tenant device", "tenant other!", 1);
        assert_eq!(check(&signing, "quint:token:aa", &forged), None, "changed");
        assert_eq!(
            check(&signing, "quint:token:aa", "tenant device"),
            None,
            "unsigned"
        );
        let other = key(b"another key, another relay fleet");
        assert_eq!(check(&other, "quint:token:aa", &entry), None, "another key");
    }

    #[test]
    fn entries_from_lookups_begun_before_an_invalidation_are_stale() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let staleness = Staleness {
            listening_since: 1_000_000,
            invalidated: HashMap::from([(a, 2_000_000)]),
        };
        assert_eq!(staleness.stale_before(a), 2_000_000 + CLOCK_SKEW_MS);
        assert_eq!(staleness.stale_before(b), 1_000_000 + CLOCK_SKEW_MS);
    }
}
