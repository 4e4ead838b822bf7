"""Sweep configurations: a TOML file, strictly validated, expanded into independent tasks.

A config (``selfdistill sweep CONFIG.toml``; examples in ``configs/``)::

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

Rules:

* Every key is checked: an unknown key, a value of the wrong type or out of range, or an empty
  grid (no noise kind, rate, seed or dataset) is a :class:`SweepConfigError` whose message
  starts with ``FILE:LINE:`` and names the key (``[sweep] rates``, ``[[datasets]] #2 reg``).
* ``reg = "auto"`` chooses reg per model on a stratified validation split (``val_fraction``)
  of the *noisy* training labels, over ``reg_grid`` (see
  :data:`selfdistill.experiments.REG_RULE`); the test set is never used to choose anything.
* The grid is datasets x noise x rates x seeds; each point is one :class:`Task`, computed
  independently (any order, any machine) and identified by :attr:`Task.task_id`.
"""

from __future__ import annotations

import numbers
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

try:  # Python >= 3.11
    import tomllib as _toml
except ModuleNotFoundError:  # pragma: no cover - Python 3.10: the 'tomli' backport
    import tomli as _toml

from ..distill import PLL_LOSSES
from ..noise import CLUSTER_THRESHOLDS, CLUSTER_RULES, NOISE_KINDS
from .main_job import MAIN_JOB_REG_GRID

__all__ = [
    "SweepConfig",
    "DatasetSpec",
    "Task",
    "SweepConfigError",
    "BASELINES",
    "load_sweep_config",
    "parse_sweep_config",
]

#: Baselines a config can ask for, beside the SD rounds and PLL students of the chain.
BASELINES = {
    "tuned_teacher": "the teacher (one-hot labels) with its own reg chosen on the noisy validation split",
    "label_smoothing": "the teacher trained on label-smoothed targets (1 - eps) one-hot + eps/K",
    "cleanlab": "the teacher retrained without the label issues cleanlab finds from out-of-fold probabilities",
    "born_again": "the born-again ensemble: the average of the softmax outputs of rounds 0..R",
}

_SWEEP_KEYS = {
    "noise", "rates", "seeds", "rounds", "pll_losses", "top_k", "baselines", "exact_noise",
    "cluster_rule", "cluster_threshold", "reg_grid", "val_fraction", "label_smoothing", "cleanlab_folds", "name",
}
_DATASET_KEYS = {"name", "features", "reg", "n_classes"}
_TOP_KEYS = {"sweep", "datasets"}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


class SweepConfigError(ValueError):
    """An invalid sweep config: ``path``, ``line`` (1-based or None) and ``key`` say where."""

    def __init__(self, message, *, path=None, line=None, key=None):
        self.path, self.line, self.key, self.reason = path, line, key, message
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line else f"{path}: "
        super().__init__(f"{where}{key + ': ' if key else ''}{message}")


@dataclass(frozen=True)
class DatasetSpec:
    """One ``[[datasets]]`` table: ``features`` is resolved (a name or an absolute path)."""

    name: str
    features: str
    reg: object  # float > 0 or "auto"
    n_classes: int | None = None
    line: int | None = None  # where the table starts (for error messages)
    n_classes_line: int | None = None


@dataclass(frozen=True)
class Task:
    """One grid point: a dataset, a noise kind, a noise rate and a seed."""

    dataset: str
    noise: str
    rate: float
    seed: int

    @property
    def task_id(self) -> str:
        """``<dataset>/<noise>/<rate repr>/<seed>``, e.g. ``digits/symmetric/0.3/0``."""
        return f"{self.dataset}/{self.noise}/{float(self.rate)!r}/{int(self.seed)}"


