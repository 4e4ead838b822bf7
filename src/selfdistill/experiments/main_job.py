"""The main job (``selfdistill run``): distillation gain vs label-noise rate, the paper's Figure 2.

A run is a sweep of one dataset: :func:`~.config.run_config` turns its options into the same
:class:`~.config.ExperimentConfig` a TOML file gives, :func:`~.sweep.run_sweep` computes the
tasks (each with :func:`~.runner.compute_task`) into ``<output>/results.db`` (the SQLite store
of :mod:`.store`), and this module writes the run's files from the store:

* ``results.csv`` -- one row per task and model (:func:`selfdistill.report.write_results_csv`);
* ``config.json`` -- the config, the dataset, every task's chosen reg per model and its
  validation scores, the rules, the library version and the command;
* ``summary.md`` -- the printed tables (:func:`selfdistill.report.summary_table`);
* ``gain_vs_rate.png`` (not with round 0 alone) and ``accuracy_vs_round.png``.

Every file is written atomically. Resuming: each finished task is committed to the store in
its own transaction; rerunning the same command computes only the missing tasks (a task stored
with other settings is recomputed); growing the grid reuses the finished tasks.

A store holds one config's results: a run that would leave stored tasks of other settings (other
rounds, reg, PLL losses, dataset, ...) outside its grid beside its own is refused before anything
is computed or written (:func:`check_store_config`, a :class:`~.store.StoreConfigError` naming
what differs); start it in another folder, or delete the old one.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from .._io import atomic_write_text, ensure_output_dir, remove_stale_temporaries, to_jsonable, write_json
from .._version import __version__
from .config import REG_RULE, ConfigError, ExperimentConfig, run_config
from .runner import check_work, prepare_datasets
from .store import ResultStore, StoreConfigError, settings_differences

__all__ = ["MainJobResult", "run_main_job", "DB_NAME", "check_store_config"]

#: The store of a run, inside its output folder.
DB_NAME = "results.db"
#: The files a run writes beside its store.
OUTPUT_FILES = ("results.csv", "config.json", "summary.md", "gain_vs_rate.png", "accuracy_vs_round.png")


@dataclass
class MainJobResult:
    """What :func:`run_main_job` returns: the rows, the summary text and where the files went.

    Unpacks as ``rows, summary = run_main_job(...)``.

    Parameters
    ----------
    rows : list of dict
        One dict per (task, model) of the run's grid, in the config's task order
        (:meth:`~selfdistill.experiments.store.ResultStore.rows`): the rows of ``results.csv``.
    summary : str
        The Markdown tables of ``summary.md``.
    output_dir : pathlib.Path
        The output folder.
    files : dict of str to pathlib.Path, default {}
        The files written: ``results``, ``config``, ``summary``, ``gain_figure`` (not with round 0
        alone), ``round_figure`` and ``db`` (the store).
    n_computed : int, default 0
        Tasks computed by this run (missing or stale).
    n_loaded : int, default 0
        Tasks loaded from the store, already done with the same settings.
    n_stale : int, default 0
        Stored tasks recomputed because their settings changed (counted in ``n_computed``).
    seconds : float, default 0.0
        Wall time of the run.

    Examples
    --------
    >>> from pathlib import Path
    >>> result = MainJobResult(rows=[{"model": "round 0", "test_acc": 0.9}], summary="# table", output_dir=Path("out"))
    >>> rows, summary = result
    >>> rows[0]["model"], summary
    ('round 0', '# table')
    """

    rows: list[dict[str, Any]]
    summary: str
    output_dir: Path
    files: dict[str, Path] = field(default_factory=dict)
    n_computed: int = 0
    n_loaded: int = 0
    n_stale: int = 0
    seconds: float = 0.0

    def __iter__(self) -> Iterator[Any]:  # rows, summary = run_main_job(...)
        return iter((self.rows, self.summary))


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


def _say(quiet, msg):
    if not quiet:
        print(msg, file=sys.stderr)


def _prepare(config, quiet):
    """Load and check the dataset before anything is created; returns (payloads, warnings)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        try:
            payloads = prepare_datasets(config)
        except ValueError as exc:  # bad file content (labels, shapes, ...)
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(str(exc), key="dataset", param="features") from None
    data_warnings = list(dict.fromkeys(str(w.message) for w in caught))
    for msg in data_warnings:  # e.g. a class with no training point
        _say(quiet, f"selfdistill: warning: {msg}")
    return payloads, data_warnings


