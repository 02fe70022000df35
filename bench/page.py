"""The page's own upload, as the bench replays it: read from the page's scripts, not restated.

web/static/js/upload.js posts each photo to `API + "/jobs?wait=" + WAIT_S` as multipart form
data, with `explain=1` while the page asks for the "Why?" map at upload; without an API key; and
web/static/js/jobs.js long-polls `API + "/jobs/<id>?wait=" + WAIT_S` while the answer is not
final. Reading those lines here means the idle latency follows the page when the page changes;
if they cannot be found, the bench stops and says where to look.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
JS = ROOT / "web" / "static" / "js"


class PageRequestError(RuntimeError):
    """The page's scripts no longer hold the lines the bench reads its request from."""


def _find(pattern: str, name: str, what: str) -> re.Match:
    text = (JS / name).read_text()
    m = re.search(pattern, text)
    if not m:
        raise PageRequestError(f"cannot find {what} in web/static/js/{name}: the page's upload "
                               "changed; update bench/page.py to send what the page sends")
    return m


def page_request() -> dict:
    """{"api", "upload_path", "poll_wait", "field", "explain"}: what the page sends for a photo."""
    api = _find(r'getAttribute\("data-api"\)\)\s*\|\|\s*"([^"]+)"', "util.js", "the API root")
    wait = _find(r"export const WAIT_S\s*=\s*(\d+)", "util.js", "WAIT_S")
    post = _find(r'xhr\.open\("POST",\s*API\s*\+\s*"([^"]+)"\s*\+\s*WAIT_S\)', "upload.js",
                 "the upload's xhr.open")
    field = _find(r'form\.append\("(\w+)",\s*item\.file,', "upload.js", "the file's form field")
    text = (JS / "upload.js").read_text()
    explain = re.search(r'^\s*form\.append\("explain",\s*"(1|true)"\)', text, re.M) is not None
    return {"api": api.group(1).rstrip("/"), "upload_path": post.group(1) + wait.group(1),
            "poll_wait": int(wait.group(1)), "field": field.group(1), "explain": explain}


def page_submitter(url: str, explain: bool, request: dict | None = None):
    """submit(client, i, path) as the page uploads a photo (no key), with or without explain=1;
    then long-polls, as the page does, until the job is final. Returns (status, reused)."""
    req = request or page_request()
    headers = {"Accept": "application/json"}
    fields = {"explain": "1"} if explain else {}

    def submit(c, i: int, path: Path):
        status, body = c.upload(req["api"] + req["upload_path"], req["field"], path.name,
                                path.read_bytes(), headers, fields)
        if status not in (200, 201, 202):
            raise RuntimeError(f"page upload answered {status}: {body}")
        job = body["jobs"][0]
        while job["status"] not in ("done", "failed"):
            status, job = c.request("GET", f"{req['api']}/jobs/{job['id']}?wait="
                                    f"{req['poll_wait']}", None, headers)
            if status != 200:
                raise RuntimeError(f"page poll answered {status}: {job}")
        return job["status"], bool(job.get("reused"))

    submit.base_url = url
    return submit
