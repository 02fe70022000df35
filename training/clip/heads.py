"""Heads on frozen trunk features: fitted with scikit-learn, stored as JSON, applied in numpy.

A head reads the CLS vectors named in `inputs`, each L2-normalised (the residual stream's scale
grows block by block and with a few outlier channels; the direction is what carries the class),
concatenated, standardised with the training mean and scale, then a logistic layer. Stored as
plain numbers (head.json), so serving loads no pickled object and needs no scikit-learn.
"""

from __future__ import annotations

import numpy as np

from detector.head import Head, design


def balanced_weights(labels: np.ndarray, sources: np.ndarray) -> np.ndarray:
    """Sample weights giving each label half the total, and within a label each source an equal
    share: a big source does not outvote a small one, and a fake-only or real-only source
    (SDFD, FairFace) simply counts on its one side."""
    w = np.zeros(len(labels), np.float64)
    for label in (0, 1):
        srcs = np.unique(sources[labels == label])
        for s in srcs:
            m = (labels == label) & (sources == s)
            w[m] = 1.0 / (m.sum() * len(srcs) * 2)
    return w * len(labels)


def fit_head(feats: dict[str, np.ndarray], inputs: tuple[str, ...], labels: np.ndarray,
             sources: np.ndarray, c: float, seed: int = 0) -> Head:
    """A logistic head (L2 penalty 1/c) on the standardised design matrix."""
    from sklearn.linear_model import LogisticRegression

    x = design(feats, inputs)
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    clf = LogisticRegression(C=c, max_iter=2000, random_state=seed)
    clf.fit((x - mean) / scale, labels, sample_weight=balanced_weights(labels, sources))
    return Head(inputs=tuple(inputs), mean=mean, scale=scale, coef=clf.coef_[0].copy(),
                intercept=float(clf.intercept_[0]))
