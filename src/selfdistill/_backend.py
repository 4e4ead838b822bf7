"""Array backends for the probe solver: NumPy (the default) and PyTorch (optional; CPU or CUDA).

The solver (``_newton.py``, behind ``probe.py``) is written once against the small interface
below. Its heavy work is two kinds of pass over the feature matrix, ``forward`` (Z = X W^T,
n x K) and ``backward`` (G^T X, K x d), plus row-wise softmax arithmetic on n x K arrays;
everything K x d or smaller (weights, gradients, CG vectors, the preconditioner) is cheap.

Precision: a :class:`Features` holds the features in a *working* precision (float64, or float32
for speed) and can always evaluate a pass in float64 (from a float64 copy, or by upcasting row
chunks), so the solver can iterate in float32 and finish ("polish") in float64.

Chunking: features given as a ``numpy.memmap`` (or with ``chunk_rows``) are streamed in row
chunks, so only O(chunk_rows * d) of them is in memory at once (plus the n x K arrays).

torch is imported lazily: the NumPy path never needs it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _validation

BACKENDS = ("numpy", "torch")
DTYPES = (np.float64, np.float32)


def check_backend(backend, device, dtype):
    """Validate (backend, device, dtype); return (backend, device, numpy dtype)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None and backend == "torch":
        dt = _np_dtype_from_torch(dtype)
    if dt not in (np.dtype(np.float64), np.dtype(np.float32)):
        raise ValueError(f"dtype must be float64 or float32, got {dtype!r}")
    if backend == "numpy":
        if device not in (None, "cpu"):
            raise ValueError(f"device={device!r} needs backend='torch'; the numpy backend runs on the CPU only")
        device = "cpu"
    else:
        torch = import_torch()
        device = "cpu" if device is None else str(device)
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device={device!r}: torch {torch.__version__} sees no CUDA device")
    return backend, device, dt


def import_torch():
    try:
        import torch
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            "backend='torch' needs PyTorch, an optional dependency: pip install 'selfdistill[torch]'"
        ) from None
    return torch


def _np_dtype_from_torch(dtype):
    try:
        torch = import_torch()
    except ImportError:
        return None
    return {torch.float64: np.dtype(np.float64), torch.float32: np.dtype(np.float32)}.get(dtype)


# ---------------------------------------------------------------- elementwise / small algebra
class NumpyOps:
    """Array operations on NumPy arrays (float64 for K x d quantities)."""

    name = "numpy"
    device: Any  # "cpu" here; a torch.device in TorchOps

    def __init__(self, device="cpu"):
        self.device = "cpu"

    # conversion
    def asarray(self, a, dtype=np.float64):
        return np.asarray(a, dtype=dtype)

    def to_numpy(self, a):
        return np.asarray(a)

    def cast(self, a, dtype):
        return a if a.dtype == dtype else a.astype(dtype)

    def zeros(self, shape, dtype=np.float64):
        return np.zeros(shape, dtype=dtype)

    def copy(self, a):
        return a.copy()

    def concat(self, arrays, axis):
        return np.concatenate(arrays, axis=axis)

    def contiguous(self, a):
        return np.ascontiguousarray(a)

    # reductions returning Python floats
    def vdot(self, a, b):
        return float(np.vdot(a, b))

    def amax_abs(self, a):
        return float(np.abs(a).max()) if a.size else 0.0

    def total(self, a):
        return float(a.sum(dtype=np.float64))

    # row-wise
    def exp(self, a):
        return np.exp(a)

    def log(self, a):
        return np.log(a)

    def rowmax(self, a):
        return a.max(axis=1, keepdims=True)

    def rowsum(self, a):
        return a.sum(axis=1, keepdims=True)

    def colsum(self, a):
        return a.sum(axis=0)

    def where(self, mask, a, b):
        return np.where(mask, a, b)

    def power(self, a, q):
        return a**q

    # small dense algebra (float64)
    def eigh(self, S):
        w, V = np.linalg.eigh(S)
        return w, V

    def diag(self, v):
        return np.diag(v)

    def outer(self, a, b):
        return np.outer(a, b)

    def clip_min(self, a, low):
        return np.maximum(a, low)

    def inf_where_small(self, sig, thresh):
        return np.where(sig > thresh, sig, np.inf)

    def top_values(self, Z, m):
        """The m largest entries of each row of Z, in decreasing order, (n, m)."""
        K = Z.shape[1]
        return -np.sort(-np.partition(Z, K - m, axis=1)[:, K - m :], axis=1)

    def count_true(self, mask) -> int:
        return int(np.count_nonzero(mask))

    def sync(self):
        pass

    # the reductions of the input checks (_validation.check_feature_values, check_target_matrix),
    # which are written once for every backend
    def extremes(self, a) -> tuple[float, float]:
        """(min, max) of ``a`` as floats: NaN if ``a`` holds one, +-inf if it holds one."""
        return float(a.min()), float(a.max())

    def first_nonfinite(self, a) -> tuple:
        """(value, row, column) of the first non-finite entry of a 2-D ``a`` (row-major), and their count."""
        bad = ~np.isfinite(a)
        r, c = np.argwhere(bad)[0]
        return a[r, c], int(r), int(c), int(np.count_nonzero(bad))

    def largest_abs(self, a, limit: float) -> tuple:
        """(value, row, column) of the entry of a 2-D ``a`` largest in magnitude, and the count of |a| > limit."""
        mag = np.abs(a)
        r, c = np.unravel_index(int(np.argmax(mag)), mag.shape)
        return a[r, c], int(r), int(c), int(np.count_nonzero(mag > limit))

    def row_sums(self, a) -> np.ndarray:
        """The row sums of a 2-D ``a`` in float64, a NumPy array (n,)."""
        return a.sum(axis=1, dtype=np.float64)

    def row_mins(self, a) -> np.ndarray:
        """The row minima of a 2-D ``a``, a NumPy float64 array (n,)."""
        return np.asarray(a.min(axis=1), dtype=np.float64)


