"""Write docs/RELIABILITY.md from a real run of the reliability tests.

    python scripts/reliability_report.py            # run the tests now, then write the report
    python scripts/reliability_report.py --results DIR   # write it from an earlier run's files

The tests (TEST_FILES below: hostile uploads, faults, limits, security, concurrency, privacy,
idempotency, webhooks) run against a real redis-server, real worker processes and the real
gunicorn server; with
DFD_RELIABILITY_OUT=DIR set they leave their figures in DIR (hostile.json, fault-*.json), and
pytest's JUnit XML (junit.xml) says which tests passed. Nothing in the report is typed by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

from reliability_text import DECISIONS, FAULTS_AND_SECURITY, LIMITS

ROOT = Path(__file__).resolve().parents[1]
TEST_FILES = ["tests/test_hostile.py", "tests/test_faults.py", "tests/test_limits.py",
              "tests/test_security.py", "tests/test_concurrency.py", "tests/test_privacy.py",
              "tests/test_idempotency.py", "tests/test_webhooks.py", "tests/test_attempts.py"]
OUT = ROOT / "docs" / "RELIABILITY.md"


def run_tests(results: Path) -> int:
    """Run the reliability tests with figures written into results; returns pytest's status."""
    env = {**os.environ, "DFD_RELIABILITY_OUT": str(results)}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
           f"--junitxml={results / 'junit.xml'}", *TEST_FILES]
    print("running:", " ".join(cmd[2:]), flush=True)
    return subprocess.call(cmd, cwd=ROOT, env=env)


def read_junit(path: Path) -> list[dict]:
    """[{file, name, outcome, seconds}] from pytest's JUnit XML."""
    if not path.is_file():
        return []
    rows = []
    for case in ET.parse(path).getroot().iter("testcase"):
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "failed"
            elif child.tag == "skipped":
                outcome = "skipped"
        rows.append({"file": case.get("classname", "").rsplit(".", 1)[-1],
                     "name": case.get("name", ""), "outcome": outcome,
                     "seconds": float(case.get("time") or 0)})
    return rows


def cell(value) -> str:
    text = "" if value is None else str(value)
    text = text.replace("\x00", "<NUL>").replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= 110 else text[:107] + "..."


def load(results: Path, name: str):
    path = results / name
    return json.loads(path.read_text()) if path.is_file() else None


def _figures(cases: list[dict], kill: dict | None, restart: dict | None,
             tests: list[dict]) -> list[str]:
    """The table of figures at the top, and the tests that failed in this run."""
    refused = [c for c in cases if c["expected"] != 202]
    accepted = [c for c in cases if c["expected"] == 202]
    matched = [c for c in cases if c["status"] == c["expected"]]
    five_xx = [c for c in cases if c["status"] >= 500]
    passed = sum(t["outcome"] == "passed" for t in tests)
    failed = [t for t in tests if t["outcome"] == "failed"]
    lines = [
        "## Figures",
        "",
        "| What | Figure |",
        "|---|---|",
        f"| Hostile / malformed upload cases tried | {len(refused)} (all refused with a 4xx "
        f"JSON error: {sum(c['status'] == c['expected'] for c in refused)}) |",
        f"| Valid but unusual images tried | {len(accepted)} (accepted and classified as "
        f"expected: {sum(c['status'] == 202 and c['code'] == 'done' for c in accepted)}) |",
        f"| Answers as expected | {len(matched)} of {len(cases)} |",
        f"| 5xx answers | {len(five_xx)} |",
    ]
    if kill:
        lines += [
            f"| Jobs submitted in the SIGKILL test | {kill['jobs_submitted']} |",
            f"| Jobs finished (done) | {kill['jobs_done']}, each finished exactly once: "
            f"{kill['finished_once']} |",
            f"| Worker children SIGKILLed mid-job, survived | {kill['kills']} "
            f"({kill['jobs_interrupted']} jobs interrupted and re-run) |",
        ]
    if restart:
        lines += [
            f"| Redis SIGKILLed mid-batch and restarted (AOF) | jobs {restart['jobs_submitted']}"
            f", done {restart['jobs_done']}; at the crash {restart['queued_at_crash']} queued, "
            f"{restart['running_at_crash']} running |",
            f"| Web answers while Redis was down ({restart['down_s']} s) | 503 JSON in at most "
            f"{max(restart['answer_s_while_down'].values())} s |",
            f"| Recovery after Redis came back | web {restart['web_recovered_s']} s, all jobs "
            f"done {restart['all_done_s_after_restart']} s |",
        ]
    lines += [f"| Reliability tests passed | {passed} of {len(tests)} |", ""]
    if failed:
        lines += ["**Failed in this run:** " + ", ".join(f"`{t['name']}`" for t in failed), ""]
    return lines


