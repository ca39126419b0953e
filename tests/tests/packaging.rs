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

/// `scripts/package.sh --debug`: the .deb and the .rpm, built from the debug binaries, once
/// for all the tests here (the script starts by emptying its output directory).
fn packages() -> (std::path::PathBuf, std::path::PathBuf) {
    static BUILT: std::sync::OnceLock<(std::path::PathBuf, std::path::PathBuf)> =
        std::sync::OnceLock::new();
    BUILT.get_or_init(build_packages).clone()
}

fn build_packages() -> (std::path::PathBuf, std::path::PathBuf) {
    let listed = run(Command::new(repository().join("scripts/package.sh")).arg("--debug"));
    let find = |suffix: &str| {
        listed
            .lines()
            .find(|l| l.ends_with(suffix))
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| panic!("no {suffix} in {listed}"))
    };
    (find(".deb"), find(".rpm"))
}

fn tool_missing(tool: &str) -> bool {
    let missing = Command::new(tool).arg("--version").output().is_err();
    if missing {
        eprintln!("SKIPPED: {tool} is not installed (scripts/test.sh installs it)");
    }
    missing
}

/// Runs a command that must succeed (what it printed is in the failure); its stdout.
fn run(command: &mut Command) -> String {
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{command:?}: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Each entry: (path, mode string, owner) as the package lists it.
const SHIPPED: [(&str, &str); 9] = [
    ("/usr/bin/quintd", "-rwxr-xr-x"),
    ("/usr/bin/quintctl", "-rwxr-xr-x"),
    ("/usr/lib/quint/package-hooks.sh", "-rwxr-xr-x"),
    ("/etc/quint/config.yaml", "-rw-r--r--"),
    ("/etc/quint/policy.d/README", "-rw-r--r--"),
    ("systemd/system/quintd.service", "-rw-r--r--"),
    ("/usr/share/doc/quint/README.md", "-rw-r--r--"),
    ("/usr/share/doc/quint/fleet.md", "-rw-r--r--"),
    ("/usr/share/doc/quint/policy.md", "-rw-r--r--"),
];

#[test]
fn the_deb_and_rpm_hold_the_right_files_modes_owners_and_checked_scripts() {
    if ["dpkg-deb", "rpm", "shellcheck"]
        .iter()
        .any(|t| tool_missing(t))
    {
        return;
    }
    let (deb, rpm) = packages();
    let deb_files = run(Command::new("dpkg-deb").arg("-c").arg(&deb));
    let rpm_files = run(Command::new("rpm").args(["-qlvp"]).arg(&rpm));
    for (path, mode) in SHIPPED {
        for (kind, listing, owner) in [("deb", &deb_files, "0/0"), ("rpm", &rpm_files, "root")] {
            let line = listing
                .lines()
                .find(|l| l.ends_with(path))
                .unwrap_or_else(|| panic!("{kind} lacks {path}:\n{listing}"));
            assert!(line.starts_with(mode), "{kind} {path}: {line}");
            assert!(line.contains(owner), "{kind} {path} is not root's: {line}");
        }
    }
    // Nothing else of note: no state, no keys, no database in a package.
    for listing in [&deb_files, &rpm_files] {
        assert!(!listing.contains("/var/lib/quint"), "{listing}");
    }
    let control = tempfile::tempdir().unwrap();
    run(Command::new("dpkg-deb")
        .arg("-e")
        .arg(&deb)
        .arg(control.path()));
    let conffiles = std::fs::read_to_string(control.path().join("conffiles")).unwrap();
    assert!(conffiles.contains("/etc/quint/config.yaml"), "{conffiles}");
    let rpm_config = run(Command::new("rpm").args(["-qp", "--configfiles"]).arg(&rpm));
    assert!(
        rpm_config.contains("/etc/quint/config.yaml"),
        "{rpm_config}"
    );
    let rpm_scripts = run(Command::new("rpm").args(["-qp", "--scripts"]).arg(&rpm));
    assert!(
        rpm_scripts.contains("package-hooks.sh configure"),
        "{rpm_scripts}"
    );
    assert!(
        rpm_scripts.contains("package-hooks.sh remove"),
        "{rpm_scripts}"
    );

    let maintainer = repository().join("packaging/linux/maintainer");
    // The deb's scripts are these files as they are (cargo-deb copies them).
    for script in ["postinst", "prerm", "postrm"] {
        assert_eq!(
            std::fs::read(control.path().join(script)).unwrap(),
            std::fs::read(maintainer.join(script)).unwrap()
        );
    }
    let scripts: Vec<_> = [
        "postinst",
        "prerm",
        "postrm",
        "package-hooks.sh",
        "rpm-post.sh",
        "rpm-preun.sh",
    ]
    .iter()
    .map(|s| maintainer.join(s))
    .collect();
    run(Command::new("shellcheck")
        .args(["--shell=sh", "--severity=style"])
        .args(&scripts));
}

/// Installs, removes and purges the .deb in a private mount namespace whose /etc, /usr, /var and
/// /run are overlays: the machine's own stay untouched. Prints what it finds as marker lines.
const INSTALL_SCRIPT: &str = r#"
set -eu
top=$1 deb=$2 installer=$3
for d in etc usr var run; do
    mkdir -p "$top/u/$d" "$top/w/$d"
    mount -t overlay overlay -o "lowerdir=/$d,upperdir=$top/u/$d,workdir=$top/w/$d" "/$d"
done
trap 'kill -KILL "$(cat /run/quint/quintd.pid 2>/dev/null)" 2>/dev/null || true' EXIT
[ -d /run/systemd/system ] && echo "SYSTEMD RUNNING"
# As a fleet admin would: packaging/install.sh, twice (the second run changes nothing).
sh "$installer" --relay "$QUINT_RELAY_URL" --packages "$(dirname "$deb")" > "$top/install.log" 2>&1 || { cat "$top/install.log"; exit 1; }
sh "$installer" --relay "$QUINT_RELAY_URL" --packages "$(dirname "$deb")" > "$top/reinstall.log" 2>&1 || { cat "$top/reinstall.log"; exit 1; }
grep -q "already installed" "$top/reinstall.log" && echo "IDEMPOTENT"
# An upgrade in place (prerm upgrade, postinst configure) keeps the enrollment.
before=$(sha256sum /var/lib/quint/enrollment.json)
dpkg -i "$deb" > "$top/upgrade.log" 2>&1 || { cat "$top/upgrade.log"; exit 1; }
[ "$(sha256sum /var/lib/quint/enrollment.json)" = "$before" ] && [ -S /run/quint/quintd.sock ] && echo "UPGRADE KEPT STATE"
quintctl status --json > "$top/status.json" || true
quintctl doctor --json > "$top/doctor.json" || true
grep -q quintctl /etc/claude-code/managed-settings.json && echo "HOOK INSTALLED"
pid=$(cat /run/quint/quintd.pid)
dpkg -r quint > "$top/remove.log" 2>&1
kill -0 "$pid" 2>/dev/null && echo "STILL RUNNING"
pgrep -f "^/usr/bin/quintd" >/dev/null && echo "A QUINTD LEFT"
[ -e /lib/systemd/system/quintd.service ] && echo "UNIT LEFT"
grep -qs quintctl /etc/claude-code/managed-settings.json && echo "HOOK LEFT"
[ -f /var/lib/quint/enrollment.json ] && echo "STATE KEPT"
dpkg -P quint > "$top/purge.log" 2>&1
[ -e /var/lib/quint ] && echo "STATE LEFT"
[ -e /etc/quint ] && echo "CONFIG LEFT"
echo "DONE"
"#;

#[test]
fn installing_the_deb_without_systemd_enrolls_and_removing_it_leaves_nothing_running() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: installing a package into a private mount namespace needs root");
        return;
    }
    if ["dpkg", "unshare"].iter().any(|t| tool_missing(t)) {
        return;
    }
    let system_install_before = Path::new("/etc/quint").exists();
    let (deb, _) = packages();
    let relay = quint_e2e::relay::Relay::start();
    let acme = relay.create_tenant("Acme");
    let token = relay.deploy_token(&acme);
    let top = tempfile::tempdir().unwrap();
    // The shipped configuration, without the machine-wide collectors (the tests' own
    // processes are not agents to watch).
    let shipped =
        std::fs::read_to_string(repository().join("packaging/linux/config.yaml")).unwrap();
    let config = top.path().join("config.yaml");
    std::fs::write(&config, shipped.replace("process: auto", "process: off")).unwrap();
    let output = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            INSTALL_SCRIPT,
            "install",
        ])
        .arg(top.path())
        .arg(&deb)
        .arg(repository().join("packaging/install.sh"))
        .env("QUINT_DEPLOY_TOKEN", &token)
        .env("QUINT_RELAY_URL", &relay.base_url)
        .env("QUINT_CONFIG", &config)
        .env_remove("QUINT_STATE_DIR")
        .env_remove("QUINT_SOCKET")
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout).to_string();
    let logs = [
        "install.log",
        "reinstall.log",
        "upgrade.log",
        "remove.log",
        "purge.log",
    ]
    .iter()
    .map(|f| std::fs::read_to_string(top.path().join(f)).unwrap_or_default())
    .collect::<Vec<_>>()
    .join("\n");
    assert!(
        output.status.success() && report.contains("DONE"),
        "{report}\n{}\n{logs}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !report.contains("SYSTEMD RUNNING"),
        "this test is about a machine without systemd"
    );

    let status: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(top.path().join("status.json")).unwrap())
            .unwrap();
    assert_eq!(status["daemon"]["relay"]["enrolled"], true, "{logs}");
    let devices = relay.call("GET", "/v1/devices", Some(&acme.api_key), None);
    assert_eq!(
        devices.json["items"].as_array().unwrap().len(),
        1,
        "{}",
        devices.text
    );
    let doctor: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(top.path().join("doctor.json")).unwrap())
            .unwrap();
    let names: Vec<&str> = doctor
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for name in [
        "daemon",
        "socket",
        "collectors",
        "policy",
        "enrollment",
        "relay",
        "clock",
        "hooks",
    ] {
        assert!(names.contains(&name), "doctor reports {name}: {doctor}");
    }
    let outcome = |name: &str| {
        doctor
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap()["outcome"]
            .clone()
    };
    assert_eq!(outcome("daemon"), "pass");
    assert_eq!(outcome("enrollment"), "pass");
    assert_eq!(outcome("relay"), "pass");

    assert!(
        report.contains("HOOK INSTALLED"),
        "managed hooks installed: {report}\n{logs}"
    );
    assert!(
        report.contains("UPGRADE KEPT STATE"),
        "an upgrade keeps the enrollment and restarts quintd: {report}\n{logs}"
    );
    assert!(
        report.contains("IDEMPOTENT"),
        "install.sh run again changes nothing (one device at the relay): {report}\n{logs}"
    );
    assert!(
        report.contains("STATE KEPT"),
        "removing keeps state for a reinstall: {report}"
    );
    for left in [
        "STILL RUNNING",
        "A QUINTD LEFT",
        "UNIT LEFT",
        "HOOK LEFT",
        "STATE LEFT",
        "CONFIG LEFT",
    ] {
        assert!(!report.contains(left), "{left}: {report}\n{logs}");
    }
    assert_eq!(
        Path::new("/etc/quint").exists(),
        system_install_before,
        "the machine's own /etc was not touched"
    );
}

