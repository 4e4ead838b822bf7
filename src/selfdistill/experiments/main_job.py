"""The main job (``selfdistill run``): distillation gain vs label-noise rate, the paper's Figure 2.

Grid: noise kind x noise rate x seed. One *task* per grid point:

1. noisy training labels ``make_noisy_labels(y_train, kind, rate, noise_seed(seed, kind, rate))``;
2. ``reg``: fixed, or (``reg="auto"``, :data:`REG_RULE`)
   :func:`selfdistill.model_selection.select_reg_per_model` on the *noisy* training labels with
   ``seed=seed``: every model gets the reg its held-out noisy accuracy prefers, so SD rounds and
   PLL students are compared with the teacher at their own best setting (no clean training
   label and no test label is ever looked at);
3. :func:`selfdistill.distill`: the teacher (round 0), rounds 1..R, one PLL student per loss;
4. one row per model with its test accuracy and its gain over the same task's round 0.

Choices, fixed here and recorded in ``config.json``:

* **Data split.** The dataset is loaded once (``load_dataset(spec, seed=0)``): the train/test
  split is the same for every seed; seeds vary the label noise and the reg-selection split.
* **Class clusters** (``class_cluster`` noise) are computed once, from the training features and
  the *clean* training labels: ``class_clusters(X_train, y_train, threshold=cluster_threshold)``.
  They define the noise model (which classes are confusable), like a transition matrix does,
  so using the clean labels here is part of building the benchmark, not of learning. They are
  the same for every rate and seed, so the rates are comparable.
* **Noise seed.** ``noise_seed(seed, kind, rate)``: an integer drawn from
  ``numpy.random.SeedSequence([seed, crc32(kind), round(rate * 1e6)])``. Every task can thus be
  recomputed alone, in any order, and gives the same labels.
* **Resuming.** Each finished task is written atomically to
  ``<output>/tasks/<noise>_<rate>_<seed>.json`` with its :func:`config_hash`, a hash of every
  setting that changes a task's result (dataset content, rounds, reg rule, PLL losses, top_k,
  exact noise, cluster threshold, library version) but *not* of the grid axes. A rerun loads
  tasks whose file carries the same hash and recomputes the rest; growing the grid (one more
  rate or seed) reuses the finished tasks. A file with another hash is recomputed and
  overwritten (the run says how many).
* **Shared work.** Tasks whose noisy labels coincide (rate 0 under every kind gives the clean
  labels) are computed once per run and their rows copied (``seconds`` is then the original's).
"""

from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import io
import json
import numbers
import os
import platform
import sys
import time
import warnings
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .._io import atomic_write_text, ensure_output_dir, read_json, to_jsonable, write_json
from ..distill import PLL_LOSSES, distill, pll_model_names
from ..noise import NOISE_KINDS, class_clusters, make_noisy_labels

__all__ = [
    "MainJobConfig",
    "ConfigError",
    "MainJobResult",
    "run_main_job",
    "noise_seed",
    "config_hash",
    "task_filename",
    "RESULT_COLUMNS",
    "write_results_csv",
    "read_results_csv",
    "REG_RULE",
]

#: The reg grid of ``reg="auto"``.
MAIN_JOB_REG_GRID = (1e-1, 1e-2, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5)

#: The rule behind ``reg="auto"`` (also in ``selfdistill run --help``).
REG_RULE = (
    "'auto': each model gets its own reg. For each task, run the whole chain for every reg in {"
    + ", ".join(f"{r:g}" for r in MAIN_JOB_REG_GRID)
    + "} on a stratified 80% of the noisy training labels; each model (round t, each PLL student) "
    "keeps the reg with the best accuracy on the other 20% of the noisy labels (ties: the larger "
    "reg; split seeded by the task's seed); the chains are then refitted on all the training data "
    "with the chosen regs. Clean and test labels are never used."
)