def _ordered_rows(store, config):
    """The store's rows in the config's task order (noise, rate, seed as given), models as stored."""
    order = {(t.noise, float(t.rate), int(t.seed)): i for i, t in enumerate(config.tasks())}
    rows = [r for r in store.rows() if (r["noise"], float(r["rate"]), int(r["seed"])) in order]
    return sorted(rows, key=lambda r: order[(r["noise"], float(r["rate"]), int(r["seed"]))])


def _left_behind(store, config, payload):
    """The stored tasks outside ``config``'s grid whose settings hash is not this run's."""
    grid = {t.task_id for t in config.tasks()}
    ids = {tid for tid, h in store.done().items() if tid not in grid and h != payload["config_hash"]}
    return [r for r in store.records() if r["task_id"] in ids] if ids else []


def _grid(d):
    """A config dict's grid: its dataset, noise kinds, rates and seeds."""
    names = [ds.get("name") for ds in d.get("datasets", []) if isinstance(ds, dict)]
    return {"dataset": names[0] if len(names) == 1 else names,
            **{k: d.get(k) for k in ("noise", "rates", "seeds")}}


def _store_differences(store, config, payload, old):
    """{setting: [stored, new]}: the grid against the stored config, the settings against ``old``'s task."""
    name = config.datasets[0].name
    new = {**config.task_settings(name), "dataset_sha256": payload["fingerprint"], "dataset": name,
           "selfdistill_version": __version__}
    stored = {**{k: v for k, v in old["config"].items() if k != "noise_seed"}, "dataset": old["dataset"],
              "selfdistill_version": old["library_version"]}
    diffs = settings_differences([stored, new])
    meta = store.get_meta("config")
    if isinstance(meta, dict):
        diffs = {**settings_differences([_grid(meta), _grid(config.to_dict())]), **diffs}
    return diffs


def check_store_config(config: ExperimentConfig, output_dir: str | os.PathLike[str],
                       payload: dict[str, Any]) -> None:
    """Refuse a run whose output folder's store holds results of another config.

    The rule: a store holds one config's results. A run may resume, grow its grid (more rates,
    seeds, noise kinds) or change settings over tasks it reruns (they are recomputed and replaced),
    but not leave stored tasks of other settings outside its grid beside its own, as a run with
    other rates *and* other rounds would: then the store, and any report of it, would mix two
    configs. Execution settings (jobs, backend, batch, dtype) are no part of the settings.

    Parameters
    ----------
    config : ExperimentConfig
        The run's config (one dataset).
    output_dir : str or os.PathLike
        The output folder (nothing to check when it holds no ``results.db``).
    payload : dict
        The dataset's :func:`~.runner.prepare_datasets` entry (its ``config_hash``).

    Raises
    ------
    StoreConfigError
        Naming the folder, the settings that differ (stored -> new) and how to start a new store.

    Examples
    --------
    >>> import os, tempfile
    >>> from selfdistill.experiments import prepare_datasets, run_config
    >>> tmp = tempfile.TemporaryDirectory()
    >>> cfg = run_config("block", noise=["symmetric"], rates=[0.3], seeds=[0], rounds=0, pll_losses=[], reg=1e-3)
    >>> _ = run_main_job(cfg, tmp.name, quiet=True)
    >>> other = run_config("block", noise=["symmetric"], rates=[0.5], seeds=[0], rounds=1, pll_losses=[], reg=1e-3)
    >>> try:
    ...     check_store_config(other, tmp.name, prepare_datasets(other)["block"])
    ... except StoreConfigError as exc:
    ...     print(exc.differences)
    {'rates': ['[0.3]', '[0.5]'], 'rounds': ['0', '1']}
    >>> tmp.cleanup()
    """
    db = Path(os.fspath(output_dir)) / DB_NAME
    if not db.is_file():
        return
    with ResultStore(db, create=False) as store:  # read only: nothing is written
        behind = _left_behind(store, config, payload)
        if not behind:
            return
        diffs = _store_differences(store, config, payload, behind[0])
    what = "; ".join(f"{k}: {old} -> {new}" for k, (old, new) in diffs.items()) or \
        f"settings hash {behind[0]['config_hash']} -> {payload['config_hash']}"
    raise StoreConfigError(output_dir, (
        f"holds results of another config ({what}), and a results store keeps one config: this run would "
        f"leave {len(behind)} stored task(s) with other settings beside its own; choose another output folder "
        f"(-o DIR), or delete '{os.fspath(output_dir)}' to start a new one"), diffs)


