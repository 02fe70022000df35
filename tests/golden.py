"""Golden outputs: each kept model's P(fake), face boxes and scores on fixed images, stored
bit for bit, so a change of layout or code that should not move a number is shown not to.

`python -m tests.golden --write` records them for the served model (models/dfd-e2e) and the two
before it (models/dfd-clip, models/dfd-mnv2); do that only when a model itself changes (the test
then names the new version).

The CLIP tower runs on ONNX Runtime, whose int8 kernels differ by CPU: on one with AVX-512 VNNI
two of these eight images score a little differently than on an AVX2-only CPU (logits -6.43 and
-6.26 against -6.77 and -6.21; labels, boxes and every other number the same). So the CLIP
model's outputs are recorded per kind of CPU (cpu_kind), each bit for bit; `--write` records
the kind of the machine it runs on and keeps the others. (The Intel host with AMX, which serves
the file as shipped, gave the same numbers as the AVX-512 VNNI host's unsigned layout.)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
MODELS = {"dfd-e2e": (ROOT / "models" / "dfd-e2e", ROOT / "tests" / "golden" / "outputs-e2e.json"),
          "dfd-mnv2": (ROOT / "models" / "dfd-mnv2", ROOT / "tests" / "golden" / "outputs.json"),
          "dfd-clip": (ROOT / "models" / "dfd-clip",
                       ROOT / "tests" / "golden" / "outputs-clip.json")}
MODEL, GOLDEN = MODELS["dfd-mnv2"]
TRUNK_MODELS = ("dfd-clip",)  # outputs recorded per CPU kind (ONNX Runtime's int8 kernels)
# StyleGAN and FFHQ faces, a real and a swapped video frame, a DFDC crop, a FairFace face.
FILES = ("stylegan-faces/fake/00AUP94LQS.jpg", "stylegan-faces/real/00001.jpg",
         "ff-crops/val/real/00000/00000.jpg", "ff-crops/val/fake/00000/00000.jpg",
         "dfdc-faces/real/aamjfukxwp/aamjfukxwp.jpg", "fairface-real/real/10001.jpg")


def cpu_kind() -> str:
    """This CPU's int8-relevant instruction sets, e.g. "avx2" or "avx2-avx512f-avx512_vnni"
    (the kind the served tower's weight layout is chosen by)."""
    from detector.runtimes.choice import cpu_flags
    from detector.runtimes.choice import cpu_kind as kind

    return kind(cpu_flags())


def golden_file(name: str, kind: str | None = None) -> Path:
    """The recorded outputs of a model for a CPU kind (the served model: one file per kind)."""
    path = MODELS[name][1]
    if name not in TRUNK_MODELS:
        return path
    kind = kind or cpu_kind()
    return path if kind == "avx2" else path.with_name(f"{path.stem}-{kind}.json")


def _images() -> dict[str, bytes]:
    import io

    import numpy as np
    from PIL import Image

    out = {}
    for rel in FILES:
        out[rel] = (DATA / rel).read_bytes()
    # One face pasted into a larger photo (the face finder and the margin do real work) and one
    # image with no face (the centred-square fallback).
    face = Image.open(io.BytesIO(out[FILES[0]])).convert("RGB").resize((120, 120))
    canvas = Image.new("RGB", (640, 480), (90, 110, 130))
    canvas.paste(face, (300, 140))
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 400, 3), np.uint8))
    for name, img in (("pasted-face.png", canvas), ("noise.png", noise)):
        buf = io.BytesIO()
        img.save(buf, "PNG")
        out[name] = buf.getvalue()
    return out


def outputs(model_dir: Path = MODEL) -> dict:
    """{'version': model version, 'images': {name: result fields that must not move}}."""
    from detector.analyze import DECODE_SIZE, analyze
    from detector.faces import FaceDetector
    from detector.model import load_model
    from shared.images import decode_pil

    model, det = load_model(model_dir), FaceDetector()
    images = {}
    for name, data in _images().items():
        r = analyze(decode_pil(data, reduce_to=DECODE_SIZE), det, model)
        images[name] = {"p_fake": float(r["p_fake"]).hex(), "label": r["label"],
                        "faces": [[float(v).hex() for v in f["box"]] + [float(f["p_fake"]).hex()]
                                  for f in r["faces"]]}
    return {"version": model.version, "images": images}


def assert_worker_scores_as_the_core(server, model_dir: Path, rels: tuple[str, ...]) -> list[dict]:
    """Post these data images in one upload to a live service (tests.conftest.LiveServer) whose
    worker holds model_dir's model: each final result names that model and equals the inference
    core's own (P(fake) within 1e-6, the same assessment). Returns the results."""
    import requests

    from detector.analyze import DECODE_SIZE, analyze
    from detector.faces import FaceDetector
    from detector.model import load_model
    from shared.images import decode_pil

    card = json.loads((model_dir / "card.json").read_text())
    blobs = [(DATA / rel).read_bytes() for rel in rels]
    files = [("image", (f"f{i}.jpg", b, "image/jpeg")) for i, b in enumerate(blobs)]
    r = requests.post(f"{server.url}/api/v1/jobs", files=files, params={"wait": 10},
                      headers={"Authorization": f"Bearer {server.api_key}"}, timeout=60)
    assert r.status_code in (200, 202), r.text
    model, det = load_model(model_dir), FaceDetector()
    results = []
    for job, blob in zip(r.json()["jobs"], blobs, strict=True):
        final = server.wait_final(job["id"], timeout=120)
        assert final["status"] == "done", final
        res = final["result"]
        assert (res["model"]["name"], res["model"]["version"]) == (card["name"], card["version"])
        want = analyze(decode_pil(blob, reduce_to=DECODE_SIZE), det, model)
        assert abs(res["p_fake"] - want["p_fake"]) < 1e-6
        assert res["assessment"] == want["assessment"]
        results.append(res)
    return results


if __name__ == "__main__":
    for name, (model_dir, _) in MODELS.items():
        golden = golden_file(name)
        if sys.argv[1:] != ["--write"]:
            print(json.dumps(outputs(model_dir), indent=1))
        else:
            golden.parent.mkdir(exist_ok=True)
            golden.write_text(json.dumps(outputs(model_dir), indent=1) + "\n")
            print(f"wrote {golden}")
