"""The driver of ``selfdistill sweep`` and ``selfdistill run``: tasks -> workers -> the store.

Flow:

1. The config is validated (:mod:`.config`); with ``scheduler=`` the Dask scheduler is
   contacted *first* (``connect_timeout`` seconds), so an unreachable one fails fast and writes
   nothing.
2. Every dataset is loaded once (:func:`~.runner.prepare_datasets`: class count checked, content
   hash, class clusters, the settings hash :func:`~.runner.task_config_hash` of its tasks).
3. The results database (:class:`~.store.ResultStore`) is opened; tasks whose row carries the
   same hash are skipped; the others are computed.
4. Several drivers may share one database: each task is claimed with a lease before it is
   computed (:meth:`~.store.ResultStore.claim`), so they split the work and store every task once;
   a task whose holder died is taken over when its lease runs out.
5. Tasks whose noisy labels coincide (rate 0 under every noise kind gives the clean labels, for
   the same seed) are computed once; the others get a copy of the record (``solver.reused_from``
   names the task computed, ``seconds`` is its time).
6. Tasks run in this process (``jobs=1``), on ``jobs`` local worker processes (each gets the
   datasets once, when it starts) or on a Dask cluster (each dataset is scattered to the workers
   once, ``broadcast=True``). The driver writes each task's row in its own transaction as soon as
   the task finishes. A local worker that dies (``kill -9``) is replaced and its unfinished
   tasks are resubmitted (at most ``max_restarts`` times); Dask reschedules on its own. Local
   workers watch the driver and exit when it dies.
7. Every task computes with ``blas_threads`` BLAS threads (default 1: the parallelism is across
   tasks), so a task's numbers do not depend on where it ran.

One task is :func:`~.runner.compute_task`, the same function everywhere.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import ExperimentConfig, load_sweep_config
from .runner import (
    TASK_FORMAT,
    check_work,
    compute_task,
    label_key,
    prepare_datasets,
    task_config_hash,
    task_labels,
)
from .store import ResultStore

__all__ = ["run_sweep", "batch_size", "compute_task", "prepare_datasets", "SweepError", "SweepResult",
           "task_config_hash", "TASK_FORMAT"]


class SweepError(RuntimeError):
    """The sweep cannot run (unreachable scheduler, a task failed, workers keep dying).

    Finished tasks stay in the store: rerunning resumes.

    Examples
    --------
    An unreachable Dask scheduler fails fast, before anything is loaded or written:

    >>> import os, tempfile
    >>> from selfdistill.experiments import run_config
    >>> tmp = tempfile.TemporaryDirectory()
    >>> db = os.path.join(tmp.name, "results.db")
    >>> cfg = run_config("block", noise=["symmetric"], rates=[0.0], seeds=[0], rounds=0, pll_losses=[], reg=1e-3)
    >>> try:
    ...     run_sweep(cfg, db, scheduler="tcp://127.0.0.1:1", connect_timeout=1.0, quiet=True)
    ... except SweepError as exc:
    ...     print("SweepError", os.path.exists(db))
    SweepError False
    >>> tmp.cleanup()
    """


@dataclass
class SweepResult:
    """What :func:`run_sweep` returns: task counts, times and the warnings the computed tasks caught.

    Parameters
    ----------
    db_path : pathlib.Path
        The results database.
    n_tasks : int
        Tasks of the grid.
    n_computed : int
        Tasks computed by this call (missing, or stored with other settings) or by another driver
        sharing the database while this call ran.
    n_skipped : int
        Tasks already stored with the current settings hash, loaded instead of computed.
    n_replaced : int
        Stored tasks recomputed because their settings hash differs (counted in ``n_computed``).
    seconds : float
        Wall time of the whole call.
    task_seconds : list of float, default []
        The compute time of each task computed by this driver (a group of tasks with the same
        noisy labels counts once).
    warnings : list of str, default []
        The distinct warnings caught while computing the tasks (``"Category: message"``).

    Examples
    --------
    >>> from pathlib import Path
    >>> r = SweepResult(db_path=Path("results.db"), n_tasks=4, n_computed=1, n_skipped=3, n_replaced=0,
    ...                 seconds=0.5)
    >>> r.n_skipped + r.n_computed == r.n_tasks, r.warnings
    (True, [])
    """

    db_path: Path
    n_tasks: int
    n_computed: int
    n_skipped: int
    n_replaced: int
    seconds: float
    task_seconds: list[float] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------ local workers
_WORKER: dict = {}


def _init_worker(config, payloads, run_opts, driver_pid):
    _WORKER["config"], _WORKER["data"], _WORKER["run"] = config, payloads, run_opts
    # the parent handles Ctrl-C; a worker just dies with its pool
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _watch_driver(driver_pid)


def _watch_driver(pid, every=0.5):
    """Exit this worker within ``every`` seconds of the driver's death (``kill -9`` included)."""
    import threading

    def watch():
        while True:
            time.sleep(every)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:  # pragma: no cover - pid reused by another user's process
                os._exit(1)

    threading.Thread(target=watch, name="selfdistill-driver-watch", daemon=True).start()


