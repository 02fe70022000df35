"""Jinja2 environment for research's text templates (research/templates): training's options
and filters (training.templating.make_environment) plus the 3-decimal and interval filters."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from jinja2 import Environment

from training.templating import make_environment

TEMPLATES = Path(__file__).parent / "templates"


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


FILTERS = {"f3": f3, "ci": ci}


@cache
def environment() -> Environment:
    return make_environment(TEMPLATES, FILTERS)


def render(name: str, **context) -> str:
    """Render research/templates/<name> with the given variables."""
    return environment().get_template(name).render(**context)