#: Columns of ``results.csv``, in order.
RESULT_COLUMNS = (
    "dataset",
    "noise",
    "rate",
    "seed",
    "rounds",
    "top_k",
    "exact_noise",
    "reg_rule",
    "reg",
    "realised_rate",
    "model",
    "test_acc",
    "gain",
    "train_acc",
    "kept",
    "corrected",
    "agree_given",
    "topk_coverage",
    "n_iter",
    "seconds",
    "converged",
)

_INT_COLUMNS = {"seed", "rounds", "top_k", "n_iter"}
_BOOL_COLUMNS = {"exact_noise", "converged"}
_STR_COLUMNS = {"dataset", "noise", "reg_rule", "model"}


class ConfigError(ValueError):
    """An invalid :class:`MainJobConfig` setting; ``option`` is the field's name."""

    def __init__(self, option: str, message: str):
        super().__init__(message)
        self.option = option


def _as_tuple(value, option):
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        return (value,)
    return tuple(value)


def _unique(values):
    seen, out = set(), []
    for v in values:
        if v not in seen:
            seen.add(v)
            out.append(v)
    return tuple(out)


@dataclass(frozen=True)
class MainJobConfig:
    """Settings of the main job. Validated (and normalised) on construction.

    Parameters
    ----------
    dataset : "digits", "block" or the path of an ``.npz`` file (see
        :func:`selfdistill.data.load_dataset`).
    noise : noise kinds (of :data:`selfdistill.noise.NOISE_KINDS`); repeats are dropped.
    rates : noise rates in [0, 1]; sorted, repeats dropped.
    rounds : R >= 0 self-distillation rounds after the teacher.
    seeds : non-negative ints; repeats dropped.
    reg : ``"auto"`` (see :data:`REG_RULE`) or a float > 0 used for every task.
    pll_losses : PLL students, each of :data:`selfdistill.distill.PLL_LOSSES`; empty: none.
    top_k : candidate-set size of the PLL students, 2 <= top_k <= K - 1 (checked against the
        dataset's K when the job runs).
    exact_noise : flip exactly round(rate * n_k) labels of each class (else i.i.d. draws).
    cluster_threshold : cut height of :func:`selfdistill.noise.class_clusters`, in [0, 1].

    Errors are :class:`ConfigError` (a ``ValueError``) naming the option and the value.
    """

    dataset: str = "digits"
    noise: tuple = ("symmetric", "class_cluster")
    rates: tuple = (0.0, 0.3, 0.5, 0.7)
    rounds: int = 4
    seeds: tuple = (0, 1, 2)
    reg: object = "auto"
    pll_losses: tuple = ("uniform", "candidate", "gce")
    top_k: int = 2
    exact_noise: bool = False
    cluster_threshold: float = 0.7

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731  (frozen dataclass)

        dataset = self.dataset
        if isinstance(dataset, os.PathLike):
            dataset = os.fspath(dataset)
        if not isinstance(dataset, str) or not dataset:
            raise ConfigError("dataset", f"dataset must be 'digits', 'block' or an .npz path, got {dataset!r}")
        set_("dataset", dataset)

        noise = _unique(_as_tuple(self.noise, "noise"))
        if not noise:
            raise ConfigError("noise", "noise must name at least one noise kind, got none")
        for kind in noise:
            if kind not in NOISE_KINDS:
                raise ConfigError(
                    "noise", f"noise must be among {list(NOISE_KINDS)}, got unknown noise kind {kind!r}"
                )
        set_("noise", noise)

        rates = []
        for r in _as_tuple(self.rates, "rates"):
            if isinstance(r, bool) or not isinstance(r, numbers.Real) or not np.isfinite(float(r)):
                raise ConfigError("rates", f"rates must be numbers in [0, 1], got {r!r}")
            if not 0.0 <= float(r) <= 1.0:
                raise ConfigError("rates", f"rates must be in [0, 1], got {float(r)!r}")
            rates.append(float(r))
        if not rates:
            raise ConfigError("rates", "rates must hold at least one noise rate, got none")
        set_("rates", tuple(sorted(set(rates))))

        if isinstance(self.rounds, bool) or not isinstance(self.rounds, numbers.Integral) or self.rounds < 0:
            raise ConfigError("rounds", f"rounds must be an integer >= 0, got {self.rounds!r}")
        set_("rounds", int(self.rounds))

        seeds = []
        for s in _as_tuple(self.seeds, "seeds"):
            if isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 0:
                raise ConfigError("seeds", f"seeds must be non-negative integers, got {s!r}")
            seeds.append(int(s))
        if not seeds:
            raise ConfigError("seeds", "seeds must hold at least one seed, got none")
        set_("seeds", _unique(seeds))

        reg = self.reg
        if isinstance(reg, str) and reg.strip().lower() == "auto":
            reg = "auto"
        else:
            try:
                reg_f = float(reg)
            except (TypeError, ValueError):
                raise ConfigError("reg", f"reg must be 'auto' or a number > 0, got {reg!r}") from None
            if isinstance(reg, bool) or not np.isfinite(reg_f) or reg_f <= 0:
                raise ConfigError("reg", f"reg must be 'auto' or a finite number > 0, got {reg!r}")
            reg = reg_f
        set_("reg", reg)

        losses = _unique(_as_tuple(self.pll_losses, "pll_losses"))
        for loss in losses:
            if loss not in PLL_LOSSES:
                raise ConfigError(
                    "pll_losses", f"pll_losses must be among {list(PLL_LOSSES)}, got unknown loss {loss!r}"
                )
        set_("pll_losses", losses)

        if isinstance(self.top_k, bool) or not isinstance(self.top_k, numbers.Integral) or self.top_k < 2:
            raise ConfigError("top_k", f"top_k must be an integer >= 2, got {self.top_k!r}")
        set_("top_k", int(self.top_k))

        set_("exact_noise", bool(self.exact_noise))

        t = self.cluster_threshold
        if isinstance(t, bool) or not isinstance(t, numbers.Real) or not 0.0 <= float(t) <= 1.0:
            raise ConfigError("cluster_threshold", f"cluster_threshold must be in [0, 1], got {t!r}")
        set_("cluster_threshold", float(t))

    def check_classes(self, n_classes: int) -> None:
        """Check the settings that depend on the number of classes K of the dataset."""
        if self.pll_losses and not 2 <= self.top_k <= n_classes - 1:
            if n_classes < 3:
                msg = (f"top_k={self.top_k}: the dataset has K={n_classes} classes, too few for a PLL "
                       "student (needs K >= 3); run without PLL students (pll_losses=(), --pll-loss none)")
            else:
                msg = f"top_k must be in [2, {n_classes - 1}] (K-1 for K={n_classes} classes), got {self.top_k}"
            raise ConfigError("top_k", msg)

    @property
    def model_names(self) -> list:
        """Model names, in row order: "round 0" .. "round R", then "pll-<loss>" per PLL loss."""
        rounds = [f"round {t}" for t in range(self.rounds + 1)]
        return rounds + (pll_model_names(tuple(self.pll_losses)) if self.pll_losses else [])

    @property
    def reg_rule(self) -> str:
        return "auto" if self.reg == "auto" else "fixed"

    def tasks(self) -> list:
        """The grid as a list of (noise, rate, seed), noise outermost, seed innermost."""
        return [(k, r, s) for k in self.noise for r in self.rates for s in self.seeds]

    def to_dict(self) -> dict:
        """All settings as plain JSON types (tuples become lists)."""
        return to_jsonable(asdict(self))