@dataclass(frozen=True)
class SweepConfig:
    """A validated sweep config (see the module docstring for every key)."""

    datasets: tuple
    noise: tuple = ("class_cluster",)
    rates: tuple = (0.0, 0.3, 0.5)
    seeds: tuple = (0,)
    rounds: int = 4
    pll_losses: tuple = ("uniform",)
    top_k: int = 2
    baselines: tuple = ()
    exact_noise: bool = False
    cluster_threshold: float = 0.7
    cluster_rule: str = "library"
    reg_grid: tuple = tuple(MAIN_JOB_REG_GRID)
    val_fraction: float = 0.2
    label_smoothing: float = 0.1
    cleanlab_folds: int = 5
    name: str = "sweep"
    path: str | None = field(default=None, compare=False)

    def tasks(self) -> list:
        """The grid, dataset outermost, then noise, rate, seed."""
        return [
            Task(ds.name, k, r, s) for ds in self.datasets for k in self.noise for r in self.rates for s in self.seeds
        ]

    def dataset(self, name) -> DatasetSpec:
        return next(ds for ds in self.datasets if ds.name == name)

    def model_names(self) -> list:
        """Model names of every task, in row order: rounds, PLL students, baselines."""
        from ..distill import pll_model_names

        names = [f"round {t}" for t in range(self.rounds + 1)]
        names += pll_model_names(tuple(self.pll_losses)) if self.pll_losses else []
        from .baselines import baseline_model_name

        return names + [baseline_model_name(b, self) for b in self.baselines]

    def task_settings(self, dataset: str) -> dict:
        """Everything that changes the result of a task of ``dataset``, except the grid axes."""
        ds = self.dataset(dataset)
        d = {k: v for k, v in asdict(self).items() if k not in ("datasets", "noise", "rates", "seeds", "name", "path")}
        d["reg"] = ds.reg
        return _jsonable(d)

    def to_dict(self) -> dict:
        d = _jsonable(asdict(self))
        for ds in d["datasets"]:
            ds.pop("line", None)
            ds.pop("n_classes_line", None)
        return d


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
    where = {}
    table, index = None, None
    counts: dict = {}
    depth = 0  # inside a multi-line array or inline table: lines are values, not keys
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = _strip_comment(line)
        if depth == 0:
            m = _HEADER_RE.match(stripped)
            if m:
                table = m.group(2).strip().strip('"')
                if m.group(1) == "[[":
                    index = counts.get(table, 0)
                    counts[table] = index + 1
                else:
                    index = None
                where.setdefault((table, index, None), lineno)
                continue
            k = _KEY_RE.match(line)
            if k:
                key = k.group(1) or k.group(2) or k.group(3)
                where.setdefault((table, index, key), lineno)
        depth += stripped.count("[") + stripped.count("{") - stripped.count("]") - stripped.count("}")
        depth = max(depth, 0)
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


# ------------------------------------------------------------------------------ checks
class _Checker:
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
        raise SweepConfigError(message, path=self.path, line=line, key=label)


def _is_int(v):
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_num(v):
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _tname(v):
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array",
            dict: "a table"}.get(type(v), type(v).__name__)


def _list_of(ck, table, key, value, kind, *, index=None, allow_empty=False):
    if not isinstance(value, list):
        ck.fail(f"expected an array of {kind}, got {_tname(value)} ({value!r})", table, key, index)
    if not value and not allow_empty:
        ck.fail("empty grid: give at least one value", table, key, index)
    return value


