"""What a teacher hands its student: soft outputs or a top-k partial-label refinement.

All functions take the teacher's softmax outputs on the training points, ``probs`` (n, K), and
return the student's target matrix T (n, K) whose rows sum to 1.
"""

from __future__ import annotations

import numpy as np

from ._validation import check_choice, check_int, check_labels, check_positive, check_targets

__all__ = ["refine_targets", "topk_mask", "topk_weights", "TARGET_KINDS", "TIE_RTOL"]

TARGET_KINDS = ("soft", "topk")

#: Two teacher probabilities whose ratio is within 1 +- TIE_RTOL (|log p_j - log p_l| <= TIE_RTOL)
#: are a tie for the top-k refinement. Far above the solver's error on the logits (its gradient
#: tolerance is 1e-8), far below any gap that carries information.
TIE_RTOL = 1e-6


def topk_weights(scores, top_k: int, tol) -> np.ndarray:
    """Top-k candidate weights with ties shared: the partial-label targets T of the PLL student.

    For each row s (last axis, K classes) with k-th largest value s_(k): labels with
    s_j > s_(k) + tol get 1/k each; the labels tied with the k-th, |s_j - s_(k)| <= tol, share the
    remaining mass (k - #above)/k equally. Without a tie this is 1/k on the k largest entries; with
    one, no label is favoured by its index: the weights are equivariant under any relabelling of
    the classes (permuting the columns of ``scores`` permutes those of the result).

    Parameters
    ----------
    scores : (..., K) array (any leading shape), larger = more likely.
    top_k : k, 1 <= k <= K.
    tol : absolute tie tolerance, a scalar or broadcastable to (..., 1).

    Returns (..., K) float64 weights >= 0, each row summing to 1.
    """
    s = np.asarray(scores, dtype=np.float64)
    K = s.shape[-1]
    top_k = check_int(top_k, "top_k", low=1, high=K)
    kth = -np.partition(-s, top_k - 1, axis=-1)[..., top_k - 1 : top_k]
    tol = np.asarray(tol, dtype=np.float64)
    above = s > kth + tol
    tied = ~above & (s >= kth - tol)
    share = (top_k - above.sum(axis=-1, keepdims=True)) / (top_k * tied.sum(axis=-1, keepdims=True))
    return above / top_k + tied * share


def _log_probs(probs: np.ndarray) -> np.ndarray:
    # an underflowed 0 becomes the smallest float's log: zeros tie with each other, never -inf - -inf
    return np.log(np.maximum(probs, np.finfo(np.float64).tiny))


def topk_mask(probs: np.ndarray, top_k: int = 2, *, tie_rtol: float = TIE_RTOL) -> np.ndarray:
    """Boolean (n, K) mask of each row's candidate set S_i: its ``top_k`` most probable labels.

    When the k-th and (k+1)-th probabilities tie (ratio within 1 +- ``tie_rtol``), every tied
    label is a candidate, so a set may hold more than k labels; no label is favoured by its class
    index. The support of :func:`topk_weights` on log(probs).
    """
    probs = np.asarray(probs, dtype=np.float64)
    top_k = check_int(top_k, "top_k", low=1, high=probs.shape[1])
    tie_rtol = check_positive(tie_rtol, "tie_rtol", strict=False)
    return topk_weights(_log_probs(probs), top_k, tie_rtol) > 0


def refine_targets(probs, kind, *, top_k=2, temperature=1.0, mix=1.0, given=None, tie_rtol=TIE_RTOL) -> np.ndarray:
    """Targets for the next student from the teacher's outputs ``probs`` (n, K).

    kind="soft" (multi-round SD): T = softmax(log(probs) / temperature), i.e. rows of
        probs**(1/temperature) renormalised; temperature 1 (the paper's setting) returns probs.
    kind="topk" (the PLL refinement): T_ij = 1/k for the k = top_k largest entries of row i, 0
        elsewhere. Requires 2 <= top_k < K. Ties: when the k-th and (k+1)-th probabilities tie
        (ratio within 1 +- ``tie_rtol``, default :data:`TIE_RTOL` = 1e-6), the labels tied with the
        k-th share the remaining candidate mass equally (:func:`topk_weights`), so the targets do
        not depend on how the classes are numbered. E.g. probs (0.5, 0.25, 0.25), k = 2 gives
        (1/2, 1/4, 1/4).
    mix (xi): T <- xi * T + (1 - xi) * one_hot(given), given (n,) the observed labels. xi = 1 is pure
        SD (the default, ``given`` unused); 0 <= xi < 1 interpolates towards the given labels; xi > 1
        extrapolates away from them (Das and Sanghavi, 2023): rows still sum to 1 but may be
        negative, and the solver accepts them with ``allow_negative_targets=True``.

    Returns T (n, K) float64.
    """
    P = check_targets(probs, n_samples=np.shape(probs)[0], name="probs")
    if np.ndim(probs) != 2:
        raise ValueError(f"probs must be the teacher's (n, K) softmax outputs, got shape {np.shape(probs)}")
    check_choice(kind, "kind", TARGET_KINDS)
    temperature = check_positive(temperature, "temperature")
    mix = check_positive(mix, "mix", strict=False)
    tie_rtol = check_positive(tie_rtol, "tie_rtol", strict=False)
    n, K = P.shape
    if kind == "soft":
        if temperature == 1.0:
            T = P.copy()
        else:
            with np.errstate(divide="ignore"):
                L = np.log(P) / temperature
            L -= L.max(axis=1, keepdims=True)
            T = np.exp(L)
            T /= T.sum(axis=1, keepdims=True)
    else:
        top_k = check_int(top_k, "top_k", low=2, high=K - 1)
        T = topk_weights(_log_probs(P), top_k, tie_rtol)
    if mix != 1.0:
        if given is None:
            raise ValueError(f"given (the observed labels) is required when mix != 1, got mix={mix}")
        y = check_labels(given, "given", n_samples=n, n_classes=K)
        onehot = np.zeros((n, K))
        onehot[np.arange(n), y] = 1.0
        T = mix * T + (1.0 - mix) * onehot
    return T
