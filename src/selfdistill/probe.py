"""The convex solver: L2-regularised softmax regression (a linear probe) with soft targets.

For features X (n, d), targets T (n, K) whose rows sum to 1 and reg > 0 the probe minimises

    L(W, b) = (1/n) sum_i CE(t_i, softmax(W x_i + b)) + (reg/2) ||W||_F^2 ,

W (K, d), b (K,) (b only with ``fit_intercept``, unpenalised and kept centred, sum_k b_k = 0,
which fixes softmax's shift invariance). With rows of T summing to 1,
CE(t, softmax(z)) = logsumexp(z) - t.z is convex in z whatever the signs of t, so L is strictly
convex in W and the minimiser is unique. At the optimum reg * n * W = (T - P)^T X (docs/science.md, setting).

Two non-convex partial-label losses over a candidate set S_i (the teacher's top-k labels) share
the solver (students start from their teacher's weights):

- ``candidate``: -log sum_{j in S_i} p_j(x_i)    (the classic PLL loss)
- ``gce``: (1/k) sum_{j in S_i} (1 - p_j(x_i)^q) / q, q = 0.7    (the authors' experiment code)

Algorithm: inexact Newton with a truncated, preconditioned conjugate-gradient inner
solve on exact Hessian-vector products (two matrix products with X each), and a backtracking
line search. The preconditioner is Kronecker-factored, H ~ (X^T X / n) (x) S + reg I with S the
mean softmax curvature (K x K): exact at W = 0 and cheap to invert through two small
eigen-decompositions. Memory is O(n d + n K): no n x n matrix is ever formed. Convergence means

    max_abs(grad) <= tol * max(1, max_abs(grad at the start)),

always tested on a float64 gradient. The passes over X go through ``_backend.Features``: NumPy
(default) or PyTorch (``backend="torch"``, CPU or CUDA), float64 or float32 iterations
(``dtype=np.float32``: float32 passes, then float64 gradients once float32 stops resolving the
decrease), in-memory or streamed in row chunks (memory-mapped .npy features). Speed notes and
measurements: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from ._backend import Features, NumpyOps, check_backend, import_torch, make_ops
from ._validation import check_features, check_int, check_labels, check_positive, check_targets

__all__ = ["LinearProbe", "fit_linear_probe", "fit_partial_label_probe", "softmax", "log_softmax", "ConvergenceWarning"]

GCE_Q = 0.7
_EPS = np.finfo(np.float64).eps


def log_softmax(Z: np.ndarray) -> np.ndarray:
    """Row-wise log softmax of logits Z (n, K), computed stably (max subtracted)."""
    Zs = Z - Z.max(axis=1, keepdims=True)
    return Zs - np.log(np.exp(Zs).sum(axis=1, keepdims=True))


def softmax(Z: np.ndarray) -> np.ndarray:
    """Row-wise softmax of logits Z (n, K): P_ik = exp(Z_ik) / sum_j exp(Z_ij)."""
    E = np.exp(Z - Z.max(axis=1, keepdims=True))
    E /= E.sum(axis=1, keepdims=True)
    return E


_NUMPY = NumpyOps()


def _log_softmax_ops(ops, Z):
    """(log P, P) for logits Z on the backend, in Z's precision; Z may be overwritten."""
    Z = Z - ops.rowmax(Z)
    E = ops.exp(Z)
    s = ops.rowsum(E)
    E /= s
    Z -= ops.log(s)
    return Z, E


def _softmax_jvp(P, V, ops=_NUMPY):
    """(diag(p) - p p^T) v for every row: the softmax Jacobian applied to V (n, K)."""
    PV = P * V
    return PV - P * ops.rowsum(PV)


def _as_dtype(ops, a, like):
    return ops.cast(a, like.dtype if ops.name == "numpy" else (np.float64 if like.dtype == ops.torch.float64 else np.float32))


