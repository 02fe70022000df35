"""The benchmark's table (text) and its JSON file; targets met or missed."""

from __future__ import annotations

import json
from pathlib import Path

# (key, description, comparison, threshold)
TARGETS = [
    ("model.efficiency", "model efficiency (img/s x FLOPs / matmul FLOP/s)", ">=", 0.5),
    ("worker.images_per_s", "worker pipeline, images/s per process", ">=", 150.0),
    ("ratio_e2e_to_naive", "end to end / naive images/s", ">=", 5.0),
    ("e2e.idle_latency_ms.p50", "idle single-image latency p50, ms", "<=", 60.0),
    ("rss_mb.web", "web process peak RSS, MB", "<=", 150.0),
    ("rss_mb.worker", "worker process peak RSS, MB", "<=", 500.0),
]


def get(data: dict, dotted: str):
    """data['a']['b'] for 'a.b'; None when any part is missing."""
    for part in dotted.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def check_targets(data: dict) -> list[dict]:
    """Each target with its measured value and whether it is met."""
    out = []
    for key, what, op, limit in TARGETS:
        value = get(data, key)
        met = None if value is None else (value >= limit if op == ">=" else value <= limit)
        out.append({"key": key, "what": what, "target": f"{op} {limit:g}", "value": value,
                    "met": met})
    return out


def _f(v, digits: int = 1) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return str(v)


def _table(headers: list[str], rows: list[list]) -> list[str]:
    cells = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(headers)]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"  # noqa: E731
    return [line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|",
            *(line(r) for r in cells)]


def _model_section(m: dict) -> list[str]:
    """Section 1: FLOPs, the matmul ceiling, one row per runtime configuration."""
    mm = m.get("matmul_gflops", {})
    lines = ["## 1. Model", "",
              f"FLOPs per image: {m['flops_per_image'] / 1e6:.1f} M (2 x MACs of Conv2D, "
              f"DepthwiseConv2D, Dense at the trunk's {m.get('internal_size')} px). "
              f"float32 matmul ceiling: numpy {_f(mm.get('numpy'))}, TensorFlow "
              f"{_f(mm.get('tensorflow'))} GFLOP/s; the higher, {_f(mm.get('ceiling'))}, "
              "is used.", ""]
    rows = []
    for r in m.get("runs", []):
        gflops = r["images_per_s"] * m["flops_per_image"] / 1e9
        rows.append([r["runtime"], r.get("processes", 1), r["threads"], r["batch"],
                     r.get("per_call", r["batch"]),
                     _f(r.get("ms_per_batch"), 2), _f(r["images_per_s"], 0), _f(gflops),
                     _f(gflops / mm["ceiling"], 2) if mm.get("ceiling") else "n/a"])
    lines += _table(["runtime", "procs", "threads", "batch", "crops/call", "ms/batch",
                     "img/s", "GFLOP/s", "efficiency"], rows)
    lines += ["", f"Efficiency as the worker serves it ({m.get('efficiency_config')}): "
              f"**{_f(m.get('efficiency'), 2)}**.", ""]
    return lines


def _worker_section(w: dict) -> list[str]:
    """Section 2: the worker's stages, the stability check's cost, large JPEGs."""
    st = w.get("stages_ms", {})
    lines = ["## 2. Worker pipeline (640x480 JPEG, one face each)", "",
              f"Per image: decode {_f(st.get('decode_ms'), 2)} ms, find faces "
              f"{_f(st.get('detect_ms'), 2)} ms, crop {_f(st.get('crop_ms'), 2)} ms, "
              f"classify {_f(st.get('classify_ms'), 2)} ms "
              f"({_f(st.get('crops_per_image'), 2)} crops per image); the stability check "
              f"adds {_f(st.get('variants_ms'), 2)} ms to make each face's 3 variants and "
              f"{_f(st.get('classify_variants_ms'), 2)} ms to score all 4 versions "
              "(instead of the classify time).", "",
              f"\"Why?\" (occlusion map, {st.get('explain_grid', 7)}x"
              f"{st.get('explain_grid', 7)} grid, uploads sent with explain=1): "
              f"**{_f(st.get('explain_ms_per_face'), 1)} ms per face** (budget 2000).", "",
              f"With the stability check the worker keeps "
              f"**{_f(100 * w.get('stability_share', float('nan')), 0)}%** of its rate "
              "without it (target: at least 70%).", ""]
    rows = [[v["label"], _f(v["images_per_s"], 0), _f(v.get("cpu_per_image_ms"), 2),
             _f(v.get("face_found"), 3)] for v in w.get("variants", [])]
    lines += _table(["configuration", "img/s", "CPU ms/img", "face found"], rows)
    big = w.get("large_jpeg")
    if big:
        full, red = big["full"], big["reduced"]
        lines += ["", f"{big['photo']}: decoded whole ({full['decoded']}) "
                  f"{_f(full['decode_ms'])} ms + {_f(full['faces_crop_classify_ms'])} ms; "
                  f"at DECODE_SIZE {big['decode_size']} ({red['decoded']}) "
                  f"{_f(red['decode_ms'])} ms + {_f(red['faces_crop_classify_ms'])} ms; "
                  f"faces found {_f(full['face_found'], 2)} / {_f(red['face_found'], 2)}."]
    lines.append("")
    return lines