def _worker_task(task):
    return compute_task(task, _WORKER["config"], _WORKER["data"][task.dataset], **_WORKER["run"])


def _dask_task(task, config, data, run_opts):
    return compute_task(task, config, data, **run_opts)


def _run_inline(claims, config, payloads, run_opts, on_done):
    while (task := claims.next()) is not None:
        on_done(compute_task(task, config, payloads[task.dataset], **run_opts))


def _process_context():
    import multiprocessing as mp

    try:  # a server process imports the library once; workers (and replacements) fork from it quickly
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["selfdistill.experiments._preload"])  # exits if the driver dies meanwhile
        return ctx
    except ValueError:  # pragma: no cover - platforms without fork (Windows)
        return mp.get_context("spawn")


def _run_processes(claims, config, payloads, jobs, run_opts, on_done, max_restarts):
    restarts = 0
    while not _run_pool(claims, config, payloads, jobs, run_opts, on_done):
        restarts += 1
        if restarts > max_restarts:
            raise SweepError(f"worker processes died {restarts} times (killed, or out of memory?); "
                             "unfinished tasks are left: rerun to resume")
        print(f"selfdistill: a worker process died; restarting the pool and resubmitting "
              f"{len(claims.owned)} unfinished task(s)", file=sys.stderr)


def _fill(pool, pending, claims, jobs) -> bool:
    """Submit claimed tasks until ``jobs`` are in flight; False when the pool is broken."""
    from concurrent.futures.process import BrokenProcessPool

    while len(pending) < jobs and (task := claims.take()) is not None:
        try:
            pending[pool.submit(_worker_task, task)] = task
        except BrokenProcessPool:  # a worker died since the last completion
            claims.give_back(task)
            return False
    return True


def _drain(finished, pending, claims, on_done) -> bool:
    """Store the finished tasks' records; False when one of them found the pool broken."""
    from concurrent.futures.process import BrokenProcessPool

    ok = True
    for fut in finished:
        task = pending.pop(fut)
        try:
            rec = fut.result()
        except BrokenProcessPool:
            ok = False
            claims.give_back(task)
            continue
        except Exception as exc:
            raise SweepError(f"task {task.task_id} failed: {type(exc).__name__}: {exc}") from exc
        on_done(rec)
    return ok


