"""The convex solver: L2-regularised softmax regression (a linear probe) with soft targets.

For features X (n, d), targets T (n, K) whose rows sum to 1 and reg > 0 the probe minimises

    L(W, b) = (1/n) sum_i CE(t_i, softmax(W x_i + b)) + (reg/2) ||W||_F^2 ,

W (K, d), b (K,) (b only with ``fit_intercept``, unpenalised and kept centred, sum_k b_k = 0,
which fixes softmax's shift invariance). With rows of T summing to 1,
CE(t, softmax(z)) = logsumexp(z) - t.z is convex in z whatever the signs of t, so L is strictly
convex in W and the minimiser is unique. At the optimum reg * n * W = (T - P)^T X (SCIENCE.md 1).

Two non-convex partial-label losses over a candidate set S_i (the teacher's top-k labels) share
the solver (students start from their teacher's weights):

- ``candidate``: -log sum_{j in S_i} p_j(x_i)    (the classic PLL loss)
- ``gce``: (1/k) sum_{j in S_i} (1 - p_j(x_i)^q) / q, q = 0.7    (the authors' experiment code)

Algorithm: inexact Newton with a truncated, preconditioned conjugate-gradient inner
solve on exact Hessian-vector products (two matrix products with X each), and a backtracking
line search. The preconditioner is Kronecker-factored, H ~ (X^T X / n) (x) S + reg I with S the
mean softmax curvature (K x K): exact at W = 0 and cheap to invert through two small
eigen-decompositions. Memory is O(n d + n K): no n x n matrix is ever formed. Convergence means

    max_abs(grad) <= tol * max(1, max_abs(grad at the start)).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from ._validation import check_features, check_int, check_positive, check_targets

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


def _softmax_jvp(P: np.ndarray, V: np.ndarray) -> np.ndarray:
    """(diag(p) - p p^T) v for every row: the softmax Jacobian applied to V (n, K)."""
    PV = P * V
    return PV - P * PV.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------- losses on the logits Z (n, K)
class _CrossEntropy:
    """sum_i logsumexp(z_i) - t_i.z_i for targets T whose rows sum to 1."""

    convex = True

    def __init__(self, T):
        self.T = T

    def value_grad(self, Z):
        logP = log_softmax(Z)
        P = np.exp(logP)
        # logsumexp(z) - t.z = -t.log p  when sum(t) = 1
        value = -float(np.einsum("ik,ik->", self.T, logP))
        self._P = P
        return value, P - self.T

    def hess_curv(self):
        return self._P

    def hessp(self, V):
        return _softmax_jvp(self._P, V)


class _Candidate:
    """sum_i -log sum_{j in S_i} p_ij = logsumexp(z_i) - logsumexp(z_i over S_i)."""

    convex = False

    def __init__(self, mask):
        self.mask = mask

    def value_grad(self, Z):
        logP = log_softmax(Z)
        P = np.exp(logP)
        masked = np.where(self.mask, logP, -np.inf)
        m = masked.max(axis=1, keepdims=True)
        log_mass = m[:, 0] + np.log(np.exp(masked - m).sum(axis=1))
        Q = np.where(self.mask, np.exp(masked - log_mass[:, None]), 0.0)
        self._P, self._Q = P, Q
        return -float(log_mass.sum()), P - Q

    def hess_curv(self):
        return self._P

    def hessp(self, V):
        return _softmax_jvp(self._P, V) - _softmax_jvp(self._Q, V)


class _GCE:
    """sum_i (1/k) sum_{j in S_i} (1 - p_ij^q) / q: generalised cross-entropy over the candidates."""

    convex = False

    def __init__(self, mask, q=GCE_Q):
        self.mask = mask
        self.k = mask.sum(axis=1, keepdims=True).astype(np.float64)
        self.q = q

    def value_grad(self, Z):
        P = softmax(Z)
        A = np.where(self.mask, P**self.q, 0.0)
        a = A.sum(axis=1, keepdims=True)
        self._P, self._A, self._a = P, A, a
        value = float((((self.k - a) / self.q) / self.k).sum())
        return value, -(A - a * P) / self.k

    def hess_curv(self):
        return self._P

    def hessp(self, V):
        P, A, a = self._P, self._A, self._a
        Pv = (P * V).sum(axis=1, keepdims=True)
        dA = self.q * A * (V - Pv)
        dP = P * V - P * Pv
        return -(dA - dA.sum(axis=1, keepdims=True) * P - a * dP) / self.k


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
        """Logits Z = X W^T + b, shape (m, K)."""
        X = check_features(X)
        if X.shape[1] != self.coef_.shape[1]:
            raise ValueError(f"X has {X.shape[1]} features but the probe was fitted on {self.coef_.shape[1]}")
        return X @ self.coef_.T + self.intercept_

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


def _newton_cg(loss, X, reg, W, b, fit_intercept, tol, max_iter, feature_eig=None, max_cg=250):
    """Minimise (1/n) sum_i loss_i(X W^T + b) + reg/2 ||W||^2 by preconditioned inexact Newton."""
    n, d = X.shape
    K = W.shape[0]
    counts = {"grad": 0, "hessp": 0}

    def fg(W, b):
        Z = X @ W.T
        if fit_intercept:
            Z += b
        value, G = loss.value_grad(Z)
        counts["grad"] += 1
        f = value / n + 0.5 * reg * float(np.vdot(W, W))
        gW = (G.T @ X) / n + reg * W
        gb = G.sum(axis=0) / n if fit_intercept else np.zeros(K)
        return f, gW, gb

    def hessp(VW, vb):
        Zv = X @ VW.T
        if fit_intercept:
            Zv += vb
        H = loss.hessp(Zv)
        counts["hessp"] += 1
        hb = H.sum(axis=0) / n if fit_intercept else np.zeros(K)
        return (H.T @ X) / n + reg * VW, hb

    def gmax(gW, gb):
        return max(float(np.abs(gW).max()), float(np.abs(gb).max()) if fit_intercept else 0.0)

    # Kronecker-factored preconditioner: H ~ (X^T X / n) (x) S + reg I, S the mean softmax curvature
    lam, U = feature_eig if feature_eig is not None else feature_second_moment_eig(X)


    def make_precond(P):
        S = (np.diag(P.sum(axis=0)) - P.T @ P) / n
        sig, V = np.linalg.eigh(0.5 * (S + S.T))
        sig = np.maximum(sig, 0.0)
        denom = np.outer(sig, lam) + reg  # (K, d) in the eigenbases
        sig_b = np.where(sig > 1e-12 * max(1.0, sig.max()), sig, np.inf)

        def apply(rW, rb):
            zW = V @ (((V.T @ rW) @ U) / denom) @ U.T
            zb = V @ ((V.T @ rb) / sig_b) if fit_intercept else rb
            return zW, zb

        return apply

    f, gW, gb = fg(W, b)
    g0 = gmax(gW, gb)
    thresh = tol * max(1.0, g0)
    history = [(f, g0)]
    it = 0
    while gmax(gW, gb) > thresh and it < max_iter:
        it += 1
        precond = make_precond(loss.hess_curv())
        # truncated PCG on H p = -g, with negative-curvature exit
        gnorm = np.sqrt(float(np.vdot(gW, gW) + np.vdot(gb, gb)))
        cg_tol = min(0.5, np.sqrt(gnorm)) * gnorm
        pW, pb = np.zeros_like(W), np.zeros_like(b)
        rW, rb = -gW, -gb
        zW, zb = precond(rW, rb)
        dW, dbv = zW.copy(), zb.copy()
        rz = float(np.vdot(rW, zW) + np.vdot(rb, zb))
        for j in range(max_cg):
            hW, hb = hessp(dW, dbv)
            curv = float(np.vdot(dW, hW) + np.vdot(dbv, hb))
            if curv <= 0:
                if j == 0:
                    pW, pb = dW, dbv
                break
            alpha = rz / curv
            pW = pW + alpha * dW
            pb = pb + alpha * dbv
            rW = rW - alpha * hW
            rb = rb - alpha * hb
            if np.sqrt(float(np.vdot(rW, rW) + np.vdot(rb, rb))) <= cg_tol:
                break
            zW, zb = precond(rW, rb)
            rz_new = float(np.vdot(rW, zW) + np.vdot(rb, zb))
            beta = rz_new / rz
            rz = rz_new
            dW = zW + beta * dW
            dbv = zb + beta * dbv
        if fit_intercept:
            pb = pb - pb.mean()
        slope = float(np.vdot(gW, pW) + np.vdot(gb, pb))
        if slope >= 0:  # not a descent direction (round-off): fall back to steepest descent
            pW, pb = precond(-gW, -gb)
            slope = float(np.vdot(gW, pW) + np.vdot(gb, pb))
        # backtracking line search (Armijo); near the optimum accept a step that lowers |grad|
        step, g_now = 1.0, gmax(gW, gb)
        accepted = False
        for _ in range(60):
            Wn, bn = W + step * pW, b + step * pb
            fn, gWn, gbn = fg(Wn, bn)
            if fn <= f + 1e-4 * step * slope or (
                fn <= f + 64 * _EPS * max(1.0, abs(f)) and gmax(gWn, gbn) < g_now
            ):
                accepted = True
                break
            step *= 0.5
        if not accepted:
            break  # no progress possible at float64 precision
        W, b, f, gW, gb = Wn, bn, fn, gWn, gbn
        history.append((f, gmax(gW, gb)))
    gfin = gmax(gW, gb)
    return W, b, f, gfin, g0, gfin <= thresh, it, counts, history


def _fit(X, loss, loss_name, reg, fit_intercept, init, tol, max_iter, feature_eig=None):
    t0 = time.perf_counter()
    n, d = X.shape
    K = loss.mask.shape[1] if hasattr(loss, "mask") else loss.T.shape[1]
    W, b = _unpack_init(init, K, d, fit_intercept)
    W, b, f, gfin, g0, ok, it, counts, hist = _newton_cg(
        loss, X, reg, W, b, fit_intercept, tol, max_iter, feature_eig=feature_eig
    )
    if not ok:
        warnings.warn(
            f"linear probe ({loss_name}) did not converge: max-abs gradient {gfin:.3e} after {it} Newton "
            f"iterations, target {tol * max(1.0, g0):.3e} (tol={tol:g}); raise max_iter or loosen tol",
            ConvergenceWarning,
            stacklevel=3,
        )
    return LinearProbe(
        coef_=W,
        intercept_=b,
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


def _check_common(X, reg, tol, max_iter):
    X = check_features(X)
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
    _feature_eig=None,
) -> LinearProbe:
    """Fit the linear probe exactly: the unique minimiser of the regularised soft-target CE.

    Minimises (1/n) sum_i CE(t_i, softmax(W x_i + b)) + (reg/2) ||W||_F^2 (SCIENCE.md section 1).

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
    _feature_eig : internal: a precomputed ``feature_second_moment_eig(X)`` shared by a chain.
    allow_negative_targets : accept rows with negative entries that still sum to 1 (extrapolated
        targets, mix > 1, produced by :func:`selfdistill.refine_targets`); the problem stays strictly
        convex. Off by default, so negative targets passed by mistake are an error.

    Returns
    -------
    LinearProbe with coef_ (K, d), intercept_ (K,), predict_proba, predict, decision_function and
    the convergence record n_iter_, objective_, grad_norm_, converged_.
    """
    X, reg, tol, max_iter = _check_common(X, reg, tol, max_iter)
    if n_classes is not None:
        n_classes = check_int(n_classes, "n_classes", low=2)
    T = check_targets(targets, n_samples=X.shape[0], n_classes=n_classes, allow_negative=allow_negative_targets)
    return _fit(X, _CrossEntropy(T), "ce", reg, fit_intercept, init, tol, max_iter, _feature_eig)


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
    _feature_eig=None,
) -> LinearProbe:
    """Fit a probe with a partial-label loss over candidate sets (non-convex; a stationary point).

    Parameters
    ----------
    X : (n, d) features.
    candidates : (n, K) boolean mask, candidates[i, j] = label j is in point i's candidate set S_i
        (the teacher's top-k). Every row needs at least one candidate.
    loss : ``"candidate"``: -log sum_{j in S_i} p_j(x_i);  ``"gce"``: (1/|S_i|) sum_{j in S_i}
        (1 - p_j(x_i)^0.7) / 0.7 (the authors' experiment code).
    init : starting weights, normally the teacher (the problem is not convex: the answer depends
        on it).
    Other parameters as :func:`fit_linear_probe`.
    """
    X, reg, tol, max_iter = _check_common(X, reg, tol, max_iter)
    mask = np.asarray(candidates)
    if mask.ndim != 2 or mask.shape[0] != X.shape[0] or mask.dtype != bool:
        raise ValueError(
            f"candidates must be a boolean (n, K) mask with n = {X.shape[0]}, got {mask.dtype} array of shape {mask.shape}"
        )
    if not mask.any(axis=1).all():
        raise ValueError(f"candidates: row {int(np.argmin(mask.any(axis=1)))} has no candidate label")
    if loss == "candidate":
        obj = _Candidate(mask)
    elif loss == "gce":
        obj = _GCE(mask)
    else:
        raise ValueError(f"loss must be one of ['candidate', 'gce'], got {loss!r}")
    return _fit(X, obj, loss, reg, fit_intercept, init, tol, max_iter, _feature_eig)
