"""Label-noise models: transition matrices, label corruption and realised noise rates.

Plain functions over NumPy arrays, in the style of ``cleanlab.benchmarking.noise_generation``.

Convention (used everywhere in this module and in :mod:`selfdistill.theory`)
---------------------------------------------------------------------------
A noise model is a K x K row-stochastic *transition matrix* ``C``::

    C[k, j] = P(observed label j | true label k)

Rows are the **true** class, columns the **observed** (noisy) class, every row sums to 1.
The noise rate ``eta`` (argument ``rate``) is the probability that a label is changed, so
for the built-in kinds ``C[k, k] = 1 - eta``.

Built-in kinds (``NOISE_KINDS``), see docs/science.md (noise models):

``"symmetric"``
    ``C[k, k] = 1 - eta``, ``C[k, j] = eta / (K - 1)`` for ``j != k``.
``"asymmetric"`` (the authors' definition)
    ``C[k, k] = 1 - eta``, ``C[k, j] = eta / K`` for ``j != k``, plus ``eta / K`` more on
    ``j = (k + 1) mod K``. Row sum: ``1 - eta + (K - 1) eta / K + eta / K = 1``.
``"pairflip"``
    ``C[k, k] = 1 - eta``, ``C[k, (k + 1) mod K] = eta``.
``"class_cluster"`` ("confusable classes", the paper's main setting)
    Classes are grouped into clusters (see :func:`class_clusters`); with probability ``eta``
    a label moves to a uniformly chosen *other* class of the same cluster:
    ``C[k, j] = eta / (m_k - 1)`` for ``j != k`` in k's cluster (``m_k`` its size),
    ``C[k, k] = 1 - eta``. A class alone in its cluster keeps its labels (``C[k, k] = 1``).

Any user-given row-stochastic matrix can be used in place of a kind name.

Functions
---------
- :func:`transition_matrix` -- build (or validate) a K x K transition matrix.
- :func:`corrupt_labels` -- draw noisy labels from a transition matrix (sampled or exact).
- :func:`realised_rates` -- the noise actually present: overall, per class and the
  (K, K) confusion counts (the ``label_counts`` of the theory module).
- :func:`class_clusters` -- clusters of confusable classes from class features (two rules).
- :func:`make_noisy_labels` -- the above in one call.
"""

from __future__ import annotations

import warnings
from typing import Literal, overload

import numpy as np
from numpy.typing import ArrayLike

from ._validation import (
    check_choice,
    check_features,
    check_fraction,
    check_int,
    check_labels,
    check_random_state,
    check_transition_matrix,
)

__all__ = [
    "NOISE_KINDS",
    "noise_kinds",
    "transition_matrix",
    "corrupt_labels",
    "realised_rates",
    "class_clusters",
    "class_pair_correlation",
    "CLUSTER_RULES",
    "CLUSTER_THRESHOLDS",
    "make_noisy_labels",
]

#: Names of the built-in noise models accepted by :func:`transition_matrix`.
NOISE_KINDS = ("symmetric", "asymmetric", "pairflip", "class_cluster")


def noise_kinds() -> tuple[str, ...]:
    """Return the names of the built-in noise models, ``NOISE_KINDS``.

    Returns
    -------
    tuple of str
        ``("symmetric", "asymmetric", "pairflip", "class_cluster")``. Each builds a K x K
        transition matrix with ``C[k, j] = P(observed j | true k)`` (rows are the true class).

    Examples
    --------
    >>> noise_kinds()
    ('symmetric', 'asymmetric', 'pairflip', 'class_cluster')
    """
    return NOISE_KINDS


# --------------------------------------------------------------------------------------
# private helpers
# --------------------------------------------------------------------------------------


def _check_clusters(clusters, n_classes: int) -> np.ndarray:
    """Return ``clusters`` as an int64 array (K,) of cluster ids (any integer values)."""
    arr = np.asarray(clusters)
    if arr.ndim != 1 or arr.shape[0] != n_classes:
        raise ValueError(
            f"clusters must be a 1-D array with one cluster id per class, i.e. shape ({n_classes},), "
            f"got shape {arr.shape}"
        )
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ValueError(f"clusters must hold integer cluster ids, got {arr.tolist()}")
    elif arr.dtype.kind not in "iu":
        raise ValueError(f"clusters must hold integer cluster ids, got dtype {arr.dtype}: {arr.tolist()}")
    return arr.astype(np.int64)


