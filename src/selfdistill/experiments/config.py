"""The one experiment config: a grid of tasks, validated declaratively in one place.

``selfdistill sweep CONFIG.toml`` reads it from a TOML file; ``selfdistill run`` builds the same
document from its options (:func:`run_config`): a run *is* a sweep of one dataset. A config
(examples in ``configs/``)::

    [sweep]
    noise = ["class_cluster"]          # noise kinds (selfdistill.noise.NOISE_KINDS)
    rates = [0.0, 0.1, 0.3, 0.5]       # noise rates in [0, 1]
    seeds = [0, 1, 2]                  # label-noise (and reg-selection split) seeds
    rounds = 4                         # SD rounds after the teacher: models round 0..rounds
    pll_losses = ["uniform"]           # one PLL student per loss; [] for none
    top_k = 2                          # candidate-set size of the PLL students
    baselines = ["label_smoothing", "born_again"]   # see BASELINES
    # optional: exact_noise, cluster_rule ("library" or "authors"), cluster_threshold
    #           (default 0.7 / 0.8 by rule), reg_grid, val_fraction, label_smoothing, cleanlab_folds

    [[datasets]]                       # one table per dataset
    name = "digits"                    # a short unique name (used in task ids and reports)
    features = "digits"                # "digits", "block" or an .npz path (relative to this file)
    reg = 1e-3                         # a number > 0, or "auto"
    n_classes = 10                     # optional: checked against the feature file

Keys left out take the defaults of :class:`ExperimentConfig`, which are those of
``selfdistill run``.

Rules:

* Every key is checked against one table of constraints (:data:`SWEEP_CONSTRAINTS`,
  :data:`DATASET_CONSTRAINTS`, in the manner of scikit-learn's ``_parameter_constraints``): an
  unknown key, a value of the wrong type or out of range, or an empty grid is a
  :class:`ConfigError` naming the key (``[sweep] rates``, ``[[datasets]] #2 reg``), and, for a
  file, starting with ``FILE:LINE:``. ``param`` holds the bare key, which the CLI maps to its
  option (``rates`` -> ``--rates``).
* ``reg = "auto"`` chooses reg per model on a stratified validation split (``val_fraction``)
  of the *noisy* training labels, over ``reg_grid`` (see :data:`REG_RULE`); the test set is
  never used to choose anything.
* The grid is datasets x noise x rates x seeds; each point is one :class:`Task`, computed
  independently (any order, any machine) and identified by :attr:`Task.task_id`.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib as _toml
else:  # pragma: no cover - Python 3.10: the 'tomli' backport
    import tomli as _toml

from .._validation import ArrayOf, Boolean, Integer, OneOf, Real, Reg, String, type_name
from .._validation import BadValueError as _BadValueError
from ..distill import PLL_LOSSES, pll_model_names
from ..models import ModelId
from ..noise import CLUSTER_RULES, CLUSTER_THRESHOLDS, NOISE_KINDS
from .baselines import BASELINES, baseline_model_name

__all__ = [
    "ExperimentConfig",
    "SweepConfig",
    "DatasetSpec",
    "Task",
    "ConfigError",
    "SweepConfigError",
    "BASELINES",
    "REG_GRID",
    "REG_RULE",
    "SWEEP_CONSTRAINTS",
    "DATASET_CONSTRAINTS",
    "load_sweep_config",
    "parse_sweep_config",
    "run_config",
]

#: The default reg grid of ``reg = "auto"`` (the ``reg_grid`` setting; coarser than
#: :data:`selfdistill.model_selection.DEFAULT_REG_GRID`, which the single-model helpers use, because
#: each value costs a whole chain per task).
REG_GRID = (1e-1, 1e-2, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5)

#: The rule behind ``reg = "auto"`` (also in ``selfdistill run --help``).
REG_RULE = (
    "'auto': each model gets its own reg. For each task, run the whole chain for every reg of the grid ("
    "default {" + ", ".join(f"{r:g}" for r in REG_GRID) + "}) on a stratified 80% (1 - val_fraction) of the "
    "noisy training labels; each model (round t, each PLL student) keeps the reg with the best accuracy on the "
    "other 20% of the noisy labels (ties: the larger reg; split seeded by the task's seed); the chains are then "
    "refitted on all the training data with the chosen regs. Clean and test labels are never used."
)

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
#: The largest seed: scikit-learn's ``random_state`` (the reg-selection split, the baselines' folds)
#: takes integers in [0, 2**32 - 1].
MAX_SEED = 2**32 - 1


class ConfigError(ValueError):
    """An invalid config value, with where it is: file, line, key.

    The attributes ``path``, ``line`` (1-based or None), ``key`` (as shown) and ``param`` (the
    bare key, e.g. ``"rates"``) say where; ``reason`` is the message alone. The text is
    ``FILE:LINE: KEY: MESSAGE`` (the parts known).

    Parameters
    ----------
    message : str
        What is wrong and what was expected (kept as ``reason``).
    path : str or os.PathLike or None, default None, keyword-only
        The config file, if the config came from one.
    line : int or None, default None, keyword-only
        The 1-based line of the key (or of its table) in ``path``.
    key : str or None, default None, keyword-only
        The key as shown to the user, e.g. ``"[sweep] rates"`` or ``"[[datasets]] #2 reg"``.
    param : str or None, default None, keyword-only
        The bare key, e.g. ``"rates"``, which the CLI maps to its option (``--rates``).

    Examples
    --------
    >>> try:
    ...     run_config("block", rates=[1.5])
    ... except ConfigError as exc:
    ...     print(exc.param, "|", exc.key, "|", exc)
    rates | [sweep] rates | [sweep] rates: expected numbers in [0, 1], got a number 1.5
    >>> str(ConfigError("no such config file", path="sweep.toml"))
    'sweep.toml: no such config file'
    """

    # ``param`` is str or None; typed Any so that callers can look it up in their option tables
    # (``dict.get``) without a cast
    param: Any

    def __init__(self, message: str, *, path: str | os.PathLike[str] | None = None, line: int | None = None,
                 key: str | None = None, param: str | None = None) -> None:
        self.path, self.line, self.key, self.reason, self.param = path, line, key, message, param
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line else f"{path}: "
        super().__init__(f"{where}{key + ': ' if key else ''}{message}")


#: The name the sweep code used (kept: the same class).
SweepConfigError = ConfigError


# ------------------------------------------------------------------------------ constraints
# The constraint types live in selfdistill._validation (the Python API, the estimator and the CLI use
# the same ones); a config reports a failing value as ``expected ..., got ...`` with its key and line.


#: The trainers of a dataset's probes: the exact solver, or the authors' SGD recipe (a labelled baseline).
TRAINERS = ("exact", "sgd-recipe")
#: The recipe's checkpoint rule: the last epoch, or the epoch with the best test accuracy (the authors').
RECIPE_SELECT = ("last-epoch", "best-test")


#: Every ``[sweep]`` key and its constraint.
SWEEP_CONSTRAINTS = {
    "name": String(),
    "noise": ArrayOf(OneOf(NOISE_KINDS, "noise kind"), "noise kinds"),
    "rates": ArrayOf(Real(0.0, 1.0), "numbers in [0, 1]", order="ascending"),
    "seeds": ArrayOf(Integer(0, MAX_SEED), "integers >= 0"),
    "rounds": Integer(0),
    "pll_losses": ArrayOf(OneOf(PLL_LOSSES, "PLL loss", ", or [] for none"), "PLL losses", allow_empty=True),
    "top_k": Integer(2),
    "baselines": ArrayOf(OneOf(tuple(BASELINES), "baseline", "; the SD rounds and the PLL students are set by "
                                                              "'rounds' and 'pll_losses'"),
                         "baseline names", allow_empty=True),
    "exact_noise": Boolean(),
    "cluster_rule": OneOf(CLUSTER_RULES, hint=" (see selfdistill.noise.class_clusters)"),
    "cluster_threshold": Real(0.0, 1.0),
    "reg_grid": ArrayOf(Real(0.0, closed="neither"), "numbers > 0", order="descending"),
    "val_fraction": Real(0.0, 1.0, closed="neither"),
    "label_smoothing": Real(0.0, 1.0, closed="neither"),
    "cleanlab_folds": Integer(2),
}

#: Every ``[[datasets]]`` key and its constraint (``features`` is checked by :func:`_features`).
DATASET_CONSTRAINTS = {
    "name": String(_NAME_RE, "a name of letters, digits, '_', '-', '.'"),
    "features": None,
    "reg": Reg(),
    "n_classes": Integer(2),
    "train_subset": Integer(2),
    "trainer": OneOf(TRAINERS, hint=" (exact: the exact optimum; sgd-recipe: the authors' SGD recipe)"),
    "recipe_select": OneOf(RECIPE_SELECT, hint=" (best-test chooses checkpoints on test labels, as the authors' "
                                               "code does; a labelled baseline only)"),
    "recipe_epochs": Integer(1),
    "recipe_batch_size": Integer(1),
    "recipe_lr": Real(0.0, closed="neither"),
    "recipe_momentum": Real(0.0, 1.0, closed="left"),
    "recipe_lr_decay": Real(0.0, 1.0, closed="neither"),
}
_DATASET_REQUIRED = ("name", "features", "reg")
_RECIPE_KEYS = ("recipe_select", "recipe_epochs", "recipe_batch_size", "recipe_lr", "recipe_momentum",
                "recipe_lr_decay")


# ------------------------------------------------------------------------------ the config
@dataclass(frozen=True)
class DatasetSpec:
    """One ``[[datasets]]`` table: ``features`` is resolved (a name or an absolute path).

    Made by :func:`parse_sweep_config`, which validates every value; the class itself checks
    nothing.

    Parameters
    ----------
    name : str
        A short unique name (letters, digits, ``_``, ``-``, ``.``), used in task ids and reports.
    features : str
        An embedded dataset's name (``"digits"``, ``"block"``) or the absolute path of an
        ``.npz`` feature file.
    reg : float or str
        The L2 regularisation of every probe, a number > 0, or ``"auto"`` (chosen per model on the
        noisy labels, see :data:`REG_RULE`).
    n_classes : int or None, default None
        The class count the config asserts (checked against the data when it is loaded).
    line : int or None, default None
        The line where the table starts in the config file (for error messages).
    n_classes_line : int or None, default None
        The line of the ``n_classes`` key (for error messages).
    train_subset : int or None, default None
        Keep a stratified subset of this many training points (seed 0; the test set is whole).
    trainer : str, default "exact"
        ``"exact"`` (the exact optimum) or ``"sgd-recipe"`` (the authors' SGD recipe,
        :mod:`selfdistill.recipe`).
    recipe : tuple of (str, value), default ()
        The recipe's settings that differ from :data:`selfdistill.recipe.RECIPE_DEFAULTS`
        (``select``, ``epochs``, ``batch_size``, ``lr``, ``momentum``, ``lr_decay``).

    Examples
    --------
    >>> cfg = run_config("block", reg=1e-3)
    >>> cfg.datasets[0]
    DatasetSpec(name='block', features='block', reg=0.001, n_classes=None, line=None, n_classes_line=None, \
train_subset=None, trainer='exact', recipe=())
    """

    name: str
    features: str
    reg: float | str  # float > 0 or "auto"
    n_classes: int | None = None
    line: int | None = None  # where the table starts (for error messages)
    n_classes_line: int | None = None
    train_subset: int | None = None
    trainer: str = "exact"
    recipe: tuple = ()

    def settings(self) -> dict[str, Any]:
        """What of this table changes a task's result beyond reg: the subset, the trainer and
        the recipe's settings, each only when not the default (so older stores keep their hashes).

        Returns
        -------
        dict
            Some of ``train_subset``, ``trainer`` and ``recipe`` (the full recipe settings).

        Examples
        --------
        >>> DatasetSpec(name="b", features="block", reg=1e-3).settings()
        {}
        >>> DatasetSpec(name="b", features="block", reg=1e-3, trainer="sgd-recipe").settings()["recipe"]["select"]
        'last-epoch'
        """
        from ..recipe import recipe_settings

        out: dict[str, Any] = {}
        if self.train_subset is not None:
            out["train_subset"] = self.train_subset
        if self.trainer != "exact":
            out["trainer"] = self.trainer
            out["recipe"] = recipe_settings(**dict(self.recipe))
        return out


@dataclass(frozen=True)
class Task:
    """One grid point: a dataset, a noise kind, a noise rate and a seed.

    A task is computed independently of every other (any order, any machine) by
    :func:`~selfdistill.experiments.runner.compute_task`, and stored as one row of the results
    database under :attr:`task_id`.

    Parameters
    ----------
    dataset : str
        The dataset's name (``[[datasets]] name``).
    noise : str
        The noise kind (one of :data:`selfdistill.noise.NOISE_KINDS`).
    rate : float
        The nominal noise rate, in [0, 1].
    seed : int
        The seed of the label noise and of the reg-selection split (not of the train/test split,
        which is the same for every seed).

    Examples
    --------
    >>> t = Task("digits", "symmetric", 0.3, 0)
    >>> t.task_id
    'digits/symmetric/0.3/0'
    """

    dataset: str
    noise: str
    rate: float
    seed: int

    @property
    def task_id(self) -> str:
        """The task's key in the store: ``<dataset>/<noise>/<rate repr>/<seed>``.

        Returns
        -------
        str
            E.g. ``digits/symmetric/0.3/0``; the rate is written with :func:`repr` of a float, so
            ``0`` and ``0.0`` give the same id.

        Examples
        --------
        >>> Task("digits", "class_cluster", 0, 2).task_id
        'digits/class_cluster/0.0/2'
        """
        return f"{self.dataset}/{self.noise}/{float(self.rate)!r}/{int(self.seed)}"


@dataclass(frozen=True)
class ExperimentConfig:
    """A validated experiment config (see the module docstring for every key).

    Build it with :func:`load_sweep_config` (a TOML file), :func:`parse_sweep_config` (a parsed
    document) or :func:`run_config` (``selfdistill run``'s options); the defaults below are
    ``selfdistill run``'s. Those three validate every value; the constructor itself checks
    nothing. The grid is datasets x noise x rates x seeds (:meth:`tasks`); every other field is
    the same for every task.

    Parameters
    ----------
    datasets : tuple of DatasetSpec
        The ``[[datasets]]`` tables, at least one, names unique.
    noise : tuple of str, default ("symmetric", "class_cluster")
        Noise kinds (:data:`selfdistill.noise.NOISE_KINDS`).
    rates : tuple of float, default (0.0, 0.3, 0.5, 0.7)
        Nominal noise rates in [0, 1], ascending.
    seeds : tuple of int, default (0, 1, 2)
        Label-noise (and reg-selection split) seeds, in [0, 2**32 - 1].
    rounds : int, default 4
        SD rounds after the teacher: the models are round 0 (the teacher) .. round ``rounds``.
    pll_losses : tuple of str, default ("uniform", "candidate", "gce")
        One PLL student per loss (:data:`selfdistill.distill.PLL_LOSSES`); ``()`` for none.
    top_k : int, default 2
        Candidate-set size of the PLL students (2 <= top_k <= K - 1, checked per dataset).
    baselines : tuple of str, default ()
        Baselines beside the chain (keys of :data:`~selfdistill.experiments.baselines.BASELINES`).
    exact_noise : bool, default False
        Flip exactly the nominal share of each class's labels (up to rounding) instead of each
        label independently (``exact`` of :func:`selfdistill.noise.corrupt_labels`).
    cluster_threshold : float, default 0.7
        Correlation threshold of the class clusters of ``class_cluster`` noise
        (:data:`selfdistill.noise.CLUSTER_THRESHOLDS` of ``cluster_rule`` when a config omits it).
    cluster_rule : str, default "library"
        How class clusters are formed: ``"library"`` or ``"authors"``
        (:func:`selfdistill.noise.class_clusters`).
    reg_grid : tuple of float, default REG_GRID
        The reg grid of ``reg = "auto"``, descending.
    val_fraction : float, default 0.2
        The validation fraction of the noisy training labels used to choose reg.
    label_smoothing : float, default 0.1
        ``eps`` of the label-smoothing baseline.
    cleanlab_folds : int, default 5
        Cross-validation folds of the cleanlab baseline.
    name : str, default "sweep"
        The sweep's name (reports).
    path : str or None, default None
        The config file it was read from (not compared: two equal configs from two files are
        equal).

    Examples
    --------
    >>> cfg = run_config("block", noise=["symmetric"], rates=[0.0, 0.3], seeds=[0], rounds=1,
    ...                  pll_losses=[], reg=1e-3)
    >>> cfg.rates, cfg.rounds, cfg.datasets[0].reg
    ((0.0, 0.3), 1, 0.001)
    >>> ExperimentConfig(datasets=cfg.datasets).rounds  # the defaults of selfdistill run
    4
    """

    datasets: tuple[DatasetSpec, ...]
    noise: tuple[str, ...] = ("symmetric", "class_cluster")
    rates: tuple[float, ...] = (0.0, 0.3, 0.5, 0.7)
    seeds: tuple[int, ...] = (0, 1, 2)
    rounds: int = 4
    pll_losses: tuple[str, ...] = ("uniform", "candidate", "gce")
    top_k: int = 2
    baselines: tuple[str, ...] = ()
    exact_noise: bool = False
    cluster_threshold: float = 0.7
    cluster_rule: str = "library"
    reg_grid: tuple[float, ...] = REG_GRID
    val_fraction: float = 0.2
    label_smoothing: float = 0.1
    cleanlab_folds: int = 5
    name: str = "sweep"
    path: str | None = field(default=None, compare=False)

    def tasks(self) -> list[Task]:
        """The grid of tasks: datasets x noise kinds x rates x seeds.

        Returns
        -------
        list of Task
            ``len(datasets) * len(noise) * len(rates) * len(seeds)`` tasks, dataset outermost, then
            noise, rate, seed (each in the config's order).

        Examples
        --------
        >>> cfg = run_config("block", noise=["symmetric", "class_cluster"], rates=[0.0, 0.5], seeds=[0])
        >>> [t.task_id for t in cfg.tasks()]  # doctest: +NORMALIZE_WHITESPACE
        ['block/symmetric/0.0/0', 'block/symmetric/0.5/0', 'block/class_cluster/0.0/0',
         'block/class_cluster/0.5/0']
        """
        return [
            Task(ds.name, k, r, s) for ds in self.datasets for k in self.noise for r in self.rates for s in self.seeds
        ]

    def dataset(self, name: str) -> DatasetSpec:
        """The ``[[datasets]]`` table called ``name``.

        Parameters
        ----------
        name : str
            A dataset name of the config.

        Returns
        -------
        DatasetSpec
            Its table.

        Raises
        ------
        StopIteration
            When no dataset has that name.

        Examples
        --------
        >>> run_config("block", reg=1e-3).dataset("block").reg
        0.001
        """
        return next(ds for ds in self.datasets if ds.name == name)

    def model_names(self) -> list[str]:
        """The model names of every task, in row order: rounds, PLL students, baselines.

        Returns
        -------
        list of str
            ``"round 0"`` (the teacher) .. ``"round R"``, then one ``"pll-<loss>"`` per PLL loss,
            then one name per baseline
            (:func:`~selfdistill.experiments.baselines.baseline_model_name`).

        Examples
        --------
        >>> run_config("block", rounds=2, pll_losses=["uniform"], baselines=["born_again"]).model_names()
        ['round 0', 'round 1', 'round 2', 'pll-uniform', 'born-again ensemble']
        """
        names = [ModelId.round_(t).name for t in range(self.rounds + 1)]
        names += pll_model_names(tuple(self.pll_losses)) if self.pll_losses else []
        return names + [baseline_model_name(b, self) for b in self.baselines]

    def task_settings(self, dataset: str) -> dict[str, Any]:
        """Everything that changes the result of a task of ``dataset``, except the grid axes.

        The input of :func:`~selfdistill.experiments.runner.task_config_hash` (a stored task with
        another hash is recomputed) and the ``config`` of each stored task.

        Parameters
        ----------
        dataset : str
            A dataset name of the config.

        Returns
        -------
        dict
            Every field but ``datasets``, ``noise``, ``rates``, ``seeds``, ``name`` and ``path``,
            plus the dataset's ``reg``; JSON types (tuples as lists).

        Examples
        --------
        >>> s = run_config("block", rounds=1, pll_losses=[], reg=1e-3).task_settings("block")
        >>> s["rounds"], s["pll_losses"], s["reg"], "rates" in s
        (1, [], 0.001, False)
        """
        ds = self.dataset(dataset)
        d = {k: v for k, v in asdict(self).items() if k not in ("datasets", "noise", "rates", "seeds", "name", "path")}
        d["reg"] = ds.reg
        d.update(ds.settings())
        return _jsonable(d)

    def to_dict(self) -> dict[str, Any]:
        """The whole config as JSON types (stored in the results database and ``config.json``).

        Returns
        -------
        dict
            Every field, tuples as lists, each dataset as a dict without its line numbers.

        Examples
        --------
        >>> d = run_config("block", rates=[0.5], reg=1e-3).to_dict()
        >>> d["datasets"], d["rates"]
        ([{'name': 'block', 'features': 'block', 'reg': 0.001, 'n_classes': None}], [0.5])
        """
        d = _jsonable(asdict(self))
        for ds in d["datasets"]:
            ds.pop("line", None)
            ds.pop("n_classes_line", None)
            for key, default in (("train_subset", None), ("trainer", "exact")):
                if ds.get(key) == default:
                    ds.pop(key)
            ds.update({f"recipe_{k}": val for k, val in ds.pop("recipe", [])})  # the TOML keys again
        return d


#: The name the sweep code used (kept: the same class).
SweepConfig = ExperimentConfig


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


# ------------------------------------------------------------------------------ line finder
_HEADER_RE = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY_RE = re.compile(r"""^\s*(?:"([^"]+)"|'([^']+)'|([A-Za-z0-9_\-]+))\s*=""")


