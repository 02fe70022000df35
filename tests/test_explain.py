"""The occlusion map: each cell covered once, the numbers where the score moved, a PNG overlay."""

from __future__ import annotations

import io

import numpy as np
import pytest
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


class ShadeModel:
    """P(fake) 0.5 plus a tenth of how much brighter one cell's region is than grey, minus a
    fifth for another: covering one lowers P(fake), covering the other raises it more."""

    def __init__(self, card=None):
        self.card = card or {}

    def predict(self, crops: np.ndarray) -> np.ndarray:
        up = crops[:, 0:32, 0:32].mean(axis=(1, 2, 3)) / 255.0
        down = crops[:, 192:224, 192:224].mean(axis=(1, 2, 3)) / 255.0
        return 0.5 + 0.1 * (up - GREY / 255) - 0.2 * (down - GREY / 255)


def test_the_largest_change_is_named_by_size_with_the_grids_sign():
    from detector.explain import largest

    crop = np.full((224, 224, 3), 255, np.uint8)
    _, delta = occlusion_map(ShadeModel(), crop)
    top = largest(delta)
    # Covering the bottom-right cell raised P(fake) (a negative cell), by more than covering
    # the top-left one lowered it: the bottom-right one is named, and said to raise it.
    assert (top["row"], top["column"]) == (GRID - 1, GRID - 1)
    assert top["covering"] == "raised" and top["delta"] < 0 and top["moved"]
    assert top["delta"] == round(float(delta[GRID - 1, GRID - 1]), 4) and delta[0, 0] > 0
    flat = largest(np.full((GRID, GRID), 0.004))
    assert not flat["moved"] and flat["covering"] == "lowered"


def test_the_grid_comes_from_the_card_and_fits_the_budget():
    from detector.explain import BUDGET_S, grid_for, grid_of

    assert BUDGET_S <= 1.0  # a face's map at most 1 s in one worker process (issue 25)
    assert grid_of(ShadeModel()) == GRID and grid_of(object()) == GRID
    assert grid_of(ShadeModel({"explain": {"grid": 4}})) == 4
    with pytest.raises(ValueError, match="explain.grid"):
        grid_of(ShadeModel({"explain": {"grid": "4"}}))
    assert grid_for(0.002) == 7
    for cost in (0.05, 0.07, 0.1, 0.13):
        g = grid_for(cost)
        assert (g * g + 1) * cost <= BUDGET_S < ((g + 1) ** 2 + 1) * cost
    assert grid_for(0.06) == 3 and grid_for(0.17) == 2
    # A card written under the old 2 s budget (3x3 at 170 ms a crop) is held to this one.
    assert grid_of(ShadeModel({"explain": {"grid": 3, "seconds_per_crop": 0.17}})) == 2
    assert grid_of(ShadeModel({"explain": {"grid": 3, "seconds_per_crop": 0.05}})) == 3
    # A 4x4 map: 16 covered copies and the crop, in one model call, cells of 56 px.
    EyeModel.calls = 0
    _, delta = occlusion_map(EyeModel(), np.full((224, 224, 3), 255, np.uint8), 4)
    assert EyeModel.calls == 1 and delta.shape == (4, 4) and occluded(
        np.zeros((224, 224, 3), np.uint8), 4).shape[0] == 17


def test_the_served_models_map_costs_at_most_a_second_a_face():
    import json
    from pathlib import Path

    from detector.explain import BUDGET_S, grid_of

    for card_path in sorted((Path(__file__).resolve().parents[1] / "models").glob("*/card.json")):
        card = json.loads(card_path.read_text())
        per_crop = (card.get("explain") or {}).get("seconds_per_crop")
        if per_crop:  # measured on this project's 2-core machines, one thread a process
            g = grid_of(ShadeModel(card))
            assert (g * g + 1) * per_crop <= BUDGET_S, (card_path, g, per_crop)


@pytest.mark.parametrize("grid", [2, 3])
def test_a_coarse_map_still_points_at_what_changes_the_score(grid):
    from detector.explain import largest

    crop = np.full((224, 224, 3), 255, np.uint8)
    # EyeModel's score hangs on one 32 px patch (rows 64-96, columns 160-192): the cell that
    # holds most of it moves the score most, and no cell away from it moves it at all,
    # whichever coarse grid the budget gives.
    _, delta = occlusion_map(EyeModel(), crop, grid)
    cell = 224 // grid
    assert np.argmax(delta) == (80 // cell) * grid + 176 // cell
    rows, cols = np.nonzero(delta)
    assert all(r * cell < 96 and (r + 1) * cell > 64 and c * cell < 192 and (c + 1) * cell > 160
               for r, c in zip(rows, cols, strict=True))
    # ShadeModel: two regions pull opposite ways; the map names the stronger, with its sign.
    _, delta = occlusion_map(ShadeModel(), crop, grid)
    top = largest(delta)
    assert (top["row"], top["column"]) == (grid - 1, grid - 1) and top["covering"] == "raised"
    assert delta[0, 0] > 0 and top["moved"]
