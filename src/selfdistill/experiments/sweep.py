"""``selfdistill sweep CONFIG.toml``: run a sweep's tasks on local processes or a Dask cluster.

Flow:

1. The config is read and validated (:mod:`.config`); with ``scheduler=`` the Dask scheduler is
   contacted *first* (``connect_timeout`` seconds), so an unreachable one fails fast and writes
   nothing.
2. The driver loads every dataset once, checks its class count against the config, computes
   its content hash and (``class_cluster`` noise) its class clusters from the training features
   and the clean training labels (as ``selfdistill run`` does), and the settings hash
   :func:`task_config_hash` of its tasks.
3. The results database (:class:`~.store.ResultStore`) is opened; tasks whose row carries the
   same hash are skipped; the others are computed.
4. Tasks run on ``jobs`` local worker processes (each gets the datasets once, when it starts) or
   on a Dask cluster (each dataset is scattered to the workers once, ``broadcast=True``; tasks
   get a reference to it). The driver writes each task's row in its own transaction as soon as
   the task finishes. A local worker that dies (``kill -9``) is replaced and its unfinished
   tasks are resubmitted (at most ``max_restarts`` times); Dask reschedules on its own.
5. Every task computes with ``blas_threads`` BLAS threads (default 1: the parallelism is across
   tasks), so a task's numbers do not depend on where it ran: the same sweep gives the same
   results locally and on a cluster.

One task (:func:`compute_task`): noisy labels ``make_noisy_labels(y_train, noise, rate,
noise_seed(seed, noise, rate))``; reg fixed or chosen per model on a validation split of the
*noisy* training labels (``reg = "auto"``); the SD chain (rounds 0..R and the PLL students) via
:func:`selfdistill.distill`; the config's baselines (:mod:`.baselines`); one metrics dict per
model with its gain over round 0 of the same task.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path


from .config import SweepConfig, SweepConfigError, Task, load_sweep_config
from .store import ResultStore

__all__ = ["run_sweep", "compute_task", "prepare_datasets", "SweepError", "SweepResult", "task_config_hash",
           "TASK_FORMAT"]

#: Bumped when a task's computation changes in a way that makes stored rows stale.
TASK_FORMAT = 2  # 2: PLL targets share tied candidate mass (results of format 1 are recomputed)


class SweepError(RuntimeError):
    """The sweep cannot run (unreachable scheduler, a task failed, workers keep dying)."""


@dataclass
class SweepResult:
    db_path: Path
    n_tasks: int
    n_computed: int
    n_skipped: int
    n_replaced: int
    seconds: float
    task_seconds: list = field(default_factory=list)


# ------------------------------------------------------------------------------------ data
def _fingerprint(ds) -> str:
    from .main_job import _dataset_fingerprint

    return _dataset_fingerprint(ds)


def task_config_hash(config: SweepConfig, dataset: str, fingerprint: str) -> str:
    """Hash of every setting that changes the result of ``dataset``'s tasks (not the grid axes)."""
    from .. import __version__

    d = config.task_settings(dataset)
    d.update(dataset_sha256=fingerprint, selfdistill_version=__version__, task_format=TASK_FORMAT)
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def prepare_datasets(config: SweepConfig) -> dict:
    """Load every dataset once: {name: payload} with arrays, K, clusters, fingerprint and hash."""
    from ..data import load_dataset
    from ..noise import class_clusters

    out = {}
    for spec in config.datasets:
        if spec.features.lower().endswith(".npz") and not os.path.isfile(spec.features):
            raise SweepConfigError(
                f"no such feature file {spec.features!r} (make it with 'selfdistill extract', or fix the path; "
                "relative paths are relative to the config file)",
                path=config.path, line=spec.line, key=f"[[datasets]] {spec.name} features")
        ds = load_dataset(spec.features, seed=0)
        K = ds.n_classes
        if spec.n_classes is not None and spec.n_classes != K:
            raise SweepConfigError(
                f"the config says n_classes = {spec.n_classes} but {spec.features!r} has {K} classes",
                path=config.path, line=spec.n_classes_line or spec.line, key=f"[[datasets]] {spec.name} n_classes")
        if ds.n_test == 0:
            raise SweepConfigError(f"{spec.features!r} has no test points; the sweep reports test accuracy",
                                   path=config.path, line=spec.line, key=f"[[datasets]] {spec.name} features")
        if config.pll_losses and not 2 <= config.top_k <= K - 1:
            raise SweepConfigError(
                f"top_k = {config.top_k} needs 2 <= top_k <= K - 1 but dataset {spec.name!r} has K = {K} classes"
                + (" (set pll_losses = [] for 2-class data)" if K < 3 else ""),
                path=config.path, key="[sweep] top_k")
        clusters = None
        if "class_cluster" in config.noise:
            clusters = class_clusters(ds.X_train, ds.y_train, threshold=config.cluster_threshold, n_classes=K,
                                      rule=config.cluster_rule)
        fp = _fingerprint(ds)
        out[spec.name] = {
            "X_train": ds.X_train, "y_train": ds.y_train, "X_test": ds.X_test, "y_test": ds.y_test,
            "n_classes": K, "clusters": clusters, "fingerprint": fp,
            "config_hash": task_config_hash(config, spec.name, fp),
            "class_names": list(ds.class_names),
        }
    return out


