"""The convex solver: L2-regularised softmax regression (a linear probe) with soft targets.

For features X (n, d), targets T (n, K) whose rows sum to 1 and reg > 0 the probe minimises

    L(W, b) = (1/n) sum_i CE(t_i, softmax(W x_i + b)) + (reg/2) ||W||_F^2 ,

W (K, d), b (K,) (b only with ``fit_intercept``, unpenalised and kept centred, sum_k b_k = 0,
which fixes softmax's shift invariance). With rows of T summing to 1,
CE(t, softmax(z)) = logsumexp(z) - t.z is convex in z whatever the signs of t, so L is strictly
convex in W and the minimiser is unique. At the optimum reg * n * W = (T - P)^T X (docs/science.md, setting).
With ``sample_weight`` w (n,) the mean becomes the weighted mean (1/sum_i w_i) sum_i w_i CE_i.

Two non-convex partial-label losses over a candidate set S_i (the teacher's top-k labels) share
the solver (students start from their teacher's weights):

- ``candidate``: -log sum_{j in S_i} p_j(x_i)    (the classic PLL loss)
- ``gce``: (1/k) sum_{j in S_i} (1 - p_j(x_i)^q) / q, q = 0.7    (the authors' experiment code)

The losses live in :mod:`selfdistill.losses`, the solver in ``selfdistill._newton``: inexact
Newton with a truncated, preconditioned conjugate-gradient inner solve on exact Hessian-vector
products (two matrix products with X each), and a backtracking line search. The preconditioner
is Kronecker-factored, H ~ (X^T X / n) (x) S + reg I with S the mean softmax curvature (K x K):
exact at W = 0 and cheap to invert through two small eigen-decompositions. Memory is
O(n d + n K): no n x n matrix is ever formed. Convergence means

    max_abs(grad) <= tol * max(1, max_abs(grad at the start)),

always tested on a float64 gradient. The passes over X go through ``_backend.Features``: NumPy
(default) or PyTorch (``backend="torch"``, CPU or CUDA), float64 or float32 iterations
(``dtype=np.float32``: float32 passes, then float64 gradients once float32 stops resolving the
decrease), in-memory or streamed in row chunks (memory-mapped .npy features). Speed notes and
measurements: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import functools
import hashlib
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from ._backend import Features, check_backend, is_tensor, make_ops, ops_of
from ._batch import PassBatcher, run_threads, shared_batcher
from ._newton import Certifier, Objective, line_min, newton_cg
from ._validation import (
    PARAMS,
    OneOf,
    check_feature_values,
    check_features,
    check_labels,
    check_matrix_shape,
    check_target_matrix,
    check_targets,
    make_constraint,
    validate_params,
)
from .losses import GCE, NUMPY, Candidate, CrossEntropy, log_softmax, softmax

__all__ = ["ConvergenceWarning", "LinearProbe", "fit_linear_probe", "fit_linear_probes", "fit_partial_label_probe",
           "fit_partial_label_probes", "log_softmax", "softmax"]


# ---------------------------------------------------------------- the fitted probe
@dataclass
class LinearProbe:
    """A fitted linear probe p(x) = softmax(W x + b).

    Made by :func:`fit_linear_probe` (``loss_ = "ce"``) and :func:`fit_partial_label_probe`
    (``"candidate"`` / ``"gce"``); the fields are the answer and the solver's convergence record.

    Parameters
    ----------
    coef_ : (K, d) float array
        The weights W.
    intercept_ : (K,) float array
        The bias b (zeros without fit_intercept).
    reg_ : float
        The L2 strength reg the probe was fitted with.
    loss_ : str
        ``"ce"``, ``"candidate"`` or ``"gce"``.
    n_iter_ : int
        Newton iterations.
    objective_ : float
        Final value of the training objective.
    grad_norm_ : float
        Max-abs gradient at the answer.
    initial_grad_norm_ : float
        Max-abs gradient at the start (the scale of the convergence test).
    converged_ : bool
        Whether the tol test passed.
    n_grad_evals_ : int
        Objective/gradient evaluations.
    n_hessp_ : int
        Hessian-vector evaluations.
    n_grad_evals_f32_ : int
        Of n_grad_evals_, those whose passes over X ran in float32.
    seconds_ : float
        Wall time of the fit.
    n_uncertain_ : int or None
        With ``stop="certain"``: how many points (training points, at top-k, and the
        ``certify_X`` points) the exact minimiser could still predict differently; 0 means every
        such prediction is the exact optimum's. None with ``stop="tol"``.
    history_ : list
        Per-iteration solver record (not shown in the repr).

    Examples
    --------
    >>> import numpy as np
    >>> from selfdistill import LinearProbe
    >>> probe = LinearProbe(coef_=np.eye(2), intercept_=np.zeros(2), reg_=1e-2)
    >>> probe.predict(np.array([[2.0, 0.0], [0.0, 1.0]]))
    array([0, 1])
    >>> probe.n_classes_
    2
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
    n_grad_evals_f32_: int = 0
    seconds_: float = 0.0
    n_uncertain_: int | None = None
    history_: list = field(default_factory=list, repr=False)

    @property
    def n_classes_(self) -> int:
        """The number of classes K (rows of coef_).

        Returns
        -------
        int
            K.

        Examples
        --------
        >>> import numpy as np
        >>> from selfdistill import LinearProbe
        >>> LinearProbe(coef_=np.zeros((3, 4)), intercept_=np.zeros(3), reg_=1e-2).n_classes_
        3
        """
        return self.coef_.shape[0]

    def decision_function(self, X) -> np.ndarray:
        """Logits Z = X W^T + b, shape (m, K), in float64.

        X may be a float32/float64 ``numpy.memmap`` (e.g. ``np.load(path, mmap_mode="r")``): it is
        then streamed like the fits stream it (``_backend.Features``, row chunks upcast to float64),
        so only O(chunk * d + m * K) is in memory, never the whole of X.

        Parameters
        ----------
        X : (m, d) float array or memmap
            Features, d as at fit time.

        Returns
        -------
        (m, K) float64 array
            The logits Z.

        Raises
        ------
        ValueError
            If X does not have the d features the probe was fitted on.

        Examples
        --------
        >>> import numpy as np
        >>> from selfdistill import LinearProbe
        >>> probe = LinearProbe(coef_=np.array([[1.0, 0.0], [0.0, 2.0]]), intercept_=np.zeros(2), reg_=1e-2)
        >>> probe.decision_function(np.array([[1.0, 1.0]]))
        array([[1., 2.]])
        """
        X = check_features(X, stream=True)
        if X.shape[1] != self.coef_.shape[1]:
            raise ValueError(f"X has {X.shape[1]} features but the probe was fitted on {self.coef_.shape[1]}")
        return self._logits(X)

    def _logits(self, X) -> np.ndarray:
        """:meth:`decision_function`'s unchecked twin, for X already checked (internal calls)."""
        return Features(X, NUMPY).forward(self.coef_, np.float64) + self.intercept_

    def _proba(self, X) -> np.ndarray:
        """:meth:`predict_proba`'s unchecked twin, for X already checked (internal calls)."""
        return softmax(self._logits(X))

    def predict_proba(self, X) -> np.ndarray:
        """softmax(W x + b) for each row of X, shape (m, K).

        Parameters
        ----------
        X : (m, d) float array or memmap
            Features (streamed like :meth:`decision_function`).

        Returns
        -------
        (m, K) float64 array
            Class probabilities p(x), rows summing to 1.

        Examples
        --------
        >>> import numpy as np
        >>> from selfdistill import LinearProbe
        >>> probe = LinearProbe(coef_=np.zeros((2, 3)), intercept_=np.zeros(2), reg_=1e-2)
        >>> probe.predict_proba(np.ones((1, 3)))
        array([[0.5, 0.5]])
        """
        return softmax(self.decision_function(X))

    def predict(self, X) -> np.ndarray:
        """argmax_k of the logits (ties to the lowest class index), shape (m,).

        Parameters
        ----------
        X : (m, d) float array or memmap
            Features (streamed like :meth:`decision_function`).

        Returns
        -------
        (m,) int array
            Predicted classes in 0..K-1.

        Examples
        --------
        >>> import numpy as np
        >>> from selfdistill import LinearProbe
        >>> probe = LinearProbe(coef_=np.zeros((2, 3)), intercept_=np.zeros(2), reg_=1e-2)
        >>> probe.predict(np.ones((2, 3)))  # a tie goes to class 0
        array([0, 0])
        """
        return np.argmax(self.decision_function(X), axis=1)



