import numpy as np
import pytest


def make_classes(n=300, d=8, K=4, sep=2.0, seed=0):
    """Gaussian classes: features (n, d), labels (n,) in 0..K-1."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(K, d)) * sep / np.sqrt(d)
    y = np.arange(n) % K
    X = means[y] + rng.normal(size=(n, d)) / np.sqrt(d)
    return X, y


@pytest.fixture
def blobs():
    return make_classes()
