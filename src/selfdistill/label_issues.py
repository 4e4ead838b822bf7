"""Find and fix wrong labels: which training labels a probe chain disagrees with, and what to put instead.

In cleanlab's conventions (``cleanlab.filter.find_label_issues``): :func:`find_label_issues` returns a
boolean mask (or, with ``return_indices_ranked_by=``, the flagged indices, most suspect first);
:func:`inspect_labels` returns a :class:`LabelIssues` with every point's label-quality score, the
suggested label and its confidence, the chosen model and, when a test set is given, the test accuracy
of a probe retrained on the fixed labels next to the teacher's (like cleanlab's ``CleanLearning``).

The rule (docs/label-issues.md), noisy labels only:

1. reg: :func:`selfdistill.select_reg` (the teacher's accuracy on a stratified held-out part of the
   given labels, ``val_fraction``, seeded) unless a number is given;
2. model: the chain (teacher "round 0", SD rounds 1..``rounds``, one PLL student per ``pll_loss``) is
   trained at that reg on the fit part of the *same* split and scored by accuracy on the held-out
   given labels; the teacher is kept unless the best other model beats it by more than one standard
   error of the teacher's held-out accuracy, sqrt(a (1 - a) / n_val) (the one-standard-error rule:
   prefer the simplest model when the difference is within noise);
3. the chosen model is refitted on all points; a point is flagged when the model's most probable
   class differs from its given label.

No clean label (``y_true``) or test label enters any choice: ``y_true`` only adds metrics, and the
test set only measures the fixed probe.
"""

from __future__ import annotations

import csv
import io
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._io import atomic_write_text, ensure_output_dir, write_json
from ._validation import check_choice, check_features, check_fraction, check_int, check_labels
from .distill import PLL_LOSSES, distill, pll_model_names
from .metrics import flag_label_issues, rank_flagged
from .model_selection import DEFAULT_REG_GRID, select_reg, stratified_split
from .models import TEACHER, ModelId
from .probe import fit_linear_probe

__all__ = [
    "LabelIssues",
    "find_label_issues",
    "inspect_labels",
    "label_quality_scores",
    "refit_on_fixed",
    "out_of_fold_probs",
    "stratified_folds",
    "choose_scoring",
    "choose_model",
    "issue_metrics",
    "write_label_issues",
    "RANKED_BY",
    "FIX_MODES",
]

#: Accepted values of ``return_indices_ranked_by`` (cleanlab's names).
RANKED_BY = ("normalized_margin", "self_confidence")
#: How :func:`inspect_labels` fixes the labels before retraining: replace or drop the flagged labels.
FIX_MODES = ("relabel", "prune")


def label_quality_scores(probs, labels, method="normalized_margin"):
    """Per-point label quality in [0, 1] from model outputs, lower = more likely wrong (cleanlab's scores).

    Parameters
    ----------
    probs : (n, K) predicted class probabilities.
    labels : (n,) given labels.
    method : "normalized_margin" ((p(given) - max_{k != given} p(k) + 1) / 2: below 0.5 exactly
        when another class is more probable than the given one) or "self_confidence" (p(given)).

    Returns
    -------
    (n,) float array.

    Examples
    --------
    >>> label_quality_scores(np.array([[0.7, 0.3], [0.2, 0.8]]), np.array([0, 0])).round(2).tolist()
    [0.7, 0.2]
    """
    P = np.asarray(probs, dtype=np.float64)
    y = check_labels(labels, "labels", n_samples=P.shape[0], n_classes=P.shape[1])
    check_choice(method, "method", RANKED_BY)
    if method == "self_confidence":
        return P[np.arange(P.shape[0]), y]
    return flag_label_issues(P, y).score


