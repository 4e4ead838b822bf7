"""The block model's round thresholds (docs/theory.md, sections 6-7): the minimum number of SD
rounds to 100% training accuracy, over-averaging, the noise threshold and the PLL condition.

Functions of a :class:`~selfdistill.theory.BlockModel` ``bm`` and checked label counts N (K, K),
on the linearised chain of :mod:`selfdistill.theory.block_linear`; the model's methods are the
public face.
"""

from __future__ import annotations

import numpy as np

from . import block_linear as lin


def horizon(bm):
    """A round count after which the linearised predictions no longer change (float64).

    Parameters
    ----------
    bm : BlockModel
        The model.

    Returns
    -------
    int
        A round after which the rescaled filters' ratios have fallen below 1e-40, at most 10^6.

    Examples
    --------
    >>> from selfdistill.theory import BlockModel
    >>> bm = BlockModel(3, 20, c=0.4, d=0.1, reg=1e-2)  # mu_w = 0.6, mu_c = 6.6, mu_1 = 12.6, lam = 1.8
    >>> N = bm.check_label_counts(bm.sample_counts("symmetric", 0.3, seed=0))
    >>> horizon(bm)
    857
    """
    vals = np.unique(np.concatenate([bm._lam, [bm.mu_within]]))
    f = vals / (vals + bm.shrinkage)
    f = np.unique(f[f > 0])
    if f.size < 2:
        return 1
    gap = np.log(f[-1]) - np.log(f[-2])  # slowest relative decay between two filter levels
    return int(min(1_000_000, np.ceil(40.0 * np.log(10.0) / max(gap, 1e-300)) + 1))


def scan(bm, N, max_rounds):
    """Yield (ts, accuracy) chunks for rounds 0..max_rounds.

    Parameters
    ----------
    bm : BlockModel
        The model.
    N : (K, K) float array
        Checked label counts, N[k, j] = class-k points labelled j.
    max_rounds : int
        The last round scanned.

    Returns
    -------
    ts : (T,) int array
        Rounds of one chunk (at most 4096).
    accuracy : (T,) float array
        The linearised training accuracy at those rounds.

    Examples
    --------
    >>> from selfdistill.theory import BlockModel
    >>> bm = BlockModel(3, 20, c=0.4, d=0.1, reg=1e-2)  # mu_w = 0.6, mu_c = 6.6, mu_1 = 12.6, lam = 1.8
    >>> N = bm.check_label_counts(bm.sample_counts("symmetric", 0.3, seed=0))
    >>> [(ts.tolist(), np.round(acc, 3).tolist()) for ts, acc in scan(bm, N, 2)]
    [([0, 1, 2], [0.917, 1.0, 1.0])]
    """
    chunk = 4096
    for start in range(0, max_rounds + 1, chunk):
        ts = np.arange(start, min(start + chunk, max_rounds + 1))
        yield ts, lin.accuracy_range(bm, N, ts)


def balanced(bm, N):
    """Equal sizes, no superclasses and balanced observed labels (delta = 0): t* has a closed form.

    Parameters
    ----------
    bm : BlockModel
        The model.
    N : (K, K) float array
        Checked label counts, N[k, j] = class-k points labelled j.

    Returns
    -------
    bool
        Whether the closed form of t* applies.

    Examples
    --------
    >>> from selfdistill.theory import BlockModel
    >>> bm = BlockModel(3, 20, c=0.4, d=0.1, reg=1e-2)  # mu_w = 0.6, mu_c = 6.6, mu_1 = 12.6, lam = 1.8
    >>> N = bm.check_label_counts(bm.sample_counts("symmetric", 0.3, seed=0))
    >>> balanced(bm, N), balanced(bm, bm.expected_counts("symmetric", 0.3))
    (False, True)
    """
    if bm.superclasses is not None or not np.all(bm.sizes == bm.sizes[0]):
        return False
    return float(np.abs(N.sum(axis=0) / bm.n - 1.0 / bm.n_classes).max()) <= 1e-12


