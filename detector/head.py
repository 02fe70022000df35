"""A head on frozen trunk features, as the worker serves it: plain numbers from head.json."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np


def normalised(x: np.ndarray) -> np.ndarray:
    """Each row scaled to unit length (rows of zeros stay zero); a single column (a score
    stacked in, such as another model's logit) is kept as it is."""
    x = np.asarray(x, np.float64)
    if x.ndim == 1 or x.shape[1] == 1:
        return x.reshape(len(x), 1)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def design(feats: dict[str, np.ndarray], inputs) -> np.ndarray:
    """A head's input matrix: each named feature L2-normalised, then side by side."""
    return np.concatenate([normalised(feats[k]) for k in inputs], axis=1)


@dataclass(frozen=True)
class Head:
    """logit = ((concat of L2-normalised inputs) - mean) / scale · coef + intercept."""

    inputs: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    def logits(self, feats: dict[str, np.ndarray]) -> np.ndarray:
        return ((design(feats, self.inputs) - self.mean) / self.scale) @ self.coef + self.intercept

    def p_fake(self, feats: dict[str, np.ndarray]) -> np.ndarray:
        """Uncalibrated P(fake) per row (float32, as a network output would be)."""
        z = np.clip(self.logits(feats), -60, 60)
        return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)

    def to_json(self) -> dict:
        return {"kind": "logistic", "inputs": list(self.inputs),
                "mean": self.mean.tolist(), "scale": self.scale.tolist(),
                "coef": self.coef.tolist(), "intercept": self.intercept}

    @classmethod
    def from_json(cls, doc: dict) -> Head:
        """Read a head.json document; KeyError/ValueError say what is wrong."""
        if doc.get("kind") != "logistic":
            raise ValueError(f"unknown head kind {doc.get('kind')!r}")
        head = cls(tuple(doc["inputs"]), np.asarray(doc["mean"], np.float64),
                   np.asarray(doc["scale"], np.float64), np.asarray(doc["coef"], np.float64),
                   float(doc["intercept"]))
        n = len(head.coef)
        if not (len(head.mean) == len(head.scale) == n) or not head.inputs:
            raise ValueError("head.json: mean, scale and coef must have one length")
        return head

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_json()))

    @classmethod
    def load(cls, path: Path) -> Head:
        return cls.from_json(json.loads(Path(path).read_text()))