def render(results: Path) -> str:
    """The whole report, from the files a run left in results."""
    cases = load(results, "hostile.json") or []
    kill = load(results, "fault-sigkill.json")
    restart = load(results, "fault-redis_restart.json")
    tests = read_junit(results / "junit.xml")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip() or "unknown"
    lines = [
        "# Reliability and security: what is proven, with figures",
        "",
        f"Generated by `python scripts/reliability_report.py` on "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC at commit `{commit}`, from a run of "
        f"{', '.join(f'`{f}`' for f in TEST_FILES)} against a real redis-server, real Celery "
        "worker processes (`python -m worker`) and the real gunicorn server. `make test` runs the "
        "same tests (the fault tests are marked `slow` and still run there).",
        "",
    ]
    lines += _figures(cases, kill, restart, tests)
    lines += [
        "## Hostile and malformed uploads",
        "",
        "Every case is generated by `tests/hostile.py` (no binary files from elsewhere) and sent "
        "byte for byte to `POST /api/v1/jobs`. A refused case must get the one error shape "
        "`{\"error\": {\"code\", \"message\"}}` whose message names the file or the problem, and "
        "must leave no job record and no stored file. An accepted case must end `done`, with "
        "the displayed size and the same score as a plain RGB PNG of the pixels it should show.",
        "",
        "| Case | What was sent | Bytes | Expected | Got | Code / outcome | Message / result |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for c in cases:
        lines.append(f"| {cell(c['name'])} | {cell(c['what'])} | {c['bytes']:,} | "
                     f"{c['expected']} | {c['status']} | {cell(c['code'])} | "
                     f"{cell(c['message'])} |")
    lines += ["", *DECISIONS]
    lines += _faults_section(kill, restart)
    lines += [
        "## Every reliability test of this run",
        "",
        "| Test | Outcome | Seconds |",
        "|---|---|---:|",
    ]
    for t in tests:
        if t["file"] == "test_hostile" and t["name"].startswith("test_case["):
            continue  # one row per case is in the table above
        lines.append(f"| {t['file']}::{cell(t['name'])} | {t['outcome']} | {t['seconds']:.1f} |")
    lines += ["", *LIMITS, ""]
    return "\n".join(lines)


def _faults_section(kill: dict | None, restart: dict | None) -> list[str]:
    out = ["## Faults", ""]
    if kill:
        out += [
            f"- **Worker children SIGKILLed** (`test_sigkilled_worker_children_lose_no_job`): "
            f"{kill['jobs_submitted']} jobs queued, the worker's pool child killed "
            f"{kill['kills']} times, each while a chosen job was running (a 31 Mpx PNG, so the "
            f"kill lands mid-job). Result: {kill['jobs_done']} done, every record "
            f"`finishes == 1`; exactly the {kill['jobs_interrupted']} interrupted jobs ran twice "
            f"(`attempts == 2`), all others once. The first kill hits a task on its own job "
            f"(recovered by Celery: `task_acks_late` + `task_reject_on_worker_lost`; turning "
            f"either off leaves that job stuck and fails the test); the others hit jobs claimed "
            f"into a batch (leased to the dead task: when Celery redelivers it, same task id, "
            f"same owner, it runs its own job again alone and sends each of the others again "
            f"in a task of its own). {kill['seconds']} s.",
        ]
    if restart:
        out += [
            f"- **Redis crash and restart** (`test_redis_crash_and_restart_lose_no_job`): "
            f"redis-server with `--appendonly yes --appendfsync always` SIGKILLed mid-batch "
            f"({restart['queued_at_crash']} queued, {restart['running_at_crash']} running, "
            f"{restart['done_at_crash']} done), kept down {restart['down_s']} s, restarted on the "
            f"same AOF. While down, uploads (with and without a key), status calls and "
            f"long-polls got 503 JSON (`unavailable`, `Retry-After`) in "
            f"{', '.join(f'{k} {v} s' for k, v in restart['answer_s_while_down'].items())}; "
            f"`/readyz` 503, `/healthz` 200. The web recovered by itself "
            f"({restart['web_recovered_s']} s) and all {restart['jobs_done']} jobs finished, "
            f"once each. Jobs in flight ride out the outage: the worker's Redis client retries "
            f"for up to 30 s (`redis_client(ride_out=...)`); without that, a job in flight was "
            f"left `running` (its task message unacknowledged until the 1 h visibility "
            f"timeout) and the test failed.",
        ]
    out += FAULTS_AND_SECURITY
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, help="read an earlier run's files from here")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    status = 0
    if args.results is None:
        tmp = tempfile.TemporaryDirectory(prefix="dfd-reliability-")
        results = Path(tmp.name)
        status = run_tests(results)
    else:
        results = args.results
    if not (results / "hostile.json").is_file():
        print(f"no results in {results} (hostile.json missing)", file=sys.stderr)
        return 2
    args.out.write_text(render(results))
    print(f"wrote {args.out}" + (f" (pytest exit status {status})" if status else ""))
    return status


if __name__ == "__main__":
    sys.exit(main())