# ------------------------------------------------------------------------------------ one task
def compute_task(task: Task, config: SweepConfig, data: dict, *, blas_threads=1) -> dict:
    """Compute one task; returns the store record (see :mod:`.store`). Pure given its inputs."""
    from .main_job import _limit_blas

    with _limit_blas(blas_threads):
        return _compute_task(task, config, data)


def _compute_task(task, config, data):
    from .. import __version__
    from ..distill import distill
    from ..model_selection import select_reg_per_model
    from ..noise import make_noisy_labels
    from .baselines import BaselineContext, run_baselines
    from .main_job import noise_seed

    t0 = time.perf_counter()
    X, y, Xt, yt, K = data["X_train"], data["y_train"], data["X_test"], data["y_test"], data["n_classes"]
    spec = config.dataset(task.dataset)
    nseed = noise_seed(task.seed, task.noise, task.rate)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # singleton clusters: the realised rate says it
        y_noisy, ninfo = make_noisy_labels(
            y, task.noise, task.rate, nseed, clusters=data["clusters"] if task.noise == "class_cluster" else None,
            exact=config.exact_noise, n_classes=K)
    pll = bool(config.pll_losses)
    chain = dict(rounds=config.rounds, pll=pll, top_k=config.top_k,
                 pll_loss=tuple(config.pll_losses) if pll else "uniform", n_classes=K)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scores = None
        if spec.reg == "auto":
            best, scores = select_reg_per_model(X, y_noisy, grid=config.reg_grid, val_fraction=config.val_fraction,
                                                seed=task.seed, **chain)
            chains = {r: distill(X, y_noisy, reg=r, X_test=Xt, y_test=yt, y_true=y, **chain)
                      for r in sorted(set(best.values()), reverse=True)}
        else:
            res = distill(X, y_noisy, reg=spec.reg, X_test=Xt, y_test=yt, y_true=y, **chain)
            chains = {spec.reg: res}
            best = {m["model"]: spec.reg for m in res.metrics}
        names = [m["model"] for m in next(iter(chains.values())).metrics]
        metrics = []
        for name in names:
            m = chains[best[name]].metric_dict(name)
            m.pop("n_grad_evals", None)
            m.pop("n_hessp", None)
            metrics.append({**m, "reg": float(best[name])})
        round_models = [chains[best[f"round {t}"]].models[f"round {t}"] for t in range(config.rounds + 1)]
        ctx = BaselineContext(X=X, y_noisy=y_noisy, y_true=y, X_test=Xt, y_test=yt, n_classes=K,
                              reg=float(best["round 0"]), seed=task.seed, config=config, round_models=round_models)
        b_metrics, b_extra = run_baselines(config.baselines, ctx)
    base = metrics[0]["test_acc"]
    realised = float(ninfo["rates"]["overall"])
    kinds = {name: ("round" if name.startswith("round ") else "pll") for name in names}
    out_metrics = []
    for m in metrics + b_metrics:
        m = dict(m)
        m["kind"] = kinds.get(m["model"], "baseline")
        m["gain"] = m["test_acc"] - base
        m["realised_rate"] = realised
        out_metrics.append(m)
    msgs = list(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught))
    return {
        "task_id": task.task_id,
        "dataset": task.dataset,
        "noise": task.noise,
        "rate": float(task.rate),
        "seed": int(task.seed),
        "config_hash": data["config_hash"],
        "config": {**config.task_settings(task.dataset), "noise_seed": nseed, "dataset_sha256": data["fingerprint"]},
        "metrics": out_metrics,
        "solver": {
            "chosen_reg": {k: float(v) for k, v in best.items()},
            "reg_scores": None if scores is None else
            {name: {repr(float(r)): v for r, v in sc.items()} for name, sc in scores.items()},
            "noise": {"seed": nseed, "realised_rate": realised, "per_class": ninfo["rates"]["per_class"]},
            "baselines": b_extra,
            "warnings": msgs,
        },
        "seconds": time.perf_counter() - t0,
        "worker": f"{socket.gethostname()}:{os.getpid()}",
        "library_version": __version__,
    }