@dataclass
class MainJobResult:
    """What :func:`run_main_job` returns: the rows, the summary text and where the files went."""

    rows: list
    summary: str
    output_dir: Path
    files: dict = field(default_factory=dict)
    n_computed: int = 0
    n_loaded: int = 0
    n_stale: int = 0
    seconds: float = 0.0

    def __iter__(self):  # rows, summary = run_main_job(...)
        return iter((self.rows, self.summary))


def noise_seed(seed: int, kind: str, rate: float) -> int:
    """The seed of a task's label noise: a documented function of (seed, kind, rate).

    ``SeedSequence([seed, zlib.crc32(kind), round(rate * 1e6)]).generate_state(1)[0]`` (a 32-bit
    int). Independent of the grid and of the order of the tasks, and the same on every platform
    (``crc32``, unlike ``hash``, is not salted per process).
    """
    entropy = [int(seed), zlib.crc32(str(kind).encode("utf-8")), int(round(float(rate) * 1_000_000))]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def _dataset_fingerprint(ds) -> str:
    h = hashlib.sha256()
    for arr in (ds.X_train, ds.y_train, ds.X_test, ds.y_test):
        a = np.ascontiguousarray(arr)
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def config_hash(config: MainJobConfig, dataset_fingerprint: str) -> str:
    """Hash of everything that changes a task's result, *without* the grid axes.

    Covers: the dataset's content (``dataset_fingerprint``), rounds, reg (the rule or the value),
    pll_losses, top_k, exact_noise, cluster_threshold and the library version.
    """
    from .. import __version__

    d = config.to_dict()
    for axis in ("noise", "rates", "seeds", "dataset"):
        d.pop(axis)
    d["dataset_sha256"] = dataset_fingerprint
    d["selfdistill_version"] = __version__
    d["task_format"] = 2  # 2: PLL targets share tied candidate mass (format-1 tasks are recomputed)
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def task_filename(noise: str, rate: float, seed: int) -> str:
    """``<noise>_<rate>_<seed>.json`` with the rate as Python's shortest repr (``0.3``, ``0.0``)."""
    return f"{noise}_{float(rate)!r}_{int(seed)}.json"


