"""The one task runner: noise -> labels -> reg selection -> chain -> baselines -> metrics.

``selfdistill run`` and ``selfdistill sweep`` both compute every task with :func:`compute_task`,
in this process, in local worker processes or on Dask workers (:mod:`.sweep` dispatches).

One task, on a dataset loaded once by :func:`prepare_datasets`:

1. noisy training labels ``make_noisy_labels(y_train, noise, rate, noise_seed(seed, noise, rate))``
   (:func:`task_labels`); ``class_cluster`` noise uses clusters computed once per dataset from the
   training features and the *clean* training labels (they define the noise model, like a
   transition matrix, and are the same for every rate and seed);
2. reg fixed, or (``reg = "auto"``, :data:`~.config.REG_RULE`) chosen per model on a validation
   split of the *noisy* training labels, seeded by the task's seed: the chain down the reg grid
   (:func:`selfdistill.model_selection.reg_path`), then each distinct chosen reg refitted on all
   the points as far as its models need (:func:`selfdistill.model_selection.refit_selected`);
3. with ``trainer = "sgd-recipe"``, instead the authors' SGD recipe at the fixed reg
   (:func:`selfdistill.recipe.recipe_distill`: a labelled baseline protocol);
4. the config's baselines (:mod:`.baselines`);
5. one metrics dict per model, with its gain over the same task's round 0.

Choices fixed here: the train/test split is ``load_dataset(spec, seed=0)`` for every seed (seeds
vary the label noise and the reg-selection split); every task can be recomputed alone, in any
order, and gives the same numbers.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import threading
import time
import warnings
import zlib
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from .._version import __version__
from ..distill import distill
from ..model_selection import refit_selected, reg_path
from ..models import TEACHER, ModelId
from ..noise import class_clusters, make_noisy_labels
from .baselines import BaselineContext, run_baselines
from .config import ConfigError, ExperimentConfig, Task

if TYPE_CHECKING:
    from ..data import Dataset

__all__ = [
    "TASK_FORMAT",
    "noise_seed",
    "dataset_fingerprint",
    "task_config_hash",
    "prepare_datasets",
    "task_labels",
    "label_key",
    "compute_recipe_tasks",
    "compute_task",
    "limit_blas",
    "check_work",
    "MAX_FITS",
]

#: A grid needing more probe fits than this is refused unless ``allow_large`` (``--allow-large``).
MAX_FITS = 100_000

#: Bumped when a task's computation changes in a way that makes stored results stale.
TASK_FORMAT = 2  # 2: PLL targets share tied candidate mass (results of format 1 are recomputed)


def noise_seed(seed: int, kind: str, rate: float) -> int:
    """The seed of a task's label noise: a documented function of (seed, kind, rate).

    ``SeedSequence([seed, zlib.crc32(kind), round(rate * 1e6)]).generate_state(1)[0]`` (a 32-bit
    int). Independent of the grid and of the order of the tasks, and the same on every platform
    (``crc32``, unlike ``hash``, is not salted per process).

    Parameters
    ----------
    seed : int
        The task's seed (:attr:`~selfdistill.experiments.config.Task.seed`).
    kind : str
        The noise kind.
    rate : float
        The nominal noise rate (resolution 1e-6: rates closer than that share a seed).

    Returns
    -------
    int
        A seed in [0, 2**32 - 1] for :func:`selfdistill.noise.make_noisy_labels`.

    Examples
    --------
    >>> noise_seed(0, "symmetric", 0.3) == noise_seed(0, "symmetric", 0.3)
    True
    >>> noise_seed(0, "symmetric", 0.3), noise_seed(0, "symmetric", 0.5), noise_seed(1, "symmetric", 0.3)
    (1326427041, 2149337370, 858698886)
    """
    entropy = [int(seed), zlib.crc32(str(kind).encode("utf-8")), int(round(float(rate) * 1_000_000))]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def fits_per_task(config: ExperimentConfig, reg) -> int:
    """Probe fits one task needs at most: the chain once per reg of the grid plus the refits
    (``reg = "auto"``), else once; plus the baselines' fits."""
    models = config.rounds + 1 + len(config.pll_losses)
    grid = len(config.reg_grid)
    fits = models * (2 * grid if reg == "auto" else 1)  # auto: a chain per grid reg, refits at most one per reg
    extra = {"tuned_teacher": grid + 1, "label_smoothing": 1, "cleanlab": config.cleanlab_folds + 1, "born_again": 0}
    return fits + sum(extra[b] for b in config.baselines)


