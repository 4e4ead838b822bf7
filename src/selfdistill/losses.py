"""The probe's losses on the logits Z (n, K), and the softmax arithmetic they share.

Each loss evaluates sum_i loss_i(z_i) and its gradient in Z (:meth:`value_grad`), then products of
its Hessian in Z with a direction V (n, K) (:meth:`hessp`, at the last point evaluated). The
solver (:mod:`selfdistill._newton`) adds the passes over the features, the 1/n and the L2 term.

- :class:`CrossEntropy`: logsumexp(z_i) - t_i.z_i, the (optionally weighted) soft-target CE;
  convex whatever the signs of t_i as long as sum_k t_ik = 1.
- :class:`Candidate`: -log sum_j w_ij p_ij, the classic partial-label loss (non-convex).
- :class:`GCE`: sum_j w_ij (1 - p_ij^q) / q, generalised CE over the candidates (non-convex).

Arrays live on a backend (``_backend.NumpyOps`` or ``TorchOps``); a loss works in the precision
of the Z it is given (float32 or float64).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._backend import NumpyOps

__all__ = ["GCE", "GCE_Q", "Candidate", "CrossEntropy", "log_softmax", "softmax"]

GCE_Q = 0.7
NUMPY = NumpyOps()


def log_softmax(Z: np.ndarray) -> np.ndarray:
    """Row-wise log softmax of logits Z (n, K), computed stably (max subtracted); shape (n, K).

    Parameters
    ----------
    Z : (n, K) float array
        Logits.

    Returns
    -------
    (n, K) float array
        log P_ik = Z_ik - log sum_j exp(Z_ij).

    Examples
    --------
    >>> import numpy as np
    >>> from selfdistill.losses import log_softmax
    >>> np.round(log_softmax(np.array([[0.0, 0.0], [1000.0, 0.0]])), 3).tolist()  # no overflow
    [[-0.693, -0.693], [0.0, -1000.0]]
    """
    Zs = Z - Z.max(axis=1, keepdims=True)
    return Zs - np.log(np.exp(Zs).sum(axis=1, keepdims=True))


def softmax(Z: np.ndarray) -> np.ndarray:
    """Row-wise softmax of logits Z (n, K): P_ik = exp(Z_ik) / sum_j exp(Z_ij); shape (n, K).

    Parameters
    ----------
    Z : (n, K) float array
        Logits.

    Returns
    -------
    (n, K) float array
        Probabilities P, rows summing to 1 (the max is subtracted first, so no overflow).

    Examples
    --------
    >>> import numpy as np
    >>> from selfdistill.losses import softmax
    >>> np.round(softmax(np.array([[0.0, np.log(3.0)], [1000.0, 1000.0]])), 3)
    array([[0.25, 0.75],
           [0.5 , 0.5 ]])
    """
    E = np.exp(Z - Z.max(axis=1, keepdims=True))
    E /= E.sum(axis=1, keepdims=True)
    return E


def log_softmax_ops(ops, Z):
    """(log P, P), each (n, K), for logits Z on the backend, in Z's precision; Z may be overwritten."""
    Z = Z - ops.rowmax(Z)
    E = ops.exp(Z)
    s = ops.rowsum(E)
    E /= s
    Z -= ops.log(s)
    return Z, E


def softmax_jvp(P, V, ops=NUMPY):
    """(diag(p_i) - p_i p_i^T) v_i for every row i: the softmax Jacobian applied to V (n, K)."""
    PV = P * V
    return PV - P * ops.rowsum(PV)


def as_dtype(ops, a, like):
    """``a`` cast to the precision (float32 or float64) of the backend array ``like``."""
    if ops.name == "numpy":
        return ops.cast(a, like.dtype)
    return ops.cast(a, np.float64 if like.dtype == ops.torch.float64 else np.float32)


