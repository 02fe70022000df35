"""`python -m research.group_photos --model DIR`: are real group photos accused more often than
single portraits?

Photos of n real faces (n = 1, 2, 4, 8, 12) are composited from held-out real faces (the test
lists of the model's split.json for fairface-real and stylegan-faces; every real file when
there is none): each face resized to the same size, tiled with gaps on a plain, slightly noisy
background, saved as JPEG and decoded as uploads are. Every photo goes through the serving path
(decode, BlazeFace, the crop, the model, the stability check, the assessment: detector.analyze).
For each n it reports the share of photos whose assessment is `likely_fake` (what the page calls
"Likely fake"), the share the seed's `label` calls Fake (most suspicious face, threshold), the
share a most-suspicious-face rule without the group bar would call likely fake, and how many
faces BlazeFace found. n = 1 is the single-portrait rate the others are held to.
"""

from __future__ import annotations

import argparse
import io
import json
import math
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SOURCES = ("fairface-real", "stylegan-faces")
SIZES = (1, 2, 4, 8, 12)
FACE_PX, GAP_PX = 200, 40


def real_faces(model_dir: Path, data: Path = DATA) -> list[Path]:
    """Held-out real face files: the split's test lists where the model has a split.json."""
    split = model_dir / "split.json"
    sources = json.loads(split.read_text())["sources"] if split.is_file() else {}
    out = []
    for name in SOURCES:
        if name in sources:
            out += [data / name / rel for rel in sources[name]["test"] if rel.startswith("real/")]
        else:
            out += sorted((data / name / "real").glob("*.jpg"))
    out = [p for p in out if p.is_file()]
    if not out:
        raise SystemExit(f"no real faces under {data}/{{{','.join(SOURCES)}}}/real")
    return out


def group_photo(files: list[Path], rng: np.random.Generator) -> bytes:
    """One JPEG of these faces side by side, rows of ceil(sqrt(n))."""
    cols = math.ceil(math.sqrt(len(files)))
    rows = math.ceil(len(files) / cols)
    step = FACE_PX + GAP_PX
    w, h = cols * step + GAP_PX, rows * step + GAP_PX
    base = rng.integers(70, 190, 3)
    bg = np.clip(base + rng.normal(0, 6, (h, w, 3)), 0, 255).astype(np.uint8)
    canvas = Image.fromarray(bg)
    for k, path in enumerate(files):
        r, c = divmod(k, cols)
        face = Image.open(path).convert("RGB").resize((FACE_PX, FACE_PX), Image.BILINEAR)
        canvas.paste(face, (GAP_PX + c * step, GAP_PX + r * step))
    buf = io.BytesIO()
    canvas.save(buf, "JPEG", quality=92)
    return buf.getvalue()


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson interval of a share k / n."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    mid = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, mid - half), min(1.0, mid + half)


def _row(n: int, results: list[dict], single_bar: float) -> dict:
    def share(flags):
        k = int(sum(flags))
        lo, hi = wilson(k, len(flags))
        return {"share": round(k / len(flags), 4), "k": k, "ci95": [round(lo, 4), round(hi, 4)]}

    judged = [[f for f in r["faces"] if f.get("assessment") != "not_judged"] for r in results]
    return {
        "faces": n, "photos": len(results),
        "faces_found_mean": round(float(np.mean([len(r["faces"]) for r in results])), 2),
        "likely_fake": share([r["assessment"] == "likely_fake" for r in results]),
        "label_fake": share([r["label"] == "Fake" for r in results]),
        "uncorrected_likely_fake": share([bool(j) and max(f["p_fake"] for f in j) >= single_bar
                                          for j in judged]),
        "not_applicable": share([r["assessment"] == "not_applicable" for r in results]),
        "bar": round(float(np.median([r.get("bands", {}).get("likely_fake_from", single_bar)
                                      for r in results])), 4)}


def measure(model_dir: Path, photos: int, seed: int = 0, sizes=SIZES) -> dict:
    """The table: one row per group size, each over `photos` composited photos."""
    from detector.analyze import DECODE_SIZE, analyze_many
    from detector.faces import FaceDetector
    from detector.model import load_model
    from shared.images import decode_pil

    model, det = load_model(model_dir), FaceDetector()
    pool = real_faces(model_dir)
    rng = np.random.default_rng(seed)
    rows = []
    for n in sizes:
        results = []
        for start in range(0, photos, 16):
            blobs = [group_photo([pool[i] for i in rng.choice(len(pool), n, replace=False)], rng)
                     for _ in range(min(16, photos - start))]
            images = [decode_pil(b, reduce_to=DECODE_SIZE) for b in blobs]
            results += analyze_many(images, det, model)
        rows.append(_row(n, results, model.bands.likely_fake_from))
    return {"model": {"name": model.name, "version": model.version,
                      "prior_fake": model.prior_fake, "threshold": model.threshold,
                      "likely_fake_from": model.bands.likely_fake_from},
            "pool": {"real_faces": len(pool), "sources": list(SOURCES)},
            "face_px": FACE_PX, "seed": seed, "rows": rows}


def table(out: dict) -> str:
    """The rows as a Markdown table."""
    def cell(s):
        return f"{100 * s['share']:.1f}% ({100 * s['ci95'][0]:.1f}-{100 * s['ci95'][1]:.1f})"

    lines = ["| faces | photos | found (mean) | bar | **Likely fake** | label Fake | no group bar "
             "| not applicable |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in out["rows"]:
        lines.append(f"| {r['faces']} | {r['photos']} | {r['faces_found_mean']} | {r['bar']:.3f} "
                     f"| {cell(r['likely_fake'])} | {cell(r['label_fake'])} "
                     f"| {cell(r['uncorrected_likely_fake'])} | {cell(r['not_applicable'])} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m research.group_photos",
                                description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(ROOT / "models" / "dfd-mnv2"))
    p.add_argument("--photos", type=int, default=400, help="photos per group size")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=str(ROOT / "var" / "group-photos.json"))
    args = p.parse_args(argv)
    out = measure(Path(args.model), args.photos, args.seed)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    m = out["model"]
    print(f"{m['name']} {m['version']}, prior {m['prior_fake']}, likely fake from "
          f"{m['likely_fake_from']:.3f} for one face; {out['pool']['real_faces']} held-out "
          f"real faces ({', '.join(out['pool']['sources'])}), {out['face_px']} px each")
    print(table(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