# ---------------------------------------------------------------- one fit
class ChainCache:
    """What a chain of fits on the same features shares: the backend copy of X and the
    eigen-decomposition of X^T X / n (the fit functions' ``_cache`` argument).

    Package-internal (for distill and model_selection): not in ``__all__``.
    """

    def __init__(self):
        self.features: dict = {}
        self.eig: dict = {}


def _pack(W, b, K, d, fit_intercept, name):
    """Packed float64 parameters [W | b - mean(b)] (K, d + 1), or W (K, d) without an intercept."""
    W = np.array(W, dtype=np.float64)
    if W.shape != (K, d):
        raise ValueError(f"{name} must have shape (K, d) = ({K}, {d}), got {W.shape}")
    if not fit_intercept:
        b = np.zeros(K)
    else:
        b = np.zeros(K) if b is None else np.array(b, dtype=np.float64).reshape(K)
    if not (np.all(np.isfinite(W)) and np.all(np.isfinite(b))):
        raise ValueError(f"{name} must be finite")
    return np.hstack([W, (b - b.mean())[:, None]]) if fit_intercept else W


def _unpack_init(init, K, d, fit_intercept):
    """The warm start (None, weights (K, d), a tuple (W, b) or a LinearProbe) as packed parameters."""
    if init is None:
        return np.zeros((K, d + 1 if fit_intercept else d))
    if isinstance(init, LinearProbe):
        W, b = init.coef_, init.intercept_
    elif isinstance(init, tuple):
        W, b = init
    else:
        W, b = init, None
    return _pack(W, b, K, d, fit_intercept, "init")