# ---------------------------------------------------------------- losses on the logits Z (n, K)
class _CrossEntropy:
    """sum_i logsumexp(z_i) - t_i.z_i for targets T whose rows sum to 1.

    T is an (n, K) array of soft targets, or (n,) integer labels (one-hot targets, stored as
    labels to save an n x K array).
    """

    convex = True

    def __init__(self, T, ops=_NUMPY):
        self.ops = ops
        self.labels = T.ndim == 1
        self.T = T
        self._cache = {}

    def _T(self, like):
        key = str(like.dtype)
        if key not in self._cache:
            self._cache = {key: _as_dtype(self.ops, self.T, like)}
        return self._cache[key]

    def value_grad(self, Z):
        ops = self.ops
        logP, P = _log_softmax_ops(ops, Z)
        if self.labels:
            idx = self.T
            if ops.name == "numpy":
                rows = np.arange(idx.shape[0])
                value = -ops.total(logP[rows, idx])
                G = P.copy()
                G[rows, idx] -= 1.0
            else:
                picked = logP.gather(1, idx[:, None])
                value = -ops.total(picked)
                G = P.clone()
                G.scatter_add_(1, idx[:, None], -ops.torch.ones_like(picked))
        else:
            T = self._T(Z)
            # logsumexp(z) - t.z = -t.log p  when sum(t) = 1
            value = -ops.total(T * logP)
            G = P - T
        self._P = P
        return value, G

    def hess_curv(self):
        return self._P

    def hessp(self, V):
        return _softmax_jvp(_as_dtype(self.ops, self._P, V), V, self.ops)


class _Candidate:
    """sum_i -log sum_j w_ij p_ij: the weighted likelihood of the candidate set.

    w (n, K): candidate weights, rows summing to 1. For 1/k on each of k candidates this is
    -log sum_{j in S_i} p_ij + log k, so the same minimiser as the unweighted candidate loss.
    """

    convex = False

    def __init__(self, weights, ops=_NUMPY):
        self.ops = ops
        self.mask = weights > 0
        with np.errstate(divide="ignore"):
            self.log_w = np.log(weights) if ops.name != "torch" else ops.torch.log(weights)

    def value_grad(self, Z):
        ops = self.ops
        logP, P = _log_softmax_ops(ops, Z)
        masked = ops.where(self.mask, logP + _as_dtype(ops, self.log_w, logP), -np.inf)
        m = ops.rowmax(masked)
        log_mass = m + ops.log(ops.rowsum(ops.exp(masked - m)))
        Q = ops.where(self.mask, ops.exp(masked - log_mass), 0.0)
        self._P, self._Q = P, Q
        return -ops.total(log_mass), P - Q

    def hess_curv(self):
        return self._P

    def hessp(self, V):
        ops = self.ops
        P, Q = _as_dtype(ops, self._P, V), _as_dtype(ops, self._Q, V)
        return _softmax_jvp(P, V, ops) - _softmax_jvp(Q, V, ops)


class _GCE:
    """sum_i sum_j w_ij (1 - p_ij^q) / q: generalised cross-entropy over the candidates.

    w (n, K): candidate weights, rows summing to 1 (1/k on each of k candidates: the mean over S_i).
    """

    convex = False

    def __init__(self, weights, q=GCE_Q, ops=_NUMPY):
        self.ops = ops
        self.w = weights
        self.q = q

    def value_grad(self, Z):
        ops = self.ops
        _, P = _log_softmax_ops(ops, Z)
        A = _as_dtype(ops, self.w, P) * ops.power(P, self.q)
        a = ops.rowsum(A)
        self._P, self._A, self._a = P, A, a
        value = ops.total((1.0 - a) / self.q)
        return value, -(A - a * P)

    def hess_curv(self):
        return self._P

    def hessp(self, V):
        ops = self.ops
        P, A, a = (_as_dtype(ops, x, V) for x in (self._P, self._A, self._a))
        Pv = ops.rowsum(P * V)
        dA = self.q * A * (V - Pv)
        dP = P * V - P * Pv
        return -(dA - ops.rowsum(dA) * P - a * dP)