def _index_lines(text: str) -> dict:
    """Map (table, array index or None, key) -> 1-based line; key None: the table header.

    Understands the subset of TOML a config uses: ``[table]``, ``[[array]]`` and ``key = ...``
    lines (multi-line arrays are fine: only the line with the key is recorded).
    """
    where: dict = {}
    table, index = None, None
    counts: dict = {}
    depth = 0  # inside a multi-line array or inline table: lines are values, not keys
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = _strip_comment(line)
        if depth == 0:
            m = _HEADER_RE.match(stripped)
            if m:
                table = m.group(2).strip().strip('"')
                index = counts.get(table, 0) if m.group(1) == "[[" else None
                if index is not None:
                    counts[table] = index + 1
                where.setdefault((table, index, None), lineno)
                continue
            k = _KEY_RE.match(line)
            if k:
                where.setdefault((table, index, k.group(1) or k.group(2) or k.group(3)), lineno)
        depth = max(depth + stripped.count("[") + stripped.count("{") - stripped.count("]") - stripped.count("}"), 0)
    return where


def _strip_comment(line: str) -> str:
    out, quote = [], None
    for ch in line:
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            break
        out.append(ch)
    # strings may contain brackets: drop their content before counting
    return re.sub(r"\"[^\"]*\"|'[^']*'", '""', "".join(out))