class TorchOps(NumpyOps):
    """The same operations on torch tensors on ``device``."""

    name = "torch"

    def __init__(self, device="cpu"):
        self.torch = import_torch()
        self.device = self.torch.device(device)

    def tdtype(self, dtype):
        return self.torch.float64 if np.dtype(dtype) == np.float64 else self.torch.float32

    def asarray(self, a, dtype=np.float64):
        t = self.torch
        if isinstance(a, t.Tensor):
            return a.to(device=self.device, dtype=self.tdtype(dtype))
        arr = np.asarray(a)
        if arr.dtype == bool:
            return t.from_numpy(np.ascontiguousarray(arr)).to(self.device)
        return t.from_numpy(np.ascontiguousarray(arr, dtype=dtype)).to(self.device)

    def to_numpy(self, a):
        if isinstance(a, self.torch.Tensor):
            return a.detach().cpu().numpy()
        return np.asarray(a)

    def cast(self, a, dtype):
        td = self.tdtype(dtype)
        return a if a.dtype == td else a.to(td)

    def zeros(self, shape, dtype=np.float64):
        return self.torch.zeros(shape, dtype=self.tdtype(dtype), device=self.device)

    def copy(self, a):
        return a.clone()

    def concat(self, arrays, axis):
        return self.torch.cat(arrays, dim=axis)

    def contiguous(self, a):
        return a.contiguous()

    def vdot(self, a, b):
        return float((a * b).sum())

    def amax_abs(self, a):
        return float(a.abs().max()) if a.numel() else 0.0

    def total(self, a):
        return float(a.sum(dtype=self.torch.float64))

    def exp(self, a):
        return self.torch.exp(a)

    def log(self, a):
        return self.torch.log(a)

    def rowmax(self, a):
        return a.amax(dim=1, keepdim=True)

    def rowsum(self, a):
        return a.sum(dim=1, keepdim=True)

    def colsum(self, a):
        return a.sum(dim=0)

    def where(self, mask, a, b):
        t = self.torch
        if not isinstance(a, t.Tensor):
            a = t.tensor(a, dtype=b.dtype, device=b.device)
        if not isinstance(b, t.Tensor):
            b = t.tensor(b, dtype=a.dtype, device=a.device)
        return t.where(mask, a, b)

    def power(self, a, q):
        return a.pow(q)

    def eigh(self, S):
        # small symmetric eigenproblems: on the CPU in float64 (robust everywhere), result moved back
        w, V = np.linalg.eigh(self.to_numpy(S).astype(np.float64))
        return self.asarray(w, np.float64), self.asarray(V, np.float64)

    def diag(self, v):
        return self.torch.diag(v)

    def outer(self, a, b):
        return self.torch.outer(a, b)

    def clip_min(self, a, low):
        return self.torch.clamp(a, min=low)

    def inf_where_small(self, sig, thresh):
        return self.torch.where(sig > thresh, sig, self.torch.full_like(sig, float("inf")))

    def top_values(self, Z, m):
        return self.torch.topk(Z, m, dim=1).values

    def count_true(self, mask) -> int:
        return int(mask.sum())

    def sync(self):
        if self.device.type == "cuda":
            self.torch.cuda.synchronize(self.device)

    # the input checks' reductions, on the tensor's device; only (n,) row summaries come to the host
    def first_nonfinite(self, a) -> tuple:
        bad = ~self.torch.isfinite(a)
        r, c = (int(i) for i in bad.nonzero()[0])
        return float(a[r, c]), r, c, int(bad.sum())

    def largest_abs(self, a, limit: float) -> tuple:
        mag = a.abs()
        r, c = divmod(int(mag.argmax()), a.shape[1])
        return float(a[r, c]), r, c, int((mag > limit).sum())

    def row_sums(self, a) -> np.ndarray:
        return self.to_numpy(a.sum(dim=1, dtype=self.torch.float64))

    def row_mins(self, a) -> np.ndarray:
        return self.to_numpy(a.amin(dim=1).to(self.torch.float64))


def make_ops(backend, device):
    return NumpyOps() if backend == "numpy" else TorchOps(device)


def is_tensor(a) -> bool:
    """Whether ``a`` is a torch tensor (torch is not imported to find out)."""
    return type(a).__module__.startswith("torch")