def _run_pool(claims, config, payloads, jobs, run_opts, on_done) -> bool:
    """Keep ``jobs`` claimed tasks in flight on one pool; False when the pool broke (a worker died)."""
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=_process_context(), initializer=_init_worker,
                               initargs=(config, payloads, run_opts, os.getpid()))
    pending: dict = {}
    ok = True
    try:
        while ok:
            ok = _fill(pool, pending, claims, jobs)
            if ok and not pending:
                if claims.finished():
                    return True
                claims.wait()
            elif ok:
                finished, _ = wait(pending, timeout=claims.poll, return_when=FIRST_COMPLETED)
                ok = _drain(finished, pending, claims, on_done)
        for task in pending.values():
            claims.give_back(task)
        return False
    finally:
        pool.shutdown(wait=ok, cancel_futures=True)


def _probe(address, timeout):
    """Open and close a TCP connection to a ``tcp://HOST:PORT`` address; an OSError if nobody listens.

    Done before a ``distributed.Client`` is made: a Client that fails to connect is finalised at
    interpreter exit, which printed a traceback and kept the process alive for seconds more.
    """
    from urllib.parse import urlsplit

    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    if parts.scheme not in ("tcp", "tls") or not parts.hostname or parts.port is None:
        raise ValueError(f"expected tcp://HOST:PORT, got {address!r}")
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout):
        pass


