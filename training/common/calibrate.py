"""Temperature scaling: fit T on held-out logits by minimising the negative log-likelihood."""

from __future__ import annotations

import numpy as np
from scipy import optimize

from detector.model import logit  # the serving side's, so both clip alike

__all__ = ["logit", "sigmoid", "apply_temperature", "nll", "fit_temperature"]


def sigmoid(z) -> np.ndarray:
    """Numerically stable logistic function."""
    z = np.asarray(z, dtype=np.float64)
    return np.where(z >= 0, 1.0 / (1.0 + np.exp(-np.abs(z))),
                    np.exp(-np.abs(z)) / (1.0 + np.exp(-np.abs(z))))


def apply_temperature(p_raw, temperature: float) -> np.ndarray:
    """Served probability: sigmoid(logit(p_raw) / T)."""
    return sigmoid(logit(p_raw) / temperature)


def nll(logits, y_true, temperature: float) -> float:
    """Mean binary cross-entropy of sigmoid(logits / T) against the labels."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    y = np.asarray(y_true, dtype=np.float64)
    # log(1 + e^z) - y z, written stably.
    return float(np.mean(np.logaddexp(0.0, z) - y * z))


def fit_temperature(logits, y_true, lo: float = 0.05, hi: float = 20.0) -> float:
    """T in [lo, hi] minimising NLL, searched on log T (NLL is unimodal in 1/T) with scipy's
    bounded Brent method, to far below the precision the card prints."""
    found = optimize.minimize_scalar(lambda log_t: nll(logits, y_true, np.exp(log_t)),
                                     bounds=(np.log(lo), np.log(hi)), method="bounded",
                                     options={"xatol": 1e-10, "maxiter": 500})
    return float(np.exp(found.x))