def _features_for(X, ops, dtype, chunk_rows, cache):
    """The backend's Features of X, shared through ``cache`` (one copy of X at a time)."""
    key = (ops.name, str(ops.device), np.dtype(dtype).name, chunk_rows)
    if cache is not None and key in cache.features and cache.features[key][0] is X:
        return cache.features[key][1]
    feats = Features(X, ops, dtype, chunk_rows)
    if cache is not None:
        cache.features = {key: (X, feats)}
    return feats


def _eig_for(feats, cache, weights, key=None):
    """(lam (d,), U (d, d)): eigen-decomposition of X^T D X / n on the backend, float64.

    D = diag(weights) ((n, 1) backend array, mean 1) or the identity. ``cache`` is a dict or None;
    the unweighted one (``key`` None) is kept in it, and a weighted one under its ``key``.
    """
    ops = feats.ops
    if weights is not None and key is None:
        cache = None
    slot = (ops.name, str(ops.device), key)
    if cache is not None and slot in cache:
        return cache[slot]
    M = ops.to_numpy(feats.second_moment(weights))
    lam, U = np.linalg.eigh(0.5 * (M + M.T))
    out = (ops.asarray(np.maximum(lam, 0.0), np.float64), ops.asarray(U, np.float64))
    if cache is not None:
        cache[slot] = out
    return out


def _weights_key(sample_weight) -> str | None:
    """A digest of the row weights (n,), or None without them: equal weights share one eig."""
    if sample_weight is None:
        return None
    return hashlib.sha1(np.ascontiguousarray(sample_weight, dtype=np.float64).tobytes()).hexdigest()


def _fit(X, make_loss, K, loss_name, reg, init, solver, *, direction=None, sample_weight=None):
    """Fit one probe. ``make_loss(ops, weights)`` builds the loss on the backend; ``solver`` holds
    fit_intercept, tol, max_iter, backend, device, dtype, chunk_rows, the chain ``cache`` and
    optionally the ``batcher`` whose passes it shares (else one :func:`_batch.share_passes`
    registered for X, if any)."""
    t0 = time.perf_counter()
    ops, dtype = make_ops(solver["backend"], solver["device"]), solver["dtype"]
    batcher = solver.get("batcher") or shared_batcher(X, ops, dtype, solver["chunk_rows"])
    if batcher is None:
        feats = _features_for(X, ops, dtype, solver["chunk_rows"], solver["cache"])
        eig_cache = None if solver["cache"] is None else solver["cache"].eig
        return _solve(feats, eig_cache, make_loss, K, loss_name, reg, init, solver, direction, sample_weight, t0)
    with batcher.problem() as feats:
        with batcher.eig_lock:  # problems with the same row weights share one eig
            _eig_for(feats, batcher.eig, _row_weights(ops, sample_weight, feats.n), _weights_key(sample_weight))
        return _solve(feats, batcher.eig, make_loss, K, loss_name, reg, init, solver, direction, sample_weight, t0)


def _row_weights(ops, sample_weight, n):
    """(n, 1) float64 backend weights scaled to mean 1 (the solver's (1/n) sum becomes
    (1/sum w) sum w), or None."""
    if sample_weight is None:
        return None
    return ops.asarray((sample_weight * (n / sample_weight.sum()))[:, None], np.float64)


def _solve(feats, eig_cache, make_loss, K, loss_name, reg, init, solver, direction, sample_weight, t0):
    """:func:`_newton.newton_cg` on ``feats`` from ``init`` (and the line search along ``direction``)."""
    ops = feats.ops
    d = feats.d
    fit_intercept = solver["fit_intercept"]
    weights = _row_weights(ops, sample_weight, feats.n)
    eig = _eig_for(feats, eig_cache, weights, _weights_key(sample_weight))
    obj = Objective(make_loss(ops, weights), feats, reg, fit_intercept)
    theta = ops.asarray(_unpack_init(init, K, d, fit_intercept), np.float64)
    if direction is not None:
        D = _pack(direction[0], direction[1], K, d, fit_intercept, "_init_direction")
        theta = line_min(obj, theta, ops.asarray(D, np.float64))
    certifier = None
    if solver.get("stop") == "certain":
        certifier = Certifier(obj, [Features(Xe, ops, np.float64, solver["chunk_rows"]) for Xe in solver["certify_X"]],
                              solver["certify_top_k"])
    res = newton_cg(obj, theta, eig, solver["tol"], solver["max_iter"], certifier=certifier)
    ops.sync()
    if not res.converged:
        warnings.warn(
            f"linear probe ({loss_name}) did not converge: max-abs gradient {obj.gmax(res.point.g):.3e} after "
            f"{res.n_iter} Newton iterations, target {solver['tol'] * max(1.0, res.g0):.3e} (tol={solver['tol']:g}); "
            "raise max_iter or loosen tol",
            ConvergenceWarning,
            stacklevel=4,
        )
    return _probe_from(obj, res, reg, loss_name, time.perf_counter() - t0)