def check_work(config: ExperimentConfig, *, allow_large: bool = False) -> int:
    """The number of probe fits the grid needs; a :class:`~.config.ConfigError` above :data:`MAX_FITS`
    (the message gives the estimate and how to run it anyway) unless ``allow_large``.

    Per task: each model of the chain (rounds 0..R and the PLL students) is fitted once with a
    fixed reg; with ``reg = "auto"`` the chain is fitted once per reg of ``reg_grid`` on the
    validation split and refitted at most once per reg, so ``2 * len(reg_grid)`` times at most;
    plus the baselines' fits. An upper bound, checked before anything is loaded or written.

    Parameters
    ----------
    config : ExperimentConfig
        The experiment config.
    allow_large : bool, default False, keyword-only
        Return the count instead of refusing a grid above :data:`MAX_FITS` fits.

    Returns
    -------
    int
        The estimated number of probe fits of the whole grid.

    Raises
    ------
    ConfigError
        Above :data:`MAX_FITS` fits without ``allow_large`` (``param`` is ``"allow_large"``).

    Examples
    --------
    >>> from selfdistill.experiments import run_config
    >>> check_work(run_config("block", noise=["symmetric"], rates=[0.0, 0.5], seeds=[0], rounds=1,
    ...                       pll_losses=[], reg=1e-3))  # 2 tasks x 2 models
    4
    >>> big = run_config("digits", seeds=list(range(200)))  # 1,600 tasks x 8 models x 14 (reg auto)
    >>> check_work(big, allow_large=True)
    179200
    >>> check_work(big)
    Traceback (most recent call last):
    ...
    selfdistill.experiments.config.ConfigError: this grid needs about 179,200 probe fits (digits: ...
    """
    n_tasks = len(config.noise) * len(config.rates) * len(config.seeds)
    total = sum(n_tasks * fits_per_task(config, spec.reg) for spec in config.datasets)
    if total > MAX_FITS and not allow_large:
        per = ", ".join(f"{spec.name}: {n_tasks:,} tasks x {fits_per_task(config, spec.reg):,} fits"
                        for spec in config.datasets)
        raise ConfigError(f"this grid needs about {total:,} probe fits ({per}), more than {MAX_FITS:,}: "
                          "check rounds, rates, seeds and reg_grid, or pass --allow-large (allow_large=True) "
                          "to run it anyway", param="allow_large")
    return total


