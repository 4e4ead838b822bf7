"""The block model's spectrum: the Gram eigenvalues and eigen-spaces in closed form (docs/theory.md, section 4).

G = (1 - c) I + Z Gamma Z^T (Z (n, K) the class indicators, Gamma (K, K) the class correlations).
Vectors summing to zero inside every class (dimension n - K) have eigenvalue mu_w = 1 - c;
class-constant vectors Z a form a K-dimensional invariant space on which G acts as
M = (1 - c) I + Gamma diag(m), or, symmetrised, S = D^1/2 M D^-1/2 = (1 - c) I + D^1/2 Gamma D^1/2
with D = diag(m). :func:`class_level_eigh` decomposes S (the closed forms use it);
:func:`block_spectrum` names the eigen-spaces.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["BlockSpectrum", "block_spectrum", "class_correlations", "class_level_eigh"]


def class_correlations(K, c, d, superclasses=None, c_super=None) -> np.ndarray:
    """Gamma (K, K): c on the diagonal, c_super inside a superclass, d elsewhere.

    Parameters
    ----------
    K : int
        Number of classes.
    c : float
        Within-class correlation.
    d : float
        Between-class correlation (classes of different superclasses).
    superclasses : (K,) int array or None
        Superclass id of each class.
    c_super : float or None
        Correlation between classes of the same superclass (with ``superclasses``).

    Returns
    -------
    (K, K) float array
        The class correlation matrix Gamma.

    Examples
    --------
    >>> class_correlations(4, 0.5, 0.1, np.array([0, 0, 1, 1]), 0.3)
    array([[0.5, 0.3, 0.1, 0.1],
           [0.3, 0.5, 0.1, 0.1],
           [0.1, 0.1, 0.5, 0.3],
           [0.1, 0.1, 0.3, 0.5]])
    """
    Gamma = np.full((K, K), d)
    if superclasses is not None:
        Gamma[superclasses[:, None] == superclasses[None, :]] = c_super
    np.fill_diagonal(Gamma, c)
    return Gamma


def class_level_eigh(sizes, gamma, c, d, superclasses=None):
    """Eigen-decomposition of S = (1 - c) I + D^1/2 Gamma D^1/2, D = diag(sizes).

    Returns (lam (K,) clipped at 0, V (K, K), sqrt(sizes) (K,)). Raises ValueError, naming d and
    the bound on d for equal sizes, when S (so G) is not positive semi-definite.

    Parameters
    ----------
    sizes : (K,) int array
        Class sizes m_k.
    gamma : (K, K) float array
        Class correlations Gamma (:func:`class_correlations`).
    c : float
        Within-class correlation.
    d : float
        Between-class correlation (named in the error message).
    superclasses : (K,) int array or None
        Superclass ids (the bound on d is only given without them).

    Returns
    -------
    lam : (K,) float array
        Eigenvalues of S, ascending, clipped at 0: the Gram eigenvalues of the class-constant space.
    V : (K, K) float array
        Orthonormal eigenvectors of S (columns).
    sq : (K,) float array
        sqrt(sizes).

    Raises
    ------
    ValueError
        If S has a negative eigenvalue (d too negative for a Gram matrix).

    Examples
    --------
    >>> sizes = np.array([20, 20, 20])
    >>> lam, V, sq = class_level_eigh(sizes, class_correlations(3, 0.4, 0.1), 0.4, 0.1)
    >>> lam.round(6).tolist()  # mu_c = 1 - c + m (c - d) twice, mu_1 = mu_c + n d
    [6.6, 6.6, 12.6]
    """
    K = len(sizes)
    sq = np.sqrt(sizes.astype(np.float64))
    lam, V = np.linalg.eigh((1.0 - c) * np.eye(K) + sq[:, None] * gamma * sq[None, :])
    scale = max(1.0, float(np.abs(lam).max()))
    if lam.min() < -1e-12 * scale * K:
        m = sizes
        bound = -(1.0 - c + m[0] * c) / ((K - 1) * m[0]) if np.all(m == m[0]) and superclasses is None else None
        hint = f"; with these sizes d must be >= {bound:.6g}" if bound is not None else ""
        raise ValueError(
            f"d={d!r} (c={c!r}) gives no valid Gram matrix: it is not positive semi-definite (class-level "
            f"eigenvalue {lam.min():.6g} < 0){hint}. Allowed: -1 <= d < c <= 1 with G positive semi-definite"
        )
    return np.clip(lam, 0.0, None), V, sq


def _tied_groups(values, tol):
    """Indices of ``values`` grouped into eigenvalues equal within ``tol``, groups by descending value.

    Sorted by value, a new group starts where the gap to the previous value exceeds ``tol``; inside
    a group the indices keep their original (block) order, so the merged name of tied eigen-spaces
    never depends on how round-off orders two equal numbers.
    """
    order = np.argsort(-values, kind="stable")
    groups: list[list[int]] = []
    for prev, i in zip([None, *order[:-1]], order, strict=False):
        if prev is None or values[prev] - values[i] > tol:
            groups.append([])
        groups[-1].append(int(i))
    return [sorted(g) for g in groups]


@dataclass
class BlockSpectrum:
    """Eigenvalues of the block-model Gram matrix, one entry per eigen-space.

    Parameters
    ----------
    values : (s,) distinct eigenvalues, descending.
    multiplicities : (s,) their multiplicities (they sum to n).
    names : tuple of str: "all-ones", "superclass contrast", "class contrast", "within class",
        or "class level" when class sizes (or superclass sizes) differ and the class-constant space
        does not split further; a degenerate group lists every name it merges ("all-ones + class
        contrast" when d = 0).
    class_vectors : list (one per entry; None for "within class") of (K, mult) arrays: the
        eigenvectors restricted to the classes (entry k = value on every point of class k).

    Examples
    --------
    >>> from selfdistill.theory import BlockModel
    >>> spec = BlockModel(3, 20, c=0.4, d=0.0, reg=1e-2).eigenvalues()
    >>> [(round(v, 6), mult, name) for v, mult, name in spec]  # d = 0: all-ones merges with the contrasts
    [(8.6, 3, 'all-ones + class contrast'), (0.6, 57, 'within class')]
    """

    values: np.ndarray
    multiplicities: np.ndarray
    names: tuple
    class_vectors: list

    def all(self) -> np.ndarray:
        """All n eigenvalues, descending (each repeated by its multiplicity).

        Returns
        -------
        (n,) float array
            The spectrum of G.

        Examples
        --------
        >>> from selfdistill.theory import BlockModel
        >>> bm = BlockModel(3, 4, c=0.4, d=0.1, reg=1e-2)
        >>> bool(np.allclose(bm.eigenvalues().all(), np.linalg.eigvalsh(bm.gram())[::-1]))
        True
        """
        return np.repeat(self.values, self.multiplicities)

    def __iter__(self):
        return iter(zip(self.values.tolist(), self.multiplicities.tolist(), self.names, strict=False))

    def __len__(self):
        return len(self.values)


def _invariant_blocks(K, superclasses):
    """The nested invariant subspaces of S for equal sizes: [(basis (K, r), name)], coarsest first."""
    blocks = [(np.ones((K, 1)), "all-ones")]
    if superclasses is not None:
        blocks.append((np.eye(int(superclasses.max()) + 1)[superclasses], "superclass contrast"))
    blocks.append((np.eye(K), "class contrast"))
    return blocks


def _split_equal_sizes(S, sq, K, superclasses):
    """Eigenpairs of S inside each invariant subspace: (values (K,), class vectors (K, K), names)."""
    lam_list, vec_list, kinds, used = [], [], [], np.zeros((K, 0))
    for B, name in _invariant_blocks(K, superclasses):
        stacked = np.hstack([used, B])
        Q, _ = np.linalg.qr(stacked)
        new = Q[:, used.shape[1] : np.linalg.matrix_rank(stacked)]
        if new.shape[1] == 0:
            continue
        w, U = np.linalg.eigh(new.T @ S @ new)
        for i in range(len(w)):
            lam_list.append(max(float(w[i]), 0.0))
            vec_list.append((new @ U[:, i]) / sq)
            kinds.append(name)
        used = np.hstack([used, new])
    return np.array(lam_list), np.stack(vec_list, axis=1), kinds


def block_spectrum(bm) -> BlockSpectrum:
    """The Gram eigenvalues and eigen-spaces of a :class:`~selfdistill.theory.BlockModel` (closed form).

    Equal class (and superclass) sizes split the class-constant space into all-ones, superclass
    contrasts and class contrasts; otherwise it is reported as K "class level" eigenvalues.
    Eigenvalues equal within 1e-9 of the largest are merged into one entry.

    Parameters
    ----------
    bm : BlockModel
        The model.

    Returns
    -------
    BlockSpectrum
        Distinct eigenvalues, descending, with multiplicities, names and class vectors.

    Examples
    --------
    >>> from selfdistill.theory import BlockModel
    >>> bm = BlockModel(4, 10, c=0.6, d=0.1, reg=1e-2, superclasses=[0, 0, 1, 1], c_super=0.3)
    >>> spec = block_spectrum(bm)
    >>> spec.names, spec.multiplicities.tolist()
    (('all-ones', 'superclass contrast', 'class contrast', 'within class'), [1, 1, 2, 36])
    """
    K = bm.n_classes
    S = (1.0 - bm.c) * np.eye(K) + bm._sq[:, None] * bm.gamma * bm._sq[None, :]
    equal = bool(np.all(bm.sizes == bm.sizes[0]))
    if bm.superclasses is not None:
        q = np.bincount(bm.superclasses)
        equal = equal and bool(np.all(q == q[0]))
    if equal:
        lam_cls, A, kinds = _split_equal_sizes(S, bm._sq, K, bm.superclasses)
    else:
        lam_cls, A, kinds = bm._lam, bm._V / bm._sq[:, None], ["class level"] * K
    vals = np.array(list(lam_cls) + [bm.mu_within])
    mult = [1] * K + [bm.n - K]
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