class _Checker:
    """Raises :class:`ConfigError` with the key's label and (for a file) its line."""

    def __init__(self, path, text):
        self.path = path
        self.lines = _index_lines(text) if text is not None else {}

    def fail(self, message, table, key=None, index=None):
        line = self.lines.get((table, index, key)) or self.lines.get((table, index, None))
        if table is None:
            label = key
        elif index is not None:
            label = f"[[{table}]] #{index + 1}" + (f" {key}" if key else "")
        else:
            label = f"[{table}]" + (f" {key}" if key else "")
        raise ConfigError(message, path=self.path, line=line, key=label, param=key)

    def check(self, constraint, value, table, key, index=None):
        try:
            return constraint(value)
        except _BadValueError as exc:
            self.fail(str(exc), table, key, index)


# ------------------------------------------------------------------------------ parsing
def parse_sweep_config(data: dict[str, Any], *, path: str | os.PathLike[str] | None = None,
                       text: str | None = None, base: str | os.PathLike[str] | None = None) -> ExperimentConfig:
    """Validate a parsed config document (``text``: its TOML source, for line numbers).

    Relative feature paths are relative to ``base`` (default: the config file's folder, or the
    current folder without a file). Every key is checked against :data:`SWEEP_CONSTRAINTS` and
    :data:`DATASET_CONSTRAINTS`; keys left out take the defaults of :class:`ExperimentConfig`,
    except ``cluster_threshold``, whose default is that of ``cluster_rule``
    (:data:`selfdistill.noise.CLUSTER_THRESHOLDS`). Repeated grid values are dropped; ``rates``
    are sorted ascending and ``reg_grid`` descending. Feature files are not opened here (see
    :func:`~selfdistill.experiments.runner.prepare_datasets`).

    Parameters
    ----------
    data : dict
        The document: a ``"sweep"`` table (optional) and a ``"datasets"`` array of tables.
    path : str or os.PathLike or None, default None, keyword-only
        The file it was read from, named in errors and kept as :attr:`ExperimentConfig.path`.
    text : str or None, default None, keyword-only
        The file's TOML source, to give errors a line number.
    base : str or os.PathLike or None, default None, keyword-only
        The folder relative feature paths are resolved against.

    Returns
    -------
    ExperimentConfig
        The validated config.

    Raises
    ------
    ConfigError
        For an unknown key, a value of the wrong type or out of range, an empty grid, a missing
        or duplicate dataset, naming the key (``[sweep] rates``, ``[[datasets]] #2 reg``).

    Examples
    --------
    >>> doc = {"sweep": {"noise": ["symmetric"], "rates": [0.5, 0.0, 0.5], "seeds": [0], "rounds": 1,
    ...                  "pll_losses": []},
    ...        "datasets": [{"name": "b", "features": "block", "reg": 1e-3}]}
    >>> cfg = parse_sweep_config(doc)
    >>> cfg.rates  # repeats dropped, ascending
    (0.0, 0.5)
    >>> [t.task_id for t in cfg.tasks()]
    ['b/symmetric/0.0/0', 'b/symmetric/0.5/0']
    >>> parse_sweep_config({"sweep": {"cluster_rule": "authors"}, "datasets": doc["datasets"]}).cluster_threshold
    0.8
    >>> parse_sweep_config({"datasets": [{"name": "b", "features": "block", "reg": 0}]})
    Traceback (most recent call last):
    ...
    selfdistill.experiments.config.ConfigError: [[datasets]] #1 reg: expected a number > 0 or "auto", got an integer 0
    """
    ck = _Checker(path, text)
    base = Path(base) if base is not None else (Path(path).resolve().parent if path is not None else Path.cwd())
    for key in data:
        if key not in ("sweep", "datasets"):
            _unknown_top(ck, key, data[key])
    sweep = data.get("sweep", {})
    if not isinstance(sweep, dict):
        ck.fail(f"expected a table [sweep], got {type_name(sweep)}", None, "sweep")
    kw = {}
    for key, value in sweep.items():
        if key not in SWEEP_CONSTRAINTS:
            ck.fail(f"unknown key (allowed: {', '.join(sorted(SWEEP_CONSTRAINTS))})", "sweep", key)
        kw[key] = ck.check(SWEEP_CONSTRAINTS[key], value, "sweep", key)
    kw["datasets"] = _parse_datasets(ck, data, base)
    kw.setdefault("cluster_threshold", CLUSTER_THRESHOLDS[kw.get("cluster_rule", "library")])
    return ExperimentConfig(path=None if path is None else str(path), **kw)


