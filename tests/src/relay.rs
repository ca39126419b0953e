//! A private relay for end-to-end tests: a fresh database on the test Postgres
//! (`QUINT_TEST_PG`, default `postgres://postgres@127.0.0.1:5432/postgres`; `scripts/test.sh`
//! starts one when none answers), migrated by `quint-relay migrate` as the owner, served by
//! `quint-relay serve` as a login role in `quint_app`. Database and role are dropped at the end.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::bin;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub fn admin_url() -> String {
    std::env::var("QUINT_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn with_database(url: &str, database: &str) -> String {
    let (base, _) = url
        .rsplit_once('/')
        .expect("QUINT_TEST_PG ends in /<database>");
    format!("{base}/{database}")
}

fn with_user(url: &str, user: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a postgres:// URL");
    let host = rest.split_once('@').map_or(rest, |(_, host)| host);
    format!("{scheme}://{user}@{host}")
}

pub fn admin_client() -> postgres::Client {
    admin_client_of(&admin_url())
}

fn admin_client_of(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).unwrap_or_else(|e| {
        panic!("cannot reach the test Postgres at {url} ({e}); scripts/test.sh starts one")
    })
}

pub struct Relay {
    pub database: String,
    pub app_role: String,
    pub owner_url: String,
    pub app_url: String,
    pub base_url: String,
    child: Option<Child>,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
    /// False for a second process on another relay's database: dropping it leaves the database.
    owns_database: bool,
    /// The server's administrative URL (the database and role are made and dropped there).
    admin_url: String,
}

impl Relay {
    /// Creates and migrates a database; does not serve yet.
    pub fn prepare() -> Relay {
        Relay::prepare_on(&admin_url())
    }

    /// `prepare` on another Postgres server (one a test restarts).
    pub fn prepare_on(admin_url: &str) -> Relay {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let database = format!("quint_test_{}_{n}", std::process::id());
        let app_role = format!("{database}_app");
        // Before the database exists: a missing binary must not leave one behind.
        let relay_bin = bin("quint-relay");
        let mut admin = admin_client_of(admin_url);
        admin
            .batch_execute(&format!("CREATE DATABASE {database}"))
            .unwrap();
        let owner_url = with_database(admin_url, &database);
        let dir = tempfile::tempdir().unwrap();
        // From here on a failure drops `relay`, which drops the database and role.
        let relay = Relay {
            log: dir.path().join("relay.log"),
            app_url: with_user(&owner_url, &app_role),
            database,
            app_role,
            owner_url,
            base_url: String::new(),
            child: None,
            _dir: dir,
            owns_database: true,
            admin_url: admin_url.to_string(),
        };
        let migrated = Command::new(relay_bin)
            .args(["migrate", "--database-url", &relay.owner_url])
            .output()
            .unwrap();
        assert!(
            migrated.status.success(),
            "migrate failed: {}",
            String::from_utf8_lossy(&migrated.stderr)
        );
        admin
            .batch_execute(&format!(
                "CREATE ROLE {} LOGIN IN ROLE quint_app",
                relay.app_role
            ))
            .unwrap();
        relay
    }

    /// Another `quint-relay serve` process on the same database (a second relay instance).
    pub fn another_process(&self, flags: &[&str]) -> Relay {
        let dir = tempfile::tempdir().unwrap();
        let mut other = Relay {
            log: dir.path().join("relay.log"),
            database: self.database.clone(),
            app_role: self.app_role.clone(),
            owner_url: self.owner_url.clone(),
            app_url: self.app_url.clone(),
            base_url: String::new(),
            child: None,
            _dir: dir,
            owns_database: false,
            admin_url: self.admin_url.clone(),
        };
        other.serve(flags);
        other
    }

    /// A migrated database and `quint-relay serve` answering on a free port.
    pub fn start() -> Relay {
        Relay::start_with(&[])
    }

    /// Like `start`, with extra `serve` flags.
    pub fn start_with(flags: &[&str]) -> Relay {
        let mut relay = Relay::prepare();
        relay.serve(flags);
        relay
    }

    pub fn serve(&mut self, flags: &[&str]) {
        self.serve_with_env(flags, &[]);
    }

    /// `serve` with extra environment variables (the AWS settings of the SNS bus).
    pub fn serve_with_env(&mut self, flags: &[&str], env: &[(String, String)]) {
        self.serve_on(free_port(), flags, env);
    }

