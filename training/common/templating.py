"""Jinja2 environment for training's text templates (training/templates), number filters included,
and the model card rendered from card.json (card_markdown).

Markdown, not HTML: no autoescaping. StrictUndefined makes a missing key an error, as a KeyError
was before; optional parts are read with .get() in the templates, with the old defaults.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"


def fmt4(v) -> str:
    """A float to 4 decimals ('n/a' for NaN); anything else as str()."""
    if isinstance(v, float):
        return "n/a" if v != v else f"{v:.4f}"
    return str(v)


def spec(v, format_spec: str) -> str:
    """Python's format(v, spec), e.g. {{ x|spec('.2e') }}."""
    return format(v, format_spec)


def dumps(v) -> str:
    """json.dumps as Python writes it (Jinja's own tojson escapes for HTML)."""
    return json.dumps(v)


def f3(v, pct: bool = False) -> str:
    """3 decimals, or with pct a percentage to 1 decimal; 'n/a' for None and NaN."""
    if v is None or v != v:
        return "n/a"
    return f"{100 * v:.1f}%" if pct else f"{v:.3f}"


def ci(interval, pct: bool = False) -> str:
    """' (lo-hi)' for a 95% interval, '' when there is none."""
    if not interval or interval[0] != interval[0]:
        return ""
    lo, hi = interval[0], interval[1]
    return f" ({100 * lo:.0f}-{100 * hi:.0f}%)" if pct else f" ({lo:.2f}-{hi:.2f})"


FILTERS = {"fmt4": fmt4, "spec": spec, "dumps": dumps, "f3": f3, "ci": ci}


def make_environment(folder: Path, filters: dict | None = None) -> Environment:
    """An environment over one templates folder with the shared options and filters."""
    env = Environment(loader=FileSystemLoader(folder), undefined=StrictUndefined,
                      keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True,
                      autoescape=False)
    env.filters.update(FILTERS | (filters or {}))
    env.globals["nan"] = float("nan")
    return env


@cache
def environment() -> Environment:
    return make_environment(TEMPLATES)


def render(name: str, **context) -> str:
    """Render training/templates/<name> with the given variables."""
    return environment().get_template(name).render(**context)


def card_markdown(card: dict) -> str:
    """The human-readable model card, generated from card.json so the two never disagree
    (rendered from training/templates/model_card.md.j2)."""
    verdicts = render("verdicts.md.j2", card=card) if card.get("verdicts") else ""
    out = render("model_card.md.j2", card=card)
    for section in (verdicts, generalisation_markdown(card)):
        if section:  # one blank line before each section, whichever of them a card has
            out = out.rstrip("\n") + "\n\n" + section.lstrip("\n")
    return out


def generalisation_markdown(card: dict) -> str:
    """The cross-source, flip-rate and cue tables of a card, as Markdown ('' if none);
    rendered from training/templates/generalisation.md.j2."""
    if not card.get("cross_source"):
        return ""
    fr = card["flip_rates"]
    moved = any("mean_dp" in r for per in fr["sets"].values() for r in per.values())
    return render("generalisation.md.j2", card=card, moved=moved)


def card_text(card: dict) -> str:
    """A card's MODEL_CARD.md: the CLIP template for a frozen-trunk card (training.clip.export
    renders it the same way), else card_markdown."""
    return render("clip_card.md.j2", card=card) if "trunk" in card else card_markdown(card)


def write_card(path: Path, card: dict) -> None:
    """card.json (in the indent it was written with) and its MODEL_CARD.md beside it."""
    raw = path.read_text() if path.is_file() else ""
    path.write_text(json.dumps(card, indent=1 if raw.startswith('{\n "') else 2) + "\n")
    path.with_name("MODEL_CARD.md").write_text(card_text(card))