def connect_scheduler(address: str, timeout: float = 5.0) -> Any:
    """A ``distributed.Client`` on ``address``; SweepError within ~``timeout`` s if unreachable."""
    try:
        from distributed import Client
    except ImportError:
        raise SweepError("--scheduler needs dask.distributed: pip install 'selfdistill[sweep]'") from None
    hint = ("nothing was run or written. Is the scheduler running ('dask scheduler'), and is the address "
            "tcp://HOST:PORT?")
    try:
        _probe(address, timeout)
    except (OSError, ValueError) as exc:
        raise SweepError(f"cannot reach the Dask scheduler at {address!r} ({type(exc).__name__}: {exc}); "
                         + hint) from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return Client(address, timeout=f"{timeout}s", set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise SweepError(f"cannot reach the Dask scheduler at {address!r} within {timeout:g} s "
                         f"({type(exc).__name__}: {exc}); " + hint) from None


@contextlib.contextmanager
def _dask_client(address, timeout):
    """A Client on ``address`` (see :func:`connect_scheduler`) with Dask's own logging silenced while it
    lives: a scheduler that dies mid-sweep ends the sweep with our one message, not Dask's tracebacks."""
    import logging

    client = connect_scheduler(address, timeout)
    names = [n for n in logging.root.manager.loggerDict if n.split(".")[0] in ("distributed", "tornado", "asyncio")]
    loggers = [logging.getLogger(n) for n in sorted(set(names) | {"distributed", "tornado", "asyncio"})]
    levels = [lg.level for lg in loggers]
    for lg in loggers:  # Dask configures levels on its sub-loggers: each is raised, then restored
        lg.setLevel(logging.CRITICAL + 1)
    try:
        yield client
    finally:
        with contextlib.suppress(Exception):
            client.close(timeout=2)
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _run_dask(client, claims, config, payloads, run_opts, on_done):
    from distributed import as_completed

    refs = {}
    for name in {spec.name for spec in config.datasets}:
        # a list of one: the dict travels as one object, to every worker, once
        refs[name] = client.scatter([payloads[name]], broadcast=True, hash=False)[0]
    futs: dict = {}
    try:
        with client.as_current():
            while True:
                while (t := claims.take()) is not None:
                    key = f"selfdistill-task-{t.task_id}-{payloads[t.dataset]['config_hash']}-{os.getpid()}"
                    futs[client.submit(_dask_task, t, config, refs[t.dataset], run_opts, pure=False, key=key)] = t
                if not futs:
                    if claims.finished():
                        return
                    claims.wait()
                    continue
                _collect(futs, on_done, as_completed)
                futs.clear()
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
            raise SweepError(f"task {task.task_id} failed on the cluster: {type(exc).__name__}: {exc} (if the "
                             "scheduler or its workers went away: finished tasks are saved; rerun to resume)") from exc
        on_done(rec)


# ------------------------------------------------------------------------------------ driver
def _todo(config, payloads, store, quiet, db_path, only=None):
    """Tasks to compute (other hash or missing), and how many stored rows they replace; with
    ``only``, the tasks of those datasets only."""
    done = store.done()
    tasks = [t for t in config.tasks() if only is None or t.dataset in only]
    todo = [t for t in tasks if done.get(t.task_id) != payloads[t.dataset]["config_hash"]]
    replaced = sum(t.task_id in done for t in todo)
    if not quiet and (len(todo) < len(tasks) or replaced):
        print(f"selfdistill: resuming: {len(tasks) - len(todo)} of {len(tasks)} tasks already in {db_path}"
              + (f"; {replaced} stored with other settings will be recomputed" if replaced else ""),
              file=sys.stderr)
    return tasks, todo, replaced


def _group_by_labels(todo, config, payloads) -> dict:
    """{representative task: [tasks with the same noisy labels and seed]} (each list starts with it)."""
    groups: dict = {}
    for t in todo:
        y_noisy, _, _ = task_labels(t, config, payloads[t.dataset])
        groups.setdefault(label_key(t, y_noisy), []).append(t)
    return {g[0]: g for g in groups.values()}


def _copy_record(rec, task, config, payloads):
    """The record of ``task`` from that of a task with the same noisy labels."""
    _, info, nseed = task_labels(task, config, payloads[task.dataset])
    out = dict(rec, task_id=task.task_id, noise=task.noise, rate=float(task.rate))
    out["config"] = {**rec["config"], "noise_seed": nseed}
    out["solver"] = {**rec["solver"], "reused_from": rec["task_id"],
                     "noise": {"seed": nseed, "realised_rate": float(info["rates"]["overall"]),
                               "per_class": info["rates"]["per_class"]}}
    return out


class _Claims:
    """The tasks this driver computes, each taken with a lease in the store, so that drivers sharing
    one database share the work and compute every task once (see :mod:`.store`)."""

    def __init__(self, store, tasks, hashes, *, lease, poll, on_done_elsewhere):
        self.store, self.hashes, self.lease, self.poll = store, hashes, lease, poll
        self.left = list(tasks)  # not claimed by this driver yet
        self.owned: list = []  # claimed by this driver, to (re)submit
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.on_done_elsewhere = on_done_elsewhere

    def take(self):
        """A task now claimed by this driver, or None when none can be claimed at the moment."""
        if self.owned:
            return self.owned.pop(0)
        for t in list(self.left):
            status = self.store.claim(t.task_id, self.owner, self.hashes[t], self.lease)
            if status == "held":
                continue
            self.left.remove(t)
            if status == "claimed":
                return t
            self.on_done_elsewhere(t)
        return None

    def take_matching(self, pred):
        """Every task not yet taken for which ``pred`` holds and that can be claimed now."""
        got = [t for t in self.owned if pred(t)]
        self.owned = [t for t in self.owned if not pred(t)]
        for t in [t for t in self.left if pred(t)]:
            status = self.store.claim(t.task_id, self.owner, self.hashes[t], self.lease)
            if status == "held":
                continue
            self.left.remove(t)
            if status == "claimed":
                got.append(t)
            else:
                self.on_done_elsewhere(t)
        return got

    def next(self):
        """Like :meth:`take`, but waits while other drivers hold the tasks left; None when all are done."""
        while (t := self.take()) is None and not self.finished():
            self.wait()
        return t

    def give_back(self, task):
        self.owned.append(task)  # still claimed: resubmit it

    def finished(self) -> bool:
        return not self.left and not self.owned

    def wait(self):
        time.sleep(self.poll)


class _Renewer:
    """A thread renewing the driver's leases every lease/3 seconds, on its own connection."""

    def __init__(self, db_path, owner, lease):
        import threading

        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(db_path, owner, lease), daemon=True,
                                        name="selfdistill-lease-renewal")
        self._thread.start()

    def _run(self, db_path, owner, lease):
        with ResultStore(db_path, create=False) as store:
            while not self._stop.wait(lease / 3):
                store.renew(owner, lease)

    def stop(self):
        self._stop.set()
        self._thread.join()