class CrossEntropy:
    """sum_i w_i (logsumexp(z_i) - t_i.z_i) for targets T whose rows sum to 1.

    Parameters
    ----------
    T : (n, K) soft targets, or (n,) integer labels (one-hot targets, stored as labels to save an
        n x K array); a backend array.
    ops : the backend.
    weights : optional (n, 1) non-negative row weights w_i (backend, float64); None means w_i = 1.

    Examples
    --------
    >>> import numpy as np
    >>> from selfdistill.losses import CrossEntropy
    >>> value, grad = CrossEntropy(np.array([0, 1])).value_grad(np.zeros((2, 4)))
    >>> bool(np.isclose(value, 2 * np.log(4))), grad[0].tolist()  # n log K; P - T
    (True, [-0.75, 0.25, 0.25, 0.25])
    """

    convex = True

    def __init__(self, T, ops=NUMPY, weights=None):
        self.ops = ops
        self.labels = T.ndim == 1
        self.T = T
        self.weights = weights
        self._cache = {}

    def _cast(self, a, like):
        """``a`` (T or the weights) in ``like``'s precision, cast once per precision."""
        dtype = str(like.dtype)
        if self._cache.get(id(a), (None,))[0] != dtype:  # one copy of each array at a time
            self._cache[id(a)] = (dtype, as_dtype(self.ops, a, like))
        return self._cache[id(a)][1]

    def value_grad(self, Z):
        """(sum_i w_i CE(t_i, softmax(z_i)), its gradient (n, K) in Z); Z may be overwritten.

        Parameters
        ----------
        Z : (n, K) backend array
            Logits (float32 or float64; the loss works in that precision).

        Returns
        -------
        value : float
            sum_i w_i CE(t_i, softmax(z_i)).
        grad : (n, K) backend array
            w_i (p_i - t_i).

        Examples
        --------
        >>> import numpy as np
        >>> from selfdistill.losses import CrossEntropy
        >>> Z = np.array([[0.0, 0.0, 0.0], [2.0, 0.0, -1.0]])
        >>> loss = CrossEntropy(np.array([0, 2]))
        >>> value, grad = loss.value_grad(Z.copy())
        >>> round(float(value), 4), bool(np.allclose(grad.sum(axis=1), 0))
        (4.2685, True)
        """
        logP, P = log_softmax_ops(self.ops, Z)
        G, picked = self._residual_and_picked(logP, P)
        if self.weights is not None:
            w = self._cast(self.weights, P)
            picked = picked * w
            G *= w
        self._P = P
        return -self.ops.total(picked), G

    def _residual_and_picked(self, logP, P):
        """(P - T, the terms t_ik log p_ik: (n, 1) for labels, (n, K) for soft targets)."""
        ops = self.ops
        if not self.labels:
            T = self._cast(self.T, P)  # logsumexp(z) - t.z = -t.log p  when sum(t) = 1
            return P - T, T * logP
        idx = self.T
        if ops.name == "numpy":
            rows = np.arange(idx.shape[0])
            G = P.copy()
            G[rows, idx] -= 1.0
            return G, logP[rows, idx][:, None]
        picked = logP.gather(1, idx[:, None])
        G = P.clone()
        G.scatter_add_(1, idx[:, None], -ops.torch.ones_like(picked))
        return G, picked

    def hess_curv(self):
        """(P (n, K) at the last point, the row weights (n, 1) or None): the curvature's factors.

        Returns
        -------
        P : (n, K) backend array
            softmax(Z) at the last :meth:`value_grad`.
        weights : (n, 1) backend array or None
            The row weights.

        Examples
        --------
        >>> import numpy as np
        >>> from selfdistill.losses import CrossEntropy
        >>> Z = np.array([[0.0, 0.0, 0.0], [2.0, 0.0, -1.0]])
        >>> loss = CrossEntropy(np.array([0, 2]))
        >>> _ = loss.value_grad(Z.copy())
        >>> P, w = loss.hess_curv()
        >>> np.round(P[0], 3).tolist(), w is None
        ([0.333, 0.333, 0.333], True)
        """
        return self._P, self.weights

    def hessp(self, V):
        """w_i (diag(p_i) - p_i p_i^T) v_i for every row: the Hessian in Z times V (n, K).

        Parameters
        ----------
        V : (n, K) backend array
            Direction in logit space.

        Returns
        -------
        (n, K) backend array
            The Hessian-vector product at the last :meth:`value_grad`.

        Examples
        --------
        >>> import numpy as np
        >>> from selfdistill.losses import CrossEntropy
        >>> Z = np.array([[0.0, 0.0, 0.0], [2.0, 0.0, -1.0]])
        >>> loss = CrossEntropy(np.array([0, 2]))
        >>> V = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, -1.0]])
        >>> _ = loss.value_grad(Z.copy())
        >>> Hv = loss.hessp(V)
        >>> g_plus = loss.value_grad(Z + 1e-6 * V)[1]; g_minus = loss.value_grad(Z - 1e-6 * V)[1]
        >>> bool(np.allclose(Hv, (g_plus - g_minus) / 2e-6, atol=1e-6))  # the gradient's derivative
        True
        """
        H = softmax_jvp(as_dtype(self.ops, self._P, V), V, self.ops)
        if self.weights is not None:
            H *= self._cast(self.weights, H)
        return H


