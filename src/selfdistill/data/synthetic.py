"""Synthetic features of the block correlation model (docs/science.md, label averaging; docs/theory.md).

Unit-norm features whose inner products depend only on the classes of the two points::

    <x_i, x_j> = 1        if i == j
               = c        if i != j share a class
               = c_super  if their classes differ but share a superclass (optional level)
               = d        otherwise,                          with d <= c_super <= c.

Construction (``dim=None``, exact): with mutually orthonormal vectors ``g`` (shared by all
points), ``v_s`` (one per superclass), ``u_k`` (one per class) and ``e_i`` (one per point, train
and test alike),

    x_i = sqrt(d) g + sqrt(c_super - d) v_{super(k)} + sqrt(c - c_super) u_k + sqrt(1 - c) e_i ,

realised as coordinate axes; without superclasses the ``v`` term is absent (``c_super = d``). The
squared coefficients sum to 1, so rows have unit norm and the Gram matrix is exactly the pattern
above (:func:`block_gram`). With ``dim=int`` the same formula is used with i.i.d. Gaussian vectors
``N(0, I/dim)`` in R^dim (nearly orthonormal for large ``dim``) and rows renormalised: the
correlations are then approximate, with errors of order ``1/sqrt(dim)``.
"""

from __future__ import annotations

import numbers

import numpy as np

from .._validation import check_int, check_memory, check_random_state
from ._checks import check_counts, check_real
from .dataset import Dataset

__all__ = ["make_block_features", "block_gram"]


def check_block_params(c, d, superclasses, c_super, n_classes, *, generator: bool):
    """Validate (c, d, c_super, superclasses); return floats and superclass ids (K,) or None.

    ``generator=True`` (the feature generator) requires ``d >= 0``; :func:`block_gram` only needs
    ``d >= -1``. Superclass ids may be any integers; they are mapped to ``0..S-1``. Package-internal
    (theory.block checks with it too): not in ``__all__``.
    """
    c, d = _check_correlations(c, d, generator=generator)
    if superclasses is None:
        if c_super is not None:
            raise ValueError(f"c_super={c_super!r} was given without superclasses; pass superclasses too")
        return c, d, None, None
    if c_super is None:
        raise ValueError("c_super is required when superclasses is given (a correlation in [d, c])")
    c_super = check_real(c_super, "c_super")
    if not (d <= c_super <= c):
        raise ValueError(f"c_super must be in [d, c] = [{d!r}, {c!r}], got c_super={c_super!r}")
    return c, d, float(c_super), _check_superclass_ids(superclasses, n_classes)


def _check_correlations(c, d, *, generator: bool) -> tuple[float, float]:
    """Validate the within-class (c) and between-class (d) correlations; return them as floats."""
    c = check_real(c, "c")
    d = check_real(d, "d")
    if generator and d < 0:
        raise ValueError(
            f"d must be >= 0: this generator needs d >= 0 (it writes x with a sqrt(d) shared component), "
            f"got d={d!r}; allowed range 0 <= d < c <= 1"
        )
    if d < -1:
        raise ValueError(f"d must be >= -1 (a correlation), got d={d!r}; allowed range -1 <= d < c <= 1")
    if c > 1:
        raise ValueError(f"c must be <= 1 (a correlation of unit vectors), got c={c!r}; allowed range d < c <= 1")
    if c <= d:
        raise ValueError(
            f"c must be > d (within-class correlation above between-class), got c={c!r} <= d={d!r}; "
            "allowed range d < c <= 1"
        )
    return c, d


def _check_superclass_ids(superclasses, n_classes) -> np.ndarray:
    """Validate superclass ids (one per class, integers); return them mapped to ``0..S-1`` (K,)."""
    sup = np.asarray(superclasses)
    if sup.ndim != 1:
        raise ValueError(f"superclasses must be a 1-D array of superclass ids (one per class), got shape {sup.shape}")
    if n_classes is not None and sup.shape[0] != n_classes:
        raise ValueError(
            f"superclasses must have length n_classes={n_classes} (one superclass id per class), "
            f"got length {sup.shape[0]}"
        )
    if sup.size == 0:
        raise ValueError("superclasses must be non-empty")
    if sup.dtype.kind not in "iu":
        if sup.dtype.kind == "f" and np.all(np.isfinite(sup)) and np.all(sup == np.round(sup)):
            sup = sup.astype(np.int64)
        else:
            raise ValueError(f"superclasses must hold integer superclass ids, got dtype {sup.dtype}")
    _, sup_ids = np.unique(sup, return_inverse=True)
    return sup_ids.astype(np.int64).reshape(-1)