def _start_work(done, claims, task, config, payloads, opts) -> bool:
    """Start ``task`` in a thread that puts ``([tasks], [records] or None, exception or None)`` on
    ``done``; a recipe task takes every claimable task of its dataset and seed along (one group,
    :func:`~.runner.compute_recipe_tasks`). True when it started a group."""
    import threading

    from .runner import compute_recipe_tasks

    recipe = config.dataset(task.dataset).trainer == "sgd-recipe"
    key = (task.dataset, task.seed)
    tasks = [task, *claims.take_matching(lambda t: (t.dataset, t.seed) == key)] if recipe else [task]

    def work():
        try:
            data = payloads[task.dataset]
            recs = (compute_recipe_tasks(tasks, config, data, blas_threads=None) if recipe
                    else [compute_task(task, config, data, **opts)])
        except BaseException as exc:  # noqa: B036 - handed to the driver thread
            done.put((tasks, None, exc))
            return
        done.put((tasks, recs, None))

    threading.Thread(target=work, daemon=True, name=f"tasks {key}" if recipe else f"task {task.task_id}").start()
    return recipe


def _run_batched(claims, config, payloads, batch, run_opts, on_done):
    """Keep up to ``batch`` claimed tasks in flight, each in a thread of this process; every fit on
    a dataset's training features (its teacher, rounds, PLL students, and the refit of reg
    "auto") shares its passes over X with the fits of the other tasks in flight
    (:func:`selfdistill._batch.share_passes`). Tasks of a ``trainer = "sgd-recipe"`` dataset go in
    groups of one seed, one thread a group (at most one group per usable core), their chains in
    lockstep (:func:`~.runner.compute_recipe_tasks`). BLAS uses ``blas_threads`` threads for the
    shared products (None or 1, the per-task default: all cores). Records are stored from this
    thread, as each task (or group) ends."""
    import queue

    from .._batch import share_passes
    from .runner import limit_blas, thread_warnings

    done: queue.Queue = queue.Queue()
    opts = dict(run_opts, blas_threads=None)  # one BLAS setting for the process, not per task
    with contextlib.ExitStack() as stack:
        threads = run_opts["blas_threads"]
        stack.enter_context(limit_blas(None if threads == 1 else threads))  # 1 is the per-task default
        stack.enter_context(thread_warnings())
        for X in {id(d["X_train"]): d["X_train"] for d in payloads.values()}.values():  # tables may share X
            stack.enter_context(share_passes(X, run_opts["backend"], run_opts["device"], run_opts["dtype"]))
        running = groups = 0  # exact tasks in flight, recipe groups in flight
        max_groups = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        while True:
            while running < batch and groups < max_groups and (task := claims.take()) is not None:
                is_group = _start_work(done, claims, task, config, payloads, opts)
                groups, running = groups + is_group, running + (not is_group)
            if not running and not groups:
                if claims.finished():
                    return
                claims.wait()
                continue
            tasks, recs, exc = done.get()
            is_group = config.dataset(tasks[0].dataset).trainer == "sgd-recipe"
            groups, running = groups - is_group, running - (not is_group)
            if exc is not None:
                raise SweepError(f"task {tasks[0].task_id} failed: {type(exc).__name__}: {exc}") from exc
            for rec in recs:
                on_done(rec)


