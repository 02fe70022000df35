"""Tests of the `dfd` batch client: pure helpers, a stub server, and the live service."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import redis
from PIL import Image

from batch import cli, client, rows
from batch.client import ApiClient, decide
from batch.rows import COLUMNS, RowWriter, collect_images, read_rows

ROOT = Path(__file__).resolve().parents[1]


def make_images(folder: Path, count: int) -> list[Path]:
    """Write count distinct small JPEG/PNG images into nested folders, plus two non-images."""
    paths = []
    for i in range(count):
        sub = folder / ("a" if i % 3 == 0 else "b/c" if i % 3 == 1 else "")
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / (f"img{i:02d}" + (".png", ".jpg", ".JPEG")[i % 3])
        img = Image.new("RGB", (96, 80), ((i * 37) % 256, (i * 91) % 256, (i * 13) % 256))
        img.putpixel((i, i), (255, 255, 255))  # never the same bytes twice
        img.save(path, "PNG" if path.suffix == ".png" else "JPEG")
        paths.append(path)
    (folder / "b").mkdir(parents=True, exist_ok=True)
    (folder / "b" / "notes.txt").write_text("not an image")
    (folder / "bad.jpg").write_text("this is text, not a JPEG")
    return paths


# ---- pure parts -------------------------------------------------------------------------------

def test_collect_images_nested_filtered_sorted_unique(tmp_path):
    made = make_images(tmp_path, 6)
    found = collect_images([tmp_path, made[0], tmp_path / "a"])  # overlaps are de-duplicated
    assert found == sorted(made + [tmp_path / "bad.jpg"], key=str)
    with pytest.raises(FileNotFoundError):
        collect_images([tmp_path / "missing"])


def test_decide_rate_limit_and_retries():
    body = {"error": {"code": "rate_limited", "message": "slow down", "retry_after": 7}}
    assert decide(429, {"Retry-After": "3"}, body) == client.Decision("wait", 3.0, "slow down")
    assert decide(429, {}, body).delay == 7.0  # body field when the header is missing
    assert decide(429, {}, None).action == "wait"  # never a failure, whatever the attempt
    # Connection errors and 5xx reach decide only once urllib3's retries are spent.
    assert decide(503, {}, None).action == "fail"
    assert decide(None, {}, "refused") == client.Decision("fail", 0.0, "connection error: refused")
    assert client.RETRY.total == client.MAX_ATTEMPTS - 1
    assert client.RETRY.is_retry("POST", 503) and client.RETRY.is_retry("POST", 409)
    assert not client.RETRY.is_retry("POST", 429, has_retry_after=True)
    assert not client.RETRY.is_retry("POST", 413, has_retry_after=True)
    refused = {"error": {"code": "unsupported_type", "message": "x.jpg: not a JPEG or PNG image"}}
    assert decide(415, {}, refused) == client.Decision("fail", 0.0, refused["error"]["message"])
    assert decide(413, {}, None).message == "HTTP 413"
    assert decide(202, {}, {}).action == "ok"


def test_row_writer_and_resume_parsing(tmp_path):
    done = rows.row_from_job("a.jpg", {"id": "j1", "status": "done", "result": {
        "label": "Fake", "confidence": 0.9, "p_fake": 0.9, "faces": [{}, {}],
        "model": {"version": "v1"}}})
    failed = rows.make_row("b.png", "j2", error="boom")
    for fmt in ("jsonl", "csv"):
        out = tmp_path / f"out.{fmt}"
        for row in (done, failed):  # two runs: the CSV header must be written only once
            writer = RowWriter.append_to(out, fmt)
            writer.write(row)
            writer.close()
        with open(out, "a") as fh:  # a crash mid-row leaves a half line behind
            fh.write('{"path": "c.jpg", "sta' if fmt == "jsonl" else "c.jpg,j3,done")
        writer = RowWriter.append_to(out, fmt)
        writer.write(rows.make_row("d.jpg", error="later"))
        writer.close()
        got = read_rows(out, fmt)
        assert [r["path"] for r in got] == ["a.jpg", "b.png", "d.jpg"], fmt
        assert str(got[0]["faces"]) == "2" and got[1]["error"] == "boom"
        assert rows.load_done(out, fmt) == {rows.path_key("a.jpg")}
    assert (tmp_path / "out.csv").read_text().splitlines()[0] == ",".join(COLUMNS)


def test_cli_usage_errors(tmp_path):
    assert cli.main(["submit", str(tmp_path)]) == 2  # no images
    assert cli.main(["submit", str(tmp_path / "nope.jpg")]) == 2
    assert cli.main(["submit"]) == 2
    assert cli.main([]) == 2
    assert cli.main(["--help"]) == 0
    assert cli.main(["train"]) == 2  # a model developer's command: dfd-train, not dfd
    assert cli.output_format("x.CSV") == "csv" and cli.output_format(None) == "jsonl"


def test_model_developer_commands_forward(monkeypatch, capsys):
    from research import cli as research_cli
    from training import cli as train_cli

    seen = []
    fake = type(sys)("training.e2e.train")
    fake.main = lambda argv: seen.append(argv) or 3
    monkeypatch.setitem(sys.modules, "training.e2e.train", fake)
    assert train_cli.main(["train", "--help", "--epochs", "2"]) == 3
    assert seen == [["--help", "--epochs", "2"]]
    fake.main = lambda argv: sys.exit(0 if argv == ["--help"] else "bad data dir")
    assert train_cli.main(["train", "--help"]) == 0 and train_cli.main(["train", "x"]) == 1
    assert "bad data dir" in capsys.readouterr().err
    assert train_cli.main([]) == 2 and train_cli.main(["--help"]) == 0
    assert train_cli.main(["robustness"]) == 2  # research, not training
    probe = type(sys)("research.probe")
    probe.main = lambda argv: 7
    monkeypatch.setitem(sys.modules, "research.probe", probe)
    assert research_cli.main(["probe", "x"]) == 7


def test_submit_never_imports_tensorflow():
    code = ("import sys, batch.cli; batch.cli.main(['submit', '/nonexistent']); "
            "assert 'tensorflow' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True)


# ---- a stub server, for behaviour a real one shows only slowly ---------------------------------

class StubHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _send(self, status, body, headers=()):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in headers:
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        with self.server.lock:
            self.server.gets += 1
        if self.headers.get("Authorization") == "Bearer wrong":
            err = {"code": "unauthorized", "message": "unknown API key"}
            return self._send(401, {"error": err})
        job = self.server.jobs.get(self.path.split("?")[0].rsplit("/", 1)[-1])
        if job is None:
            return self._send(404, {"error": {"code": "not_found", "message": "no such job"}})
        self._send(200, job)

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        srv = self.server
        with srv.lock:
            srv.posts += 1
            reply = srv.replies.pop(0) if srv.replies else None
        if reply == 429:
            err = {"code": "rate_limited", "message": "limit reached", "retry_after": 1}
            return self._send(429, {"error": err}, [("Retry-After", "1")])
        if reply == 503:
            return self._send(503, {"error": {"code": "unavailable", "message": "queue down"}})
        name = re.search(rb'filename="([^"]+)"', body).group(1).decode()
        if b"PNG" not in body and b"JFIF" not in body:
            err = {"code": "unsupported_type", "message": f"{name}: not a JPEG or PNG image"}
            return self._send(415, {"error": err})
        job_id = uuid.uuid4().hex
        label = "Fake" if int(re.sub(r"\D", "", name) or 0) % 2 else "Real"
        srv.jobs[job_id] = {"id": job_id, "status": "done", "result": {
            "label": label, "confidence": 0.8, "p_fake": 0.8 if label == "Fake" else 0.2,
            "assessment": "likely_fake" if label == "Fake" else "uncertain",
            "faces": [], "model": {"name": "stub", "version": "stub1"}}}
        if srv.inline and "wait=" in self.path:  # a server that answers ?wait= uploads at once
            return self._send(200, {"jobs": [{**srv.jobs[job_id], "filename": name}]})
        self._send(202, {"jobs": [{"id": job_id, "status": "queued", "filename": name}]})


@pytest.fixture
def stub():
    server = ThreadingHTTPServer(("127.0.0.1", 0), StubHandler)
    server.jobs, server.lock, server.posts, server.replies = {}, threading.Lock(), 0, []
    server.gets, server.inline = 0, False
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield server
    server.shutdown()
    server.server_close()


def test_client_waits_out_429_and_retries_503(stub, tmp_path):
    image = make_images(tmp_path, 1)[0]
    stub.replies = [429, 503, 429]
    started = time.monotonic()
    row = ApiClient(stub.url).process(image, timeout=10)
    assert row["status"] == "done", row
    assert time.monotonic() - started >= 2.0  # two Retry-After: 1 waits, not counted as failures
    assert stub.posts == 4


def test_client_takes_the_verdict_from_the_upload_answer_when_given(stub, tmp_path):
    image = make_images(tmp_path, 1)[0]
    client = ApiClient(stub.url)
    row = client.process(image, timeout=30)  # this server ignores ?wait=: it polls as before
    assert row["status"] == "done" and (stub.posts, stub.gets) == (1, 1)
    stub.inline = True
    row = client.process(image, timeout=30)
    assert row["status"] == "done" and row["label"] in ("Real", "Fake")
    assert (stub.posts, stub.gets) == (2, 1)  # one request for the whole job


def test_cli_csv_output_and_resume_with_stub(stub, tmp_path, capsys):
    images = make_images(tmp_path / "in", 5)
    out = tmp_path / "res.csv"
    args = ["submit", str(tmp_path / "in"), "--url", stub.url, "--out", str(out), "--no-progress"]
    assert cli.main(args) == 1
    rows = read_rows(out, "csv")
    assert len(rows) == 6 and stub.posts == 6
    bad = [r for r in rows if r["status"] == "failed"]
    assert [r["error"] for r in bad] == ["bad.jpg: not a JPEG or PNG image"]
    # The summary leads with the assessments, every one named; the labels come after them.
    assert ("5 done: 0 likely real, 3 can't tell, 2 likely fake (labels: 3 Real, 2 Fake), "
            "1 failed") in capsys.readouterr().out
    (tmp_path / "in" / "bad.jpg").unlink()  # fixed, so the retry succeeds
    Image.new("RGB", (8, 8)).save(tmp_path / "in" / "bad.jpg", "JPEG")
    assert cli.main(args) == 0
    rows = read_rows(out, "csv")
    assert len(rows) == 7 and stub.posts == 7
    assert rows[-1]["path"].endswith("bad.jpg") and rows[-1]["status"] == "done"
    assert {r["path"] for r in rows if r["status"] == "done"} == {
        str(p) for p in images + [tmp_path / "in" / "bad.jpg"]}
    assert cli.main(["submit", str(tmp_path / "in"), "--url", "ftp://x"]) == 2
    assert cli.main([*args, "--api-key", "wrong"]) == 2
    assert stub.posts == 7  # refused before any upload


def test_cli_rows_to_stdout(stub, tmp_path, capsys):
    make_images(tmp_path, 2)
    assert cli.main(["submit", str(tmp_path / "a"), "--url", stub.url, "--no-progress"]) == 0
    captured = capsys.readouterr()
    rows = [json.loads(line) for line in io.StringIO(captured.out)]
    assert [r["label"] for r in rows] == ["Real"]
    assert ("1 done: 0 likely real, 1 can't tell, 0 likely fake (labels: 1 Real, 0 Fake), "
            "0 failed -> stdout") in captured.err


# ---- the live service: gunicorn + redis + a Celery worker with the test model -----------------

def test_live_submit_then_resume(live_server, tmp_path, monkeypatch, capsys):
    images = make_images(tmp_path / "in", 12)
    out = tmp_path / "results.jsonl"
    args = ["submit", str(tmp_path / "in"), "--url", live_server.url, "--api-key",
            live_server.api_key, "--out", str(out), "--no-progress", "--timeout", "60"]
    assert cli.main(args) == 1  # bad.jpg fails, alone
    rows = read_rows(out, "jsonl")
    assert len(rows) == 13
    done = [r for r in rows if r["status"] == "done"]
    assert sorted(r["path"] for r in done) == sorted(str(p) for p in images)
    for row in done:
        assert re.fullmatch(r"[0-9a-f]{32}", row["job_id"])
        assert isinstance(row["faces"], int) and row["model_version"] and not row["error"]
        # Generated images hold no face: the assessment says the model was not made for them,
        # and the row carries no label or score, as the page shows none.
        assert row["assessment"] == "not_applicable" and row["reasons"] == "no_face"
        assert row["label"] is None and row["confidence"] is None and row["p_fake"] is None
    (bad,) = [r for r in rows if r["status"] == "failed"]
    assert bad["path"].endswith("bad.jpg") and "bad.jpg" in bad["error"]  # the server's message
    assert ("12 done: 0 likely real, 0 can't tell, 0 likely fake, 12 not a face photo we can "
            "judge (labels: 0 Real, 0 Fake), 1 failed"
            in capsys.readouterr().out)

    sent, submit = [], ApiClient.submit
    monkeypatch.setattr(ApiClient, "submit",
                        lambda self, p, **kw: sent.append(p) or submit(self, p, **kw))
    assert cli.main(args) == 1
    assert sent == [tmp_path / "in" / "bad.jpg"]  # done rows are not sent again
    again = read_rows(out, "jsonl")
    assert again[:13] == rows and len(again) == 14
    assert again[13]["path"] == bad["path"] and again[13]["status"] == "failed"
    assert "(12 already done, skipped)" in capsys.readouterr().out


def forget_limits(store: redis.Redis) -> None:
    """Drop the limiter's counters (keys like LIMITS:LIMITER/dfd/ip:127.0.0.1/...)."""
    for key in store.scan_iter("*LIMITER*"):
        store.delete(key)