def block_gram(labels, c, d, superclasses=None, c_super=None) -> np.ndarray:
    """Exact Gram matrix of the block correlation model for given labels.

    Parameters
    ----------
    labels : array-like of shape (n,)
        Class indices (non-negative integers; ``< len(superclasses)`` if superclasses is given).
    c : float
        Correlation of two distinct points of the same class, ``d < c <= 1``.
    d : float
        Correlation of points in different classes (different superclasses), ``-1 <= d < c``.
        (Unlike :func:`make_block_features`, negative ``d`` is accepted here; whether the result
        is positive semi-definite is then up to the caller.)
    superclasses : array-like of shape (K,), optional
        Superclass id of each class.
    c_super : float, optional
        Correlation of points in different classes of the same superclass, ``d <= c_super <= c``;
        required with ``superclasses``.

    Returns
    -------
    G : ndarray of shape (n, n)
        ``G[i, j] = <x_i, x_j>``: 1 on the diagonal, then c / c_super / d as described above.

    Examples
    --------
    >>> block_gram([0, 0, 1, 2], c=0.5, d=0.1, superclasses=[0, 0, 1], c_super=0.3)
    array([[1. , 0.5, 0.3, 0.1],
           [0.5, 1. , 0.3, 0.1],
           [0.3, 0.3, 1. , 0.1],
           [0.1, 0.1, 0.1, 1. ]])
    """
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ValueError(f"labels must be a 1-D array of class indices, got shape {y.shape}")
    if y.size and y.dtype.kind not in "iu":
        if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        else:
            raise ValueError(f"labels must hold integer class indices, got dtype {y.dtype}")
    y = y.astype(np.int64)
    if y.size and y.min() < 0:
        raise ValueError(f"labels must be non-negative class indices, got minimum {int(y.min())}")
    n_classes = None
    if superclasses is not None:
        n_classes = int(np.asarray(superclasses).shape[0]) if np.ndim(superclasses) == 1 else None
    c, d, c_super, sup = check_block_params(c, d, superclasses, c_super, n_classes, generator=False)
    same_class = y[:, None] == y[None, :]
    G = np.full((y.size, y.size), d, dtype=np.float64)
    if sup is not None:
        if y.size and y.max() >= sup.shape[0]:
            raise ValueError(
                f"labels must be < len(superclasses)={sup.shape[0]}, got maximum label {int(y.max())}"
            )
        s = sup[y]
        G[s[:, None] == s[None, :]] = c_super
    G[same_class] = c
    np.fill_diagonal(G, 1.0)
    return G