def _e2e_section(data: dict, e: dict, n: dict) -> list[str]:
    """Sections 3-4: the service end to end beside the naive app."""
    lines = ["## 3-4. End to end vs the naive app (same photos, same clients)", ""]
    rows = []
    for label, r in [("service (shipped config)", e), *[(v["label"], v) for v in
                                                        e.get("variants", [])],
                     *[(v["label"] + (" (baseline)" if v["config"] == n.get("config")
                                      else ""), v) for v in n.get("variants", [n])]]:
        if not r:
            continue
        lat, idle = r.get("latency_ms", {}), r.get("idle_latency_ms") or {}
        rows.append([label, r.get("done"), _f(r.get("images_per_s")), _f(lat.get("p50"), 0),
                     _f(lat.get("p95"), 0), _f(lat.get("p99"), 0), _f(idle.get("p50"), 0),
                     r.get("reused", 0)])
    lines += _table(["setup", "images", "img/s", "p50 ms", "p95 ms", "p99 ms",
                     "idle p50 ms", "reused"], rows)
    for label, r in (("service", e), ("naive", n)):
        cpu = r.get("cpu_ms_per_image")
        if cpu:
            parts = ", ".join(f"{k} {_f(v, 2)}" for k, v in cpu.items())
            lines += ["", f"CPU ms per image, {label}: {parts} "
                      f"(total {_f(sum(cpu.values()), 2)})."]
    lines += ["", f"End to end / naive: **{_f(data.get('ratio_e2e_to_naive'), 1)}x** "
              f"({e.get('clients')} concurrent clients; {_config(e.get('config'))}; naive: "
              f"{_config(n.get('config'))}).", ""]
    return lines


def render(data: dict) -> str:
    """The human-readable report (markdown tables)."""
    m, mach = data.get("model", {}), data.get("machine", {})
    lines = [f"# dfd benchmark ({'quick smoke run' if data.get('quick') else 'full run'}, "
             f"{data.get('started_at', '')})", "",
             f"Machine: {mach.get('cpu_model')}; {mach.get('cores')} cores "
             f"({', '.join(mach.get('simd', []))}; L2 {mach.get('l2_per_core')} per core, "
             f"L3 {mach.get('l3')}); {mach.get('memory_gb')} GB; Python {mach.get('python')}.",
             f"Model: {m.get('path')} ({m.get('name')} {m.get('version')}; "
             f"{m.get('params', 0):,} parameters).", ""]
    if m:
        lines += _model_section(m)
    w = data.get("worker", {})
    if w:
        lines += _worker_section(w)
    e, n = data.get("e2e", {}), data.get("naive", {})
    if e:
        lines += _e2e_section(data, e, n)
    rss = data.get("rss_mb", {})
    if rss:
        lines += ["## 5. Peak memory (RSS of one process)", "",
                  f"web {_f(rss.get('web'))} MB, worker {_f(rss.get('worker'))} MB "
                  f"(naive app worker: {_f(rss.get('naive_web'))} MB).", ""]
    lines += ["## Targets", ""]
    rows = [[t["what"], t["target"], _f(t["value"], 2),
             {True: "met", False: "MISSED", None: "not measured"}[t["met"]]]
            for t in data.get("targets", [])]
    lines += _table(["target", "goal", "measured", ""], rows)
    return "\n".join(lines) + "\n"


def _config(cfg: dict | None) -> str:
    if not cfg:
        return "n/a"
    return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in cfg.items())


def write(data: dict, out: Path) -> str:
    """Write JSON to out and the table next to it (.txt); returns the table."""
    data["targets"] = check_targets(data)
    text = render(data)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2, default=float) + "\n")
    out.with_suffix(".txt").write_text(text)
    return text