def dataset_fingerprint(ds: Dataset) -> str:
    """sha256 of a dataset's arrays (dtype, shape and bytes of X_train, y_train, X_test, y_test).

    Part of :func:`task_config_hash`: stored tasks are recomputed when the data change.

    Parameters
    ----------
    ds : selfdistill.data.Dataset
        A loaded dataset (any object with those four array attributes).

    Returns
    -------
    str
        64 hex digits.

    Examples
    --------
    >>> from selfdistill.data import load_dataset
    >>> fp = dataset_fingerprint(load_dataset("block", seed=0))
    >>> len(fp), fp == dataset_fingerprint(load_dataset("block", seed=0))
    (64, True)
    """
    h = hashlib.sha256()
    for arr in (ds.X_train, ds.y_train, ds.X_test, ds.y_test):
        a = np.ascontiguousarray(arr)
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def task_config_hash(config: ExperimentConfig, dataset: str, fingerprint: str) -> str:
    """Hash of every setting that changes the result of ``dataset``'s tasks (not the grid axes).

    The settings are :meth:`ExperimentConfig.task_settings`, the dataset's content, the library
    version and :data:`TASK_FORMAT`. A stored task with another hash is recomputed; growing the
    grid (more rates, seeds, noise kinds) keeps the hash, so finished tasks are reused.

    Parameters
    ----------
    config : ExperimentConfig
        The experiment config.
    dataset : str
        A dataset name of the config.
    fingerprint : str
        The dataset's :func:`dataset_fingerprint`.

    Returns
    -------
    str
        The first 16 hex digits of the sha256 of those settings as sorted JSON.

    Examples
    --------
    >>> from selfdistill.experiments import run_config
    >>> cfg = run_config("block", noise=["symmetric"], rates=[0.3], seeds=[0], rounds=1, pll_losses=[], reg=1e-3)
    >>> h = task_config_hash(cfg, "block", "0" * 64)
    >>> len(h)
    16
    >>> more = run_config("block", noise=["symmetric"], rates=[0.3, 0.5], seeds=[0, 1], rounds=1, pll_losses=[],
    ...                   reg=1e-3)
    >>> task_config_hash(more, "block", "0" * 64) == h  # the grid axes do not count
    True
    >>> longer = run_config("block", noise=["symmetric"], rates=[0.3], seeds=[0], rounds=2, pll_losses=[], reg=1e-3)
    >>> task_config_hash(longer, "block", "0" * 64) == h
    False
    """
    d = config.task_settings(dataset)
    d.update(dataset_sha256=fingerprint, selfdistill_version=__version__, task_format=TASK_FORMAT)
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def _load(spec):
    from ..data import load_dataset

    if spec.features.lower().endswith(".npz") and not os.path.isfile(spec.features):
        raise ConfigError(
            f"no such feature file {spec.features!r} (make it with 'selfdistill extract', or fix the path; "
            "relative paths are relative to the config file)", line=spec.line, param="features",
            key=f"[[datasets]] {spec.name} features")
    return load_dataset(spec.features, seed=0)


def _subset(ds, size, spec, config):
    """``ds`` with a stratified ``size``-point subset of its training points (seed 0), or ``ds``."""
    if size is None:
        return ds
    if size >= ds.n_train:
        raise ConfigError(f"train_subset = {size:,} but {spec.features!r} has {ds.n_train:,} training points "
                          "(give fewer, or drop train_subset)", path=config.path, line=spec.line,
                          key=f"[[datasets]] {spec.name} train_subset", param="train_subset")
    import dataclasses

    from sklearn.model_selection import train_test_split

    idx, _ = train_test_split(np.arange(ds.n_train), train_size=size, stratify=ds.y_train, random_state=0)
    idx = np.sort(idx)
    info = {**ds.info, "train_subset": {"size": int(size), "of": int(ds.n_train), "rule": "stratified, seed 0"}}
    return dataclasses.replace(ds, X_train=np.ascontiguousarray(ds.X_train[idx]), y_train=ds.y_train[idx],
                               info=info)


def _check_dataset(config, spec, ds, fail):
    K = ds.n_classes
    if spec.n_classes is not None and spec.n_classes != K:
        fail(f"the config says n_classes = {spec.n_classes} but {spec.features!r} has {K} classes",
             spec.n_classes_line or spec.line, "n_classes")
    if ds.n_test == 0:
        fail(f"{spec.features!r} has no test points; experiments report test accuracy", spec.line, "features")
    if config.pll_losses and K < 3:  # no top_k can help: the top-2 candidate set of 2 classes is every class
        drop = "pll_losses = [] in the config" if config.path is not None else "--pll-loss none"
        fail(f"dataset {spec.name!r} has K = {K} classes: a PLL student learns from the teacher's top-k labels, "
             f"2 <= k <= K - 1, and with K = 2 the top-2 set is every class, so 2-class data have no PLL student; "
             f"drop it with {drop} (in Python: distill(..., pll=False))", None, "pll_losses")
    if config.pll_losses and not 2 <= config.top_k <= K - 1:
        fail(f"top_k = {config.top_k} needs 2 <= top_k <= K - 1 but dataset {spec.name!r} has K = {K} classes",
             None, "top_k")