def parse_sweep_config(data: dict, *, path=None, text=None) -> SweepConfig:
    """Validate a parsed TOML document (``text``: the source, for line numbers)."""
    ck = _Checker(path, text)
    base = Path(path).resolve().parent if path is not None else Path.cwd()
    for key in data:
        if key not in _TOP_KEYS:
            _unknown_top(ck, key, data[key])
    sweep = data.get("sweep", {})
    if not isinstance(sweep, dict):
        ck.fail(f"expected a table [sweep], got {_tname(sweep)}", None, "sweep")
    kw = {}
    for key, value in sweep.items():
        if key not in _SWEEP_KEYS:
            ck.fail(f"unknown key (allowed: {', '.join(sorted(_SWEEP_KEYS))})", "sweep", key)
        kw[key] = _check_sweep_value(ck, key, value)
    if "datasets" not in data:
        ck.fail("no [[datasets]] table: name at least one dataset", None, "datasets")
    raw_ds = data["datasets"]
    if not isinstance(raw_ds, list) or not all(isinstance(d, dict) for d in raw_ds):
        ck.fail("expected [[datasets]] tables (an array of tables)", None, "datasets")
    if not raw_ds:
        ck.fail("empty grid: give at least one [[datasets]] table", None, "datasets")
    specs, seen = [], set()
    for i, d in enumerate(raw_ds):
        for key in d:
            if key not in _DATASET_KEYS:
                ck.fail(f"unknown key (allowed: {', '.join(sorted(_DATASET_KEYS))})", "datasets", key, i)
        for key in ("name", "features", "reg"):
            if key not in d:
                ck.fail(f"missing key {key!r}", "datasets", None, i)
        name = d["name"]
        if not isinstance(name, str) or not _NAME_RE.match(name):
            ck.fail(f"expected a name of letters, digits, '_', '-', '.', got {name!r}", "datasets", "name", i)
        if name in seen:
            ck.fail(f"duplicate dataset name {name!r}", "datasets", "name", i)
        seen.add(name)
        feats = d["features"]
        if not isinstance(feats, str) or not feats:
            ck.fail(f"expected a string ('digits', 'block' or an .npz path), got {feats!r}", "datasets", "features", i)
        from ..data import DATASETS

        if feats not in DATASETS:
            if not feats.lower().endswith(".npz"):
                ck.fail(f"unknown dataset {feats!r}: expected one of {list(DATASETS)} or the path of an .npz "
                        "feature file (see 'selfdistill extract')", "datasets", "features", i)
            p = Path(os.path.expanduser(feats))
            feats = str(p if p.is_absolute() else (base / p))
        reg = d["reg"]
        if isinstance(reg, str):
            if reg != "auto":
                ck.fail(f"expected a number > 0 or \"auto\", got {reg!r}", "datasets", "reg", i)
        elif not _is_num(reg) or not 0 < float(reg) < float("inf"):
            ck.fail(f"expected a number > 0 or \"auto\", got {_tname(reg)} {reg!r}", "datasets", "reg", i)
        else:
            reg = float(reg)
        nc = d.get("n_classes")
        if nc is not None and (not _is_int(nc) or nc < 2):
            ck.fail(f"expected an integer >= 2, got {nc!r}", "datasets", "n_classes", i)
        specs.append(DatasetSpec(name=name, features=feats, reg=reg, n_classes=nc,
                                 line=ck.lines.get(("datasets", i, None)),
                                 n_classes_line=ck.lines.get(("datasets", i, "n_classes"))))
    kw["datasets"] = tuple(specs)
    if "cluster_threshold" not in kw:
        kw["cluster_threshold"] = CLUSTER_THRESHOLDS[kw.get("cluster_rule", "library")]
    cfg = SweepConfig(path=None if path is None else str(path), **kw)
    if cfg.pll_losses and cfg.top_k < 2:
        ck.fail(f"expected an integer >= 2, got {cfg.top_k}", "sweep", "top_k")
    return cfg


def _unknown_top(ck, key, value):
    if isinstance(value, dict) or (isinstance(value, list) and value and all(isinstance(v, dict) for v in value)):
        ck.fail("unknown table (expected [sweep] and [[datasets]])", key)
    ck.fail("unknown key at the top level (keys belong in [sweep] or [[datasets]])", None, key)