@dataclass
class LabelIssues:
    """What :func:`inspect_labels` returns (n training points, K classes).

    Parameters
    ----------
    is_issue : (n,) bool, the flagged points (the chosen model's top class differs from the given one).
    ranked : (m,) int, the flagged indices, most suspect first (lowest normalized margin; ties by index;
        :func:`selfdistill.metrics.flag_label_issues`, as :meth:`selfdistill.DistillResult.label_issues`).
    score : (n,) label quality in [0, 1], the normalized margin (lower = more suspect; < 0.5 iff flagged).
    given : (n,) int array
        The given labels.
    suggested : (n,) int array
        The model's top class (= given where not flagged).
    confidence : (n,) float array
        The model's probability of ``suggested``.
    probs : (n, K) float array
        The model's outputs.
    model : str
        Name of the flagging model ("round 0" teacher, "round t", "pll-<loss>").
    reg : float
        Its reg.
    selection : {model name: held-out accuracy on the given labels} (empty when ``model`` was given).
    reg_scores : {reg: the teacher's held-out accuracy} (empty when ``reg`` was given).
    n_val : held-out points behind the selection.
    test_acc : None, or {"teacher": ..., "fixed": ...} test accuracy of the teacher on the given labels
        and of the probe retrained on the fixed labels (same reg).
    fixed_model : the retrained LinearProbe, or None.
    metrics : None, or :func:`issue_metrics` against ``y_true`` when it was given.
    seconds : float
        Wall time of the whole call.
    config : dict
        The arguments (JSON-serialisable).
    scoring : dict
        How the flagging outputs were scored: mode ("in-sample" or "out-of-fold"), cv (as asked),
        folds, in_sample_agreement (the model's agreement with the labels it trained on) and
        held_out_acc (its accuracy on the rule's held-out given labels, when measured).

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from selfdistill.label_issues import inspect_labels
    >>> X, y = load_iris(return_X_y=True); y[:5] = 2  # five setosas labelled virginica
    >>> res = inspect_labels(X - X.mean(0), y, reg=1e-2, model="round 0")
    >>> res.model, res.n_issues > 0, res.probs.shape
    ('round 0', True, (150, 3))
    """

    is_issue: np.ndarray
    ranked: np.ndarray
    score: np.ndarray
    given: np.ndarray
    suggested: np.ndarray
    confidence: np.ndarray
    probs: np.ndarray
    model: str
    reg: float
    selection: dict = field(default_factory=dict)
    reg_scores: dict = field(default_factory=dict)
    n_val: int = 0
    test_acc: dict | None = None
    fixed_model: object = None
    metrics: dict | None = None
    seconds: float = 0.0
    config: dict = field(default_factory=dict)
    scoring: dict = field(default_factory=dict)

    @property
    def n_issues(self) -> int:
        """The number m of flagged training points.

        Returns
        -------
        int
            m = is_issue.sum().

        Examples
        --------
        >>> from sklearn.datasets import load_iris
        >>> from selfdistill.label_issues import inspect_labels
        >>> X, y = load_iris(return_X_y=True); y[:5] = 2  # five setosas labelled virginica
        >>> res = inspect_labels(X - X.mean(0), y, reg=1e-2, model="round 0")
        >>> res.n_issues == len(res.ranked)
        True
        """
        return int(self.is_issue.sum())

    def corrected_labels(self) -> np.ndarray:
        """(n,) the given labels with every flagged one replaced by its suggestion.

        Returns
        -------
        (n,) int array
            A copy of ``suggested``: the model's top class where flagged, the given label elsewhere.

        Examples
        --------
        >>> from sklearn.datasets import load_iris
        >>> from selfdistill.label_issues import inspect_labels
        >>> X, y = load_iris(return_X_y=True); y[:5] = 2  # five setosas labelled virginica
        >>> res = inspect_labels(X - X.mean(0), y, reg=1e-2, model="round 0")
        >>> res.corrected_labels()[:5].tolist()  # the five setosas fixed
        [0, 0, 0, 0, 0]
        """
        return self.suggested.copy()

    def indices(self, ranked_by: str = "normalized_margin") -> np.ndarray:
        """Flagged indices ranked by ``ranked_by`` (see :data:`RANKED_BY`), most suspect first.

        Parameters
        ----------
        ranked_by : str
            ``"normalized_margin"`` (the order of ``ranked``) or ``"self_confidence"`` (lowest
            p(given) first; ties by index).

        Returns
        -------
        (m,) int array
            The flagged indices.

        Raises
        ------
        ValueError
            If ``ranked_by`` is not one of :data:`RANKED_BY`.

        Examples
        --------
        >>> from sklearn.datasets import load_iris
        >>> from selfdistill.label_issues import inspect_labels
        >>> X, y = load_iris(return_X_y=True); y[:5] = 2  # five setosas labelled virginica
        >>> res = inspect_labels(X - X.mean(0), y, reg=1e-2, model="round 0")
        >>> sorted(res.indices("self_confidence")[:5].tolist())
        [0, 1, 2, 3, 4]
        """
        check_choice(ranked_by, "return_indices_ranked_by", RANKED_BY)
        if ranked_by == "normalized_margin":
            return self.ranked.copy()
        return rank_flagged(self.is_issue, label_quality_scores(self.probs, self.given, "self_confidence"))

    def records(self, class_names=None) -> list[dict]:
        """One dict per flagged point, in rank order: index, given/suggested label (and names), score, rank.

        Parameters
        ----------
        class_names : sequence of str or None
            K class names; when given, each record also has ``given_name`` and ``suggested_name``.

        Returns
        -------
        list of dict
            Keys rank, index, given_label, suggested_label, (given_name, suggested_name,) score,
            confidence.

        Examples
        --------
        >>> from sklearn.datasets import load_iris
        >>> from selfdistill.label_issues import inspect_labels
        >>> X, y = load_iris(return_X_y=True); y[:5] = 2  # five setosas labelled virginica
        >>> res = inspect_labels(X - X.mean(0), y, reg=1e-2, model="round 0")
        >>> r = res.records(["setosa", "versicolor", "virginica"])[0]
        >>> r["rank"], r["given_name"], r["suggested_name"], r["score"] < 0.5
        (1, 'virginica', 'setosa', True)
        """
        rows = []
        for rank, i in enumerate(self.ranked, start=1):
            row: dict[str, Any] = {"rank": rank, "index": int(i), "given_label": int(self.given[i]),
                   "suggested_label": int(self.suggested[i])}
            if class_names is not None:
                row["given_name"] = str(class_names[self.given[i]])
                row["suggested_name"] = str(class_names[self.suggested[i]])
            row["score"] = float(self.score[i])
            row["confidence"] = float(self.confidence[i])
            rows.append(row)
        return rows

    def summary(self) -> dict:
        """The chosen rule's outcome in JSON-ready form (no per-point arrays).

        Returns
        -------
        dict
            n_train, n_issues, issue_fraction, model, reg, selection, reg_scores (keys as repr
            strings), n_val, scoring (mode, folds, in-sample agreement, held-out accuracy), test_acc,
            metrics, seconds.

        Examples
        --------
        >>> from sklearn.datasets import load_iris
        >>> from selfdistill.label_issues import inspect_labels
        >>> X, y = load_iris(return_X_y=True); y[:5] = 2  # five setosas labelled virginica
        >>> res = inspect_labels(X - X.mean(0), y, reg=1e-2, model="round 0")
        >>> s = res.summary()
        >>> s["n_train"], s["model"], s["n_issues"] == res.n_issues
        (150, 'round 0', True)
        """
        return {"n_train": int(self.given.shape[0]), "n_issues": self.n_issues,
                "issue_fraction": float(self.is_issue.mean()), "model": self.model, "reg": self.reg,
                "selection": self.selection, "reg_scores": {repr(float(k)): v for k, v in self.reg_scores.items()},
                "n_val": self.n_val, "scoring": self.scoring, "test_acc": self.test_acc, "metrics": self.metrics,
                "seconds": self.seconds}


