"""The probe's solver: inexact Newton with truncated preconditioned CG (internal).

:mod:`selfdistill.probe` is the public face; this module minimises, over the packed parameters
theta = [W | b] of shape (K, d + 1) ((K, d) without an intercept),

    f(theta) = (1/n) sum_i loss_i(X W^T + b) + (reg/2) ||W||_F^2 ,

with ``loss`` one of :mod:`selfdistill.losses` and the passes over X done by a
``_backend.Features``. Split into small pieces, as scipy's ``_trustregion_ncg`` and
scikit-learn's ``utils/optimize`` are:

- :class:`Objective` -- f, its gradient and Hessian-vector products on packed theta;
- :func:`kronecker_preconditioner` -- H ~ (X^T D X / n) (x) S + reg I, inverted in eigenbases;
- :func:`pcg` -- the truncated PCG inner solve of H p = -g;
- :func:`backtrack` -- the Armijo line search;
- :class:`Precision` -- float32 passes handed over to float64 once float32 stops resolving
  the decrease (the convergence test is always on a float64 gradient);
- :func:`line_min` -- the warm start's exact line minimisation along a direction;
- :class:`Certifier` -- how many predictions the exact minimiser could still change;
- :func:`newton_cg` -- the outer loop.

Convergence: max_abs(grad) <= tol * max(1, max_abs(grad at the start)); with a
:class:`Certifier` (``stop="certain"``) also as soon as no prediction can change any more.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

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


@dataclass
class Point:
    """An iterate: packed parameters theta (K, d[+1]), f(theta) and its float64 gradient g (same shape)."""

    theta: object
    f: float
    g: object


class Objective:
    """f(theta) = (1/n) sum_i loss_i(X W^T + b) + (reg/2) ||W||^2 on packed theta = [W | b].

    Parameters
    ----------
    loss : a loss of :mod:`selfdistill.losses` (sum over the rows of Z (n, K)).
    feats : ``_backend.Features`` of X (n, d).
    reg : L2 strength > 0 (b is not penalised).
    fit_intercept : theta has d + 1 columns, the last one b (K,); else d columns.
    """

    def __init__(self, loss, feats, reg, fit_intercept):
        self.loss, self.feats, self.ops = loss, feats, feats.ops
        self.n, self.d = feats.n, feats.d
        self.reg = reg
        self.fit_intercept = fit_intercept
        self.counts = {"grad": 0, "grad_lo": 0, "hessp": 0}

    @property
    def evals(self) -> int:
        """Passes so far: gradient evaluations plus Hessian-vector products."""
        return self.counts["grad"] + self.counts["hessp"]

    def split(self, theta):
        """(W (K, d), b (K,) or None): views into theta."""
        if not self.fit_intercept:
            return theta, None
        return theta[:, : self.d], theta[:, self.d]

    def logits(self, theta, dtype):
        """Z = X W^T + b, (n, K), computed in ``dtype``."""
        W, b = self.split(theta)
        Z = self.feats.forward(W, dtype)
        if b is not None:
            Z += self.ops.cast(b, dtype)
        return Z

    def _pack(self, gW, G):
        """[gW | colsum(G) / n] (the bias part only with an intercept), float64."""
        if not self.fit_intercept:
            return gW
        g = self.ops.zeros((gW.shape[0], self.d + 1))
        g[:, : self.d] = gW
        g[:, self.d] = self.ops.cast(self.ops.colsum(G), np.float64) / self.n
        return g

    def at(self, theta, dtype) -> Point:
        """f and its gradient at theta, the passes over X in ``dtype`` (the gradient is float64)."""
        value, G = self.loss.value_grad(self.logits(theta, dtype))
        self.counts["grad"] += 1
        self.counts["grad_lo"] += int(np.dtype(dtype) == np.float32)
        W, _ = self.split(theta)
        f = value / self.n + 0.5 * self.reg * self.ops.vdot(W, W)
        gW = self.feats.backward(G, dtype) / self.n + self.reg * W
        return Point(theta, f, self._pack(gW, G))

    def hessp(self, v):
        """H v at the last point evaluated, in the working precision of the features; float64."""
        dt = self.feats.dtype
        H = self.loss.hessp(self.logits(v, dt))
        self.counts["hessp"] += 1
        VW, _ = self.split(v)
        return self._pack(self.feats.backward(H, dt) / self.n + self.reg * VW, H)

    def gmax(self, g) -> float:
        """max_abs(g)."""
        return self.ops.amax_abs(g)

    def dot(self, a, b) -> float:
        """<a, b> over every entry of two packed arrays."""
        return self.ops.vdot(a, b)

    def center(self, p):
        """p with its bias part centred (sum_k b_k stays 0: softmax's shift invariance)."""
        if not self.fit_intercept:
            return p
        p = self.ops.copy(p)
        p[:, self.d] -= p[:, self.d].mean()
        return p


def kronecker_preconditioner(obj, eig):
    """z = M^-1 r for M = (X^T D X / n) (x) S + reg I (and S alone on the bias column).

    D = diag(w_i) the loss's row weights (identity without them), S = (1/n) sum_i w_i
    (diag(p_i) - p_i p_i^T) the mean softmax curvature (K x K) at the current point, and
    ``eig`` = (lam (d,), U (d, d)) the eigen-decomposition of X^T D X / n. Exact Hessian at W = 0;
    inverted through the eigenbases of both factors, O(K^2 d + K d^2) per application.

    Returns a function r (K, d[+1]) -> z (same shape).
    """
    ops, n, d = obj.ops, obj.n, obj.d
    lam, U = eig
    UT = U.T
    P, weights = obj.loss.hess_curv()
    P = ops.cast(P, np.float64)
    wP = P if weights is None else P * weights
    S = (ops.diag(ops.colsum(wP)) - P.T @ wP) / n
    sig, V = ops.eigh(0.5 * (S + S.T))
    sig = ops.clip_min(sig, 0.0)
    denom = ops.outer(sig, lam) + obj.reg  # (K, d) in the eigenbases
    sig_b = ops.inf_where_small(sig, 1e-12 * max(1.0, float(sig.max())))
    VT = V.T

    def apply(r):
        W, b = obj.split(r)
        zW = V @ (((VT @ W) @ U) / denom) @ UT
        if b is None:
            return zW
        z = ops.zeros(r.shape)
        z[:, :d] = zW
        z[:, d] = V @ ((VT @ b) / sig_b)
        return z

    return apply


def pcg(obj, g, precond, cg_tol, floor, max_cg):
    """Truncated preconditioned CG on H p = -g, with a negative-curvature exit.

    Stops when ||r|| <= cg_tol, max_abs(r) <= floor, a direction of non-positive curvature
    appears (on the first step, that direction is returned) or after ``max_cg`` steps.
    Returns (p, number of CG steps).
    """
    ops = obj.ops
    p = ops.zeros(g.shape)
    r = -g
    z = precond(r)
    direc = z
    rz = obj.dot(r, z)
    for j in range(max_cg):
        h = obj.hessp(direc)
        curv = obj.dot(direc, h)
        if curv <= 0:
            if j == 0:
                p = direc
            break
        alpha = rz / curv
        p = p + alpha * direc
        r = r - alpha * h
        if np.sqrt(obj.dot(r, r)) <= cg_tol or obj.gmax(r) <= floor:
            break
        z = precond(r)
        rz_new = obj.dot(r, z)
        direc = z + (rz_new / rz) * direc
        rz = rz_new
    return p, j + 1


def newton_direction(obj, pt, eig, thresh, max_cg):
    """The inexact Newton step p at ``pt`` and its slope <g, p> < 0 (steepest descent in the
    preconditioner's metric if round-off made the CG answer ascend). Returns (p, slope, CG steps)."""
    precond = kronecker_preconditioner(obj, eig)
    gnorm = np.sqrt(obj.dot(pt.g, pt.g))
    cg_tol = min(0.5, gnorm**_FORCING) * gnorm
    p, steps = pcg(obj, pt.g, precond, cg_tol, _CG_FLOOR * thresh, max_cg)
    p = obj.center(p)
    slope = obj.dot(pt.g, p)
    if slope >= 0:
        p = precond(-pt.g)
        slope = obj.dot(pt.g, p)
    return p, slope, steps


def backtrack(obj, pt, p, slope, g_now, dtype, tries):
    """Armijo backtracking from ``pt`` along p (step 1, 1/2, ...; at most ``tries`` steps).

    Accepts f(theta + s p) <= f + 1e-4 s <g, p>, or, near the optimum, a step that does not raise
    f beyond round-off (64 eps |f|) and lowers max_abs(grad) below ``g_now``. Returns the new
    :class:`Point`, or None when no step is accepted.
    """
    eps = np.finfo(dtype).eps
    step = 1.0
    for _ in range(tries):
        new = obj.at(pt.theta + step * p, dtype)
        if new.f <= pt.f + 1e-4 * step * slope or (
            new.f <= pt.f + 64 * eps * max(1.0, abs(pt.f)) and obj.gmax(new.g) < g_now
        ):
            return new
        step *= 0.5
    return None


class Precision:
    """The working precision of the passes over X: float32 (features held in float32) until it
    stops resolving the decrease, then float64 for good. ``hand_over`` is that switch."""

    def __init__(self, obj):
        self.obj = obj
        self.lo = obj.feats.dtype == np.float32

    @property
    def dtype(self):
        return np.float32 if self.lo else np.float64

    @property
    def line_search_tries(self) -> int:
        # a float32 line search that needs many halvings has hit float32's resolution of f
        return 6 if self.lo else 60

    def hand_over(self, pt) -> Point:
        """Switch to float64 and re-evaluate ``pt`` there."""
        self.lo = False
        return self.obj.at(pt.theta, np.float64)


class Certifier:
    """Counts the points whose prediction (and top-k set) the exact minimiser could still change.

    f is reg-strongly convex in W (the loss is convex, the penalty (reg/2) ||W||^2), so at any W

        ||W - W*||_F <= ||grad f(W)||_F / reg = eps.

    A logit gap z_a - z_b = (w_a - w_b) . x moves by at most ||dW_a - dW_b|| ||x|| <= sqrt(2) eps ||x||
    on the way to W*, so a point whose gap between its first and second logit (and, for top-k,
    between its k-th and (k+1)-th) exceeds sqrt(2) eps ||x_i|| has the exact minimiser's
    prediction (and top-k set). Only for convex losses without an intercept (b is not penalised).

    Parameters
    ----------
    obj : the :class:`Objective` (its features are the training set, certified at top-k).
    extra : list of ``_backend.Features`` whose predictions (top-1) must be certain too.
    top_k : k >= 1 for the training points' top-k sets.
    """

    def __init__(self, obj, extra, top_k):
        self.obj = obj
        self.sets = [(obj.feats, obj.feats.row_norms(), top_k)]
        self.sets += [(f, f.row_norms(), 1) for f in extra]

    def uncertain(self, pt) -> int:
        """Points of every set not yet certain at ``pt`` (its float64 gradient gives eps)."""
        obj, ops = self.obj, self.obj.ops
        bound = np.sqrt(2.0 * obj.dot(pt.g, pt.g)) / obj.reg
        count = 0
        for feats, norms, k in self.sets:
            top = ops.top_values(feats.forward(pt.theta, np.float64), min(k + 1, pt.theta.shape[0]))
            thr = bound * norms
            mask = (top[:, 0] - top[:, 1]) <= thr
            if k >= 2 and top.shape[1] > k:
                mask = mask | ((top[:, k - 1] - top[:, k]) <= thr)
            count += ops.count_true(mask)
        return count


@dataclass
class Result:
    """What :func:`newton_cg` returns: the last :class:`Point` (float64), the start's max_abs(g0),
    whether the tolerance test (or the certificate) passed, Newton iterations, the history
    [(f, max_abs(g), CG steps, passes so far)] and, with a :class:`Certifier`, the number of
    points not certain at the answer (else None)."""

    point: Point
    g0: float
    converged: bool
    n_iter: int
    history: list = field(default_factory=list)
    n_uncertain: int | None = None


def newton_cg(obj, theta, eig, tol, max_iter, max_cg=250, certifier=None) -> Result:
    """Minimise ``obj`` from theta by preconditioned inexact Newton.

    Each iteration: a truncated PCG step (:func:`newton_direction`), then :func:`backtrack`.
    With float32 features the passes run in float32 until :class:`Precision` hands over (max_abs(g)
    below _LO_SWITCH of its scale, a predicted decrease below float32's resolution of f, or a
    failed float32 line search); the reference scale and the convergence test are float64.
    With a ``certifier`` it also stops, in float64, as soon as no point is uncertain.
    """
    prec = Precision(obj)
    pt = obj.at(theta, np.float64)
    g0 = obj.gmax(pt.g)
    thresh = tol * max(1.0, g0)
    lo_target = max(thresh, _LO_SWITCH * max(1.0, g0))
    history = [(pt.f, g0, 0, obj.evals)]
    it, certain = 0, False
    while it < max_iter:
        if prec.lo and obj.gmax(pt.g) <= lo_target:
            pt = prec.hand_over(pt)
        g_now = obj.gmax(pt.g)
        certain = certifier is not None and not prec.lo and certifier.uncertain(pt) == 0
        if g_now <= thresh or certain:
            break
        it += 1
        p, slope, steps = newton_direction(obj, pt, eig, thresh, max_cg)
        if prec.lo and -slope <= _LO_RESOLUTION * max(1.0, abs(pt.f)):
            pt = prec.hand_over(pt)  # the predicted decrease is below float32's resolution of f
            slope = obj.dot(pt.g, p)
            if slope >= 0:
                continue
        new = backtrack(obj, pt, p, slope, g_now, prec.dtype, prec.line_search_tries)
        if new is None:
            if prec.lo:
                pt = prec.hand_over(pt)
                continue
            break  # no progress possible at float64 precision
        pt = new
        history.append((pt.f, obj.gmax(pt.g), steps, obj.evals))
    if prec.lo:  # stopped (max_iter) while in float32: report float64 quantities
        pt = prec.hand_over(pt)
    n_uncertain = None
    if certifier is not None:
        n_uncertain = 0 if certain else certifier.uncertain(pt)
    return Result(pt, g0, obj.gmax(pt.g) <= thresh or n_uncertain == 0, it, history, n_uncertain)


def line_min(obj, theta, D, iters=6):
    """theta + c D with c = argmin over [-1, 2] of f on that line (theta itself if no c is better).

    phi(c) = (1/n) sum_i loss_i(Z0 + c Zd) + reg/2 ||W + c D_W||^2 with Z0 = X W^T + b and
    Zd = X D_W^T + D_b: two passes over X, then 1-D Newton steps on n x K arrays only (the
    logits Z0 + c Zd are updated in place). phi is convex for the cross-entropy. Counted as one
    gradient evaluation. theta, D : packed (K, d[+1]) float64.
    """
    ops, n, reg, loss = obj.ops, obj.n, obj.reg, obj.loss
    Zc = obj.logits(theta, np.float64)  # Z0 + c Zd, c = 0 for now
    Zd = obj.logits(D, np.float64)
    obj.counts["grad"] += 1
    W, DW = obj.split(theta)[0], obj.split(D)[0]
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
        return theta
    return theta + c * D
