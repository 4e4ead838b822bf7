"""The block model's linearised chain in closed form (docs/theory.md, sections 5-8).

Functions of a :class:`~selfdistill.theory.BlockModel` ``bm`` and checked label counts N (K, K)
(N[k, j] = class-k points labelled j); the model's methods are the public face. For a training
point of group (k, j) (true class k, label j) and A = G (G + lam I)^-1, lam = K n reg:

    P_t(k, j) - 1/K = f_w^(t+1) (e_j - N[k, :] / m_k) + [h_(t+1)(M) Rbar]_k ,
    f_w = mu_w / (mu_w + lam),   h_u(M) = M^u (M + lam I)^-u ,

Rbar_k = N[k, :] / m_k - 1/K the class-mean centred label. Scores are arrays [t, k, j, l]:
round t, group (k, j), label l.
"""

from __future__ import annotations

import numpy as np

from ..targets import topk_weights

_TIE_RTOL = 1e-9  # a margin within this fraction of the round's largest |score| is a tie (not correct)
_FLOAT_NOISE = 1e-12  # accuracy of the exact chain's outputs, added to the linearisation error estimate


def filters(bm, powers, *, scaled):
    """Class-level and within-class filter weights of A^u, u in powers: (T, K), (T,).

    ``scaled`` divides each round by its largest filter (same argmax, no underflow at large u).

    Parameters
    ----------
    bm : BlockModel
        The model.
    powers : sequence of float
        The powers u (u = t + 1 for round t).
    scaled : bool
        Divide each row by its largest filter.

    Returns
    -------
    wc : (T, K) float array
        (lam_a / (lam_a + lam))^u for each class-level eigenvalue lam_a of M.
    ww : (T,) float array
        f_w^u = (mu_w / (mu_w + lam))^u on the within-class space.

    Examples
    --------
    >>> from selfdistill.theory import BlockModel
    >>> bm = BlockModel(3, 20, c=0.4, d=0.1, reg=1e-2)  # mu_w = 0.6, mu_c = 6.6, mu_1 = 12.6, lam = 1.8
    >>> N = bm.check_label_counts(bm.sample_counts("symmetric", 0.3, seed=0))
    >>> wc, ww = filters(bm, [1, 2], scaled=False)
    >>> np.round(wc, 3).tolist(), np.round(ww, 3).tolist()  # g_c = 6.6 / 8.4, g_1 = 12.6 / 14.4, f_w = 0.6 / 2.4
    ([[0.786, 0.786, 0.875], [0.617, 0.617, 0.766]], [0.25, 0.062])
    """
    u = np.asarray(powers, dtype=np.float64)[:, None]
    with np.errstate(divide="ignore"):
        log_fc = np.log(bm._lam / (bm._lam + bm.shrinkage))
        log_fw = np.log(bm.mu_within / (bm.mu_within + bm.shrinkage))
    lc = u * log_fc[None, :]
    lw = u[:, 0] * log_fw
    if scaled:
        top = np.maximum(lc.max(axis=1), lw)
        top = np.where(np.isfinite(top), top, 0.0)
        lc = lc - top[:, None]
        lw = lw - top
    return np.exp(lc), np.exp(lw)


def apply_filters(bm, N, R, wc, ww):
    """A^u applied to group-constant targets R (K, K, K) = [k, j, l]: returns (T, K, K, K).

    Parameters
    ----------
    bm : BlockModel
        The model.
    N : (K, K) float array
        Checked label counts, N[k, j] = class-k points labelled j.
    R : (K, K, K) float array
        Centred targets of every group, [k, j, l].
    wc : (T, K) float array
        Class-level filter weights (:func:`filters`).
    ww : (T,) float array
        Within-class filter weights.

    Returns
    -------
    (T, K, K, K) float array
        ww (R - Rbar) + h(M) Rbar for every group: the within-class part and the class-mean part.

    Examples
    --------
    >>> from selfdistill.theory import BlockModel
    >>> bm = BlockModel(3, 20, c=0.4, d=0.1, reg=1e-2)  # mu_w = 0.6, mu_c = 6.6, mu_1 = 12.6, lam = 1.8
    >>> N = bm.check_label_counts(bm.sample_counts("symmetric", 0.3, seed=0))
    >>> wc, ww = filters(bm, [1], scaled=False)
    >>> P0 = 1 / 3 + apply_filters(bm, N, onehot_R(3), wc, ww)
    >>> bool(np.allclose(P0, bm.train_probs(N, 0)))  # the teacher: A (Y - 1/K)
    True
    """
    m = bm.sizes.astype(np.float64)
    Rbar = np.einsum("kj,kjl->kl", N, R) / m[:, None]  # class means (K, K)
    cls = class_apply(bm, wc, Rbar)
    within = R[None] - Rbar[None, :, None, :]
    return ww[:, None, None, None] * within + cls[:, :, None, :]