# ---------------------------------------------------------------- the fitted probe
@dataclass
class LinearProbe:
    """A fitted linear probe p(x) = softmax(W x + b).

    Attributes
    ----------
    coef_ : (K, d) weights W.      intercept_ : (K,) bias b (zeros without fit_intercept).
    n_iter_ : Newton iterations.   objective_ : final value of the training objective.
    grad_norm_ : max-abs gradient at the answer.    converged_ : whether the tol test passed.
    n_grad_evals_, n_hessp_ : objective/gradient and Hessian-vector evaluations.
    seconds_ : wall time of the fit.   loss_ : "ce", "candidate" or "gce".   reg_ : reg.
    """

    coef_: np.ndarray
    intercept_: np.ndarray
    reg_: float
    loss_: str = "ce"
    n_iter_: int = 0
    objective_: float = float("nan")
    grad_norm_: float = float("nan")
    initial_grad_norm_: float = float("nan")
    converged_: bool = False
    n_grad_evals_: int = 0
    n_hessp_: int = 0
    seconds_: float = 0.0
    history_: list = field(default_factory=list, repr=False)

    @property
    def n_classes_(self) -> int:
        return self.coef_.shape[0]

    def decision_function(self, X) -> np.ndarray:
        """Logits Z = X W^T + b, shape (m, K), in float64.

        X may be a float32/float64 ``numpy.memmap`` (e.g. ``np.load(path, mmap_mode="r")``): it is
        then streamed like the fits stream it (``_backend.Features``, row chunks upcast to float64),
        so only O(chunk * d + m * K) is in memory, never the whole of X.
        """
        X = check_features(X, stream=True)
        if X.shape[1] != self.coef_.shape[1]:
            raise ValueError(f"X has {X.shape[1]} features but the probe was fitted on {self.coef_.shape[1]}")
        return Features(X, _NUMPY).forward(self.coef_, np.float64) + self.intercept_

    def predict_proba(self, X) -> np.ndarray:
        """softmax(W x + b) for each row of X, shape (m, K)."""
        return softmax(self.decision_function(X))

    def predict(self, X) -> np.ndarray:
        """argmax_k of the logits (ties to the lowest class index), shape (m,)."""
        return np.argmax(self.decision_function(X), axis=1)


def feature_second_moment_eig(X, chunk_rows=8192):
    """Eigen-decomposition (lam (d,), U (d, d)) of the feature second moment X^T X / n.

    One factor of the Kronecker preconditioner; computed once per feature matrix (distill shares
    it between rounds). Accumulated over row chunks, so X may be a memory map.
    """
    n, d = X.shape
    M = np.zeros((d, d))
    for start in range(0, n, chunk_rows):
        Xc = np.asarray(X[start : start + chunk_rows], dtype=np.float64)
        M += Xc.T @ Xc
    lam, U = np.linalg.eigh(M / n)
    return np.maximum(lam, 0.0), U


class _ChainCache:
    """What a chain of fits on the same features shares: the backend copy of X and the
    eigen-decomposition of X^T X / n (internal; pass as ``_feature_eig`` to the fit functions)."""

    def __init__(self):
        self.features = {}
        self.eig = {}


def _unpack_init(init, K, d, fit_intercept):
    if init is None:
        return np.zeros((K, d)), np.zeros(K)
    if isinstance(init, LinearProbe):
        W, b = init.coef_, init.intercept_
    elif isinstance(init, tuple):
        W, b = init
    else:
        W, b = init, None
    W = np.array(W, dtype=np.float64)
    if W.shape != (K, d):
        raise ValueError(f"init must have shape (K, d) = ({K}, {d}), got {W.shape}")
    b = np.zeros(K) if (b is None or not fit_intercept) else np.array(b, dtype=np.float64).reshape(K)
    if not (np.all(np.isfinite(W)) and np.all(np.isfinite(b))):
        raise ValueError("init must be finite")
    return W, b - b.mean()


# preconditioner's feature factor: "mean" (X^T X / n, fixed) or "weighted" (curvature-weighted)
_PRECOND = "mean"

# forcing term of the inexact Newton step: CG stops at ||r|| <= min(0.5, ||g||^_FORCING) ||g||.
# 0.25 rather than the classical 0.5: at CIFAR-100 scale the tighter solves bought no fewer Newton
# iterations (teacher: 154 Hessian-vector products at 0.25, 237 at 0.5, 205 at 0.1; benchmarks/RESULTS.md)
_FORCING = 0.25
# CG also stops once max|residual| (the next gradient, to first order) is this fraction of the target
_CG_FLOOR = 0.1

# float32 iterations hand over to float64 once max|grad| is below this fraction of its scale
_LO_SWITCH = 1e-4
# ... or once the Newton step's predicted decrease of f is below this multiple of |f|
_LO_RESOLUTION = 1e-5