def _probe_from(obj, res, reg, loss_name, seconds) -> LinearProbe:
    """The LinearProbe of a finished :func:`_newton.newton_cg` run (float64 NumPy arrays)."""
    W, b = obj.split(res.point.theta)
    to_np = obj.ops.to_numpy
    return LinearProbe(
        coef_=np.array(to_np(W), dtype=np.float64),
        intercept_=np.zeros(W.shape[0]) if b is None else np.array(to_np(b), dtype=np.float64),
        reg_=reg,
        loss_=loss_name,
        n_iter_=res.n_iter,
        objective_=res.point.f,
        grad_norm_=obj.gmax(res.point.g),
        initial_grad_norm_=res.g0,
        converged_=res.converged,
        n_grad_evals_=obj.counts["grad"],
        n_hessp_=obj.counts["hessp"],
        n_grad_evals_f32_=obj.counts["grad_lo"],
        seconds_=seconds,
        n_uncertain_=res.n_uncertain,
        history_=res.history,
    )


def _check_X(X, backend):
    """X as a finite 2-D float array: a float64 array, a memory map (float32 or float64, checked
    chunk by chunk, never loaded whole: ``check_features(..., stream=True)``) or, for the torch
    backend, a torch tensor (checked on its device). Values beyond ``MAX_ABS_FEATURE`` (1e100, where
    the fit's float64 arithmetic overflows) are refused, naming the largest, with advice to scale X."""
    if backend == "torch" and is_tensor(X):
        check_matrix_shape(X, "X")
        X = X if X.is_floating_point() else X.double()
        check_feature_values(X, "X", ops_of(X))  # as check_features does for an array, on X's device
        return X
    return check_features(X, stream=True)


def solver_settings(tol=1e-8, max_iter=None, *, fit_intercept=False, backend="numpy", device=None, dtype=np.float64,
                    chunk_rows=None, cache=None) -> dict:
    """The solver settings of the fits, checked (once: the unchecked twins take them as they are).

    {fit_intercept, tol, max_iter (default 500), backend, device, dtype (a NumPy dtype: see
    ``_backend.check_backend``), chunk_rows, cache}; ``stop`` settings are added by :func:`check_stop`.
    Package-internal, like :func:`check_stop`, :func:`check_sample_weight` and the twins
    :func:`fit_ce_unchecked`, :func:`fit_pll_unchecked`: not in ``__all__``.
    """
    p = validate_params(tol=tol, max_iter=max_iter)
    backend, device, dtype = check_backend(backend, device, dtype)
    return {"fit_intercept": fit_intercept, "tol": p["tol"], "max_iter": 500 if max_iter is None else p["max_iter"],
            "backend": backend, "device": device, "dtype": dtype, "chunk_rows": chunk_rows, "cache": cache}


def check_stop(stop, certify_X, top_k, X, fit_intercept, backend, *, checked=False) -> dict:
    """The ``stop`` settings ({stop, certify_X (list of (m, d) arrays), certify_top_k}), ``stop`` and
    ``top_k`` already checked (:data:`PARAMS`): certify_X checked (unless ``checked``: by the caller)
    and against X, and fit_intercept."""
    if stop == "tol":
        return {"stop": stop, "certify_X": [], "certify_top_k": top_k}
    if fit_intercept:
        raise ValueError("stop='certain' needs fit_intercept=False: the unpenalised bias breaks the "
                         "strong-convexity bound ||W - W*|| <= ||grad|| / reg it rests on")
    sets = [] if certify_X is None else list(certify_X) if isinstance(certify_X, (list, tuple)) else [certify_X]
    sets = sets if checked else [_check_X(Xe, backend) for Xe in sets]
    for i, Xe in enumerate(sets):
        if Xe.shape[1] != X.shape[1]:
            raise ValueError(f"certify_X[{i}] has {Xe.shape[1]} features but X has {X.shape[1]}")
    return {"stop": stop, "certify_X": sets, "certify_top_k": top_k}


