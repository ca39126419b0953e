//! What packaging/ ships: the systemd units pass `systemd-analyze verify` without a warning,
//! and quintd speaks the notify protocol its unit relies on (READY=1, watchdog pings).

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use quint_e2e::{bin, QuintEnv};

fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

#[test]
fn the_systemd_units_pass_systemd_analyze_verify_without_a_warning() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: systemd-analyze is not installed (scripts/test.sh installs it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut units = Vec::new();
    for (unit, program) in [
        ("quintd.service", "quintd"),
        ("quint-relay.service", "quint-relay"),
    ] {
        let shipped =
            std::fs::read_to_string(repository().join("packaging/linux").join(unit)).unwrap();
        // Verify checks that ExecStart exists: point it at the binaries just built.
        let built = bin(program);
        let text = shipped.replace(&format!("/usr/bin/{program}"), built.to_str().unwrap());
        assert!(
            text.contains(built.to_str().unwrap()),
            "{unit} starts /usr/bin/{program}"
        );
        let path = dir.path().join(unit);
        std::fs::write(&path, text).unwrap();
        units.push(path);
    }
    let output = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&units)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    // verify exits 0 for unknown keys and bad values; it says so on stderr.
    assert!(
        output.status.success() && stderr.trim().is_empty(),
        "{stderr}"
    );
}

#[test]
fn quintd_tells_systemd_it_is_ready_and_pings_the_watchdog_while_its_writer_answers() {
    let env = QuintEnv::new();
    let socket_path = env.dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&socket_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let _daemon = env.start_daemon_with(&[
        ("NOTIFY_SOCKET", socket_path.to_str().unwrap()),
        ("WATCHDOG_USEC", "600000"),
    ]);
    let mut received = Vec::new();
    let started = Instant::now();
    let mut buffer = [0u8; 256];
    while started.elapsed() < Duration::from_secs(5) {
        if let Ok(n) = notify.recv(&mut buffer) {
            received.push(String::from_utf8_lossy(&buffer[..n]).trim().to_string());
        }
        if received
            .iter()
            .filter(|m| m.as_str() == "WATCHDOG=1")
            .count()
            >= 3
        {
            break;
        }
    }
    assert_eq!(
        received.first().map(String::as_str),
        Some("READY=1"),
        "{received:?}"
    );
    assert!(
        received
            .iter()
            .filter(|m| m.as_str() == "WATCHDOG=1")
            .count()
            >= 3,
        "a ping every 200 ms for a 600 ms watchdog: {received:?}"
    );
}
