//! Harness for end-to-end tests: a private quintd in a temporary state dir, driven through the
//! real `quintctl` binary exactly as an agent would run it.
//!
//! Binaries come from the workspace target dir (`scripts/test.sh` builds them first), or from
//! `QUINT_BIN_DIR`.

pub mod bus;
pub mod private_pg;
pub mod relay;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn bin(name: &str) -> PathBuf {
    let dir = std::env::var_os("QUINT_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            // target/debug/deps/<test> → target/debug
            let exe = std::env::current_exe().expect("test executable path");
            exe.parent()
                .and_then(Path::parent)
                .expect("target dir")
                .to_path_buf()
        });
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} not found: run `cargo build --bins` first (scripts/test.sh does)",
        path.display()
    );
    path
}

/// A private Quint installation: home, state dir, socket, config and policy dir.
pub struct QuintEnv {
    pub dir: tempfile::TempDir,
    pub home: PathBuf,
    pub state_dir: PathBuf,
    pub socket: PathBuf,
    pub policy_dir: PathBuf,
    pub config: PathBuf,
}

impl Default for QuintEnv {
    fn default() -> Self {
        Self::new()
    }
}

impl QuintEnv {
    pub fn new() -> QuintEnv {
        let dir = tempfile::tempdir().expect("temp dir");
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join(".ssh")).unwrap();
        std::fs::write(
            home.join(".ssh/id_rsa"),
            "-----BEGIN OPENSSH PRIVATE KEY-----\nfake\n",
        )
        .unwrap();
        let policy_dir = dir.path().join("policy.d");
        std::fs::create_dir_all(&policy_dir).unwrap();
        let config = dir.path().join("config.yaml");
        std::fs::write(
            &config,
            // Every quintd on this machine would see every test's processes: the process
            // collector is on only in the tests that are about it.
            format!(
                "policy_dir: {}\nlog_level: debug\ncollectors:\n  process: off\n",
                policy_dir.display()
            ),
        )
        .unwrap();
        QuintEnv {
            state_dir: dir.path().join("state"),
            socket: dir.path().join("run/quintd.sock"),
            home,
            policy_dir,
            config,
            dir,
        }
    }

    fn apply_env(&self, command: &mut Command) {
        command
            .env("QUINT_CONFIG", &self.config)
            .env("QUINT_STATE_DIR", &self.state_dir)
            .env("QUINT_SOCKET", &self.socket)
            .env("HOME", &self.home)
            .env_remove("QUINT_LOG");
    }

    pub fn quintctl(&self) -> Command {
        let mut command = Command::new(bin("quintctl"));
        self.apply_env(&mut command);
        command
    }

    /// Runs `quintctl <args>` and returns its output.
    pub fn ctl(&self, args: &[&str]) -> Output {
        self.quintctl().args(args).output().expect("run quintctl")
    }

    /// Runs `quintctl hook <agent>` with `input` on stdin.
    pub fn hook(&self, agent: &str, input: &[u8]) -> Output {
        let mut child = self
            .quintctl()
            .args(["hook", agent])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn quintctl hook");
        let mut stdin = child.stdin.take().unwrap();
        // The hook may refuse before reading everything; a broken pipe is part of the test.
        let _ = stdin.write_all(input);
        drop(stdin);
        child.wait_with_output().expect("hook output")
    }

    pub fn start_daemon(&self) -> Daemon {
        self.start_daemon_with(&[])
    }

    /// quintd with extra environment variables.
    pub fn start_daemon_with(&self, vars: &[(&str, &str)]) -> Daemon {
        let mut command = Command::new(bin("quintd"));
        command.envs(vars.iter().copied());
        self.launch(command)
    }

    /// quintd as another user (`setpriv`, run as root): what it does without privileges.
    pub fn start_daemon_as(&self, uid: u32) -> Daemon {
        let mut command = Command::new("setpriv");
        command
            .args([
                &format!("--reuid={uid}"),
                &format!("--regid={uid}"),
                "--clear-groups",
            ])
            .arg(bin("quintd"));
        self.launch(command)
    }

    fn launch(&self, mut command: Command) -> Daemon {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("quintd.log"))
            .unwrap();
        self.apply_env(&mut command);
        let child = command
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn quintd");
        let daemon = Daemon { child: Some(child) };
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok() {
                return daemon;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("quintd did not start; log:\n{}", self.daemon_log());
    }

    /// One request on quintd's socket, as `quintctl` would send it; the reply's `result`.
    pub fn request(&self, request: &serde_json::Value) -> serde_json::Value {
        use std::io::BufRead;
        let mut stream = std::os::unix::net::UnixStream::connect(&self.socket).unwrap();
        let mut line = request.to_string();
        line.push('\n');
        stream.write_all(line.as_bytes()).unwrap();
        let mut reply = String::new();
        std::io::BufReader::new(stream)
            .read_line(&mut reply)
            .unwrap();
        let reply: serde_json::Value = serde_json::from_str(&reply).unwrap();
        assert_eq!(reply["ok"], true, "{reply}");
        reply["result"].clone()
    }

    /// `quintctl enroll --relay URL --token TOKEN --json`, which must succeed; its answer.
    pub fn enroll(&self, relay_url: &str, token: &str) -> serde_json::Value {
        let output = self.ctl(&["enroll", "--relay", relay_url, "--token", token, "--json"]);
        assert!(
            output.status.success(),
            "enroll failed: {}\n{}",
            String::from_utf8_lossy(&output.stderr),
            self.daemon_log()
        );
        stdout_json(&output)
    }

    pub fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("quintd.log")).unwrap_or_default()
    }

    pub fn database(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.state_dir.join("quint.db")).expect("open quint.db")
    }

    /// Events as `quintctl events --json` prints them.
    pub fn events(&self, extra: &[&str]) -> Vec<serde_json::Value> {
        let mut args = vec!["events", "--json", "--limit", "10000"];
        args.extend_from_slice(extra);
        let output = self.ctl(&args);
        assert!(
            output.status.success(),
            "quintctl events failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|line| {
                serde_json::from_str::<serde_json::Value>(line).expect("JSON event line")["event"]
                    .clone()
            })
            .collect()
    }

    /// Hook events waiting in the spool for quintd.
    pub fn spooled_files(&self) -> usize {
        quint_daemon::spool::pending(&self.state_dir.join("spool"))
    }

    /// Polls `check` until it returns true or the timeout passes.
    pub fn wait_for(&self, timeout: Duration, check: impl FnMut() -> bool) -> bool {
        wait_until(timeout, check)
    }
}

