"""The benchmark's table (text) and its JSON file; targets met or missed."""

from __future__ import annotations

import json
from pathlib import Path

# (key, description, comparison, threshold): issue 25's "Done when", on the served model.
TARGETS = [
    ("worker.images_per_s", "worker pipeline, images/s (all worker processes, stability check "
     "on; aim 30)", ">=", 15.0),
    ("e2e.idle_latency_ms.p50", "idle single-photo upload-to-verdict p50 through the page's "
     "request, ms", "<=", 300.0),
    ("ratio_e2e_to_naive", "end to end / naive app serving the same model (its Keras form), "
     "images/s", ">=", 3.0),
    ("worker.check_cost_ratio", "stability check's own CPU per face / the served score's (a "
     "card serving its versions' mean scores them as its score)", "<=", 0.5),
    ("rss_mb.worker", "worker process peak RSS, MB", "<=", 1024.0),
    ("rss_mb.web", "web process peak RSS, MB", "<=", 150.0),
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
    """Section 1: operations, the ceilings, one row per configuration, the served efficiency."""
    ops, c = m.get("flops", {}), m.get("ceilings", {})
    parts = "; ".join(f"{p['part']}: " + (f"{p['total'] / 1e9:.2f} G ({p['int8'] / 1e9:.2f} int8)"
                                          if p["total"] is not None else p.get("note", "n/a"))
                      for p in ops.get("parts", []))
    giga = {k: ops[k] / 1e9 if ops.get(k) is not None else None for k in ("total", "int8")}
    lines = ["## 1. Model", "",
             f"Operations per image (2 x multiply-accumulates, counted from the model's graphs): "
             f"{_f(giga['total'], 2)} G, of which int8 {_f(giga['int8'], 2)} G ({parts}).",
             "Ceilings measured here (2048 x 2048 matmul, best of repeated calls): "
             + ", ".join(f"{k.replace('_t', ' at ')} thread(s) {_f(v)} G/s"
                         for k, v in sorted(c.items())) + ".", ""]
    rows = []
    for r in m.get("runs", []):
        eff = r.get("efficiency", {})
        rows.append([r["runtime"], r.get("processes", 1), r["threads"], r["batch"],
                     _f(r.get("ms_per_batch"), 1), _f(r["images_per_s"], 2),
                     _f(eff.get("gops")), _f(eff.get("int8"), 3), _f(eff.get("float32"), 3)])
    lines += _table(["runtime", "procs", "threads", "batch", "ms/batch", "img/s", "GOP/s",
                     "of int8 ceiling", "of float32 ceiling"], rows)
    eff = m.get("efficiency", {})
    lines += ["", f"Efficiency as the worker serves it ({m.get('served_config')}, "
              f"{_f(m.get('served_images_per_s'), 2)} img/s): **{_f(eff.get('int8'), 3)}** of "
              f"the int8 ceiling, **{_f(eff.get('float32'), 3)}** of the float32 ceiling "
              "(all cores).", ""]
    return lines


def _worker_section(w: dict) -> list[str]:
    """Section 2: the worker's stages, the stability check's cost, large JPEGs."""
    st = w.get("stages_ms", {})
    lines = [f"## 2. Worker pipeline (640x480 JPEG, one face each; {w.get('processes')} worker "
             "processes, stability check on)", "",
             f"**{_f(w.get('images_per_s'), 2)} images/s**; faces per image "
             f"{_f(w.get('faces_per_image'), 2)}; the versions of "
             f"{_f(100 * (w.get('checked_share') or 0), 0)}% of faces were scored, and the "
             f"run keeps {_f(100 * w.get('stability_share', float('nan')), 0)}% of the rate of "
             "the crop alone.", "",
             f"Per image, one process: decode {_f(st.get('decode_ms'), 2)} ms, find faces "
             f"{_f(st.get('detect_ms'), 2)} ms, crop {_f(st.get('crop_ms'), 2)} ms, "
             f"model {_f(st.get('classify_ms'), 2)} ms ({_f(st.get('crops_per_image'), 2)} "
             f"crops per image); a face's other versions cost "
             f"{_f(st.get('variants_ms'), 2)} ms to make and "
             f"{_f(st.get('classify_variants_ms'), 2)} ms to score.", "",
             *_check_lines(w), "",
             f"\"Why?\" (occlusion map, {st.get('explain_grid')}x{st.get('explain_grid')} grid): "
             f"**{_f(st.get('explain_ms_per_face'), 1)} ms per face**.", ""]
    rows = [[v["label"], _f(v["images_per_s"], 2), _f(v.get("cpu_per_image_ms"), 1),
             _f(v.get("face_found"), 3), _f(v.get("checked_share"), 2)]
            for v in w.get("variants", [])]
    lines += _table(["configuration", "img/s", "CPU ms/img", "face found", "checked"], rows)
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


def _check_lines(w: dict) -> list[str]:
    """Issue 25 point 4 in words: what the check costs beyond the served score."""
    if w.get("check_cost_ratio") is None:
        return []
    score, extra = _f(w.get("score_ms_per_face"), 2), _f(w.get("check_extra_ms_per_face"), 2)
    if w.get("served_mean"):
        return [f"The card serves its versions' mean, so every face's score is its versions "
                f"({score} ms a face, made and scored); the stability check reads their spread "
                f"and costs no pass of its own ({extra} ms, ratio "
                f"{_f(w['check_cost_ratio'], 2)}; target <= 0.5)."]
    return [f"The stability check's own versions cost {extra} ms a face on average against the "
            f"served score's {score} ms (ratio {_f(w['check_cost_ratio'], 2)}; target <= 0.5)."]


def _e2e_section(data: dict, e: dict, n: dict) -> list[str]:
    """Sections 3-4: the service end to end beside the naive app."""
    lines = ["## 3b-4. End to end vs the naive app serving the same model (same photos, same "
             "clients)", ""]
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
              f"{_config(n.get('config'))}). Against the naive app given the service's own "
              f"runtime (the design alone): "
              f"{_f(data.get('ratio_e2e_to_naive_served_runtime'), 2)}x.", ""]
    return lines