def issue_metrics(is_issue, score, suggested, given, y_true) -> dict:
    """Flag quality against clean labels (evaluation only; never used to choose anything).

    precision / recall / f1 of ``is_issue`` as a detector of ``given != y_true``; auroc of the
    ranking ``-score`` (None when every or no label is wrong); corrected_acc: accuracy of the
    corrected labels (``suggested`` where flagged, ``given`` elsewhere) against ``y_true``;
    n_flagged; noise_rate (the realised fraction of wrong given labels).

    Parameters
    ----------
    is_issue : (n,) bool array
        The flags.
    score : (n,) float array
        Label quality, lower = more suspect.
    suggested : (n,) int array
        The suggested labels.
    given : (n,) int array
        The given (noisy) labels.
    y_true : (n,) int array
        The clean labels.

    Returns
    -------
    dict
        precision, recall, f1, auroc, corrected_acc, n_flagged, noise_rate.

    Examples
    --------
    >>> m = issue_metrics(is_issue=[True, False, True, False], score=[0.2, 0.9, 0.4, 0.8],
    ...                   suggested=[1, 0, 0, 1], given=[0, 0, 1, 1], y_true=[1, 0, 1, 1])
    >>> m["precision"], m["recall"], m["auroc"], m["corrected_acc"]
    (0.5, 1.0, 1.0, 0.75)
    """
    from sklearn.metrics import roc_auc_score

    is_issue = np.asarray(is_issue, dtype=bool)
    given, y_true = np.asarray(given), np.asarray(y_true)
    wrong = given != y_true
    tp = int(np.sum(is_issue & wrong))
    precision = tp / is_issue.sum() if is_issue.any() else 0.0
    recall = tp / wrong.sum() if wrong.any() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    auroc = float(roc_auc_score(wrong, -np.asarray(score))) if 0 < wrong.sum() < wrong.size else None
    corrected = np.where(is_issue, suggested, given)
    return {"precision": float(precision), "recall": float(recall), "f1": float(f1), "auroc": auroc,
            "corrected_acc": float(np.mean(corrected == y_true)), "n_flagged": int(is_issue.sum()),
            "noise_rate": float(wrong.mean())}


def _candidate_models(rounds, pll_losses, K):
    """Names of the models the rule chooses between, the teacher first."""
    names = [ModelId.round_(t).name for t in range(rounds + 1)]
    if K >= 3 and pll_losses:
        names += pll_model_names(list(pll_losses))
    return names


def choose_model(val_acc: dict, n_val: int) -> str:
    """The one-standard-error rule: the teacher unless a model beats it by > sqrt(a (1 - a) / n_val).

    ``val_acc`` maps model name -> held-out accuracy on the given labels (the teacher "round 0"
    included); among the models that clear the margin the most accurate wins (ties: first listed).

    Parameters
    ----------
    val_acc : dict
        Model name -> held-out accuracy on the given labels; must hold "round 0".
    n_val : int
        Number of held-out points behind the accuracies.

    Returns
    -------
    str
        The chosen model's name.

    Examples
    --------
    >>> choose_model({"round 0": 0.80, "round 1": 0.84}, n_val=100)  # +0.04 < one SE (0.04)
    'round 0'
    >>> choose_model({"round 0": 0.80, "round 1": 0.84}, n_val=1000)  # one SE is 0.013
    'round 1'
    """
    a0 = val_acc[TEACHER.name]
    margin = math.sqrt(max(a0 * (1.0 - a0), 0.0) / max(n_val, 1))
    best = max(val_acc, key=lambda m: val_acc[m])  # first listed among equals
    return best if val_acc[best] - a0 > margin else TEACHER.name