def class_apply(bm, weights, Rbar):
    """h(M) Rbar for eigen-weights (T, K): D^-1/2 V diag(weights) V^T D^1/2 Rbar, shape (T, K, L).

    Works in the eigen-coordinates C = V^T D^1/2 Rbar and sets round-off-sized components
    (|C| <= 1e-12 max|C|) to exactly 0: components that vanish mathematically (the all-ones
    part when the observed labels are balanced) would otherwise be amplified by a slowly
    decaying filter over thousands of rounds.

    Parameters
    ----------
    bm : BlockModel
        The model.
    weights : (T, K) float array
        Eigen-weights of h on M's eigenvalues.
    Rbar : (K, L) float array
        Class means of the centred targets.

    Returns
    -------
    (T, K, L) float array
        h(M) Rbar for each row of weights.

    Examples
    --------
    >>> from selfdistill.theory import BlockModel
    >>> bm = BlockModel(3, 20, c=0.4, d=0.1, reg=1e-2)  # mu_w = 0.6, mu_c = 6.6, mu_1 = 12.6, lam = 1.8
    >>> N = bm.check_label_counts(bm.sample_counts("symmetric", 0.3, seed=0))
    >>> wc, _ = filters(bm, [1, 2], scaled=False)
    >>> class_apply(bm, wc, N / 20 - 1 / 3).shape
    (2, 3, 3)
    """
    C = bm._V.T @ (bm._sq[:, None] * Rbar)
    C[np.abs(C) <= 1e-12 * max(float(np.abs(C).max()), 1e-300)] = 0.0
    return np.einsum("ka,ta,al->tkl", bm._V, weights, C) / bm._sq[None, :, None]


def onehot_R(K):
    """(K, K, K) centred one-hot targets of every group: [k, j, l] = [l = j] - 1/K.

    Parameters
    ----------
    K : int
        Number of classes.

    Returns
    -------
    (K, K, K) float array
        A read-only broadcast view: the label j one-hot minus 1/K, whatever the class k.

    Examples
    --------
    >>> np.round(onehot_R(3)[0, 1], 3).tolist()
    [-0.333, 0.667, -0.333]
    """
    return np.broadcast_to(np.eye(K)[None, :, :], (K, K, K)) - 1.0 / K


def train_probs(bm, N, rounds):
    """(rounds+1, K, K, K) linearised outputs P_t of every group (see BlockModel.train_probs).

    Parameters
    ----------
    bm : BlockModel
        The model.
    N : (K, K) float array
        Checked label counts, N[k, j] = class-k points labelled j.
    rounds : int
        R >= 0 SD rounds after the teacher.

    Returns
    -------
    (rounds+1, K, K, K) float array
        P_t(k, j) = 1/K + A^(t+1) (Y - 1/K) restricted to group (k, j).

    Examples
    --------
    >>> from selfdistill.theory import BlockModel
    >>> bm = BlockModel(3, 20, c=0.4, d=0.1, reg=1e-2)  # mu_w = 0.6, mu_c = 6.6, mu_1 = 12.6, lam = 1.8
    >>> N = bm.check_label_counts(bm.sample_counts("symmetric", 0.3, seed=0))
    >>> np.round(train_probs(bm, N, 1)[0, 0, 1], 3).tolist()  # the teacher on a class-0 point labelled 1
    [0.446, 0.347, 0.207]
    """
    wc, ww = filters(bm, np.arange(1, rounds + 2), scaled=False)
    return 1.0 / bm.n_classes + apply_filters(bm, N, onehot_R(bm.n_classes), wc, ww)