class _PartialLabelLoss:
    """What the candidate losses share: non-convex, the curvature's softmax factor at the last point."""

    convex = False
    _P: Any  # softmax(Z) at the last value_grad, set there
    row_weights: Any  # (n, 1) r_i >= 0 or None, set by the subclass

    def hess_curv(self):
        """(P (n, K) at the last point, None): the softmax factor of the curvature (no row weights).

        Returns
        -------
        P : (n, K) backend array
            softmax(Z) at the last :meth:`value_grad`.
        weights : (n, 1) backend array or None
            The row weights (None without them).

        Examples
        --------
        >>> import numpy as np
        >>> from selfdistill.losses import Candidate
        >>> W = np.array([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5]])  # 1/2 on each of 2 candidates
        >>> Z = np.array([[1.0, 0.0, -1.0], [0.0, 2.0, 0.0]])
        >>> loss = Candidate(W)
        >>> _ = loss.value_grad(Z.copy())
        >>> P, w = loss.hess_curv()
        >>> P.shape, w is None
        ((2, 3), True)
        """
        return self._P, self.row_weights


class Candidate(_PartialLabelLoss):
    """sum_i -log sum_j w_ij p_ij: the weighted likelihood of the candidate set.

    weights (n, K): candidate weights, rows summing to 1. For 1/k on each of k candidates this is
    -log sum_{j in S_i} p_ij + log k, so the same minimiser as the unweighted candidate loss.

    Parameters
    ----------
    weights : (n, K) backend array
        Candidate weights w_ij >= 0, rows summing to 1 (S_i = {j : w_ij > 0}).
    ops : backend
        The array backend (NumPy by default).
    row_weights : (n, 1) backend array or None
        Row weights r_i >= 0: the loss becomes sum_i r_i loss_i (a 0/1 vector is a row subset).

    Examples
    --------
    >>> import numpy as np
    >>> from selfdistill.losses import Candidate
    >>> value, grad = Candidate(np.array([[0.5, 0.5, 0.0]])).value_grad(np.zeros((1, 3)))
    >>> bool(np.isclose(value, np.log(3)))  # -log(1/2 * 1/3 + 1/2 * 1/3)
    True
    """

    def __init__(self, weights, ops=NUMPY, row_weights=None):
        self.ops = ops
        self.mask = weights > 0
        self.row_weights = row_weights  # (n, 1) r_i >= 0 or None: the loss becomes sum_i r_i loss_i
        with np.errstate(divide="ignore"):
            self.log_w = np.log(weights) if ops.name != "torch" else ops.torch.log(weights)

    def value_grad(self, Z):
        """(sum_i -log sum_j w_ij p_ij, its gradient (n, K) in Z); Z may be overwritten.

        Parameters
        ----------
        Z : (n, K) backend array
            Logits.

        Returns
        -------
        value : float
            The loss.
        grad : (n, K) backend array
            P - Q, Q_ij = w_ij p_ij / sum_l w_il p_il (the posterior over the candidates).

        Examples
        --------
        >>> import numpy as np
        >>> from selfdistill.losses import Candidate
        >>> W = np.array([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5]])  # 1/2 on each of 2 candidates
        >>> Z = np.array([[1.0, 0.0, -1.0], [0.0, 2.0, 0.0]])
        >>> loss = Candidate(W)
        >>> value, grad = loss.value_grad(Z.copy())
        >>> round(float(value), 4), bool(np.allclose(grad.sum(axis=1), 0))
        (1.5933, True)
        """
        ops = self.ops
        logP, P = log_softmax_ops(ops, Z)
        masked = ops.where(self.mask, logP + as_dtype(ops, self.log_w, logP), -np.inf)
        m = ops.rowmax(masked)
        log_mass = m + ops.log(ops.rowsum(ops.exp(masked - m)))
        Q = ops.where(self.mask, ops.exp(masked - log_mass), 0.0)
        self._P, self._Q = P, Q
        if self.row_weights is None:
            return -ops.total(log_mass), P - Q
        r = as_dtype(ops, self.row_weights, P)
        return -ops.total(log_mass * r), (P - Q) * r

    def hessp(self, V):
        """The Hessian in Z at the last :meth:`value_grad` times V (n, K), row by row.

        Parameters
        ----------
        V : (n, K) backend array
            Direction in logit space.

        Returns
        -------
        (n, K) backend array
            The Hessian-vector product.

        Examples
        --------
        >>> import numpy as np
        >>> from selfdistill.losses import Candidate
        >>> W = np.array([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5]])  # 1/2 on each of 2 candidates
        >>> Z = np.array([[1.0, 0.0, -1.0], [0.0, 2.0, 0.0]])
        >>> loss = Candidate(W)
        >>> V = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, -1.0]])
        >>> _ = loss.value_grad(Z.copy())
        >>> Hv = loss.hessp(V)
        >>> g_plus = loss.value_grad(Z + 1e-6 * V)[1]; g_minus = loss.value_grad(Z - 1e-6 * V)[1]
        >>> bool(np.allclose(Hv, (g_plus - g_minus) / 2e-6, atol=1e-6))
        True
        """
        ops = self.ops
        P, Q = as_dtype(ops, self._P, V), as_dtype(ops, self._Q, V)
        H = softmax_jvp(P, V, ops) - softmax_jvp(Q, V, ops)
        return H if self.row_weights is None else H * as_dtype(ops, self.row_weights, H)