def _chain_kwargs(model, rounds, pll_losses, top_k):
    """distill() arguments that train the chain up to ``model`` (a round or a PLL student) and no further."""
    mid = ModelId.parse(model)
    if mid.kind == "round":
        return {"rounds": mid.round, "pll": False}
    if mid.kind != "pll":
        raise ValueError(f"model must be a round or a PLL student of the chain, got {model!r}")
    return {"rounds": 0, "pll": True, "pll_loss": [mid.loss or pll_losses[0]], "top_k": top_k}


def _select(X, y, K, *, reg, model, rounds, pll_losses, top_k, reg_grid, val_fraction, seed):
    """Steps 1-2 of the rule on one seeded stratified split.

    Returns (reg, model, reg_scores, selection, n_val, split_teacher): split_teacher is the teacher
    fitted on the fit part (a warm start for the refit on all points), or None.
    """
    reg_scores: dict[float, float] = {}
    selection, split_teacher = {}, None
    if reg == "auto":
        reg, reg_scores = select_reg(X, y, grid=reg_grid, val_fraction=val_fraction, seed=seed, n_classes=K)
    candidates = _candidate_models(rounds, pll_losses, K)
    idx_fit, idx_val = stratified_split(y, val_fraction, seed)
    if model == "auto" and len(candidates) > 1:
        kw = {"rounds": rounds, "pll": any(ModelId.parse(c).kind == "pll" for c in candidates), "top_k": top_k,
              "pll_loss": list(pll_losses) if pll_losses else "uniform"}
        res = distill(X[idx_fit], y[idx_fit], reg=reg, n_classes=K, X_test=X[idx_val], y_test=y[idx_val], **kw)
        selection = {m["model"]: m["test_acc"] for m in res.metrics}
        model = choose_model(selection, len(idx_val))
        split_teacher = res.models[TEACHER.name]
    elif model == "auto":
        model = TEACHER.name
    return float(reg), model, reg_scores, selection, len(idx_val), split_teacher


def _refit(X, y, K, reg, model, rounds, losses, top_k, split_teacher):
    """Step 3: the chosen model fitted on all points. Returns (its (n, K) outputs, the teacher)."""
    if model == TEACHER.name:  # warm-started from the split's teacher: same optimum, fewer Newton steps
        teacher = fit_linear_probe(X, y, reg, n_classes=K, init=split_teacher)
        return teacher.predict_proba(X), teacher
    full = distill(X, y, reg=reg, n_classes=K, **_chain_kwargs(model, rounds, losses, top_k))
    return full.train_probs[model], full.models[TEACHER.name]


#: Folds of the out-of-fold scoring when ``cv="auto"`` chooses it.
AUTO_FOLDS = 5
#: In-sample agreement with the given labels above which the scoring model is said to memorise them.
MEMORISED = 0.99


def stratified_folds(y, folds, seed) -> list[np.ndarray]:
    """``folds`` stratified, shuffled (seeded) folds of the indices 0..n-1: a list of index arrays.

    A class with fewer points than folds leaves some folds without it (scikit-learn's
    ``StratifiedKFold`` warns); every point is in exactly one fold.

    Parameters
    ----------
    y : (n,) int array
        The labels to stratify by.
    folds : int
        Number of folds (>= 2).
    seed : int
        Seeds the shuffle.

    Returns
    -------
    list of int arrays
        The held-out indices of each fold.

    Examples
    --------
    >>> f = stratified_folds(np.repeat([0, 1], 10), 5, seed=0)
    >>> len(f), sorted(np.concatenate(f).tolist()) == list(range(20))
    (5, True)
    """
    from sklearn.model_selection import StratifiedKFold

    y = np.asarray(y)
    skf = StratifiedKFold(n_splits=int(folds), shuffle=True, random_state=int(seed))
    return [val for _, val in skf.split(np.zeros((y.shape[0], 1)), y)]


def out_of_fold_probs(X, y, K, reg, model, *, rounds=1, pll_losses=("uniform",), top_k=2, folds=5, seed=0):
    """(n, K) outputs of ``model`` (a chain name, e.g. "round 1") for every point from a chain that
    never trained on it: per fold, the chain up to ``model`` on the other folds (0/1 row weights over
    the same X), all folds solved together (their passes over X shared).

    Parameters
    ----------
    X : (n, d) float64 array
        Training features.
    y : (n,) int array
        Given labels.
    K : int
        Number of classes.
    reg : float
        The chain's reg.
    model : str
        "round t" or "pll-<loss>".
    rounds, pll_losses, top_k
        As :func:`inspect_labels` (which chain ``model`` belongs to).
    folds : int
        Folds asked; fewer when the smallest class has fewer points (at least 2).
    seed : int
        Seeds the folds.

    Returns
    -------
    P : (n, K) float array
        Each row from the fold's chain that did not train on it.
    folds : int
        Folds used.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(60, 3)); y = np.argmax(X, axis=1)
    >>> P, k = out_of_fold_probs(X, y, 3, 1e-2, "round 1", folds=3)
    >>> P.shape, k, bool(np.allclose(P.sum(1), 1))
    ((60, 3), 3, True)
    """
    from ._batch import share_passes

    counts = np.bincount(y, minlength=K)
    folds = int(min(folds, max(2, counts[counts > 0].min())))
    parts = stratified_folds(y, folds, seed)
    kw = _chain_kwargs(model, rounds, list(pll_losses) or ["uniform"], top_k)

    def fold_job(val):
        w = np.ones(y.shape[0])
        w[val] = 0.0
        res = distill(X, y, reg=reg, n_classes=K, sample_weight=w, **kw)
        return res.models[model].predict_proba(X[val])

    from ._batch import run_threads

    with share_passes(X):
        outs = run_threads([lambda val=val: fold_job(val) for val in parts])
    P = np.zeros((y.shape[0], K))
    for val, out in zip(parts, outs, strict=True):
        P[val] = out
    return P, folds


