"""The wheel (what the Docker image installs) carries everything the service needs to run
without the source tree: the page's static files, its templates and the model."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_holds_page_files_and_model(tmp_path):
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                          str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    wheel = next(tmp_path.glob("dfd-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    page = {f"web/{p.relative_to(ROOT / 'web').as_posix()}"
            for p in (ROOT / "web").rglob("*") if p.suffix in (".html", ".css", ".js")}
    assert page and page <= names, page - names
    data = next(n.split("/data/")[0] for n in names if "/data/share/" in n) + "/data/"
    for model, files in (("dfd-e2e", ("card.json", "model.tflite", "model.keras")),
                         ("dfd-clip", ("card.json", "head.json")),
                         ("dfd-mnv2", ("card.json", "model.tflite", "model.keras"))):
        for needed in files:
            assert f"{data}share/dfd/models/{model}/{needed}" in names, \
                sorted(n for n in names if "data" in n)
    # The page templates (top-level templates/, Flask's template_folder) as data files too.
    templates = {f"{data}share/dfd/templates/{p.name}" for p in (ROOT / "templates").glob("*")}
    assert templates and templates <= names, templates - names
    assert "web/wsgi.py" in names and "worker/app.py" in names and "detector/model.py" in names
    assert "detector/provenance_markers.json" in names  # read by the worker for every job
    assert not any(n.startswith(("tests/", "var/")) for n in names)