def prepare_datasets(config: ExperimentConfig) -> dict[str, dict[str, Any]]:
    """Load every dataset once: ``{name: payload}``, the input of :func:`compute_task`.

    A payload holds ``X_train, y_train, X_test, y_test`` (arrays), ``n_classes``, ``clusters``
    (class -> cluster id, for ``class_cluster`` noise; else None), ``fingerprint`` (the data's
    sha256), ``config_hash`` and ``class_names`` (and ``dataset``, the loaded
    :class:`~selfdistill.data.Dataset`). Errors are :class:`~.config.ConfigError` naming the dataset.

    Every dataset uses the train/test split ``load_dataset(features, seed=0)``, whatever the task's
    seed. The class clusters are computed once per dataset from the training features and the
    *clean* training labels (they define the noise model, like a transition matrix).

    Parameters
    ----------
    config : ExperimentConfig
        The experiment config.

    Returns
    -------
    dict of str to dict
        One payload per dataset name: ``X_train`` (n, d), ``y_train`` (n,), ``X_test`` (m, d),
        ``y_test`` (m,), ``n_classes`` K, ``clusters`` (K,) or None, ``fingerprint``,
        ``config_hash`` (:func:`task_config_hash`), ``class_names`` (K names) and ``dataset``.

    Raises
    ------
    ConfigError
        A missing feature file, an ``n_classes`` that disagrees with the data, no test points, or
        a ``top_k`` outside [2, K - 1] with PLL students.

    Examples
    --------
    >>> from selfdistill.experiments import run_config
    >>> cfg = run_config("block", noise=["symmetric"], rates=[0.3], seeds=[0], rounds=1, pll_losses=[], reg=1e-3)
    >>> data = prepare_datasets(cfg)["block"]
    >>> data["X_train"].shape, data["y_test"].shape, data["n_classes"], data["clusters"]
    ((400, 805), (400,), 4, None)
    """
    out = {}
    loaded: dict = {}  # tables on the same file (and subset) share one copy: their fits can share passes
    for spec in config.datasets:
        key = (spec.features, spec.train_subset)
        if key not in loaded:
            loaded[key] = _subset(_load(spec), spec.train_subset, spec, config)
        ds = loaded[key]

        def fail(msg, line, param, spec=spec):
            key = f"[[datasets]] {spec.name} {param}" if param not in ("top_k", "pll_losses") else f"[sweep] {param}"
            raise ConfigError(msg, path=config.path, line=line, key=key, param=param)

        _check_dataset(config, spec, ds, fail)
        clusters = None
        if "class_cluster" in config.noise:
            clusters = class_clusters(ds.X_train, ds.y_train, threshold=config.cluster_threshold,
                                      n_classes=ds.n_classes, rule=config.cluster_rule)
        fp = dataset_fingerprint(ds)
        out[spec.name] = {
            "X_train": ds.X_train, "y_train": ds.y_train, "X_test": ds.X_test, "y_test": ds.y_test,
            "n_classes": ds.n_classes, "clusters": clusters, "fingerprint": fp,
            "config_hash": task_config_hash(config, spec.name, fp), "class_names": list(ds.class_names),
            "dataset": ds,
        }
    return out