/// Polls `check` every 100 ms until it returns true or the timeout passes.
pub fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    check()
}

/// Waits until `child` accepts connections on `port`; panics with its log if it exits or
/// does not listen within 20 s.
pub fn wait_for_listener(child: &mut Child, port: u16, what: &str, log: impl Fn() -> String) {
    let listening = wait_until(Duration::from_secs(20), || {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("{what} exited ({status}): {}", log());
        }
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert!(listening, "{what} did not start: {}", log());
}

/// A running quintd, killed when dropped.
pub struct Daemon {
    child: Option<Child>,
}

impl Daemon {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// How it ended, if it has (a crash shows as a signal).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// SIGTERM and wait; returns the exit status code.
    pub fn stop(mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        unsafe_kill(child.id(), "TERM");
        child.wait().ok()?.code()
    }

    /// SIGKILL, as a crash would.
    pub fn kill9(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn unsafe_kill(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
}

/// Claude Code's PreToolUse input.
pub fn claude_pre_tool_use(
    session: &str,
    tool: &str,
    input: serde_json::Value,
    cwd: &Path,
) -> Vec<u8> {
    serde_json::json!({
        "session_id": session,
        "transcript_path": "/tmp/transcript.jsonl",
        "cwd": cwd,
        "permission_mode": "default",
        "hook_event_name": "PreToolUse",
        "tool_name": tool,
        "tool_input": input,
        "tool_use_id": format!("toolu_{session}_{tool}"),
    })
    .to_string()
    .into_bytes()
}

pub fn stdout_json(output: &Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {text:?}"))
}

/// The `p` quantile (0..=1) of sorted values, nearest rank; 0 for none.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// An HTTP client that returns error statuses as answers, not errors, and gives up after
/// `timeout`.
pub fn http_agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .into()
}