def _held_out_acc(X, y, K, reg, model, rounds, losses, top_k, val_fraction, seed, known):
    """Held-out accuracy on the given labels of ``model`` at ``reg`` on the rule's split (``known``
    when the selection already measured it, else one chain fit on the fit part)."""
    if known is not None:
        return float(known)
    idx_fit, idx_val = stratified_split(y, val_fraction, seed)
    res = distill(X[idx_fit], y[idx_fit], reg=reg, n_classes=K, X_test=X[idx_val], y_test=y[idx_val],
                  **_chain_kwargs(model, rounds, losses or ["uniform"], top_k))
    return float(res.metric(model, "test_acc"))


def choose_scoring(in_sample_agreement, held_out_acc, n_val) -> str:
    """In-sample or out-of-fold scoring, from the given labels alone: out-of-fold when the model
    agrees with the labels it trained on more than with held-out ones by over two standard errors
    of the held-out accuracy, 2 sqrt(a (1 - a) / n_val) (floor 1 / n_val): in-sample outputs then
    reflect memorised labels and cannot dispute them.

    Parameters
    ----------
    in_sample_agreement : float
        Fraction of the training labels the model (fitted on all of them) predicts.
    held_out_acc : float
        Its accuracy on held-out given labels (the rule's split).
    n_val : int
        Number of held-out points.

    Returns
    -------
    str
        "out-of-fold" or "in-sample".

    Examples
    --------
    >>> choose_scoring(1.0, 0.70, n_val=60)    # a probe that memorised 30% wrong labels
    'out-of-fold'
    >>> choose_scoring(0.72, 0.70, n_val=60)   # in-sample outputs dispute as many as held-out ones
    'in-sample'
    """
    a = float(held_out_acc)
    se = max(math.sqrt(max(a * (1.0 - a), 0.0) / max(n_val, 1)), 1.0 / max(n_val, 1))
    return "out-of-fold" if in_sample_agreement - a > 2 * se else "in-sample"


def refit_on_fixed(X, y, is_issue, suggested, reg, *, fix="relabel", n_classes=None, init=None):
    """The probe (at ``reg``) retrained on fixed labels: the teacher of the cleaned training set.

    fix="relabel": trained on all n points with ``suggested`` in place of the flagged labels;
    fix="prune": trained on the unflagged points only (cleanlab's CleanLearning); a class whose
    points are all flagged keeps them (a probe needs every class). ``init``: a warm start (e.g. the
    teacher; the optimum does not depend on it). Returns a LinearProbe.

    Parameters
    ----------
    X : (n, d) float array
        Training features.
    y : (n,) int array
        Given labels.
    is_issue : (n,) bool array
        The flags.
    suggested : (n,) int array
        The suggested labels.
    reg : float
        L2 strength of the retrained probe.
    fix : str
        ``"relabel"`` or ``"prune"`` (see :data:`FIX_MODES`).
    n_classes : int or None
        K (default: inferred from y and suggested).
    init : LinearProbe, (K, d) array or None
        Warm start.

    Returns
    -------
    LinearProbe
        The exact probe on the fixed labels.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(30, 3)); y = np.argmax(X, axis=1)
    >>> flags = np.zeros(30, dtype=bool); flags[:3] = True
    >>> probe = refit_on_fixed(X, y, flags, y, 1e-2, fix="prune")
    >>> probe.coef_.shape
    (3, 3)
    """
    check_choice(fix, "fix", FIX_MODES)
    is_issue = np.asarray(is_issue, dtype=bool)
    K = n_classes if n_classes is not None else int(max(np.max(y), np.max(suggested))) + 1
    if fix == "relabel":
        return fit_linear_probe(X, np.where(is_issue, suggested, y), reg, n_classes=K, init=init)
    keep = ~is_issue
    for k in range(K):
        if not np.any(keep & (y == k)):
            keep |= y == k
    return fit_linear_probe(X[keep], y[keep], reg, n_classes=K, init=init)


def _check_cv(cv):
    """``cv``: "auto", None (in-sample) or an int >= 2 (folds)."""
    if cv is None or cv == "auto":
        return cv
    if isinstance(cv, bool) or not isinstance(cv, (int, np.integer)) or cv < 2:
        raise ValueError(f"cv must be 'auto', None (in-sample scoring) or an integer >= 2 (folds), got {cv!r}")
    return int(cv)