def task_labels(task: Task, config: ExperimentConfig, data: Mapping[str, Any]) -> tuple[np.ndarray, dict, int]:
    """The task's noisy training labels: ``(y_noisy (n,), noise info, noise seed)``.

    ``make_noisy_labels(y_train, task.noise, task.rate, noise_seed(task.seed, task.noise, task.rate))``
    (:func:`selfdistill.noise.make_noisy_labels`), with the dataset's class clusters for
    ``class_cluster`` noise and the config's ``exact_noise``. The warning about classes alone in
    their cluster is silenced: the realised rate says it.

    Parameters
    ----------
    task : Task
        The grid point.
    config : ExperimentConfig
        The experiment config.
    data : dict
        The dataset's payload from :func:`prepare_datasets`.

    Returns
    -------
    y_noisy : numpy.ndarray
        (n,) int noisy training labels.
    info : dict
        The noise model and the realised rates (``info["rates"]["overall"]``, per class ...).
    seed : int
        The noise seed (:func:`noise_seed`).

    Examples
    --------
    >>> from selfdistill.experiments import run_config
    >>> cfg = run_config("block", noise=["symmetric"], rates=[0.3], seeds=[0], rounds=1, pll_losses=[], reg=1e-3)
    >>> data = prepare_datasets(cfg)["block"]
    >>> y_noisy, info, seed = task_labels(cfg.tasks()[0], cfg, data)
    >>> y_noisy.shape, float((y_noisy != data["y_train"]).mean()), info["rates"]["overall"]
    ((400,), 0.29, 0.29)
    >>> seed == noise_seed(0, "symmetric", 0.3)
    True
    """
    nseed = noise_seed(task.seed, task.noise, task.rate)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # singleton clusters: the realised rate says it
        y_noisy, info = make_noisy_labels(
            data["y_train"], task.noise, task.rate, nseed,
            clusters=data["clusters"] if task.noise == "class_cluster" else None,
            exact=config.exact_noise, n_classes=data["n_classes"])
    return y_noisy, info, nseed


def label_key(task: Task, y_noisy: ArrayLike) -> str:
    """Tasks of one dataset with equal keys (same noisy labels, same seed) give equal results.

    The driver computes such tasks once (rate 0 under every noise kind gives the clean labels).

    Parameters
    ----------
    task : Task
        The grid point.
    y_noisy : array_like
        (n,) its noisy training labels (:func:`task_labels`).

    Returns
    -------
    str
        ``<dataset>:<16 hex digits of the labels' sha256>:<seed>``.

    Examples
    --------
    >>> from selfdistill.experiments import run_config
    >>> cfg = run_config("block", noise=["symmetric", "class_cluster"], rates=[0.0], seeds=[0], reg=1e-3)
    >>> data = prepare_datasets(cfg)["block"]
    >>> keys = [label_key(t, task_labels(t, cfg, data)[0]) for t in cfg.tasks()]
    >>> keys[0] == keys[1]  # rate 0: the clean labels under both noise kinds
    True
    """
    digest = hashlib.sha256(np.ascontiguousarray(y_noisy, dtype=np.int64).tobytes()).hexdigest()[:16]
    return f"{task.dataset}:{digest}:{int(task.seed)}"


@contextlib.contextmanager
def limit_blas(threads: int | None) -> Iterator[None]:
    """Limit the BLAS library to ``threads`` threads (None: leave it alone).

    A context manager (``threadpoolctl``); the setting is restored on exit.

    Parameters
    ----------
    threads : int or None
        BLAS threads inside the block; None changes nothing.

    Yields
    ------
    None
        Inside the block the limit holds.

    Examples
    --------
    >>> import numpy as np
    >>> with limit_blas(1):
    ...     float(np.ones((3, 3)) @ np.ones(3) @ np.ones(3))
    9.0
    """
    if threads is None:
        yield
        return
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency

    with threadpool_limits(limits=int(threads), user_api="blas"):
        yield


_ROUTES: dict[int, list] = {}  # thread id -> its task's warning log, while tasks run in threads
_THREADED = threading.Event()


@contextlib.contextmanager
def thread_warnings() -> Iterator[None]:
    """While tasks run in threads of one process: each warning goes to the log of the task whose
    thread raised it (``warnings.catch_warnings`` alone is process-wide, so concurrent tasks would
    mix their logs). Warnings from other threads are shown as usual."""
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        previous = warnings.showwarning

        def route(message, category, filename, lineno, file=None, line=None):
            log = _ROUTES.get(threading.get_ident())
            if log is None:
                previous(message, category, filename, lineno, file, line)
            else:
                log.append(warnings.WarningMessage(message, category, filename, lineno, file, line))

        warnings.showwarning = route
        _THREADED.set()
        try:
            yield
        finally:
            _THREADED.clear()