# ------------------------------------------------------------------------------------ local workers
_WORKER = {}


def _init_worker(config, payloads, blas_threads):
    _WORKER["config"], _WORKER["data"], _WORKER["blas"] = config, payloads, blas_threads
    # the parent handles Ctrl-C; a worker just dies with its pool
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _worker_task(task):
    return compute_task(task, _WORKER["config"], _WORKER["data"][task.dataset], blas_threads=_WORKER["blas"])


def _dask_task(task, config, data, blas_threads):
    return compute_task(task, config, data, blas_threads=blas_threads)


def _run_inline(todo, config, payloads, blas_threads, on_done):
    for task in todo:
        on_done(compute_task(task, config, payloads[task.dataset], blas_threads=blas_threads))


def _run_processes(todo, config, payloads, jobs, blas_threads, on_done, max_restarts):
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    remaining = {t.task_id: t for t in todo}
    restarts = 0
    try:  # a server process imports the library once; workers (and replacements) fork from it quickly
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["selfdistill.experiments.sweep"])
    except ValueError:  # pragma: no cover - platforms without fork (Windows)
        ctx = mp.get_context("spawn")
    while remaining:
        pool = ProcessPoolExecutor(max_workers=min(jobs, len(remaining)), mp_context=ctx, initializer=_init_worker,
                                   initargs=(config, payloads, blas_threads))
        broken = False
        try:
            pending = {pool.submit(_worker_task, t): t for t in remaining.values()}
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    task = pending.pop(fut)
                    try:
                        rec = fut.result()
                    except BrokenProcessPool:
                        broken = True
                        continue
                    except Exception as exc:
                        raise SweepError(f"task {task.task_id} failed: {type(exc).__name__}: {exc}") from exc
                    on_done(rec)
                    remaining.pop(task.task_id, None)
                if broken:
                    break
        finally:
            pool.shutdown(wait=not broken, cancel_futures=True)
        if broken:
            restarts += 1
            if restarts > max_restarts:
                raise SweepError(f"worker processes died {restarts} times (killed, or out of memory?); "
                                 f"{len(remaining)} task(s) left unfinished: rerun to resume")
            print(f"selfdistill: a worker process died; restarting the pool and resubmitting "
                  f"{len(remaining)} unfinished task(s)", file=sys.stderr)


