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

    Attributes
    ----------
    kk, jj : (G,) true class and label of each non-empty group (N[k, j] > 0).
    w : (G,) group sizes N_g (the sample weights).   Phi : (G, r) group-mean features.
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
        each class (K, K)."""
        bm = self.bm
        M = self.w[:, None] * (T - P)
        scale = float(self.w.sum()) * bm.reg
        z = ((1.0 - bm.c) * (T - P) + self._gk @ M) / scale
        return z, bm.gamma[:, self.kk] @ M / scale

    def fit(self, T, chain):
        """One round on group targets T (G, K), warm-started from the previous round: (round, P)
        with round = dict(probe, residual (max-abs fixed-point residual), test (K, K) outputs)."""
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
    (and pll, pll_test, ties with ``pll``)."""
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
