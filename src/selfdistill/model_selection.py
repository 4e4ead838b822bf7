"""Choosing reg without looking at test labels: a held-out part of the noisy training set."""

from __future__ import annotations

import numpy as np

from ._validation import check_features, check_labels, check_positive
from .probe import fit_linear_probe

__all__ = ["select_reg", "DEFAULT_REG_GRID"]

DEFAULT_REG_GRID = (1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5)


def select_reg(X, y, *, grid=DEFAULT_REG_GRID, val_fraction=0.2, seed=0, n_classes=None):
    """Pick reg for the teacher by its accuracy on a held-out part of the *noisy* training labels.

    The rule (used by ``selfdistill run``): split (X, y) once, stratified by the given labels y,
    into (1 - val_fraction) fit / val_fraction validation (seeded); fit the teacher (round 0) for
    every reg in ``grid`` on the fit part; return the reg with the highest accuracy against the
    given, possibly noisy, validation labels (ties: the larger reg). Under class-conditional noise
    whose diagonal dominates, accuracy on noisy labels ranks models like accuracy on clean ones in
    expectation, so no clean or test label is ever used.

    Returns (reg, scores) with scores a dict reg -> held-out noisy accuracy.
    """
    from sklearn.model_selection import train_test_split

    X = check_features(X)
    y = check_labels(y, "y", n_samples=X.shape[0], n_classes=n_classes)
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    grid = [check_positive(r, "grid entry") for r in grid]
    if not grid:
        raise ValueError("grid must hold at least one reg value")
    K = n_classes if n_classes is not None else int(y.max()) + 1
    _, counts = np.unique(y, return_counts=True)
    stratify = y if counts.min() >= 2 else None
    idx_fit, idx_val = train_test_split(
        np.arange(len(y)), test_size=val_fraction, random_state=seed, stratify=stratify
    )
    scores = {}
    init = None
    for reg in sorted(grid, reverse=True):  # strong to weak reg, warm-started
        probe = fit_linear_probe(X[idx_fit], y[idx_fit], reg, n_classes=K, init=init)
        init = probe
        scores[reg] = float(np.mean(probe.predict(X[idx_val]) == y[idx_val]))
    best = max(sorted(scores, reverse=True), key=lambda r: scores[r])
    return best, scores
