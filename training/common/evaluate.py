"""`dfd-train evaluate DIR`: score labelled images through the serving crop-and-classify path."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from shared import settings
from training.common import metrics as M
from training.common.data import list_images


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line of `dfd-train evaluate`."""
    p = argparse.ArgumentParser(prog="dfd-train evaluate", description=__doc__)
    p.add_argument("dir", nargs="?",
                   help="folder holding real/ and fake/ (nested folders allowed)")
    p.add_argument("--feedback", metavar="FILE",
                   help="a `dfd feedback export` JSONL file: report how often each model "
                        "version's verdicts agree with it (DIR may then be left out)")
    p.add_argument("--model", help="model directory (default: the service's, DFD_MODEL_PATH or "
                   "the shipped models/dfd-e2e)")
    p.add_argument("--json", dest="json_path", help="write every metric as one JSON object")
    p.add_argument("--roc", help="write the ROC curve as a PNG")
    p.add_argument("--limit", type=int, help="score at most N images (seeded sample)")
    p.add_argument("--seed", type=int, default=0, help="seed of the --limit sample")
    p.add_argument("--threshold", type=float, help="override the card's threshold")
    args = p.parse_args(argv)
    args.model = args.model or settings.read("MODEL_PATH")
    return args


def score_images(paths: list[str], face_finder, model, threshold=None, log=None) -> list[dict]:
    """detector.analyze.analyze for each file: the result dicts, in order."""
    from detector.analyze import analyze
    from shared.images import decode_image

    out, t0 = [], time.time()
    for k, path in enumerate(paths, 1):
        with open(path, "rb") as fh:
            rgb = decode_image(fh.read())
        out.append(analyze(rgb, face_finder, model, threshold))
        if log and k % 500 == 0:
            log(f"{k}/{len(paths)} images, {k / (time.time() - t0):.0f} img/s")
    return out


def draw_roc(y, p, path: str | Path, auc: float) -> None:
    """A plain ROC plot with Pillow: curve, chance diagonal, AUC in the corner."""
    from PIL import Image, ImageDraw

    fpr, tpr, _ = M.roc_curve(y, p)
    size, pad = 400, 40
    img = Image.new("RGB", (size + 2 * pad, size + 2 * pad), "white")
    d = ImageDraw.Draw(img)
    d.rectangle([pad, pad, pad + size, pad + size], outline="black")
    d.line([pad, pad + size, pad + size, pad], fill="#bbbbbb")
    pts = [(pad + f * size, pad + size - t * size) for f, t in zip(fpr, tpr, strict=True)]
    d.line(pts, fill="#c0392b", width=2)
    d.text((pad + 8, pad + 8), f"ROC AUC {auc:.4f}", fill="black")
    d.text((pad + size // 2 - 40, pad + size + 12), "false positive rate", fill="black")
    d.text((4, pad - 16), "true positive rate", fill="black")
    img.save(path)


def print_report(r: dict) -> None:
    """Human-readable summary of a metrics.report() dict."""
    c = r["confusion"]
    print(f"model      {r.get('model', {}).get('name')} {r.get('model', {}).get('version')}")
    print(f"images     {r['n']} ({r['n_real']} real, {r['n_fake']} fake); faces found in "
          f"{r.get('face_found', float('nan')):.1%}")
    print(f"threshold  {r['threshold']} (Fake when p_fake > threshold)")
    print(f"accuracy   {r['accuracy']:.4f}")
    print(f"ROC AUC    {r['auc']:.4f}")
    print(f"EER        {r['eer']:.4f}")
    print(f"ECE        {r['ece']:.4f} (15 bins, confidence of the predicted label)")
    for cls in ("real", "fake"):
        print(f"{cls:<5}      precision {r['precision'][cls]:.4f}  recall {r['recall'][cls]:.4f}")
    print("confusion  (rows: true, columns: predicted)")
    print("                real    fake")
    print(f"   real   {c['tn']:>8} {c['fp']:>7}")
    print(f"   fake   {c['fn']:>8} {c['tp']:>7}")


def main(argv: list[str] | None = None) -> int:
    """Evaluate a model directory on a labelled folder; returns a process exit code."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.feedback:
        from training.common.feedback import agreement, print_agreement, read_feedback

        try:
            table = agreement(read_feedback(args.feedback))
        except (OSError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print_agreement(table)
        if args.json_path and not args.dir:
            Path(args.json_path).write_text(json.dumps({"feedback": table}, indent=2) + "\n")
        if not args.dir:
            return 0
    if not args.dir:
        print("give a DIR to evaluate, or --feedback FILE", file=sys.stderr)
        return 2
    items = list_images(args.dir)
    if not items:
        print(f"no images under {args.dir}/real or {args.dir}/fake", file=sys.stderr)
        return 2
    if args.limit and len(items) > args.limit:
        keep = np.sort(np.random.default_rng(args.seed).choice(len(items), args.limit, False))
        items = [items[i] for i in keep]
    from detector.faces import FaceDetector
    from detector.model import ModelError, load_model

    try:
        model = load_model(args.model)
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    face_finder = FaceDetector()
    t0 = time.time()
    results = score_images([i.path for i in items], face_finder, model, args.threshold,
                           log=lambda m: print(m, file=sys.stderr, flush=True))
    y = np.array([i.label for i in items])
    p = np.array([r["p_fake"] for r in results], dtype=np.float64)
    threshold = model.threshold if args.threshold is None else args.threshold
    report = M.report(y, p, threshold)
    report["face_found"] = float(np.mean([bool(r.get("face_found", r.get("faces"))) for r in
                                          results]))
    report["model"] = {"name": model.name, "version": model.version, "path": str(args.model),
                       "runtime": model.runtime.name}
    report["dir"] = str(args.dir)
    report["seconds"] = round(time.time() - t0, 1)
    print_report(report)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(report, indent=2) + "\n")
    if args.roc:
        draw_roc(y, p, args.roc, report["auc"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