def _singleton_note(payload):
    clusters = payload["clusters"]
    if clusters is None:
        return []
    sizes = np.bincount(clusters)
    alone = [k for k in range(len(clusters)) if sizes[clusters[k]] == 1]
    if not alone:
        return []
    return [f"class_cluster noise: classes {alone} are alone in their cluster and keep their labels, "
            "so the realised rate is below the nominal one"]


def _meta(config, payload, records, *, command, seconds, blas_threads, result, notes, data_warnings, files, out):
    """The content of ``config.json``."""
    spec, ds = config.datasets[0], payload["dataset"]
    return {
        "config": config.to_dict(), "config_hash": payload["config_hash"], "command": command,
        "selfdistill_version": __version__, "python": platform.python_version(), "numpy": np.__version__,
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "seconds": seconds, "blas_threads": blas_threads,
        "dataset": {"spec": spec.features, "name": spec.name, "split_seed": 0, "n_train": ds.n_train,
                    "n_test": ds.n_test, "n_features": ds.n_features, "n_classes": ds.n_classes,
                    "class_names": list(ds.class_names), "sha256": payload["fingerprint"],
                    "info": _summarise_info(ds.info), "warnings": data_warnings},
        "class_clusters": None if payload["clusters"] is None else {
            "rule": config.cluster_rule, "threshold": config.cluster_threshold,
            "from": "training features and clean training labels, computed once",
            "cluster_of_class": payload["clusters"]},
        "rules": {
            "reg": REG_RULE if spec.reg == "auto" else f"reg={spec.reg!r} for every task",
            "noise_seed": "SeedSequence([seed, zlib.crc32(noise), round(rate * 1e6)]).generate_state(1)[0]",
            "data_split": "load_dataset(spec, seed=0): one train/test split for every seed",
            "gain": "test_acc minus the same task's round 0 test_acc",
        },
        "chosen_reg": [{"noise": r["noise"], "rate": r["rate"], "seed": r["seed"], "reg": r["solver"]["chosen_reg"],
                        "scores": r["solver"]["reg_scores"]} for r in records],
        "tasks": {"total": result.n_tasks, "computed": result.n_computed, "loaded": result.n_skipped,
                  "recomputed_stale": result.n_replaced},
        "notes": notes, "models": config.model_names(),
        "files": {k: os.path.relpath(v, out) for k, v in files.items()},
    }


def _blas_threads(payload) -> int | None:
    """1 when n_train * n_features < 2e6 (small products: a second BLAS thread costs more than it
    gains, and on a busy machine is many times slower), else None (the library's default)."""
    ds = payload["dataset"]
    return 1 if ds.n_train * ds.n_features < 2_000_000 else None


def _write_outputs(out, rows, meta_args):
    from ..report import plot_accuracy_vs_round, plot_gain_vs_rate, summary_table, write_results_csv

    files = {"results": out / "results.csv", "config": out / "config.json", "summary": out / "summary.md",
             "gain_figure": out / "gain_vs_rate.png", "round_figure": out / "accuracy_vs_round.png",
             "db": out / DB_NAME}
    if all(r["model"] == "round 0" for r in rows):
        del files["gain_figure"]  # only the teacher: no gain to draw
    summary = summary_table(rows)
    write_results_csv(files["results"], rows)
    write_json(files["config"], _meta(files=files, out=out, **meta_args))
    atomic_write_text(files["summary"], summary)
    if "gain_figure" in files:
        plot_gain_vs_rate(rows, files["gain_figure"])
    plot_accuracy_vs_round(rows, files["round_figure"])
    return summary, files