def check_sample_weight(sample_weight, n) -> np.ndarray | None:
    """(n,) float64 non-negative weights with a positive sum, or None."""
    if sample_weight is None:
        return None
    if is_tensor(sample_weight):
        sample_weight = sample_weight.detach().cpu().numpy()
    w = np.asarray(sample_weight)
    if w.ndim != 1 or w.shape[0] != n or w.dtype.kind not in "biuf":
        raise ValueError(
            f"sample_weight must be a 1-D numeric array of n = {n} weights (one per row of X), "
            f"got {w.dtype} array of shape {w.shape}"
        )
    w = w.astype(np.float64)
    bad = ~np.isfinite(w) | (w < 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"sample_weight must be finite and >= 0, got {float(w[i])!r} at index {i}")
    if not w.sum() > 0:
        raise ValueError("sample_weight must have a positive sum (some weight > 0), got all zeros")
    return w


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
    sample_weight=None,
    backend="numpy",
    device=None,
    dtype=np.float64,
    chunk_rows=None,
    stop="tol",
    certify_X=None,
    certify_top_k=1,
    _cache=None,
    _init_direction=None,
) -> LinearProbe:
    """Fit the linear probe exactly: the unique minimiser of the regularised soft-target CE.

    Minimises (1/n) sum_i CE(t_i, softmax(W x_i + b)) + (reg/2) ||W||_F^2 (docs/science.md,
    setting); with ``sample_weight`` w, (1/sum_i w_i) sum_i w_i CE(t_i, softmax(W x_i + b)) +
    (reg/2) ||W||_F^2.

    Parameters
    ----------
    X : (n, d) float array, memmap or torch tensor
        Fixed features (a torch tensor with ``backend="torch"``).
    targets : (n,) int array or (n, K) float array
        Integer labels in 0..K-1 (one-hot targets, the teacher) or soft targets whose rows are
        probability vectors (a student).
    reg : float
        The L2 strength, > 0. scikit-learn's ``LogisticRegression(C=1/(n*reg), fit_intercept=False)``
        solves the same problem for K >= 3, ``C = 2/(n*reg)`` for K = 2 (docs/science.md, the solver).
    fit_intercept : bool, default False
        Add an unpenalised bias b (kept centred: sum_k b_k = 0).
    n_classes : int, optional
        K, when some classes are absent from integer targets.
    init : (K, d) array, tuple (W, b) or LinearProbe, optional
        Warm start (students start from their teacher: it saves most of the work).
    tol : float, default 1e-8
        Converged when max-abs gradient <= tol * max(1, max-abs initial gradient).
    max_iter : int, optional
        Newton iterations (default 500). Not converged: a ConvergenceWarning naming the reached
        gradient norm.
    allow_negative_targets : bool, default False
        Accept rows with negative entries that still sum to 1 (extrapolated targets, mix > 1, from
        :func:`selfdistill.refine_targets`); the problem stays strictly convex. Off by default, so
        negative targets passed by mistake are an error.
    sample_weight : (n,) float array, optional
        Non-negative weights w_i with a positive sum: the loss is the weighted mean
        (1/sum(w)) sum_i w_i CE_i, so integer weights equal repeating row i w_i times (same reg)
        and a zero weight drops the row.
    backend : {"numpy", "torch"}, default "numpy"
        ``"torch"`` is an optional dependency (``pip install 'selfdistill[torch]'``); same answers
        (the same float64 convergence test). X and soft targets may then be torch tensors on ``device``.
    device : str, optional
        Torch device for ``backend="torch"``: ``"cpu"`` (default) or ``"cuda"``.
    dtype : numpy dtype, default np.float64
        Working precision, ``np.float64`` or ``np.float32`` (float32 passes over a float32 copy of X,
        then float64 gradients, so ``tol`` means the same).
    chunk_rows : int, optional
        Stream X in row chunks of this size (memory maps, e.g. ``np.load(path, mmap_mode="r")``,
        are always streamed, 16384 rows at a time, and never loaded whole).
    stop : {"tol", "certain"}, default "tol"
        ``"tol"``: stop at the gradient test. ``"certain"``: stop as soon as no prediction of the
        training points (top-1 and top-``certify_top_k``) or of ``certify_X`` can change on the way
        to the exact minimiser, or at the gradient test; needs ``fit_intercept=False`` and costs one
        more pass over X and ``certify_X`` per iteration (the bound: docs/science.md, the solver).
    certify_X : (m, d) array or list of them, optional
        More points whose predictions ``stop="certain"`` certifies (a test or validation set).
    certify_top_k : int, default 1
        k >= 1: ``stop="certain"`` also certifies the training points' top-k sets (the candidate
        sets a PLL student learns from).
    _cache : ChainCache, optional
        Internal: what a chain of fits on the same X shares (the backend copy of X and the
        eigen-decomposition of X^T X / n).
    _init_direction : tuple (D_W (K, d), D_b (K,)), optional
        Internal: the fit first moves ``init`` to the objective's minimum on the line init + c D,
        c in [-1, 2] (two passes over X); SD students from round 2 on get D = W_{t-1} - W_{t-2}
        (:func:`selfdistill.distill.student_warm_start`).

    Returns
    -------
    LinearProbe
        coef_ (K, d), intercept_ (K,), and the convergence record n_iter_, objective_, grad_norm_,
        converged_ (and n_uncertain_: with ``stop="certain"``, the points not certified; 0 means the
        predictions are exactly the optimum's).

    Examples
    --------
    >>> import numpy as np
    >>> from selfdistill import fit_linear_probe
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(60, 5))
    >>> y = np.argmax(X[:, :3], axis=1)
    >>> teacher = fit_linear_probe(X, y, reg=1e-2)
    >>> teacher.coef_.shape, bool(teacher.converged_)
    ((3, 5), True)
    >>> student = fit_linear_probe(X, teacher.predict_proba(X), reg=1e-2, init=teacher)
    >>> w = rng.integers(0, 3, size=60)  # integer weights: the same as repeating rows
    >>> a = fit_linear_probe(X, y, 1e-2, sample_weight=w, tol=1e-12)
    >>> b = fit_linear_probe(np.repeat(X, w, axis=0), np.repeat(y, w), 1e-2, n_classes=3, tol=1e-12)
    >>> bool(np.allclose(a.coef_, b.coef_, atol=1e-8))
    True
    """
    p = validate_params(reg=reg, n_classes=n_classes, stop=stop, certify_top_k=certify_top_k)
    solver = solver_settings(tol, max_iter, fit_intercept=fit_intercept, backend=backend, device=device, dtype=dtype,
                             chunk_rows=chunk_rows, cache=_cache)
    X = _check_X(X, solver["backend"])
    solver.update(check_stop(p["stop"], certify_X, p["certify_top_k"], X, fit_intercept, solver["backend"]))
    make_loss, K = _ce_loss(targets, X.shape[0], p["n_classes"], allow_negative_targets, solver["backend"])
    sample_weight = check_sample_weight(sample_weight, X.shape[0])
    return _fit(X, make_loss, K, "ce", p["reg"], init, solver, direction=_init_direction, sample_weight=sample_weight)


