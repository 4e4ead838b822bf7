"""The block model's exact (non-linearised) chain, reduced to the groups (docs/theory.md, section 8).

By symmetry (and uniqueness of the convex minimiser) the exact outputs are equal within each
group (k, j) of class-k points labelled j, so the fixed point P = softmax(G (T - P) / (n reg))
reduces to one probe on the group-mean features phi_g, <phi_g, phi_g'> = Gamma[k, k'] +
[g = g'] (1 - c) / N_g, with sample weights N_g: K^2 rows instead of n. Each round is
:func:`selfdistill.fit_linear_probe` with ``sample_weight``; the rounds are chained by
:func:`selfdistill.distill.run_chain`.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ..distill import pll_round, run_chain
from ..probe import ConvergenceWarning, fit_linear_probe, softmax

# the group probe is tiny (at most K^2 rows): solve it to float64 round-off; the fixed-point
# residual of the full equation, reported with the answer, is the measure of accuracy
_GROUP_TOL = 1e-16  # as the dense Newton it replaces: max|grad| <= 1e-16 max(1, max|grad_0|)
_GROUP_MAX_ITER = 200


class GroupProbe:
    """The reduced problem of label counts N (K, K) on a block model ``bm``.

    Parameters
    ----------
    bm : BlockModel
        The model.
    N : (K, K) float array
        Checked label counts.

    Attributes
    ----------
    kk, jj : (G,) true class and label of each non-empty group (N[k, j] > 0).
    w : (G,) group sizes N_g (the sample weights).
    Phi : (G, r) group-mean features.

    Examples
    --------
    >>> from selfdistill.theory import BlockModel
    >>> bm = BlockModel(3, 20, c=0.4, d=0.1, reg=1e-2)
    >>> N = bm.check_label_counts(bm.sample_counts("symmetric", 0.3, seed=0))
    >>> gp = GroupProbe(bm, N)
    >>> gp.kk.tolist(), gp.jj.tolist(), gp.w.tolist()
    ([0, 0, 0, 1, 1, 1, 2, 2, 2], [0, 1, 2, 0, 1, 2, 0, 1, 2], [14.0, 1.0, 5.0, 4.0, 14.0, 2.0, 2.0, 4.0, 14.0])
    >>> bool(np.allclose(gp.Phi @ gp.Phi.T, bm.gamma[gp.kk][:, gp.kk] + np.diag(0.6 / gp.w)))
    True
    """

    def __init__(self, bm, N):
        self.bm = bm
        self.kk, self.jj = np.nonzero(N > 0)
        self.w = N[self.kk, self.jj]
        gk = bm.gamma[self.kk][:, self.kk]
        ev, EV = np.linalg.eigh(gk + np.diag((1.0 - bm.c) / self.w))  # Gram of the group means
        keep = ev > max(ev.max(), 0.0) * 1e-15
        self.Phi = EV[:, keep] * np.sqrt(ev[keep])[None, :]
        self._gk = gk

    def logits(self, T, P):
        """Full-equation logits G (T - P) / (n reg) of every group (G, K) and of a new point of
        each class (K, K).

        Parameters
        ----------
        T : (G, K) float array
            Group targets.
        P : (G, K) float array
            Group outputs.

        Returns
        -------
        z : (G, K) float array
            G (T - P) / (n reg) on the rows of each group.
        z_test : (K, K) float array
            The same for a new point of each class (row k).

        Examples
        --------
        >>> from selfdistill.theory import BlockModel
        >>> bm = BlockModel(3, 20, c=0.4, d=0.1, reg=1e-2)
        >>> N = bm.check_label_counts(bm.sample_counts("symmetric", 0.3, seed=0))
        >>> gp = GroupProbe(bm, N)
        >>> z, z_test = gp.logits(np.eye(3)[gp.jj], np.full((9, 3), 1 / 3))
        >>> z.shape, z_test.shape
        ((9, 3), (3, 3))
        """
        bm = self.bm
        M = self.w[:, None] * (T - P)
        scale = float(self.w.sum()) * bm.reg
        z = ((1.0 - bm.c) * (T - P) + self._gk @ M) / scale
        return z, bm.gamma[:, self.kk] @ M / scale

    def fit(self, T, chain):
        """One round on group targets T (G, K), warm-started from the previous round: (round, P)
        with round = dict(probe, residual (max-abs fixed-point residual), test (K, K) outputs).

        Parameters
        ----------
        T : (G, K) float array
            Group targets (rows sum to 1).
        chain : list of ChainRound
            Earlier rounds (:func:`selfdistill.distill.run_chain`); the last one's probe is the
            warm start.

        Returns
        -------
        round : dict
            probe, residual, test.
        P : (G, K) float array
            The round's group outputs.

        Examples
        --------
        >>> from selfdistill.theory import BlockModel
        >>> bm = BlockModel(3, 20, c=0.4, d=0.1, reg=1e-2)
        >>> N = bm.check_label_counts(bm.sample_counts("symmetric", 0.3, seed=0))
        >>> gp = GroupProbe(bm, N)
        >>> rnd, P = gp.fit(np.eye(3)[gp.jj], [])  # the teacher
        >>> P.shape, rnd["residual"] < 1e-10
        ((9, 3), True)
        """
        init = chain[-1].model["probe"] if chain else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # judged by the residual below
            probe = fit_linear_probe(self.Phi, T, self.bm.reg, sample_weight=self.w, init=init,
                                     tol=_GROUP_TOL, max_iter=_GROUP_MAX_ITER)
        P = probe.predict_proba(self.Phi)
        z, zt = self.logits(T, P)
        return {"probe": probe, "residual": float(np.abs(P - softmax(z)).max()), "test": softmax(zt)}, P


def exact_probs(bm, N, rounds, pll, top_k):
    """The exact chain per group (see BlockModel.exact_probs): a dict of train, test, residuals
    (and pll, pll_test, ties with ``pll``).

    Parameters
    ----------
    bm : BlockModel
        The model.
    N : (K, K) float array
        Checked label counts.
    rounds : int
        R >= 0 SD rounds after the teacher.
    pll : bool
        Also train the PLL student.
    top_k : int
        Its candidate-set size.

    Returns
    -------
    dict
        train (rounds+1, K, K, K), test (rounds+1, K, K), residuals, and with ``pll``: pll
        (K, K, K), pll_test (K, K), ties.

    Examples
    --------
    >>> from selfdistill.theory import BlockModel
    >>> bm = BlockModel(3, 20, c=0.4, d=0.1, reg=1e-2)
    >>> N = bm.check_label_counts(bm.sample_counts("symmetric", 0.3, seed=0))
    >>> out = exact_probs(bm, N, 1, True, 2)
    >>> sorted(out), out["ties"], max(out["residuals"]) < 1e-10
    (['pll', 'pll_test', 'residuals', 'test', 'ties', 'train'], [], True)
    """
    K = bm.n_classes
    gp = GroupProbe(bm, N)
    chain = run_chain(gp.fit, np.eye(K)[gp.jj], rounds)
    train = np.full((rounds + 1, K, K, K), np.nan)
    train[:, gp.kk, gp.jj] = np.stack([r.probs for r in chain])
    out: dict[str, Any] = {
        "train": train,
        "test": np.stack([r.model["test"] for r in chain]),
        "residuals": [r.model["residual"] for r in chain],
    }
    if pll:
        student = pll_round(gp.fit, chain, top_k)
        ties = np.flatnonzero((student.targets > 0).sum(axis=1) > top_k)  # the tie rule's own verdict
        pll_train = np.full((K, K, K), np.nan)
        pll_train[gp.kk, gp.jj] = student.probs
        out.update(pll=pll_train, pll_test=student.model["test"], ties=[(int(gp.kk[i]), int(gp.jj[i])) for i in ties])
        out["residuals"].append(student.model["residual"])
    return out


def group_predictions(P):
    """Predicted label of each group from group outputs P (..., K, K, K) (empty, NaN groups: label 0).

    Parameters
    ----------
    P : (..., K, K, K) float array
        Outputs [..., k, j, l] of group (k, j), NaN rows for empty groups (:func:`exact_probs`).

    Returns
    -------
    (..., K, K) int array
        argmax over l.

    Examples
    --------
    >>> P = np.full((2, 2, 2), np.nan); P[0, 0] = [0.8, 0.2]; P[1, 1] = [0.3, 0.7]
    >>> group_predictions(P).tolist()
    [[0, 0], [0, 1]]
    """
    return np.argmax(np.nan_to_num(P, nan=-1.0), axis=-1)


def group_accuracy(pred, N, n):
    """(T,) training accuracy of group predictions: sum_{k,j} N[k, j] [pred[t, k, j] = k] / n.

    Parameters
    ----------
    pred : (T, K, K) int array
        Predicted label of group (k, j) at round t (:func:`group_predictions`).
    N : (K, K) float array
        Label counts, N[k, j] = class-k points labelled j (empty groups count nothing).
    n : int
        Number of training points.

    Returns
    -------
    (T,) float array
        Accuracy of each round.

    Examples
    --------
    >>> group_accuracy(np.array([[[0, 0], [0, 1]]]), np.array([[3.0, 1.0], [2.0, 4.0]]), 10).tolist()  # (1, 0) wrong
    [0.8]
    """
    right = pred == np.arange(N.shape[0])[None, :, None]
    return np.einsum("tkj,kj->t", right.astype(np.float64), N) / n


def accuracies(bm, N, exact):
    """Accuracies of the exact chain ``exact`` (:func:`exact_probs`): train, test (and pll).

    Parameters
    ----------
    bm : BlockModel
        The model.
    N : (K, K) float array
        Checked label counts.
    exact : dict
        What :func:`exact_probs` returned for ``bm`` and ``N``.

    Returns
    -------
    dict
        ``train`` (rounds+1,) training accuracy per round; ``test`` (rounds+1,) accuracy on new
        points, classes weighed by their training proportions m_k / n; with a PLL student in
        ``exact``, ``pll`` its training accuracy (float).

    Examples
    --------
    >>> from selfdistill.theory import BlockModel
    >>> bm = BlockModel(3, 20, c=0.4, d=0.1, reg=1e-2)
    >>> N = bm.check_label_counts(bm.sample_counts("symmetric", 0.3, seed=0))
    >>> acc = accuracies(bm, N, exact_probs(bm, N, 1, True, 2))
    >>> np.round(acc["train"], 3).tolist(), acc["test"].tolist(), sorted(acc)
    ([0.85, 1.0], [1.0, 1.0], ['pll', 'test', 'train'])
    """
    K = bm.n_classes
    test_right = np.argmax(exact["test"], axis=2) == np.arange(K)[None, :]
    out = {"train": group_accuracy(group_predictions(exact["train"]), N, bm.n),
           "test": test_right.astype(np.float64) @ (bm.sizes / bm.n)}
    if "pll" in exact:
        out["pll"] = float(group_accuracy(group_predictions(exact["pll"])[None], N, bm.n)[0])
    return out
