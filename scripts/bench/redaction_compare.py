#!/usr/bin/env python3
"""Side-by-side comparison of Quint's secret redactor and Yelp's detect-secrets on the labelled
redaction corpus (tests/fixtures/redaction/{positives,negatives}.jsonl).

    python3 scripts/bench/redaction_compare.py --quint-cmd "target/release/examples/redact_corpus" \
        [--positives P] [--negatives N] [--repeat 3] [--json]

Quint's side is a black box, run as `<quint-cmd> <positives> <negatives> <repeat>`, which prints one
JSON object. detect-secrets runs in-process here. Both are timed on one thread over every text
(positives + negatives) `repeat` times. Tables and ratios go to stdout; progress and per-family
detail go to stderr.
"""
import argparse
import json
import locale
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
VENV = os.path.join(REPO, "target", "bench-venv")
PINNED = "1.5.0"
REEXEC_MARK = "REDACTION_COMPARE_REEXEC"
# Key blocks: detect-secrets' PrivateKeyDetector reports only the marker on the BEGIN line, so for
# these a "Private Key" finding anywhere in the text counts as found (same set of markers).
KEY_BLOCK = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY|PuTTY-User-Key-File")


def log(msg):
    print(f"[redaction_compare] {msg}", file=sys.stderr, flush=True)


def ensure_environment():
    """Return once detect-secrets imports and files default to UTF-8; otherwise set up
    target/bench-venv and/or re-exec (scan_file opens files with the locale's encoding)."""
    try:
        import detect_secrets  # noqa: F401
        have = True
    except ImportError:
        have = False
    encoding = locale.getpreferredencoding(False).lower().replace("-", "")
    utf8 = sys.flags.utf8_mode or encoding == "utf8"
    if have and utf8:
        return
    if os.environ.get(REEXEC_MARK):
        sys.exit(f"redaction_compare: detect-secrets still not importable under {sys.executable}")
    python = sys.executable
    if not have:
        python = os.path.join(VENV, "bin", "python")
        if not os.path.exists(python):
            log(f"detect-secrets not importable; creating venv {VENV}")
            subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
        if subprocess.run([python, "-c", "import detect_secrets"], capture_output=True).returncode:
            pip = [python, "-m", "pip", "install", "--disable-pip-version-check", "-q"]
            log(f"installing detect-secrets=={PINNED} into {VENV}")
            # pip's own output goes to stderr so stdout stays the report.
            if subprocess.run(pip + [f"detect-secrets=={PINNED}"], stdout=sys.stderr).returncode:
                log(f"detect-secrets {PINNED} not installable; installing the newest 1.x")
                subprocess.run(pip + ["detect-secrets>=1,<2"], stdout=sys.stderr, check=True)
    log(f"re-executing under {python} in UTF-8 mode")
    env = dict(os.environ, **{REEXEC_MARK: "1", "PYTHONUTF8": "1"})
    os.execve(python, [python, os.path.abspath(__file__), *sys.argv[1:]], env)


def load_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def covered(finding, text, regex_plugins):
    """What a finding covers. Regex plugins whose pattern has a capture group report only the group:
    the GitHub and GitLab token detectors report "ghp" / "glpat" for a whole token. For such short
    values, also take the full regex matches in the text that contain the reported value."""
    value = finding.secret_value or ""
    yield value
    plugin = regex_plugins.get(finding.type)
    if len(value) < 8 and plugin is not None:
        for rx in plugin.denylist:
            yield from (m.group(0) for m in rx.finditer(text) if value in m.group(0))


def is_found(secret, text, findings, regex_plugins):
    if KEY_BLOCK.search(secret):
        return any(f.type == "Private Key" for f in findings)
    # Substantial overlap: the reported value lies inside the labelled secret (>= 8 chars, so a
    # stray short match does not count) or covers all of it.
    return any(v and ((len(v) >= 8 and v in secret) or secret in v)
               for f in findings for v in covered(f, text, regex_plugins))