def second_order_correction(bm, N, rounds):
    """(rounds+1, K, K, K): e_t = A e_(t-1) + lam (G + lam I)^-1 q(K (P_lin,t - 1/K)), e_(-1) = 0.

    Parameters
    ----------
    bm : BlockModel
        The model.
    N : (K, K) float array
        Checked label counts, N[k, j] = class-k points labelled j.
    rounds : int
        R >= 0 SD rounds after the teacher.

    Returns
    -------
    (rounds+1, K, K, K) float array
        e_t per group.

    Examples
    --------
    >>> from selfdistill.theory import BlockModel
    >>> bm = BlockModel(3, 20, c=0.4, d=0.1, reg=1e-2)  # mu_w = 0.6, mu_c = 6.6, mu_1 = 12.6, lam = 1.8
    >>> N = bm.check_label_counts(bm.sample_counts("symmetric", 0.3, seed=0))
    >>> e = second_order_correction(bm, N, 1)
    >>> e.shape, bool(np.allclose(e.sum(axis=3), 0))  # q sums to 0 over labels, so does e_t
    ((2, 3, 3, 3), True)
    """
    K = bm.n_classes
    P = train_probs(bm, N, rounds) - 1.0 / K
    lam = bm.shrinkage
    res_c = lam / (bm._lam + lam)  # lam (M + lam)^-1 on class-level eigen-directions
    res_w = lam / (bm.mu_within + lam)
    fc = bm._lam / (bm._lam + lam)
    fw = bm.mu_within / (bm.mu_within + lam)
    out = np.zeros_like(P)
    e = np.zeros(P.shape[1:])
    for t in range(rounds + 1):
        Z = K * P[t]
        q = (Z**2 - (Z**2).mean(axis=2, keepdims=True)) / (2 * K)
        prop = apply_filters(bm, N, e, fc[None, :], np.array([fw]))[0] if t else 0.0
        e = prop + apply_filters(bm, N, q, res_c[None, :], np.array([res_w]))[0]
        out[t] = e
    return out


def linear_regime(bm, N, rounds, safety):
    """(rounds+1, K, K) bool: the gap of the two largest outputs exceeds 2 safety (max|e_t| + 1e-12).

    Parameters
    ----------
    bm : BlockModel
        The model.
    N : (K, K) float array
        Checked label counts, N[k, j] = class-k points labelled j.
    rounds : int
        R >= 0 SD rounds after the teacher.
    safety : float
        Factor > 0 on the correction.

    Returns
    -------
    (rounds+1, K, K) bool array
        Trusted (t, k, j).

    Examples
    --------
    >>> from selfdistill.theory import BlockModel
    >>> bm = BlockModel(3, 20, c=0.4, d=0.1, reg=1e-2)  # mu_w = 0.6, mu_c = 6.6, mu_1 = 12.6, lam = 1.8
    >>> N = bm.check_label_counts(bm.sample_counts("symmetric", 0.3, seed=0))
    >>> linear_regime(bm, N, 1, 2.0)[:, 0].tolist()
    [[True, False, False], [True, True, True]]
    """
    P = train_probs(bm, N, rounds)
    srt = np.sort(P, axis=3)
    gap = srt[..., -1] - srt[..., -2]
    err = np.abs(second_order_correction(bm, N, rounds)).max(axis=3) + _FLOAT_NOISE
    return gap > 2.0 * safety * err


def scores(bm, N, rounds_range):
    """Rescaled scores (T, K, K, K) of rounds ``rounds_range``: same argmax as the outputs.

    Parameters
    ----------
    bm : BlockModel
        The model.
    N : (K, K) float array
        Checked label counts, N[k, j] = class-k points labelled j.
    rounds_range : sequence of int
        The rounds t.

    Returns
    -------
    (T, K, K, K) float array
        P_t - 1/K of every group divided by the round's largest filter.

    Examples
    --------
    >>> from selfdistill.theory import BlockModel
    >>> bm = BlockModel(3, 20, c=0.4, d=0.1, reg=1e-2)  # mu_w = 0.6, mu_c = 6.6, mu_1 = 12.6, lam = 1.8
    >>> N = bm.check_label_counts(bm.sample_counts("symmetric", 0.3, seed=0))
    >>> S = scores(bm, N, np.arange(2))
    >>> bool(np.array_equal(S.argmax(axis=3), bm.predictions(N, 1)))
    True
    """
    wc, ww = filters(bm, np.asarray(rounds_range) + 1, scaled=True)
    return apply_filters(bm, N, onehot_R(bm.n_classes), wc, ww)


