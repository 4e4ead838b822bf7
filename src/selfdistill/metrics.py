"""Every per-model metric, in one place: :func:`selfdistill.distill` and the baselines use it.

What a model is scored on (all fractions in [0, 1]; None where the data it needs is missing):

* ``test_acc`` -- accuracy on the test set;
* ``train_acc`` -- accuracy of its training-point predictions against the clean labels y_true;
* ``kept`` -- among training points whose given label is right, the fraction it still gets right;
* ``corrected`` -- among training points whose given label is wrong, the fraction it gets right
  (the label-correction rate);
* ``agree_given`` -- agreement of its training predictions with the given (noisy) labels;
* ``topk_coverage`` -- fraction of training points whose teacher top-k holds y_true (a property
  of the task's teacher, the same for every model of a chain);
* the solver's record (:func:`solver_metrics`): n_iter, n_grad_evals, n_hessp, objective,
  grad_norm, converged, seconds.

And how a model's outputs flag its training labels (:func:`flag_label_issues`, the one ranking
behind :meth:`selfdistill.DistillResult.label_issues` and :func:`selfdistill.inspect_labels`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from .targets import topk_mask

__all__ = ["accuracy", "label_metrics", "topk_coverage", "solver_metrics", "model_metrics", "LabelFlags",
           "flag_label_issues", "rank_flagged"]


def accuracy(pred: ArrayLike, truth: ArrayLike | None) -> float | None:
    """Return the fraction of ``pred`` equal to ``truth``; None when ``truth`` is None.

    Parameters
    ----------
    pred : array-like, shape (n,)
        Predicted labels.
    truth : array-like, shape (n,), or None
        The labels to compare with (test labels, clean or given training labels).

    Returns
    -------
    float or None
        Accuracy in [0, 1]; None when ``truth`` is None (the data it needs is missing).

    Examples
    --------
    >>> accuracy(np.array([0, 1, 1]), np.array([0, 1, 0]))
    0.6666666666666666
    """
    return None if truth is None else float(np.mean(np.asarray(pred) == np.asarray(truth)))


def label_metrics(train_pred: ArrayLike, y_given: ArrayLike, y_true: ArrayLike | None = None) -> dict:
    """Score training predictions against the given and the clean labels: label correction.

    Parameters
    ----------
    train_pred : array-like of int, shape (n,)
        The model's predictions on its training points.
    y_given : array-like of int, shape (n,)
        The labels the model was trained from (possibly noisy).
    y_true : array-like of int, shape (n,), optional
        The clean labels; without them only ``agree_given`` is computed.

    Returns
    -------
    dict
        ``"train_acc"`` (accuracy against ``y_true``), ``"kept"`` (among points whose given
        label is right, the fraction predicted right), ``"corrected"`` (among points whose given
        label is wrong, the fraction predicted right: the label-correction rate),
        ``"agree_given"`` (agreement with ``y_given``). Each a float in [0, 1], or None where
        the data it needs is missing (no ``y_true``, no clean or no wrong label).

    Examples
    --------
    >>> m = label_metrics(np.array([0, 1, 1, 0]), np.array([0, 1, 0, 0]), np.array([0, 1, 1, 1]))
    >>> m["kept"], m["corrected"], m["agree_given"]
    (1.0, 0.5, 0.75)
    """
    train_pred = np.asarray(train_pred)
    out = {"train_acc": None, "kept": None, "corrected": None, "agree_given": accuracy(train_pred, y_given)}
    if y_true is not None:
        right = train_pred == y_true
        clean = np.asarray(y_given) == y_true
        out["train_acc"] = float(right.mean())
        out["kept"] = float(right[clean].mean()) if clean.any() else None
        out["corrected"] = float(right[~clean].mean()) if (~clean).any() else None
    return out


def topk_coverage(probs: ArrayLike, y_true: ArrayLike | None, k: int) -> float | None:
    """Return the fraction of points whose teacher top-k candidate set holds the true label.

    The candidate sets are those of the PLL targets (:func:`selfdistill.targets.topk_mask`, ties
    included), so this is the share of points a PLL student can learn its true label from.

    Parameters
    ----------
    probs : array-like of float, shape (n, K)
        The teacher's softmax outputs on the training points.
    y_true : array-like of int, shape (n,), or None
        The clean labels.
    k : int
        Candidate-set size; values above K are taken as K.

    Returns
    -------
    float or None
        Coverage in [0, 1]; None when ``y_true`` is None.

    Examples
    --------
    >>> topk_coverage(np.array([[0.5, 0.3, 0.2], [0.6, 0.1, 0.3]]), np.array([1, 1]), 2)
    0.5
    """
    if y_true is None:
        return None
    probs = np.asarray(probs)
    k = min(int(k), probs.shape[1])
    return float(np.mean(topk_mask(probs, k)[np.arange(probs.shape[0]), np.asarray(y_true)]))


_SOLVER_FIELDS = ("n_iter", "n_grad_evals", "n_hessp", "objective", "grad_norm", "converged", "seconds")


def solver_metrics(probe: Any = None) -> dict:
    """Return the fitted probe's solver record (``n_iter_`` ... ``seconds_``).

    Parameters
    ----------
    probe : LinearProbe, optional
        A fitted probe; None (e.g. for an ensemble) gives every value None.

    Returns
    -------
    dict
        Keys ``n_iter``, ``n_grad_evals``, ``n_hessp``, ``objective``, ``grad_norm``,
        ``converged`` (bool) and ``seconds``: the probe's attributes of those names with a
        trailing underscore, None where missing.

    Examples
    --------
    >>> solver_metrics()["n_iter"] is None
    True
    >>> from selfdistill.probe import fit_linear_probe
    >>> probe = fit_linear_probe(np.eye(3), np.array([0, 1, 2]), 1e-2)
    >>> sorted(solver_metrics(probe)), solver_metrics(probe)["converged"]
    (['converged', 'grad_norm', 'n_grad_evals', 'n_hessp', 'n_iter', 'objective', 'seconds'], True)
    """
    if probe is None:
        return dict.fromkeys(_SOLVER_FIELDS)
    out = {f: getattr(probe, f + "_", None) for f in _SOLVER_FIELDS}
    out["converged"] = None if out["converged"] is None else bool(out["converged"])
    return out


def model_metrics(
    name: str,
    *,
    train_pred: ArrayLike,
    y_given: ArrayLike,
    y_true: ArrayLike | None = None,
    test_pred: ArrayLike | None = None,
    y_test: ArrayLike | None = None,
    coverage: float | None = None,
    probe: Any = None,
) -> dict:
    """Collect one model's metrics: test accuracy, label metrics, teacher coverage, solver record.

    Parameters
    ----------
    name : str
        The model's name ("round 0", "pll-uniform", a baseline's name).
    train_pred : array-like of int, shape (n,), keyword-only
        Its predictions on the training points.
    y_given : array-like of int, shape (n,), keyword-only
        The given (possibly noisy) training labels.
    y_true : array-like of int, shape (n,), optional, keyword-only
        The clean training labels, or None.
    test_pred : array-like of int, shape (m,), optional, keyword-only
        Its test predictions, or None.
    y_test : array-like of int, shape (m,), optional, keyword-only
        The test labels, or None.
    coverage : float, optional, keyword-only
        The task's teacher top-k coverage (:func:`topk_coverage`), or None.
    probe : LinearProbe, optional, keyword-only
        The fitted probe (for the solver's record), or None (an ensemble).

    Returns
    -------
    dict
        ``model``, ``test_acc``, the :func:`label_metrics` keys, ``topk_coverage`` (=
        ``coverage``) and the :func:`solver_metrics` keys.

    Examples
    --------
    >>> y = np.array([0, 1, 1])
    >>> model_metrics("m", train_pred=y, y_given=y, test_pred=y, y_test=y)["test_acc"]
    1.0
    """
    m = {"model": name, "test_acc": None if test_pred is None else accuracy(test_pred, y_test)}
    m.update(label_metrics(train_pred, y_given, y_true))
    m["topk_coverage"] = coverage
    m.update(solver_metrics(probe))
    return m


class LabelFlags(NamedTuple):
    """What :func:`flag_label_issues` returns (n training points, m of them flagged).

    Parameters
    ----------
    is_issue : (n,) bool array
        The flagged points: the model's most probable class differs from the given label.
    score : (n,) float array
        The normalized margin (p(given) - max_{k != given} p(k) + 1) / 2 in [0, 1]: lower = more
        suspect, below 0.5 exactly when another class is more probable than the given one.
    ranked : (m,) int array
        The flagged indices, most suspect first: lowest ``score`` (largest margin
        p(suggested) - p(given)) first, ties by index.
    suggested : (n,) int array
        The model's most probable class where flagged, the given label elsewhere.

    Examples
    --------
    >>> flags = flag_label_issues(np.array([[0.9, 0.1], [0.4, 0.6]]), np.array([0, 0]))
    >>> flags.is_issue.tolist(), flags.ranked.tolist(), flags.suggested.tolist()
    ([False, True], [1], [0, 1])
    """

    is_issue: np.ndarray
    score: np.ndarray
    ranked: np.ndarray
    suggested: np.ndarray


def rank_flagged(is_issue: ArrayLike, key: ArrayLike) -> np.ndarray:
    """Return the flagged indices sorted by ``key``, smallest first, ties by index.

    Parameters
    ----------
    is_issue : array-like of bool, shape (n,)
        The flags.
    key : array-like of float, shape (n,)
        Every point's sort key (lower = more suspect), e.g. a label-quality score.

    Returns
    -------
    (m,) int array
        The indices where ``is_issue`` holds, in increasing ``key`` (equal keys by index).

    Examples
    --------
    >>> rank_flagged([True, False, True, True], [0.3, 0.0, 0.1, 0.3]).tolist()
    [2, 0, 3]
    """
    idx = np.flatnonzero(is_issue)
    return idx[np.lexsort((idx, np.asarray(key)[idx]))]


def flag_label_issues(probs: ArrayLike, labels: ArrayLike) -> LabelFlags:
    """Flag the labels a model's outputs disagree with, rank them, suggest the class to put instead.

    Point i is flagged when argmax_k p_k(x_i) != y_i. The flags are ranked by the normalized
    margin ``score``, lowest first (ties by index): the margin p(suggested) - p(given), largest
    first. Computed in the dtype of ``probs``; no input checks.

    Parameters
    ----------
    probs : array-like of float, shape (n, K)
        The model's class probabilities on the points.
    labels : array-like of int, shape (n,)
        The given labels in 0..K-1.

    Returns
    -------
    LabelFlags
        ``is_issue``, ``score``, ``ranked``, ``suggested``.

    Examples
    --------
    >>> P = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.2, 0.3, 0.5]])
    >>> flags = flag_label_issues(P, np.array([1, 1, 0]))
    >>> flags.ranked.tolist(), flags.score.round(2).tolist(), flags.suggested.tolist()
    ([0, 2], [0.25, 0.65, 0.35], [0, 1, 2])
    """
    P, y = np.asarray(probs), np.asarray(labels)
    rows = np.arange(P.shape[0])
    pred = np.argmax(P, axis=1)
    other = P.copy()
    other[rows, y] = -np.inf
    score = (P[rows, y] - other.max(axis=1) + 1.0) / 2.0  # p(given) vs the best other class
    is_issue = pred != y
    return LabelFlags(is_issue=is_issue, score=score, ranked=rank_flagged(is_issue, score),
                      suggested=np.where(is_issue, pred, y))
