"""Private validation helpers of the data package (the shared ones live in ``selfdistill._validation``)."""

from __future__ import annotations

import numbers

import numpy as np

from .._validation import Real, check_features, check_int


def check_real(value, name: str) -> float:
    """Return ``value`` as a finite float; ``TypeError`` if it is not a real number (the shared
    :class:`selfdistill._validation.Real` constraint)."""
    return Real().check(value, name)


def check_features_maybe_empty(X, name: str, *, n_features: int | None = None) -> np.ndarray:
    """Like ``check_features`` but accepts zero rows (an empty test set), shape (0, d).

    ``n_features`` checks the number of columns.
    """
    arr = np.asarray(X) if not isinstance(X, np.ndarray) else X
    if arr.ndim == 2 and arr.shape[0] == 0:
        try:
            out = np.asarray(arr, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name} must be a numeric array, got dtype {arr.dtype}: {exc}") from None
    else:
        out = check_features(X, name)
    if n_features is not None and out.shape[1] != n_features:
        raise ValueError(
            f"{name} has {out.shape[1]} features (shape {out.shape}) but the training features have "
            f"{n_features}; feature dimensions must be equal"
        )
    return out


def check_counts(value, name: str, n_classes: int, *, low: int) -> np.ndarray:
    """Return per-class counts (K,) int64 from an int or a length-K sequence of ints >= ``low``."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        v = check_int(value, name, low=low)
        return np.full(n_classes, v, dtype=np.int64)
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
        raise TypeError(
            f"{name} must be an int or a sequence of {n_classes} ints (one per class), got {value!r}"
        )
    seq = list(value)
    if len(seq) != n_classes:
        raise ValueError(
            f"{name} must be an int or have one entry per class (length n_classes={n_classes}), "
            f"got length {len(seq)}"
        )
    return np.array([check_int(v, f"{name}[{k}]", low=low) for k, v in enumerate(seq)], dtype=np.int64)
