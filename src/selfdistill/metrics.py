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
"""

from __future__ import annotations

import numpy as np

from .targets import topk_mask

__all__ = ["accuracy", "label_metrics", "topk_coverage", "solver_metrics", "model_metrics"]


def accuracy(pred, truth):
    """Fraction of ``pred`` (n,) equal to ``truth`` (n,); None when ``truth`` is None.

    Examples
    --------
    >>> accuracy(np.array([0, 1, 1]), np.array([0, 1, 0]))
    0.6666666666666666
    """
    return None if truth is None else float(np.mean(np.asarray(pred) == np.asarray(truth)))


def label_metrics(train_pred, y_given, y_true=None) -> dict:
    """train_acc, kept, corrected and agree_given of training predictions ``train_pred`` (n,).

    ``y_given`` (n,) are the labels the model was trained from, ``y_true`` (n,) the clean ones.

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


def topk_coverage(probs, y_true, k):
    """Fraction of rows of ``probs`` (n, K) whose top-``k`` labels (ties shared, as the PLL targets)
    hold ``y_true`` (n,); None when ``y_true`` is None.

    Examples
    --------
    >>> topk_coverage(np.array([[0.5, 0.3, 0.2], [0.6, 0.1, 0.3]]), np.array([1, 1]), 2)
    0.5
    """
    if y_true is None:
        return None
    probs = np.asarray(probs)
    k = min(int(k), probs.shape[1])
    return float(np.mean(topk_mask(probs, k)[np.arange(probs.shape[0]), y_true]))


_SOLVER_FIELDS = ("n_iter", "n_grad_evals", "n_hessp", "objective", "grad_norm", "converged", "seconds")


def solver_metrics(probe=None) -> dict:
    """The fitted probe's solver record (``n_iter_`` ... ``seconds_``); every value None without one."""
    if probe is None:
        return dict.fromkeys(_SOLVER_FIELDS)
    out = {f: getattr(probe, f + "_", None) for f in _SOLVER_FIELDS}
    out["converged"] = None if out["converged"] is None else bool(out["converged"])
    return out


def model_metrics(name, *, train_pred, y_given, y_true=None, test_pred=None, y_test=None, coverage=None,
                  probe=None) -> dict:
    """One model's metrics dict: ``model``, ``test_acc``, the :func:`label_metrics`,
    ``topk_coverage`` (given) and the :func:`solver_metrics` of ``probe``.

    Parameters
    ----------
    name : the model's name ("round 0", "pll-uniform", a baseline's name).
    train_pred : (n,) its predictions on the training points.
    y_given : (n,) the given (possibly noisy) training labels.
    y_true : (n,) the clean training labels, or None.
    test_pred, y_test : (m,) its test predictions and the test labels, or None.
    coverage : the task's teacher top-k coverage, or None.
    probe : the fitted LinearProbe (for the solver's record), or None (an ensemble).

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