def test_live_anonymous_429_is_waited_out(live_server, tmp_path, monkeypatch):
    """Anonymous uploads hit the real 5/minute limit; the client waits as told and retries."""
    store = redis.Redis.from_url(live_server.redis_url)
    seen, slept = [], []

    def recording_decide(status, headers=None, body=None):
        if status == 429:
            seen.append((headers.get("Retry-After"), body))
        return decide(status, headers, body)

    def sleep_by_forgetting(self, seconds):
        # Stands in for the up-to-60 s wait: forgetting the counters is what time would do.
        if seconds > 0:
            slept.append(seconds)
            forget_limits(store)

    monkeypatch.setattr(client, "decide", recording_decide)
    monkeypatch.setattr(ApiClient, "_sleep", sleep_by_forgetting)
    anonymous = ApiClient(live_server.url)
    forget_limits(store)
    try:
        rows = [anonymous.process(path, timeout=60) for path in make_images(tmp_path, 7)]
    finally:
        forget_limits(store)  # leave the shared anonymous allowance whole for other tests
    assert [r["status"] for r in rows] == ["done"] * 7, rows  # a 429 is never a failure
    assert anonymous.rate_limited >= 1 and seen
    header, body = seen[0]
    assert body["error"]["code"] == "rate_limited"
    assert 1 <= int(header) <= 60 and body["error"]["retry_after"] == int(header)
    assert slept[0] == pytest.approx(float(header), abs=0.5)  # what the server asked for
