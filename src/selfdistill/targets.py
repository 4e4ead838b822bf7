"""What a teacher hands its student: soft outputs or a top-k partial-label refinement.

All functions take the teacher's softmax outputs on the training points, ``probs`` (n, K), and
return the student's target matrix T (n, K) whose rows sum to 1.
"""

from __future__ import annotations

import numpy as np

from ._validation import check_choice, check_int, check_labels, check_positive, check_targets

__all__ = ["refine_targets", "topk_mask", "TARGET_KINDS"]

TARGET_KINDS = ("soft", "topk")


def topk_mask(probs: np.ndarray, top_k: int = 2) -> np.ndarray:
    """Boolean (n, K) mask of each row's ``top_k`` largest entries: the candidate sets S_i.

    Ties are broken deterministically by class index (the lower index wins), whatever the
    platform's sort: a stable sort of -probs.
    """
    probs = np.asarray(probs, dtype=np.float64)
    K = probs.shape[1]
    top_k = check_int(top_k, "top_k", low=1, high=K)
    order = np.argsort(-probs, axis=1, kind="stable")[:, :top_k]
    mask = np.zeros(probs.shape, dtype=bool)
    np.put_along_axis(mask, order, True, axis=1)
    return mask


def refine_targets(probs, kind, *, top_k=2, temperature=1.0, mix=1.0, given=None) -> np.ndarray:
    """Targets for the next student from the teacher's outputs ``probs`` (n, K).

    kind="soft" (multi-round SD): T = softmax(log(probs) / temperature), i.e. rows of
        probs**(1/temperature) renormalised; temperature 1 (the paper's setting) returns probs.
    kind="topk" (the PLL refinement, SCIENCE.md 4): T_ij = 1/k for the k = top_k largest entries of
        row i (ties to the lower class index), 0 elsewhere. Requires 2 <= top_k < K.
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
        T = topk_mask(P, top_k).astype(np.float64) / top_k
    if mix != 1.0:
        if given is None:
            raise ValueError(f"given (the observed labels) is required when mix != 1, got mix={mix}")
        y = check_labels(given, "given", n_samples=n, n_classes=K)
        onehot = np.zeros((n, K))
        onehot[np.arange(n), y] = 1.0
        T = mix * T + (1.0 - mix) * onehot
    return T