def ops_of(a):
    """The ops of ``a``'s backend: TorchOps on a tensor's device, NumpyOps for anything else."""
    return TorchOps(a.device) if is_tensor(a) else NumpyOps()


# ---------------------------------------------------------------- the feature matrix
class Features:
    """The feature matrix on a backend, with its two passes in float32 or float64.

    Parameters
    ----------
    X : (n, d) NumPy array, ``numpy.memmap`` (streamed in row chunks) or torch tensor.
    ops : NumpyOps / TorchOps.
    dtype : working precision of the iterations (float64 or float32).
    chunk_rows : rows per chunk when streaming; None streams memory maps only.
    """

    def __init__(self, X, ops, dtype=np.float64, chunk_rows=None):
        self.ops = ops
        self.n, self.d = X.shape
        self.dtype = np.dtype(dtype)
        self.streamed = isinstance(X, np.memmap) or chunk_rows is not None
        self.chunk_rows = int(chunk_rows) if chunk_rows is not None else _validation.CHUNK_ROWS
        if ops.name == "numpy":
            if self.streamed:
                self.src = X  # rows are read (and cast) chunk by chunk
                self.work = None
                self.hi = None
            else:
                X = np.asarray(X)
                self.hi = X if X.dtype == np.float64 else None
                self.work = X if X.dtype == self.dtype else np.ascontiguousarray(X, dtype=self.dtype)
                self.src = X
        else:
            t = ops.torch
            if isinstance(X, t.Tensor):
                self.src = X
                self.streamed = False
                self.work = X.to(device=ops.device, dtype=ops.tdtype(self.dtype))
                self.hi = self.work if self.dtype == np.float64 else None
            elif self.streamed:
                # stream host chunks to the device for every pass
                self.src = X
                self.work = None
                self.hi = None
            else:
                self.src = X
                self.work = ops.asarray(X, self.dtype)
                self.hi = self.work if self.dtype == np.float64 else None

    # -- chunk access
    def _chunks(self, dtype):
        """Yield (start, stop, chunk) in ``dtype`` on the backend."""
        ops, c = self.ops, self.chunk_rows
        base = self.work if (self.work is not None and np.dtype(dtype) == self.dtype) else None
        if base is None and np.dtype(dtype) == np.float64 and self.hi is not None:
            base = self.hi
        if base is not None:
            yield 0, self.n, base
            return
        src = self.src if self.work is None else self.work
        for s in range(0, self.n, c):
            e = min(s + c, self.n)
            block = src[s:e]
            if ops.name == "numpy":
                yield s, e, np.asarray(block, dtype=dtype)
            elif isinstance(block, ops.torch.Tensor):
                yield s, e, block.to(ops.tdtype(dtype))
            else:
                yield s, e, ops.asarray(np.asarray(block), dtype)

    def forward(self, W, dtype=None):
        """Z = X W^T, (n, K), computed in ``dtype`` (default: the working precision)."""
        dtype = self.dtype if dtype is None else np.dtype(dtype)
        Wd = self.ops.cast(W, dtype)
        out = None
        for s, e, Xc in self._chunks(dtype):
            Zc = Xc @ Wd.T
            if s == 0 and e == self.n:
                return Zc
            if out is None:
                out = self.ops.zeros((self.n, W.shape[0]), dtype)
            out[s:e] = Zc
        return out

    def backward(self, G, dtype=None):
        """G^T X, (K, d), in ``dtype``; returned as float64."""
        dtype = self.dtype if dtype is None else np.dtype(dtype)
        Gd = self.ops.cast(G, dtype)
        out = None
        for s, e, Xc in self._chunks(dtype):
            # (X^T G)^T: BLAS is several times faster this way round than G^T X for C-ordered X
            part = (Xc.T @ Gd[s:e]).T
            out = part if out is None else out + part
        return self.ops.cast(out, np.float64)

    def row_norms(self):
        """||x_i|| for every row, (n,) float64 on the backend, one pass over X."""
        parts = []
        for _, _, Xc in self._chunks(np.float64):
            parts.append(((Xc * Xc).sum(1)) ** 0.5)
        if len(parts) == 1:
            return parts[0]
        return np.concatenate(parts) if self.ops.name == "numpy" else self.ops.torch.cat(parts)

    def second_moment(self, weights=None):
        """X^T D X / n (d, d) in float64, accumulated over row chunks.

        D = diag(weights) for optional (n, 1) float64 row weights on the backend, else the identity.
        """
        ops = self.ops
        M = None
        c = self.chunk_rows
        src = self.work if self.work is not None else self.src
        for s in range(0, self.n, c):
            block = src[s : s + c]
            if ops.name == "numpy":
                Xc = np.asarray(block, dtype=np.float64)
            elif isinstance(block, ops.torch.Tensor):
                Xc = block.to(ops.torch.float64)
            else:
                Xc = ops.asarray(np.asarray(block), np.float64)
            part = Xc.T @ (Xc if weights is None else Xc * weights[s : s + c])
            M = part if M is None else M + part
        return M / self.n