def _newton_cg(loss, feats, reg, W, b, fit_intercept, tol, max_iter, eig, max_cg=250, direction=None):
    """Minimise (1/n) sum_i loss_i(X W^T + b) + reg/2 ||W||^2 by preconditioned inexact Newton.

    ``direction`` (D_W (K, d), D_b (K,)), if given, first moves the start (W, b) to the minimum of
    the objective on the line (W, b) + c (D_W, D_b), c in [-1, 2] (see :func:`_line_min`).

    ``feats`` (a _backend.Features) does the passes over X. With float32 features the
    iterations run in float32 (gradients, line search, Hessian-vector products) until the
    gradient reaches float32's resolution, then finish with float64 gradients (the convergence
    test is always on a float64 gradient). Hessian-vector products stay in the working precision.
    """
    ops = feats.ops
    n = feats.n
    K = W.shape[0]
    lo = feats.dtype == np.float32
    counts = {"grad": 0, "hessp": 0, "grad_lo": 0}
    hdt = feats.dtype

    def fg(W, b, dtype):
        Z = feats.forward(W, dtype)
        if fit_intercept:
            Z += ops.cast(b, dtype)
        value, G = loss.value_grad(Z)
        counts["grad"] += 1
        if np.dtype(dtype) == np.float32:
            counts["grad_lo"] += 1
        f = value / n + 0.5 * reg * ops.vdot(W, W)
        gW = feats.backward(G, dtype) / n + reg * W
        gb = ops.cast(ops.colsum(G), np.float64) / n if fit_intercept else ops.zeros(K)
        return f, gW, gb

    def hessp(VW, vb):
        Zv = feats.forward(VW, hdt)
        if fit_intercept:
            Zv += ops.cast(vb, hdt)
        H = loss.hessp(Zv)
        counts["hessp"] += 1
        hb = ops.cast(ops.colsum(H), np.float64) / n if fit_intercept else ops.zeros(K)
        return feats.backward(H, hdt) / n + reg * VW, hb

    def gmax(gW, gb):
        return max(ops.amax_abs(gW), ops.amax_abs(gb) if fit_intercept else 0.0)

    # Kronecker-factored preconditioner: H ~ (X^T X / n) (x) S + reg I, S the mean softmax curvature
    lam, U = eig
    UT = U.T

    def make_precond(P):
        lam_, U_, UT_ = lam, U, UT
        if _PRECOND == "weighted":
            # feature factor weighted by each point's softmax curvature tr(S_i) = 1 - |p_i|^2:
            # points fitted with confidence add no curvature; exact at W = 0 like the plain one
            c = 1.0 - ops.rowsum(P * P)[:, 0]
            cbar = max(ops.total(c) / n, 1e-300)
            A = feats.weighted_second_moment(c) / cbar
            lam_, U_ = ops.eigh(0.5 * (A + A.T))
            lam_ = ops.clip_min(lam_, 0.0)
            UT_ = U_.T
        P = ops.cast(P, np.float64) if ops.name == "numpy" else P.to(ops.torch.float64)
        S = (ops.diag(ops.colsum(P)) - P.T @ P) / n
        sig, V = ops.eigh(0.5 * (S + S.T))
        sig = ops.clip_min(sig, 0.0)
        denom = ops.outer(sig, lam_) + reg  # (K, d) in the eigenbases
        sig_b = ops.inf_where_small(sig, 1e-12 * max(1.0, float(sig.max())))
        VT = V.T

        def apply(rW, rb):
            zW = V @ (((VT @ rW) @ U_) / denom) @ UT_
            zb = V @ ((VT @ rb) / sig_b) if fit_intercept else rb
            return zW, zb

        return apply

    def dot2(aW, ab, bW, bb):
        return ops.vdot(aW, bW) + (ops.vdot(ab, bb) if fit_intercept else 0.0)

    if direction is not None:
        W, b = _line_min(loss, feats, reg, W, b, direction, fit_intercept)
        counts["grad"] += 1  # its two forward passes, X W^T and X D^T
    gdt = np.float32 if lo else np.float64
    f, gW, gb = fg(W, b, gdt)
    g0 = gmax(gW, gb)
    if lo:  # the reference scale and the convergence test are float64 quantities
        f, gW, gb = fg(W, b, np.float64)
        g0 = gmax(gW, gb)
    thresh = tol * max(1.0, g0)
    lo_target = max(thresh, _LO_SWITCH * max(1.0, g0))
    history = [(f, g0, 0, counts["grad"])]  # (objective, max|grad|, CG steps, evaluations so far)
    it = 0
    while it < max_iter:
        g_now = gmax(gW, gb)
        if lo and g_now <= lo_target:
            lo, gdt = False, np.float64
            f, gW, gb = fg(W, b, gdt)
            g_now = gmax(gW, gb)
        if g_now <= thresh and not lo:
            break
        it += 1
        precond = make_precond(loss.hess_curv())
        # truncated PCG on H p = -g, with negative-curvature exit
        gnorm = np.sqrt(dot2(gW, gb, gW, gb))
        cg_tol = min(0.5, gnorm**_FORCING) * gnorm
        pW, pb = ops.zeros(W.shape), ops.zeros(b.shape)
        rW, rb = -gW, -gb
        zW, zb = precond(rW, rb)
        dW, dbv = zW, zb
        rz = dot2(rW, rb, zW, zb)
        for j in range(max_cg):
            hW, hb = hessp(dW, dbv)
            curv = dot2(dW, dbv, hW, hb)
            if curv <= 0:
                if j == 0:
                    pW, pb = dW, dbv
                break
            alpha = rz / curv
            pW = pW + alpha * dW
            pb = pb + alpha * dbv
            rW = rW - alpha * hW
            rb = rb - alpha * hb
            if np.sqrt(dot2(rW, rb, rW, rb)) <= cg_tol or gmax(rW, rb) <= _CG_FLOOR * thresh:
                break
            zW, zb = precond(rW, rb)
            rz_new = dot2(rW, rb, zW, zb)
            beta = rz_new / rz
            rz = rz_new
            dW = zW + beta * dW
            dbv = zb + beta * dbv
        if fit_intercept:
            pb = pb - pb.mean()
        slope = dot2(gW, gb, pW, pb)
        if slope >= 0:  # not a descent direction (round-off): fall back to steepest descent
            pW, pb = precond(-gW, -gb)
            slope = dot2(gW, gb, pW, pb)
        if lo and -slope <= _LO_RESOLUTION * max(1.0, abs(f)):
            # the predicted decrease is below float32's resolution of f: finish in float64
            lo, gdt = False, np.float64
            f, gW, gb = fg(W, b, gdt)
            slope = dot2(gW, gb, pW, pb)
            if slope >= 0:
                continue
        # backtracking line search (Armijo); near the optimum accept a step that lowers |grad|
        eps = np.finfo(gdt).eps
        step = 1.0
        accepted = False
        for _ in range(6 if lo else 60):
            Wn, bn = W + step * pW, b + step * pb
            fn, gWn, gbn = fg(Wn, bn, gdt)
            if fn <= f + 1e-4 * step * slope or (
                fn <= f + 64 * eps * max(1.0, abs(f)) and gmax(gWn, gbn) < g_now
            ):
                accepted = True
                break
            step *= 0.5
        if not accepted:
            if lo:  # float32 resolution reached: continue in float64
                lo, gdt = False, np.float64
                f, gW, gb = fg(W, b, gdt)
                continue
            break  # no progress possible at float64 precision
        W, b, f, gW, gb = Wn, bn, fn, gWn, gbn
        history.append((f, gmax(gW, gb), j + 1, counts["grad"] + counts["hessp"]))
    if lo:  # stopped (max_iter) while in float32: report float64 quantities
        f, gW, gb = fg(W, b, np.float64)
    gfin = gmax(gW, gb)
    return W, b, f, gfin, g0, gfin <= thresh, it, counts, history


