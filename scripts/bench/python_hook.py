#!/usr/bin/env python3
"""The obvious alternative to `quintctl hook`: a Python hook that parses the agent's JSON and
runs the same regex and glob checks (exported from Quint's compiled default pack by the
hook_roundtrip benchmark). Used only as the side-by-side baseline in benchmarks."""
import fnmatch
import json
import os
import re
import sys


def main():
    with open(os.environ["QUINT_BENCH_RULES"]) as f:
        rules = json.load(f)
    event = json.load(sys.stdin)
    tool_input = event.get("tool_input") or {}
    command = tool_input.get("command") or ""
    paths = [tool_input[k] for k in ("file_path", "path") if isinstance(tool_input.get(k), str)]
    paths += [w for w in re.split(r"[\s;|&<>()]+", command) if "/" in w or w.startswith("~")]
    home = os.environ.get("HOME", "")
    paths += ["~" + p[len(home):] for p in paths if home and p.startswith(home + "/")]
    denied = None
    for rule in rules:
        if any(re.search(rx, command) for rx in rule["commands"]) or any(
            fnmatch.fnmatch(p, g) for p in paths for g in rule["paths"]
        ):
            if rule["verdict"] == "deny":
                denied = rule
                break
    if denied:
        print(json.dumps({"hookSpecificOutput": {"hookEventName": "PreToolUse",
                                                 "permissionDecision": "deny",
                                                 "permissionDecisionReason": denied["description"]}}))
    else:
        print("{}")


main()
