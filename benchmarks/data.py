"""Synthetic benchmark data: random features with class (and superclass) structure.

Shaped like ResNet penultimate-layer features of CIFAR-100 (non-negative, post-ReLU, entries of
order 1): K classes grouped into superclasses of ``group`` classes; a point's feature vector is
relu(superclass mean + class offset + point noise). The class-mean structure gives the
class_cluster noise model (hierarchical clustering of class means) confusable groups to work on.
"""

from __future__ import annotations

import numpy as np

SUPER_STD = 0.3
CLASS_STD = 0.1


def make_features(n, d, K, *, group=5, seed=0, dtype=np.float64, chunk_rows=65536):
    """Features X (n, d) and clean labels y (n,) with K balanced classes in superclasses of ``group``."""
    rng = np.random.default_rng(seed)
    n_super = max(1, K // group)
    super_means = rng.normal(0.0, SUPER_STD, size=(n_super, d))
    class_means = super_means[np.arange(K) % n_super] + rng.normal(0.0, CLASS_STD, size=(K, d))
    y = rng.permutation(np.arange(n) % K)
    X = np.empty((n, d), dtype=dtype)
    for s in range(0, n, chunk_rows):
        yc = y[s : s + chunk_rows]
        block = 0.3 + class_means[yc] + rng.normal(0.0, 1.0, size=(yc.size, d))
        np.maximum(block, 0.0, out=block)
        X[s : s + chunk_rows] = block
    return X, y


def make_problem(n, d, K, *, noise="class_cluster", rate=0.5, seed=0, dtype=np.float64):
    """(X, y_noisy, y_true): features, labels corrupted by ``noise`` at ``rate``, clean labels."""
    from selfdistill.noise import make_noisy_labels

    X, y = make_features(n, d, K, seed=seed, dtype=dtype)
    if rate > 0:
        y_noisy, _ = make_noisy_labels(y, noise, rate, seed + 1, X=X, n_classes=K)
    else:
        y_noisy = y.copy()
    return X, np.asarray(y_noisy), y