def fit_ce_unchecked(X, targets, K, reg, solver, *, init=None, _init_direction=None) -> LinearProbe:
    """:func:`fit_linear_probe`'s unchecked twin, for internal calls (:func:`selfdistill.distill`,
    :func:`selfdistill.model_selection.select_reg`) whose every argument is already checked: X as
    :func:`_check_X` returns it, ``targets`` int labels (n,) in 0..K-1 or (n, K) float rows summing
    to 1, reg a float > 0, ``solver`` from :func:`solver_settings` (with the ``stop`` settings, and
    the checked ``sample_weight`` or None). Package-internal: not in ``__all__``."""
    return _fit(X, _ce_make_loss(targets), K, "ce", reg, init, solver, direction=_init_direction,
                sample_weight=solver.get("sample_weight"))


def fit_pll_unchecked(X, weights, loss, reg, solver, *, init=None) -> LinearProbe:
    """:func:`fit_partial_label_probe`'s unchecked twin: ``weights`` (n, K) float candidate weights
    whose rows sum to 1, ``loss`` "candidate" or "gce", the rest as for :func:`fit_ce_unchecked`."""
    weights = np.asarray(weights, dtype=np.float64)
    return _fit(X, _pll_make_loss(weights, loss), weights.shape[1], loss, reg, init, solver,
                sample_weight=solver.get("sample_weight"))


def _ce_loss(targets, n, n_classes, allow_negative, backend):
    """(make_loss(ops, row weights) -> CrossEntropy, K) for checked labels or soft targets."""
    T = _check_ce_targets(targets, n, n_classes, allow_negative, backend)
    return _ce_make_loss(T), T.shape[1] if T.ndim == 2 else T.n_classes


def _ce_make_loss(T):
    """make_loss(ops, row weights) -> CrossEntropy for checked targets: labels (n,) or (n, K) rows."""

    def make_loss(ops, weights):
        if T.ndim == 1:
            labels = ops.asarray(np.asarray(T), np.int64) if ops.name == "torch" else np.asarray(T)
            return CrossEntropy(labels, ops, weights)
        return CrossEntropy(ops.asarray(T, np.float64) if ops.name == "torch" else T, ops, weights)

    return make_loss


def _per_problem(value, B, name, *, sequence_of_arrays=False, constraint=None) -> list:
    """``value`` for each of B problems: a sequence of B values, or one value shared by all; with a
    ``constraint``, checked: one value as ``name``, each of a sequence as ``name[b]``."""
    check = (lambda v, _: v) if constraint is None else make_constraint(constraint).check
    if isinstance(value, (list, tuple)) or (not sequence_of_arrays and isinstance(value, np.ndarray)
                                             and value.ndim == 1):
        if len(value) != B:
            raise ValueError(f"{name} must be one value or a sequence of B = {B} values (one per problem), "
                             f"got {len(value)}")
        return [check(v, f"{name}[{b}]") for b, v in enumerate(value)]
    return [check(value, name)] * B


def _batch_len(targets, name) -> int:
    if not isinstance(targets, (list, tuple)) or len(targets) == 0:
        raise ValueError(f"{name} must be a non-empty list or tuple of B problems' {name}, "
                         f"got {type(targets).__name__}")
    return len(targets)


def _fit_batch(X, problems, solver):
    """Fit B problems [(make_loss, K, loss name, reg, init, sample_weight)] together: one thread
    each, every pass over X shared (:class:`_batch.PassBatcher`). Returns B LinearProbes."""
    ops = make_ops(solver["backend"], solver["device"])
    batcher = PassBatcher(Features(X, ops, solver["dtype"], solver["chunk_rows"]))
    solver = dict(solver, batcher=batcher)
    batcher.reserve(len(problems))
    jobs = [functools.partial(_fit, X, mk, K, name, r, init, solver, sample_weight=w)
            for mk, K, name, r, init, w in problems]
    return run_threads(jobs)


