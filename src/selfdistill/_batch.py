"""Batched passes: probes solved at the same time over one X share every pass over X (internal).

Each probe keeps its own solver (``_newton.newton_cg``: its own Newton, CG and line-search state,
its own stopping test) and runs it in its own thread. Its two kinds of pass over the features,
``forward`` (Z = X W^T, n x K) and ``backward`` (G^T X, K x d), go through a :class:`PassBatcher`:
it waits until every probe still running has asked for its next pass, then serves the requests of
one kind and precision with *one* product over X,

    X [W_1; ...; W_B]^T  (n, K_1 + ... + K_B)      or      [G_1 ... G_B]^T X  (K_1 + ... + K_B, d),

and hands each probe its own columns (rows). The product is memory-bound for small K, so B probes
cost little more than one (benchmarks/RESULTS.md). A probe that has converged leaves the batch;
the others go on. BLAS computes each output column from the same operands whatever the other
columns, so a batched probe takes the same steps as the same probe fitted alone.

Scheduling: when every running probe waits, the largest group of requests that agree in (kind,
precision) is served, together with every group already passed over once, so requests that are
out of step (a float64 gradient beside float32 passes, a line search's extra pass) wait at most
one round and the groups fall back into step.

Between passes the problems take turns (one baton): each runs its own element-wise and K x d work
alone, since concurrent BLAS calls from several threads slow each other down; the shared products
use every BLAS thread.

:func:`share_passes` registers one X for the whole process: every fit on that array (by identity)
in any thread then goes through the same batcher, which is how the experiment runner lets the
chains of many tasks share X without knowing about one another.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np


class _Request:
    __slots__ = ("kind", "dtype", "arr", "out", "error", "done", "skipped")

    def __init__(self, kind, dtype, arr):
        self.kind, self.dtype, self.arr = kind, dtype, arr
        self.out = self.error = None
        self.done = False
        self.skipped = 0


class PassBatcher:
    """Serves the passes over one ``_backend.Features`` of every problem registered with it.

    Parameters
    ----------
    feats : ``_backend.Features`` of X (n, d).

    Attributes
    ----------
    passes : Counter of (kind, dtype name) -> products over X computed.
    requests : Counter of (kind, dtype name) -> passes asked for (requests / passes is the batch
        width actually reached).
    """

    def __init__(self, feats):
        self.feats = feats
        self._cond = threading.Condition()
        self._running = 0
        self._reserved = 0
        self._pending: list[_Request] = []
        self.passes: Counter = Counter()
        self.requests: Counter = Counter()
        # one problem at a time runs its own (element-wise, K x d) work: concurrent BLAS calls from
        # several threads slow each other down (measured: 2x slower than taking turns)
        self._baton = threading.Lock()
        self.eig: dict = {}  # eigen-decompositions of X^T D X / n, by row weights, shared by the problems
        self.eig_lock = threading.Lock()

    def reserve(self, count: int) -> None:
        """Count ``count`` problems as running before their threads start (each :meth:`problem`
        then takes one), so the first passes already wait for all of them."""
        with self._cond:
            self._running += count
            self._reserved += count

    @contextlib.contextmanager
    def problem(self) -> Iterator[BatchedFeatures]:
        """Register one problem for the block; yields the features its solver is to use."""
        with self._cond:
            if self._reserved:
                self._reserved -= 1
            else:
                self._running += 1
        self._baton.acquire()
        try:
            yield BatchedFeatures(self)
        finally:
            self._baton.release()
            with self._cond:
                self._running -= 1
                self._serve_if_ready()

    def request(self, kind, arr, dtype):
        """One pass for one problem: blocks until it is served; returns that problem's part."""
        req = _Request(kind, np.dtype(dtype), arr)
        self._baton.release()  # another problem may run its own work while this one waits
        try:
            with self._cond:
                self._pending.append(req)
                self._serve_if_ready()
                while not req.done:
                    self._cond.wait()
        finally:
            self._baton.acquire()
        if req.error is not None:
            raise req.error
        return req.out

    # -- under the lock
    def _serve_if_ready(self):
        if not self._pending or len(self._pending) < self._running:
            return
        groups: dict[tuple, list[_Request]] = {}
        for r in self._pending:
            groups.setdefault((r.kind, r.dtype.name), []).append(r)
        largest = max(groups, key=lambda k: len(groups[k]))
        serve = [k for k, reqs in groups.items() if k == largest or any(r.skipped for r in reqs)]
        for key in serve:
            self._serve(groups.pop(key))
        for reqs in groups.values():
            for r in reqs:
                r.skipped += 1
        self._pending = [r for reqs in groups.values() for r in reqs]
        self._cond.notify_all()

    def _serve(self, reqs):
        kind, dtype = reqs[0].kind, reqs[0].dtype
        self.passes[(kind, dtype.name)] += 1
        self.requests[(kind, dtype.name)] += len(reqs)
        try:
            if len(reqs) == 1:
                r = reqs[0]
                r.out = self.feats.forward(r.arr, dtype) if kind == "forward" else self.feats.backward(r.arr, dtype)
            else:
                self._serve_many(reqs, kind, dtype)
        except Exception as exc:  # every problem of the group sees the failure
            for r in reqs:
                r.error = exc
        for r in reqs:
            r.done = True
            r.arr = None

    def _serve_many(self, reqs, kind, dtype):
        ops = self.feats.ops
        widths = [r.arr.shape[0] if kind == "forward" else r.arr.shape[1] for r in reqs]
        edges = np.concatenate([[0], np.cumsum(widths)])
        if kind == "forward":
            Z = self.feats.forward(ops.concat([ops.cast(r.arr, dtype) for r in reqs], 0), dtype)
            for r, a, b in zip(reqs, edges[:-1], edges[1:], strict=True):
                r.out = ops.contiguous(Z[:, a:b])
        else:
            M = self.feats.backward(ops.concat([ops.cast(r.arr, dtype) for r in reqs], 1), dtype)
            for r, a, b in zip(reqs, edges[:-1], edges[1:], strict=True):
                r.out = ops.contiguous(M[a:b])