def _scoring(X, y, K, P_in, *, cv, reg, model, rounds, losses, top_k, val_fraction, seed, n_val, known):
    """How the flags are scored: (P, scoring dict), P the (n, K) outputs the flags come from."""
    agree = float(np.mean(np.argmax(P_in, axis=1) == y))
    held = known
    folds: int | None
    if cv == "auto":
        held = _held_out_acc(X, y, K, reg, model, rounds, losses, top_k, val_fraction, seed, known)
        mode, folds = choose_scoring(agree, held, n_val), AUTO_FOLDS
    else:
        mode, folds = ("in-sample", None) if cv is None else ("out-of-fold", cv)
    info = {"mode": mode, "cv": cv, "folds": None, "in_sample_agreement": agree,
            "held_out_acc": None if held is None else float(held)}
    if mode == "in-sample":
        memorised = agree >= MEMORISED and (held is None or choose_scoring(agree, held, n_val) == "out-of-fold")
        if memorised:
            seen = "" if held is None else f" against {100 * held:.1f}% of held-out ones"
            warnings.warn(f"the scoring model ({model}, reg {reg:g}) fits {100 * agree:.1f}% of the given labels it "
                          f"was trained on{seen}: in-sample outputs cannot dispute a label it memorised; score out "
                          "of fold (cv='auto' or cv=5; --cv on the command line)", UserWarning, stacklevel=3)
        return P_in, info
    P, info["folds"] = out_of_fold_probs(X, y, K, reg, model, rounds=rounds, pll_losses=losses, top_k=top_k,
                                         folds=folds, seed=seed)
    return P, info


def _check_args(X, y, n_classes, reg, model, rounds, pll_loss, top_k, fix, val_fraction, seed):
    X = check_features(X)
    y = check_labels(y, "y", n_samples=X.shape[0], n_classes=n_classes)
    K = check_int(n_classes, "n_classes", low=2) if n_classes is not None else int(y.max()) + 1
    if np.unique(y).size < 2:
        raise ValueError(f"y must hold at least 2 classes, got a single class {np.unique(y).tolist()}")
    is_number = isinstance(reg, (int, float, np.floating, np.integer)) and not isinstance(reg, bool)
    if reg != "auto" and not (is_number and math.isfinite(reg) and reg > 0):
        raise ValueError(f"reg must be 'auto' or a finite number > 0, got {reg!r}")
    rounds = check_int(rounds, "rounds", low=0)
    losses = [pll_loss] if isinstance(pll_loss, str) else list(pll_loss or ())
    for loss in losses:
        check_choice(loss, "pll_loss", PLL_LOSSES)
    if K >= 3 and losses:
        top_k = check_int(top_k, "top_k", low=2, high=K - 1)
    choices = ["auto"] + _candidate_models(rounds, losses, K)
    if model not in choices:
        raise ValueError(f"model must be one of {choices} (with rounds={rounds}, pll_loss={losses}, "
                         f"{K} classes), got {model!r}")
    check_choice(fix, "fix", FIX_MODES)
    val_fraction = check_fraction(val_fraction, "val_fraction")
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    seed = check_int(seed, "seed", low=0)
    return X, y, K, rounds, losses, top_k, val_fraction, seed