def fit_linear_probes(
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
    sample_weight=None,
    backend="numpy",
    device=None,
    dtype=np.float64,
    chunk_rows=None,
) -> list[LinearProbe]:
    """Fit B independent linear probes over one X together: the exact minimiser of each.

    Problem b minimises (1/n) sum_i CE(t^b_i, softmax(W_b x_i + b_b)) + (reg_b/2) ||W_b||_F^2
    (with ``sample_weight[b]``, the weighted mean over the rows), exactly as
    :func:`fit_linear_probe` would alone. Each problem keeps its own Newton, CG and line-search
    state and stopping test and leaves the batch when it has converged; every pass over X serves
    all problems still running with one matrix product (X [W_1; ...; W_B]^T, (n, B K)), which on
    large X costs little more than one problem's pass (benchmarks/RESULTS.md: batched passes).

    Parameters
    ----------
    X : (n, d) float array, memmap or torch tensor
        The features, shared by all problems (a torch tensor with ``backend="torch"``).
    targets : list of B (n,) int arrays or (n, K) float arrays
        Each problem's labels or soft targets, as in :func:`fit_linear_probe`.
    reg : float or sequence of B floats
        The L2 strength (> 0), one for all or one per problem.
    fit_intercept, n_classes
        As in :func:`fit_linear_probe`, shared by all problems.
    init : list of B warm starts, optional
        Each None, weights (K, d), a tuple (W, b) or a LinearProbe.
    tol, max_iter, allow_negative_targets
        As in :func:`fit_linear_probe`, shared by all problems.
    sample_weight : list of B (n,) float arrays or None, optional
        Per-problem row weights: a validation split or a cross-validation fold is a 0/1 weight
        vector over the same X (no copy of its rows).
    backend, device, dtype, chunk_rows
        As in :func:`fit_linear_probe`, shared by all problems.

    Returns
    -------
    list of LinearProbe
        B probes, in the order of ``targets``.

    Raises
    ------
    ValueError
        An argument out of range (the message names it, with the problem's index).

    Examples
    --------
    >>> import numpy as np
    >>> from selfdistill import fit_linear_probe, fit_linear_probes
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(80, 5))
    >>> y = np.argmax(X[:, :3], axis=1)
    >>> y_noisy = np.where(rng.random(80) < 0.5, rng.integers(0, 3, 80), y)
    >>> a, b = fit_linear_probes(X, [y, y_noisy], reg=[1e-1, 1e-4])
    >>> alone = fit_linear_probe(X, y_noisy, 1e-4)
    >>> bool(np.allclose(b.coef_, alone.coef_)), a.reg_, b.reg_
    (True, 0.1, 0.0001)
    """
    B = _batch_len(targets, "targets")
    regs = _per_problem(reg, B, "reg", constraint=PARAMS["reg"])
    inits = _per_problem(init, B, "init", sequence_of_arrays=True)
    weights = _per_problem(sample_weight, B, "sample_weight", sequence_of_arrays=True)
    n_classes = validate_params(n_classes=n_classes)["n_classes"]
    solver = solver_settings(tol, max_iter, fit_intercept=fit_intercept, backend=backend, device=device, dtype=dtype,
                             chunk_rows=chunk_rows)
    X = _check_X(X, solver["backend"])
    problems = []
    for b in range(B):
        make_loss, K = _ce_loss(targets[b], X.shape[0], n_classes, allow_negative_targets, solver["backend"])
        problems.append((make_loss, K, "ce", regs[b], inits[b], check_sample_weight(weights[b], X.shape[0])))
    return _fit_batch(X, problems, solver)


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
    sample_weight=None,
    _cache=None,
) -> LinearProbe:
    """Fit a probe with a partial-label loss over candidate sets (non-convex; a stationary point).

    Parameters
    ----------
    X : (n, d) float array, memmap or torch tensor
        Fixed features, as in :func:`fit_linear_probe`.
    candidates : (n, K) bool or float array
        A mask, candidates[i, j] = label j is in point i's candidate set S_i (the teacher's
        top-k), each candidate weighted 1/|S_i|; or non-negative candidate weights w_ij with rows
        summing to 1 (:func:`selfdistill.targets.topk_weights`, which shares the mass of tied
        labels), S_i = {j : w_ij > 0}. Every row needs a candidate.
    reg : float
        The L2 strength, > 0, as in :func:`fit_linear_probe`.
    loss : {"candidate", "gce"}, default "candidate"
        ``"candidate"``: -log sum_j w_ij p_j(x_i) (-log sum_{j in S_i} p_j(x_i) + log k for a
        mask); ``"gce"``: sum_j w_ij (1 - p_j(x_i)^0.7) / 0.7 (the mean over S_i for a mask; the
        authors' experiment code).
    fit_intercept : bool, default False
        Add an unpenalised, centred bias b, as in :func:`fit_linear_probe`.
    init : (K, d) array, tuple (W, b) or LinearProbe, optional
        Starting weights, normally the teacher (the problem is not convex: the answer depends on it).
    tol : float, default 1e-8
        Convergence test, as in :func:`fit_linear_probe`.
    max_iter : int, optional
        Newton iterations (default 500), as in :func:`fit_linear_probe`.
    backend : {"numpy", "torch"}, default "numpy"
        As in :func:`fit_linear_probe`.
    device : str, optional
        Torch device, as in :func:`fit_linear_probe`.
    dtype : numpy dtype, default np.float64
        Working precision, as in :func:`fit_linear_probe`.
    chunk_rows : int, optional
        Stream X in row chunks, as in :func:`fit_linear_probe`.
    sample_weight : (n,) float array, optional
        Non-negative row weights with a positive sum: the loss becomes the weighted mean
        (1/sum w) sum_i w_i loss_i, as in :func:`fit_linear_probe`.
    _cache : ChainCache, optional
        Internal: what a chain of fits on the same X shares.

    Returns
    -------
    LinearProbe
        ``loss_`` = ``loss``, at a stationary point of the regularised loss.

    Examples
    --------
    >>> import numpy as np
    >>> from selfdistill import fit_linear_probe, fit_partial_label_probe
    >>> from selfdistill.targets import topk_mask
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(60, 5))
    >>> teacher = fit_linear_probe(X, np.argmax(X[:, :4], axis=1), reg=1e-2)
    >>> S = topk_mask(teacher.predict_proba(X), 2)  # (60, 4) candidate sets
    >>> student = fit_partial_label_probe(X, S, 1e-2, loss="gce", init=teacher)
    >>> student.loss_, student.coef_.shape
    ('gce', (4, 5))
    """
    p = validate_params(_PLL_PARAMS, reg=reg, loss=loss)
    solver = solver_settings(tol, max_iter, fit_intercept=fit_intercept, backend=backend, device=device, dtype=dtype,
                             chunk_rows=chunk_rows, cache=_cache)
    X = _check_X(X, solver["backend"])
    weights = _check_candidates(candidates, X.shape[0])
    sample_weight = check_sample_weight(sample_weight, X.shape[0])
    return _fit(X, _pll_make_loss(weights, p["loss"]), weights.shape[1], p["loss"], p["reg"], init, solver,
                sample_weight=sample_weight)


