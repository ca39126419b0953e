//! `quintctl hooks install` / `uninstall` against real settings files in a temporary home.

use quint_e2e::QuintEnv;

const CLAUDE_SETTINGS: &str = "{\n  \"hooks\": {\n    \"PreToolUse\": [\n      {\n        \"matcher\": \"Bash\",\n        \"hooks\": [\n          {\n            \"type\": \"command\",\n            \"command\": \"~/bin/my-own-guard.sh\"\n          }\n        ]\n      }\n    ]\n  },\n  \"model\": \"opus\"\n}";
const GEMINI_SETTINGS: &str = "{\"theme\":\"Default\",\"hooks\":{\"AfterTool\":[{\"matcher\":\"*\",\"hooks\":[{\"type\":\"command\",\"command\":\"log.sh\"}]}]}}\n";

#[test]
fn install_then_uninstall_leaves_users_settings_byte_identical() {
    let env = QuintEnv::new();
    let claude = env.home.join(".claude/settings.json");
    let gemini = env.home.join(".gemini/settings.json");
    std::fs::create_dir_all(claude.parent().unwrap()).unwrap();
    std::fs::create_dir_all(gemini.parent().unwrap()).unwrap();
    std::fs::write(&claude, CLAUDE_SETTINGS).unwrap();
    std::fs::write(&gemini, GEMINI_SETTINGS).unwrap();

    let dry = env.ctl(&["hooks", "install", "--dry-run"]);
    assert!(dry.status.success());
    let diff = String::from_utf8_lossy(&dry.stdout);
    assert!(
        diff.contains("+") && diff.contains("hook claude-code"),
        "{diff}"
    );
    assert_eq!(
        std::fs::read_to_string(&claude).unwrap(),
        CLAUDE_SETTINGS,
        "dry run writes nothing"
    );

    let install = env.ctl(&["hooks", "install", "--json"]);
    assert!(
        install.status.success(),
        "{}",
        String::from_utf8_lossy(&install.stderr)
    );
    let results: serde_json::Value = serde_json::from_slice(&install.stdout).unwrap();
    let result_of = |agent: &str| {
        results
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["agent"] == agent)
            .unwrap()["result"]
            .clone()
    };
    assert_eq!(result_of("claude-code"), "installed");
    assert_eq!(result_of("gemini-cli"), "installed");
    assert_eq!(
        result_of("cursor"),
        "skipped",
        "agents not present are left alone"
    );

    let installed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&claude).unwrap()).unwrap();
    let pre = installed["hooks"]["PreToolUse"].as_array().unwrap();
    assert_eq!(pre.len(), 2, "the user's hook stays, Quint's is added");
    assert_eq!(pre[0]["hooks"][0]["command"], "~/bin/my-own-guard.sh");
    assert!(pre[1]["hooks"][0]["command"]
        .as_str()
        .unwrap()
        .ends_with("quintctl hook claude-code"));
    let status = env.ctl(&["hooks", "install"]);
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("already-installed"),
        "idempotent"
    );

    let uninstall = env.ctl(&["hooks", "uninstall"]);
    assert!(uninstall.status.success());
    assert_eq!(std::fs::read_to_string(&claude).unwrap(), CLAUDE_SETTINGS);
    assert_eq!(std::fs::read_to_string(&gemini).unwrap(), GEMINI_SETTINGS);
    assert!(!env.home.join(".claude/settings.json.quint-backup").exists());

    // An explicit agent with no settings file: created, then removed again.
    let cursor = env.home.join(".cursor/hooks.json");
    assert!(env
        .ctl(&["hooks", "install", "--agent", "cursor"])
        .status
        .success());
    assert!(std::fs::read_to_string(&cursor)
        .unwrap()
        .contains("hook cursor"));
    assert!(env
        .ctl(&["hooks", "uninstall", "--agent", "cursor"])
        .status
        .success());
    assert!(!cursor.exists());
}
