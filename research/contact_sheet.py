"""`python -m research.contact_sheet`: training crops beside serving crops of composed photos."""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

TILE = 112
LABEL_W = 190


def compose_photo(face: np.ndarray, rng: np.random.Generator, size=(640, 480)) -> np.ndarray:
    """A 640x480 'photo': a face image pasted at a random size and place on a smooth scene."""
    w, h = size
    # A soft random background: a few large blurred colour blobs and a little sensor noise.
    bg = Image.new("RGB", size, tuple(int(v) for v in rng.integers(40, 200, 3)))
    d = ImageDraw.Draw(bg)
    for _ in range(6):
        x, y, r = rng.integers(0, w), rng.integers(0, h), rng.integers(60, 220)
        d.ellipse([x - r, y - r, x + r, y + r], fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    bg = bg.filter(ImageFilter.GaussianBlur(25))
    side = int(rng.integers(150, 330))
    x, y = int(rng.integers(0, w - side)), int(rng.integers(0, h - side))
    bg.paste(Image.fromarray(face).resize((side, side), Image.BICUBIC), (x, y))
    arr = np.asarray(bg, np.float32) + rng.normal(0, 2.0, (h, w, 3))
    # Uploaded as a phone would save it: JPEG quality 90.
    buf = io.BytesIO()
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def face_share(crops: list[np.ndarray], face_finder) -> float:
    """Mean side of the detected face box over the crop side: how tightly a crop frames a face."""
    sides = []
    for c in crops:
        faces = face_finder.detect(c)
        if faces:
            x0, y0, x1, y1 = faces[0].box
            sides.append(max(x1 - x0, y1 - y0) / c.shape[0])
    return float(np.mean(sides)) if sides else float("nan")


def sheet(rows: list[tuple[str, list[np.ndarray]]]) -> Image.Image:
    """A labelled grid: one row per (label, images), each image fitted into a TILE square."""
    cols = max(len(ims) for _, ims in rows)
    img = Image.new("RGB", (LABEL_W + cols * TILE, len(rows) * TILE), "white")
    d = ImageDraw.Draw(img)
    for r, (label, ims) in enumerate(rows):
        for k, line in enumerate(label.split("\n")):
            d.text((6, r * TILE + 8 + 14 * k), line, fill="black")
        for c, im in enumerate(ims):
            t = Image.fromarray(im)
            t.thumbnail((TILE - 4, TILE - 4))
            img.paste(t, (LABEL_W + c * TILE + (TILE - t.width) // 2,
                          r * TILE + (TILE - t.height) // 2))
    return img


def main(argv: list[str] | None = None) -> int:
    """Write the contact sheet; print how tightly each row frames its faces."""
    p = argparse.ArgumentParser(prog="python -m research.contact_sheet", description=__doc__)
    p.add_argument("--data", default="../shared/data", type=Path)
    p.add_argument("--out", default="docs/crops.jpg")
    p.add_argument("--n", type=int, default=7, help="images per row")
    p.add_argument("--seed", type=int, default=3)
    a = p.parse_args(sys.argv[1:] if argv is None else argv)
    from detector.crop import face_crops
    from detector.faces import FaceDetector
    from shared.images import decode_image
    from training.common.data import list_images
    from training.common.prep import crop_one

    det = FaceDetector()  # the detector and settings both the cache and serving use
    rng = np.random.default_rng(a.seed)

    def pick(root: Path) -> list[str]:
        items = list_images(root)
        return [items[i].path for i in rng.choice(len(items), a.n, replace=False)]

    rows, shares = [], {}
    for name, root in (("ff-crops", a.data / "ff-crops" / "val"),
                       ("dfdc-faces", a.data / "dfdc-faces")):
        crops = [crop_one(f, det)[0] for f in pick(root)]
        shares[f"training {name}"] = face_share(crops, det)
        rows.append((f"training crops\n{name}\n(crop cache: crop_one\n= face_crops)", crops))
    sg = pick(a.data / "stylegan-faces")
    train_sg = [crop_one(f, det)[0] for f in sg]
    shares["training stylegan-faces"] = face_share(train_sg, det)
    rows.append(("training crops\nstylegan-faces\n(256 px whole faces)", train_sg))
    photos = [compose_photo(decode_image(Path(f).read_bytes()), rng) for f in sg]
    decoded = [decode_image(b) for b in photos]
    # The serving path: detector.analyze.analyze crops every upload with face_crops.
    serve = [face_crops(rgb, det)[0][0] for rgb in decoded]
    shares["serving, same faces in photos"] = face_share(serve, det)
    rows.append(("serving crops\nthe same stylegan faces\npasted into 640x480\nphotos (face_crops)",
                 serve))
    rows.append(("the uploaded photos\n(640x480, JPEG q90)", decoded))
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet(rows).save(out, quality=80, optimize=True)
    for k, v in shares.items():
        print(f"{k}: face box side / crop side {v:.3f}")
    print(f"wrote {out} ({out.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