@contextlib.contextmanager
def _task_warnings() -> Iterator[list]:
    """The warnings one task raises (its thread's, under :func:`thread_warnings`)."""
    if not _THREADED.is_set():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield caught
        return
    log: list = []
    _ROUTES[threading.get_ident()] = log
    try:
        yield log
    finally:
        del _ROUTES[threading.get_ident()]


def _chains(task, config, data, y_noisy, reg, execution):
    """Reg per model and one :func:`distill` result per distinct reg: ``(best, chains, scores)``.

    With ``reg = "auto"`` the chain runs down the reg grid on the fit part
    (:func:`selfdistill.model_selection.reg_path`), then each distinct chosen reg is refitted on
    all the training points only as far as its models need
    (:func:`selfdistill.model_selection.refit_selected`): the same minimisers, less work.
    """
    X, y, K = data["X_train"], data["y_train"], data["n_classes"]
    spec = config.dataset(task.dataset)
    if spec.trainer == "sgd-recipe":
        from ..recipe import recipe_distill, recipe_settings

        res = recipe_distill(X, y_noisy, reg=reg, rounds=config.rounds, pll_losses=tuple(config.pll_losses),
                             top_k=config.top_k, n_classes=K, seed=task.seed, settings=recipe_settings(
                                 **dict(spec.recipe)), X_test=data["X_test"], y_test=data["y_test"], y_true=y)
        return {m["model"]: reg for m in res.metrics}, {reg: res}, None
    pll = bool(config.pll_losses)
    chain = dict(rounds=config.rounds, pll=pll, top_k=config.top_k,
                 pll_loss=tuple(config.pll_losses) if pll else "uniform", n_classes=K, **execution)
    test = dict(X_test=data["X_test"], y_test=data["y_test"], y_true=y)
    if reg != "auto":
        res = distill(X, y_noisy, reg=reg, **test, **chain)
        return {m["model"]: reg for m in res.metrics}, {reg: res}, None
    best, scores, path = reg_path(X, y_noisy, grid=config.reg_grid, val_fraction=config.val_fraction,
                                  seed=task.seed, **chain)
    chains = refit_selected(X, y_noisy, best, path, **test, **chain)
    return best, chains, scores


def _model_metrics(config, data, task, y_noisy, best, chains):
    """Metrics of the chain's models (each from its reg's chain) and of the baselines."""
    names = list(best)
    metrics = [{**chains[best[n]].metric_dict(n), "reg": float(best[n])} for n in names]
    rounds = [ModelId.round_(t).name for t in range(config.rounds + 1)]
    round_models = [chains[best[r]].models[r] for r in rounds]
    ctx = BaselineContext(X=data["X_train"], y_noisy=y_noisy, y_true=data["y_train"], X_test=data["X_test"],
                          y_test=data["y_test"], n_classes=data["n_classes"], reg=float(best[TEACHER.name]),
                          seed=task.seed, config=config, round_models=round_models)
    b_metrics, b_extra = run_baselines(config.baselines, ctx)
    for m in metrics + b_metrics:  # the row keeps the name (stored as is) and its kind
        m["kind"] = ModelId.parse(m["model"]).kind
    return metrics + b_metrics, b_extra