def min_rounds(bm, N, max_rounds=None):
    """t*, the first round with 100% training accuracy, or None (closed form when it applies, else a scan
    up to ``max_rounds``, default :func:`horizon`).

    Parameters
    ----------
    bm : BlockModel
        The model.
    N : (K, K) float array
        Checked label counts, N[k, j] = class-k points labelled j.
    max_rounds : int or None
        Scan horizon (None: the closed form if balanced, else :func:`horizon`).

    Returns
    -------
    int or None
        t*.

    Examples
    --------
    >>> from selfdistill.theory import BlockModel
    >>> bm = BlockModel(3, 20, c=0.4, d=0.1, reg=1e-2)  # mu_w = 0.6, mu_c = 6.6, mu_1 = 12.6, lam = 1.8
    >>> N = bm.check_label_counts(bm.sample_counts("symmetric", 0.3, seed=0))
    >>> min_rounds(bm, N), min_rounds(bm, N, 0)
    (1, None)
    """
    if max_rounds is None and balanced(bm, N):
        return min_rounds_formula(bm, N)  # exact in this case, and O(K^2) instead of a scan
    for ts, acc in scan(bm, N, horizon(bm) if max_rounds is None else max_rounds):
        hit = np.flatnonzero(acc >= 1.0 - 1e-12)
        if hit.size:
            return int(ts[hit[0]])
    return None


def min_rounds_formula(bm, N):
    """t* = max(0, floor(log(1 + m / Delta) / log(g_c / f_w))) (equal sizes, no superclasses,
    balanced labels), or None when the plurality condition N[k, k] > N[k, l] fails.

    Parameters
    ----------
    bm : BlockModel
        The model.
    N : (K, K) float array
        Checked label counts, N[k, j] = class-k points labelled j.

    Returns
    -------
    int or None
        t*.

    Raises
    ------
    ValueError
        Unequal sizes, superclasses or unbalanced labels.

    Examples
    --------
    >>> from selfdistill.theory import BlockModel
    >>> bm = BlockModel(3, 20, c=0.4, d=0.1, reg=1e-2)  # mu_w = 0.6, mu_c = 6.6, mu_1 = 12.6, lam = 1.8
    >>> N = bm.check_label_counts(bm.sample_counts("symmetric", 0.3, seed=0))
    >>> min_rounds_formula(bm, bm.expected_counts("symmetric", 0.3))
    0
    >>> min_rounds_formula(bm, bm.expected_counts("symmetric", 0.7)) is None  # no plurality
    True
    """
    m = bm.sizes
    if bm.superclasses is not None or not np.all(m == m[0]):
        raise ValueError("min_rounds_formula needs equal class sizes and no superclasses; use min_rounds")
    if not balanced(bm, N):
        raise ValueError("min_rounds_formula needs balanced observed labels (all column sums equal); use min_rounds")
    diag = np.diag(N)
    off = N.copy()
    np.fill_diagonal(off, -np.inf)
    if np.any(off.max(axis=1) >= diag):
        return None
    noisy = N > 0
    np.fill_diagonal(noisy, False)
    if not noisy.any():
        return 0
    gaps = (diag[:, None] - N)[noisy]
    mu_c = 1.0 - bm.c + m[0] * (bm.c - bm.d)
    g_c = mu_c / (mu_c + bm.shrinkage)
    f_w = bm.mu_within / (bm.mu_within + bm.shrinkage)
    if f_w == 0.0:
        return 0
    L = np.log1p(m[0] / gaps.min()) / np.log(g_c / f_w)
    return int(max(0, np.floor(L)))


