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
    """A^u applied to group-constant targets R (K, K, K) = [k, j, l]: returns (T, K, K, K)."""
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
    """
    C = bm._V.T @ (bm._sq[:, None] * Rbar)
    C[np.abs(C) <= 1e-12 * max(float(np.abs(C).max()), 1e-300)] = 0.0
    return np.einsum("ka,ta,al->tkl", bm._V, weights, C) / bm._sq[None, :, None]


def onehot_R(K):
    """(K, K, K) centred one-hot targets of every group: [k, j, l] = [l = j] - 1/K."""
    return np.broadcast_to(np.eye(K)[None, :, :], (K, K, K)) - 1.0 / K


def train_probs(bm, N, rounds):
    """(rounds+1, K, K, K) linearised outputs P_t of every group (see BlockModel.train_probs)."""
    wc, ww = filters(bm, np.arange(1, rounds + 2), scaled=False)
    return 1.0 / bm.n_classes + apply_filters(bm, N, onehot_R(bm.n_classes), wc, ww)


def second_order_correction(bm, N, rounds):
    """(rounds+1, K, K, K): e_t = A e_(t-1) + lam (G + lam I)^-1 q(K (P_lin,t - 1/K)), e_(-1) = 0."""
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
    """(rounds+1, K, K) bool: the gap of the two largest outputs exceeds 2 safety (max|e_t| + 1e-12)."""
    P = train_probs(bm, N, rounds)
    srt = np.sort(P, axis=3)
    gap = srt[..., -1] - srt[..., -2]
    err = np.abs(second_order_correction(bm, N, rounds)).max(axis=3) + _FLOAT_NOISE
    return gap > 2.0 * safety * err


def scores(bm, N, rounds_range):
    """Rescaled scores (T, K, K, K) of rounds ``rounds_range``: same argmax as the outputs."""
    wc, ww = filters(bm, np.asarray(rounds_range) + 1, scaled=True)
    return apply_filters(bm, N, onehot_R(bm.n_classes), wc, ww)


def margins(S):
    """S (T, K, K, K) scores [t, k, j, l] -> S[t, k, j, k] - max_{l != k} S[t, k, j, l], shape (T, K, K)."""
    K = S.shape[-1]
    idx = np.arange(K)
    own = np.einsum("tkjk->tkj", S)
    other = S.copy()
    other[:, idx, :, idx] = -np.inf
    return own - other.max(axis=-1)


def right(S):
    """S (T, K, J, K) scores [t, k, j, l] -> bool (T, K, J): the true class k wins strictly.

    Margins within 1e-9 of the round's largest |score| are ties and count as not correct."""
    K = S.shape[-1]
    own_idx = np.arange(K)[None, :, None, None] * np.ones(S.shape[:3] + (1,), dtype=np.int64)
    own = np.take_along_axis(S, own_idx, axis=3)[..., 0]
    other = S.copy()
    idx = np.arange(K)
    other[:, idx, :, idx] = -np.inf
    tol = _TIE_RTOL * np.abs(S).reshape(S.shape[0], -1).max(axis=1)
    return (own - other.max(axis=3)) > tol[:, None, None]


def accuracy_range(bm, N, ts):
    """(len(ts),) training-point accuracy of the linearised chain at rounds ``ts``."""
    ok = right(scores(bm, N, ts))  # (T, K, K)
    return np.einsum("tkj,kj->t", ok.astype(np.float64), N) / bm.n


def test_scores(bm, N, ts, *, scaled):
    """(T, K, K) linearised p_t(x) - 1/K of a new point of class k: [(M - (1 - c) I) (M + lam I)^-1 h_t(M) Rbar]_k."""
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
    """``class_weights`` (K,) non-negative with a positive sum, normalised to sum 1."""
    w = np.asarray(v, dtype=np.float64)
    if w.shape != (K,) or not np.all(np.isfinite(w)) or w.min() < 0 or w.sum() <= 0:
        raise ValueError(f"class_weights must be {K} non-negative numbers with a positive sum, got {v!r}")
    return w / w.sum()


def pll_targets(teacher_scores, top_k):
    """(K, K, K) group targets: the top-k weights of each group's teacher scores (ties shared).

    The library's top-k rule (:func:`selfdistill.targets.topk_weights`) on the linearised scores,
    which are not probabilities: scores equal up to 1e-9 of the largest |score| are tied.
    """
    return topk_weights(teacher_scores, top_k, 1e-9 * max(float(np.abs(teacher_scores).max()), 1e-300))


def pll_scores(bm, N, top_k):
    """(student scores (1, K, K, K), targets T (K, K, K), teacher scores (K, K, K)) of the PLL student."""
    teacher = scores(bm, N, np.array([0]))[0]
    T = pll_targets(teacher, top_k)
    wc, ww = filters(bm, np.array([1]), scaled=True)
    return apply_filters(bm, N, T - 1.0 / bm.n_classes, wc, ww), T, teacher