def _line_min(loss, feats, reg, W, b, D, fit_intercept, iters=6):
    """(W, b) + c (D_W, D_b) with c = argmin over [-1, 2] of the objective on that line.

    phi(c) = (1/n) sum_i loss_i(Z0 + c Zd) + reg/2 ||W + c D_W||^2 with Z0 = X W^T + b and
    Zd = X D_W^T + D_b: two passes over X, then 1-D Newton steps on n x K arrays only (a few at
    a time: the logits Z0 + c Zd are updated in place). phi is convex; the answer is never worse
    than c = 0 (the start is kept if it is).
    """
    ops = feats.ops
    n = feats.n
    DW = ops.asarray(D[0], np.float64)
    Db = ops.asarray(D[1], np.float64)
    Zc = feats.forward(W, np.float64)  # Z0 + c Zd, c = 0 for now
    Zd = feats.forward(DW, np.float64)
    if fit_intercept:
        Zc += b
        Zd += Db
    ww, wd, dd = ops.vdot(W, W), ops.vdot(W, DW), ops.vdot(DW, DW)

    def phi(c):  # objective and its derivative at c (Zc holds Z0 + c Zd)
        value, G = loss.value_grad(Zc)
        d1 = ops.vdot(G, Zd) / n + reg * (wd + c * dd)
        return value / n + 0.5 * reg * (ww + 2 * c * wd + c * c * dd), d1

    f0, d1 = phi(0.0)
    c = 0.0
    for _ in range(iters):
        d2 = ops.vdot(Zd, loss.hessp(Zd)) / n + reg * dd
        if not d2 > 0:
            break
        c_new = min(2.0, max(-1.0, c - d1 / d2))
        Zc += (c_new - c) * Zd
        step, c = abs(c_new - c), c_new
        fc, d1 = phi(c)
        if step < 1e-3:
            break
    if c == 0.0 or not fc < f0:
        return W, b
    return W + c * DW, b + c * Db