class BatchedFeatures:
    """The ``_backend.Features`` interface for one problem of a :class:`PassBatcher`: its passes
    are batched with the other problems'; everything else is the shared features'."""

    def __init__(self, batcher: PassBatcher):
        self.batcher = batcher
        f = batcher.feats
        self.ops, self.n, self.d, self.dtype = f.ops, f.n, f.d, f.dtype
        self.streamed, self.chunk_rows = f.streamed, f.chunk_rows

    def forward(self, W, dtype=None):
        """Z = X W^T (n, K) in ``dtype`` (default the working precision), batched."""
        return self.batcher.request("forward", W, self.dtype if dtype is None else dtype)

    def backward(self, G, dtype=None):
        """G^T X (K, d) as float64, its pass in ``dtype``, batched."""
        return self.batcher.request("backward", G, self.dtype if dtype is None else dtype)

    def row_norms(self):
        return self.batcher.feats.row_norms()

    def second_moment(self, weights=None):
        return self.batcher.feats.second_moment(weights)


# ---------------------------------------------------------------- process-wide sharing of one X
_SHARED: dict[int, tuple[Any, PassBatcher, tuple]] = {}
_SHARED_LOCK = threading.Lock()


@contextlib.contextmanager
def share_passes(X, backend="numpy", device=None, dtype=np.float64, chunk_rows=None) -> Iterator[PassBatcher]:
    """Within the block, every fit on the array ``X`` (this very object, not an equal copy) with
    the same backend, device, working precision and ``chunk_rows`` runs its passes through one
    :class:`PassBatcher`, whichever thread it runs in. Yields the batcher (its counts).
    """
    from ._backend import Features, check_backend, make_ops

    backend, device, dtype = check_backend(backend, device, dtype)
    ops = make_ops(backend, device)
    batcher = PassBatcher(Features(X, ops, dtype, chunk_rows))
    with _SHARED_LOCK:
        if id(X) in _SHARED:
            raise RuntimeError("share_passes: this X is already shared")
        _SHARED[id(X)] = (X, batcher, _signature(ops, dtype, chunk_rows))
    try:
        yield batcher
    finally:
        with _SHARED_LOCK:
            del _SHARED[id(X)]


def _signature(ops, dtype, chunk_rows):
    return (ops.name, str(ops.device), np.dtype(dtype).name, chunk_rows)


def shared_batcher(X, ops, dtype, chunk_rows) -> PassBatcher | None:
    """The batcher :func:`share_passes` registered for ``X`` with these settings, or None."""
    with _SHARED_LOCK:
        entry = _SHARED.get(id(X))
    if entry is None or entry[0] is not X or entry[2] != _signature(ops, dtype, chunk_rows):
        return None
    return entry[1]


def run_threads(jobs) -> list:
    """Run each zero-argument callable of ``jobs`` in its own thread; their results in order.

    The first exception raised by any job is re-raised here once every thread has ended.
    """
    results: list = [None] * len(jobs)
    errors: list = [None] * len(jobs)

    def work(i):
        try:
            results[i] = jobs[i]()
        except BaseException as exc:  # noqa: B036 - handed to the caller
            errors[i] = exc

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for e in errors:
        if e is not None:
            raise e
    return results
