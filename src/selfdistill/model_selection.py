"""Choosing reg without looking at test labels: a held-out part of the noisy training set."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ._validation import PARAMS, check_features, check_labels, make_constraint, validate_params
from .probe import fit_ce_unchecked, solver_settings

__all__ = ["select_reg", "select_reg_per_model", "reg_path", "refit_selected", "DEFAULT_REG_GRID"]

#: The default grid of :func:`select_reg`, :func:`select_reg_per_model`, :func:`reg_path` and
#: :func:`selfdistill.inspect_labels`: 9 values, half-decade steps from 1e-1 to 1e-5. The experiment
#: pipeline's ``reg = "auto"`` has its own coarser default (:data:`selfdistill.experiments.REG_GRID`,
#: 7 values: a whole chain per value and task); it is part of every stored result's settings, so the
#: two are kept apart rather than merged (merging would silently change which results match).
DEFAULT_REG_GRID = (1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5)


def select_reg(
    X: ArrayLike,
    y: ArrayLike,
    *,
    grid: Iterable[float] = DEFAULT_REG_GRID,
    val_fraction: float = 0.2,
    seed: int | None = 0,
    n_classes: int | None = None,
) -> tuple[float, dict[float, float]]:
    """Pick reg for the teacher by its accuracy on a held-out part of the *noisy* training labels.

    The rule (used by ``selfdistill run``): split (X, y) once, stratified by the given labels y,
    into (1 - val_fraction) fit / val_fraction validation (seeded); fit the teacher (round 0) for
    every reg in ``grid`` on the fit part; return the reg with the highest accuracy against the
    given, possibly noisy, validation labels (ties: the larger reg). Under class-conditional noise
    whose diagonal dominates, accuracy on noisy labels ranks models like accuracy on clean ones in
    expectation, so no clean or test label is ever used.

    Parameters
    ----------
    X : array-like of float, shape (n, d)
        Training features.
    y : array-like of int, shape (n,)
        The given (possibly noisy) training labels in 0..K-1.
    grid : iterable of float, default DEFAULT_REG_GRID, keyword-only
        The reg values (> 0) to try (duplicates count once); the objective is (1/n) sum CE + (reg/2) ||W||^2.
    val_fraction : float, default 0.2, keyword-only
        Share of the points held out for validation, in (0, 1).
    seed : int or None, default 0, keyword-only
        Seed of the split (``random_state`` of scikit-learn's ``train_test_split``).
    n_classes : int, optional, keyword-only
        K; default ``y.max() + 1``.

    Returns
    -------
    reg : float
        The chosen reg.
    scores : dict of float to float
        reg -> accuracy of the teacher on the held-out noisy labels.

    Raises
    ------
    ValueError
        Invalid ``X`` or ``y``; ``val_fraction`` outside (0, 1); an empty ``grid`` or a
        non-positive entry; a validation split that cannot score reg: too few points per class
        (fewer than about ``ceil(1 / val_fraction)``, so the split cannot hold a point of every
        class, or leaves most validation points in classes the fit part lacks), or every reg
        scoring 0. Give a fixed reg for such data.

    Examples
    --------
    Three well-separated classes: every reg is perfect on the held-out part, and the tie goes to
    the larger (stronger) reg.

    >>> rng = np.random.default_rng(0)
    >>> X = np.repeat(np.eye(3), 10, axis=0) + 0.1 * rng.normal(size=(30, 3))
    >>> y = np.repeat([0, 1, 2], 10)
    >>> select_reg(X, y, grid=(1e-1, 1e-3))
    (0.1, {0.1: 1.0, 0.001: 1.0})
    """
    X, y, grid, K, val_fraction = _checked_inputs(X, y, grid, val_fraction, n_classes)
    X_fit, y_fit, X_val, y_val = _checked_split(X, y, val_fraction, seed)
    scores = {}
    init = None
    solver = solver_settings()  # fit_linear_probe's defaults; the fits are its unchecked twin (all is checked)
    for reg in grid:  # strong to weak reg, warm-started
        probe = fit_ce_unchecked(X_fit, y_fit, K, reg, solver, init=init)
        init = probe
        scores[reg] = float(np.mean(np.argmax(probe._logits(X_val), axis=1) == y_val))
    if max(scores.values()) == 0:  # no reg predicts a single validation point: nothing ranks them
        raise ValueError(
            f"every reg of the grid scores 0 on the {y_val.size} validation points (val_fraction={val_fraction:g} of "
            f"y's {y_fit.size + y_val.size} points of {np.unique(y_fit).size} classes), so reg cannot be chosen on "
            f"them: too few points per class for a validation split? Choosing reg needs at least "
            f"{_points_per_class(val_fraction)} points per class; give a fixed reg otherwise")
    best = max(grid, key=lambda r: scores[r])
    return best, scores


def _points_per_class(val_fraction: float) -> int:
    """Points per class that let a stratified split with ``val_fraction`` hold every class in both parts."""
    return max(2, math.ceil(1 / val_fraction - 1e-9))


def _checked_inputs(X, y, grid, val_fraction, n_classes) -> tuple[np.ndarray, np.ndarray, list, int, float]:
    """The selection's inputs checked: (X, y, grid (unique, largest first), K, val_fraction); the
    warnings of y point at the line calling select_reg / reg_path."""
    X = check_features(X)
    p = validate_params(n_classes=n_classes, val_fraction=val_fraction)
    y = check_labels(y, "y", n_samples=X.shape[0], n_classes=p["n_classes"], stacklevel=3)
    reg = make_constraint(PARAMS["reg"])
    grid = sorted({reg.check(r, "grid entry") for r in grid}, reverse=True)
    if not grid:
        raise ValueError("grid must hold at least one reg value")
    K = p["n_classes"] or int(y.max()) + 1
    if K < 2:
        raise ValueError(f"y must hold at least 2 classes, got a single class {np.unique(y).tolist()}; "
                         "pass n_classes= if some classes are absent")
    return X, y, grid, K, p["val_fraction"]


def _checked_split(X, y, val_fraction, seed, copy=True):
    """The seeded split of checked inputs, stratified by y: (X_fit, y_fit, X_val, y_val), or None
    with ``copy=False``.

    A split that cannot score reg is a ``ValueError`` saying why (too few points per class) and
    what is needed: a stratified split whose validation or fit part holds fewer points than there
    are classes (so it cannot hold one of each; it needs about ``ceil(1 / val_fraction)`` points
    per class), or a split that leaves more than half of the validation points in classes with no
    point in the fit part (classes of a single point).
    """
    _, counts = np.unique(y, return_counts=True)
    need = _points_per_class(val_fraction)
    what = (f"too few points per class for a validation split: y has {y.size} points of {counts.size} classes "
            f"(the smallest has {counts.min()})")
    advice = (f"choosing reg needs at least {need} points per class (ceil(1 / val_fraction)); give a fixed reg, "
              "or more points per class")
    n_val = math.ceil(val_fraction * y.size)
    if counts.min() >= 2 and min(n_val, y.size - n_val) < counts.size:  # stratified: one point of every class each side
        part, size = ("validation", n_val) if n_val < y.size - n_val else ("fit", y.size - n_val)
        raise ValueError(
            f"{what}; the {part} part of the split (val_fraction={val_fraction:g}) holds {size} points, fewer than "
            f"the {counts.size} classes, so it cannot hold a point of every class and reg cannot be chosen on it; "
            f"{advice}")
    idx_fit, idx_val = stratified_split(y, val_fraction, seed)
    unseen = ~np.isin(y[idx_val], y[idx_fit])
    if unseen.mean() > 0.5:  # a score on such a split says nothing about reg
        raise ValueError(
            f"{what}; the validation split (val_fraction={val_fraction:g}) leaves {int(unseen.sum())} of its "
            f"{unseen.size} points in classes with no point in the fit part, so reg cannot be chosen on it; {advice}")
    if not copy:
        return None
    return X[idx_fit], y[idx_fit], X[idx_val], y[idx_val]


def stratified_split(y, val_fraction, seed):
    """Seeded (fit, validation) index arrays over range(len(y)), stratified by y when every class has
    two points. Package-internal (label_issues splits with it too): not in ``__all__``."""
    from sklearn.model_selection import train_test_split

    _, counts = np.unique(y, return_counts=True)
    stratify = y if counts.min() >= 2 else None
    return train_test_split(np.arange(len(y)), test_size=val_fraction, random_state=seed, stratify=stratify)


def select_reg_per_model(
    X: ArrayLike,
    y: ArrayLike,
    *,
    grid: Iterable[float] = DEFAULT_REG_GRID,
    val_fraction: float = 0.2,
    seed: int | None = 0,
    n_classes: int | None = None,
    **distill_kwargs: Any,
) -> tuple[dict[str, float], dict[str, dict[float, float]]]:
    """Pick reg separately for every model of the chain, by held-out accuracy on the *noisy* labels.

    The rule of ``selfdistill run --reg auto``, as a public helper that returns only the choice (the
    pipeline itself calls :func:`reg_path`, then :func:`refit_selected`): split (X, y) once
    (stratified by the given labels, seeded) into fit / validation parts; for every reg in ``grid``
    run the whole chain (:func:`selfdistill.distill` with ``distill_kwargs``: rounds, PLL students)
    on the fit part; each model ("round t", "pll-<loss>") gets the reg with the best accuracy
    against the given, possibly noisy, validation labels (ties: the larger reg). So every model is
    compared at its own best setting, and no clean or test label is used. (A chain shares one reg across its rounds,
    as in the paper: "round 3" at reg r is round 3 of the chain trained with reg r.)

    Parameters
    ----------
    X : array-like of float, shape (n, d)
        Training features.
    y : array-like of int, shape (n,)
        The given (possibly noisy) training labels in 0..K-1.
    grid : iterable of float, default DEFAULT_REG_GRID, keyword-only
        The reg values (> 0) to try (duplicates count once).
    val_fraction : float, default 0.2, keyword-only
        Share of the points held out for validation, in (0, 1).
    seed : int or None, default 0, keyword-only
        Seed of the split.
    n_classes : int, optional, keyword-only
        K; default ``y.max() + 1``.
    **distill_kwargs
        Passed to :func:`selfdistill.distill` (``rounds``, ``pll``, ``top_k``, ``pll_loss`` ...);
        not ``reg``, ``n_classes``, ``X_test`` or ``y_test``, which this function sets.

    Returns
    -------
    best : dict of str to float
        Model name -> its chosen reg.
    scores : dict of str to dict
        Model name -> {reg: accuracy on the held-out noisy labels}.

    Raises
    ------
    ValueError
        As :func:`select_reg`, and as :func:`selfdistill.distill` for ``distill_kwargs``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = np.repeat(np.eye(3), 10, axis=0) + 0.1 * rng.normal(size=(30, 3))
    >>> y = np.repeat([0, 1, 2], 10)
    >>> best, scores = select_reg_per_model(X, y, grid=(1e-1, 1e-3), rounds=1)
    >>> best
    {'round 0': 0.1, 'round 1': 0.1, 'pll-uniform': 0.1}
    >>> scores["round 1"]
    {0.1: 1.0, 0.001: 1.0}
    """
    best, scores, _ = reg_path(X, y, grid=grid, val_fraction=val_fraction, seed=seed, n_classes=n_classes,
                               **distill_kwargs)
    return best, scores


def reg_path(
    X: ArrayLike,
    y: ArrayLike,
    *,
    grid: Iterable[float] = DEFAULT_REG_GRID,
    val_fraction: float = 0.2,
    seed: int | None = 0,
    n_classes: int | None = None,
    **distill_kwargs: Any,
) -> tuple[dict[str, float], dict[str, dict[float, float]], dict[float, dict[str, Any]]]:
    """The chain along the reg grid with its models: :func:`select_reg_per_model`'s choice and its fits.

    The first step of the pipeline's ``reg = "auto"`` (:func:`refit_selected` is the second).

    Goes down the grid from the largest reg, as glmnet and scikit-learn's logistic-regression
    path do: the teacher at reg r_j starts from the teacher at the previous, larger reg r_{j-1};
    the students start as in :func:`selfdistill.distill` (from the previous round at the same reg,
    which measured closer than the same round at the neighbouring reg: benchmarks/RESULTS.md);
    every fit shares one copy of the fit part's features and one eigen-decomposition of
    X_fit^T X_fit / n_fit. Warm starts change where the solver starts, not the minimiser of a
    convex fit. (The non-convex PLL students' answer depends on the start: theirs is unchanged.)

    Parameters
    ----------
    X, y, grid, val_fraction, seed, n_classes, **distill_kwargs
        As for :func:`select_reg_per_model`.

    Returns
    -------
    best : dict of str to float
        Model name -> its chosen reg.
    scores : dict of str to dict
        Model name -> {reg: accuracy on the held-out noisy labels}.
    models : dict of float to dict
        reg -> {model name: the fitted :class:`selfdistill.LinearProbe`} (fitted on the fit part):
        warm starts for a refit on all the points.

    Raises
    ------
    ValueError
        As :func:`select_reg_per_model`.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = np.repeat(np.eye(3), 10, axis=0) + 0.1 * rng.normal(size=(30, 3))
    >>> y = np.repeat([0, 1, 2], 10)
    >>> best, scores, models = reg_path(X, y, grid=(1e-1, 1e-3), rounds=1)
    >>> sorted(models), sorted(models[0.1])
    ([0.001, 0.1], ['pll-uniform', 'round 0', 'round 1'])
    """
    from .distill import distill
    from .probe import ChainCache

    X, y, grid, K, val_fraction = _checked_inputs(X, y, grid, val_fraction, n_classes)
    _checked_split(X, y, val_fraction, seed, copy=False)
    idx_fit, idx_val = stratified_split(y, val_fraction, seed)
    fit_part = np.zeros(X.shape[0])
    fit_part[idx_fit] = 1.0  # the fit part as 0/1 row weights over X itself (no copy: X's passes can be shared)
    cache = ChainCache()
    scores: dict[str, dict[float, float]] = {}
    models: dict[float, dict[str, Any]] = {}
    warm = None
    for reg in grid:  # strong to weak reg
        res = distill(X, y, reg=reg, n_classes=K, X_test=X[idx_val], y_test=y[idx_val], sample_weight=fit_part,
                      _cache=cache, _warm=warm, **distill_kwargs)
        models[reg] = res.models
        warm = {"round 0": res.models["round 0"]}
        for m in res.metrics:
            scores.setdefault(m["model"], {})[reg] = m["test_acc"]
    best = {name: max(grid, key=lambda r: s[r]) for name, s in scores.items()}
    return best, scores, models


def refit_selected(
    X: ArrayLike,
    y: ArrayLike,
    best: dict[str, float],
    path: dict[float, dict[str, Any]] | None = None,
    *,
    rounds: int = 4,
    pll: bool = True,
    pll_loss: Any = "uniform",
    **distill_kwargs: Any,
) -> dict[float, Any]:
    """Refit every model at its chosen reg on all the points: one partial chain per distinct reg.

    For each distinct reg r of ``best`` (largest first) :func:`selfdistill.distill` runs only as
    far as r's models need: rounds 0..t where t is the last round that chose r, and the PLL
    students that chose r (the teacher is always there: the students learn from it). With
    ``path`` (the third value of :func:`reg_path`) the teacher starts from the path's teacher at
    r, fitted on the fit part. Model ``m`` of the answer is ``result[best[m]].models[m]``; every
    fit is the same minimiser as in a full chain at its reg.

    Parameters
    ----------
    X : array-like of float, shape (n, d)
        All the training features.
    y : array-like of int, shape (n,)
        The given (possibly noisy) labels.
    best : dict of str to float
        Model name -> chosen reg (the first value of :func:`reg_path`).
    path : dict of float to dict, optional
        reg -> {model name: LinearProbe} from :func:`reg_path`, for warm starts.
    rounds : int, default 4, keyword-only
        R, the last SD round of the chain ``best`` was chosen for.
    pll : bool, default True, keyword-only
        Whether the chain has PLL students.
    pll_loss : str or sequence of str, default "uniform", keyword-only
        The PLL losses, as for :func:`selfdistill.distill` (model names "pll-<loss>").
    **distill_kwargs
        Passed on to :func:`selfdistill.distill` (``X_test``, ``y_test``, ``y_true``, ``top_k``,
        ``n_classes``, solver settings).

    Returns
    -------
    dict of float to DistillResult
        reg -> the partial chain at that reg.

    Raises
    ------
    ValueError
        A model of the chain missing from ``best``, and as :func:`selfdistill.distill`.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = np.repeat(np.eye(3), 10, axis=0) + 0.1 * rng.normal(size=(30, 3))
    >>> y = np.repeat([0, 1, 2], 10)
    >>> best = {"round 0": 0.1, "round 1": 0.01, "pll-uniform": 0.1}
    >>> chains = refit_selected(X, y, best, rounds=1)
    >>> {r: sorted(c.models) for r, c in chains.items()}
    {0.1: ['pll-uniform', 'round 0'], 0.01: ['round 0', 'round 1']}
    """
    from .distill import distill, pll_model_names
    from .probe import ChainCache

    losses = [pll_loss] if isinstance(pll_loss, str) else list(pll_loss)
    names = [f"round {t}" for t in range(rounds + 1)] + (pll_model_names(pll_loss) if pll else [])
    missing = [m for m in names if m not in best]
    if missing:
        raise ValueError(f"best must give a reg for every model of the chain, missing {missing}")
    X = check_features(X)
    cache = ChainCache()
    chains = {}
    for r in sorted({best[m] for m in names}, reverse=True):
        last = max([t for t in range(rounds + 1) if best[f"round {t}"] == r], default=0)
        chosen = [loss for name, loss in zip(names[rounds + 1 :], losses, strict=False) if best[name] == r]
        part_loss = pll_loss if isinstance(pll_loss, str) else tuple(chosen)
        warm = {"round 0": path[r]["round 0"]} if path is not None and r in path else None
        chains[r] = distill(X, y, reg=r, rounds=last, pll=bool(chosen), pll_loss=part_loss if chosen else "uniform",
                            _cache=cache, _warm=warm, **distill_kwargs)
    return chains