def _features_for(X, ops, dtype, chunk_rows, cache):
    key = (ops.name, str(ops.device), np.dtype(dtype).name, chunk_rows)
    if cache is not None and key in cache.features and cache.features[key][0] is X:
        return cache.features[key][1]
    feats = Features(X, ops, dtype, chunk_rows)
    if cache is not None:
        cache.features = {key: (X, feats)}  # one copy of X at a time
    return feats


def _eig_for(feats, cache, feature_eig):
    ops = feats.ops
    if feature_eig is not None and not isinstance(feature_eig, _ChainCache):
        lam, U = feature_eig
    elif cache is not None and (ops.name, str(ops.device)) in cache.eig:
        return cache.eig[(ops.name, str(ops.device))]
    else:
        M = ops.to_numpy(feats.second_moment())
        lam, U = np.linalg.eigh(0.5 * (M + M.T))
        lam = np.maximum(lam, 0.0)
    out = (ops.asarray(lam, np.float64), ops.asarray(U, np.float64))
    if cache is not None:
        cache.eig[(ops.name, str(ops.device))] = out
    return out


def _fit(X, loss_factory, K, loss_name, reg, fit_intercept, init, tol, max_iter, feature_eig=None,
         backend="numpy", device=None, dtype=np.float64, chunk_rows=None, direction=None):
    t0 = time.perf_counter()
    backend, device, dtype = check_backend(backend, device, dtype)
    ops = make_ops(backend, device)
    n, d = X.shape
    cache = feature_eig if isinstance(feature_eig, _ChainCache) else None
    feats = _features_for(X, ops, dtype, chunk_rows, cache)
    eig = _eig_for(feats, cache, feature_eig)
    loss = loss_factory(ops)
    W, b = _unpack_init(init, K, d, fit_intercept)
    W, b = ops.asarray(W, np.float64), ops.asarray(b, np.float64)
    W, b, f, gfin, g0, ok, it, counts, hist = _newton_cg(
        loss, feats, reg, W, b, fit_intercept, tol, max_iter, eig, direction=direction
    )
    ops.sync()
    if not ok:
        warnings.warn(
            f"linear probe ({loss_name}) did not converge: max-abs gradient {gfin:.3e} after {it} Newton "
            f"iterations, target {tol * max(1.0, g0):.3e} (tol={tol:g}); raise max_iter or loosen tol",
            ConvergenceWarning,
            stacklevel=3,
        )
    probe = LinearProbe(
        coef_=ops.to_numpy(W).astype(np.float64),
        intercept_=ops.to_numpy(b).astype(np.float64),
        reg_=reg,
        loss_=loss_name,
        n_iter_=it,
        objective_=f,
        grad_norm_=gfin,
        initial_grad_norm_=g0,
        converged_=ok,
        n_grad_evals_=counts["grad"],
        n_hessp_=counts["hessp"],
        seconds_=time.perf_counter() - t0,
        history_=hist,
    )
    probe._counts = dict(counts)  # evaluations by precision (benchmarks)
    return probe


def _check_X(X, backend):
    """X as a finite 2-D float array: a float64 array, a memory map (float32 or float64, checked
    chunk by chunk, never loaded whole: ``check_features(..., stream=True)``) or, for the torch
    backend, a torch tensor (checked on its device)."""
    if backend == "torch" and type(X).__module__.startswith("torch"):
        torch = import_torch()
        if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
            raise ValueError(f"X must be a non-empty 2-D array of shape (n_samples, n_features), got shape {tuple(X.shape)}")
        if not X.is_floating_point():
            X = X.double()
        if not bool(torch.isfinite(X).all()):
            raise ValueError("X must be finite, found NaN or inf entries")
        return X
    return check_features(X, stream=True)


def _check_common(X, reg, tol, max_iter, backend="numpy"):
    X = _check_X(X, backend)
    reg = check_positive(reg, "reg")
    tol = check_positive(tol, "tol")
    max_iter = 500 if max_iter is None else check_int(max_iter, "max_iter", low=0)
    return X, reg, tol, max_iter


