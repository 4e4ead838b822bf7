"""Label averaging in closed form, and the exact fixed point, for any Gram matrix or feature matrix.

Notation (docs/theory.md, sections 1-3): n training points, K classes, features X (n, d), Gram
matrix G = X X^T with eigen-decomposition G = sum_j mu_j u_j u_j^T, reg > 0 the L2 strength and
lam = K n reg the *shrinkage*. Targets T (n, K) have rows summing to 1; R = T - 1/K.

* Exact model (docs/science.md, setting): the trained probe's training outputs P solve

      P = softmax(G (T - P) / (n reg))                                     (fixed point)

  the optimality condition of a strictly convex problem; :func:`fixed_point` solves that problem.
* Linearised model (softmax(z) ~ (1 + z - mean z) / K): with A = G (G + lam I)^-1,

      P_t - 1/K = A^(t+1) R_0 = sum_j (mu_j / (mu_j + lam))^(t+1) u_j u_j^T R_0   (label averaging)

  for round t = 0, 1, ... (round 0 is the teacher trained on T = Y); :func:`label_averaging`.
  A new point x with Gram row g = X x (its inner products with the training points) gets

      p_t(x) - 1/K = g^T (G + lam I)^-1 A^t R_0 .
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from .._validation import (
    check_features,
    check_gram,
    check_int,
    check_labels,
    check_positive,
    check_psd_spectrum,
    check_targets,
)
from ..distill import pll_round, run_chain
from ..probe import fit_linear_probe, softmax

__all__ = [
    "LabelAveraging",
    "label_averaging",
    "fixed_point",
    "fixed_point_residual",
    "ExactChain",
    "exact_chain",
    "adam_fixed_point",
    "theory_vs_training",
]

#: Default residual target of :func:`fixed_point`: max_ik |P - softmax(G (T - P) / (n reg))|.
FIXED_POINT_TOL = 1e-10


# ------------------------------------------------------------------------------------------ inputs
def _features_or_gram(X, gram, *, n_samples=None):
    """Validate exactly one of X (n, d) / gram (n, n); return ("X", X) or ("gram", G)."""
    if (X is None) == (gram is None):
        raise ValueError("pass exactly one of X= (features, n x d) and gram= (Gram matrix, n x n)")
    if X is not None:
        X = check_features(X, "X")
        if n_samples is not None and X.shape[0] != n_samples:
            raise ValueError(f"X has {X.shape[0]} rows but there are {n_samples} labels; they must match")
        return "X", X
    return "gram", check_gram(gram, "gram", n_samples=n_samples)


def _targets(Y, n_classes, n_samples=None, *, name="Y"):
    """Labels (n,) or targets (n, K) -> float (n, K) targets whose rows sum to 1 (may be negative)."""
    arr = np.asarray(Y)
    n = arr.shape[0] if n_samples is None and arr.ndim >= 1 else n_samples
    if n_classes is not None:
        n_classes = check_int(n_classes, "n_classes", low=2)
    return check_targets(arr, n_samples=n, n_classes=n_classes, allow_negative=True, name=name)


def _chain_inputs(Y, reg, rounds, X, gram, n_classes):
    """The checked inputs of a chain (:func:`label_averaging`, :func:`exact_chain`):
    (kind, M, T, reg, rounds), kind and M as :func:`_features_or_gram`, T the (n, K) targets."""
    kind, M = _features_or_gram(X, gram)
    T = _targets(Y, n_classes, M.shape[0])
    return kind, M, T, check_positive(reg, "reg"), check_int(rounds, "rounds", low=0)


def _sym_eigh(G, name="gram"):
    """Eigen-decomposition of a symmetric PSD matrix, eigenvalues descending and clipped at 0."""
    mu, U = np.linalg.eigh(G)
    mu = check_psd_spectrum(mu, name)
    return mu[::-1].copy(), U[:, ::-1].copy()


# ------------------------------------------------------------------------------- per-round scores
class _RoundAccuracies:
    """Per-round predictions and accuracies of a chain's outputs, shared by :class:`LabelAveraging`
    and :class:`ExactChain`: ``train_probs`` (rounds+1, n, K), ``test_probs`` (rounds+1, m, K) or
    None; ``_builder`` names the function that takes the test points.

    Examples
    --------
    >>> import numpy as np
    >>> from selfdistill.theory import exact_chain, label_averaging
    >>> X = np.random.default_rng(0).normal(size=(12, 4)); y = np.argmax(X[:, :3], axis=1)
    >>> issubclass(type(label_averaging(y, 1e-2, 1, X=X)), _RoundAccuracies)
    True
    >>> issubclass(type(exact_chain(y, 1e-2, 1, X=X)), _RoundAccuracies)
    True
    """

    train_probs: np.ndarray
    test_probs: np.ndarray | None
    _builder = ""

    @property
    def predictions(self) -> np.ndarray:
        """(rounds+1, n) argmax of train_probs per round (ties to the lowest class index).

        Returns
        -------
        (rounds+1, n) int array
            The chain's predicted class of each training point, round by round.

        Examples
        --------
        >>> import numpy as np
        >>> from selfdistill.theory import exact_chain, label_averaging
        >>> X = np.random.default_rng(0).normal(size=(12, 4)); y = np.argmax(X[:, :3], axis=1)
        >>> label_averaging(y, 1e-2, 1, X=X).predictions.shape, exact_chain(y, 1e-2, 1, X=X).predictions.shape
        ((2, 12), (2, 12))
        """
        return np.argmax(self.train_probs, axis=2)

    @property
    def test_predictions(self) -> np.ndarray | None:
        """(rounds+1, m) argmax of test_probs per round, or None without test points.

        Returns
        -------
        (rounds+1, m) int array or None
            Predicted class of each test point, round by round.

        Examples
        --------
        >>> import numpy as np
        >>> from selfdistill.theory import label_averaging
        >>> X = np.random.default_rng(0).normal(size=(12, 4)); y = np.argmax(X[:, :3], axis=1)
        >>> la = label_averaging(y, 1e-2, 1, X=X, X_test=X[:5])
        >>> la.test_predictions.shape
        (2, 5)
        """
        return None if self.test_probs is None else np.argmax(self.test_probs, axis=2)

    def accuracy(self, y_true) -> np.ndarray:
        """(rounds+1,) fraction of training points whose round-t prediction equals y_true.

        Parameters
        ----------
        y_true : (n,) int array
            Reference labels of the training points (clean labels, or the given ones).

        Returns
        -------
        (rounds+1,) float array
            Accuracy of round t = 0..rounds.

        Examples
        --------
        >>> import numpy as np
        >>> from selfdistill.theory import exact_chain, label_averaging
        >>> X = np.random.default_rng(0).normal(size=(12, 4)); y = np.argmax(X[:, :3], axis=1)
        >>> label_averaging(y, 1e-2, 1, X=X).accuracy(y).shape, exact_chain(y, 1e-2, 1, X=X).accuracy(y).shape
        ((2,), (2,))
        """
        y_true = check_labels(y_true, "y_true", n_samples=self.train_probs.shape[1])
        return np.mean(self.predictions == y_true[None, :], axis=1)

    def test_accuracy(self, y_test) -> np.ndarray:
        """(rounds+1,) test accuracy per round (needs the test points given to the chain's builder).

        Parameters
        ----------
        y_test : (m,) int array
            Labels of the test points.

        Returns
        -------
        (rounds+1,) float array
            Test accuracy of round t = 0..rounds.

        Raises
        ------
        ValueError
            If the chain was built without test points.

        Examples
        --------
        >>> import numpy as np
        >>> from selfdistill.theory import exact_chain, label_averaging
        >>> X = np.random.default_rng(0).normal(size=(12, 4)); y = np.argmax(X[:, :3], axis=1)
        >>> label_averaging(y, 1e-2, 1, X=X, X_test=X[:5]).test_accuracy(y[:5]).shape
        (2,)
        >>> exact_chain(y, 1e-2, 1, X=X).test_accuracy(y[:5])
        Traceback (most recent call last):
        ...
        ValueError: no test points: pass X_test= or gram_test= to exact_chain
        """
        pred = self.test_predictions
        if pred is None:
            raise ValueError(f"no test points: pass X_test= or gram_test= to {self._builder}")
        y_test = check_labels(y_test, "y_test", n_samples=pred.shape[1])
        return np.mean(pred == y_test[None, :], axis=1)


# ------------------------------------------------------------------------------- label averaging
@dataclass
class LabelAveraging(_RoundAccuracies):
    """The linearised self-distillation chain (what :func:`label_averaging` returns).

    Parameters
    ----------
    train_probs : (rounds+1, n, K)  P_t = 1/K + A^(t+1) R_0 for t = 0..rounds (rows sum to 1;
        entries may leave [0, 1]: this is the linear model).
    eigenvalues : (r,) the eigenvalues mu_j of G, descending (r = n with gram=, r = min(n, d) with X=).
    filters : (rounds+1, r)  (mu_j / (mu_j + lam))^(t+1), the spectral filter of round t.
    label_signal : (r,)  ||u_j^T R_0||^2, the label signal (energy of Y - 1/K) in direction j.
    signal : (rounds+1, r)  filters^2 * label_signal: energy of P_t - 1/K in direction j
        ("which directions survive").
    null_signal : energy of R_0 outside the span of the u_j (directions where mu = 0: filtered to 0).
    reg : float
        The L2 strength.
    shrinkage : float
        lam = K n reg.
    n_classes : int
        K.
    rounds : int
        R, the SD rounds after the teacher.
    test_probs : (rounds+1, m, K) linearised outputs on the test points, or None.
    _kind : internal: ``"X"`` or ``"gram"``, what the chain was built from.
    _basis : internal: V^T (r, d) for X, U (n, n) for gram (to project new points).
    _coef : internal: U^T R_0 (r, K).
    _n_features : internal: d with X, else None.

    Examples
    --------
    >>> import numpy as np
    >>> from selfdistill.theory import label_averaging
    >>> X = np.random.default_rng(0).normal(size=(12, 4)); y = np.argmax(X[:, :3], axis=1)
    >>> la = label_averaging(y, 1e-2, 1, X=X, X_test=X[:5])
    >>> la.train_probs.shape, la.filters.shape, la.test_probs.shape
    ((2, 12, 3), (2, 4), (2, 5, 3))
    >>> bool(np.all(la.filters[1] <= la.filters[0]))  # every direction shrinks round after round
    True
    """

    train_probs: np.ndarray
    eigenvalues: np.ndarray
    filters: np.ndarray
    label_signal: np.ndarray
    signal: np.ndarray
    null_signal: float
    reg: float
    shrinkage: float
    n_classes: int
    rounds: int
    test_probs: np.ndarray | None = None
    _kind: str = field(default="gram", repr=False)
    _basis: np.ndarray | None = field(default=None, repr=False)  # Vt (r, d) for X, U (n, n) for gram
    _coef: np.ndarray | None = field(default=None, repr=False)  # U^T R_0 (r, K)
    _n_features: int | None = field(default=None, repr=False)
    _builder = "label_averaging"  # not a field: no annotation

    def predict_proba(self, X_new=None, *, gram_new=None) -> np.ndarray:
        """Linearised outputs (rounds+1, m, K) on new points: 1/K + g^T (G + lam I)^-1 A^t R_0.

        Give the new points' features ``X_new`` (m, d) when the chain was built from X, or their
        Gram block with the training points ``gram_new`` (m, n), gram_new[a, i] = <x_a, x_i>.

        Parameters
        ----------
        X_new : (m, d) float array or None
            New points' features (chains built from X).
        gram_new : (m, n) float array or None
            New points' inner products with the training points (chains built from a Gram matrix).

        Returns
        -------
        (rounds+1, m, K) float array
            The linearised outputs p_t(x) of round t = 0..rounds (rows sum to 1).

        Raises
        ------
        ValueError
            If neither or both are given, the wrong one for how the chain was built, or a shape
            does not match.

        Examples
        --------
        >>> import numpy as np
        >>> from selfdistill.theory import label_averaging
        >>> X = np.random.default_rng(0).normal(size=(12, 4)); y = np.argmax(X[:, :3], axis=1)
        >>> la = label_averaging(y, 1e-2, 1, X=X, X_test=X[:5])
        >>> bool(np.allclose(la.predict_proba(X[:5]), la.test_probs))
        True
        >>> G = X @ X.T
        >>> la_g = label_averaging(y, 1e-2, 1, gram=G)
        >>> bool(np.allclose(la_g.predict_proba(gram_new=G[:5]), la.test_probs))
        True
        """
        g = self._project_new(X_new, gram_new)  # (m, r): U^T g for every new point
        t = np.arange(self.rounds + 1)[:, None]
        mu = self.eigenvalues
        with np.errstate(divide="ignore", invalid="ignore"):
            f = np.where(mu > 0, mu / (mu + self.shrinkage), 0.0)
        weights = f[None, :] ** t / (mu + self.shrinkage)[None, :]  # (rounds+1, r)
        K = self.n_classes
        out = np.empty((self.rounds + 1, g.shape[0], K))
        for s in range(self.rounds + 1):
            out[s] = 1.0 / K + (g * weights[s]) @ self._coef
        return out

    def _project_new(self, X_new, gram_new):
        basis = self._basis
        if basis is None:
            raise ValueError("this LabelAveraging holds no eigenbasis (build it with label_averaging)")
        if (X_new is None) == (gram_new is None):
            raise ValueError("pass exactly one of X_new (features) and gram_new (Gram block with the training points)")
        if self._kind == "X":
            if X_new is None:
                raise ValueError("this chain was built from features X: pass X_new (m, d), not gram_new")
            X_new = check_features(X_new, "X_new")
            if X_new.shape[1] != self._n_features:
                raise ValueError(f"X_new has {X_new.shape[1]} features but X had {self._n_features}")
            # U^T X x = s * (V^T x)
            return (X_new @ basis.T) * np.sqrt(self.eigenvalues)[None, :]
        if gram_new is None:
            raise ValueError("this chain was built from a Gram matrix: pass gram_new (m, n), not X_new")
        n = basis.shape[0]
        gn = np.asarray(gram_new, dtype=np.float64)
        if gn.ndim != 2 or gn.shape[1] != n:
            raise ValueError(f"gram_new must have shape (m, n) with n = {n} training points, got {gn.shape}")
        if not np.all(np.isfinite(gn)):
            raise ValueError("gram_new must be finite")
        return gn @ basis


def label_averaging(
    Y, reg, rounds, *, X=None, gram=None, X_test=None, gram_test=None, n_classes=None
) -> LabelAveraging:
    """The linearised multi-round self-distillation chain in closed form (label averaging).

    P_t = 1/K + A^(t+1) (Y - 1/K),   A = G (G + K n reg I)^-1,   t = 0..rounds,

    computed in the eigenbasis of G: direction u_j (eigenvalue mu_j) is multiplied by the spectral
    filter (mu_j / (mu_j + K n reg))^(t+1). Large-mu directions (whole classes, clusters of similar
    classes, the all-ones vector) survive; small-mu ones (a point's own label against its class)
    die first. Derivation: docs/theory.md, section 2.

    Parameters
    ----------
    Y : (n,) integer labels (one-hot targets, the teacher's) or (n, K) targets with rows summing to 1.
    reg : L2 strength > 0 (the probe's, docs/science.md).
    rounds : number of SD rounds R >= 0 after the teacher; the result has rounds+1 entries.
    X : (n, d) features. Uses the thin SVD X = U S V^T (time O(n d min(n, d)), memory O(n d));
        no n x n matrix is formed, so n = 50,000, d = 512 works.
    gram : (n, n) Gram matrix (symmetric positive semi-definite up to round-off), instead of X.
        Uses its full eigen-decomposition (O(n^3)).
    X_test : (m, d) test features (with X) -> ``test_probs``.
    gram_test : (m, n) inner products of test points with the training points (with gram).
    n_classes : K, when Y holds integer labels of which some classes are absent.

    Returns
    -------
    LabelAveraging: ``train_probs`` (rounds+1, n, K), ``eigenvalues``, ``filters``, ``signal``
    (per round and direction), ``test_probs``, ``accuracy(y)``, ``predict_proba(X_new | gram_new)``.

    Raises
    ------
    ValueError: neither or both of X / gram; gram not square, not symmetric or not PSD; reg <= 0;
    rounds < 0; Y of the wrong length or not labels / targets; test points of the wrong shape.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(12, 4)); y = np.argmax(X[:, :3], axis=1)
    >>> la = label_averaging(y, 1e-2, 2, X=X)
    >>> n, K = 12, 3
    >>> G = X @ X.T; A = G @ np.linalg.inv(G + K * n * 1e-2 * np.eye(n))
    >>> R0 = np.eye(K)[y] - 1 / K
    >>> bool(np.allclose(la.train_probs[2] - 1 / K, A @ A @ A @ R0))  # P_2 - 1/K = A^3 (Y - 1/K)
    True
    >>> np.round(la.filters[:, 0], 3).tolist()  # (mu_1 / (mu_1 + lam))^(t+1): the largest mu survives
    [0.982, 0.964, 0.946]
    >>> np.round(la.filters[:, -1], 3).tolist()  # the smallest mu dies first
    [0.831, 0.69, 0.573]
    """
    kind, M, T, reg, rounds = _chain_inputs(Y, reg, rounds, X, gram, n_classes)
    n, K = T.shape
    lam = K * n * reg
    R0 = T - 1.0 / K

    if kind == "X":
        U, s, Vt = np.linalg.svd(M, full_matrices=False)
        mu = s * s
        basis, n_features = Vt, M.shape[1]
    else:
        mu, U = _sym_eigh(M)
        basis, n_features = U, None
    C = U.T @ R0  # (r, K)
    label_signal = np.einsum("jk,jk->j", C, C)
    null_signal = max(0.0, float(np.vdot(R0, R0)) - float(label_signal.sum()))
    f = mu / (mu + lam)
    filters = f[None, :] ** np.arange(1, rounds + 2)[:, None]  # (rounds+1, r)
    train_probs = np.empty((rounds + 1, n, K))
    for t in range(rounds + 1):
        train_probs[t] = 1.0 / K + U @ (filters[t][:, None] * C)
    del U
    result = LabelAveraging(
        train_probs=train_probs,
        eigenvalues=mu,
        filters=filters,
        label_signal=label_signal,
        signal=filters**2 * label_signal[None, :],
        null_signal=null_signal,
        reg=reg,
        shrinkage=lam,
        n_classes=K,
        rounds=rounds,
        _kind=kind,
        _basis=basis,
        _coef=C,
        _n_features=n_features,
    )
    test = _test_block(kind, M, X_test, gram_test)
    if test is not None:
        result.test_probs = result.predict_proba(test) if kind == "X" else result.predict_proba(gram_new=test)
    return result


# ----------------------------------------------------------------------------- the exact fixed point
class _Operator:
    """Features for the probe solver and products with G, from X or from a Gram matrix.

    With gram=G: G = L L^T with L = U sqrt(mu) (eigenvalues clipped at 0, zero directions dropped),
    so a probe fitted on the rows of L has training outputs P = softmax(G (T - P) / (n reg)).
    """

    def __init__(self, kind, M, *, features=True):
        self.kind = kind
        self.n = M.shape[0]
        if kind == "X":
            self.X = M
            self.features = M
        else:
            self.G = M
            if not features:  # products with G only (no factorisation)
                return
            mu, U = _sym_eigh(M)
            keep = mu > mu[0] * 1e-14 if mu[0] > 0 else np.zeros_like(mu, dtype=bool)
            if not keep.any():
                keep[0] = True  # G = 0: a single zero feature keeps the solver's shapes valid
            self.features = U[:, keep] * np.sqrt(mu[keep])[None, :]

    def gram_times(self, V):
        """G @ V without forming G when built from X."""
        if self.kind == "X":
            return self.X @ (self.X.T @ V)
        return self.G @ V


def fixed_point_residual(P, T, reg, *, X=None, gram=None) -> float:
    """max_ik |P - softmax(G (T - P) / (n reg))|: how far P is from the exact fixed point.

    Parameters
    ----------
    P : (n, K) float array
        Candidate training outputs.
    T : (n,) int array or (n, K) float array
        Labels or targets (rows summing to 1).
    reg : float
        L2 strength > 0.
    X : (n, d) float array or None
        Features (G = X X^T, never formed); give exactly one of X and gram.
    gram : (n, n) float array or None
        Gram matrix.

    Returns
    -------
    float
        The max-abs residual of the fixed-point equation (0 at the exact probe's outputs).

    Raises
    ------
    ValueError
        If neither or both of X and gram are given, P and T differ in shape, or reg <= 0.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(12, 4)); y = np.argmax(X[:, :3], axis=1)
    >>> P = fixed_point(y, 1e-2, X=X)
    >>> fixed_point_residual(P, y, 1e-2, X=X) < 1e-10, fixed_point_residual(np.full((12, 3), 1 / 3), y, 1e-2, X=X) > 0.1
    (True, True)
    """
    kind, M = _features_or_gram(X, gram)
    op = _Operator(kind, M, features=False)
    T = _targets(T, None, op.n, name="T")
    P = np.asarray(P, dtype=np.float64)
    if P.shape != T.shape:
        raise ValueError(f"P has shape {P.shape} but T has shape {T.shape}")
    reg = check_positive(reg, "reg")
    return _residual(op, P, T, reg)


def _residual(op, P, T, reg):
    Z = op.gram_times(T - P) / (op.n * reg)
    return float(np.abs(P - softmax(Z)).max())


def _solve(op, T, reg, init, tol):
    """Fit the exact probe on op.features; polish until the fixed-point residual is below tol."""
    K = T.shape[1]
    allow_neg = bool(T.min() < 0)
    probe = None
    solver_tol = 1e-13
    for _attempt in range(3):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence is judged by the residual below
            probe = fit_linear_probe(
                op.features, T, reg, n_classes=K, init=init if probe is None else probe,
                tol=solver_tol, max_iter=1000, allow_negative_targets=allow_neg,
            )
        P = probe.predict_proba(op.features)
        res = _residual(op, P, T, reg)
        if res <= tol:
            break
        solver_tol = max(solver_tol * 1e-2, 1e-17)
    return probe, P, res


def fixed_point(T, reg, *, X=None, gram=None, n_classes=None, init=None, tol=FIXED_POINT_TOL, return_info=False):
    """The exact (non-linearised) solution P of P = softmax(G (T - P) / (n reg)).

    P is the training output of the exact minimiser of the convex problem
    (1/n) sum_i CE(t_i, softmax(W x_i)) + (reg/2) ||W||_F^2 for any features with Gram matrix G
    (docs/science.md, setting); its stationarity condition n reg W = (T - P)^T X gives the equation above.
    Solved by :func:`selfdistill.fit_linear_probe` (Newton-CG) on X, or, for gram=, on the rows of
    L = U sqrt(mu) (G = L L^T from the eigen-decomposition, tiny negative eigenvalues clipped),
    then polished until the residual max_ik |P - softmax(G (T - P)/(n reg))| <= tol.

    Parameters
    ----------
    T : (n,) labels or (n, K) targets whose rows sum to 1.
    reg : L2 strength > 0.
    X : (n, d) float array or None
        Features; give exactly one of X and gram.
    gram : (n, n) float array or None
        PSD Gram matrix.
    n_classes : K for integer labels with absent classes.
    init : warm start for the solver (a LinearProbe on the same features, or weights (K, d)).
    tol : residual target (default 1e-10). Not reached (extreme reg at float64): RuntimeWarning.
    return_info : also return a dict with ``residual``, ``seconds``, ``n_iter`` and ``probe``.

    Returns
    -------
    P : (n, K), or (P, info) with ``return_info``.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(12, 4)); y = np.argmax(X[:, :3], axis=1)
    >>> P, info = fixed_point(y, 1e-2, X=X, return_info=True)
    >>> P.shape, info["residual"] < 1e-10
    ((12, 3), True)
    >>> bool(np.allclose(fixed_point(y, 1e-2, gram=X @ X.T), P, atol=1e-8))  # only G matters
    True
    """
    t0 = time.perf_counter()
    kind, M = _features_or_gram(X, gram)
    T = _targets(T, n_classes, M.shape[0], name="T")
    reg = check_positive(reg, "reg")
    tol = check_positive(tol, "tol")
    op = _Operator(kind, M)
    probe, P, res = _solve(op, T, reg, init, tol)
    if res > tol:
        warnings.warn(
            f"fixed_point: residual {res:.3g} above tol={tol:g} after polishing (reg={reg:g}); "
            "float64 limits the answer",
            RuntimeWarning,
            stacklevel=2,
        )
    if return_info:
        return P, {"residual": res, "seconds": time.perf_counter() - t0, "n_iter": probe.n_iter_, "probe": probe}
    return P


@dataclass
class ExactChain(_RoundAccuracies):
    """The exact multi-round chain on a Gram matrix or features (what :func:`exact_chain` returns).

    Parameters
    ----------
    train_probs : (rounds+1, n, K) exact outputs P_t of round t on the training points.
    residuals : list of fixed-point residuals, rounds 0..R then the PLL student.
    seconds : list of solve times, in the same order.
    pll_probs : (n, K) the PLL student's outputs (trained on the teacher's top-k, 1/k each), or None.
    test_probs : (rounds+1, m, K) round-t outputs on the test points, or None.
    test_pll_probs : (m, K) or None.

    Examples
    --------
    >>> import numpy as np
    >>> from selfdistill.theory import exact_chain
    >>> X = np.random.default_rng(0).normal(size=(12, 4)); y = np.argmax(X[:, :3], axis=1)
    >>> ch = exact_chain(y, 1e-2, 1, X=X, pll=False, X_test=X[:5])
    >>> ch.train_probs.shape, len(ch.residuals), max(ch.residuals) < 1e-10
    ((2, 12, 3), 2, True)
    """

    train_probs: np.ndarray
    residuals: list
    seconds: list
    pll_probs: np.ndarray | None = None
    test_probs: np.ndarray | None = None
    test_pll_probs: np.ndarray | None = None
    _builder = "exact_chain"  # not a field: no annotation

    def pll_accuracy(self, y_true) -> float:
        """Training-point accuracy of the PLL student.

        Parameters
        ----------
        y_true : (n,) int array
            Reference labels of the training points.

        Returns
        -------
        float
            Fraction of training points where the PLL student's argmax equals y_true.

        Raises
        ------
        ValueError
            If the chain has no PLL student.

        Examples
        --------
        >>> import numpy as np
        >>> from selfdistill.theory import exact_chain
        >>> X = np.random.default_rng(0).normal(size=(12, 4)); y = np.argmax(X[:, :3], axis=1)
        >>> ch = exact_chain(y, 1e-2, 0, X=X, pll=True, top_k=2)
        >>> 0.0 <= ch.pll_accuracy(y) <= 1.0
        True
        """
        if self.pll_probs is None:
            raise ValueError("no PLL student: pass pll=True to exact_chain")
        y_true = check_labels(y_true, "y_true", n_samples=self.pll_probs.shape[0])
        return float(np.mean(np.argmax(self.pll_probs, axis=1) == y_true))


def exact_chain(
    Y, reg, rounds, *, X=None, gram=None, pll=False, top_k=2, X_test=None, gram_test=None, n_classes=None,
    tol=FIXED_POINT_TOL,
) -> ExactChain:
    """The exact (non-linearised) self-distillation chain: fixed points round after round.

    Round 0 solves P_0 = softmax(G (Y - P_0) / (n reg)); round t >= 1 solves
    P_t = softmax(G (P_{t-1} - P_t) / (n reg)) (each by :func:`fixed_point`, warm-started from the
    previous round). With ``pll`` the PLL student solves P = softmax(G (T - P) / (n reg)) with
    T = refine_targets(P_0, "topk", top_k) (1/k on the teacher's top-k labels). This is the chain of
    :func:`selfdistill.distill` (pll_loss="uniform") computed from the Gram matrix alone.

    Test outputs: softmax(g^T (T_t - P_t) / (n reg)) for a test point with Gram row g
    (= softmax(W_t x) with X).

    Parameters
    ----------
    Y : (n,) int array or (n, K) float array
        Labels (the teacher's one-hot targets) or targets with rows summing to 1.
    reg : float
        L2 strength > 0.
    rounds : int
        R >= 0 SD rounds after the teacher.
    X : (n, d) float array or None
        Features; give exactly one of X and gram.
    gram : (n, n) float array or None
        PSD Gram matrix.
    pll : bool
        Also solve the PLL student (the uniform top-k loss).
    top_k : int
        Candidate-set size k (2 <= k < K), with ``pll``.
    X_test : (m, d) float array or None
        Test features (with X).
    gram_test : (m, n) float array or None
        Test points' inner products with the training points (with gram).
    n_classes : int or None
        K for integer labels with absent classes.
    tol : float
        Fixed-point residual target of every round (a RuntimeWarning when not reached).

    Returns
    -------
    ExactChain
        ``train_probs`` (rounds+1, n, K), ``pll_probs``, ``test_probs``, residuals and times.

    Raises
    ------
    ValueError
        Neither or both of X / gram, reg <= 0, rounds < 0, top_k out of range, or test points of
        the wrong shape.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(12, 4)); y = np.argmax(X[:, :3], axis=1)
    >>> ch = exact_chain(y, 1e-2, 1, X=X, pll=True)
    >>> from selfdistill import distill
    >>> res = distill(X, y, reg=1e-2, rounds=1, tol=1e-12)  # the same chain, trained
    >>> bool(np.allclose(ch.train_probs[1], res.train_probs["round 1"], atol=1e-7))
    True
    >>> bool(np.allclose(ch.pll_probs, res.train_probs["pll-uniform"], atol=1e-7))
    True
    """
    kind, M, T0, reg, rounds = _chain_inputs(Y, reg, rounds, X, gram, n_classes)
    n, K = T0.shape
    tol = check_positive(tol, "tol")
    if pll:
        top_k = check_int(top_k, "top_k", low=2, high=K - 1)
    test = _test_block(kind, M, X_test, gram_test)
    op = _Operator(kind, M)

    def fit(T, chain):  # one fixed point, warm-started from the previous round's probe
        t0 = time.perf_counter()
        probe, P, res = _solve(op, T, reg, chain[-1].model["probe"] if chain else None, tol)
        out = {"probe": probe, "residual": res, "seconds": time.perf_counter() - t0}
        out["test"] = None if test is None else _test_outputs(kind, test, probe, T, P, n, reg)
        return out, P

    chain = run_chain(fit, T0, rounds)
    pll_r = pll_round(fit, chain, top_k) if pll else None
    fits = [r.model for r in chain] + ([pll_r.model] if pll_r is not None else [])
    residuals = [f["residual"] for f in fits]
    seconds = [f["seconds"] for f in fits]
    probs = np.stack([r.probs for r in chain])
    test_probs = None if test is None else np.stack([r.model["test"] for r in chain])
    pll_probs = None if pll_r is None else pll_r.probs
    test_pll = None if pll_r is None else pll_r.model["test"]
    worst = max(residuals)
    if worst > tol:
        warnings.warn(f"exact_chain: largest fixed-point residual {worst:.3g} above tol={tol:g}", RuntimeWarning,
                      stacklevel=2)
    return ExactChain(
        train_probs=probs, residuals=residuals, seconds=seconds, pll_probs=pll_probs,
        test_probs=test_probs, test_pll_probs=test_pll,
    )


def _test_block(kind, M, X_test, gram_test):
    if X_test is None and gram_test is None:
        return None
    if kind == "X":
        if gram_test is not None:
            raise ValueError("with X= pass the test points as X_test= (features), not gram_test=")
        Xt = check_features(X_test, "X_test")
        if Xt.shape[1] != M.shape[1]:
            raise ValueError(f"X_test has {Xt.shape[1]} features but X has {M.shape[1]}")
        return Xt
    if X_test is not None:
        raise ValueError("with gram= pass the test points as gram_test= (m, n), not X_test=")
    gt = np.asarray(gram_test, dtype=np.float64)
    if gt.ndim != 2 or gt.shape[1] != M.shape[0]:
        raise ValueError(f"gram_test must have shape (m, n) with n = {M.shape[0]}, got {gt.shape}")
    if not np.all(np.isfinite(gt)):
        raise ValueError("gram_test must be finite")
    return gt


def _test_outputs(kind, test, probe, T, P, n, reg):
    if kind == "X":
        return probe.predict_proba(test)
    return softmax(test @ (T - P) / (n * reg))


# ------------------------------------------------------------------------------ iterative baseline
def adam_fixed_point(T, reg, *, gram, steps=5000, lr=0.01, init=None, record_every=0):
    """Baseline: solve P = softmax(G (T - P) / (n reg)) by Adam on the residual (the authors' idea).

    P = softmax(Q) is parametrised by logits Q (n, K) and Adam (beta1 0.9, beta2 0.999) minimises
    1/2 ||P - softmax(G (T - P) / (n reg))||_F^2 for ``steps`` steps from Q = log T (or ``init``).
    Each step costs one product G @ (n, K). Kept only to compare speed and accuracy with
    :func:`fixed_point`, which solves the convex problem exactly.

    Returns (P, residuals): residuals[i] = max-abs residual after every ``record_every`` steps (the
    final residual last).

    Parameters
    ----------
    T : (n,) int array or (n, K) float array
        Labels or targets with rows summing to 1.
    reg : float
        L2 strength > 0.
    gram : (n, n) float array
        PSD Gram matrix G.
    steps : int
        Adam steps.
    lr : float
        Adam's learning rate.
    init : (n, K) float array or None
        Starting logits Q (default log T, clipped at 1e-3).
    record_every : int
        Record the residual every this many steps (0: only the final one).

    Returns
    -------
    P : (n, K) float array
        softmax(Q) after the last step.
    residuals : list of float
        The recorded residuals, the final one last.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(12, 4)); y = np.argmax(X[:, :3], axis=1)
    >>> P, res = adam_fixed_point(y, 1e-1, gram=X @ X.T, steps=200, record_every=100)
    >>> len(res), res[-1] < res[0]
    (3, True)
    """
    G = check_gram(gram, "gram")
    n = G.shape[0]
    T = _targets(T, None, n, name="T")
    reg = check_positive(reg, "reg")
    steps = check_int(steps, "steps", low=0)
    Q = np.log(np.clip(T, 1e-3, None)) if init is None else np.array(init, dtype=np.float64)
    m1 = np.zeros_like(Q)
    m2 = np.zeros_like(Q)
    b1, b2, eps = 0.9, 0.999, 1e-12
    history = []
    scale = 1.0 / (n * reg)

    def jvp(S, V):  # row-wise softmax Jacobian (symmetric) times V
        SV = S * V
        return SV - S * SV.sum(axis=1, keepdims=True)

    for it in range(1, steps + 1):
        P = softmax(Q)
        S = softmax(G @ (T - P) * scale)
        r = P - S
        gP = r + (G @ jvp(S, r)) * scale
        g = jvp(P, gP)
        m1 = b1 * m1 + (1 - b1) * g
        m2 = b2 * m2 + (1 - b2) * g * g
        Q = Q - lr * (m1 / (1 - b1**it)) / (np.sqrt(m2 / (1 - b2**it)) + eps)
        if record_every and it % record_every == 0:
            history.append(float(np.abs(r).max()))
    P = softmax(Q)
    history.append(float(np.abs(P - softmax(G @ (T - P) * scale)).max()))
    return P, history


# ------------------------------------------------------------------------------ theory on real data
def theory_vs_training(X, y, X_test, y_test, regs, *, rounds=4, y_true=None, n_classes=None, tol=1e-8):
    """Label averaging's per-round predictions beside the trained chain's, for each reg.

    For every reg: :func:`label_averaging` (X=, the linearised closed form) and
    :func:`selfdistill.distill` (the exact probes, pll=False) on the same (noisy) labels y.

    Returns a list of rows (dicts), one per (reg, round): ``reg``, ``round``, ``theory_test_acc``,
    ``trained_test_acc``, ``test_agreement`` (fraction of test points where the two predictions
    agree), and, with ``y_true``, ``theory_train_acc`` and ``trained_train_acc`` (against the clean
    training labels).

    Parameters
    ----------
    X : (n, d) float array
        Training features.
    y : (n,) int array
        Given (possibly noisy) training labels.
    X_test : (m, d) float array
        Test features.
    y_test : (m,) int array
        Test labels.
    regs : float or sequence of float
        The L2 strengths (each > 0).
    rounds : int
        R >= 0 SD rounds after the teacher.
    y_true : (n,) int array or None
        Clean training labels, for the train accuracies.
    n_classes : int or None
        K when some classes have no label.
    tol : float
        The trained probes' convergence tolerance.

    Returns
    -------
    list of dict
        One row per (reg, round), keys as above.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(30, 4)); y = np.argmax(X[:, :3], axis=1)
    >>> rows = theory_vs_training(X[:20], y[:20], X[20:], y[20:], [1e-2], rounds=1)
    >>> [(r["reg"], r["round"]) for r in rows], sorted(rows[0])[:3]
    ([(0.01, 0), (0.01, 1)], ['reg', 'round', 'test_agreement'])
    """
    from ..distill import distill

    X = check_features(X, "X")
    n = X.shape[0]
    y = check_labels(y, "y", n_samples=n, n_classes=n_classes)
    K = int(n_classes) if n_classes is not None else int(y.max()) + 1
    X_test = check_features(X_test, "X_test")
    y_test = check_labels(y_test, "y_test", n_samples=X_test.shape[0], n_classes=K)
    if y_true is not None:
        y_true = check_labels(y_true, "y_true", n_samples=n, n_classes=K)
    regs = [check_positive(r, "reg") for r in np.atleast_1d(regs).tolist()]
    if not regs:
        raise ValueError("regs must hold at least one value")
    rounds = check_int(rounds, "rounds", low=0)
    rows = []
    for reg in regs:
        la = label_averaging(y, reg, rounds, X=X, X_test=X_test, n_classes=K)
        res = distill(X, y, reg=reg, rounds=rounds, pll=False, X_test=X_test, y_test=y_test, y_true=y_true,
                      n_classes=K, tol=tol)
        theory_test = la.test_accuracy(y_test)
        theory_train = la.accuracy(y_true) if y_true is not None else None
        theory_pred = la.test_predictions
        assert theory_pred is not None  # built with X_test: test_accuracy above raised otherwise
        for t in range(rounds + 1):
            name = f"round {t}"
            pred_trained = res.models[name].predict(X_test)
            rows.append({
                "reg": reg,
                "round": t,
                "theory_test_acc": float(theory_test[t]),
                "trained_test_acc": float(res.metric(name, "test_acc")),
                "test_agreement": float(np.mean(pred_trained == theory_pred[t])),
                "theory_train_acc": None if theory_train is None else float(theory_train[t]),
                "trained_train_acc": res.metric(name, "train_acc"),
            })
    return rows
