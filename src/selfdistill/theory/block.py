"""The block correlation model in closed form (docs/theory.md, sections 4-7).

K classes with m_k training points each (n = sum m_k), unit-norm features, correlation c between
two points of the same class, c_s between points of different classes in the same superclass
(optional level) and d otherwise, d <= c_s <= c <= 1. With Gamma (K x K) the class correlation
matrix (Gamma_kk = c, Gamma_kl = c_s or d) and Z (n x K) the class-indicator matrix,

    G = (1 - c) I + Z Gamma Z^T .

Eigen-spaces: vectors that sum to zero inside every class (dimension n - K) have eigenvalue
mu_w = 1 - c; class-constant vectors v = Z a form a K-dimensional invariant space on which G acts
as M = (1 - c) I + Gamma diag(m) (in the coordinates a). Equal sizes m, no superclasses:
mu_c = 1 - c + m (c - d) on class contrasts (sum_k a_k = 0, multiplicity K - 1) and
mu_1 = 1 - c + m (c - d) + n d on the all-ones vector.

Linearised chain (A = G (G + lam I)^-1, lam = K n reg): for a training point of true class k and
observed label j ("group (k, j)"), with N (K x K) the label counts N[k, j] = #{class k labelled j}
and Rbar_k = N[k, :] / m_k - 1/K the class-mean centred label,

    P_t(k, j) - 1/K = f_w^(t+1) (e_j - N[k, :] / m_k) + [h_(t+1)(M) Rbar]_k ,
    f_w = mu_w / (mu_w + lam),   h_u(M) = M^u (M + lam I)^-u .

Equal sizes, no superclasses, delta = column means of Rbar (global label frequencies minus 1/K):
the score of label l is

    S_t(k, j, l) = a_t N[k, l] / m + b_t delta_l + w_t [l = j] (+ a term constant in l),
    a_t = g_c^(t+1) - f_w^(t+1),  b_t = g_1^(t+1) - g_c^(t+1),  w_t = f_w^(t+1),
    g_c = mu_c / (mu_c + lam),  g_1 = mu_1 / (mu_1 + lam),

so the point is predicted correctly iff min over l != k of S_t(k,j,k) - S_t(k,j,l) is > 0.
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass

import numpy as np

from .._validation import check_choice, check_int, check_labels, check_positive
from ..data._checks import _check_counts
from ..data.block import _check_block_params, block_gram
from ..noise import NOISE_KINDS, corrupt_labels, realised_rates, transition_matrix
from ..probe import log_softmax, softmax
from ..targets import refine_targets, topk_weights

__all__ = ["BlockModel", "BlockSpectrum", "agreement_grid", "phase_maps"]

_TIE_RTOL = 1e-9  # a margin within this fraction of the round's largest |score| is a tie (not correct)
_FLOAT_NOISE = 1e-12  # accuracy of the exact chain's outputs, added to the linearisation error estimate


def _tied_groups(values, tol):
    """Indices of ``values`` grouped into eigenvalues equal within ``tol``, groups by descending value.

    Sorted by value, a new group starts where the gap to the previous value exceeds ``tol``; inside
    a group the indices keep their original (block) order, so the merged name of tied eigen-spaces
    never depends on how round-off orders two equal numbers.
    """
    order = np.argsort(-values, kind="stable")
    groups = []
    for prev, i in zip([None, *order[:-1]], order):
        if prev is None or values[prev] - values[i] > tol:
            groups.append([])
        groups[-1].append(int(i))
    return [sorted(g) for g in groups]


@dataclass
class BlockSpectrum:
    """Eigenvalues of the block-model Gram matrix, one entry per eigen-space.

    Attributes
    ----------
    values : (s,) distinct eigenvalues, descending.
    multiplicities : (s,) their multiplicities (they sum to n).
    names : tuple of str: "all-ones", "superclass contrast", "class contrast", "within class",
        or "class level" when class sizes (or superclass sizes) differ and the class-constant space
        does not split further; a degenerate group lists every name it merges ("all-ones + class
        contrast" when d = 0).
    class_vectors : list (one per entry; None for "within class") of (K, mult) arrays: the
        eigenvectors restricted to the classes (entry k = value on every point of class k).
    """

    values: np.ndarray
    multiplicities: np.ndarray
    names: tuple
    class_vectors: list

    def all(self) -> np.ndarray:
        """All n eigenvalues, descending (each repeated by its multiplicity)."""
        return np.repeat(self.values, self.multiplicities)

    def __iter__(self):
        return iter(zip(self.values.tolist(), self.multiplicities.tolist(), self.names))

    def __len__(self):
        return len(self.values)


class BlockModel:
    """The block (and superclass) correlation model of docs/theory.md, in closed form.

    Parameters
    ----------
    n_classes : K >= 2.
    per_class : m (training points per class, >= 1) or a sequence of K sizes m_k.
    c : within-class correlation, d < c <= 1.
    d : between-class correlation, -1 <= d < c, and the Gram matrix must be positive semi-definite:
        for equal sizes d >= -(1 - c + m c) / ((K - 1) m) (about -c / (K - 1) for large m). With
        superclasses, d <= c_super <= c.
    reg : the probe's L2 strength > 0; lam = K n reg is the shrinkage of A = G (G + lam I)^-1.
    superclasses : optional (K,) superclass id of each class.   c_super : their correlation.

    The label counts ``label_counts`` taken by the methods are a K x K matrix
    N[k, j] = number of class-k training points labelled j (``realised_rates(...)["confusion"]``);
    its rows must sum to the class sizes. Non-integer counts are accepted (expected counts of a
    noise model, :meth:`expected_counts`). Formulas: module docstring and docs/theory.md.
    """

    def __init__(self, n_classes, per_class, c, d, reg, *, superclasses=None, c_super=None):
        K = check_int(n_classes, "n_classes", low=2)
        m = _check_counts(per_class, "per_class", K, low=1)
        c, d, cs, sup = _check_block_params(c, d, superclasses, c_super, K, generator=False)
        self.reg = check_positive(reg, "reg")
        self.n_classes = K
        self.sizes = m.astype(np.int64)
        self.n = int(m.sum())
        self.c, self.d, self.c_super = c, d, cs
        self.superclasses = sup
        self.shrinkage = K * self.n * self.reg
        Gamma = np.full((K, K), d)
        if sup is not None:
            Gamma[sup[:, None] == sup[None, :]] = cs
        np.fill_diagonal(Gamma, c)
        self.gamma = Gamma
        self.mu_within = 1.0 - c
        # class-level operator, symmetrised: S = D^1/2 M D^-1/2 = (1 - c) I + D^1/2 Gamma D^1/2
        sq = np.sqrt(m.astype(np.float64))
        S = (1.0 - c) * np.eye(K) + sq[:, None] * Gamma * sq[None, :]
        lam, V = np.linalg.eigh(S)
        scale = max(1.0, float(np.abs(lam).max()))
        if lam.min() < -1e-12 * scale * K:
            bound = -(1.0 - c + m[0] * c) / ((K - 1) * m[0]) if np.all(m == m[0]) and sup is None else None
            hint = f"; with these sizes d must be >= {bound:.6g}" if bound is not None else ""
            raise ValueError(
                f"d={d!r} (c={c!r}) gives no valid Gram matrix: it is not positive semi-definite (class-level "
                f"eigenvalue {lam.min():.6g} < 0){hint}. Allowed: -1 <= d < c <= 1 with G positive semi-definite"
            )
        self._lam = np.clip(lam, 0.0, None)
        self._V = V
        self._sq = sq

    # ------------------------------------------------------------------------------- structure
    def __repr__(self):
        sizes = int(self.sizes[0]) if np.all(self.sizes == self.sizes[0]) else self.sizes.tolist()
        sup = "" if self.superclasses is None else f", superclasses={self.superclasses.tolist()}, c_super={self.c_super}"
        return f"BlockModel(n_classes={self.n_classes}, per_class={sizes}, c={self.c}, d={self.d}, reg={self.reg}{sup})"

    @property
    def labels(self) -> np.ndarray:
        """(n,) true classes of the training points, sorted by class (the order of :meth:`gram`)."""
        return np.repeat(np.arange(self.n_classes), self.sizes)

    def gram(self) -> np.ndarray:
        """The n x n Gram matrix (points sorted by class), for checks: data.block_gram."""
        sup = None if self.superclasses is None else self.superclasses
        return block_gram(self.labels, self.c, self.d, superclasses=sup, c_super=self.c_super if sup is not None else None)

    def eigenvalues(self) -> BlockSpectrum:
        """The Gram eigenvalues and eigen-spaces (closed form).

        within class: mu_w = 1 - c, multiplicity n - K (vectors summing to 0 inside each class).
        Class-constant space: eigenvalues of M = (1 - c) I + Gamma diag(m). Equal sizes:
        class contrasts mu_c = 1 - c + m (c - d) (multiplicity K - 1), all-ones
        mu_1 = mu_c + n d (1). With S equal superclasses of q classes: contrasts inside a superclass
        1 - c + m (c - c_s) (K - S), superclass contrasts 1 - c + m (c - c_s) + q m (c_s - d) (S - 1),
        all-ones 1 - c + m (c - c_s) + q m (c_s - d) + n d (1).
        """
        K = self.n_classes
        S = (1.0 - self.c) * np.eye(K) + self._sq[:, None] * self.gamma * self._sq[None, :]
        equal = bool(np.all(self.sizes == self.sizes[0]))
        if self.superclasses is not None:
            q = np.bincount(self.superclasses)
            equal = equal and bool(np.all(q == q[0]))
        if equal:
            # invariant subspaces (equal sizes): all-ones, superclass contrasts, class contrasts
            blocks = [np.ones((K, 1))]
            names_b = ["all-ones"]
            if self.superclasses is not None:
                blocks.append(np.eye(int(self.superclasses.max()) + 1)[self.superclasses])
                names_b.append("superclass contrast")
            blocks.append(np.eye(K))
            names_b.append("class contrast")
            lam_list, vec_list, kinds, used = [], [], [], np.zeros((K, 0))
            for B, name in zip(blocks, names_b):
                Q, _ = np.linalg.qr(np.hstack([used, B]))
                rank = np.linalg.matrix_rank(np.hstack([used, B]))
                new = Q[:, used.shape[1]:rank]
                if new.shape[1] == 0:
                    continue
                w, U = np.linalg.eigh(new.T @ S @ new)
                for i in range(len(w)):
                    lam_list.append(max(float(w[i]), 0.0))
                    vec_list.append((new @ U[:, i]) / self._sq)
                    kinds.append(name)
                used = np.hstack([used, new])
            lam_cls = np.array(lam_list)
            A = np.stack(vec_list, axis=1)
        else:
            lam_cls = self._lam
            A = self._V / self._sq[:, None]
            kinds = ["class level"] * K
        vals = np.array(list(lam_cls) + [self.mu_within])
        mult = [1] * K + [self.n - K]
        names = kinds + ["within class"]
        vecs = [A[:, [i]] for i in range(K)] + [None]
        out_v, out_m, out_n, out_vec = [], [], [], []
        for group in _tied_groups(vals, 1e-9 * max(1.0, float(vals.max()))):
            group = [i for i in group if mult[i] > 0]  # block order: the name never depends on round-off
            if not group:
                continue
            out_v.append(float(vals[group[0]]))
            out_m.append(int(sum(mult[i] for i in group)))
            out_n.append(" + ".join(dict.fromkeys(names[i] for i in group)))
            cv = [vecs[i] for i in group if vecs[i] is not None]
            out_vec.append(np.hstack(cv) if cv else None)
        return BlockSpectrum(np.array(out_v), np.array(out_m, dtype=np.int64), tuple(out_n), out_vec)

    # ------------------------------------------------------------------------------- label counts
    def check_label_counts(self, label_counts) -> np.ndarray:
        """Return label_counts as a float (K, K) array; rows must sum to the class sizes."""
        K = self.n_classes
        N = np.asarray(label_counts)
        if N.dtype.kind not in "iuf" or N.ndim != 2 or N.shape != (K, K):
            raise ValueError(
                f"label_counts must be a numeric {K} x {K} matrix (counts[k, j] = number of class-k points "
                f"labelled j), got {N.dtype} array of shape {N.shape}"
            )
        N = N.astype(np.float64)
        if not np.all(np.isfinite(N)) or N.min() < 0:
            raise ValueError("label_counts must be finite and non-negative")
        sums = N.sum(axis=1)
        bad = np.abs(sums - self.sizes) > 1e-9 * np.maximum(1.0, self.sizes)
        if np.any(bad):
            k = int(np.argmax(bad))
            raise ValueError(
                f"label_counts do not match the model: row {k} sums to {sums[k]:g} but class {k} has "
                f"{int(self.sizes[k])} points (rows must sum to per_class)"
            )
        return N

    def expected_counts(self, kind, rate, *, clusters=None) -> np.ndarray:
        """Expected label counts N[k, j] = m_k C[k, j] of a noise model (floats; see noise.transition_matrix).

        ``kind`` is a noise kind name or a user K x K transition matrix.
        """
        C = transition_matrix(kind, self.n_classes, rate, clusters=clusters)
        return self.sizes[:, None] * C

    def sample_counts(self, kind, rate, seed=0, *, clusters=None, exact=True) -> np.ndarray:
        """Realised integer label counts: corrupt the model's labels with noise.corrupt_labels."""
        C = transition_matrix(kind, self.n_classes, rate, clusters=clusters)
        y = self.labels
        y_noisy = corrupt_labels(y, C, seed, exact=exact)
        return realised_rates(y, y_noisy, n_classes=self.n_classes)["confusion"]

    # ------------------------------------------------------------------------------- linear chain
    def _filters(self, powers, *, scaled):
        """Class-level and within-class filter weights for A^u, u in powers: (T, K), (T,)."""
        u = np.asarray(powers, dtype=np.float64)[:, None]
        with np.errstate(divide="ignore"):
            log_fc = np.log(self._lam / (self._lam + self.shrinkage))
            log_fw = np.log(self.mu_within / (self.mu_within + self.shrinkage))
        lc = u * log_fc[None, :]
        lw = u[:, 0] * log_fw
        if scaled:  # divide by the largest filter of each round: same argmax, no underflow
            top = np.maximum(lc.max(axis=1), lw)
            top = np.where(np.isfinite(top), top, 0.0)
            lc = lc - top[:, None]
            lw = lw - top
        return np.exp(lc), np.exp(lw)

    def _apply(self, N, R, wc, ww):
        """A^u applied to group-constant targets R (K, K, K) = [k, j, l]: returns (T, K, K, K)."""
        m = self.sizes.astype(np.float64)
        Rbar = np.einsum("kj,kjl->kl", N, R) / m[:, None]  # class means (K, K)
        cls = self._class_apply(wc, Rbar)
        within = R[None] - Rbar[None, :, None, :]
        return ww[:, None, None, None] * within + cls[:, :, None, :]

    def _class_apply(self, weights, Rbar):
        """h(M) Rbar for eigen-weights (T, K): D^-1/2 V diag(weights) V^T D^1/2 Rbar, shape (T, K, L).

        Works in the eigen-coordinates C = V^T D^1/2 Rbar and sets round-off-sized components
        (|C| <= 1e-12 max|C|) to exactly 0: components that vanish mathematically (the all-ones
        part when the observed labels are balanced) would otherwise be amplified by a slowly
        decaying filter over thousands of rounds.
        """
        C = self._V.T @ (self._sq[:, None] * Rbar)
        C[np.abs(C) <= 1e-12 * max(float(np.abs(C).max()), 1e-300)] = 0.0
        return np.einsum("ka,ta,al->tkl", self._V, weights, C) / self._sq[None, :, None]

    def _onehot_R(self):
        K = self.n_classes
        return np.broadcast_to(np.eye(K)[None, :, :], (K, K, K)) - 1.0 / K

    def train_probs(self, label_counts, rounds) -> np.ndarray:
        """Linearised outputs P_t for every group: (rounds+1, K, K, K), entry [t, k, j] = P_t of a
        class-k point labelled j (defined for every (k, j); only groups with N[k, j] > 0 exist).

        P_t(k, j) = 1/K + f_w^(t+1) (e_j - N[k,:]/m_k) + [h_(t+1)(M) Rbar]_k.
        """
        N = self.check_label_counts(label_counts)
        rounds = check_int(rounds, "rounds", low=0)
        wc, ww = self._filters(np.arange(1, rounds + 2), scaled=False)
        return 1.0 / self.n_classes + self._apply(N, self._onehot_R(), wc, ww)

    def second_order_correction(self, label_counts, rounds) -> np.ndarray:
        """(rounds+1, K, K, K): the leading correction e_t to the linearised outputs, per group.

        softmax(z) = 1/K + z/K + q(z) + O(z^3) for rows z summing to 0, q_l(z) = (z_l^2 - mean(z^2)) / (2K),
        so the exact round-t outputs are P_t = P_lin,t + e_t + O(z^3) with
        e_t = A e_(t-1) + lam (G + lam I)^-1 q(K (P_lin,t - 1/K)),  e_(-1) = 0.
        Its size against a prediction's margin decides whether the linearised prediction is trusted
        (:meth:`linear_regime`).
        """
        N = self.check_label_counts(label_counts)
        rounds = check_int(rounds, "rounds", low=0)
        K = self.n_classes
        P = self.train_probs(N, rounds) - 1.0 / K
        lam = self.shrinkage
        res_c = lam / (self._lam + lam)  # lam (M + lam)^-1 on class-level eigen-directions
        res_w = lam / (self.mu_within + lam)
        fc = self._lam / (self._lam + lam)
        fw = self.mu_within / (self.mu_within + lam)
        out = np.zeros_like(P)
        e = np.zeros(P.shape[1:])
        for t in range(rounds + 1):
            Z = K * P[t]
            q = (Z**2 - (Z**2).mean(axis=2, keepdims=True)) / (2 * K)
            prop = self._apply(N, e, fc[None, :], np.array([fw]))[0] if t else 0.0
            e = prop + self._apply(N, q, res_c[None, :], np.array([res_w]))[0]
            out[t] = e
        return out

    def linear_regime(self, label_counts, rounds, *, safety=2.0) -> np.ndarray:
        """(rounds+1, K, K) bool: where the linearised prediction of group (k, j) at round t is trusted.

        Trusted iff the gap between the two largest linearised outputs exceeds
        2 * safety * (max_l |e_t(k, j, l)| + 1e-12) (e_t from :meth:`second_order_correction`; 1e-12
        covers the float64 accuracy of the exact chain): moving every
        output by less than half the gap cannot change the argmax. ``safety`` covers the
        third-order remainder (docs/theory.md, section 8: chosen from the agreement grid).
        """
        N = self.check_label_counts(label_counts)
        rounds = check_int(rounds, "rounds", low=0)
        safety = check_positive(safety, "safety")
        P = self.train_probs(N, rounds)
        srt = np.sort(P, axis=3)
        gap = srt[..., -1] - srt[..., -2]
        err = np.abs(self.second_order_correction(N, rounds)).max(axis=3) + _FLOAT_NOISE
        return gap > 2.0 * safety * err

    def _scores(self, N, rounds_range):
        wc, ww = self._filters(np.asarray(rounds_range) + 1, scaled=True)
        return self._apply(N, self._onehot_R(), wc, ww)

    def predictions(self, label_counts, rounds) -> np.ndarray:
        """(rounds+1, K, K) predicted label of a class-k point labelled j at round t (argmax of
        :meth:`train_probs`, computed on rescaled scores so that large t does not underflow;
        ties to the lowest label)."""
        N = self.check_label_counts(label_counts)
        rounds = check_int(rounds, "rounds", low=0)
        return np.argmax(self._scores(N, np.arange(rounds + 1)), axis=3)

    def margins(self, label_counts, rounds) -> np.ndarray:
        """(rounds+1, K, K) S(k) - max_{l != k} S(l) for group (k, j) on the rescaled scores (largest
        filter = 1): > 0 correct, < 0 wrong, |.| < 1e-12 a tie."""
        N = self.check_label_counts(label_counts)
        rounds = check_int(rounds, "rounds", low=0)
        return _margins(self._scores(N, np.arange(rounds + 1)))

    def accuracy(self, label_counts, rounds) -> np.ndarray:
        """(rounds+1,) training-point accuracy of the linearised chain: sum_{k,j} N[k,j] [pred(t,k,j) = k] / n.

        A point counts as correct only if its true class wins strictly: a tie (|margin| <= 1e-9 of the
        round's largest score) between the true class and another label counts as an error."""
        N = self.check_label_counts(label_counts)
        rounds = check_int(rounds, "rounds", low=0)
        return self._accuracy_range(N, np.arange(rounds + 1))

    def _accuracy_range(self, N, ts):
        right = _right(self._scores(N, ts))  # (T, K, K)
        return np.einsum("tkj,kj->t", right.astype(np.float64), N) / self.n

    def test_scores(self, label_counts, rounds) -> np.ndarray:
        """(rounds+1, K, K): linearised p_t(x) - 1/K of a new point of class k (row k).

        A new point's Gram row is class-constant (Gamma[k, class(i)]), so only the class-level
        part survives: [(M - (1 - c) I) (M + lam I)^-1 h_t(M) Rbar]_k."""
        N = self.check_label_counts(label_counts)
        rounds = check_int(rounds, "rounds", low=0)
        return self._test_scores(N, np.arange(rounds + 1), scaled=False)

    def _test_scores(self, N, ts, *, scaled):
        ts = np.asarray(ts, dtype=np.float64)
        lam = self._lam
        with np.errstate(divide="ignore"):
            logw = ts[:, None] * np.log(lam / (lam + self.shrinkage))[None, :] - np.log(lam + self.shrinkage)[None, :]
        if scaled:
            top = logw.max(axis=1)
            logw = logw - np.where(np.isfinite(top), top, 0.0)[:, None]
        w = (lam - self.mu_within)[None, :] * np.exp(logw)
        m = self.sizes.astype(np.float64)
        Rbar = N / m[:, None] - 1.0 / self.n_classes
        return self._class_apply(w, Rbar)

    def test_predictions(self, label_counts, rounds) -> np.ndarray:
        """(rounds+1, K) predicted label of a new point of class k at round t."""
        N = self.check_label_counts(label_counts)
        rounds = check_int(rounds, "rounds", low=0)
        return np.argmax(self._test_scores(N, np.arange(rounds + 1), scaled=True), axis=2)

    def test_accuracy(self, label_counts, rounds, *, class_weights=None) -> np.ndarray:
        """(rounds+1,) accuracy on new points of the model: sum_k pi_k [test_pred(t, k) = k],
        pi = class_weights normalised (default the training proportions m_k / n)."""
        N = self.check_label_counts(label_counts)
        rounds = check_int(rounds, "rounds", low=0)
        S = self._test_scores(N, np.arange(rounds + 1), scaled=True)
        pi = self.sizes / self.n if class_weights is None else _weights(class_weights, self.n_classes)
        return _right(S[:, :, None, :])[:, :, 0].astype(np.float64) @ pi

    # ------------------------------------------------------------------------------- thresholds
    def _horizon(self):
        """A round count after which the linearised predictions no longer change (float64)."""
        vals = np.unique(np.concatenate([self._lam, [self.mu_within]]))
        f = vals / (vals + self.shrinkage)
        f = np.unique(f[f > 0])
        if f.size < 2:
            return 1
        gap = np.log(f[-1]) - np.log(f[-2])  # slowest relative decay between two filter levels
        return int(min(1_000_000, np.ceil(40.0 * np.log(10.0) / max(gap, 1e-300)) + 1))

    def _scan(self, N, max_rounds):
        """Yield (ts, accuracy) chunks for rounds 0..max_rounds."""
        chunk = 4096
        for start in range(0, max_rounds + 1, chunk):
            ts = np.arange(start, min(start + chunk, max_rounds + 1))
            yield ts, self._accuracy_range(N, ts)

    def min_rounds(self, label_counts, *, max_rounds=None):
        """t*: the smallest round t with 100% training-point accuracy, or None if no t reaches it.

        Searched over t = 0..max_rounds (default: a horizon after which the rescaled filters, and so
        the predictions, no longer change in float64 -- then None is exact); with the default and
        balanced labels (below) the closed form :meth:`min_rounds_formula` is used instead of the scan. Equal sizes, no
        superclasses and balanced observed labels (delta = 0):
        t* = max(0, floor(log(1 + m / Delta) / log(g_c / f_w))), Delta = min over k, j != k with
        N[k, j] > 0 of N[k, k] - N[k, j], provided N[k, k] > N[k, l] for all l != k (else None).
        """
        N = self.check_label_counts(label_counts)
        if max_rounds is None and self._balanced(N):
            return self.min_rounds_formula(N)  # exact in this case, and O(K^2) instead of a scan
        horizon = self._horizon() if max_rounds is None else check_int(max_rounds, "max_rounds", low=0)
        for ts, acc in self._scan(N, horizon):
            hit = np.flatnonzero(acc >= 1.0 - 1e-12)
            if hit.size:
                return int(ts[hit[0]])
        return None

    def _balanced(self, N):
        """Equal sizes, no superclasses and balanced observed labels (delta = 0): t* has a closed form."""
        if self.superclasses is not None or not np.all(self.sizes == self.sizes[0]):
            return False
        return float(np.abs(N.sum(axis=0) / self.n - 1.0 / self.n_classes).max()) <= 1e-12

    def min_rounds_formula(self, label_counts):
        """The closed form of t* (equal sizes, no superclasses, balanced labels; see :meth:`min_rounds`).

        Raises ValueError outside that case. Returns None when the plurality condition fails.
        """
        N = self.check_label_counts(label_counts)
        m = self.sizes
        if self.superclasses is not None or not np.all(m == m[0]):
            raise ValueError("min_rounds_formula needs equal class sizes and no superclasses; use min_rounds")
        if not self._balanced(N):
            raise ValueError("min_rounds_formula needs balanced observed labels (all column sums equal); use min_rounds")
        diag = np.diag(N)
        off = N.copy()
        np.fill_diagonal(off, -np.inf)
        if np.any(off.max(axis=1) >= diag):
            return None
        noisy = N > 0
        np.fill_diagonal(noisy, False)
        if not noisy.any():
            return 0
        gaps = (diag[:, None] - N)[noisy]
        mu_c = 1.0 - self.c + m[0] * (self.c - self.d)
        g_c = mu_c / (mu_c + self.shrinkage)
        f_w = self.mu_within / (self.mu_within + self.shrinkage)
        if f_w == 0.0:
            return 0
        L = np.log1p(m[0] / gaps.min()) / np.log(g_c / f_w)
        return int(max(0, np.floor(L)))

    def over_averaging_round(self, label_counts, *, max_rounds=None):
        """The round after which over-averaging lowers training accuracy, or None.

        The first t with acc(t + 1) < acc(t) = max_{s <= t} acc(s): the last round before accuracy
        first falls from its running best (searched over 0..max_rounds, default the horizon of
        :meth:`min_rounds`).
        """
        N = self.check_label_counts(label_counts)
        horizon = self._horizon() if max_rounds is None else check_int(max_rounds, "max_rounds", low=0)
        best, prev, prev_t = -1.0, None, None
        for ts, acc in self._scan(N, horizon + 1):
            for t, a in zip(ts.tolist(), acc.tolist()):
                if prev is not None and a < prev - 1e-12 and prev >= best - 1e-12:
                    return prev_t
                best = max(best, a)
                prev, prev_t = a, t
        return None

    def reaches_full_accuracy(self, label_counts) -> bool:
        """Whether some number of SD rounds gives 100% training accuracy (linearised model)."""
        return self.min_rounds(label_counts) is not None

    def noise_threshold(self, kind, *, clusters=None, tol=1e-7) -> float:
        """The largest noise rate at which repeated SD still reaches 100% on the expected counts.

        sup {eta : min_rounds(expected_counts(kind, eta)) is not None}, by bisection on eta in
        [0, 1] (the set is an interval [0, eta*) for the built-in kinds). Equal sizes, no
        superclasses (balanced labels, so the condition is N[k, k] > N[k, l] for all l != k):
        symmetric (K - 1) / K, asymmetric K / (K + 2), pairflip 1/2, class_cluster (s - 1) / s with s
        the smallest cluster of >= 2 classes.
        """
        if isinstance(kind, str):
            check_choice(kind, "kind", NOISE_KINDS)
        tol = check_positive(tol, "tol")

        def ok(eta):
            return self.min_rounds(self.expected_counts(kind, eta, clusters=clusters)) is not None

        if not ok(0.0):
            return 0.0
        if ok(1.0):
            return 1.0
        lo, hi = 0.0, 1.0
        while hi - lo > tol:
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if ok(mid) else (lo, mid)
        return 0.5 * (lo + hi)

    # ------------------------------------------------------------------------------- PLL student
    def _pll_targets(self, teacher_scores, top_k):
        """(K, K, K) group targets: the top-k weights of each group's teacher scores (ties shared)."""
        # scores equal up to 1e-9 of the largest |score| are mathematically tied: round-off never decides
        return topk_weights(teacher_scores, top_k, 1e-9 * max(float(np.abs(teacher_scores).max()), 1e-300))

    def pll_predictions(self, label_counts, *, top_k=2) -> np.ndarray:
        """(K, K) linearised PLL student's predicted label for group (k, j).

        Teacher: P_0 (round 0). Targets: T(k, j) = 1/k on the k largest entries of P_0(k, j); labels
        tied with the k-th share its mass (:func:`selfdistill.targets.topk_weights`). Student: P = 1/K + A (T - 1/K), the same group formula with T in place of
        one-hot labels.
        """
        N = self.check_label_counts(label_counts)
        top_k = check_int(top_k, "top_k", low=2, high=self.n_classes - 1)
        return np.argmax(self._pll_scores(N, top_k)[0][0], axis=2)

    def _pll_scores(self, N, top_k):
        teacher = self._scores(N, np.array([0]))[0]
        T = self._pll_targets(teacher, top_k)
        wc, ww = self._filters(np.array([1]), scaled=True)
        return self._apply(N, T - 1.0 / self.n_classes, wc, ww), T, teacher

    def pll_accuracy(self, label_counts, *, top_k=2) -> float:
        """Training-point accuracy of the linearised PLL student (one round)."""
        N = self.check_label_counts(label_counts)
        top_k = check_int(top_k, "top_k", low=2, high=self.n_classes - 1)
        right = _right(self._pll_scores(N, top_k)[0])[0]
        return float((right * N).sum() / self.n)

    def pll_condition(self, label_counts, *, top_k=2) -> dict:
        """The PLL student's 100% condition and its comparison with repeated SD.

        Returns a dict: ``coverage`` (every point's teacher top-k holds its true class), ``full``
        (the student classifies every training point correctly), ``pll_accuracy``, ``sd_min_rounds``
        (t*, or None), ``sd_best_accuracy`` (over rounds 0..max(t*, 10)), and ``verdict``: "PLL only",
        "both", "SD only" or "neither" (which of the PLL student / some SD round reach 100%).
        Equal sizes, balanced labels, full coverage: the student is right on every point iff
        Tbar[k, k] > Tbar[k, l] for all l != k, Tbar[k] the class-mean of the student targets (the
        own-label term w_0 cancels because each point's targets weigh its given label and its true
        label equally).
        """
        N = self.check_label_counts(label_counts)
        top_k = check_int(top_k, "top_k", low=2, high=self.n_classes - 1)
        scores, T, teacher = self._pll_scores(N, top_k)
        K = self.n_classes
        exists = N > 0
        true = np.arange(K)[:, None]
        covered = np.take_along_axis(T, np.broadcast_to(true, (K, K))[..., None], axis=2)[..., 0] > 0
        coverage = bool(np.all(covered[exists]))
        right = _right(scores)[0]
        full = bool(np.all(right[exists]))
        t_star = self.min_rounds(N)
        horizon = max(10, t_star or 0)
        sd_best = float(self.accuracy(N, horizon).max())
        verdict = {(True, True): "both", (True, False): "PLL only", (False, True): "SD only", (False, False): "neither"}[
            (full, t_star is not None)
        ]
        return {
            "coverage": coverage,
            "full": full,
            "pll_accuracy": float((right * N).sum() / self.n),
            "sd_min_rounds": t_star,
            "sd_best_accuracy": sd_best,
            "verdict": verdict,
        }

    # ------------------------------------------------------------------------------- exact chain
    def exact_probs(self, label_counts, rounds, *, pll=False, top_k=2):
        """The exact (non-linearised) chain on the block Gram matrix, reduced to the groups.

        By symmetry (and uniqueness of the convex minimiser) the exact outputs are equal within each
        group (k, j), so the fixed point P = softmax(G (T - P) / (n reg)) reduces to one probe on the
        group-mean features phi_g, <phi_g, phi_g'> = Gamma[k, k'] + [g = g'] (1 - c) / N_g, weighted
        by N_g: K^2 unknown rows instead of n. Solved by dense Newton to float64 precision.

        Returns a dict: ``train`` (rounds+1, K, K, K) P_t per group (NaN rows for empty groups),
        ``test`` (rounds+1, K, K) outputs on a new point of class k, ``pll`` (K, K, K) and
        ``pll_test`` (K, K) with ``pll``, ``residuals`` (max-abs fixed-point residuals of the full
        equation), ``ties`` (groups whose teacher top-k had a tie, with ``pll``).
        """
        N = self.check_label_counts(label_counts)
        rounds = check_int(rounds, "rounds", low=0)
        K = self.n_classes
        if pll:
            top_k = check_int(top_k, "top_k", low=2, high=K - 1)
        kk, jj = np.nonzero(N > 0)
        w = N[kk, jj]
        # group-mean features: Gram of means, factorised
        Gm = self.gamma[kk][:, kk] + np.diag((1.0 - self.c) / w)
        ev, EV = np.linalg.eigh(Gm)
        keep = ev > max(ev.max(), 0.0) * 1e-15
        Phi = EV[:, keep] * np.sqrt(ev[keep])[None, :]
        n, reg = float(w.sum()), self.reg

        def logits_of(T, P):  # full-equation logits of every group and of new points of each class
            M = w[:, None] * (T - P)
            z = ((1.0 - self.c) * (T - P) + self.gamma[kk][:, kk] @ M) / (n * reg)
            zt = self.gamma[:, kk] @ M / (n * reg)
            return z, zt

        def solve(T, W0):
            W = _weighted_newton(Phi, w, T, reg, W0)
            P = softmax(Phi @ W.T)
            z, zt = logits_of(T, P)
            return W, P, float(np.abs(P - softmax(z)).max()), softmax(zt)

        train = np.full((rounds + 1, K, K, K), np.nan)
        test = np.empty((rounds + 1, K, K))
        residuals = []
        T = np.eye(K)[jj]
        W = None
        P0 = None
        for t in range(rounds + 1):
            W, P, res, pt = solve(T, W)
            train[t, kk, jj] = P
            test[t] = pt
            residuals.append(res)
            if t == 0:
                P0, W0 = P, W
            T = P
        out = {"train": train, "test": test, "residuals": residuals}
        if pll:
            Tp = refine_targets(P0, "topk", top_k=top_k)
            ties = np.flatnonzero((Tp > 0).sum(axis=1) > top_k)  # the tie rule's own verdict, not a second test
            _, P, res, pt = solve(Tp, W0)
            pll_train = np.full((K, K, K), np.nan)
            pll_train[kk, jj] = P
            out.update(pll=pll_train, pll_test=pt, ties=[(int(kk[i]), int(jj[i])) for i in ties])
            residuals.append(res)
        return out

    def exact_accuracy(self, label_counts, rounds) -> np.ndarray:
        """(rounds+1,) training accuracy of the exact chain (from :meth:`exact_probs`)."""
        N = self.check_label_counts(label_counts)
        P = self.exact_probs(N, rounds)["train"]
        pred = np.argmax(np.nan_to_num(P, nan=-1.0), axis=3)
        right = pred == np.arange(self.n_classes)[None, :, None]
        return np.einsum("tkj,kj->t", right.astype(np.float64), N) / self.n

    # ------------------------------------------------------------------------------- helpers
    def counts_from_labels(self, y_true, y_noisy) -> np.ndarray:
        """The label-count matrix of given true / observed labels (checked against the class sizes)."""
        y_true = check_labels(y_true, "y_true", n_samples=self.n, n_classes=self.n_classes)
        N = realised_rates(y_true, y_noisy, n_classes=self.n_classes)["confusion"]
        return self.check_label_counts(N).astype(np.int64)


def _margins(S):
    """S (T, K, K, K) scores [t, k, j, l] -> S[t, k, j, k] - max_{l != k} S[t, k, j, l], shape (T, K, K)."""
    K = S.shape[-1]
    idx = np.arange(K)
    own = np.einsum("tkjk->tkj", S)
    other = S.copy()
    other[:, idx, :, idx] = -np.inf
    return own - other.max(axis=-1)


def _right(S):
    """S (T, K, J, K) scores [t, k, j, l] -> bool (T, K, J): the true class k wins strictly.

    Margins within 1e-9 of the round's largest |score| are ties and count as not correct."""
    K = S.shape[-1]
    own = np.take_along_axis(S, np.arange(K)[None, :, None, None] * np.ones(S.shape[:3] + (1,), dtype=np.int64), axis=3)[..., 0]
    other = S.copy()
    idx = np.arange(K)
    other[:, idx, :, idx] = -np.inf
    tol = _TIE_RTOL * np.abs(S).reshape(S.shape[0], -1).max(axis=1)
    return (own - other.max(axis=3)) > tol[:, None, None]


def _weights(v, K):
    w = np.asarray(v, dtype=np.float64)
    if w.shape != (K,) or not np.all(np.isfinite(w)) or w.min() < 0 or w.sum() <= 0:
        raise ValueError(f"class_weights must be {K} non-negative numbers with a positive sum, got {v!r}")
    return w / w.sum()


def _weighted_newton(Phi, w, T, reg, W0=None, max_iter=200):
    """min_W (1/n) sum_g w_g CE(T_g, softmax(W phi_g)) + reg/2 ||W||^2 by dense Newton (n = sum w)."""
    G, r = Phi.shape
    K = T.shape[1]
    n = float(w.sum())
    W = np.zeros((K, r)) if W0 is None else W0.copy()

    def fgrad(W):
        Z = Phi @ W.T
        lp = log_softmax(Z)
        f = -float(np.sum(w[:, None] * T * lp)) / n + 0.5 * reg * float(np.vdot(W, W))
        P = np.exp(lp)
        g = ((w[:, None] * (P - T)).T @ Phi) / n + reg * W
        return f, g, P

    f, g, P = fgrad(W)
    g0 = float(np.abs(g).max())
    for _ in range(max_iter):
        gmax = float(np.abs(g).max())
        if gmax <= 1e-16 * max(1.0, g0):
            break
        # Hessian (K r x K r): (1/n) sum_g w_g (diag p_g - p_g p_g^T) (x) phi_g phi_g^T + reg I
        D = -np.einsum("ga,gb->gab", P, P)
        D[:, np.arange(K), np.arange(K)] += P
        PP = (Phi[:, :, None] * Phi[:, None, :]).reshape(G, r * r)
        H = ((D * w[:, None, None]).reshape(G, K * K).T @ PP).reshape(K, K, r, r)
        H = H.transpose(0, 2, 1, 3).reshape(K * r, K * r) / n
        H[np.diag_indices_from(H)] += reg
        step = -np.linalg.solve(H, g.reshape(-1)).reshape(K, r)
        slope = float(np.vdot(g, step))
        alpha, accepted = 1.0, False
        for _ls in range(60):
            Wn = W + alpha * step
            fn, gn, Pn = fgrad(Wn)
            if fn <= f + 1e-4 * alpha * slope or (fn <= f + 1e-15 * max(1.0, abs(f)) and np.abs(gn).max() < gmax):
                accepted = True
                break
            alpha *= 0.5
        if not accepted:
            break
        W, f, g, P = Wn, fn, gn, Pn
    return W



# ------------------------------------------------------------------------------------ grids
def phase_maps(n_classes, per_class, d, reg, kind, rates, gaps, *, clusters=None, top_k=2):
    """t* and the PLL-vs-SD verdict over a grid of noise rates and c - d (expected label counts).

    For every gap in ``gaps`` (c = d + gap, needs d < c <= 1) and rate in ``rates``: the model
    BlockModel(n_classes, per_class, d + gap, d, reg), the expected counts of the noise model, and
    :meth:`BlockModel.pll_condition`. Returns a dict with ``min_rounds`` (len(gaps), len(rates)) float
    (NaN where no round reaches 100%) and ``verdict`` (same shape, strings "both", "PLL only",
    "SD only", "neither"), plus ``rates`` and ``gaps``.
    """
    rates = np.asarray(rates, dtype=np.float64)
    gaps = np.asarray(gaps, dtype=np.float64)
    t_star = np.full((gaps.size, rates.size), np.nan)
    verdict = np.empty((gaps.size, rates.size), dtype=object)
    for i, gap in enumerate(gaps.tolist()):
        bm = BlockModel(n_classes, per_class, d + gap, d, reg)
        for j, rate in enumerate(rates.tolist()):
            cond = bm.pll_condition(bm.expected_counts(kind, rate, clusters=clusters), top_k=top_k)
            if cond["sd_min_rounds"] is not None:
                t_star[i, j] = cond["sd_min_rounds"]
            verdict[i, j] = cond["verdict"]
    return {"min_rounds": t_star, "verdict": verdict, "rates": rates, "gaps": gaps}


def agreement_grid(
    n_classes=(3, 4, 6),
    per_class=(20, 100, 500),
    correlations=((0.4, 0.1), (0.6, 0.2), (0.3, 0.0), (0.8, 0.5)),
    regs=(1e-1, 1e-2, 1e-3, 1e-4, 1e-5),
    kinds=("symmetric", "asymmetric", "pairflip"),
    rates=(0.2, 0.5, 0.7),
    *,
    rounds=10,
    seed=0,
    safety=2.0,
):
    """Closed form vs exact chain, point for point, over a grid of block models and noise.

    For every (K, m, (c, d), reg, kind, rate): label counts sampled with
    ``BlockModel.sample_counts(kind, rate, seed)`` (exact per-class flips), the linearised
    predictions (:meth:`BlockModel.predictions`) and the exact chain's (:meth:`BlockModel.exact_probs`)
    for rounds 0..rounds. An *item* is one (round, group (k, j) with N[k, j] > 0); counts weigh
    nothing (each group is one item; ``points`` counts training points).

    Returns a list of dicts, one per configuration: the parameters, ``items``, ``mismatches``
    (items whose predicted labels differ), ``mismatched_points``, ``trusted`` (items inside
    :meth:`BlockModel.linear_regime`), ``trusted_mismatches``, ``max_logit`` (largest linearised
    logit K |P_t - 1/K| over rounds and groups), ``max_accuracy_gap`` (largest |closed-form - exact|
    training accuracy over rounds), ``ties`` (items whose top-two linearised outputs are tied).
    """
    rows = []
    for K, m, (c, d), reg, kind, rate in itertools.product(n_classes, per_class, correlations, regs, kinds, rates):
        bm = BlockModel(K, m, c, d, reg)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            N = bm.sample_counts(kind, rate, seed=seed)
        lin = bm.predictions(N, rounds)
        exact = bm.exact_probs(N, rounds)["train"]
        exact_pred = np.argmax(np.nan_to_num(exact, nan=-1.0), axis=3)
        exist = np.broadcast_to(N > 0, lin.shape)
        trusted = bm.linear_regime(N, rounds, safety=safety) & exist
        mism = (lin != exact_pred) & exist
        P = bm.train_probs(N, rounds)
        srt = np.sort(P, axis=3)
        ties = (srt[..., -1] - srt[..., -2] <= 1e-12) & exist
        right_exact = exact_pred == np.arange(K)[None, :, None]
        acc_exact = np.einsum("tkj,kj->t", right_exact.astype(float), N) / bm.n
        rows.append({
            "n_classes": K, "per_class": m, "c": c, "d": d, "reg": reg, "kind": kind, "rate": rate,
            "items": int(exist.sum()),
            "mismatches": int(mism.sum()),
            "mismatched_points": int((mism * N[None]).sum()),
            "points": int(bm.n * (rounds + 1)),
            "trusted": int(trusted.sum()),
            "trusted_mismatches": int((mism & trusted).sum()),
            "ties": int(ties.sum()),
            "max_logit": float(K * np.abs(P - 1.0 / K)[:, N > 0].max()),
            "max_accuracy_gap": float(np.abs(bm.accuracy(N, rounds) - acc_exact).max()),
        })
    return rows
