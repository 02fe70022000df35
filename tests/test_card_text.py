"""MODEL_CARD.md text from the Jinja2 templates: the shipped card, and a card with little in it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.common.templating import card_markdown, generalisation_markdown

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "models" / "dfd-mnv2"


def _shipped() -> dict:
    return json.loads((SHIPPED / "card.json").read_text())


def test_shipped_card_renders_title_terms_and_metrics():
    card = _shipped()
    md = card_markdown(card)
    lines = md.splitlines()
    assert lines[0] == f"# Model card: dfd-mobilenetv2 (version {card['version']})"
    assert lines[1] == ""
    assert ("**This model inherits non-commercial terms from its training data: FaceForensics++ "
            "material is for non-commercial research use only, FFHQ is CC BY-NC-SA 4.0, DFDC is "
            "under its research licence. Do not use it commercially.**") in lines
    header = "| set | n real | n fake | AUC | accuracy | EER | ECE | recall fake | recall real |"
    i = lines.index(header)
    assert lines[i + 1] == "| --- |" + " --- |" * 8
    m = card["metrics"]["ff-crops/val"]
    row = (f"| ff-crops/val | {m['n_real']} | {m['n_fake']} | {m['auc']:.4f} | "
           f"{m['accuracy']:.4f} | {m['eer']:.4f} | {m['ece']:.4f} | {m['recall']['fake']:.4f} | "
           f"{m['recall']['real']:.4f} |")
    assert row in lines[i + 2:]
    assert f"- Temperature T = {card['temperature']:.4f}: served P(fake)" in md
    assert "(that is, when P(real) < 0.7)" in md
    ec = card["export_check"]
    assert (f"TFLite export vs Keras: max |dP(fake)| {ec['max_abs_delta_p_fake']:.2e} over "
            f"{ec['n_images']} real images (tolerance 0.001).") in lines
    assert '- Crops: {"' in md and "held-out lists in `split.json`." in md
    assert "carry over" in md and "\n\n\n" not in md
    a = card["assessment"]
    assert f"`likely_fake` from P(fake) {a['likely_fake_from']:.3f}" in md
    if card.get("prior_fake", 0.5) != 0.5:  # a stated prior is said in words, with its share
        assert f"**Calibrated for a prior of {100 * card['prior_fake']:.1f}% fakes**" in md


@pytest.mark.parametrize("name", ["dfd-e2e", "dfd-mnv2"])
def test_each_kept_markdown_is_what_its_card_json_renders_to(name):
    d = ROOT / "models" / name
    card = json.loads((d / "card.json").read_text())
    assert (d / "MODEL_CARD.md").read_text() == card_markdown(card)


def test_shipped_markdown_has_every_verdict_table():
    card = _shipped()
    # The verdict tables: every model compared, every set, the targets.
    md = card_markdown(card)
    assert "## What users see: verdicts per source" in md
    for name, v in card["verdicts"]["models"].items():
        assert f"### {name} ({v['model']})" in md
        for s, d in v["sets"].items():
            if d["n_real"]:
                share = d["real_called_fake"]["share"]
                assert f"| {s} | " in md and f"{100 * share:.1f}%" in md


def test_a_minimal_card_still_renders_with_the_old_defaults():
    md = card_markdown({"name": "n", "version": "v"})
    lines = md.splitlines()
    assert lines[0] == "# Model card: n (version v)"
    assert ("- Tensor None None, None values in None; scaling (and resizing to ? px) happen "
            "inside the model.") in lines
    assert lines[lines.index("## Input") + 3].startswith("- Crops: {} - made by")
    assert "- Temperature T = 1.0000: served" in md
    assert ("- Threshold None: the verdict is Fake when P(fake) > None (that is, when "
            "P(real) < 0.7)") in md
    assert "- None epochs (1 head-only), None augmented images seen, selected epoch None." in lines
    assert ("- Time: None s wall in the process that finished (None s crop preparation) on "
            "None.") in lines
    assert "Split:  Seed None; held-out lists in `split.json`." in lines
    assert "TFLite" not in md
    # Empty tables end straight after their separator line; no limitations leaves the heading.
    assert "| --- | --- | --- | --- | --- | --- |\n\nSplit:" in md
    assert md.endswith("| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n\n"
                       "## Limitations\n\n")
    assert generalisation_markdown({"name": "n", "version": "v"}) == ""


def test_optional_parts_and_number_formats():
    card = {"name": "n", "version": "v", "threshold": 0.5, "limitations": ["one"],
            "training": {"time_note": "On a laptop.", "sources": {"s": {"counts": {
                "train": {"real": 3}}}}},
            "metrics": {"m": {"n_real": 1, "auc": float("nan"), "accuracy": 1, "eer": 0.12345}}}
    md = card_markdown(card)
    assert "on None. On a laptop.\n" in md
    assert "| s |  |  | 3/0 | 0/0 | 0/0 |" in md
    assert "| m | 1 | None | n/a | 1 | 0.1235 | None | None | None |" in md
    assert "(that is, when P(real) < 0.5)" in md and md.endswith("## Limitations\n\n- one\n")