def _parse_datasets(ck, data, base) -> tuple:
    if "datasets" not in data:
        ck.fail("no [[datasets]] table: name at least one dataset", None, "datasets")
    raw = data["datasets"]
    if not isinstance(raw, list) or not all(isinstance(d, dict) for d in raw):
        ck.fail("expected [[datasets]] tables (an array of tables)", None, "datasets")
    if not raw:
        ck.fail("empty grid: give at least one [[datasets]] table", None, "datasets")
    specs, seen = [], set()
    for i, d in enumerate(raw):
        for key in d:
            if key not in DATASET_CONSTRAINTS:
                ck.fail(f"unknown key (allowed: {', '.join(sorted(DATASET_CONSTRAINTS))})", "datasets", key, i)
        for key in _DATASET_REQUIRED:
            if key not in d:
                ck.fail(f"missing key {key!r}", "datasets", None, i)
        v = {k: ck.check(DATASET_CONSTRAINTS[k], d[k], "datasets", k, i)
             for k in DATASET_CONSTRAINTS if k in d and k != "features"}
        if v["name"] in seen:
            ck.fail(f"duplicate dataset name {v['name']!r}", "datasets", "name", i)
        seen.add(v["name"])
        trainer = v.get("trainer", "exact")
        recipe = tuple((k[len("recipe_"):], v[k]) for k in _RECIPE_KEYS if k in v)
        if recipe and trainer != "sgd-recipe":
            ck.fail(f"{recipe[0][0]!r} applies to trainer = \"sgd-recipe\" only (this table's trainer is "
                    f"{trainer!r})", "datasets", "recipe_" + recipe[0][0], i)
        if trainer == "sgd-recipe" and v["reg"] == "auto":
            ck.fail("trainer = \"sgd-recipe\" trains at a fixed weight decay: give a number for reg (the "
                    "recipe's weight decay), not \"auto\"", "datasets", "reg", i)
        feats = _features(ck, d["features"], base, i)
        specs.append(DatasetSpec(name=v["name"], features=feats, reg=v["reg"], n_classes=v.get("n_classes"),
                                 line=ck.lines.get(("datasets", i, None)),
                                 n_classes_line=ck.lines.get(("datasets", i, "n_classes")),
                                 train_subset=v.get("train_subset"), trainer=trainer, recipe=recipe))
    return tuple(specs)