#: The partial-label fits' arguments: those of :data:`PARAMS` and ``loss``.
_PLL_PARAMS = {**PARAMS, "loss": OneOf(("candidate", "gce"))}


def _pll_make_loss(weights, loss):
    """make_loss(ops, row weights) -> Candidate or GCE for checked candidate weights (n, K)."""

    def make_loss(ops, row_weights):
        w = ops.asarray(weights) if ops.name == "torch" else weights
        if loss == "candidate":
            return Candidate(w, ops=ops, row_weights=row_weights)
        return GCE(w, ops=ops, row_weights=row_weights)

    return make_loss


def fit_partial_label_probes(
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
    sample_weight=None,
) -> list[LinearProbe]:
    """Fit B partial-label probes over one X together, each as :func:`fit_partial_label_probe` would alone.

    Each problem keeps its own solver state from its own start; every pass over X is shared as in
    :func:`fit_linear_probes`.

    Parameters
    ----------
    X : (n, d) float array, memmap or torch tensor
        The features, shared by all problems.
    candidates : list of B (n, K) bool or float arrays
        Each problem's candidate sets, as in :func:`fit_partial_label_probe`.
    reg : float or sequence of B floats
        The L2 strength (> 0), one for all or one per problem.
    loss : {"candidate", "gce"} or sequence of B of them, default "candidate"
        The partial-label loss, one for all or one per problem.
    fit_intercept : bool, default False
        As in :func:`fit_partial_label_probe`, shared by all problems.
    init : list of B starting weights, optional
        Normally each problem's teacher.
    tol, max_iter, backend, device, dtype, chunk_rows
        As in :func:`fit_partial_label_probe`, shared by all problems.
    sample_weight : list of B (n,) float arrays or None, optional
        Per-problem row weights.

    Returns
    -------
    list of LinearProbe
        B probes, in the order of ``candidates``.

    Examples
    --------
    >>> import numpy as np
    >>> from selfdistill import fit_linear_probe, fit_partial_label_probes
    >>> from selfdistill.targets import topk_mask
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(60, 5))
    >>> teacher = fit_linear_probe(X, np.argmax(X[:, :4], axis=1), reg=1e-2)
    >>> S = topk_mask(teacher.predict_proba(X), 2)
    >>> [p.loss_ for p in fit_partial_label_probes(X, [S, S], 1e-2, loss=["candidate", "gce"], init=[teacher] * 2)]
    ['candidate', 'gce']
    """
    B = _batch_len(candidates, "candidates")
    regs = _per_problem(reg, B, "reg", constraint=_PLL_PARAMS["reg"])
    losses = _per_problem(loss, B, "loss", constraint=_PLL_PARAMS["loss"])
    inits = _per_problem(init, B, "init", sequence_of_arrays=True)
    weights = _per_problem(sample_weight, B, "sample_weight", sequence_of_arrays=True)
    solver = solver_settings(tol, max_iter, fit_intercept=fit_intercept, backend=backend, device=device, dtype=dtype,
                             chunk_rows=chunk_rows)
    X = _check_X(X, solver["backend"])
    problems = []
    for b in range(B):
        w = _check_candidates(candidates[b], X.shape[0])
        problems.append((_pll_make_loss(w, losses[b]), w.shape[1], losses[b], regs[b], inits[b],
                         check_sample_weight(weights[b], X.shape[0])))
    return _fit_batch(X, problems, solver)


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
    if backend == "torch" and is_tensor(targets) and targets.ndim == 2:  # checked on its device
        check_target_matrix(targets, "targets", n_samples=n, n_classes=n_classes, allow_negative=allow_negative,
                            ops=ops_of(targets))
        return targets
    if is_tensor(targets):
        targets = targets.detach().cpu().numpy()
    arr = np.asarray(targets)
    if arr.ndim == 1:
        # stacklevel 4: the line calling fit_linear_probe (via _ce_loss and this function)
        labels = check_labels(arr, "targets", n_samples=n, n_classes=n_classes, stacklevel=4)
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