def _check_sweep_value(ck, key, v):
    t = "sweep"
    if key == "name":
        if not isinstance(v, str):
            ck.fail(f"expected a string, got {_tname(v)}", t, key)
        return v
    if key == "noise":
        for kind in _list_of(ck, t, key, v, "noise kinds"):
            if kind not in NOISE_KINDS:
                ck.fail(f"unknown noise kind {kind!r} (expected one of {list(NOISE_KINDS)})", t, key)
        return tuple(dict.fromkeys(v))
    if key == "rates":
        for r in _list_of(ck, t, key, v, "numbers in [0, 1]"):
            if not _is_num(r):
                ck.fail(f"expected numbers in [0, 1], got {_tname(r)} {r!r}", t, key)
            if not 0.0 <= float(r) <= 1.0:
                ck.fail(f"noise rates must be in [0, 1], got {r!r}", t, key)
        return tuple(sorted({float(r) for r in v}))
    if key == "seeds":
        for s in _list_of(ck, t, key, v, "integers >= 0"):
            if not _is_int(s) or s < 0:
                ck.fail(f"expected integers >= 0, got {_tname(s)} {s!r}", t, key)
        return tuple(dict.fromkeys(int(s) for s in v))
    if key in ("rounds", "top_k", "cleanlab_folds"):
        low = {"rounds": 0, "top_k": 2, "cleanlab_folds": 2}[key]
        if not _is_int(v) or v < low:
            ck.fail(f"expected an integer >= {low}, got {_tname(v)} {v!r}", t, key)
        return int(v)
    if key == "pll_losses":
        for loss in _list_of(ck, t, key, v, "PLL losses", allow_empty=True):
            if loss not in PLL_LOSSES:
                ck.fail(f"unknown PLL loss {loss!r} (expected some of {list(PLL_LOSSES)}, or [] for none)", t, key)
        return tuple(dict.fromkeys(v))
    if key == "baselines":
        for b in _list_of(ck, t, key, v, "baseline names", allow_empty=True):
            if b not in BASELINES:
                ck.fail(f"unknown baseline {b!r} (expected some of {list(BASELINES)}; the SD rounds and the PLL "
                        "students are set by 'rounds' and 'pll_losses')", t, key)
        return tuple(dict.fromkeys(v))
    if key == "cluster_rule":
        if v not in CLUSTER_RULES:
            ck.fail(f"expected one of {list(CLUSTER_RULES)} (see selfdistill.noise.class_clusters), got {_tname(v)} {v!r}",
                    t, key)
        return v
    if key == "exact_noise":
        if not isinstance(v, bool):
            ck.fail(f"expected true or false, got {_tname(v)} {v!r}", t, key)
        return v
    if key in ("cluster_threshold", "val_fraction", "label_smoothing"):
        ok = _is_num(v) and (0.0 <= float(v) <= 1.0 if key == "cluster_threshold" else 0.0 < float(v) < 1.0)
        if not ok:
            rng = "[0, 1]" if key == "cluster_threshold" else "(0, 1)"
            ck.fail(f"expected a number in {rng}, got {_tname(v)} {v!r}", t, key)
        return float(v)
    if key == "reg_grid":
        for r in _list_of(ck, t, key, v, "numbers > 0"):
            if not _is_num(r) or not 0 < float(r) < float("inf"):
                ck.fail(f"expected numbers > 0, got {_tname(r)} {r!r}", t, key)
        return tuple(sorted({float(r) for r in v}, reverse=True))
    raise AssertionError(key)  # pragma: no cover


def load_sweep_config(path) -> SweepConfig:
    """Read and validate a TOML sweep config; errors are :class:`SweepConfigError`."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise SweepConfigError("no such config file", path=path) from None
    try:
        text = raw.decode("utf-8")
        data = _toml.loads(text)
    except UnicodeDecodeError as exc:
        raise SweepConfigError(f"not UTF-8 text: {exc}", path=path) from None
    except _toml.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise SweepConfigError(f"invalid TOML: {exc}", path=path, line=int(m.group(1)) if m else None) from None
    return parse_sweep_config(data, path=path, text=text)