def inspect_labels(X, y, *, reg="auto", model="auto", rounds=1, pll_loss=("uniform", "candidate"), top_k=2,
                   n_classes=None, X_test=None, y_test=None, fix="prune", y_true=None,
                   reg_grid=DEFAULT_REG_GRID, val_fraction=0.2, seed=0, cv="auto") -> LabelIssues:
    """Flag the training labels that a probe chain disagrees with, suggest the class to put instead.

    The flagging model and its reg are chosen from the given (noisy) labels alone (module docstring,
    docs/label-issues.md): reg by :func:`selfdistill.select_reg`; the model among the teacher, SD
    rounds 1..``rounds`` and the PLL students by held-out accuracy on the given labels with the
    one-standard-error rule (:func:`choose_model`), on the same seeded split. The chosen model
    flags point i when argmax_k p_k(x_i) != y_i, its outputs p either in-sample (refitted on all n
    points) or out-of-fold (each point scored by chains that did not train on it); its label
    quality is the normalized margin (p(y_i) - max_{k != y_i} p_k(x_i) + 1) / 2 (< 0.5 iff flagged).

    Parameters
    ----------
    X : (n, d) training features.
    y : (n,) int array
        Given labels in 0..K-1.
    reg : "auto" (select_reg over ``reg_grid``) or a number > 0 for every model.
    model : "auto" (the rule), or a name of the chain: "round 0" (teacher), "round t" (t <= rounds),
        "pll-<loss>" (loss in ``pll_loss``; needs K >= 3).
    rounds : int
        SD rounds among the candidates.
    pll_loss : PLL students among the candidates
        (a loss name or a sequence, see :func:`selfdistill.distill`; empty: none).
    top_k : int
        Candidate-set size of the PLL students.
    n_classes : int or None
        K when some classes have no label.
    X_test, y_test : optional test set: the teacher (given labels) and a probe retrained on the fixed
        labels are both measured on it (``test_acc``).
    fix : "prune" (drop the flagged points and retrain, as cleanlab's CleanLearning; a class wholly
        flagged keeps its points) or "relabel" (retrain on all points with the corrected labels).
    y_true : optional clean labels, for ``metrics`` only (:func:`issue_metrics`); never used to choose.
    reg_grid, val_fraction, seed : the held-out split (stratified by y) and the reg grid of the rule.
    cv : "auto" (default), None or int >= 2
        How the flagging outputs are scored. None: in-sample (a UserWarning when the model fits
        >= 99% of the labels it trained on: it cannot dispute what it memorised); K: out of fold
        over K stratified folds (:func:`out_of_fold_probs`); "auto": out of fold (5 folds) when the
        model agrees with the labels it trained on more than with the held-out ones by over two
        standard errors (:func:`choose_scoring`), else in-sample. ``scoring`` records the outcome.

    Returns
    -------
    LabelIssues

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> X, y = load_iris(return_X_y=True)
    >>> y_noisy = y.copy(); y_noisy[:5] = 2                      # five setosas labelled virginica
    >>> res = inspect_labels(X - X.mean(0), y_noisy, seed=0)
    >>> sorted(res.ranked[:5].tolist()), res.suggested[:5].tolist()
    ([0, 1, 2, 3, 4], [0, 0, 0, 0, 0])
    """
    t0 = time.perf_counter()
    X, y, K, rounds, losses, top_k, val_fraction, seed = _check_args(
        X, y, n_classes, reg, model, rounds, pll_loss, top_k, fix, val_fraction, seed)
    asked = {"reg": reg if reg == "auto" else float(reg), "model": model}
    if (X_test is None) != (y_test is None):
        raise ValueError("X_test and y_test must be given together")
    cv = _check_cv(cv)
    if y_true is not None:
        y_true = check_labels(y_true, "y_true", n_samples=X.shape[0], n_classes=K)
    reg, model, reg_scores, selection, n_val, split_teacher = _select(
        X, y, K, reg=reg, model=model, rounds=rounds, pll_losses=losses, top_k=top_k, reg_grid=reg_grid,
        val_fraction=val_fraction, seed=seed)
    P_in, teacher = _refit(X, y, K, reg, model, rounds, losses, top_k, split_teacher)
    known = selection.get(model, reg_scores.get(reg) if model == TEACHER.name else None)
    P, scoring = _scoring(X, y, K, P_in, cv=cv, reg=reg, model=model, rounds=rounds, losses=losses, top_k=top_k,
                          val_fraction=val_fraction, seed=seed, n_val=n_val, known=known)
    # scored in float64, as label_quality_scores; the ranking of DistillResult.label_issues
    is_issue, score, ranked, suggested = flag_label_issues(np.asarray(P, dtype=np.float64), y)
    test_acc, fixed = None, None
    if X_test is not None:
        X_test = check_features(X_test, "X_test")
        y_test = check_labels(y_test, "y_test", n_samples=X_test.shape[0], n_classes=K)
        fixed = refit_on_fixed(X, y, is_issue, suggested, reg, fix=fix, n_classes=K, init=teacher)
        test_acc = {"teacher": float(np.mean(teacher.predict(X_test) == y_test)),
                    "fixed": float(np.mean(fixed.predict(X_test) == y_test)), "fix": fix}
    config = {**asked, "rounds": rounds, "pll_loss": losses,
              "top_k": top_k, "n_classes": K, "fix": fix, "reg_grid": [float(r) for r in reg_grid],
              "val_fraction": val_fraction, "seed": seed, "cv": cv,
              "rule": "select_reg + one-standard-error model choice",
              "chosen_reg": reg, "chosen_model": model}
    res = LabelIssues(is_issue=is_issue, ranked=ranked, score=score, given=y, suggested=suggested,
                      confidence=P[np.arange(y.shape[0]), suggested], probs=P, model=model, reg=reg,
                      selection=selection, reg_scores=reg_scores, n_val=n_val, test_acc=test_acc,
                      fixed_model=fixed, config=config, scoring=scoring)
    if y_true is not None:
        res.metrics = issue_metrics(is_issue, score, suggested, y, y_true)
    res.seconds = time.perf_counter() - t0
    return res


def find_label_issues(X, y, *, return_indices_ranked_by=None, **kwargs):
    """Which training labels look wrong, in cleanlab's conventions (``cleanlab.filter.find_label_issues``).

    Runs :func:`inspect_labels` (the model and reg chosen from the given labels alone; keyword
    arguments as there) and returns its flags.

    Parameters
    ----------
    X : (n, d) training features.
    y : (n,) int array
        Given labels in 0..K-1.
    return_indices_ranked_by : None (default) for a boolean mask (n,), True where the label is
        flagged; or "normalized_margin" / "self_confidence" for the flagged indices (m,), most
        suspect first by that label-quality score (see :func:`label_quality_scores`).
    **kwargs : passed to :func:`inspect_labels` (reg, model, rounds, pll_loss, seed, ...). For the
        suggested labels, their confidence and every point's score, call :func:`inspect_labels`.

    Returns
    -------
    (n,) bool mask, or (m,) int indices.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> X, y = load_iris(return_X_y=True)
    >>> y_noisy = y.copy(); y_noisy[:5] = 2
    >>> mask = find_label_issues(X - X.mean(0), y_noisy)
    >>> bool(mask[:5].all())
    True
    """
    if return_indices_ranked_by is not None:
        check_choice(return_indices_ranked_by, "return_indices_ranked_by", RANKED_BY)
    res = inspect_labels(X, y, **kwargs)
    if return_indices_ranked_by is None:
        return res.is_issue.copy()
    return res.indices(return_indices_ranked_by)


