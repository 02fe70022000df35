"""The benchmark measures what is served: the settings' model in every section, the page's own
request, the CPU's flags; and `python -m bench --quick` runs every section end to end."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench import machine, served_model
from bench.flops import onnx_flops
from bench.page import JS, page_request
from bench.report import check_targets
from bench.sections import check_cost
from shared import settings
from tests.golden import DATA

ROOT = Path(__file__).resolve().parents[1]
AMX_HOST = ("model name\t: Intel(R) Xeon(R) Platinum 8480+\ncpu family\t: 6\nmodel\t\t: 143\n"
            "flags\t\t: fpu sse2 avx2 fma avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile "
            "amx_int8 hypervisor\n")
AVX2_HOST = ("model name\t: AMD EPYC 7B12\ncpu family\t: 23\nmodel\t\t: 49\n"
             "flags\t\t: fpu sse2 avx2 fma\n")


def test_the_bench_serves_the_settings_model(monkeypatch):
    monkeypatch.delenv("DFD_MODEL_PATH", raising=False)
    assert served_model() == settings.load({}).MODEL_PATH
    monkeypatch.setenv("DFD_MODEL_PATH", "/elsewhere/model")
    assert served_model() == "/elsewhere/model"


def test_make_bench_runs_its_headline_on_the_served_model():
    text = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^bench:.*\n((?:\t.*\n)+)", text, re.M).group(1)
    assert "-m bench " in recipe or "-m bench\n" in recipe
    assert "--model" not in recipe, "the headline sections must measure the served model"


def test_the_idle_request_is_the_pages_own():
    req = page_request()
    upload = (JS / "upload.js").read_text()
    util = (JS / "util.js").read_text()
    wait = re.search(r"WAIT_S\s*=\s*(\d+)", util).group(1)
    assert req["upload_path"] == f"/jobs?wait={wait}" and req["poll_wait"] == int(wait)
    assert req["api"] == "/api/v1" and req["field"] == "image"
    assert req["explain"] == ('form.append("explain", "1")' in upload)


@pytest.mark.parametrize(("text", "want"), [
    (AMX_HOST, {"AMX": True, "VNNI": True, "AVX2": True, "bf16": True, "AVX-512": True}),
    (AVX2_HOST, {"AMX": False, "VNNI": False, "AVX2": True, "bf16": False, "AVX-512": False}),
])
def test_the_report_names_the_cpu_and_its_flags(text, want):
    info = machine.describe(text)
    assert info["features"] == want
    assert info["cpu_model"].startswith(machine.cpuinfo(text)["model name"])
    assert machine.feature_text(info).startswith(f"AMX {'yes' if want['AMX'] else 'no'}")


def test_operations_are_counted_on_the_graph_the_outputs_need():
    from onnx import TensorProto, helper, numpy_helper

    w8 = numpy_helper.from_array(np.ones((3, 4), np.int8), "w8")
    wc = numpy_helper.from_array(np.ones((2, 1, 3, 3), np.float32), "wc")
    wf = numpy_helper.from_array(np.ones((4, 5), np.float32), "wf")
    nodes = [helper.make_node("MatMulInteger", ["a", "w8"], ["q"]),
             helper.make_node("Conv", ["img", "wc"], ["c"]),  # 2 x (2*4*4) x 9 = 576
             helper.make_node("MatMul", ["f", "wf"], ["unused"])]  # not needed: not counted
    graph = helper.make_graph(nodes, "g", [
        helper.make_tensor_value_info("a", TensorProto.UINT8, ["batch", 2, 3]),
        helper.make_tensor_value_info("img", TensorProto.FLOAT, ["batch", 1, 6, 6]),
        helper.make_tensor_value_info("f", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("q", TensorProto.INT32, None),
         helper.make_tensor_value_info("c", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("unused", TensorProto.FLOAT, None)], [w8, wc, wf])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    got = onnx_flops(model, ["q", "c"])
    assert got == {"total": 2 * 2 * 3 * 4 + 576, "int8": 2 * 2 * 3 * 4, "float": 576}


STAGES = {"classify_ms": 3.0, "variants_ms": 1.0, "classify_variants_ms": 6.0}


def test_the_check_costs_nothing_of_its_own_where_the_versions_are_the_score():
    # A card serving its versions' mean scores them for every face as its score.
    mean = check_cost({**STAGES, "served_mean": True}, 1.0)
    assert mean["score_ms_per_face"] == 10.0 and mean["check_cost_ratio"] == 0.0


def test_a_selective_check_costs_its_versions_on_the_faces_it_checks():
    # 27% of faces checked, 7 ms of versions each, against a 3 ms score: 0.63, over 0.5.
    own = check_cost({**STAGES, "served_mean": False}, 0.27)
    assert own["check_extra_ms_per_face"] == pytest.approx(1.89)
    assert own["check_cost_ratio"] == pytest.approx(0.63)
    assert not next(t for t in check_targets({"worker": own})
                    if t["key"] == "worker.check_cost_ratio")["met"]


def run_quick(module: str, *args: str) -> None:
    """`python -m MODULE --quick ARGS...` as `make bench` runs it, on the settings' model."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DFD_MODEL_PATH", None)
    run = subprocess.run([sys.executable, "-m", module, "--quick", *args], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=2400)
    assert run.returncode == 0, run.stderr[-4000:]


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.skipif(not DATA.is_dir(), reason="needs ../shared/data (the bench's faces)")
def test_quick_bench_runs_every_section_on_the_served_model(tmp_path):
    out = tmp_path / "latest.json"
    run_quick("bench", "--previous", str(ROOT / "models" / "dfd-clip"), "--out", str(out))
    data = json.loads(out.read_text())
    served = settings.load({}).MODEL_PATH
    card = json.loads((Path(served) / "card.json").read_text())
    assert data["model_dir"] == served and data["served"]
    m = data["model"]
    assert (m["name"], m["version"]) == (card["name"], card["version"])
    assert m["flops"]["total"] > 0 and m["efficiency"]["int8"] > 0
    assert all(data["model"]["ceilings"][k] > 0 for k in ("int8_t1", "float32_t1"))
    w = data["worker"]
    assert w["processes"] == data["machine"]["cores"] and w["images_per_s"] > 0
    assert w["faces_per_image"] == 1.0 and w["variants"][0]["stability"]
    assert w["served_mean"] == (card["assessment"].get("served") == "mean of variants")
    assert w["check_cost_ratio"] == check_cost(w["stages_ms"], w["checked_share"])[
        "check_cost_ratio"]
    assert {t["key"] for t in data["targets"]} >= {"worker.check_cost_ratio"}
    idle = data["e2e"]["idle"]
    assert idle["page_asks_why"] == page_request()["explain"]
    for key in ("with_why", "without_why"):
        assert idle[key]["done"] == data["counts"]["idle"], idle
    assert data["e2e"]["done"] == data["counts"]["n"] and data["naive"]["done"] > 0
    assert data["ratio_e2e_to_naive"] > 0 and data["ratio_e2e_to_naive_served_runtime"] > 0
    # The baseline is the model's Keras form; the service's own runtime is the side row.
    assert data["naive"]["config"]["runtime"] == "keras"
    assert data["naive"]["served_runtime"]["config"]["runtime"] == "auto"
    assert data["rss_mb"]["worker"] > 0 and data["rss_mb"]["web"] > 0
    assert data["previous"]["name"] != card["name"] and data["video"]["stages"]["frames"] > 0
    text = out.with_suffix(".txt").read_text()
    assert data["machine"]["cpu_model"] in text and "AMX " in text and "VNNI " in text
    assert "QUICK SMOKE RUN" in text and f"{card['name']} {card['version']}" in text


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.skipif(not DATA.is_dir(), reason="needs ../shared/data (the bench's faces)")
def test_side_by_side_measures_each_models_stages(tmp_path):
    # `make bench` runs it after the main bench: a failure here fails `make bench`.
    out = tmp_path / "sbs.txt"
    run_quick("bench.side_by_side", str(ROOT / "models" / "dfd-e2e"), "--out", str(out))
    (row,) = json.loads(out.with_suffix(".json").read_text())["rows"]
    assert row["stages_ms"]["classify_ms"] > 0 and row["stages_ms"]["explain_ms_per_face"] > 0
    assert row["all_cores"] > 0 and "classify_variants_ms" in out.read_text()