def compute_task(task: Task, config: ExperimentConfig, data: Mapping[str, Any], *,
                 blas_threads: int | None = 1, backend: str = "numpy", device: str | None = None,
                 dtype: str = "float64") -> dict[str, Any]:
    """Compute one task; returns its record for the store (:mod:`.store`). Pure given its inputs.

    Noisy labels (:func:`task_labels`) -> reg, fixed or chosen per model on a validation split of
    the *noisy* training labels (``reg = "auto"``) -> :func:`selfdistill.distill` per distinct
    chosen reg -> the config's baselines -> one metrics dict per model, with its gain over the
    same task's round 0. Test and clean labels are only evaluated, never used to choose. The same
    inputs give the same numbers in any process, in any order.

    Parameters
    ----------
    task : Task
        The grid point (dataset, noise, rate, seed).
    config : ExperimentConfig
        The experiment config.
    data : dict
        The dataset's payload from :func:`prepare_datasets`.
    blas_threads : int or None, default 1, keyword-only
        BLAS threads while computing (None: leave the library's setting alone).
    backend : {"numpy", "torch"}, default "numpy", keyword-only
        Where the chain's probes are fitted (the baselines run on NumPy); recorded in
        ``solver.execution``, not part of the settings hash: the same minimisers to the solver's
        tolerance, the last bits of the floats differ between backends.
    device : str or None, default None, keyword-only
        The torch device (``"cuda"``, ``"cpu"``); None is the CPU.
    dtype : {"float64", "float32"}, default "float64", keyword-only
        The solver's working precision (:func:`selfdistill.fit_linear_probe`): float32 passes over
        X with the convergence test on float64 gradients, so the same tolerance is reached; an
        execution setting like ``backend``, recorded in ``solver.execution``.

    Returns
    -------
    dict
        With task_id, dataset, noise, rate, seed, config_hash, config (the task's settings),
        metrics (one dict per model: model, kind, reg, test_acc, gain, train_acc, kept, corrected,
        agree_given, topk_coverage, realised_rate and the solver's counts), solver (chosen regs,
        validation scores, noise, baselines' records, warnings, execution), seconds, worker, library_version.

    Examples
    --------
    >>> from selfdistill.experiments import run_config
    >>> cfg = run_config("block", noise=["symmetric"], rates=[0.3], seeds=[0], rounds=1, pll_losses=[], reg=1e-3)
    >>> rec = compute_task(cfg.tasks()[0], cfg, prepare_datasets(cfg)["block"])
    >>> rec["task_id"], [(m["model"], m["kind"], m["reg"]) for m in rec["metrics"]]
    ('block/symmetric/0.3/0', [('round 0', 'round', 0.001), ('round 1', 'round', 0.001)])
    >>> rec["metrics"][0]["gain"], rec["metrics"][1]["realised_rate"]
    (0.0, 0.29)
    """
    t0 = time.perf_counter()
    spec = config.dataset(task.dataset)
    y_noisy, ninfo, nseed = task_labels(task, config, data)
    with limit_blas(blas_threads), _task_warnings() as caught:
        best, chains, scores = _chains(task, config, data, y_noisy, spec.reg,
                                       {"backend": backend, "device": device, "dtype": np.dtype(dtype)})
        metrics, b_extra = _model_metrics(config, data, task, y_noisy, best, chains)
    execution = ({"backend": backend, "device": "cpu" if device is None else str(device), "dtype": np.dtype(dtype).name}
                 if spec.trainer != "sgd-recipe" else dict(_RECIPE_EXECUTION))
    return _record(task, config, data, (ninfo, nseed), (best, scores, metrics, b_extra), caught, execution,
                   time.perf_counter() - t0)


#: Where the recipe trains whatever the run's backend: NumPy, float32 (the authors' GPU precision).
_RECIPE_EXECUTION = {"backend": "numpy", "device": "cpu", "dtype": "float32"}


