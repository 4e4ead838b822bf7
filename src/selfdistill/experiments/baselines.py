"""Baselines beside self-distillation, on the same features, noisy labels and seeds.

Each baseline is a function ``(ctx) -> (metrics dict, extra dict)`` of a :class:`BaselineContext`
(the task's data, noisy labels, the teacher's reg, the trained chain). What each computes:

* ``tuned_teacher`` -- "teacher (tuned reg)": the teacher on one-hot noisy labels with its *own*
  reg, :func:`selfdistill.model_selection.select_reg` over the config's ``reg_grid`` on a
  stratified validation split (``val_fraction``) of the noisy training labels (seeded by the
  task's seed), then refitted on all training points. No clean or test label is used.
* ``label_smoothing`` -- "label smoothing <eps>": the teacher trained on
  ``(1 - eps) one-hot(y~) + eps / K`` with the teacher's reg.
* ``cleanlab`` -- "cleanlab filter": out-of-fold predicted probabilities of the teacher
  (``cleanlab_folds``-fold stratified cross-validation on the noisy labels, the teacher's reg),
  ``cleanlab.filter.find_label_issues(labels, pred_probs)`` (its defaults), the flagged points
  removed and the teacher refitted on the rest. Needs the optional dependency ``cleanlab``.
* ``born_again`` -- "born-again ensemble": the average of the softmax outputs of rounds 0..R
  of the SD chain (Furlanello et al., 2018), evaluated like any model.

Metrics are those of :func:`selfdistill.distill` (test_acc, train_acc, kept, corrected,
agree_given) computed the same way; topk_coverage and the solver fields are None for an ensemble.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..metrics import model_metrics
from ..model_selection import select_reg
from ..models import ModelId
from ..probe import LinearProbe, fit_linear_probe

__all__ = ["BASELINES", "BaselineContext", "run_baselines", "baseline_model_name", "check_baseline_dependencies"]

#: Baselines a config can ask for, beside the SD rounds and PLL students of the chain (their
#: model names: :data:`selfdistill.models.BASELINE_NAMES`).
BASELINES = {
    "tuned_teacher": "the teacher (one-hot labels) with its own reg chosen on the noisy validation split",
    "label_smoothing": "the teacher trained on label-smoothed targets (1 - eps) one-hot + eps/K",
    "cleanlab": "the teacher retrained without the label issues cleanlab finds from out-of-fold probabilities",
    "born_again": "the born-again ensemble: the average of the softmax outputs of rounds 0..R",
}


class _Settings(Protocol):
    """What the baselines read of the experiment config (an ExperimentConfig)."""

    @property
    def reg_grid(self) -> Sequence[float]: ...

    @property
    def val_fraction(self) -> float: ...

    @property
    def label_smoothing(self) -> float: ...

    @property
    def cleanlab_folds(self) -> int: ...


@dataclass
class BaselineContext:
    """What a baseline sees of its task: the data, the noisy labels, the teacher's reg, the chain.

    Built by :func:`~selfdistill.experiments.runner.compute_task` after the SD chain.

    Parameters
    ----------
    X : numpy.ndarray
        (n, d) training features.
    y_noisy : numpy.ndarray
        (n,) the task's noisy training labels: the only labels a baseline trains or chooses on.
    y_true : numpy.ndarray
        (n,) clean training labels, for the metrics only (kept, corrected, cleanlab's precision).
    X_test : numpy.ndarray
        (m, d) test features.
    y_test : numpy.ndarray
        (m,) test labels, for the metrics only.
    n_classes : int
        K.
    reg : float
        The teacher's reg (fixed, or the one chosen for round 0).
    seed : int
        The task's seed (the tuned teacher's validation split, cleanlab's folds).
    config : ExperimentConfig
        The experiment config (``reg_grid``, ``val_fraction``, ``label_smoothing``,
        ``cleanlab_folds``).
    round_models : list of LinearProbe
        The probes of rounds 0..R (each from its chosen reg), for the born-again ensemble.

    Examples
    --------
    >>> import numpy as np
    >>> from selfdistill import distill
    >>> from selfdistill.experiments import run_config
    >>> from selfdistill.noise import make_noisy_labels
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat(np.arange(3), 40); X = rng.normal(size=(120, 6)); X[np.arange(120), y] += 3.0
    >>> y_test = np.repeat(np.arange(3), 20); X_test = rng.normal(size=(60, 6)); X_test[np.arange(60), y_test] += 3.0
    >>> y_noisy, _ = make_noisy_labels(y, "symmetric", 0.3, seed=0)
    >>> chain = distill(X, y_noisy, reg=1e-2, rounds=1, pll=False, X_test=X_test, y_test=y_test, y_true=y)
    >>> cfg = run_config("block", rounds=1, pll_losses=[], baselines=["label_smoothing", "born_again"], reg=1e-2)
    >>> ctx = BaselineContext(X=X, y_noisy=y_noisy, y_true=y, X_test=X_test, y_test=y_test, n_classes=3,
    ...                       reg=1e-2, seed=0, config=cfg,
    ...                       round_models=[chain.models["round 0"], chain.models["round 1"]])
    >>> ctx.n_classes, len(ctx.round_models)
    (3, 2)
    """

    X: np.ndarray
    y_noisy: np.ndarray
    y_true: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    reg: float  # the teacher's reg (fixed, or the one chosen for round 0)
    seed: int
    config: _Settings  # the ExperimentConfig
    round_models: list[LinearProbe]  # LinearProbe of round 0..R (each from its chosen reg)


def baseline_model_name(name: str, config: _Settings | None = None) -> str:
    """The model name of a baseline in the task's metrics and the reports.

    Parameters
    ----------
    name : str
        A baseline (a key of :data:`BASELINES`).
    config : ExperimentConfig or None, default None
        Gives label smoothing's ``eps`` (default 0.1 without a config).

    Returns
    -------
    str
        ``"teacher (tuned reg)"``, ``"label smoothing <eps>"``, ``"cleanlab filter"`` or
        ``"born-again ensemble"``.

    Raises
    ------
    ValueError
        For an unknown baseline.

    Examples
    --------
    >>> from selfdistill.experiments import BASELINES, run_config
    >>> [baseline_model_name(b) for b in BASELINES]
    ['teacher (tuned reg)', 'label smoothing 0.1', 'cleanlab filter', 'born-again ensemble']
    >>> baseline_model_name("label_smoothing", run_config("block", label_smoothing=0.2))
    'label smoothing 0.2'
    """
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}")
    eps = getattr(config, "label_smoothing", 0.1) if name == "label_smoothing" else None
    return ModelId.baseline(name, eps=eps).name


def check_baseline_dependencies(baselines: Iterable[str]) -> None:
    """Raise ImportError with an install hint when a baseline's optional dependency is missing.

    Called before a sweep starts, so a missing ``cleanlab`` fails before any task runs.

    Parameters
    ----------
    baselines : iterable of str
        The config's baselines.

    Raises
    ------
    ImportError
        When ``"cleanlab"`` is asked for and the ``cleanlab`` package cannot be imported.

    Examples
    --------
    >>> check_baseline_dependencies(["label_smoothing", "born_again"])  # no optional dependency
    """
    if "cleanlab" in baselines:
        try:
            import cleanlab.filter  # noqa: F401
        except ImportError:
            raise ImportError(
                "the 'cleanlab' baseline needs the optional dependency cleanlab: "
                "pip install 'selfdistill[cleanlab]' (or pip install cleanlab), or remove it from 'baselines'"
            ) from None


def metrics_from_predictions(name, ctx, train_pred, test_pred, probe=None, extra=None) -> dict:
    """A baseline's metrics (:func:`selfdistill.metrics.model_metrics`), its reg, and ``extra``."""
    m = model_metrics(name, train_pred=train_pred, y_given=ctx.y_noisy, y_true=ctx.y_true, test_pred=test_pred,
                      y_test=ctx.y_test, probe=probe)
    m["reg"] = ctx.reg
    m.update(extra or {})
    return m


def _tuned_teacher(ctx):
    reg, scores = select_reg(ctx.X, ctx.y_noisy, grid=ctx.config.reg_grid, val_fraction=ctx.config.val_fraction,
                             seed=ctx.seed, n_classes=ctx.n_classes)
    probe = fit_linear_probe(ctx.X, ctx.y_noisy, reg, n_classes=ctx.n_classes)
    m = metrics_from_predictions(baseline_model_name("tuned_teacher"), ctx, probe.predict(ctx.X),
                                 probe.predict(ctx.X_test), probe)
    m["reg"] = float(reg)
    return m, {"reg_scores": {repr(float(k)): v for k, v in scores.items()}}


def _label_smoothing(ctx):
    eps, K = ctx.config.label_smoothing, ctx.n_classes
    T = np.full((ctx.y_noisy.shape[0], K), eps / K)
    T[np.arange(T.shape[0]), ctx.y_noisy] += 1.0 - eps
    probe = fit_linear_probe(ctx.X, T, ctx.reg, n_classes=K)
    name = baseline_model_name("label_smoothing", ctx.config)
    return metrics_from_predictions(name, ctx, probe.predict(ctx.X), probe.predict(ctx.X_test), probe), {}


def out_of_fold_probabilities(X, y, reg, n_classes, folds, seed):
    """(n, K) predicted probabilities of each point by a teacher that never saw it (stratified folds)."""
    from sklearn.model_selection import StratifiedKFold

    counts = np.bincount(y, minlength=n_classes)
    folds = int(min(folds, max(2, counts[counts > 0].min())))
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    P = np.zeros((y.shape[0], n_classes))
    for fit_idx, val_idx in skf.split(X, y):
        probe = fit_linear_probe(X[fit_idx], y[fit_idx], reg, n_classes=n_classes)
        P[val_idx] = probe.predict_proba(X[val_idx])
    return P, folds


def _cleanlab(ctx):
    import warnings

    from cleanlab.filter import find_label_issues

    P, folds = out_of_fold_probabilities(ctx.X, ctx.y_noisy, ctx.reg, ctx.n_classes, ctx.config.cleanlab_folds,
                                         ctx.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        issues = np.asarray(find_label_issues(labels=ctx.y_noisy, pred_probs=P), dtype=bool)
    keep = ~issues
    # keep every class represented (the probe needs K classes; a class wholly flagged keeps its points)
    for k in range(ctx.n_classes):
        if not np.any(keep & (ctx.y_noisy == k)):
            keep |= ctx.y_noisy == k
    probe = fit_linear_probe(ctx.X[keep], ctx.y_noisy[keep], ctx.reg, n_classes=ctx.n_classes)
    noisy = ctx.y_noisy != ctx.y_true
    removed = ~keep
    extra = {
        "removed": float(removed.mean()),
        "removed_precision": float(noisy[removed].mean()) if removed.any() else None,
        "removed_recall": float(removed[noisy].mean()) if noisy.any() else None,
    }
    m = metrics_from_predictions(baseline_model_name("cleanlab"), ctx, probe.predict(ctx.X), probe.predict(ctx.X_test),
                                 probe, extra)
    return m, {"cleanlab_folds": folds, **extra}


def _born_again(ctx):
    P_train = np.mean([m.predict_proba(ctx.X) for m in ctx.round_models], axis=0)
    P_test = np.mean([m.predict_proba(ctx.X_test) for m in ctx.round_models], axis=0)
    m = metrics_from_predictions(baseline_model_name("born_again"), ctx, P_train.argmax(1), P_test.argmax(1))
    m["reg"] = None
    return m, {"members": len(ctx.round_models)}


_FUNCS = {"tuned_teacher": _tuned_teacher, "label_smoothing": _label_smoothing, "cleanlab": _cleanlab,
          "born_again": _born_again}


def run_baselines(names: Iterable[str], ctx: BaselineContext) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Run the named baselines; returns (list of metric dicts, {name: extra record}).

    Each baseline is trained on the noisy labels only (see the module docstring for what each
    computes); its metrics are those of the chain's models, plus ``reg`` and ``seconds``.

    Parameters
    ----------
    names : iterable of str
        Baselines, in the order wanted (keys of :data:`BASELINES`).
    ctx : BaselineContext
        The task's data, noisy labels, teacher's reg and chain.

    Returns
    -------
    metrics : list of dict
        One metrics dict per baseline, in the order of ``names`` (``model`` is
        :func:`baseline_model_name`).
    extras : dict of str to dict
        Per baseline, its record for the task's ``solver`` (the tuned teacher's reg scores,
        cleanlab's removed fraction, the ensemble's size, ...).

    Examples
    --------
    >>> import numpy as np
    >>> from selfdistill import distill
    >>> from selfdistill.experiments import run_config
    >>> from selfdistill.noise import make_noisy_labels
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat(np.arange(3), 40); X = rng.normal(size=(120, 6)); X[np.arange(120), y] += 3.0
    >>> y_test = np.repeat(np.arange(3), 20); X_test = rng.normal(size=(60, 6)); X_test[np.arange(60), y_test] += 3.0
    >>> y_noisy, _ = make_noisy_labels(y, "symmetric", 0.3, seed=0)
    >>> chain = distill(X, y_noisy, reg=1e-2, rounds=1, pll=False, X_test=X_test, y_test=y_test, y_true=y)
    >>> cfg = run_config("block", rounds=1, pll_losses=[], baselines=["label_smoothing", "born_again"], reg=1e-2)
    >>> ctx = BaselineContext(X=X, y_noisy=y_noisy, y_true=y, X_test=X_test, y_test=y_test, n_classes=3,
    ...                       reg=1e-2, seed=0, config=cfg,
    ...                       round_models=[chain.models["round 0"], chain.models["round 1"]])
    >>> metrics, extras = run_baselines(cfg.baselines, ctx)
    >>> [(m["model"], m["reg"]) for m in metrics], extras["born_again"]
    ([('label smoothing 0.1', 0.01), ('born-again ensemble', None)], {'members': 2})
    """
    import time

    metrics, extras = [], {}
    for name in names:
        t0 = time.perf_counter()
        m, extra = _FUNCS[name](ctx)
        m["seconds"] = time.perf_counter() - t0
        metrics.append(m)
        extras[name] = extra
    return metrics, extras