def fit_linear_probe(
    X,
    targets,
    reg,
    *,
    fit_intercept=False,
    n_classes=None,
    init=None,
    tol=1e-8,
    max_iter=None,
    allow_negative_targets=False,
    backend="numpy",
    device=None,
    dtype=np.float64,
    chunk_rows=None,
    _feature_eig=None,
    _init_direction=None,
) -> LinearProbe:
    """Fit the linear probe exactly: the unique minimiser of the regularised soft-target CE.

    Minimises (1/n) sum_i CE(t_i, softmax(W x_i + b)) + (reg/2) ||W||_F^2 (docs/science.md, setting).

    Parameters
    ----------
    X : (n, d) float array of fixed features.
    targets : (n,) integer labels in 0..K-1 (one-hot targets, the teacher) or (n, K) soft targets
        whose rows are probability vectors (a student).
    reg : float > 0, the L2 strength. Relation to scikit-learn: ``LogisticRegression(C=1/(n*reg),
        fit_intercept=False)`` solves the same problem for K >= 3 (multinomial). For K = 2 scikit-learn
        fits one vector w on the logit difference z_1 - z_0; the probe's optimum has rows summing to
        zero, W = [-w/2, w/2], with ||W||^2 = ||w||^2 / 2, so the two agree when ``C = 2/(n*reg)``.
    fit_intercept : add an unpenalised bias b (kept centred: sum_k b_k = 0).
    n_classes : K, when some classes are absent from integer targets.
    init : warm start: weights (K, d), a tuple (W, b) or a fitted LinearProbe (students start from
        their teacher: it saves most of the work).
    tol : converged when max-abs gradient <= tol * max(1, max-abs initial gradient).
    max_iter : Newton iterations (default 500). Not converged: a ConvergenceWarning naming the
        reached gradient norm.
    allow_negative_targets : accept rows with negative entries that still sum to 1 (extrapolated
        targets, mix > 1, produced by :func:`selfdistill.refine_targets`); the problem stays strictly
        convex. Off by default, so negative targets passed by mistake are an error.
    backend : ``"numpy"`` (default) or ``"torch"`` (optional dependency; ``pip install
        'selfdistill[torch]'``). Same answers: the convergence test is the same float64 test.
        With ``"torch"``, X (and soft targets) may also be torch tensors, already on ``device``.
    device : torch device for ``backend="torch"``: ``"cpu"`` (default) or ``"cuda"``.
    dtype : working precision, ``np.float64`` (default) or ``np.float32``. float32 iterates with
        float32 passes over X (a float32 copy: +50% memory for float64 X; about twice as fast on
        CPUs, far faster on GPUs) and finishes with float64 gradients, so ``tol`` means the same.
    chunk_rows : stream X in row chunks of this size (memory maps, e.g. ``np.load(path,
        mmap_mode="r")``, are always streamed, 16384 rows at a time, and never loaded whole).
    _feature_eig : internal: a precomputed ``feature_second_moment_eig(X)``, or the cache a
        chain shares (the backend copy of X and that decomposition).
    _init_direction : internal: (D_W (K, d), D_b (K,)); the fit first moves ``init`` to the
        objective's minimum on the line init + c D, c in [-1, 2] (two passes over X). SD students
        from round 2 on get D = W_{t-1} - W_{t-2} (:func:`selfdistill.distill.student_warm_start`).

    Returns
    -------
    LinearProbe with coef_ (K, d), intercept_ (K,), predict_proba, predict, decision_function and
    the convergence record n_iter_, objective_, grad_norm_, converged_.
    """
    X, reg, tol, max_iter = _check_common(X, reg, tol, max_iter, backend)
    if n_classes is not None:
        n_classes = check_int(n_classes, "n_classes", low=2)
    T = _check_ce_targets(targets, X.shape[0], n_classes, allow_negative_targets, backend)
    K = T.shape[1] if T.ndim == 2 else T.n_classes

    def factory(ops):
        if T.ndim == 1:
            return _CrossEntropy(ops.asarray(np.asarray(T), np.int64) if ops.name == "torch" else np.asarray(T), ops)
        return _CrossEntropy(ops.asarray(T, np.float64) if ops.name == "torch" else T, ops)

    return _fit(X, factory, K, "ce", reg, fit_intercept, init, tol, max_iter, _feature_eig, backend, device, dtype,
                chunk_rows, direction=_init_direction)


