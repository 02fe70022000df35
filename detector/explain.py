"""Occlusion maps: where covering part of a face crop changed the model's P(fake).

For each face the 224 px crop is split into a GRID x GRID grid; each cell in turn is painted
mid-grey and the crop scored again, all copies of one face in one model call. A cell's number
is P(fake) of the crop as found minus P(fake) with that cell covered: positive where covering it
lowered the score (that region pushed the score up), negative where it raised it. This shows
what the score depends on, not "where the fake is".
"""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from detector.crop import CROP_SIZE, centre_square, face_crops, square_box
from detector.faces import as_image

GRID = 7  # 32 px cells of the 224 crop: 50 crops a face, about 50 ms with LiteRT on one core
GREY = 128
OVERLAY_PX = 112  # side of the overlay PNG; the page stretches it over the crop's square
METHOD = {"name": "occlusion", "grid": GRID, "patch_px": CROP_SIZE // GRID, "fill": GREY,
          "value": "p_fake(crop) - p_fake(crop with the cell covered)"}


def occluded(crop: np.ndarray, grid: int = GRID) -> np.ndarray:
    """(1 + grid*grid, 224, 224, 3): the crop, then one copy per cell with that cell grey."""
    cell = CROP_SIZE // grid
    out = np.repeat(np.asarray(crop, np.uint8)[None], 1 + grid * grid, axis=0)
    for k in range(grid * grid):
        r, c = divmod(k, grid)
        # The last row and column take the remainder, so the grid covers the whole crop.
        r1 = CROP_SIZE if r == grid - 1 else (r + 1) * cell
        c1 = CROP_SIZE if c == grid - 1 else (c + 1) * cell
        out[1 + k, r * cell:r1, c * cell:c1] = GREY
    return out


def occlusion_map(model, crop: np.ndarray, grid: int = GRID) -> tuple[float, np.ndarray]:
    """(P(fake) of the crop, (grid, grid) P(fake) change when each cell is covered)."""
    p = model.predict(occluded(crop, grid))
    return float(p[0]), (p[0] - p[1:]).reshape(grid, grid)


def overlay_png(delta: np.ndarray, size: int = OVERLAY_PX) -> bytes:
    """A transparent PNG of the map: red where covering lowered P(fake), blue where it raised
    it, opacity by size of the change (scaled to the largest, at least 0.05)."""
    scale = max(float(np.abs(delta).max()), 0.05)
    strength = np.clip(np.abs(delta) / scale, 0, 1)
    rgba = np.zeros((*delta.shape, 4), np.uint8)
    rgba[..., 0] = np.where(delta > 0, 220, 40)
    rgba[..., 1] = 40
    rgba[..., 2] = np.where(delta > 0, 40, 220)
    rgba[..., 3] = (strength * 170).astype(np.uint8)
    img = Image.fromarray(rgba, "RGBA").resize((size, size), Image.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=True)
    return buf.getvalue()


def explain_image(image, face_finder, model, grid: int = GRID) -> list[dict]:
    """One entry per face (as analyze finds them; the centre square when there is none)."""
    img = as_image(image)
    crops, faces = face_crops(img, face_finder)
    w, h = img.size
    boxes = [square_box(f.box, w, h) for f in faces] or [centre_square(w, h)]
    out = []
    for i, (crop, crop_box) in enumerate(zip(crops, boxes, strict=True)):
        p, delta = occlusion_map(model, crop, grid)
        png = overlay_png(delta)
        out.append({"face": i if faces else None,
                    "box": [round(float(v), 1) for v in faces[i].box] if faces else None,
                    "crop_box": [int(v) for v in crop_box], "p_fake": round(p, 6),
                    "delta": [[round(float(v), 4) for v in row] for row in delta],
                    "overlay_png": "data:image/png;base64," + base64.b64encode(png).decode()})
    return out