def run_detect_secrets(positives, negatives, repeat):
    """Scan each text as its own file, exactly as `detect-secrets scan --no-verify` scans a file.

    Why scan_file on temp files rather than scan.scan_line: scan_line is the ad-hoc string mode
    (`detect-secrets scan --string`). It turns on eager search, in which the entropy plugins report
    unquoted words with no entropy limit ("the", "password"), skips every line-level filter
    (is_indirect_reference, the allowlist pragma), and treats a multi-line text as one line.
    scan_file is the path the CLI takes for every file: file-name filters, per-line scanning with
    surrounding context, all default heuristic filters, and an INI-style re-read when the first
    pass found nothing. Files are named *.txt, a generic file type for detect-secrets (keyword
    rules need a quoted value, no YAML/language-specific rules).

    Why default_settings(): it enables every built-in plugin with default options plus the default
    filters, i.e. the same plugins_used/filters_used as a plain `detect-secrets scan` baseline except
    is_ignored_due_to_verification_policies, which calls the real vendor APIs to check candidates.
    That needs the network, would send would-be secrets out, and is not part of the scan itself.
    """
    from importlib.metadata import version
    from detect_secrets.core.secrets_collection import SecretsCollection
    from detect_secrets.plugins.base import RegexBasedDetector
    from detect_secrets.settings import default_settings, get_plugins

    texts = [p["text"] for p in positives] + [n["text"] for n in negatives]
    with tempfile.TemporaryDirectory(prefix="ds-bench-") as tmp, default_settings():
        regex_plugins = {p.secret_type: p for p in get_plugins()
                         if isinstance(p, RegexBasedDetector)}
        paths = []
        for i, text in enumerate(texts):  # written before the clock starts: writes are not timed
            paths.append(os.path.join(tmp, f"{i}.txt"))
            with open(paths[-1], "w", encoding="utf-8", newline="") as f:
                f.write(text)
        start = time.perf_counter()
        for _ in range(repeat):  # one thread; SecretsCollection.scan_files would fork a pool
            collection = SecretsCollection()
            for path in paths:
                collection.scan_file(path)
        seconds = time.perf_counter() - start
    findings = [collection.data.get(p, set()) for p in paths]  # every pass gives the same result

    per_family = defaultdict(lambda: [0, 0])
    for p, secrets in zip(positives, findings):
        per_family[p["family"]][0] += is_found(p["secret"], p["text"], secrets, regex_plugins)
        per_family[p["family"]][1] += 1
    flagged = Counter(n.get("kind", "?") for n, s in zip(negatives, findings[len(positives):]) if s)
    found = sum(f for f, _ in per_family.values())
    nbytes = sum(len(t.encode("utf-8")) for t in texts) * repeat
    return {
        "tool": "detect-secrets", "version": version("detect-secrets"),
        "positives": len(positives), "found": found, "recall": ratio(found, len(positives)),
        "negatives": len(negatives), "unchanged": len(negatives) - sum(flagged.values()),
        "unchanged_ratio": ratio(len(negatives) - sum(flagged.values()), len(negatives)),
        "bytes": nbytes, "seconds": seconds,
        "mb_per_s": nbytes / seconds / 1e6 if seconds else None,
        "per_family": dict(per_family), "negatives_flagged_by_kind": dict(flagged),
        "timing": "SecretsCollection.scan_file per text; includes reading each temp file back, "
                  "excludes writing it",
    }


def run_quint(cmd, pos_path, neg_path, repeat):
    argv = shlex.split(cmd) + [pos_path, neg_path, str(repeat)]
    log("running " + shlex.join(argv))
    proc = subprocess.run(argv, stdout=subprocess.PIPE, text=True)  # its stderr passes through
    if proc.returncode:
        sys.exit(f"redaction_compare: quint command exited {proc.returncode}")
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError:  # tolerate chatter before the JSON line
        lines = [l for l in proc.stdout.splitlines() if l.strip().startswith("{")]
        if not lines:
            sys.exit(f"redaction_compare: no JSON on quint's stdout:\n{proc.stdout}")
        return json.loads(lines[-1])


def ratio(a, b):
    return a / b if b else None


def pct(x):
    return "n/a" if x is None else f"{100 * x:.1f}%"


def fmt_mbs(x):
    return "n/a" if not x else f"{x:.1f}" if x >= 10 else f"{x:.2f}" if x >= 1 else f"{x:.3g}"