def compute_recipe_tasks(tasks: Sequence[Task], config: ExperimentConfig, data: Mapping[str, Any], *,
                         blas_threads: int | None = 1) -> list[dict[str, Any]]:
    """Compute tasks of one ``trainer = "sgd-recipe"`` dataset and one seed together: their chains
    train in lockstep (:func:`selfdistill.recipe.recipe_distills`: one minibatch order serves them
    all, each step's products cover every task). Each record is the one :func:`compute_task` makes,
    up to float32 round-off of the wider products; ``seconds`` is the group's time over its size.

    Parameters
    ----------
    tasks : sequence of Task
        Tasks of one recipe dataset and one seed.
    config, data, blas_threads
        As :func:`compute_task`.

    Returns
    -------
    list of dict
        One record per task, in order.

    Examples
    --------
    >>> from selfdistill.experiments.config import parse_sweep_config
    >>> cfg = parse_sweep_config({"sweep": {"noise": ["symmetric"], "rates": [0.0, 0.3], "seeds": [0], "rounds": 1,
    ...     "pll_losses": []}, "datasets": [{"name": "b", "features": "block", "reg": 1e-3, "trainer": "sgd-recipe",
    ...     "recipe_epochs": 2}]})
    >>> recs = compute_recipe_tasks(cfg.tasks(), cfg, prepare_datasets(cfg)["b"])
    >>> [r["task_id"] for r in recs], recs[0]["solver"]["execution"]["dtype"]
    (['b/symmetric/0.0/0', 'b/symmetric/0.3/0'], 'float32')
    """
    from ..recipe import recipe_distills, recipe_settings

    t0 = time.perf_counter()
    if not tasks:
        return []
    spec = config.dataset(tasks[0].dataset)
    if spec.trainer != "sgd-recipe" or len({(t.dataset, t.seed) for t in tasks}) != 1:
        raise ValueError(f"tasks must share one sgd-recipe dataset and one seed, got {[t.task_id for t in tasks]}")
    labels = [task_labels(t, config, data) for t in tasks]
    X, y, K = data["X_train"], data["y_train"], data["n_classes"]
    with limit_blas(blas_threads), _task_warnings() as caught:
        results = recipe_distills(X, [lab[0] for lab in labels], reg=spec.reg, rounds=config.rounds,
                                  pll_losses=tuple(config.pll_losses), top_k=config.top_k, n_classes=K,
                                  seed=tasks[0].seed, settings=recipe_settings(**dict(spec.recipe)),
                                  X_test=data["X_test"], y_test=data["y_test"], y_true=y)
        done = []
        for task, (y_noisy, _, _), res in zip(tasks, labels, results, strict=True):
            best = {m["model"]: spec.reg for m in res.metrics}
            done.append((best, *_model_metrics(config, data, task, y_noisy, best, {spec.reg: res})))
    execution = dict(_RECIPE_EXECUTION)
    seconds = (time.perf_counter() - t0) / len(tasks)
    return [_record(task, config, data, (ninfo, nseed), (best, None, metrics, b_extra), caught, execution, seconds)
            for task, (_, ninfo, nseed), (best, metrics, b_extra) in zip(tasks, labels, done, strict=True)]


def _record(task, config, data, noise, result, caught, execution, seconds):
    """A task's record for the store (:func:`compute_task` says what it holds)."""
    ninfo, nseed = noise
    best, scores, metrics, b_extra = result
    base = metrics[0]["test_acc"]
    realised = float(ninfo["rates"]["overall"])
    for m in metrics:
        m.update(gain=m["test_acc"] - base, realised_rate=realised)
    return {
        "task_id": task.task_id, "dataset": task.dataset, "noise": task.noise, "rate": float(task.rate),
        "seed": int(task.seed), "config_hash": data["config_hash"],
        "config": {**config.task_settings(task.dataset), "noise_seed": nseed, "dataset_sha256": data["fingerprint"]},
        "metrics": metrics,
        "solver": {
            "chosen_reg": {k: float(v) for k, v in best.items()},
            "reg_scores": None if scores is None else
            {name: {repr(float(r)): v for r, v in sc.items()} for name, sc in scores.items()},
            "noise": {"seed": nseed, "realised_rate": realised, "per_class": ninfo["rates"]["per_class"]},
            "baselines": b_extra,
            "warnings": list(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught)),
            "execution": execution,
        },
        "seconds": seconds,
        "worker": f"{socket.gethostname()}:{os.getpid()}",
        "library_version": __version__,
    }
