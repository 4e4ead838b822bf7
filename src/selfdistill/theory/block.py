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

:class:`BlockModel` is the facade; the work is done in four small modules, each a set of
functions of the model: :mod:`.block_spectrum` (eigenvalues and eigen-spaces),
:mod:`.block_linear` (the linearised chain's outputs, scores and error estimate),
:mod:`.block_rounds` (t*, over-averaging, noise threshold, PLL condition) and
:mod:`.block_exact` (the exact chain reduced to the groups, on the library's solver).
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np

from .._validation import check_choice, check_int, check_labels, check_positive
from ..data._checks import check_counts
from ..data.synthetic import block_gram, check_block_params
from ..noise import NOISE_KINDS, corrupt_labels, realised_rates, transition_matrix
from . import block_exact, block_linear, block_rounds
from .block_spectrum import (
    BlockSpectrum,
    block_spectrum,
    class_correlations,
    class_level_eigh,
)

__all__ = ["BlockModel", "BlockSpectrum", "agreement_grid", "phase_maps"]


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
    superclasses : optional (K,) superclass id of each class.
    c_super : float or None
        The correlation c_s between classes of the same superclass (with ``superclasses``).

    Notes
    -----
    The label counts ``label_counts`` taken by the methods are a K x K matrix
    N[k, j] = number of class-k training points labelled j (``realised_rates(...)["confusion"]``);
    its rows must sum to the class sizes. Non-integer counts are accepted (expected counts of a
    noise model, :meth:`expected_counts`). Formulas: module docstring and docs/theory.md.

    Examples
    --------
    >>> from selfdistill.theory import BlockModel
    >>> bm = BlockModel(4, 60, c=0.4, d=0.1, reg=1e-3)
    >>> N = bm.expected_counts("symmetric", 0.5)
    >>> bm.min_rounds(N), round(bm.noise_threshold("symmetric"), 6)
    (1, 0.75)
    >>> bm.eigenvalues().values.round(6).tolist()  # mu_1 = mu_c + n d, mu_c = 1 - c + m (c - d), mu_w = 1 - c
    [42.6, 18.6, 0.6]
    """

    def __init__(self, n_classes, per_class, c, d, reg, *, superclasses=None, c_super=None):
        K = check_int(n_classes, "n_classes", low=2)
        m = check_counts(per_class, "per_class", K, low=1)
        c, d, cs, sup = check_block_params(c, d, superclasses, c_super, K, generator=False)
        self.reg = check_positive(reg, "reg")
        self.n_classes = K
        self.sizes = m.astype(np.int64)
        self.n = int(m.sum())
        self.c, self.d, self.c_super = c, d, cs
        self.superclasses = sup
        self.shrinkage = K * self.n * self.reg
        self.gamma = class_correlations(K, c, d, sup, cs)
        self.mu_within = 1.0 - c
        # class-level operator, symmetrised: S = D^1/2 M D^-1/2 = (1 - c) I + D^1/2 Gamma D^1/2
        self._lam, self._V, self._sq = class_level_eigh(m, self.gamma, c, d, sup)

    # ------------------------------------------------------------------------------- structure
    def __repr__(self):
        sizes = int(self.sizes[0]) if np.all(self.sizes == self.sizes[0]) else self.sizes.tolist()
        sup = ("" if self.superclasses is None
               else f", superclasses={self.superclasses.tolist()}, c_super={self.c_super}")
        return f"BlockModel(n_classes={self.n_classes}, per_class={sizes}, c={self.c}, d={self.d}, reg={self.reg}{sup})"

    @property
    def labels(self) -> np.ndarray:
        """(n,) true classes of the training points, sorted by class (the order of :meth:`gram`).

        Returns
        -------
        (n,) int array
            Class k repeated m_k times, k = 0..K-1.

        Examples
        --------
        >>> from selfdistill.theory import BlockModel
        >>> BlockModel(3, 2, c=0.4, d=0.1, reg=1e-2).labels.tolist()
        [0, 0, 1, 1, 2, 2]
        """
        return np.repeat(np.arange(self.n_classes), self.sizes)

    def gram(self) -> np.ndarray:
        """The n x n Gram matrix (points sorted by class), for checks: data.block_gram.

        Returns
        -------
        (n, n) float array
            G = (1 - c) I + Z Gamma Z^T: 1 on the diagonal, c inside a class, c_s / d across.

        Examples
        --------
        >>> from selfdistill.theory import BlockModel
        >>> bm = BlockModel(3, 20, c=0.4, d=0.1, reg=1e-2)
        >>> N = bm.sample_counts("symmetric", 0.3, seed=0)  # 30% of the labels flipped
        >>> G = bm.gram()
        >>> G.shape, round(float(G[0, 1]), 2), round(float(G[0, 20]), 2)
        ((60, 60), 0.4, 0.1)
        >>> np.round(np.linalg.eigvalsh(G)[[0, -2, -1]], 3).tolist() == bm.eigenvalues().values[::-1].round(3).tolist()
        True
        """
        sup = None if self.superclasses is None else self.superclasses
        c_super = self.c_super if sup is not None else None
        return block_gram(self.labels, self.c, self.d, superclasses=sup, c_super=c_super)

    def eigenvalues(self) -> BlockSpectrum:
        """The Gram eigenvalues and eigen-spaces (closed form).

        within class: mu_w = 1 - c, multiplicity n - K (vectors summing to 0 inside each class).
        Class-constant space: eigenvalues of M = (1 - c) I + Gamma diag(m). Equal sizes:
        class contrasts mu_c = 1 - c + m (c - d) (multiplicity K - 1), all-ones
        mu_1 = mu_c + n d (1). With S equal superclasses of q classes: contrasts inside a superclass
        1 - c + m (c - c_s) (K - S), superclass contrasts 1 - c + m (c - c_s) + q m (c_s - d) (S - 1),
        all-ones 1 - c + m (c - c_s) + q m (c_s - d) + n d (1).

        Returns
        -------
        BlockSpectrum
            The distinct eigenvalues (descending), their multiplicities, names and class-level
            eigenvectors.

        Examples
        --------
        >>> from selfdistill.theory import BlockModel
        >>> bm = BlockModel(3, 20, c=0.4, d=0.1, reg=1e-2)
        >>> N = bm.sample_counts("symmetric", 0.3, seed=0)  # 30% of the labels flipped
        >>> spec = bm.eigenvalues()
        >>> spec.values.round(6).tolist(), spec.multiplicities.tolist(), spec.names
        ([12.6, 6.6, 0.6], [1, 2, 57], ('all-ones', 'class contrast', 'within class'))
        """
        return block_spectrum(self)

    # ------------------------------------------------------------------------------- label counts
    def check_label_counts(self, label_counts) -> np.ndarray:
        """Return label_counts as a float (K, K) array; rows must sum to the class sizes.

        Parameters
        ----------
        label_counts : (K, K) array
            N[k, j] = number of class-k training points labelled j; rows sum to the class sizes.

        Returns
        -------
        (K, K) float array
            The counts, checked.

        Raises
        ------
        ValueError
            If the counts are not a finite, non-negative K x K matrix whose rows sum to the class
            sizes (the message names the first bad row).

        Examples
        --------
        >>> from selfdistill.theory import BlockModel
        >>> bm = BlockModel(3, 20, c=0.4, d=0.1, reg=1e-2)
        >>> N = bm.sample_counts("symmetric", 0.3, seed=0)  # 30% of the labels flipped
        >>> bm.check_label_counts([[20, 0, 0], [0, 20, 0], [0, 0, 20]]).dtype
        dtype('float64')
        """
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

    def _counts_rounds(self, label_counts, rounds):
        return self.check_label_counts(label_counts), check_int(rounds, "rounds", low=0)

    def _counts_max_rounds(self, label_counts, max_rounds):
        return self.check_label_counts(label_counts), (
            None if max_rounds is None else check_int(max_rounds, "max_rounds", low=0))

    def _counts_top_k(self, label_counts, top_k):
        return self.check_label_counts(label_counts), check_int(top_k, "top_k", low=2, high=self.n_classes - 1)

    def expected_counts(self, kind, rate, *, clusters=None) -> np.ndarray:
        """Expected label counts N[k, j] = m_k C[k, j] of a noise model (floats; see noise.transition_matrix).

        ``kind`` is a noise kind name or a user K x K transition matrix.

        Parameters
        ----------
        kind : str or (K, K) array
            A noise kind of :data:`selfdistill.noise.NOISE_KINDS` or a row-stochastic transition
            matrix C, C[k, j] = P(label j | class k).
        rate : float
            Noise rate eta in [0, 1].
        clusters : sequence or None
            Class clusters for the ``class_cluster`` kind.

        Returns
        -------
        (K, K) float array
            N[k, j] = m_k C[k, j].

        Examples
        --------
        >>> from selfdistill.theory import BlockModel
        >>> bm = BlockModel(3, 20, c=0.4, d=0.1, reg=1e-2)
        >>> N = bm.sample_counts("symmetric", 0.3, seed=0)  # 30% of the labels flipped
        >>> bm.expected_counts("symmetric", 0.3).tolist()[0]  # 30% spread over the 2 other labels
        [14.0, 3.0, 3.0]
        """
        C = transition_matrix(kind, self.n_classes, rate, clusters=clusters)
        return self.sizes[:, None] * C

    def sample_counts(self, kind, rate, seed=0, *, clusters=None, exact=True) -> np.ndarray:
        """Realised integer label counts: corrupt the model's labels with noise.corrupt_labels.

        Parameters
        ----------
        kind : str or (K, K) array
            Noise kind or transition matrix, as for :meth:`expected_counts`.
        rate : float
            Noise rate eta in [0, 1].
        seed : int
            Seed of the label flips (reproducible).
        clusters : sequence or None
            Class clusters for the ``class_cluster`` kind.
        exact : bool
            Flip exactly round(eta m_k) labels per class (else each label independently).

        Returns
        -------
        (K, K) int array
            The realised label counts N.

        Examples
        --------
        >>> from selfdistill.theory import BlockModel
        >>> bm = BlockModel(3, 20, c=0.4, d=0.1, reg=1e-2)
        >>> N = bm.sample_counts("symmetric", 0.3, seed=0)  # 30% of the labels flipped
        >>> N.sum(axis=1).tolist(), N.diagonal().tolist()  # 6 of each class's 20 labels flipped
        ([20, 20, 20], [14, 14, 14])
        """
        C = transition_matrix(kind, self.n_classes, rate, clusters=clusters)
        y = self.labels
        y_noisy = corrupt_labels(y, C, seed, exact=exact)
        return realised_rates(y, y_noisy, n_classes=self.n_classes)["confusion"]

    def counts_from_labels(self, y_true, y_noisy) -> np.ndarray:
        """The label-count matrix of given true / observed labels (checked against the class sizes).

        Parameters
        ----------
        y_true : (n,) int array
            True classes; must match the class sizes (e.g. :attr:`labels`).
        y_noisy : (n,) int array
            Observed labels.

        Returns
        -------
        (K, K) int array
            N[k, j] = #{i : y_true[i] = k, y_noisy[i] = j}.

        Raises
        ------
        ValueError
            If the labels do not match the model's class sizes.

        Examples
        --------
        >>> from selfdistill.theory import BlockModel
        >>> bm = BlockModel(3, 20, c=0.4, d=0.1, reg=1e-2)
        >>> N = bm.sample_counts("symmetric", 0.3, seed=0)  # 30% of the labels flipped
        >>> y = bm.labels.copy(); y[0] = 2
        >>> bm.counts_from_labels(bm.labels, y)[0].tolist()
        [19, 0, 1]
        """
        y_true = check_labels(y_true, "y_true", n_samples=self.n, n_classes=self.n_classes)
        N = realised_rates(y_true, y_noisy, n_classes=self.n_classes)["confusion"]
        return self.check_label_counts(N).astype(np.int64)

    # ------------------------------------------------------------------------------- linear chain
    def train_probs(self, label_counts, rounds) -> np.ndarray:
        """Linearised outputs P_t for every group: (rounds+1, K, K, K), entry [t, k, j] = P_t of a
        class-k point labelled j (defined for every (k, j); only groups with N[k, j] > 0 exist).

        P_t(k, j) = 1/K + f_w^(t+1) (e_j - N[k,:]/m_k) + [h_(t+1)(M) Rbar]_k.

        Parameters
        ----------
        label_counts : (K, K) array
            N[k, j] = number of class-k training points labelled j; rows sum to the class sizes.
        rounds : int
            R >= 0 SD rounds after the teacher.

        Returns
        -------
        (rounds+1, K, K, K) float array
            P_t of group (k, j); each row sums to 1.

        Examples
        --------
        >>> from selfdistill.theory import BlockModel
        >>> bm = BlockModel(3, 20, c=0.4, d=0.1, reg=1e-2)
        >>> N = bm.sample_counts("symmetric", 0.3, seed=0)  # 30% of the labels flipped
        >>> P = bm.train_probs(N, 1)
        >>> P.shape, np.round(P[0, 0, 1], 3).tolist()  # teacher on a class-0 point labelled 1
        ((2, 3, 3, 3), [0.446, 0.347, 0.207])
        """
        return block_linear.train_probs(self, *self._counts_rounds(label_counts, rounds))

    def second_order_correction(self, label_counts, rounds) -> np.ndarray:
        """(rounds+1, K, K, K): the leading correction e_t to the linearised outputs, per group.

        softmax(z) = 1/K + z/K + q(z) + O(z^3) for rows z summing to 0, q_l(z) = (z_l^2 - mean(z^2)) / (2K),
        so the exact round-t outputs are P_t = P_lin,t + e_t + O(z^3) with
        e_t = A e_(t-1) + lam (G + lam I)^-1 q(K (P_lin,t - 1/K)),  e_(-1) = 0.
        Its size against a prediction's margin decides whether the linearised prediction is trusted
        (:meth:`linear_regime`).

        Parameters
        ----------
        label_counts : (K, K) array
            N[k, j] = number of class-k training points labelled j; rows sum to the class sizes.
        rounds : int
            R >= 0 SD rounds after the teacher.

        Returns
        -------
        (rounds+1, K, K, K) float array
            e_t of group (k, j).

        Examples
        --------
        >>> from selfdistill.theory import BlockModel
        >>> bm = BlockModel(3, 20, c=0.4, d=0.1, reg=1e-2)
        >>> N = bm.sample_counts("symmetric", 0.3, seed=0)  # 30% of the labels flipped
        >>> e = bm.second_order_correction(N, 1)
        >>> e.shape, bool(np.abs(e).max() < 0.1)
        ((2, 3, 3, 3), True)
        """
        return block_linear.second_order_correction(self, *self._counts_rounds(label_counts, rounds))

    def linear_regime(self, label_counts, rounds, *, safety=2.0) -> np.ndarray:
        """(rounds+1, K, K) bool: where the linearised prediction of group (k, j) at round t is trusted.

        Trusted iff the gap between the two largest linearised outputs exceeds
        2 * safety * (max_l |e_t(k, j, l)| + 1e-12) (e_t from :meth:`second_order_correction`; 1e-12
        covers the float64 accuracy of the exact chain): moving every
        output by less than half the gap cannot change the argmax. ``safety`` covers the
        third-order remainder (docs/theory.md, section 8: chosen from the agreement grid).

        Parameters
        ----------
        label_counts : (K, K) array
            N[k, j] = number of class-k training points labelled j; rows sum to the class sizes.
        rounds : int
            R >= 0 SD rounds after the teacher.
        safety : float
            Factor > 0 on the second-order correction.

        Returns
        -------
        (rounds+1, K, K) bool array
            Trusted (t, k, j).

        Examples
        --------
        >>> from selfdistill.theory import BlockModel
        >>> bm = BlockModel(3, 20, c=0.4, d=0.1, reg=1e-2)
        >>> N = bm.sample_counts("symmetric", 0.3, seed=0)  # 30% of the labels flipped
        >>> bm.linear_regime(N, 1)[:, 0].tolist()  # the teacher's close calls are not trusted
        [[True, False, False], [True, True, True]]
        """
        N, rounds = self._counts_rounds(label_counts, rounds)
        return block_linear.linear_regime(self, N, rounds, check_positive(safety, "safety"))

    def predictions(self, label_counts, rounds) -> np.ndarray:
        """(rounds+1, K, K) predicted label of a class-k point labelled j at round t (argmax of
        :meth:`train_probs`, computed on rescaled scores so that large t does not underflow;
        ties to the lowest label).

        Parameters
        ----------
        label_counts : (K, K) array
            N[k, j] = number of class-k training points labelled j; rows sum to the class sizes.
        rounds : int
            R >= 0 SD rounds after the teacher.

        Returns
        -------
        (rounds+1, K, K) int array
            Predicted label of group (k, j) at round t.

        Examples
        --------
        >>> from selfdistill.theory import BlockModel
        >>> bm = BlockModel(3, 20, c=0.4, d=0.1, reg=1e-2)
        >>> N = bm.sample_counts("symmetric", 0.3, seed=0)  # 30% of the labels flipped
        >>> bm.predictions(N, 1)[:, 0].tolist()  # class-0 points labelled 0, 1, 2: round 1 fixes (0, 2)
        [[0, 0, 2], [0, 0, 0]]
        """
        N, rounds = self._counts_rounds(label_counts, rounds)
        return np.argmax(block_linear.scores(self, N, np.arange(rounds + 1)), axis=3)

    def margins(self, label_counts, rounds) -> np.ndarray:
        """(rounds+1, K, K) S(k) - max_{l != k} S(l) for group (k, j) on the rescaled scores (largest
        filter = 1): > 0 correct, < 0 wrong, |.| < 1e-12 a tie.

        Parameters
        ----------
        label_counts : (K, K) array
            N[k, j] = number of class-k training points labelled j; rows sum to the class sizes.
        rounds : int
            R >= 0 SD rounds after the teacher.

        Returns
        -------
        (rounds+1, K, K) float array
            The margin of group (k, j) at round t.

        Examples
        --------
        >>> from selfdistill.theory import BlockModel
        >>> bm = BlockModel(3, 20, c=0.4, d=0.1, reg=1e-2)
        >>> N = bm.sample_counts("symmetric", 0.3, seed=0)  # 30% of the labels flipped
        >>> np.round(bm.margins(N, 1)[:, 0], 3).tolist()
        [[0.56, 0.114, -0.012], [0.405, 0.323, 0.241]]
        """
        N, rounds = self._counts_rounds(label_counts, rounds)
        return block_linear.margins(block_linear.scores(self, N, np.arange(rounds + 1)))

    def accuracy(self, label_counts, rounds) -> np.ndarray:
        """(rounds+1,) training-point accuracy of the linearised chain: sum_{k,j} N[k,j] [pred(t,k,j) = k] / n.

        A point counts as correct only if its true class wins strictly: a tie (|margin| <= 1e-9 of the
        round's largest score) between the true class and another label counts as an error.

        Parameters
        ----------
        label_counts : (K, K) array
            N[k, j] = number of class-k training points labelled j; rows sum to the class sizes.
        rounds : int
            R >= 0 SD rounds after the teacher.

        Returns
        -------
        (rounds+1,) float array
            Training accuracy of round t = 0..rounds.

        Examples
        --------
        >>> from selfdistill.theory import BlockModel
        >>> bm = BlockModel(3, 20, c=0.4, d=0.1, reg=1e-2)
        >>> N = bm.sample_counts("symmetric", 0.3, seed=0)  # 30% of the labels flipped
        >>> np.round(bm.accuracy(N, 2), 3).tolist()  # SD round 1 reaches 100%
        [0.917, 1.0, 1.0]
        """
        N, rounds = self._counts_rounds(label_counts, rounds)
        return block_linear.accuracy_range(self, N, np.arange(rounds + 1))

    def test_scores(self, label_counts, rounds) -> np.ndarray:
        """(rounds+1, K, K): linearised p_t(x) - 1/K of a new point of class k (row k).

        A new point's Gram row is class-constant (Gamma[k, class(i)]), so only the class-level
        part survives: [(M - (1 - c) I) (M + lam I)^-1 h_t(M) Rbar]_k.

        Parameters
        ----------
        label_counts : (K, K) array
            N[k, j] = number of class-k training points labelled j; rows sum to the class sizes.
        rounds : int
            R >= 0 SD rounds after the teacher.

        Returns
        -------
        (rounds+1, K, K) float array
            Row k: p_t(x) - 1/K for a new point of class k.

        Examples
        --------
        >>> from selfdistill.theory import BlockModel
        >>> bm = BlockModel(3, 20, c=0.4, d=0.1, reg=1e-2)
        >>> N = bm.sample_counts("symmetric", 0.3, seed=0)  # 30% of the labels flipped
        >>> S = bm.test_scores(N, 1)
        >>> S.shape, bool(np.allclose(S.sum(axis=2), 0))
        ((2, 3, 3), True)
        """
        N, rounds = self._counts_rounds(label_counts, rounds)
        return block_linear.test_scores(self, N, np.arange(rounds + 1), scaled=False)

    def test_predictions(self, label_counts, rounds) -> np.ndarray:
        """(rounds+1, K) predicted label of a new point of class k at round t.

        Parameters
        ----------
        label_counts : (K, K) array
            N[k, j] = number of class-k training points labelled j; rows sum to the class sizes.
        rounds : int
            R >= 0 SD rounds after the teacher.

        Returns
        -------
        (rounds+1, K) int array
            Predicted label of a new point of class k at round t.

        Examples
        --------
        >>> from selfdistill.theory import BlockModel
        >>> bm = BlockModel(3, 20, c=0.4, d=0.1, reg=1e-2)
        >>> N = bm.sample_counts("symmetric", 0.3, seed=0)  # 30% of the labels flipped
        >>> bm.test_predictions(N, 1).tolist()
        [[0, 1, 2], [0, 1, 2]]
        """
        N, rounds = self._counts_rounds(label_counts, rounds)
        return np.argmax(block_linear.test_scores(self, N, np.arange(rounds + 1), scaled=True), axis=2)

    def test_accuracy(self, label_counts, rounds, *, class_weights=None) -> np.ndarray:
        """(rounds+1,) accuracy on new points of the model: sum_k pi_k [test_pred(t, k) = k],
        pi = class_weights normalised (default the training proportions m_k / n).

        Parameters
        ----------
        label_counts : (K, K) array
            N[k, j] = number of class-k training points labelled j; rows sum to the class sizes.
        rounds : int
            R >= 0 SD rounds after the teacher.
        class_weights : (K,) array or None
            Non-negative class weights of the test distribution (normalised).

        Returns
        -------
        (rounds+1,) float array
            Test accuracy of round t = 0..rounds.

        Examples
        --------
        >>> from selfdistill.theory import BlockModel
        >>> bm = BlockModel(3, 20, c=0.4, d=0.1, reg=1e-2)
        >>> N = bm.sample_counts("symmetric", 0.3, seed=0)  # 30% of the labels flipped
        >>> bm.test_accuracy(N, 1).tolist()
        [1.0, 1.0]
        """
        N, rounds = self._counts_rounds(label_counts, rounds)
        S = block_linear.test_scores(self, N, np.arange(rounds + 1), scaled=True)
        pi = self.sizes / self.n if class_weights is None else block_linear.class_weights(class_weights, self.n_classes)
        return block_linear.right(S[:, :, None, :])[:, :, 0].astype(np.float64) @ pi

    # ------------------------------------------------------------------------------- thresholds
    def min_rounds(self, label_counts, *, max_rounds=None):
        """t*: the smallest round t with 100% training-point accuracy, or None if no t reaches it.

        Searched over t = 0..max_rounds (default: a horizon after which the rescaled filters, and so
        the predictions, no longer change in float64 -- then None is exact); with the default and
        balanced labels (below) the closed form :meth:`min_rounds_formula` is used instead of the scan. Equal sizes, no
        superclasses and balanced observed labels (delta = 0):
        t* = max(0, floor(log(1 + m / Delta) / log(g_c / f_w))), Delta = min over k, j != k with
        N[k, j] > 0 of N[k, k] - N[k, j], provided N[k, k] > N[k, l] for all l != k (else None).

        Parameters
        ----------
        label_counts : (K, K) array
            N[k, j] = number of class-k training points labelled j; rows sum to the class sizes.
        max_rounds : int or None
            Search horizon (default: where the predictions stop changing in float64).

        Returns
        -------
        int or None
            t*.

        Examples
        --------
        >>> from selfdistill.theory import BlockModel
        >>> bm = BlockModel(3, 20, c=0.4, d=0.1, reg=1e-2)
        >>> N = bm.sample_counts("symmetric", 0.3, seed=0)  # 30% of the labels flipped
        >>> bm.min_rounds(N), bm.min_rounds(bm.expected_counts("symmetric", 0.3))
        (1, 0)
        """
        return block_rounds.min_rounds(self, *self._counts_max_rounds(label_counts, max_rounds))

    def min_rounds_formula(self, label_counts):
        """The closed form of t* (equal sizes, no superclasses, balanced labels; see :meth:`min_rounds`).

        Raises ValueError outside that case. Returns None when the plurality condition fails.

        Parameters
        ----------
        label_counts : (K, K) array
            N[k, j] = number of class-k training points labelled j; rows sum to the class sizes.

        Returns
        -------
        int or None
            t* = max(0, floor(log(1 + m / Delta) / log(g_c / f_w))), or None.

        Raises
        ------
        ValueError
            Unequal sizes, superclasses or unbalanced observed labels.

        Examples
        --------
        >>> from selfdistill.theory import BlockModel
        >>> bm = BlockModel(3, 20, c=0.4, d=0.1, reg=1e-2)
        >>> N = bm.sample_counts("symmetric", 0.3, seed=0)  # 30% of the labels flipped
        >>> bm.min_rounds_formula(bm.expected_counts("symmetric", 0.3))
        0
        """
        return block_rounds.min_rounds_formula(self, self.check_label_counts(label_counts))

    def over_averaging_round(self, label_counts, *, max_rounds=None):
        """The round after which over-averaging lowers training accuracy, or None.

        The first t with acc(t + 1) < acc(t) = max_{s <= t} acc(s): the last round before accuracy
        first falls from its running best (searched over 0..max_rounds, default the horizon of
        :meth:`min_rounds`).

        Parameters
        ----------
        label_counts : (K, K) array
            N[k, j] = number of class-k training points labelled j; rows sum to the class sizes.
        max_rounds : int or None
            Search horizon (default as :meth:`min_rounds`).

        Returns
        -------
        int or None
            That round, or None if accuracy never falls.

        Examples
        --------
        >>> from selfdistill.theory import BlockModel
        >>> bm = BlockModel(3, 20, c=0.4, d=0.1, reg=1e-2)
        >>> N = bm.sample_counts("symmetric", 0.3, seed=0)  # 30% of the labels flipped
        >>> bm.over_averaging_round(N)  # far past t* = 1: all labels end up averaged
        26
        """
        return block_rounds.over_averaging_round(self, *self._counts_max_rounds(label_counts, max_rounds))

    def reaches_full_accuracy(self, label_counts) -> bool:
        """Whether some number of SD rounds gives 100% training accuracy (linearised model).

        Parameters
        ----------
        label_counts : (K, K) array
            N[k, j] = number of class-k training points labelled j; rows sum to the class sizes.

        Returns
        -------
        bool
            ``min_rounds(label_counts) is not None``.

        Examples
        --------
        >>> from selfdistill.theory import BlockModel
        >>> bm = BlockModel(3, 20, c=0.4, d=0.1, reg=1e-2)
        >>> N = bm.sample_counts("symmetric", 0.3, seed=0)  # 30% of the labels flipped
        >>> bm.reaches_full_accuracy(N), bm.reaches_full_accuracy(bm.expected_counts("symmetric", 0.7))
        (True, False)
        """
        return self.min_rounds(label_counts) is not None

    def noise_threshold(self, kind, *, clusters=None, tol=1e-7) -> float:
        """The largest noise rate at which repeated SD still reaches 100% on the expected counts.

        sup {eta : min_rounds(expected_counts(kind, eta)) is not None}, by bisection on eta in
        [0, 1] (the set is an interval [0, eta*) for the built-in kinds). Equal sizes, no
        superclasses (balanced labels, so the condition is N[k, k] > N[k, l] for all l != k):
        symmetric (K - 1) / K, asymmetric K / (K + 2), pairflip 1/2, class_cluster (s - 1) / s with s
        the smallest cluster of >= 2 classes.

        Parameters
        ----------
        kind : str or (K, K) array
            Noise kind or transition-matrix function, as for :meth:`expected_counts`.
        clusters : sequence or None
            Class clusters for the ``class_cluster`` kind.
        tol : float
            Bisection tolerance on eta.

        Returns
        -------
        float
            eta*.

        Examples
        --------
        >>> from selfdistill.theory import BlockModel
        >>> bm = BlockModel(3, 20, c=0.4, d=0.1, reg=1e-2)
        >>> N = bm.sample_counts("symmetric", 0.3, seed=0)  # 30% of the labels flipped
        >>> round(bm.noise_threshold("symmetric"), 6), round(bm.noise_threshold("pairflip"), 6)  # (K-1)/K, 1/2
        (0.666667, 0.5)
        """
        if isinstance(kind, str):
            check_choice(kind, "kind", NOISE_KINDS)
        return block_rounds.noise_threshold(self, kind, clusters, check_positive(tol, "tol"))

    # ------------------------------------------------------------------------------- PLL student
    def pll_predictions(self, label_counts, *, top_k=2) -> np.ndarray:
        """(K, K) linearised PLL student's predicted label for group (k, j).

        Teacher: P_0 (round 0). Targets: T(k, j) = 1/k on the k largest entries of P_0(k, j); labels
        tied with the k-th share its mass (:func:`selfdistill.targets.topk_weights`).
        Student: P = 1/K + A (T - 1/K), the same group formula with T in place of one-hot labels.

        Parameters
        ----------
        label_counts : (K, K) array
            N[k, j] = number of class-k training points labelled j; rows sum to the class sizes.
        top_k : int
            Candidate-set size k of the PLL student (2 <= k < K).

        Returns
        -------
        (K, K) int array
            The student's predicted label of group (k, j).

        Examples
        --------
        >>> from selfdistill.theory import BlockModel
        >>> bm = BlockModel(3, 20, c=0.4, d=0.1, reg=1e-2)
        >>> N = bm.sample_counts("symmetric", 0.3, seed=0)  # 30% of the labels flipped
        >>> bm.pll_predictions(N).tolist()  # every group predicted as its true class
        [[0, 0, 0], [1, 1, 1], [2, 2, 2]]
        """
        return np.argmax(block_linear.pll_scores(self, *self._counts_top_k(label_counts, top_k))[0][0], axis=2)

    def pll_accuracy(self, label_counts, *, top_k=2) -> float:
        """Training-point accuracy of the linearised PLL student (one round).

        Parameters
        ----------
        label_counts : (K, K) array
            N[k, j] = number of class-k training points labelled j; rows sum to the class sizes.
        top_k : int
            Candidate-set size k of the PLL student (2 <= k < K).

        Returns
        -------
        float
            sum_{k,j} N[k, j] [pred(k, j) = k] / n.

        Examples
        --------
        >>> from selfdistill.theory import BlockModel
        >>> bm = BlockModel(3, 20, c=0.4, d=0.1, reg=1e-2)
        >>> N = bm.sample_counts("symmetric", 0.3, seed=0)  # 30% of the labels flipped
        >>> bm.pll_accuracy(N)
        1.0
        """
        N, top_k = self._counts_top_k(label_counts, top_k)
        ok = block_linear.right(block_linear.pll_scores(self, N, top_k)[0])[0]
        return float((ok * N).sum() / self.n)

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

        Parameters
        ----------
        label_counts : (K, K) array
            N[k, j] = number of class-k training points labelled j; rows sum to the class sizes.
        top_k : int
            Candidate-set size k of the PLL student (2 <= k < K).

        Returns
        -------
        dict
            coverage, full, pll_accuracy, sd_min_rounds, sd_best_accuracy, verdict.

        Examples
        --------
        >>> from selfdistill.theory import BlockModel
        >>> bm = BlockModel(3, 20, c=0.4, d=0.1, reg=1e-2)
        >>> N = bm.sample_counts("symmetric", 0.3, seed=0)  # 30% of the labels flipped
        >>> cond = bm.pll_condition(N)
        >>> cond["coverage"], cond["sd_min_rounds"], cond["verdict"]
        (True, 1, 'both')
        """
        return block_rounds.pll_condition(self, *self._counts_top_k(label_counts, top_k))

    # ------------------------------------------------------------------------------- exact chain
    def exact_probs(self, label_counts, rounds, *, pll=False, top_k=2):
        """The exact (non-linearised) chain on the block Gram matrix, reduced to the groups.

        By symmetry (and uniqueness of the convex minimiser) the exact outputs are equal within each
        group (k, j), so the fixed point P = softmax(G (T - P) / (n reg)) reduces to one probe on the
        group-mean features phi_g, <phi_g, phi_g'> = Gamma[k, k'] + [g = g'] (1 - c) / N_g, weighted
        by N_g: K^2 unknown rows instead of n. Each round is :func:`selfdistill.fit_linear_probe`
        with ``sample_weight`` = N_g, solved to float64 round-off; the PLL student trains on the
        teacher's top-k (:func:`selfdistill.refine_targets`, ties shared).

        Returns a dict: ``train`` (rounds+1, K, K, K) P_t per group (NaN rows for empty groups),
        ``test`` (rounds+1, K, K) outputs on a new point of class k, ``pll`` (K, K, K) and
        ``pll_test`` (K, K) with ``pll``, ``residuals`` (max-abs fixed-point residuals of the full
        equation), ``ties`` (groups whose teacher top-k had a tie, with ``pll``).

        Parameters
        ----------
        label_counts : (K, K) array
            N[k, j] = number of class-k training points labelled j; rows sum to the class sizes.
        rounds : int
            R >= 0 SD rounds after the teacher.
        pll : bool
            Also solve the PLL student.
        top_k : int
            Candidate-set size k of the PLL student (2 <= k < K).

        Returns
        -------
        dict
            train, test, residuals (and pll, pll_test, ties with ``pll``), as above.

        Examples
        --------
        >>> from selfdistill.theory import BlockModel
        >>> bm = BlockModel(3, 20, c=0.4, d=0.1, reg=1e-2)
        >>> N = bm.sample_counts("symmetric", 0.3, seed=0)  # 30% of the labels flipped
        >>> ex = bm.exact_probs(N, 1, pll=True)
        >>> ex["train"].shape, ex["pll"].shape, max(ex["residuals"]) < 1e-10
        ((2, 3, 3, 3), (3, 3, 3), True)
        """
        N, rounds = self._counts_rounds(label_counts, rounds)
        if pll:
            top_k = check_int(top_k, "top_k", low=2, high=self.n_classes - 1)
        return block_exact.exact_probs(self, N, rounds, pll, top_k)

    def exact_accuracy(self, label_counts, rounds) -> np.ndarray:
        """(rounds+1,) training accuracy of the exact chain (from :meth:`exact_probs`).

        Parameters
        ----------
        label_counts : (K, K) array
            N[k, j] = number of class-k training points labelled j; rows sum to the class sizes.
        rounds : int
            R >= 0 SD rounds after the teacher.

        Returns
        -------
        (rounds+1,) float array
            Training accuracy of the exact round t = 0..rounds (empty groups count nothing).

        Examples
        --------
        >>> from selfdistill.theory import BlockModel
        >>> bm = BlockModel(3, 20, c=0.4, d=0.1, reg=1e-2)
        >>> N = bm.sample_counts("symmetric", 0.3, seed=0)  # 30% of the labels flipped
        >>> np.round(bm.exact_accuracy(N, 2), 3).tolist()  # exact: the teacher is worse, round 1 still 100%
        [0.85, 1.0, 1.0]
        """
        N = self.check_label_counts(label_counts)
        return self.exact_accuracies(N, self.exact_probs(N, rounds))["train"]

    def exact_accuracies(self, label_counts, exact) -> dict:
        """Accuracies of an exact chain already solved by :meth:`exact_probs`: train, test (and PLL).

        Parameters
        ----------
        label_counts : (K, K) array
            N[k, j] = number of class-k training points labelled j; the counts ``exact`` was solved for.
        exact : dict
            What :meth:`exact_probs` returned for ``label_counts``.

        Returns
        -------
        dict
            ``train`` (rounds+1,) training accuracy of round t (empty groups count nothing);
            ``test`` (rounds+1,) accuracy on new points, classes weighed by m_k / n; with
            ``pll=True`` in :meth:`exact_probs`, ``pll`` the PLL student's training accuracy.

        Raises
        ------
        ValueError
            If ``exact`` does not hold outputs of this model's K classes.

        Examples
        --------
        >>> from selfdistill.theory import BlockModel
        >>> bm = BlockModel(3, 20, c=0.4, d=0.1, reg=1e-2)
        >>> N = bm.sample_counts("symmetric", 0.3, seed=0)  # 30% of the labels flipped
        >>> acc = bm.exact_accuracies(N, bm.exact_probs(N, 1, pll=True))
        >>> np.round(acc["train"], 3).tolist(), acc["pll"]
        ([0.85, 1.0], 1.0)
        """
        N = self.check_label_counts(label_counts)
        K = self.n_classes
        if np.shape(exact.get("train"))[1:] != (K, K, K):
            raise ValueError(f"exact must be what exact_probs returned for this model's {K} classes")
        return block_exact.accuracies(self, N, exact)


# ------------------------------------------------------------------------------------ grids
def phase_maps(n_classes, per_class, d, reg, kind, rates, gaps, *, clusters=None, top_k=2):
    """t* and the PLL-vs-SD verdict over a grid of noise rates and c - d (expected label counts).

    For every gap in ``gaps`` (c = d + gap, needs d < c <= 1) and rate in ``rates``: the model
    BlockModel(n_classes, per_class, d + gap, d, reg), the expected counts of the noise model, and
    :meth:`BlockModel.pll_condition`. Returns a dict with ``min_rounds`` (len(gaps), len(rates)) float
    (NaN where no round reaches 100%) and ``verdict`` (same shape, strings "both", "PLL only",
    "SD only", "neither"), plus ``rates`` and ``gaps``.

    Parameters
    ----------
    n_classes : int
        K >= 2.
    per_class : int
        m, training points per class.
    d : float
        Between-class correlation.
    reg : float
        L2 strength > 0.
    kind : str or (K, K) array
        Noise kind or transition matrix (see :meth:`BlockModel.expected_counts`).
    rates : sequence of float
        Noise rates (columns).
    gaps : sequence of float
        c - d values (rows).
    clusters : sequence or None
        Class clusters for the ``class_cluster`` kind.
    top_k : int
        Candidate-set size of the PLL student.

    Returns
    -------
    dict
        min_rounds, verdict (len(gaps), len(rates)), rates, gaps.

        Examples
        --------
        >>> maps = phase_maps(3, 20, 0.1, 1e-2, "symmetric", [0.3, 0.7], [0.3])
        >>> maps["min_rounds"].tolist(), maps["verdict"].tolist()
        ([[0.0, nan]], [['both', 'neither']])
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

    Parameters
    ----------
    n_classes : sequence of int
        Values of K.
    per_class : sequence of int
        Values of m.
    correlations : sequence of (c, d)
        Correlation pairs.
    regs : sequence of float
        L2 strengths.
    kinds : sequence of str
        Noise kinds.
    rates : sequence of float
        Noise rates.
    rounds : int
        R, the SD rounds compared.
    seed : int
        Seed of the sampled label counts.
    safety : float
        Safety factor of :meth:`BlockModel.linear_regime`.

    Returns
    -------
    list of dict
        One row per configuration, keys as above.

        Examples
        --------
        >>> rows = agreement_grid((3,), (20,), ((0.4, 0.1),), (1e-2,), ("symmetric",), (0.3,), rounds=2)
        >>> len(rows), rows[0]["items"], rows[0]["trusted_mismatches"]
        (1, 27, 0)
        """
    rows = []
    for K, m, (c, d), reg, kind, rate in itertools.product(n_classes, per_class, correlations, regs, kinds, rates):
        bm = BlockModel(K, m, c, d, reg)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            N = bm.sample_counts(kind, rate, seed=seed)
        lin = bm.predictions(N, rounds)
        exact = bm.exact_probs(N, rounds)["train"]
        exact_pred = block_exact.group_predictions(exact)
        exist = np.broadcast_to(N > 0, lin.shape)
        trusted = bm.linear_regime(N, rounds, safety=safety) & exist
        mism = (lin != exact_pred) & exist
        P = bm.train_probs(N, rounds)
        srt = np.sort(P, axis=3)
        ties = (srt[..., -1] - srt[..., -2] <= 1e-12) & exist
        acc_exact = block_exact.group_accuracy(exact_pred, N, bm.n)
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