def over_averaging_round(bm, N, max_rounds=None):
    """The first t with acc(t + 1) < acc(t) = max_{s <= t} acc(s), or None (scan to ``max_rounds``).

    Parameters
    ----------
    bm : BlockModel
        The model.
    N : (K, K) float array
        Checked label counts, N[k, j] = class-k points labelled j.
    max_rounds : int or None
        Scan horizon (default :func:`horizon`).

    Returns
    -------
    int or None
        The over-averaging round.

    Examples
    --------
    >>> from selfdistill.theory import BlockModel
    >>> bm = BlockModel(3, 20, c=0.4, d=0.1, reg=1e-2)  # mu_w = 0.6, mu_c = 6.6, mu_1 = 12.6, lam = 1.8
    >>> N = bm.check_label_counts(bm.sample_counts("symmetric", 0.3, seed=0))
    >>> over_averaging_round(bm, N), over_averaging_round(bm, N, 10)
    (26, None)
    """
    end = horizon(bm) if max_rounds is None else max_rounds
    best, prev, prev_t = -1.0, None, None
    for ts, acc in scan(bm, N, end + 1):
        for t, a in zip(ts.tolist(), acc.tolist(), strict=False):
            if prev is not None and a < prev - 1e-12 and prev >= best - 1e-12:
                return prev_t
            best = max(best, a)
            prev, prev_t = a, t
    return None


def noise_threshold(bm, kind, clusters, tol):
    """sup {eta : min_rounds(expected_counts(kind, eta)) is not None}, by bisection on [0, 1].

    Parameters
    ----------
    bm : BlockModel
        The model.
    kind : str or (K, K) array
        Noise kind or transition matrix.
    clusters : sequence or None
        Class clusters for ``class_cluster``.
    tol : float
        Bisection tolerance.

    Returns
    -------
    float
        eta*.

    Examples
    --------
    >>> from selfdistill.theory import BlockModel
    >>> bm = BlockModel(3, 20, c=0.4, d=0.1, reg=1e-2)  # mu_w = 0.6, mu_c = 6.6, mu_1 = 12.6, lam = 1.8
    >>> N = bm.check_label_counts(bm.sample_counts("symmetric", 0.3, seed=0))
    >>> round(noise_threshold(bm, "symmetric", None, 1e-7), 5)  # (K - 1) / K
    0.66667
    """

    def ok(eta):
        return min_rounds(bm, bm.expected_counts(kind, eta, clusters=clusters)) is not None

    if not ok(0.0):
        return 0.0
    if ok(1.0):
        return 1.0
    lo, hi = 0.0, 1.0
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return 0.5 * (lo + hi)


_VERDICTS = {(True, True): "both", (True, False): "PLL only", (False, True): "SD only", (False, False): "neither"}


def pll_condition(bm, N, top_k):
    """The PLL student's 100% condition beside repeated SD's (see BlockModel.pll_condition): a dict.

    Parameters
    ----------
    bm : BlockModel
        The model.
    N : (K, K) float array
        Checked label counts, N[k, j] = class-k points labelled j.
    top_k : int
        Candidate-set size k (2 <= k < K).

    Returns
    -------
    dict
        coverage, full, pll_accuracy, sd_min_rounds, sd_best_accuracy, verdict.

    Examples
    --------
    >>> from selfdistill.theory import BlockModel
    >>> bm = BlockModel(3, 20, c=0.4, d=0.1, reg=1e-2)  # mu_w = 0.6, mu_c = 6.6, mu_1 = 12.6, lam = 1.8
    >>> N = bm.check_label_counts(bm.sample_counts("symmetric", 0.3, seed=0))
    >>> pll_condition(bm, N, 2)["verdict"]
    'both'
    """
    scores, T, _ = lin.pll_scores(bm, N, top_k)
    K = bm.n_classes
    exists = N > 0
    true = np.arange(K)[:, None]
    covered = np.take_along_axis(T, np.broadcast_to(true, (K, K))[..., None], axis=2)[..., 0] > 0
    ok = lin.right(scores)[0]
    full = bool(np.all(ok[exists]))
    t_star = min_rounds(bm, N)
    sd_best = float(lin.accuracy_range(bm, N, np.arange(max(10, t_star or 0) + 1)).max())
    return {
        "coverage": bool(np.all(covered[exists])),
        "full": full,
        "pll_accuracy": float((ok * N).sum() / bm.n),
        "sd_min_rounds": t_star,
        "sd_best_accuracy": sd_best,
        "verdict": _VERDICTS[(full, t_star is not None)],
    }