def _idle_section(idle: dict | None) -> list[str]:
    """The idle single-photo latency through the page's request, with and without "Why?"."""
    if not idle:
        return []
    req = idle["request"]
    lines = ["## 3a. Idle upload-to-verdict latency through the page's request", "",
             f"One photo at a time on the idle service, as web/static/js/upload.js sends it: "
             f"POST {req['api']}{req['upload_path']}, field `{req['field']}`, no API key, then "
             f"long-polls until the verdict. The page asks for \"Why?\" at upload: "
             f"**{'yes' if idle['page_asks_why'] else 'no'}**.", ""]
    rows = []
    for key, label in (("with_why", "with \"Why?\" (explain=1)"),
                       ("without_why", "without \"Why?\"")):
        r = idle.get(key) or {}
        page = (key == "with_why") == idle["page_asks_why"]
        rows.append([label + (" (what the page sends)" if page else ""), r.get("done"),
                     _f(r.get("p50"), 0), _f(r.get("p95"), 0), _f(r.get("max"), 0)])
    return lines + _table(["request", "photos", "p50 ms", "p95 ms", "max ms"], rows) + [""]


def _previous_section(p: dict | None) -> list[str]:
    """The model before, side by side with the served one (never the headline)."""
    if not p:
        return []
    eff = p.get("efficiency", {})
    return ["## 6. The previous model, side by side", "",
            f"{p['path']} ({p['name']} {p['version']}), as served, on the same photos: model "
            f"alone {_f(p['model_images_per_s'], 1)} img/s (of the int8 ceiling "
            f"{_f(eff.get('int8'), 3)}, of the float32 ceiling {_f(eff.get('float32'), 3)}); "
            f"worker pipeline {_f(p['pipeline_images_per_s'], 1)} img/s (stability check on, "
            f"{_f(100 * p['checked_share'], 0)}% of faces checked; the check's own CPU "
            f"{_f(p.get('check_cost_ratio'), 2)} of the served score's).", ""]


def _header(data: dict) -> list[str]:
    from bench.machine import feature_text

    m, mach = data.get("model", {}), data.get("machine", {})
    kind = ("QUICK SMOKE RUN: small counts, its numbers are not results" if data.get("quick")
            else "full run")
    served = "the served model (shared.settings)" if data.get("served") else \
        "NOT the served model (--model)"
    return [f"# dfd benchmark ({kind}, {data.get('started_at', '')})", "",
            f"Machine: {mach.get('cpu_model')}; {mach.get('cores')} cores; "
            f"{feature_text(mach)} (flags: {', '.join(mach.get('simd', [])) or 'none'}); L2 "
            f"{mach.get('l2_per_core')} per core, L3 {mach.get('l3')}; {mach.get('memory_gb')} "
            f"GB; Python {mach.get('python')}; load average {mach.get('load_avg')} at start, "
            f"{data.get('load_avg_end')} at end.",
            f"Model: {m.get('path')} ({m.get('name')} {m.get('version')}), {served}; runtime "
            f"chosen by the loader: {m.get('runtime')}.", ""]


def render(data: dict) -> str:
    """The human-readable report (markdown tables)."""
    lines = _header(data)
    if data.get("model"):
        lines += _model_section(data["model"])
    if data.get("worker"):
        lines += _worker_section(data["worker"])
    e, n = data.get("e2e", {}), data.get("naive", {})
    if e:
        lines += _idle_section(e.get("idle")) + _e2e_section(data, e, n)
    rss = data.get("rss_mb", {})
    if rss:
        lines += ["## 5. Peak memory (RSS)", "",
                  f"web {_f(rss.get('web'))} MB, worker {_f(rss.get('worker'))} MB per process "
                  f"({_f(rss.get('worker_all'))} MB for all worker processes together); naive "
                  f"app worker {_f(rss.get('naive_web'))} MB.", ""]
    lines += _previous_section(data.get("previous"))
    if data.get("video"):
        from bench.video_bench import render as video

        lines += ["## 7. Video", "", video(data["video"]["stages"], data["video"]["rules"]), ""]
    lines += ["## Targets (issue 25)", ""]
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