CSV_FIELDS = ("rank", "index", "given_label", "suggested_label", "given_name", "suggested_name", "score",
              "confidence")


def issues_csv(result: LabelIssues, class_names=None) -> str:
    """The flagged points as CSV text, one row per point in rank order (:meth:`LabelIssues.records`)."""
    fields = [f for f in CSV_FIELDS if class_names is not None or not f.endswith("_name")]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in result.records(class_names):
        row["score"] = f"{row['score']:.6f}"
        row["confidence"] = f"{row['confidence']:.6f}"
        writer.writerow(row)
    return buf.getvalue()


def summary_markdown(result: LabelIssues, class_names=None, source=None, top=10) -> str:
    """A short Markdown summary: the rule's choices, the counts, fixing, the most suspect labels."""
    s = result.summary()
    name = (lambda k: f"{k} ({class_names[k]})") if class_names is not None else str
    lines = [f"# Label issues{f' in {source}' if source else ''}", "",
             f"{s['n_issues']} of {s['n_train']} training labels flagged ({100 * s['issue_fraction']:.1f}%).", "",
             f"- flagging model: **{s['model']}** at reg {s['reg']:g} (chosen from the given labels alone: "
             f"{'reg by held-out accuracy, ' if s['reg_scores'] else 'reg given, '}"
             f"model by the one-standard-error rule on {s['n_val']} held-out points)"]
    sc = s["scoring"]
    if sc:
        seen = "" if sc["held_out_acc"] is None else f", {100 * sc['held_out_acc']:.1f}% of held-out ones"
        how = f"out of fold ({sc['folds']} folds)" if sc["mode"] == "out-of-fold" else "in-sample"
        lines.append(f"- scored {how}{' (chosen: cv auto)' if sc['cv'] == 'auto' else ''}: the model agrees with "
                     f"{100 * sc['in_sample_agreement']:.1f}% of the labels it trained on{seen}")
    if s["selection"]:
        lines.append("- held-out accuracy on the given labels: "
                     + ", ".join(f"{m} {a:.3f}" for m, a in s["selection"].items()))
    if s["test_acc"]:
        t = s["test_acc"]
        lines.append(f"- test accuracy: teacher on the given labels {100 * t['teacher']:.2f}%, "
                     f"retrained on the fixed labels ({t['fix']}) {100 * t['fixed']:.2f}%")
    noise = result.config.get("noise")
    if noise:
        lines.append(f"- the training labels were corrupted first: {noise['kind']} noise at rate {noise['rate']:g} "
                     f"(realised {noise['realised_rate']:.3f}, noise seed {noise['seed']}); the clean labels only "
                     "measure the flags")
    if s["metrics"]:
        m = s["metrics"]
        lines.append(f"- against the clean labels: precision {m['precision']:.3f}, recall {m['recall']:.3f}, "
                     f"F1 {m['f1']:.3f}, corrected-label accuracy {m['corrected_acc']:.3f}")
    lines.append(f"- {s['seconds']:.2f} s")
    rows = result.records()[:top]
    if rows:
        lines += ["", f"Most suspect {len(rows)}:", "", "| rank | index | given | suggested | score | confidence |",
                  "|---:|---:|---|---|---:|---:|"]
        lines += [f"| {r['rank']} | {r['index']} | {name(r['given_label'])} | {name(r['suggested_label'])} | "
                  f"{r['score']:.3f} | {r['confidence']:.3f} |" for r in rows]
    return "\n".join(lines) + "\n"


def write_label_issues(result: LabelIssues, output_dir, *, class_names=None, source=None, command=None) -> dict:
    """Write ``label_issues.csv``, ``summary.md`` and ``label_issues.json`` (config + summary) atomically.

    Returns {"csv": path, "summary": path, "json": path}.

    Parameters
    ----------
    result : LabelIssues
        What :func:`inspect_labels` returned.
    output_dir : str or path
        Directory to write into (created if missing).
    class_names : sequence of str or None
        K class names for the CSV and the summary.
    source : str or None
        Where the data came from (recorded in the summary and the JSON).
    command : str or None
        The command line that made it (recorded in the JSON).

    Returns
    -------
    dict
        {"csv": path, "summary": path, "json": path}, paths as str.

    Examples
    --------
    >>> import tempfile
    >>> from sklearn.datasets import load_iris
    >>> X, y = load_iris(return_X_y=True); y[:5] = 2
    >>> res = inspect_labels(X - X.mean(0), y, reg=1e-2, model="round 0")
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     paths = write_label_issues(res, tmp, source="iris")
    ...     print(open(paths["csv"]).readline().strip())
    rank,index,given_label,suggested_label,score,confidence
    """
    out = ensure_output_dir(output_dir, name="output_dir")
    files = {"csv": out / "label_issues.csv", "summary": out / "summary.md", "json": out / "label_issues.json"}
    atomic_write_text(files["csv"], issues_csv(result, class_names))
    atomic_write_text(files["summary"], summary_markdown(result, class_names, source))
    write_json(files["json"], {"source": source, "command": command, "config": result.config,
                               "class_names": list(class_names) if class_names is not None else None,
                               **result.summary()})
    return {k: os.fspath(v) for k, v in files.items()}