def batch_size(config, payloads, requested="auto") -> int:
    """How many tasks :func:`run_sweep` advances together in one process (1: one at a time).

    ``"auto"``: batching pays once a pass over X is memory-bound, so 1 for training features under
    4 million entries (n x d), else as many tasks as fit in half the available memory, at most 16,
    with per task its chain's (n, K) float64 arrays (every model's training outputs and about 16
    working arrays of the solver), and for reg "auto" the validation split's copy of X.

    Parameters
    ----------
    config : ExperimentConfig
        The grid (rounds, PLL losses, each dataset's reg).
    payloads : dict
        The datasets from :func:`~.runner.prepare_datasets`.
    requested : int or "auto", default "auto"
        An int is returned as it is.

    Returns
    -------
    int
        Tasks to advance together (>= 1).

    Examples
    --------
    >>> from selfdistill.experiments import prepare_datasets, run_config
    >>> cfg = run_config("block", noise=["symmetric"], rates=[0.3], seeds=[0], rounds=1, pll_losses=[], reg=1e-3)
    >>> batch_size(cfg, prepare_datasets(cfg)), batch_size(cfg, {}, 4)  # small features: one task at a time
    (1, 4)
    """
    if requested != "auto":
        return int(requested)
    from .._validation import physical_memory

    sizes = []
    for name, data in payloads.items():
        n, d = data["X_train"].shape
        if n * d < 4_000_000:
            return 1
        K = data["n_classes"]
        models = config.rounds + 1 + len(config.pll_losses)
        per_task = 8 * n * K * (models + 16)
        if config.dataset(name).reg == "auto":
            per_task += 8 * n * d
        sizes.append(per_task)
    if not sizes:
        return 1
    have = physical_memory()
    return 16 if have is None else max(1, min(16, int(0.5 * have // max(sizes))))


def _execute(claims, config, payloads, *, client, jobs, run_opts, max_restarts, on_done, batch=1):
    if client is not None:
        _run_dask(client, claims, config, payloads, run_opts, on_done)
        return
    if batch > 1:
        _run_batched(claims, config, payloads, batch, run_opts, on_done)
        return
    n_jobs = (os.cpu_count() or 1) if jobs is None else int(jobs)
    if n_jobs <= 1 or len(claims.left) == 1:
        _run_inline(claims, config, payloads, run_opts, on_done)
    else:
        _run_processes(claims, config, payloads, n_jobs, run_opts, on_done, max_restarts)


def run_sweep(config: ExperimentConfig | str | os.PathLike[str], db_path: str | os.PathLike[str], *,
              jobs: int | None = None, scheduler: str | None = None, quiet: bool = False,
              blas_threads: int | None = 1, max_restarts: int = 3, connect_timeout: float = 5.0,
              payloads: dict[str, dict[str, Any]] | None = None, desc: str = "selfdistill sweep",
              allow_large: bool = False, lease_seconds: float = 60.0, backend: str = "numpy",
              device: str | None = None, batch: int | str = "auto", dtype: str = "auto",
              datasets: list[str] | None = None) -> SweepResult:
    """Run every unfinished task of ``config`` into the results database ``db_path``.

    Each task (dataset x noise kind x rate x seed) is computed by
    :func:`~.runner.compute_task` and stored as one row as soon as it finishes; tasks stored with
    the current settings hash are skipped, so a rerun resumes and a grown grid reuses finished
    tasks. Tasks are claimed with a lease first, so several drivers can share one database (see
    the module docstring for the whole flow).

    Parameters
    ----------
    config : ExperimentConfig or str or os.PathLike
        The experiment config, or the path of a TOML config.
    db_path : str or os.PathLike
        The SQLite results database (created if needed; finished tasks are kept).
    jobs : int or None, default None, keyword-only
        Local worker processes (default: the CPU count; 1 runs in this process).
    scheduler : str or None, default None, keyword-only
        A Dask scheduler address (then ``jobs`` is ignored).
    quiet : bool, default False, keyword-only
        No progress bar and no notes.
    blas_threads : int or None, default 1, keyword-only
        BLAS threads per task (None: leave the library's setting alone).
    max_restarts : int, default 3, keyword-only
        How often a pool of dead local workers is replaced before giving up.
    connect_timeout : float, default 5.0, keyword-only
        Seconds to reach the scheduler.
    payloads : dict or None, default None, keyword-only
        The datasets from :func:`~.runner.prepare_datasets`, if already loaded.
    desc : str, default "selfdistill sweep", keyword-only
        The progress bar's label.
    allow_large : bool, default False, keyword-only
        Run a grid above :data:`~.runner.MAX_FITS` probe fits (else refused up front).
    lease_seconds : float, default 60.0, keyword-only
        How long a claim on a task lasts without renewal (renewed every third of it while
        this driver lives): another driver on the same database takes a task over that long after
        its holder died.
    backend : {"numpy", "torch"}, default "numpy", keyword-only
        Where the probes are fitted (:func:`~selfdistill.fit_linear_probe`'s ``backend``): an
        execution setting, like ``jobs``, not part of a task's settings hash; each stored task
        records it (``solver.execution``). With ``"torch"`` and a CUDA ``device``, use ``jobs=1``
        or one Dask worker per GPU.
    device : str or None, default None, keyword-only
        The torch device (``"cuda"``, ``"cuda:1"``; default ``"cpu"``), checked in this process.
    batch : int or "auto", default "auto", keyword-only
        Tasks advanced together in this process, each in a thread, every fit on a dataset's
        training features sharing its passes over X with the other tasks' (one product over X
        serves them all: :func:`selfdistill.fit_linear_probes`). ``"auto"``: :func:`batch_size`
        (1 on small features, where ``jobs`` processes are faster). Above 1, ``jobs`` is not used
        (one process; the shared products use all cores, or ``blas_threads`` where above 1) and
        the numbers are the same as one task at a time. Not with ``scheduler``.
    dtype : {"auto", "float64", "float32"}, default "auto", keyword-only
        The solver's working precision: float32 passes over X, the convergence test always on
        float64 gradients (the same tolerance; objectives agree to about 1e-14 relative).
        ``"auto"``: float32 when tasks are batched (half the memory traffic per pass), else
        float64. An execution setting, recorded per task (``solver.execution``).
    datasets : list of str or None, default None, keyword-only
        Run only the tasks of these ``[[datasets]]`` tables (the store still records the whole
        config): protocols that run best with different execution settings (the exact solver
        batched, the SGD recipe on ``jobs`` processes) can share one store.

    Returns
    -------
    SweepResult
        Counts, seconds, and the warnings the computed tasks caught.

    Raises
    ------
    ConfigError
        An invalid config or dataset, or a grid above :data:`~.runner.MAX_FITS` fits without
        ``allow_large``.
    SweepError
        An unreachable scheduler, a failed task, or local workers that died more than
        ``max_restarts`` times.
    ImportError
        A baseline whose optional dependency is missing.

    Examples
    --------
    >>> import os, tempfile
    >>> from selfdistill.experiments import read_rows, run_config
    >>> tmp = tempfile.TemporaryDirectory()
    >>> db = os.path.join(tmp.name, "results.db")
    >>> cfg = run_config("block", noise=["symmetric"], rates=[0.0, 0.3], seeds=[0], rounds=1, pll_losses=[],
    ...                  reg=1e-3)
    >>> r = run_sweep(cfg, db, jobs=1, quiet=True)
    >>> r.n_tasks, r.n_computed, r.n_skipped
    (2, 2, 0)
    >>> sorted({(row["rate"], row["model"]) for row in read_rows(db)})
    [(0.0, 'round 0'), (0.0, 'round 1'), (0.3, 'round 0'), (0.3, 'round 1')]
    >>> r = run_sweep(cfg, db, jobs=1, quiet=True)  # a rerun finds every task done
    >>> r.n_computed, r.n_skipped
    (0, 2)
    >>> tmp.cleanup()
    """
    from tqdm.auto import tqdm

    from .baselines import check_baseline_dependencies

    t_start = time.perf_counter()
    if not isinstance(config, ExperimentConfig):
        config = load_sweep_config(config)
    run_opts = _run_options(blas_threads, backend, device, "float64" if dtype == "auto" else dtype)
    if batch != "auto" and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise ValueError(f"batch must be 'auto' or an integer >= 1, got {batch!r}")
    only = None
    if datasets is not None:
        only = list(datasets)
        unknown = [d for d in only if d not in {ds.name for ds in config.datasets}]
        if unknown or not only:
            raise ValueError(f"datasets must name tables of the config {[ds.name for ds in config.datasets]}, "
                             f"got {only!r}")
    check_work(config, allow_large=allow_large)
    check_baseline_dependencies(config.baselines)
    stack = contextlib.ExitStack()
    client = stack.enter_context(_dask_client(scheduler, connect_timeout)) if scheduler else None
    seconds, caught = [], []
    try:
        payloads = payloads or prepare_datasets(config)
        with ResultStore(db_path) as store:
            store.add_config(config.to_dict())  # the latest, and among every config that wrote here
            tasks, todo, replaced = _todo(config, payloads, store, quiet, db_path, only)
            groups = _group_by_labels(todo, config, payloads)
            bar = tqdm(total=len(tasks), initial=len(tasks) - len(todo), disable=quiet, unit="task",
                       desc=desc, dynamic_ncols=True, file=sys.stderr)
            hashes = {t: payloads[t.dataset]["config_hash"] for t in groups}
            claims = _Claims(store, list(groups), hashes, lease=lease_seconds, poll=min(2.0, lease_seconds / 4),
                             on_done_elsewhere=lambda t: bar.update(len(groups[t])))

            def on_done(rec):
                group = groups[_task_of(rec)]
                store.put_many([rec if t.task_id == rec["task_id"] else _copy_record(rec, t, config, payloads)
                                for t in group])
                bar.update(len(group))
                seconds.append(rec["seconds"])
                caught.extend(rec["solver"].get("warnings", []))

            renewer = _Renewer(db_path, claims.owner, lease_seconds)
            width = 1 if client is not None else batch_size(config, payloads, batch)
            run_opts["dtype"] = ("float32" if width > 1 else "float64") if dtype == "auto" else run_opts["dtype"]
            if width > 1 and not quiet:
                print(f"selfdistill: {width} tasks at a time in this process, sharing their passes over X",
                      file=sys.stderr)
            try:
                with bar:
                    _execute(claims, config, payloads, client=client, jobs=jobs, run_opts=run_opts,
                             max_restarts=max_restarts, on_done=on_done, batch=width)
            finally:
                renewer.stop()
                store.release(claims.owner)  # unfinished tasks (Ctrl-C, an error) go to other drivers at once
    finally:
        stack.close()
    return SweepResult(db_path=Path(db_path), n_tasks=len(tasks), n_computed=len(todo),
                       n_skipped=len(tasks) - len(todo), n_replaced=replaced, seconds=time.perf_counter() - t_start,
                       task_seconds=seconds, warnings=list(dict.fromkeys(caught)))


def _run_options(blas_threads, backend, device, dtype="float64") -> dict[str, Any]:
    """compute_task's execution keywords, checked here (a ValueError naming the argument) so that a
    bad backend, device or dtype fails before any task starts."""
    from .._backend import check_backend

    if dtype not in ("float64", "float32"):
        raise ValueError(f"dtype must be 'auto', 'float64' or 'float32', got {dtype!r}")
    backend, device, _ = check_backend(backend, device, dtype)  # device: "cpu" or the torch device string
    return {"blas_threads": blas_threads, "backend": backend, "device": device, "dtype": dtype}


def _task_of(rec):
    from .config import Task

    return Task(rec["dataset"], rec["noise"], rec["rate"], rec["seed"])