def _n_flips(fraction: float, n: int) -> int:
    """``round(fraction * n)``, halves rounded up, robust to float noise such as 2.4999999999."""
    return int(np.floor(np.round(fraction * n, 9) + 0.5))


def _relabel_by_first_appearance(ids: np.ndarray) -> np.ndarray:
    """Map arbitrary ids to 0..C-1, numbered in order of first appearance."""
    _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    rank = np.empty(first.shape[0], dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(first.shape[0])
    return rank[inverse.reshape(-1)]


# --------------------------------------------------------------------------------------
# transition matrices
# --------------------------------------------------------------------------------------


def transition_matrix(
    kind: str | ArrayLike, n_classes: int | None, rate: float, clusters: ArrayLike | None = None
) -> np.ndarray:
    """Build a K x K label-noise transition matrix.

    Convention: rows are the true class, ``matrix[k, j] = P(observed j | true k)``; every
    row sums to 1.

    Parameters
    ----------
    kind : {"symmetric", "asymmetric", "pairflip", "class_cluster"} or array-like (K, K)
        The noise model (``eta = rate``, ``K = n_classes``):

        - ``"symmetric"``: ``C[k, k] = 1 - eta``, ``C[k, j] = eta / (K - 1)`` for ``j != k``.
        - ``"asymmetric"`` (the authors' definition): ``C[k, k] = 1 - eta``,
          ``C[k, j] = eta / K`` for ``j != k``, plus ``eta / K`` more on ``j = (k + 1) mod K``.
          For K = 2 this equals ``"symmetric"``.
        - ``"pairflip"``: ``C[k, k] = 1 - eta``, ``C[k, (k + 1) mod K] = eta``.
        - ``"class_cluster"``: needs ``clusters``. With probability ``eta`` a label moves to a
          uniformly chosen *other* class of the same cluster: ``C[k, j] = eta / (m_k - 1)``
          for ``j != k`` in k's cluster (``m_k`` = cluster size), ``C[k, k] = 1 - eta``.
          A class alone in its cluster keeps its labels (``C[k, k] = 1``); when ``rate > 0``
          a ``UserWarning`` names these singleton classes.
        - an array-like (K, K): a user-given matrix, validated (square, finite,
          non-negative, rows summing to 1 within 1e-8) and returned as a float64 copy.
          ``rate`` and ``clusters`` are then ignored; ``n_classes`` may be ``None`` (K is
          taken from the matrix), otherwise it must equal K.
    n_classes : int
        Number of classes K, at least 2.
    rate : float
        Noise rate ``eta`` in [0, 1]: the probability that a label is changed
        (``C[k, k] = 1 - eta``, except singleton clusters of ``"class_cluster"``).
    clusters : array-like of int, shape (K,), optional
        Cluster id of each class, only used (and then required) by ``"class_cluster"``;
        ids can be any integers, e.g. the output of :func:`class_clusters`. Ignored by the
        other kinds.

    Returns
    -------
    matrix : ndarray of float64, shape (K, K)
        Row-stochastic, ``matrix[k, j] = P(observed j | true k)``.

    Raises
    ------
    ValueError
        Unknown ``kind`` (the message lists the allowed kinds); ``n_classes < 2``; ``rate``
        outside [0, 1]; ``clusters`` missing for ``"class_cluster"``, of the wrong length or
        not integers; an invalid user matrix (message names ``kind``).

    Examples
    --------
    >>> transition_matrix("pairflip", 3, 0.2)
    array([[0.8, 0.2, 0. ],
           [0. , 0.8, 0.2],
           [0.2, 0. , 0.8]])

    Class-cluster noise with clusters {0, 1} and {2, 3}: a label moves only inside its cluster.

    >>> transition_matrix("class_cluster", 4, 0.5, clusters=[0, 0, 1, 1])
    array([[0.5, 0.5, 0. , 0. ],
           [0.5, 0.5, 0. , 0. ],
           [0. , 0. , 0.5, 0.5],
           [0. , 0. , 0.5, 0.5]])
    """
    if not isinstance(kind, str):
        if n_classes is not None:
            K_expected = check_int(n_classes, "n_classes", low=2)
            shape = np.shape(kind)
            if len(shape) == 2 and shape[0] == shape[1] and shape[0] != K_expected:
                raise ValueError(
                    f"kind is a user-given {shape[0]} x {shape[1]} transition matrix but "
                    f"n_classes={K_expected}; they must agree"
                )
        return check_transition_matrix(kind, "kind", n_classes=n_classes).copy()

    check_choice(kind, "kind", NOISE_KINDS)
    K = check_int(n_classes, "n_classes", low=2)
    eta = check_fraction(rate, "rate")
    C = np.zeros((K, K), dtype=np.float64)
    idx = np.arange(K)
    nxt = (idx + 1) % K

    if kind == "symmetric":
        C[:] = eta / (K - 1)
    elif kind == "asymmetric":
        C[:] = eta / K
        C[idx, nxt] += eta / K
    elif kind == "pairflip":
        C[idx, nxt] = eta
    else:  # class_cluster
        if clusters is None:
            raise ValueError(
                "clusters is required for kind='class_cluster': pass one cluster id per class, "
                "e.g. clusters=class_clusters(X, y)"
            )
        ids = _check_clusters(clusters, K)
        same = ids[:, None] == ids[None, :]
        sizes = same.sum(axis=1)
        singletons = np.flatnonzero(sizes == 1)
        others = np.where(sizes > 1, sizes - 1, 1)
        C = np.where(same, eta / others[:, None], 0.0)
        C[idx, idx] = 1.0 - eta
        C[singletons, singletons] = 1.0
        if singletons.size and eta > 0:
            warnings.warn(
                f"class_cluster noise: classes {singletons.tolist()} are alone in their cluster "
                "and keep their labels (C[k, k] = 1), so the overall noise rate is below "
                f"rate={eta}",
                UserWarning,
                stacklevel=2,
            )
        return C
    C[idx, idx] = 1.0 - eta
    return C


# --------------------------------------------------------------------------------------
# corruption
# --------------------------------------------------------------------------------------


@overload
def corrupt_labels(
    y: ArrayLike,
    matrix: ArrayLike,
    seed: int | np.random.Generator | None,
    exact: bool = ...,
    *,
    return_rates: Literal[False] = ...,
) -> np.ndarray: ...


@overload
def corrupt_labels(
    y: ArrayLike,
    matrix: ArrayLike,
    seed: int | np.random.Generator | None,
    exact: bool = ...,
    *,
    return_rates: Literal[True],
) -> tuple[np.ndarray, dict]: ...


def corrupt_labels(
    y: ArrayLike,
    matrix: ArrayLike,
    seed: int | np.random.Generator | None,
    exact: bool = False,
    *,
    return_rates: bool = False,
) -> np.ndarray | tuple[np.ndarray, dict]:
    """Draw noisy labels from a transition matrix.

    Convention: rows are the true class, ``matrix[k, j] = P(observed j | true k)``.

    Parameters
    ----------
    y : array-like of int, shape (n,)
        True labels in 0..K-1, with K = ``matrix.shape[0]`` (not every class need occur).
    matrix : array-like, shape (K, K)
        Row-stochastic transition matrix, e.g. from :func:`transition_matrix`.
    seed : None, int or numpy.random.Generator
        Randomness, via ``np.random.default_rng(seed)``; the same int seed gives identical
        output. A Generator is used (and advanced) in place.
    exact : bool, default False
        - ``False``: each point of true class k independently gets its observed label drawn
          from row k, so the realised rate of class k is ``1 - C[k, k]`` only on average
          (binomial spread; small classes can be far off).
        - ``True``: for every class k exactly ``round((1 - C[k, k]) * n_k)`` labels
          (``n_k`` points of class k; halves round up) are flipped, the points chosen
          uniformly at random without replacement; each flipped label is drawn from row k
          restricted to ``j != k`` and renormalised. The realised per-class rate is then the
          nominal one up to rounding, whatever n_k.
    return_rates : bool, default False, keyword-only
        Also return ``realised_rates(y, y_noisy, n_classes=K)``.

    Returns
    -------
    y_noisy : ndarray of int64, shape (n,)
        Observed labels in 0..K-1.
    rates : dict
        Only when ``return_rates``: see :func:`realised_rates` (keys ``"overall"``,
        ``"per_class"`` (K,), ``"confusion"`` (K, K)).

    Raises
    ------
    ValueError
        ``y`` not 1-D integer labels, or labels >= K; ``matrix`` not a valid transition
        matrix; invalid ``seed``.

    Examples
    --------
    With ``exact=True`` each class loses exactly ``round(eta * n_k)`` labels (here 1 of 4):

    >>> y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    >>> y_noisy, rates = corrupt_labels(y, transition_matrix("symmetric", 2, 0.25), seed=0, exact=True,
    ...                                 return_rates=True)
    >>> rates["per_class"]
    array([0.25, 0.25])
    >>> rates["confusion"]
    array([[3, 1],
           [1, 3]])
    """
    C = check_transition_matrix(matrix, "matrix")
    K = C.shape[0]
    y = check_labels(y, "y", n_classes=K)
    rng = check_random_state(seed)
    exact = bool(exact)

    y_noisy = y.copy()
    order = np.argsort(y, kind="stable")
    counts = np.bincount(y, minlength=K)
    groups = np.split(order, np.cumsum(counts)[:-1])
    labels = np.arange(K)
    for k in range(K):
        members = groups[k]
        n_k = members.shape[0]
        if n_k == 0:
            continue
        if not exact:
            p = C[k] / C[k].sum()
            y_noisy[members] = rng.choice(K, size=n_k, p=p)
            continue
        q = C[k].copy()
        q[k] = 0.0
        total = q.sum()
        n_flip = _n_flips(1.0 - C[k, k], n_k) if total > 0 else 0
        n_flip = min(n_flip, n_k)
        if n_flip == 0:
            continue
        flipped = rng.choice(members, size=n_flip, replace=False)
        y_noisy[flipped] = rng.choice(labels, size=n_flip, p=q / total)

    if return_rates:
        return y_noisy, realised_rates(y, y_noisy, n_classes=K)
    return y_noisy


def realised_rates(y_true: ArrayLike, y_noisy: ArrayLike, n_classes: int | None = None) -> dict:
    """Measure the label noise actually present in ``y_noisy``.

    Convention: rows are the true class; ``confusion[k, j]`` counts true-k points observed as
    j, so ``confusion / confusion.sum(axis=1, keepdims=True)`` estimates
    ``C[k, j] = P(observed j | true k)``.

    Parameters
    ----------
    y_true : array-like of int, shape (n,)
        True labels in 0..K-1.
    y_noisy : array-like of int, shape (n,)
        Observed labels in 0..K-1.
    n_classes : int, optional
        K. Default ``max(y_true.max(), y_noisy.max()) + 1``.

    Returns
    -------
    dict
        ``"overall"`` : float, fraction of the n labels that changed.
        ``"per_class"`` : ndarray (K,), fraction changed among points of true class k
        (``nan`` for classes with no points).
        ``"confusion"`` : ndarray of int64 (K, K), ``confusion[k, j]`` = number of true-k
        points labelled j. This is exactly the ``label_counts`` matrix used by
        :mod:`selfdistill.theory`.

    Raises
    ------
    ValueError
        Labels not 1-D integers, lengths differ, or labels >= ``n_classes``.

    Examples
    --------
    >>> r = realised_rates([0, 0, 1, 1], [0, 1, 1, 1])
    >>> r["overall"], r["per_class"]
    (0.25, array([0.5, 0. ]))
    >>> r["confusion"]
    array([[1, 1],
           [0, 2]])
    """
    if n_classes is not None:
        n_classes = check_int(n_classes, "n_classes", low=1)
    y_true = check_labels(y_true, "y_true", n_classes=n_classes)
    y_noisy = check_labels(y_noisy, "y_noisy", n_classes=n_classes)
    if y_noisy.shape[0] != y_true.shape[0]:
        raise ValueError(
            f"y_noisy has {y_noisy.shape[0]} entries but y_true has {y_true.shape[0]}; "
            "they must have the same length"
        )
    K = n_classes if n_classes is not None else int(max(y_true.max(), y_noisy.max())) + 1
    confusion = np.bincount(y_true * K + y_noisy, minlength=K * K).reshape(K, K).astype(np.int64)
    n_k = confusion.sum(axis=1)
    changed = n_k - np.diag(confusion)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_class = np.where(n_k > 0, changed / np.maximum(n_k, 1), np.nan)
    return {
        "overall": float(np.mean(y_true != y_noisy)),
        "per_class": per_class.astype(np.float64),
        "confusion": confusion,
    }


# --------------------------------------------------------------------------------------
# clusters of confusable classes
# --------------------------------------------------------------------------------------


def class_mean_correlation(X: np.ndarray, y: np.ndarray, n_classes: int) -> np.ndarray:
    """Correlation matrix R (K, K) between the class-mean features of X (n, d) under labels y (n,).

    Every class in 0..K-1 must have points (the caller checks). A class mean that is constant
    across features has no defined correlation; it is taken as uncorrelated (R = 0 off the
    diagonal).
    """
    sums = np.zeros((n_classes, X.shape[1]))
    np.add.at(sums, y, X)
    means = sums / np.bincount(y, minlength=n_classes)[:, None]
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        R = np.corrcoef(means)
    return np.where(np.isfinite(R), R, 0.0)


def correlation_distance(R: np.ndarray) -> np.ndarray:
    """The symmetric distance 1 - R (clipped to [0, 2], zero diagonal) that class clustering uses."""
    D = np.clip(1.0 - R, 0.0, 2.0)
    D = 0.5 * (D + D.T)
    np.fill_diagonal(D, 0.0)
    return D


def class_pair_correlation(X: np.ndarray, y: np.ndarray, n_classes: int) -> np.ndarray:
    """Compute the authors' class correlation map: mean cosine similarity between points of two classes.

    The map that ``class_clusters(..., rule="authors")`` clusters into confusable classes.
    Features are centred by their overall mean and scaled to unit L2 norm (a zero row stays zero),
    x'_i = (x_i - mean) / max(||x_i - mean||, 1e-12); then
    R[a, b] = mean over i in a, j in b of <x'_i, x'_j> (for a = b over pairs i != j). Computed from
    the per-class sums s_a = sum_{i in a} x'_i in O(n d): R[a, b] = <s_a, s_b> / (n_a n_b) and
    R[a, a] = (||s_a||^2 - sum_{i in a} ||x'_i||^2) / (n_a (n_a - 1)).

    Parameters
    ----------
    X : ndarray of float, shape (n, d)
        Features (already validated: finite, 2-D).
    y : ndarray of int, shape (n,)
        Labels in 0..K-1; every class needs at least 2 points (the caller checks).
    n_classes : int
        K.

    Returns
    -------
    R : ndarray of float64, shape (K, K)
        Symmetric; ``R[a, b]`` in [-1, 1] is the mean cosine similarity of a point of class a
        and a (distinct) point of class b.

    Examples
    --------
    Two classes pointing in opposite directions: within a class every pair has cosine 1, across
    the classes -1.

    >>> X = np.array([[1.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [-1.0, 0.0]])
    >>> class_pair_correlation(X, np.array([0, 0, 1, 1]), 2)
    array([[ 1., -1.],
           [-1.,  1.]])
    """
    Xc = X - X.mean(axis=0)
    norms = np.linalg.norm(Xc, axis=1)
    Xn = Xc / np.maximum(norms, 1e-12)[:, None]
    sq = (norms > 0).astype(np.float64)  # ||x'_i||^2: 1, or 0 for a row equal to the mean
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    S = np.zeros((n_classes, X.shape[1]))
    np.add.at(S, y, Xn)
    R = (S @ S.T) / np.outer(counts, counts)
    self_sq = np.bincount(y, weights=sq, minlength=n_classes)
    np.fill_diagonal(R, (np.einsum("kd,kd->k", S, S) - self_sq) / (counts * (counts - 1)))
    return R


#: Rules of :func:`class_clusters`: this library's and the authors' code's.
CLUSTER_RULES = ("library", "authors")
#: The cut of each rule when ``threshold`` is None.
CLUSTER_THRESHOLDS = {"library": 0.7, "authors": 0.8}


def class_clusters(
    X: ArrayLike,
    y: ArrayLike,
    *,
    threshold: float | None = None,
    n_classes: int | None = None,
    rule: str = "library",
) -> np.ndarray:
    """Group classes into clusters of confusable classes by the similarity of their features.

    Used to build ``"class_cluster"`` noise (rows are the true class,
    ``C[k, j] = P(observed j | true k)``; labels move only inside a cluster). Both rules cluster
    the classes by complete linkage and cut the tree at ``threshold`` x (largest merge height)
    with ``fcluster(Z, t, criterion="distance")``; docs/science.md (noise models) says why
    they differ.

    ``rule="library"`` (default; ``threshold`` 0.7):

    1. class-mean features ``M`` (K, d): ``M[k] = X[y == k].mean(axis=0)``;
    2. ``R = np.corrcoef(M)`` (K, K), the Pearson correlation between class means across
       features; distance ``D = 1 - R`` (in [0, 2]). A class mean that is constant across
       features has undefined correlation; it is treated as uncorrelated (distance 1);
    3. ``linkage(squareform(D, checks=False), method="complete")``: the distance between two
       classes is their entry of D.

    ``rule="authors"`` (``threshold`` 0.8), the authors' ``get_confusable_class`` exactly:

    1. ``R = class_pair_correlation(X, y)``: mean cosine similarity between the centred,
       unit-normalised features of two classes (within a class: over distinct pairs);
    2. ``linkage(1 - R, method="complete")`` on the square K x K matrix itself: scipy reads its
       rows as K observation vectors, so the distance between classes a and b is the Euclidean
       distance between rows a and b of 1 - R (their correlation profiles against every
       class), not the entry (1 - R)[a, b]. Every class needs at least 2 points.

    With a cut below 1 the top split always separates (at least 2 clusters unless all merge
    heights are equal); ``threshold=1`` gives a single cluster, ``threshold=0`` puts every class
    alone (unless two classes are at distance 0).

    Parameters
    ----------
    X : array-like, shape (n, d)
        Features, d >= 2 (a correlation across features needs at least 2).
    y : array-like of int, shape (n,)
        Labels in 0..K-1; every class must occur.
    threshold : float in [0, 1] or None, keyword-only
        Cut height as a fraction of the largest merge height; None: 0.7 ("library") or 0.8
        ("authors").
    n_classes : int, optional, keyword-only
        K; default ``y.max() + 1``.
    rule : {"library", "authors"}, default "library", keyword-only
        Which similarity and linkage input to use (see above).

    Returns
    -------
    clusters : ndarray of int64, shape (K,)
        Cluster id of each class, ids 0..C-1 numbered in order of the first class of each
        cluster (class 0 is always in cluster 0). Pass it as ``clusters=`` to
        :func:`transition_matrix`.

    Raises
    ------
    ValueError
        X invalid or with fewer than 2 features, y invalid or of another length, a class in
        0..K-1 absent from y (or with one point under ``rule="authors"``), fewer than 2
        classes, ``threshold`` outside [0, 1], an unknown ``rule``.

    Examples
    --------
    Classes 0 and 1 have nearly the same mean features, class 2 other ones:

    >>> X = np.array([[4.0, 1.0, 0.0, 0.0], [4.0, 1.0, 0.0, 0.0],
    ...               [4.0, 1.5, 0.0, 0.5], [4.0, 1.5, 0.0, 0.5],
    ...               [0.0, 0.0, 4.0, 1.0], [0.0, 0.0, 4.0, 1.0]])
    >>> y = np.array([0, 0, 1, 1, 2, 2])
    >>> class_clusters(X, y)
    array([0, 0, 1])
    >>> class_clusters(X, y, rule="authors")
    array([0, 0, 1])
    """
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    X = check_features(X, "X")
    y = check_labels(y, "y", n_samples=X.shape[0], n_classes=n_classes)
    rule = check_choice(rule, "rule", CLUSTER_RULES)
    threshold = CLUSTER_THRESHOLDS[rule] if threshold is None else check_fraction(threshold, "threshold")
    if X.shape[1] < 2:
        raise ValueError(
            f"X must have at least 2 features to correlate class means, got shape {X.shape}"
        )
    K = check_int(n_classes, "n_classes", low=2) if n_classes is not None else int(y.max()) + 1
    if K < 2:
        raise ValueError(f"y must hold at least 2 classes to cluster them, got K={K}")
    counts = np.bincount(y, minlength=K)
    absent = np.flatnonzero(counts == 0)
    if absent.size:
        raise ValueError(
            f"y has no points of classes {absent.tolist()} (K={K}); every class needs points "
            "to compute its mean features"
        )
    if rule == "authors":
        single = np.flatnonzero(counts < 2)
        if single.size:
            raise ValueError(
                f"rule='authors' needs at least 2 points per class (a class's mean correlation with "
                f"itself is over pairs of distinct points); classes {single.tolist()} have 1"
            )
        Z = linkage(1.0 - class_pair_correlation(X, y, K), method="complete")
    else:
        D = correlation_distance(class_mean_correlation(X, y, K))
        Z = linkage(squareform(D, checks=False), method="complete")
    t = threshold * float(Z[:, 2].max())
    raw = fcluster(Z, t, criterion="distance")
    return _relabel_by_first_appearance(raw)


# --------------------------------------------------------------------------------------
# convenience
# --------------------------------------------------------------------------------------


def make_noisy_labels(
    y: ArrayLike,
    kind: str | ArrayLike,
    rate: float,
    seed: int | np.random.Generator | None,
    *,
    X: ArrayLike | None = None,
    clusters: ArrayLike | None = None,
    exact: bool = False,
    n_classes: int | None = None,
    cluster_rule: str = "library",
) -> tuple[np.ndarray, dict]:
    """Build a noise model and corrupt ``y`` with it, in one call.

    Convention: rows are the true class, ``matrix[k, j] = P(observed j | true k)``.

    Parameters
    ----------
    y : array-like of int, shape (n,)
        True labels in 0..K-1.
    kind : str in ``NOISE_KINDS`` or array-like (K, K)
        See :func:`transition_matrix`.
    rate : float in [0, 1]
        Noise rate eta (ignored for a user-given matrix).
    seed : None, int or numpy.random.Generator
        See :func:`corrupt_labels`.
    X : array-like (n, d), optional, keyword-only
        Features; required for ``kind="class_cluster"`` when ``clusters`` is None, to compute
        ``clusters = class_clusters(X, y, n_classes=K, rule=cluster_rule)`` (that rule's
        default threshold).
    clusters : array-like of int (K,), optional, keyword-only
        Cluster id per class for ``"class_cluster"``; ignored by the other kinds.
    exact : bool, default False, keyword-only
        Exact per-class flip counts, see :func:`corrupt_labels`.
    n_classes : int, optional, keyword-only
        K; default ``y.max() + 1``, or the matrix size for a user-given matrix.
    cluster_rule : {"library", "authors"}, default "library", keyword-only
        The :func:`class_clusters` rule used when ``clusters`` is None.

    Returns
    -------
    y_noisy : ndarray of int64, shape (n,)
        Observed labels in 0..K-1.
    info : dict
        ``"matrix"`` (K, K) the transition matrix used; ``"clusters"`` (K,) the cluster ids
        for ``"class_cluster"``, else None; ``"rates"`` the :func:`realised_rates` output.

    Raises
    ------
    ValueError
        As the functions it calls; ``X`` missing for ``"class_cluster"`` without
        ``clusters``.

    Examples
    --------
    Class-cluster noise with clusters {0, 1} and {2, 3}: exactly 2 of the 5 labels of every class
    move, and only to the other class of its cluster.

    >>> y = np.repeat([0, 1, 2, 3], 5)
    >>> y_noisy, info = make_noisy_labels(y, "class_cluster", 0.4, seed=0, clusters=[0, 0, 1, 1], exact=True)
    >>> info["rates"]["per_class"]
    array([0.4, 0.4, 0.4, 0.4])
    >>> info["rates"]["confusion"]
    array([[3, 2, 0, 0],
           [2, 3, 0, 0],
           [0, 0, 3, 2],
           [0, 0, 2, 3]])
    """
    y = check_labels(y, "y", n_classes=n_classes)
    used_clusters = None
    if not isinstance(kind, str):
        matrix = transition_matrix(kind, n_classes, rate)
    else:
        check_choice(kind, "kind", NOISE_KINDS)
        K = check_int(n_classes, "n_classes", low=2) if n_classes is not None else int(y.max()) + 1
        if kind == "class_cluster":
            if clusters is None:
                if X is None:
                    raise ValueError(
                        "X is required for kind='class_cluster' when clusters is None: the "
                        "clusters of confusable classes are computed from the class-mean "
                        "features, class_clusters(X, y)"
                    )
                clusters = class_clusters(X, y, n_classes=K, rule=cluster_rule)
            used_clusters = _check_clusters(clusters, K)
        matrix = transition_matrix(kind, K, rate, clusters=used_clusters)
    y_noisy, rates = corrupt_labels(y, matrix, seed, exact, return_rates=True)
    return y_noisy, {"matrix": matrix, "clusters": used_clusters, "rates": rates}