def margins(S):
    """S (T, K, K, K) scores [t, k, j, l] -> S[t, k, j, k] - max_{l != k} S[t, k, j, l], shape (T, K, K).

    Parameters
    ----------
    S : (T, K, K, K) float array
        Scores [t, k, j, l].

    Returns
    -------
    (T, K, K) float array
        The true class's margin: > 0 right, < 0 wrong.

    Examples
    --------
    >>> from selfdistill.theory import BlockModel
    >>> bm = BlockModel(3, 20, c=0.4, d=0.1, reg=1e-2)  # mu_w = 0.6, mu_c = 6.6, mu_1 = 12.6, lam = 1.8
    >>> N = bm.check_label_counts(bm.sample_counts("symmetric", 0.3, seed=0))
    >>> np.round(margins(scores(bm, N, np.arange(2)))[:, 0], 3).tolist()
    [[0.56, 0.114, -0.012], [0.405, 0.323, 0.241]]
    """
    K = S.shape[-1]
    idx = np.arange(K)
    own = np.einsum("tkjk->tkj", S)
    other = S.copy()
    other[:, idx, :, idx] = -np.inf
    return own - other.max(axis=-1)


def right(S):
    """S (T, K, J, K) scores [t, k, j, l] -> bool (T, K, J): the true class k wins strictly.

    Margins within 1e-9 of the round's largest |score| are ties and count as not correct.

    Parameters
    ----------
    S : (T, K, J, K) float array
        Scores [t, k, j, l].

    Returns
    -------
    (T, K, J) bool array
        Whether the true class k wins group (k, j) at round t.

    Examples
    --------
    >>> from selfdistill.theory import BlockModel
    >>> bm = BlockModel(3, 20, c=0.4, d=0.1, reg=1e-2)  # mu_w = 0.6, mu_c = 6.6, mu_1 = 12.6, lam = 1.8
    >>> N = bm.check_label_counts(bm.sample_counts("symmetric", 0.3, seed=0))
    >>> right(scores(bm, N, np.arange(2)))[:, 0].tolist()
    [[True, True, False], [True, True, True]]
    """
    K = S.shape[-1]
    own_idx = np.arange(K)[None, :, None, None] * np.ones(S.shape[:3] + (1,), dtype=np.int64)
    own = np.take_along_axis(S, own_idx, axis=3)[..., 0]
    other = S.copy()
    idx = np.arange(K)
    other[:, idx, :, idx] = -np.inf
    tol = _TIE_RTOL * np.abs(S).reshape(S.shape[0], -1).max(axis=1)
    return (own - other.max(axis=3)) > tol[:, None, None]


def accuracy_range(bm, N, ts):
    """(len(ts),) training-point accuracy of the linearised chain at rounds ``ts``.

    Parameters
    ----------
    bm : BlockModel
        The model.
    N : (K, K) float array
        Checked label counts, N[k, j] = class-k points labelled j.
    ts : sequence of int
        The rounds t.

    Returns
    -------
    (len(ts),) float array
        sum_{k,j} N[k, j] [group (k, j) right at round t] / n.

    Examples
    --------
    >>> from selfdistill.theory import BlockModel
    >>> bm = BlockModel(3, 20, c=0.4, d=0.1, reg=1e-2)  # mu_w = 0.6, mu_c = 6.6, mu_1 = 12.6, lam = 1.8
    >>> N = bm.check_label_counts(bm.sample_counts("symmetric", 0.3, seed=0))
    >>> np.round(accuracy_range(bm, N, [0, 1]), 3).tolist()
    [0.917, 1.0]
    """
    ok = right(scores(bm, N, ts))  # (T, K, K)
    return np.einsum("tkj,kj->t", ok.astype(np.float64), N) / bm.n


