"""Scoring in chunks: the one way the serving path, training and research split a large input
into model calls of bounded size."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def in_chunks(fn: Callable, x, size: int) -> np.ndarray:
    """fn over x in slices of at most `size` rows, the results concatenated in order (one call
    when x fits). Bounds memory and the per-call cost; an empty x gives an empty array."""
    if not len(x):
        return np.zeros(0, np.float32)
    if len(x) <= size:
        return np.asarray(fn(x))
    return np.concatenate([np.asarray(fn(x[s:s + size])) for s in range(0, len(x), size)])
