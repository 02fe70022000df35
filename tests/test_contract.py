"""The OpenAPI document is a contract: Schemathesis, with every check on, against the live
gunicorn web (real worker and redis-server behind it), the stateful phase following the links
from POST /api/v1/jobs to GET and DELETE of the job. Real responses are validated against the
document (response_schema_conformance, among all the others)."""

from __future__ import annotations

import re
import subprocess

import pytest
import requests

from harness import services
from tests.conftest import API_KEY, OTHER_KEY, make_jpeg

CONFIG = services.ROOT / "tests" / "schemathesis.toml"


@pytest.mark.slow
def test_the_live_api_keeps_its_openapi_contract(live_server, tmp_path):
    # Webhooks off on this web: generated callback URLs must never be called.
    env = {k: v for k, v in live_server.env.items() if not k.startswith("DFD_WEBHOOK")}
    web, url = services.start_web(env, tmp_path / "web.log")
    try:
        # A done job with an explanation, for the operations that need one (schemathesis.toml),
        # made by another client than the run's: its stateful DELETEs are refused (403) on it,
        # so no seed can delete it from under the explanation and feedback calls.
        r = requests.post(f"{url}/api/v1/jobs?wait=10", data={"explain": "1"}, timeout=60,
                          headers={"Authorization": f"Bearer {OTHER_KEY}"},
                          files={"image": ("c.jpg", make_jpeg(seed=41), "image/jpeg")})
        job_id = r.json()["jobs"][0]["id"]
        assert live_server.wait_final(job_id)["status"] == "done"
        cmd = [str(services.BIN / "schemathesis"), "--config-file", str(CONFIG), "run",
               url + "/api/v1/openapi.json", "--checks", "all",
               "-H", f"Authorization: Bearer {API_KEY}", "--max-examples", "25", "--seed", "7",
               "--suppress-health-check", "all", "--request-timeout", "30"]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=420,
                             env=services.service_env({"DFD_CONTRACT_JOB_ID": job_id}))
    finally:
        services.stop(web)
    (tmp_path / "schemathesis.txt").write_text(out.stdout + out.stderr)
    report = out.stdout[-8000:] + out.stderr[-2000:]
    assert out.returncode == 0, report
    assert "No issues found" in out.stdout and "✅ Stateful" in out.stdout, report
    # Every operation selected was tested (Schemathesis leaves out the document's own route).
    selected, total = map(int, re.search(r"Selected: (\d+)/(\d+)", out.stdout).groups())
    tested = int(re.search(r"Tested: (\d+)", out.stdout).group(1))
    assert selected == total == tested >= 6, report
    assert re.search(r"API Links:\s+[1-9]\d* covered", out.stdout), report  # POST -> GET/DELETE