def run_main_job(config: ExperimentConfig | None = None, output_dir: str | os.PathLike[str] = "selfdistill-output",
                 *, quiet: bool = False, command: str | None = None, blas_threads: int | str | None = "auto",
                 jobs: int | None = 1, allow_large: bool = False, backend: str = "numpy",
                 device: str | None = None, batch: int | str = "auto", dtype: str = "auto") -> MainJobResult:
    """Run the main job into ``output_dir`` and write its files (see the module docstring).

    The main job is the paper's Figure 2: test accuracy of the SD rounds (and the PLL students
    and baselines) and their gain over the teacher, per noise kind and rate, mean over seeds.
    Every dataset check runs before the folder is created; the tasks go through
    :func:`~.sweep.run_sweep` into ``<output_dir>/results.db``, so rerunning the same command
    computes only the missing tasks.

    Parameters
    ----------
    config : ExperimentConfig or None, default None
        An ExperimentConfig with one dataset (default: ``run_config()``, the default run).
    output_dir : str or os.PathLike, default "selfdistill-output"
        Folder for the results (created; must not be a file).
    quiet : bool, default False, keyword-only
        No progress bar and no notes on stderr.
    command : str or None, default None, keyword-only
        The command line, recorded in ``config.json`` (optional).
    blas_threads : int or str or None, default "auto", keyword-only
        BLAS threads while tasks run: an int, None (leave it alone) or "auto" (1 for
        small data, see :func:`_blas_threads`). Changes only round-off.
    jobs : int or None, default 1, keyword-only
        Worker processes (1: this process; None: the CPU count).
    allow_large : bool, default False, keyword-only
        Run a grid above :data:`~.runner.MAX_FITS` probe fits (else refused up front).
    backend, device : keyword-only
        Where the probes are fitted (:func:`~.sweep.run_sweep`): ``"numpy"`` (default) or
        ``"torch"`` on ``device`` (``"cuda"``, ...); recorded per task, not part of its settings.
    batch : int or "auto", default "auto", keyword-only
        Tasks advanced together, sharing their passes over X (:func:`~.sweep.run_sweep`).
    dtype : {"auto", "float64", "float32"}, default "auto", keyword-only
        The solver's working precision (:func:`~.sweep.run_sweep`).

    Returns
    -------
    MainJobResult
        The rows, the summary and the files; ``rows, summary = run_main_job(...)`` also works.

    Raises
    ------
    TypeError
        When ``config`` is not an ExperimentConfig of one dataset.
    ConfigError
        An invalid dataset or a grid above :data:`~.runner.MAX_FITS` fits without ``allow_large``.
    StoreConfigError
        When ``output_dir`` holds the results of another config (:func:`check_store_config`):
        nothing is computed or written.

    Examples
    --------
    >>> import os, tempfile
    >>> from selfdistill.experiments import run_config
    >>> tmp = tempfile.TemporaryDirectory()
    >>> out = os.path.join(tmp.name, "out")
    >>> cfg = run_config("block", noise=["symmetric"], rates=[0.5], seeds=[0], rounds=0, pll_losses=[], reg=1e-3)
    >>> result = run_main_job(cfg, out, quiet=True)
    >>> sorted(os.listdir(out))
    ['accuracy_vs_round.png', 'config.json', 'results.csv', 'results.db', 'summary.md']
    >>> rows, summary = result
    >>> [(r["noise"], r["rate"], r["model"]) for r in rows], result.n_computed
    ([('symmetric', 0.5, 'round 0')], 1)
    >>> run_main_job(cfg, out, quiet=True).n_loaded  # rerun: the task is loaded from the store
    1
    >>> tmp.cleanup()
    """
    from .sweep import run_sweep

    config = run_config() if config is None else config
    if not isinstance(config, ExperimentConfig) or len(config.datasets) != 1:
        raise TypeError(f"config must be an ExperimentConfig with one dataset (run_config(...)), got {config!r}")
    t_start = time.perf_counter()
    check_work(config, allow_large=allow_large)
    payloads, data_warnings = _prepare(config, quiet)  # every check before anything is created
    payload = payloads[config.datasets[0].name]
    check_store_config(config, output_dir, payload)  # one config per store, refused before any write
    out = ensure_output_dir(output_dir)
    remove_stale_temporaries(out, OUTPUT_FILES)  # left by a run killed while writing its files
    blas = _blas_threads(payload) if blas_threads == "auto" else cast("int | None", blas_threads)
    result = run_sweep(config, out / DB_NAME, jobs=jobs, quiet=quiet, blas_threads=blas, payloads=payloads,
                       desc="selfdistill run", allow_large=allow_large, backend=backend, device=device,
                       batch=batch, dtype=dtype)
    for msg in result.warnings:
        _say(quiet, f"selfdistill: warning (some tasks): {msg}")
    with ResultStore(out / DB_NAME, create=False) as store:
        rows = _ordered_rows(store, config)
        order = {t.task_id: i for i, t in enumerate(config.tasks())}
        records = sorted((r for r in store.records() if r["task_id"] in order), key=lambda r: order[r["task_id"]])
    notes = _singleton_note(payload)
    meta_args = dict(config=config, payload=payload, records=records, command=command,
                     seconds=time.perf_counter() - t_start, blas_threads=blas, result=result, notes=notes,
                     data_warnings=data_warnings)
    summary, files = _write_outputs(out, rows, meta_args)
    for note in notes:
        _say(quiet, f"selfdistill: note: {note}")
    return MainJobResult(rows=rows, summary=summary, output_dir=out, files=files, n_computed=result.n_computed,
                         n_loaded=result.n_skipped, n_stale=result.n_replaced,
                         seconds=time.perf_counter() - t_start)
