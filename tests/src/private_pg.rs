//! A Postgres server of a test's own, in a temporary directory, for tests that restart it.
//! The server binaries come from `QUINT_TEST_PG_BIN` (set by `scripts/test.sh`, which installs
//! them when missing), else `/usr/lib/postgresql/*/bin` or `initdb` on PATH. As root the server
//! runs as user `postgres` (it refuses root).

use std::path::PathBuf;
use std::process::Command;

use crate::relay::free_port;

pub struct PrivatePostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

fn server_binaries() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("QUINT_TEST_PG_BIN").filter(|d| !d.is_empty()) {
        return Some(dir.into());
    }
    let mut packaged: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    packaged.sort();
    packaged.pop().or_else(|| {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .find(|p| p.join("initdb").exists() && p.join("pg_ctl").exists())
        })
    })
}

impl PrivatePostgres {
    pub fn start() -> PrivatePostgres {
        let bin = server_binaries().expect(
            "this test needs the PostgreSQL server binaries (initdb, pg_ctl): set QUINT_TEST_PG_BIN or run scripts/test.sh, which installs them",
        );
        let dir = tempfile::Builder::new()
            .prefix("quint-pg")
            .tempdir()
            .unwrap();
        if is_root() {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        }
        let server = PrivatePostgres {
            dir,
            bin,
            port: free_port(),
        };
        server.run(
            "initdb",
            &[
                "-D",
                &server.data(),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
            ],
        );
        server.pg_ctl(&["start", "-w"]);
        server
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// A fast restart: connections are cut, the server comes back on the same port.
    pub fn restart(&self) {
        self.pg_ctl(&["restart", "-w", "-m", "fast"]);
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn pg_ctl(&self, args: &[&str]) {
        let log = self.dir.path().join("log").display().to_string();
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let data = self.data();
        let mut all = vec![
            "-D",
            data.as_str(),
            "-l",
            log.as_str(),
            "-o",
            options.as_str(),
        ];
        all.extend_from_slice(args);
        self.run("pg_ctl", &all);
    }

    fn run(&self, program: &str, args: &[&str]) {
        let path = self.bin.join(program);
        let mut command = if is_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&path);
            command
        } else {
            Command::new(&path)
        };
        let output = command
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
        assert!(
            output.status.success(),
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.pg_ctl(&["stop", "-m", "immediate"])
        }));
    }
}

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}