def fit_partial_label_probe(
    X,
    candidates,
    reg,
    *,
    loss="candidate",
    fit_intercept=False,
    init=None,
    tol=1e-8,
    max_iter=None,
    backend="numpy",
    device=None,
    dtype=np.float64,
    chunk_rows=None,
    _feature_eig=None,
) -> LinearProbe:
    """Fit a probe with a partial-label loss over candidate sets (non-convex; a stationary point).

    Parameters
    ----------
    X : (n, d) features.
    candidates : (n, K) boolean mask, candidates[i, j] = label j is in point i's candidate set S_i
        (the teacher's top-k), each candidate weighted 1/|S_i|; or (n, K) non-negative candidate
        weights w_ij with rows summing to 1 (:func:`selfdistill.targets.topk_weights`, which
        shares the mass of tied labels), S_i = {j : w_ij > 0}. Every row needs a candidate.
    loss : ``"candidate"``: -log sum_j w_ij p_j(x_i), i.e. -log sum_{j in S_i} p_j(x_i) + log k
        for a mask;  ``"gce"``:
        sum_j w_ij (1 - p_j(x_i)^0.7) / 0.7, i.e. the mean over S_i for a mask (the authors'
        experiment code).
    init : starting weights, normally the teacher (the problem is not convex: the answer depends
        on it).
    Other parameters as :func:`fit_linear_probe`.
    """
    X, reg, tol, max_iter = _check_common(X, reg, tol, max_iter, backend)
    weights = _check_candidates(candidates, X.shape[0])
    if loss not in ("candidate", "gce"):
        raise ValueError(f"loss must be one of ['candidate', 'gce'], got {loss!r}")

    def factory(ops):
        w = ops.asarray(weights) if ops.name == "torch" else weights
        return _Candidate(w, ops=ops) if loss == "candidate" else _GCE(w, ops=ops)

    return _fit(X, factory, weights.shape[1], loss, reg, fit_intercept, init, tol, max_iter, _feature_eig, backend, device, dtype, chunk_rows)


def _check_candidates(candidates, n) -> np.ndarray:
    """(n, K) float64 candidate weights from a boolean mask (1/|S_i| each) or weights (rows sum to 1)."""
    c = np.asarray(candidates)
    if c.ndim != 2 or c.shape[0] != n or c.dtype.kind not in "bf":
        raise ValueError(
            f"candidates must be a boolean (n, K) mask or (n, K) float weights with n = {n}, "
            f"got {c.dtype} array of shape {c.shape}"
        )
    empty = ~(c > 0).any(axis=1)
    if empty.any():
        raise ValueError(f"candidates: row {int(np.argmax(empty))} has no candidate label")
    if c.dtype == bool:
        return c / c.sum(axis=1, keepdims=True)
    w = c.astype(np.float64)
    if not np.all(np.isfinite(w)) or w.min() < 0 or np.abs(w.sum(axis=1) - 1).max() > 1e-9:
        raise ValueError("candidates: float weights must be finite, >= 0, and sum to 1 in every row")
    return w


class _Labels(np.ndarray):
    """Integer labels (n,) that remember K (one-hot targets without the n x K matrix)."""

    n_classes: int = 0


def _check_ce_targets(targets, n, n_classes, allow_negative, backend):
    if backend == "torch" and type(targets).__module__.startswith("torch") and targets.ndim == 2:
        torch = import_torch()
        T = targets
        if T.shape[0] != n:
            raise ValueError(f"targets has {T.shape[0]} rows but X has {n} rows; they must match")
        if n_classes is not None and T.shape[1] != n_classes:
            raise ValueError(f"targets has {T.shape[1]} columns but n_classes={n_classes}")
        if not bool(torch.isfinite(T).all()):
            raise ValueError("targets must be finite, found NaN or inf")
        if not allow_negative and float(T.min()) < 0:
            raise ValueError("targets rows must be probability vectors (non-negative); extrapolated targets need allow_negative_targets=True")
        dev = float((T.sum(dim=1, dtype=torch.float64) - 1).abs().max())
        if dev > 1e-6:
            raise ValueError(f"targets rows must sum to 1, max deviation {dev:.3g}")
        return T
    if type(targets).__module__.startswith("torch"):
        targets = targets.detach().cpu().numpy()
    arr = np.asarray(targets)
    if arr.ndim == 1:
        labels = check_labels(arr, "targets", n_samples=n, n_classes=n_classes)
        K = n_classes if n_classes is not None else int(labels.max()) + 1
        if K < 2:
            raise ValueError(
                f"targets must hold at least 2 classes, got a single class (K={K}); "
                "pass n_classes= if some classes are absent"
            )
        out = np.asarray(labels, dtype=np.int64).view(_Labels)
        out.n_classes = K
        return out
    return check_targets(arr, n_samples=n, n_classes=n_classes, allow_negative=allow_negative)
