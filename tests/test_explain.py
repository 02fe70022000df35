"""The occlusion map: each cell covered once, the numbers where the score moved, a PNG overlay."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from detector.explain import GREY, GRID, occluded, occlusion_map, overlay_png


class EyeModel:
    """P(fake) is the whiteness of one 32 px patch (row 2, column 5): only covering it matters."""

    calls = 0

    def predict(self, crops: np.ndarray) -> np.ndarray:
        EyeModel.calls += 1
        return crops[:, 64:96, 160:192].mean(axis=(1, 2, 3)) / 255.0


def test_every_cell_is_covered_once_and_only_it():
    crop = np.full((224, 224, 3), 255, np.uint8)
    got = occluded(crop)
    assert got.shape == (1 + GRID * GRID, 224, 224, 3)
    assert (got[0] == 255).all()
    grey = (got[1:] == GREY).all(axis=3)
    assert (grey.sum(axis=0) == 1).all()  # the cells tile the crop exactly
    assert all(g.sum() >= 32 * 32 for g in grey)


def test_the_map_points_at_the_region_the_score_depends_on():
    crop = np.full((224, 224, 3), 255, np.uint8)
    EyeModel.calls = 0
    p, delta = occlusion_map(EyeModel(), crop)
    assert EyeModel.calls == 1  # every occluded copy of the face in one model call
    assert p == 1.0 and delta.shape == (GRID, GRID)
    assert np.argmax(delta) == 2 * GRID + 5
    assert abs(delta[2, 5] - (1 - GREY / 255)) < 1e-6
    assert np.count_nonzero(delta) == 1
    png = Image.open(io.BytesIO(overlay_png(delta)))
    assert png.mode == "RGBA" and png.size == (112, 112)
    alpha = np.asarray(png)[..., 3]
    # Opaque (red) over the cell that mattered, transparent far from it.
    assert alpha[2 * 16 + 8, 5 * 16 + 8] > 150 and alpha[100, 10] == 0
    assert np.asarray(png)[2 * 16 + 8, 5 * 16 + 8, 0] > 200
