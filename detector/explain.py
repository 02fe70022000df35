"""Occlusion maps: where covering part of a face crop changed the model's P(fake).

For each face the 224 px crop is split into a grid x grid grid (the model card's `explain.grid`,
else GRID, never finer than BUDGET_S allows at the card's measured cost per crop); each cell in
turn is painted mid-grey and the crop scored again, all copies of one face in one model call. A
cell's number is P(fake) of the crop as found minus P(fake) with that cell covered: positive
where covering it lowered the score (that region pushed the score up), negative where it raised
it. This shows what the score depends on, not "where the fake is".
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
# The most one face's map may cost in one worker process (cells + 1 crops scored). It is made
# after the verdict, but it still holds a process of two: 1 s a face (issue 25; 2 s before).
BUDGET_S = 1.0
MOVES = 0.01  # a change of P(fake) smaller than this, in every cell, is "nothing moved"


def grid_for(seconds_per_crop: float, budget_s: float = BUDGET_S, finest: int = GRID) -> int:
    """The finest grid (at most `finest`) whose map, cells + 1 crops, costs at most budget_s at
    this cost per crop; at least 2x2. 2 ms a crop: 7; 60 ms: 3 (10 crops, 0.6 s); 170 ms: 2."""
    g = finest
    while g > 2 and (g * g + 1) * seconds_per_crop > budget_s:
        g -= 1
    return g


def grid_of(model) -> int:
    """The grid the model's card asks for (`explain.grid`), else GRID, made coarser where the
    card's measured `explain.seconds_per_crop` says it would cost over BUDGET_S; a bad value is
    a clear error."""
    card = getattr(model, "card", None) or {}
    explain = card.get("explain") or {}
    grid = explain.get("grid", GRID)
    if not isinstance(grid, int) or not 1 <= grid <= 28:
        raise ValueError(f"the model card's explain.grid must be an integer 1-28, not {grid!r}")
    per_crop = explain.get("seconds_per_crop")
    if isinstance(per_crop, int | float) and per_crop > 0:
        grid = grid_for(float(per_crop), finest=grid)
    return grid


def method(grid: int = GRID) -> dict:
    """How the map was made, as the explanation states it."""
    return {"name": "occlusion", "grid": grid, "patch_px": CROP_SIZE // grid, "fill": GREY,
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
    img = Image.fromarray(rgba, "RGBA").resize((size, size), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=True)
    return buf.getvalue()


def largest(delta: np.ndarray) -> dict:
    """The cell that changed P(fake) most by size, and which way: `delta` > 0 means covering
    it lowered P(fake) (the grid's own sign); `moved` False when no cell reaches MOVES."""
    r, c = divmod(int(np.argmax(np.abs(delta))), delta.shape[1])
    d = float(delta[r, c])
    return {"row": r, "column": c, "delta": round(d, 4),
            "covering": "lowered" if d > 0 else "raised" if d < 0 else "kept",
            "moved": bool(abs(d) >= MOVES)}


def explain_image(image, face_finder, model, grid: int | None = None) -> list[dict]:
    """One entry per face (as analyze finds them; the centre square when there is none); the
    grid is the card's (grid_of) unless given."""
    grid = grid_of(model) if grid is None else grid
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
                    "largest": largest(delta),
                    "overlay_png": "data:image/png;base64," + base64.b64encode(png).decode()})
    return out