def _block_vectors(y_all, sup, offsets, amplitudes, dim, rng) -> np.ndarray:
    """Rows x_i = a_g g + a_v v_{s(y_i)} + a_u u_{y_i} + a_e e_i (N, D) of the block model.

    ``offsets`` = (off_v, off_u, off_e): columns of the v / u / e vectors in the stacked basis
    [g | v_0.. | u_0.. | e_0..]; ``amplitudes`` = (a_g, a_v, a_u, a_e). ``dim=None``: exact,
    on coordinate axes (D = off_e + N); else Gaussian basis in R^dim, rows renormalised.
    """
    (off_v, off_u, off_e), (a_g, a_v, a_u, a_e) = offsets, amplitudes
    N = y_all.size
    n_basis = off_e + N
    rows = np.arange(N)
    if dim is None:
        X = np.zeros((N, n_basis), dtype=np.float64)
        X[:, 0] = a_g
        if sup is not None:
            X[rows, off_v + sup[y_all]] = a_v
        X[rows, off_u + y_all] = a_u
        X[rows, off_e + rows] = a_e
        return X
    B = rng.standard_normal((n_basis, dim)) / np.sqrt(dim)
    X = a_g * np.broadcast_to(B[0], (N, dim)) + a_u * B[off_u + y_all] + a_e * B[off_e + rows]
    if sup is not None:
        X = X + a_v * B[off_v + sup[y_all]]
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def make_block_features(
    n_classes,
    per_class,
    c,
    d,
    *,
    n_test_per_class=0,
    superclasses=None,
    c_super=None,
    dim=None,
    seed=0,
) -> Dataset:
    """Synthetic unit-norm features of the block correlation model.

    Parameters
    ----------
    n_classes : int
        Number of classes K >= 2.
    per_class : int or sequence of K ints
        Training points per class (>= 1 each); a sequence gives unequal class sizes.
    c : float
        Within-class correlation, ``d < c <= 1`` (``c = 1``: all points of a class identical).
    d : float
        Between-class correlation, ``0 <= d < c`` (this generator needs ``d >= 0``).
    n_test_per_class : int or sequence of K ints, default 0
        Test points per class (>= 0). Each test point has its own ``e_i``, so its correlation
        with a training point follows the same c / c_super / d pattern.
    superclasses : array-like of shape (K,), optional
        Superclass id of each class (any integers; mapped to ``0..S-1`` in order of value).
    c_super : float, optional
        Correlation across classes of the same superclass, ``d <= c_super <= c``; required with
        ``superclasses``.
    dim : int, optional
        ``None`` (default): exact construction on coordinate axes, feature dimension
        ``1 + S + K + n_train + n_test`` (S = number of superclasses, 0 without them), where
        ``X @ X.T`` equals :func:`block_gram` to rounding. An int >= 1: Gaussian construction in
        R^dim with approximate correlations (error ~ 1/sqrt(dim)), rows renormalised.
    seed : None, int or numpy.random.Generator, default 0
        Randomness of the Gaussian construction; the exact construction is deterministic.

    Returns
    -------
    Dataset
        ``X_train`` (n_train, D), ``y_train`` (n_train,), ``X_test`` (n_test, D), ``y_test``
        (n_test,), sorted by class (class 0 first); labels are the true classes. ``class_names``
        are ``"class_0", ..., "class_{K-1}"``; ``info`` records every argument and the layout.

    Raises
    ------
    ValueError
        ``n_classes < 2``, ``per_class < 1``, ``n_test_per_class < 0``, ``d < 0``, ``c > 1``,
        ``c <= d``, ``c_super`` outside ``[d, c]`` or missing, ``superclasses`` of wrong length.

    Examples
    --------
    >>> ds = make_block_features(3, 4, c=0.4, d=0.1, n_test_per_class=2)
    >>> ds.X_train.shape, ds.X_test.shape, ds.y_train.tolist()
    ((12, 22), (6, 22), [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2])
    >>> bool(np.allclose(ds.X_train @ ds.X_train.T, block_gram(ds.y_train, 0.4, 0.1)))  # exact
    True
    >>> approx = make_block_features(3, 4, c=0.4, d=0.1, dim=64, seed=0)  # Gaussian, approximate
    >>> approx.X_train.shape
    (12, 64)
    """
    K = check_int(n_classes, "n_classes", low=2)
    n_per = check_counts(per_class, "per_class", K, low=1)
    m_per = check_counts(n_test_per_class, "n_test_per_class", K, low=0)
    c, d, c_super, sup = check_block_params(c, d, superclasses, c_super, K, generator=True)
    if dim is not None:
        dim = check_int(dim, "dim", low=1)
    N_all = int(np.sum(n_per)) + int(np.sum(m_per))
    width = dim if dim is not None else 1 + K + N_all + (0 if sup is None else int(np.max(sup)) + 1)
    check_memory(8.0 * N_all * width, "per_class", f"{N_all:,} block-model feature rows of dimension {width:,}",
                 "use fewer points per class (the exact construction's dimension grows with them), or dim=")
    rng = check_random_state(seed)

    y_train = np.repeat(np.arange(K, dtype=np.int64), n_per)
    y_test = np.repeat(np.arange(K, dtype=np.int64), m_per)
    n, m = int(y_train.size), int(y_test.size)
    y_all = np.concatenate([y_train, y_test])
    N = n + m
    S = 0 if sup is None else int(sup.max()) + 1
    cs = d if sup is None else c_super

    # Index of each point's component vectors in the stacked basis [g | v_0.. | u_0.. | e_0..].
    off_v, off_u, off_e = 1, 1 + S, 1 + S + K
    amplitudes = (np.sqrt(d), np.sqrt(cs - d), np.sqrt(c - cs), np.sqrt(1.0 - c))
    X = _block_vectors(y_all, sup, (off_v, off_u, off_e), amplitudes, dim, rng)

    info = {
        "generator": "block correlation model",
        "construction": "exact (coordinate axes)" if dim is None else "gaussian (approximate, rows renormalised)",
        "n_classes": K,
        "per_class": [int(v) for v in n_per],
        "n_test_per_class": [int(v) for v in m_per],
        "c": c,
        "d": d,
        "c_super": None if sup is None else c_super,
        "superclasses": None if sup is None else [int(v) for v in sup],
        "n_superclasses": S,
        "dim": dim,
        "n_features": int(X.shape[1]),
        "seed": int(seed) if isinstance(seed, numbers.Integral) else None,
        # Columns [start, stop) of each group of basis vectors (exact construction only).
        "basis_layout": None if dim is not None else {
            "g": [0, 1], "v": [off_v, off_u], "u": [off_u, off_e],
            "e_train": [off_e, off_e + n], "e_test": [off_e + n, off_e + N],
        },
        "order": "sorted by class, train then test",
    }
    return Dataset(
        X_train=X[:n],
        y_train=y_train,
        X_test=X[n:],
        y_test=y_test,
        class_names=tuple(f"class_{k}" for k in range(K)),
        name="block",
        info=info,
    )