def _load_task(path: Path, key, chash):
    """Return the stored task dict if ``path`` holds task ``key`` made with hash ``chash``.

    Returns (task or None, reason) with reason "missing", "stale" (other hash, other key or
    unreadable) or "ok".
    """
    if not path.exists():
        return None, "missing"
    try:
        task = read_json(path)
    except (OSError, ValueError):
        return None, "stale"
    noise, rate, seed = key
    ok = (
        isinstance(task, dict)
        and task.get("config_hash") == chash
        and task.get("noise") == noise
        and task.get("rate") == rate
        and task.get("seed") == seed
        and isinstance(task.get("rows"), list)
    )
    return (task, "ok") if ok else (None, "stale")


def _label_key(y_noisy, seed) -> str:
    return hashlib.sha256(np.ascontiguousarray(y_noisy, dtype=np.int64).tobytes()).hexdigest()[:16] + f":{seed}"


def _compute(config, ds, K, y_noisy, seed):
    """The expensive part of a task: reg choice and the distillation chain. Returns a dict."""
    from ..model_selection import select_reg_per_model

    t0 = time.perf_counter()
    pll = bool(config.pll_losses)
    chain = dict(
        rounds=config.rounds,
        pll=pll,
        top_k=config.top_k,
        pll_loss=tuple(config.pll_losses) if pll else "uniform",
        n_classes=K,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reg_scores = None
        if config.reg == "auto":
            best, reg_scores = select_reg_per_model(ds.X_train, y_noisy, grid=MAIN_JOB_REG_GRID, seed=seed, **chain)
        else:
            best = None
        regs = sorted(set(best.values()), reverse=True) if best else [config.reg]
        chains = {
            r: distill(ds.X_train, y_noisy, reg=r, X_test=ds.X_test, y_test=ds.y_test, y_true=ds.y_train, **chain)
            for r in regs
        }
        any_chain = chains[regs[0]]
        metrics = []
        for m in any_chain.metrics:
            r = best[m["model"]] if best else config.reg
            metrics.append({**chains[r].metric_dict(m["model"]), "reg": float(r)})
    msgs = _unique(f"{w.category.__name__}: {w.message}" for w in caught)
    return {
        "reg": float(regs[0]) if len(regs) == 1 else None,
        "reg_scores": None
        if reg_scores is None
        else {name: {repr(float(k)): v for k, v in sc.items()} for name, sc in reg_scores.items()},
        "metrics": metrics,
        "warnings": list(msgs),
        "seconds": time.perf_counter() - t0,
    }


def _run_task(config, ds, K, clusters, key, chash, shared):
    """One task: noisy labels, then the (possibly shared) computation; returns the task record.

    ``shared`` maps a label key (hash of the noisy labels and the seed) to a finished
    computation: identical labels (rate 0 under any kind) are computed once.
    """
    noise, rate, seed = key
    nseed = noise_seed(seed, noise, rate)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # singleton clusters: noted once by the caller
        y_noisy, ninfo = make_noisy_labels(
            ds.y_train, noise, rate, nseed, clusters=clusters if noise == "class_cluster" else None,
            exact=config.exact_noise, n_classes=K,
        )
    lkey = _label_key(y_noisy, seed)
    reused = lkey in shared
    computed = shared[lkey] if reused else _compute(config, ds, K, y_noisy, seed)
    shared[lkey] = computed
    realised = float(ninfo["rates"]["overall"])
    return {
        "config_hash": chash,
        "noise": noise,
        "rate": rate,
        "seed": seed,
        "noise_seed": nseed,
        "label_key": lkey,
        "reused_from_identical_labels": reused,
        "realised_rate": realised,
        "realised_per_class": ninfo["rates"]["per_class"],
        "computed": computed,
        "rows": _task_rows(config, ds.name, key, realised, computed),
    }


def _task_rows(config, ds_name, key, realised, computed):
    noise, rate, seed = key
    base = next(m["test_acc"] for m in computed["metrics"] if m["model"] == "round 0")
    rows = []
    for m in computed["metrics"]:
        rows.append(
            {
                "dataset": ds_name,
                "noise": noise,
                "rate": rate,
                "seed": seed,
                "rounds": config.rounds,
                "top_k": config.top_k,
                "exact_noise": config.exact_noise,
                "reg_rule": config.reg_rule,
                "reg": m.get("reg", computed["reg"]),
                "realised_rate": realised,
                "model": m["model"],
                "test_acc": m["test_acc"],
                "gain": m["test_acc"] - base,
                "train_acc": m["train_acc"],
                "kept": m["kept"],
                "corrected": m["corrected"],
                "agree_given": m["agree_given"],
                "topk_coverage": m["topk_coverage"],
                "n_iter": m["n_iter"],
                "seconds": m["seconds"],
                "converged": m["converged"],
            }
        )
    return to_jsonable(rows)


def _fmt_csv_value(v):
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    return str(v)


def write_results_csv(path, rows) -> None:
    """Write the rows to ``path`` atomically, columns :data:`RESULT_COLUMNS` (floats as repr)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(RESULT_COLUMNS)
    for r in rows:
        w.writerow([_fmt_csv_value(r.get(c)) for c in RESULT_COLUMNS])
    atomic_write_text(path, buf.getvalue())


def read_results_csv(path) -> list:
    """Read a ``results.csv`` back into rows with Python types (empty cells become None)."""
    rows = []
    with open(path, newline="", encoding="utf-8") as fh:
        for rec in csv.DictReader(fh):
            row = {}
            for k, v in rec.items():
                if v == "" and k not in _STR_COLUMNS:
                    row[k] = None
                elif k in _STR_COLUMNS:
                    row[k] = v
                elif k in _INT_COLUMNS:
                    row[k] = int(v)
                elif k in _BOOL_COLUMNS:
                    row[k] = v == "True"
                else:
                    row[k] = float(v)
            rows.append(row)
    return rows


def _summarise_info(info, limit=50):
    """The dataset's info without long lists (split indices), which get a length and a hash."""
    out = {}
    for k, v in info.items():
        if isinstance(v, (list, tuple)) and len(v) > limit:
            out[k] = {"length": len(v), "sha256": hashlib.sha256(json.dumps(to_jsonable(v)).encode()).hexdigest()[:16]}
        elif isinstance(v, dict):
            out[k] = _summarise_info(v, limit)
        else:
            out[k] = v
    return out


_BLAS_SMALL = 2_000_000


def _blas_limit(ds):
    return 1 if ds.n_train * ds.n_features < _BLAS_SMALL else None


def _limit_blas(threads):
    """A context manager limiting BLAS threads (threadpoolctl, a scikit-learn dependency)."""
    import contextlib

    if threads is None:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn requires threadpoolctl
        return contextlib.nullcontext()
    return threadpool_limits(limits=int(threads), user_api="blas")


def _say(quiet, msg):
    if not quiet:
        print(msg, file=sys.stderr)


def run_main_job(config: MainJobConfig | None = None, output_dir="selfdistill-output", *, quiet=False, command=None,
                 blas_threads="auto"):
    """Run the main job and write its files; see the module docstring for every choice.

    Parameters
    ----------
    config : MainJobConfig (default: the defaults).
    output_dir : folder for the results (created; must not be a file).
    quiet : no progress bar and no notes on stderr.
    command : the command line, recorded in ``config.json`` (optional).
    blas_threads : threads of the BLAS library while tasks run: an int, None (leave it alone) or
        "auto": 1 when n_train * n_features < 2e6 (small matrix products, where a second BLAS thread
        costs more than it gains and, on a busy machine, is many times slower), else None.
        Changes only floating-point summation order, not the results beyond round-off.

    Writes ``tasks/<noise>_<rate>_<seed>.json`` per task, then ``results.csv``, ``config.json``,
    ``summary.md``, ``gain_vs_rate.png`` (not with round 0 alone) and ``accuracy_vs_round.png``, each
    atomically.

    Returns
    -------
    MainJobResult; ``rows, summary = run_main_job(...)`` also works.
    """
    from .. import __version__
    from ..data import load_dataset
    from ..report import plot_accuracy_vs_round, plot_gain_vs_rate, summary_table

    config = MainJobConfig() if config is None else config
    if not isinstance(config, MainJobConfig):
        raise TypeError(f"config must be a MainJobConfig, got {type(config).__name__}")
    t_start = time.perf_counter()

    # Every setting is checked (the dataset loaded) before anything is created: an invalid one
    # leaves no empty output folder behind.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        try:
            ds = load_dataset(config.dataset, seed=0)
        except ValueError as exc:  # bad file content (labels, shapes, ...): a bad --dataset
            raise ConfigError("dataset", str(exc)) from None
    data_warnings = list(_unique(str(w.message) for w in caught))
    K = ds.n_classes
    config.check_classes(K)
    if ds.n_test == 0:
        raise ConfigError("dataset", f"dataset {config.dataset!r} has no test points; the main job reports test accuracy")
    for msg in data_warnings:  # e.g. a class with no training point
        _say(quiet, f"selfdistill: warning: {msg}")
    out = ensure_output_dir(output_dir)
    task_dir = ensure_output_dir(out / "tasks", name="output_dir/tasks")
    fingerprint = _dataset_fingerprint(ds)
    chash = config_hash(config, fingerprint)

    clusters = None
    notes = []
    if "class_cluster" in config.noise:
        clusters = class_clusters(ds.X_train, ds.y_train, threshold=config.cluster_threshold, n_classes=K)
        sizes = np.bincount(clusters)
        alone = [k for k in range(K) if sizes[clusters[k]] == 1]
        if alone:
            notes.append(
                f"class_cluster noise: classes {alone} are alone in their cluster and keep their labels, "
                "so the realised rate is below the nominal one"
            )

    tasks = config.tasks()
    stored, todo, stale = {}, [], []
    for key in tasks:
        task, why = _load_task(task_dir / task_filename(*key), key, chash)
        if task is not None:
            stored[key] = task
        else:
            todo.append(key)
            if why == "stale":
                stale.append(task_filename(*key))
    if stale:
        _say(quiet, f"selfdistill: {len(stale)} task file(s) in {task_dir} were made with other settings "
                    f"(config hash differs); recomputing them: {', '.join(stale[:5])}{' ...' if len(stale) > 5 else ''}")
    if stored:
        _say(quiet, f"selfdistill: resuming: {len(stored)} of {len(tasks)} tasks already done in {task_dir}")

    shared = {}
    for task in stored.values():
        if task.get("label_key") and task["label_key"] not in shared:
            shared[task["label_key"]] = task["computed"]

    from tqdm.auto import tqdm

    blas_threads = _blas_limit(ds) if blas_threads == "auto" else blas_threads
    all_warnings = []
    bar = tqdm(total=len(tasks), initial=len(stored), disable=quiet, unit="task", desc="selfdistill run",
               dynamic_ncols=True, file=sys.stderr)
    with bar, _limit_blas(blas_threads):
        for key in todo:
            bar.set_postfix_str(f"{key[0]} rate={key[1]:g} seed={key[2]}", refresh=False)
            task = _run_task(config, ds, K, clusters, key, chash, shared)
            write_json(task_dir / task_filename(*key), task)
            stored[key] = to_jsonable(task)
            all_warnings.extend(task["computed"]["warnings"])
            bar.update()

    rows = [row for key in tasks for row in stored[key]["rows"]]
    summary = summary_table(rows)
    for msg in _unique(all_warnings):
        _say(quiet, f"selfdistill: warning (some tasks): {msg}")

    files = {
        "results": out / "results.csv",
        "config": out / "config.json",
        "summary": out / "summary.md",
        "gain_figure": out / "gain_vs_rate.png",
        "round_figure": out / "accuracy_vs_round.png",
        "tasks": task_dir,
    }
    if all(r["model"] == "round 0" for r in rows):
        del files["gain_figure"]  # only the teacher: no gain to draw
    write_results_csv(files["results"], rows)
    seconds = time.perf_counter() - t_start
    meta = {
        "config": config.to_dict(),
        "config_hash": chash,
        "command": command,
        "selfdistill_version": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "seconds": seconds,
        "blas_threads": blas_threads,
        "dataset": {
            "spec": config.dataset,
            "name": ds.name,
            "split_seed": 0,
            "n_train": ds.n_train,
            "n_test": ds.n_test,
            "n_features": ds.n_features,
            "n_classes": K,
            "class_names": list(ds.class_names),
            "sha256": fingerprint,
            "info": _summarise_info(ds.info),
            "warnings": data_warnings,
        },
        "class_clusters": None if clusters is None else {
            "threshold": config.cluster_threshold,
            "from": "training features and clean training labels, computed once",
            "cluster_of_class": clusters,
        },
        "rules": {
            "reg": REG_RULE if config.reg == "auto" else f"reg={config.reg!r} for every task",
            "noise_seed": "SeedSequence([seed, zlib.crc32(noise), round(rate * 1e6)]).generate_state(1)[0]",
            "data_split": "load_dataset(spec, seed=0): one train/test split for every seed",
            "gain": "test_acc minus the same task's round 0 test_acc",
        },
        "chosen_reg": [
            {"noise": k[0], "rate": k[1], "seed": k[2],
             "reg": {m["model"]: m.get("reg", stored[k]["computed"]["reg"]) for m in stored[k]["computed"]["metrics"]},
             "scores": stored[k]["computed"]["reg_scores"]}
            for k in tasks
        ],
        "tasks": {"total": len(tasks), "computed": len(todo), "loaded": len(tasks) - len(todo),
                  "recomputed_stale": stale},
        "notes": notes,
        "models": config.model_names,
        "files": {k: os.path.relpath(v, out) for k, v in files.items()},
    }
    write_json(files["config"], meta)
    atomic_write_text(files["summary"], summary)
    if "gain_figure" in files:
        plot_gain_vs_rate(rows, files["gain_figure"])
    plot_accuracy_vs_round(rows, files["round_figure"])
    for note in notes:
        _say(quiet, f"selfdistill: note: {note}")
    return MainJobResult(rows=rows, summary=summary, output_dir=out, files=files, n_computed=len(todo),
                         n_loaded=len(tasks) - len(todo), n_stale=len(stale), seconds=seconds)