class GCE(_PartialLabelLoss):
    """sum_i sum_j w_ij (1 - p_ij^q) / q: generalised cross-entropy over the candidates.

    weights (n, K): candidate weights, rows summing to 1 (1/k on each of k candidates: the mean over S_i).

    Parameters
    ----------
    weights : (n, K) backend array
        Candidate weights w_ij >= 0, rows summing to 1.
    q : float
        The GCE exponent (default :data:`GCE_Q` = 0.7, the authors' experiment code).
    ops : backend
        The array backend (NumPy by default).
    row_weights : (n, 1) backend array or None
        Row weights r_i >= 0: the loss becomes sum_i r_i loss_i (they scale row i's candidate weights).

    Examples
    --------
    >>> import numpy as np
    >>> from selfdistill.losses import GCE
    >>> value, grad = GCE(np.array([[0.5, 0.5, 0.0]])).value_grad(np.zeros((1, 3)))
    >>> bool(np.isclose(value, (1 - (1 / 3) ** 0.7) / 0.7))
    True
    """

    def __init__(self, weights, q=GCE_Q, ops=NUMPY, row_weights=None):
        self.ops = ops
        # the loss is linear in w: row weights r_i (n, 1) scale row i's candidate weights
        self.w = weights if row_weights is None else weights * row_weights
        self.row_weights = row_weights
        self.mass = None if row_weights is None else ops.rowsum(self.w)  # sum_j of each row: r_i
        self.q = q

    def value_grad(self, Z):
        """(sum_i sum_j w_ij (1 - p_ij^q) / q, its gradient (n, K) in Z); Z may be overwritten.

        Parameters
        ----------
        Z : (n, K) backend array
            Logits.

        Returns
        -------
        value : float
            The loss.
        grad : (n, K) backend array
            -(A - a P), A_ij = w_ij p_ij^q, a_i = sum_j A_ij.

        Examples
        --------
        >>> import numpy as np
        >>> from selfdistill.losses import GCE
        >>> W = np.array([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5]])  # 1/2 on each of 2 candidates
        >>> Z = np.array([[1.0, 0.0, -1.0], [0.0, 2.0, 0.0]])
        >>> loss = GCE(W)
        >>> value, grad = loss.value_grad(Z.copy())
        >>> round(float(value), 4), bool(np.allclose(grad.sum(axis=1), 0))
        (1.3005, True)
        """
        ops = self.ops
        _, P = log_softmax_ops(ops, Z)
        A = as_dtype(ops, self.w, P) * ops.power(P, self.q)
        a = ops.rowsum(A)
        self._P, self._A, self._a = P, A, a
        value = ops.total(((1.0 if self.mass is None else as_dtype(ops, self.mass, a)) - a) / self.q)
        return value, -(A - a * P)

    def hessp(self, V):
        """The Hessian in Z at the last :meth:`value_grad` times V (n, K), row by row.

        Parameters
        ----------
        V : (n, K) backend array
            Direction in logit space.

        Returns
        -------
        (n, K) backend array
            The Hessian-vector product.

        Examples
        --------
        >>> import numpy as np
        >>> from selfdistill.losses import GCE
        >>> W = np.array([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5]])  # 1/2 on each of 2 candidates
        >>> Z = np.array([[1.0, 0.0, -1.0], [0.0, 2.0, 0.0]])
        >>> loss = GCE(W)
        >>> V = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, -1.0]])
        >>> _ = loss.value_grad(Z.copy())
        >>> Hv = loss.hessp(V)
        >>> g_plus = loss.value_grad(Z + 1e-6 * V)[1]; g_minus = loss.value_grad(Z - 1e-6 * V)[1]
        >>> bool(np.allclose(Hv, (g_plus - g_minus) / 2e-6, atol=1e-6))
        True
        """
        ops = self.ops
        P, A, a = (as_dtype(ops, x, V) for x in (self._P, self._A, self._a))
        Pv = ops.rowsum(P * V)
        dA = self.q * A * (V - Pv)
        dP = P * V - P * Pv
        return -(dA - ops.rowsum(dA) * P - a * dP)