def connect_scheduler(address, timeout=5.0):
    """A ``distributed.Client`` on ``address``; SweepError within ~``timeout`` s if unreachable."""
    try:
        from distributed import Client
    except ImportError:
        raise SweepError("--scheduler needs dask.distributed: pip install 'selfdistill[sweep]'") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return Client(address, timeout=f"{timeout}s", set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise SweepError(f"cannot reach the Dask scheduler at {address!r} within {timeout:g} s "
                         f"({type(exc).__name__}: {exc}); nothing was run or written. Is the scheduler running "
                         f"('dask scheduler'), and is the address tcp://HOST:PORT?") from None


def _run_dask(client, todo, config, payloads, blas_threads, on_done):
    from distributed import as_completed

    refs = {}
    for name in {t.dataset for t in todo}:
        # a list of one: the dict travels as one object, to every worker, once
        refs[name] = client.scatter([payloads[name]], broadcast=True, hash=False)[0]
    futs = {}
    for t in todo:
        f = client.submit(_dask_task, t, config, refs[t.dataset], blas_threads, pure=False,
                          key=f"selfdistill-task-{t.task_id}-{payloads[t.dataset]['config_hash']}-{os.getpid()}")
        futs[f] = t
    try:
        with client.as_current():
            _collect(futs, on_done, as_completed)
    finally:
        client.cancel(list(futs))
        for ref in refs.values():
            client.cancel(ref)


def _collect(futs, on_done, as_completed):
    for fut in as_completed(list(futs)):
        task = futs[fut]
        try:
            rec = fut.result()
        except Exception as exc:
            raise SweepError(f"task {task.task_id} failed on the cluster: {type(exc).__name__}: {exc}") from exc
        on_done(rec)


# ------------------------------------------------------------------------------------ driver
def run_sweep(config, db_path, *, jobs=None, scheduler=None, quiet=False, blas_threads=1, max_restarts=3,
              connect_timeout=5.0) -> SweepResult:
    """Run every unfinished task of ``config`` (a SweepConfig or a TOML path) into ``db_path``.

    ``jobs``: local worker processes (default: the CPU count; 1 runs in this process);
    ``scheduler``: a Dask scheduler address (then ``jobs`` is ignored).
    """
    from tqdm.auto import tqdm

    t_start = time.perf_counter()
    if not isinstance(config, SweepConfig):
        config = load_sweep_config(config)
    from .baselines import check_baseline_dependencies

    check_baseline_dependencies(config.baselines)
    client = connect_scheduler(scheduler, connect_timeout) if scheduler else None
    try:
        payloads = prepare_datasets(config)
        store = ResultStore(db_path)
        try:
            store.set_meta("config", config.to_dict())
            done = store.done()
            tasks = config.tasks()
            todo, replaced = [], 0
            for t in tasks:
                h = done.get(t.task_id)
                if h != payloads[t.dataset]["config_hash"]:
                    todo.append(t)
                    replaced += h is not None
            if not quiet and len(todo) < len(tasks):
                print(f"selfdistill: resuming: {len(tasks) - len(todo)} of {len(tasks)} tasks already in {db_path}"
                      + (f"; {replaced} stored with other settings will be recomputed" if replaced else ""),
                      file=sys.stderr)
            seconds = []
            bar = tqdm(total=len(tasks), initial=len(tasks) - len(todo), disable=quiet, unit="task",
                       desc="selfdistill sweep", dynamic_ncols=True, file=sys.stderr)

            def on_done(rec):
                store.put(rec)
                seconds.append(rec["seconds"])
                bar.update()

            with bar:
                if not todo:
                    pass
                elif client is not None:
                    _run_dask(client, todo, config, payloads, blas_threads, on_done)
                else:
                    n_jobs = (os.cpu_count() or 1) if jobs is None else int(jobs)
                    if n_jobs <= 1 or len(todo) == 1:
                        _run_inline(todo, config, payloads, blas_threads, on_done)
                    else:
                        _run_processes(todo, config, payloads, n_jobs, blas_threads, on_done, max_restarts)
        finally:
            store.close()
    finally:
        if client is not None:
            client.close()
    return SweepResult(db_path=Path(db_path), n_tasks=len(tasks), n_computed=len(todo),
                       n_skipped=len(tasks) - len(todo), n_replaced=replaced, seconds=time.perf_counter() - t_start,
                       task_seconds=seconds)