def _features(ck, feats, base, i) -> str:
    """An embedded dataset's name, or an .npz path made absolute (relative to ``base``)."""
    from ..data import DATASETS

    if isinstance(feats, os.PathLike):
        feats = os.fspath(feats)
    if not isinstance(feats, str) or not feats:
        ck.fail(f"expected a string ('digits', 'block' or an .npz path), got {feats!r}", "datasets", "features", i)
    if feats in DATASETS:
        return feats
    if not feats.lower().endswith(".npz"):
        ck.fail(f"unknown dataset {feats!r}: expected one of {list(DATASETS)} or the path of an .npz "
                "feature file (see 'selfdistill extract')", "datasets", "features", i)
    p = Path(os.path.expanduser(feats))
    return str(p if p.is_absolute() else (base / p))


def _unknown_top(ck, key, value):
    if isinstance(value, dict) or (isinstance(value, list) and value and all(isinstance(v, dict) for v in value)):
        ck.fail("unknown table (expected [sweep] and [[datasets]])", key)
    ck.fail("unknown key at the top level (keys belong in [sweep] or [[datasets]])", None, key)


def load_sweep_config(path: str | os.PathLike[str]) -> ExperimentConfig:
    """Read and validate a TOML config; errors are :class:`ConfigError` (``FILE:LINE: key: ...``).

    The config of ``selfdistill sweep CONFIG.toml`` (see the module docstring for its keys);
    relative feature paths are relative to the file's folder.

    Parameters
    ----------
    path : str or os.PathLike
        The TOML file (UTF-8).

    Returns
    -------
    ExperimentConfig
        The validated config, ``path`` recorded.

    Raises
    ------
    ConfigError
        A missing file, text that is not UTF-8 or not TOML, or an invalid value
        (:func:`parse_sweep_config`), with the file and, where known, the line.

    Examples
    --------
    >>> import os, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = os.path.join(tmp.name, "sweep.toml")
    >>> with open(path, "w") as fh:
    ...     _ = fh.write('''
    ... [sweep]
    ... noise = ["symmetric"]
    ... rates = [0.0, 0.3]
    ... seeds = [0]
    ...
    ... [[datasets]]
    ... name = "b"
    ... features = "block"
    ... reg = "auto"
    ... ''')
    >>> cfg = load_sweep_config(path)
    >>> len(cfg.tasks()), cfg.datasets[0].reg, cfg.path == path
    (2, 'auto', True)
    >>> with open(path, "a") as fh:
    ...     print("top_k = 1", file=fh)
    >>> try:
    ...     load_sweep_config(path)
    ... except ConfigError as exc:
    ...     print(exc.line, exc.key, "|", exc.reason)  # doctest: +ELLIPSIS
    11 [[datasets]] #1 top_k | unknown key (allowed: features, n_classes, name, recipe_batch_size, ...)
    >>> tmp.cleanup()
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise ConfigError("no such config file", path=path) from None
    try:
        text = raw.decode("utf-8")
        data = _toml.loads(text)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text: {exc}", path=path) from None
    except _toml.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise ConfigError(f"invalid TOML: {exc}", path=path, line=int(m.group(1)) if m else None) from None
    return parse_sweep_config(data, path=path, text=text)


def run_config(dataset: str | os.PathLike[str] = "digits", *, name: str | None = None, reg: float | str = "auto",
               **sweep: Any) -> ExperimentConfig:
    """The config of ``selfdistill run``: one dataset, the other options as ``[sweep]`` keys.

    ``run_config("digits", rates=(0.0, 0.5), reg=1e-3)`` is the config of
    ``selfdistill run --dataset digits --rates 0 0.5 --reg 1e-3`` and of the TOML file with
    ``[sweep] rates = [0.0, 0.5]`` and one ``[[datasets]]`` table (``name``, default: the file
    stem or the embedded dataset's name; ``features = dataset``; ``reg``). Errors are
    :class:`ConfigError` whose ``param`` is the keyword (``features`` for ``dataset``).

    Parameters
    ----------
    dataset : str or os.PathLike, default "digits"
        An embedded dataset (``"digits"``, ``"block"``) or an ``.npz`` feature file (relative to
        the current folder).
    name : str or None, default None, keyword-only
        The dataset's name in task ids and reports (default: the file stem, or the embedded
        dataset's name, with characters other than letters, digits, ``_``, ``-``, ``.`` replaced).
    reg : float or str, default "auto", keyword-only
        A number > 0 for every model, or ``"auto"``: chosen per model on a validation split of
        the noisy training labels (:data:`REG_RULE`).
    **sweep : Any
        ``[sweep]`` keys (:data:`SWEEP_CONSTRAINTS`: ``noise``, ``rates``, ``seeds``, ``rounds``,
        ``pll_losses``, ``top_k``, ``baselines``, ...); tuples are taken as arrays.

    Returns
    -------
    ExperimentConfig
        The validated config of one dataset.

    Raises
    ------
    ConfigError
        An invalid value (see :func:`parse_sweep_config`).

    Examples
    --------
    >>> cfg = run_config("block", noise=["symmetric"], rates=(0.0, 0.5), seeds=[0], rounds=1, pll_losses=[],
    ...                  reg=1e-3)
    >>> [t.task_id for t in cfg.tasks()], cfg.model_names()
    (['block/symmetric/0.0/0', 'block/symmetric/0.5/0'], ['round 0', 'round 1'])
    >>> run_config().noise, run_config().datasets[0].reg  # the defaults of selfdistill run
    (('symmetric', 'class_cluster'), 'auto')
    >>> run_config("features/my set.npz").datasets[0].name
    'my_set'
    """
    if isinstance(dataset, os.PathLike):
        dataset = os.fspath(dataset)
    if name is None:
        stem = Path(dataset).stem if isinstance(dataset, str) else "dataset"
        name = re.sub(r"[^A-Za-z0-9_.\-]", "_", stem).lstrip("_.-") or "dataset"
    doc = {"sweep": {k: list(v) if isinstance(v, tuple) else v for k, v in sweep.items()},
           "datasets": [{"name": name, "features": dataset, "reg": reg}]}
    return parse_sweep_config(doc)
