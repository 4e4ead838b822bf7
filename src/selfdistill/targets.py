"""What a teacher hands its student: soft outputs or a top-k partial-label refinement.

All functions take the teacher's softmax outputs on the training points, ``probs`` (n, K), and
return the student's target matrix T (n, K) whose rows sum to 1.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ._validation import check_choice, check_int, check_labels, check_positive, check_targets

#: The largest ``mix`` (xi) accepted: xi * P + (1 - xi) * one-hot keeps unit row sums to ~xi * 1e-16.
MAX_MIX = 1e6

def check_mix(mix: float) -> float:
    """``mix`` (xi) as a float in [0, :data:`MAX_MIX`]; a ValueError naming ``mix`` otherwise.

    Parameters
    ----------
    mix : float
        The weight xi of the teacher's outputs in xi * P + (1 - xi) * one-hot(given).

    Returns
    -------
    float
        ``mix``, checked.

    Raises
    ------
    ValueError
        ``mix`` negative, not a number, or above :data:`MAX_MIX`.

    Examples
    --------
    >>> check_mix(0.5)
    0.5
    """
    mix = check_positive(mix, "mix", strict=False)
    if mix > MAX_MIX:
        raise ValueError(f"mix must be <= {MAX_MIX:g} (beyond it the mixed targets mix * P + (1 - mix) * one-hot "
                         f"lose their unit row sums to round-off), got mix={mix!r}")
    return mix


__all__ = ["refine_targets", "topk_mask", "topk_weights", "check_mix", "TARGET_KINDS", "TIE_RTOL", "MAX_MIX"]

TARGET_KINDS = ("soft", "topk")

#: Two teacher probabilities whose ratio is within 1 +- TIE_RTOL (|log p_j - log p_l| <= TIE_RTOL)
#: are a tie for the top-k refinement. Far above the solver's error on the logits (its gradient
#: tolerance is 1e-8), far below any gap that carries information.
TIE_RTOL = 1e-6


def topk_weights(scores: ArrayLike, top_k: int, tol: float | ArrayLike) -> np.ndarray:
    """Compute top-k candidate weights with ties shared: the partial-label targets T of the PLL student.

    For each row s (last axis, K classes) with k-th largest value s_(k): labels with
    s_j > s_(k) + tol get 1/k each; the labels tied with the k-th, |s_j - s_(k)| <= tol, share the
    remaining mass (k - #above)/k equally. Without a tie this is 1/k on the k largest entries; with
    one, no label is favoured by its index: the weights are equivariant under any relabelling of
    the classes (permuting the columns of ``scores`` permutes those of the result).

    Parameters
    ----------
    scores : array-like of float, shape (..., K)
        Any leading shape; larger = more likely (e.g. the teacher's log-probabilities).
    top_k : int
        k, the candidate-set size, 1 <= k <= K.
    tol : float or array-like broadcastable to (..., 1)
        Absolute tie tolerance on ``scores``.

    Returns
    -------
    weights : ndarray of float64, shape (..., K)
        Weights >= 0, each row summing to 1; the support of a row is its candidate set S_i.

    Raises
    ------
    ValueError
        ``top_k`` not an integer in [1, K].

    Examples
    --------
    Row 0 has a tie for second place, so the two tied labels share the second half of the mass:

    >>> topk_weights(np.array([[3.0, 2.0, 2.0], [3.0, 2.0, 1.0]]), 2, 1e-9)
    array([[0.5 , 0.25, 0.25],
           [0.5 , 0.5 , 0.  ]])
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
    """Return the boolean mask of each row's PLL candidate set S_i: its ``top_k`` most probable labels.

    When the k-th and (k+1)-th probabilities tie (ratio within 1 +- ``tie_rtol``), every tied
    label is a candidate, so a set may hold more than k labels; no label is favoured by its class
    index. The support of :func:`topk_weights` on log(probs).

    Parameters
    ----------
    probs : ndarray of float, shape (n, K)
        The teacher's softmax outputs on the training points.
    top_k : int, default 2
        k, 1 <= k <= K.
    tie_rtol : float, default TIE_RTOL (1e-6), keyword-only
        Two probabilities whose ratio is within 1 +- ``tie_rtol`` tie.

    Returns
    -------
    mask : ndarray of bool, shape (n, K)
        ``mask[i, j]`` is True when label j is in the candidate set of point i.

    Raises
    ------
    ValueError
        ``top_k`` outside [1, K]; ``tie_rtol`` negative.

    Examples
    --------
    >>> topk_mask(np.array([[0.5, 0.3, 0.2], [0.4, 0.3, 0.3]]), 2)
    array([[ True,  True, False],
           [ True,  True,  True]])
    """
    probs = np.asarray(probs, dtype=np.float64)
    top_k = check_int(top_k, "top_k", low=1, high=probs.shape[1])
    tie_rtol = check_positive(tie_rtol, "tie_rtol", strict=False)
    return topk_weights(_log_probs(probs), top_k, tie_rtol) > 0


def refine_targets(
    probs: ArrayLike,
    kind: str,
    *,
    top_k: int = 2,
    temperature: float = 1.0,
    mix: float = 1.0,
    given: ArrayLike | None = None,
    tie_rtol: float = TIE_RTOL,
) -> np.ndarray:
    """Build the next student's targets T (n, K) from the teacher's outputs ``probs`` (n, K).

    Parameters
    ----------
    probs : array-like of float, shape (n, K)
        The teacher's softmax outputs on the training points (rows sum to 1).
    kind : {"soft", "topk"}
        - ``"soft"`` (multi-round SD): T = softmax(log(probs) / temperature), i.e. rows of
          probs**(1/temperature) renormalised; temperature 1 (the paper's setting) returns probs.
        - ``"topk"`` (the PLL refinement): T_ij = 1/k for the k = top_k largest entries of row i,
          0 elsewhere. Ties: when the k-th and (k+1)-th probabilities tie (ratio within
          1 +- ``tie_rtol``), the labels tied with the k-th share the remaining candidate mass
          equally (:func:`topk_weights`), so the targets do not depend on how the classes are
          numbered. E.g. probs (0.5, 0.25, 0.25), k = 2 gives (1/2, 1/4, 1/4).
    top_k : int, default 2, keyword-only
        Candidate-set size k for ``kind="topk"``; requires 2 <= top_k < K.
    temperature : float, default 1.0, keyword-only
        Softmax temperature (> 0) of ``kind="soft"``.
    mix : float, default 1.0, keyword-only
        xi >= 0 in T <- xi * T + (1 - xi) * one_hot(given). xi = 1 is pure SD (``given`` unused);
        0 <= xi < 1 interpolates towards the given labels; xi > 1 extrapolates away from them
        (Das and Sanghavi, 2023): rows still sum to 1 but may be negative, and the solver accepts
        them with ``allow_negative_targets=True``.
    given : array-like of int, shape (n,), optional, keyword-only
        The observed (noisy) labels in 0..K-1; required when ``mix != 1``.
    tie_rtol : float, default TIE_RTOL (1e-6), keyword-only
        Relative tie tolerance of ``kind="topk"`` (see :data:`TIE_RTOL`).

    Returns
    -------
    T : ndarray of float64, shape (n, K)
        The student's targets; every row sums to 1.

    Raises
    ------
    ValueError
        ``probs`` not an (n, K) matrix of probabilities; unknown ``kind``; ``temperature`` <= 0;
        ``mix`` or ``tie_rtol`` negative; ``top_k`` outside [2, K - 1] for ``"topk"``; ``given``
        missing or invalid when ``mix != 1``.

    Examples
    --------
    >>> P = np.array([[0.6, 0.3, 0.1], [0.5, 0.25, 0.25]])
    >>> refine_targets(P, "topk", top_k=2)
    array([[0.5 , 0.5 , 0.  ],
           [0.5 , 0.25, 0.25]])
    >>> refine_targets(P, "soft", mix=0.5, given=[1, 0])
    array([[0.3  , 0.65 , 0.05 ],
           [0.75 , 0.125, 0.125]])
    >>> refine_targets(np.array([[0.75, 0.25]]), "soft", temperature=0.5)
    array([[0.9, 0.1]])
    """
    P = check_targets(probs, n_samples=np.shape(probs)[0], name="probs")
    if np.ndim(probs) != 2:
        raise ValueError(f"probs must be the teacher's (n, K) softmax outputs, got shape {np.shape(probs)}")
    check_choice(kind, "kind", TARGET_KINDS)
    temperature = check_positive(temperature, "temperature")
    mix = check_mix(mix)
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