/// What `plutil -lint` would check, with Python's plistlib: the LaunchDaemon and the
/// configuration profile parse as property lists and carry the keys launchd and MDMs need.
const PLIST_CHECK: &str = r#"
import plistlib, re, sys
daemon = plistlib.load(open(sys.argv[1], "rb"))
for key in ("Label", "ProgramArguments", "RunAtLoad", "KeepAlive"):
    assert key in daemon, f"LaunchDaemon lacks {key}"
assert daemon["Label"] == "com.quint.quintd"
assert daemon["ProgramArguments"][0] == "/usr/local/bin/quintd"
profile = plistlib.load(open(sys.argv[2], "rb"))
uuid = re.compile(r"^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$")
for key in ("PayloadType", "PayloadVersion", "PayloadIdentifier", "PayloadUUID", "PayloadContent"):
    assert key in profile, f"profile lacks {key}"
assert profile["PayloadType"] == "Configuration"
uuids = [profile["PayloadUUID"]]
for payload in profile["PayloadContent"]:
    for key in ("PayloadType", "PayloadVersion", "PayloadIdentifier", "PayloadUUID", "RelayURL", "DeployToken"):
        assert key in payload, f"payload lacks {key}"
    assert payload["PayloadType"] == "com.quint.agent"
    assert payload["DeployToken"].startswith("qdt_")
    uuids.append(payload["PayloadUUID"])
assert all(uuid.match(u) for u in uuids) and len(set(uuids)) == len(uuids), uuids
print("ok")
"#;

#[test]
fn the_macos_launch_daemon_and_profile_are_valid_and_the_install_scripts_pass_shellcheck() {
    let macos = repository().join("packaging/macos");
    run(Command::new("python3")
        .args(["-c", PLIST_CHECK])
        .arg(macos.join("com.quint.quintd.plist"))
        .arg(macos.join("quint.mobileconfig")));
    // The postinstall reads the very keys the profile sets.
    let postinstall = std::fs::read_to_string(macos.join("scripts/postinstall")).unwrap();
    for key in ["com.quint.agent", "RelayURL", "DeployToken"] {
        assert!(postinstall.contains(key), "postinstall reads {key}");
    }
    if tool_missing("shellcheck") {
        return;
    }
    run(Command::new("shellcheck")
        .arg("--severity=style")
        .arg(macos.join("scripts/preinstall"))
        .arg(macos.join("scripts/postinstall"))
        .arg(macos.join("build-pkg.sh"))
        .arg(repository().join("packaging/install.sh"))
        .arg(repository().join("scripts/package.sh")));
}