def test_scores(bm, N, ts, *, scaled):
    """(T, K, K) linearised p_t(x) - 1/K of a new point of class k: [(M - (1 - c) I) (M + lam I)^-1 h_t(M) Rbar]_k.

    Parameters
    ----------
    bm : BlockModel
        The model.
    N : (K, K) float array
        Checked label counts, N[k, j] = class-k points labelled j.
    ts : sequence of int
        The rounds t.
    scaled : bool
        Divide each round by its largest weight (same argmax, no underflow).

    Returns
    -------
    (T, K, K) float array
        Row k: a new class-k point's p_t(x) - 1/K (or its rescaled scores).

    Examples
    --------
    >>> from selfdistill.theory import BlockModel
    >>> bm = BlockModel(3, 20, c=0.4, d=0.1, reg=1e-2)  # mu_w = 0.6, mu_c = 6.6, mu_1 = 12.6, lam = 1.8
    >>> N = bm.check_label_counts(bm.sample_counts("symmetric", 0.3, seed=0))
    >>> bool(np.allclose(test_scores(bm, N, [0, 1], scaled=False), bm.test_scores(N, 1)))
    True
    """
    ts = np.asarray(ts, dtype=np.float64)
    lam = bm._lam
    with np.errstate(divide="ignore"):
        logw = ts[:, None] * np.log(lam / (lam + bm.shrinkage))[None, :] - np.log(lam + bm.shrinkage)[None, :]
    if scaled:
        top = logw.max(axis=1)
        logw = logw - np.where(np.isfinite(top), top, 0.0)[:, None]
    w = (lam - bm.mu_within)[None, :] * np.exp(logw)
    m = bm.sizes.astype(np.float64)
    Rbar = N / m[:, None] - 1.0 / bm.n_classes
    return class_apply(bm, w, Rbar)


def class_weights(v, K):
    """``class_weights`` (K,) non-negative with a positive sum, normalised to sum 1.

    Parameters
    ----------
    v : (K,) array-like
        Non-negative class weights with a positive sum.
    K : int
        Number of classes.

    Returns
    -------
    (K,) float array
        v / sum(v).

    Raises
    ------
    ValueError
        If v is not K finite non-negative numbers with a positive sum.

    Examples
    --------
    >>> class_weights([1, 1, 2], 3).tolist()
    [0.25, 0.25, 0.5]
    """
    w = np.asarray(v, dtype=np.float64)
    if w.shape != (K,) or not np.all(np.isfinite(w)) or w.min() < 0 or w.sum() <= 0:
        raise ValueError(f"class_weights must be {K} non-negative numbers with a positive sum, got {v!r}")
    return w / w.sum()


def pll_targets(teacher_scores, top_k):
    """(K, K, K) group targets: the top-k weights of each group's teacher scores (ties shared).

    The library's top-k rule (:func:`selfdistill.targets.topk_weights`) on the linearised scores,
    which are not probabilities: scores equal up to 1e-9 of the largest |score| are tied.

    Parameters
    ----------
    teacher_scores : (K, K, K) float array
        The teacher's (round 0) scores per group.
    top_k : int
        Candidate-set size k (2 <= k < K).

    Returns
    -------
    (K, K, K) float array
        Each group's targets: 1/k on its top-k labels, tied labels sharing the k-th place's mass.

    Examples
    --------
    >>> pll_targets(np.array([[[0.5, 0.5, 0.1]]]), 2).tolist()
    [[[0.5, 0.5, 0.0]]]
    >>> np.round(pll_targets(np.array([[[0.6, 0.2, 0.2]]]), 2), 3).tolist()  # a tie for 2nd shares 1/2
    [[[0.5, 0.25, 0.25]]]
    """
    return topk_weights(teacher_scores, top_k, 1e-9 * max(float(np.abs(teacher_scores).max()), 1e-300))


def pll_scores(bm, N, top_k):
    """(student scores (1, K, K, K), targets T (K, K, K), teacher scores (K, K, K)) of the PLL student.

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
    student : (1, K, K, K) float array
        The PLL student's rescaled scores, A (T - 1/K) per group.
    T : (K, K, K) float array
        The student's targets (:func:`pll_targets`).
    teacher : (K, K, K) float array
        The teacher's rescaled scores.

    Examples
    --------
    >>> from selfdistill.theory import BlockModel
    >>> bm = BlockModel(3, 20, c=0.4, d=0.1, reg=1e-2)  # mu_w = 0.6, mu_c = 6.6, mu_1 = 12.6, lam = 1.8
    >>> N = bm.check_label_counts(bm.sample_counts("symmetric", 0.3, seed=0))
    >>> student, T, teacher = pll_scores(bm, N, 2)
    >>> T[0, 1].tolist(), bool(right(student)[0].all())  # every group right after one PLL round
    ([0.5, 0.5, 0.0], True)
    """
    teacher = scores(bm, N, np.array([0]))[0]
    T = pll_targets(teacher, top_k)
    wc, ww = filters(bm, np.array([1]), scaled=True)
    return apply_filters(bm, N, T - 1.0 / bm.n_classes, wc, ww), T, teacher
