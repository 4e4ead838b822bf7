import importlib
import os
import subprocess
import sys

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


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_benchmark(module, *args, timeout=900):
    """``python -m MODULE ARGS`` (e.g. ``benchmarks.grid``) from the repository root, checkout and src/ on the path."""
    env = dict(os.environ)
    extra = [env["PYTHONPATH"]] if env.get("PYTHONPATH") else []
    env["PYTHONPATH"] = os.pathsep.join([ROOT, os.path.join(ROOT, "src")] + extra)
    return subprocess.run([sys.executable, "-m", module, *map(str, args)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def import_benchmark(module):
    """The module ``benchmarks.<module>`` of this checkout (benchmarks/ is not installed)."""
    sys.path.insert(0, ROOT)
    try:
        return importlib.import_module(f"benchmarks.{module}")
    finally:
        sys.path.remove(ROOT)