    /// Stops serving (SIGKILL); `resume` serves again at the same address.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn resume(&mut self) {
        let port: u16 = self
            .base_url
            .rsplit_once(':')
            .and_then(|(_, port)| port.parse().ok())
            .expect("served before");
        self.serve_on(port, &[], &[]);
    }

    fn serve_on(&mut self, port: u16, flags: &[&str], env: &[(String, String)]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(bin("quint-relay"))
            .envs(env.iter().map(|(k, v)| (k, v)))
            .args([
                "serve",
                "--database-url",
                &self.app_url,
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .args(flags)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.base_url = format!("http://127.0.0.1:{port}");
        let log = self.log.clone();
        crate::wait_for_listener(
            self.child.as_mut().unwrap(),
            port,
            "quint-relay serve",
            || tail(&std::fs::read_to_string(&log).unwrap_or_default()),
        );
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last lines of the relay's log, for failure messages that CI prints whole.
    pub fn log_tail(&self) -> String {
        tail(&self.log())
    }

    /// `quint-relay <args>` with the owner's database URL appended.
    pub fn admin(&self, args: &[&str]) -> std::process::Output {
        Command::new(bin("quint-relay"))
            .args(args)
            .args(["--database-url", &self.owner_url])
            .output()
            .unwrap()
    }

    pub fn create_tenant(&self, name: &str) -> Tenant {
        let output = self.admin(&["admin", "tenant", "create", "--name", name, "--json"]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let created: Value = serde_json::from_slice(&output.stdout).unwrap();
        Tenant {
            tenant_id: created["tenant_id"].as_str().unwrap().to_string(),
            api_key: created["api_key"].as_str().unwrap().to_string(),
        }
    }

    /// The database as the owner (superuser in tests).
    pub fn owner(&self) -> postgres::Client {
        postgres::Client::connect(&self.owner_url, postgres::NoTls).unwrap()
    }

    /// The database as the service's role.
    pub fn app(&self) -> postgres::Client {
        postgres::Client::connect(&self.app_url, postgres::NoTls).unwrap()
    }

    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Answer {
        self.call_raw(
            method,
            path,
            token,
            body.map(|b| b.to_string().into_bytes()),
            None,
        )
    }

    /// Any request; errors come back as answers, not panics.
    pub fn call_raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
        content_encoding: Option<&str>,
    ) -> Answer {
        let encoding: Vec<(&str, &str)> = content_encoding
            .map(|e| vec![("Content-Encoding", e)])
            .unwrap_or_default();
        self.call_with_headers(method, path, token, body, &encoding)
    }

    /// Any request with extra headers.
    pub fn call_with_headers(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let agent = crate::http_agent(Duration::from_secs(60));
        let url = format!("{}{path}", self.base_url);
        let mut request = ureq::http::Request::builder().method(method).uri(&url);
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request = request.header("Content-Type", "application/json");
        let response = match body {
            Some(body) => agent.run(request.body(body).unwrap()),
            None => agent.run(request.body(()).unwrap()),
        }
        .unwrap_or_else(|e| panic!("{method} {path}: {e}; relay log:\n{}", self.log_tail()));
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = response.into_body().read_to_string().unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            json,
            text,
            retry_after,
        }
    }

    /// Deploy token → enrolled device token.
    /// A new deploy token of the tenant (`qdt_…`).
    pub fn deploy_token(&self, tenant: &Tenant) -> String {
        let token = self.call(
            "POST",
            "/v1/deploy-tokens",
            Some(&tenant.api_key),
            Some(&serde_json::json!({"name": "fleet"})),
        );
        assert_eq!(token.status, 201, "{}", token.text);
        token.json["token"].as_str().unwrap().to_string()
    }

    pub fn enroll(&self, tenant: &Tenant, hostname: &str) -> Device {
        let token = self.deploy_token(tenant);
        let enrolled = self.call(
            "POST",
            "/v1/enroll",
            None,
            Some(&enroll_body(&token, hostname)),
        );
        assert_eq!(enrolled.status, 201, "{}", enrolled.text);
        Device {
            device_id: enrolled.json["device_id"].as_str().unwrap().to_string(),
            token: enrolled.json["device_token"].as_str().unwrap().to_string(),
        }
    }
}

pub fn enroll_body(deploy_token: &str, hostname: &str) -> Value {
    serde_json::json!({
        "deploy_token": deploy_token,
        "host": {"hostname": hostname, "os": "linux", "arch": "x86_64", "machine_id": format!("m-{hostname}")},
        "daemon_version": "0.1.0",
    })
}

/// A valid event as quintd would upload it.
pub fn event(session: &str, decision: &str, timestamp: &str) -> Value {
    serde_json::json!({
        "schema_version": 1,
        "event_id": uuid::Uuid::now_v7().to_string(),
        "timestamp": timestamp,
        "source": "hook",
        "platform": "claude-code",
        "action_type": "tool.call",
        "session_id": session,
        "tool_name": "Bash",
        "arguments": {"command": "ls -la"},
        "target": "ls -la",
        "decision": decision,
        "rule_ids": if decision == "allow" { vec![] } else { vec!["test.rule"] },
        "risk_score": 10,
        "labels": {},
    })
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if !self.owns_database {
            return;
        }
        // One statement per call: DROP DATABASE cannot run inside the implicit transaction of
        // a multi-statement query.
        let mut admin = admin_client_of(&self.admin_url);
        for statement in [
            format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}'",
                self.database
            ),
            format!("DROP DATABASE IF EXISTS {}", self.database),
            format!("DROP ROLE IF EXISTS {}", self.app_role),
        ] {
            if let Err(e) = admin.batch_execute(&statement) {
                eprintln!("cleanup: {statement}: {e:?}");
            }
        }
    }
}

pub struct Tenant {
    pub tenant_id: String,
    pub api_key: String,
}

pub struct Device {
    pub device_id: String,
    pub token: String,
}

pub struct Answer {
    pub status: u16,
    pub json: Value,
    pub text: String,
    pub retry_after: Option<String>,
}

/// The last 30 lines of a log, for failure messages that CI prints whole.
pub fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
