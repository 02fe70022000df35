"""What a training run carries from step to step: its fixed context and its resumable progress."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class RunContext:
    """Everything fixed once the crops are ready: arguments, data, cache, where to write."""

    args: argparse.Namespace
    out: Path
    work: Path
    splits: dict  # source -> part -> [Item]
    ranges: dict  # (source, part) -> cache row indices
    crops: np.ndarray  # (N, 224, 224, 3) uint8 memmap
    labels: np.ndarray  # (N,) 0 real / 1 fake
    meta: dict  # the crop cache's meta (key, face_found, ...)
    t_start: float
    prep_seconds: float
    machine: str
    log: Callable[[str], None]
    keypoints: np.ndarray | None = None  # (N, 6, 2) for the pseudo-fakes' masks
    partner: np.ndarray | None = None  # (N,) a fake's own real row, -1 for none (pairing)


@dataclass
class TrainState:
    """Progress saved after every epoch (work/state.json), so --resume can pick it up."""

    planned_epochs: int
    epoch: int = 0
    full_step: int = 0
    history: list = field(default_factory=list)
    best_score: float = -1.0
    best_epoch: int | None = None
    train_seconds: float = 0.0
    images_seen: int = 0
    lr_scale: float = 1.0

    def save(self, path: Path) -> None:
        """Write as JSON."""
        path.write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: Path) -> TrainState:
        """Read what save() wrote."""
        return cls(**json.loads(path.read_text()))