def mb_per_s(r):
    # Recomputed from bytes/seconds so both tools use the same MB (10^6 bytes).
    if r.get("bytes") and r.get("seconds"):
        return r["bytes"] / r["seconds"] / 1e6
    return r.get("mb_per_s")


def report(quint, ds, repeat):
    q_mbs, d_mbs = mb_per_s(quint), mb_per_s(ds)
    rows = [("quint", quint), (f"detect-secrets {ds['version']}", ds)]
    print("| tool | recall | negatives unchanged | MB/s |")
    print("|---|---:|---:|---:|")
    for name, r in rows:
        print(f"| {name} | {pct(r.get('recall'))} ({r.get('found')}/{r.get('positives')}) "
              f"| {pct(r.get('unchanged_ratio'))} ({r.get('unchanged')}/{r.get('negatives')}) "
              f"| {fmt_mbs(mb_per_s(r))} |")
    print()
    if q_mbs and d_mbs:
        speed = f"{q_mbs / d_mbs:.1f}× faster" if q_mbs >= d_mbs else f"{d_mbs / q_mbs:.1f}× slower"
        print(f"Quint is {speed} ({fmt_mbs(q_mbs)} vs {fmt_mbs(d_mbs)} MB/s, "
              f"one thread, repeat {repeat}).")
    for label, key in (("Recall", "recall"), ("Negatives unchanged", "unchanged_ratio")):
        q, d = quint.get(key), ds.get(key)
        if q is not None and d is not None:
            print(f"{label}: Quint {pct(q)} vs detect-secrets {pct(d)} "
                  f"({100 * (q - d):+.1f} points).")
    print(f"\ndetect-secrets timing: {ds['timing']}.")


def report_families(quint, ds):
    q_fam = quint.get("per_family") or {}
    missed = sorted(((fam, f, n) for fam, (f, n) in ds["per_family"].items() if f < n),
                    key=lambda x: (x[1] - x[2], x[1] / x[2], x[0]))
    if not missed:
        log("detect-secrets found every positive")
    else:
        log("families where detect-secrets missed most (found/total):")
        width = max(len(fam) for fam, _, _ in missed)
        log(f"  {'family'.ljust(width)}  detect-secrets  quint")
        for fam, f, n in missed:
            q = "/".join(map(str, q_fam[fam])) if fam in q_fam else "-"
            log(f"  {fam.ljust(width)}  {f'{f}/{n}':>14}  {q:>5}")
    if ds["negatives_flagged_by_kind"]:
        log("negatives detect-secrets flagged, by kind: " + ", ".join(
            f"{k} {v}" for k, v in ds["negatives_flagged_by_kind"].items()))


def main():
    ensure_environment()
    fixtures = os.path.join(REPO, "tests", "fixtures", "redaction")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quint-cmd", required=True,
                    help="command, run as CMD POSITIVES NEGATIVES REPEAT, printing one JSON object")
    ap.add_argument("--positives", default=os.path.join(fixtures, "positives.jsonl"))
    ap.add_argument("--negatives", default=os.path.join(fixtures, "negatives.jsonl"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true", help="print both results as JSON, not markdown")
    args = ap.parse_args()
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    pos_path, neg_path = os.path.abspath(args.positives), os.path.abspath(args.negatives)
    positives, negatives = load_jsonl(pos_path), load_jsonl(neg_path)
    bad = [p["id"] for p in positives if p["secret"] not in p["text"]]
    if bad:
        log(f"warning: secret not a substring of its text in {len(bad)} positives: {bad[:5]}")

    quint = run_quint(args.quint_cmd, pos_path, neg_path, args.repeat)  # first: fail fast
    log(f"detect-secrets: {len(positives)} positives + {len(negatives)} negatives, "
        f"repeat {args.repeat}")
    ds = run_detect_secrets(positives, negatives, args.repeat)
    if quint.get("bytes") not in (None, ds["bytes"]):
        log(f"warning: quint scanned {quint['bytes']} bytes, "
            f"detect-secrets {ds['bytes']} (UTF-8 bytes × repeat)")

    if args.json:
        print(json.dumps({"quint": quint, "detect_secrets": ds}, indent=2))
    else:
        report(quint, ds, args.repeat)
    report_families(quint, ds)


if __name__ == "__main__":
    main()
