"""``selfdistill correlation FEATURES.npz``: which classes are confusable, as class_cluster noise sees it.

:func:`class_correlation` computes the Pearson correlation between the class-mean training
features (the matrix :func:`selfdistill.noise.class_clusters` clusters) and the clusters
themselves (the same function, same threshold), and an order of the classes that keeps each
cluster contiguous (clusters in order of their first class; inside a cluster, the classes in the
order of the complete-linkage dendrogram's leaves). :func:`make_class_correlation_figure` draws it
(outside pyplot) and :func:`plot_class_correlation` writes it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["ClassCorrelation", "class_correlation", "plot_class_correlation", "make_class_correlation_figure",
           "format_clusters"]


@dataclass
class ClassCorrelation:
    """The class-mean feature correlation of a dataset and its clusters of confusable classes.

    What :func:`class_correlation` returns and :func:`make_class_correlation_figure` draws: the
    classes whose labels ``"class_cluster"`` noise moves among each other
    (:func:`selfdistill.noise.class_clusters`, ``rule="library"``).

    Parameters
    ----------
    corr : ndarray of float, shape (K, K)
        Pearson correlation of the class-mean training features, classes in label order.
    clusters : ndarray of int, shape (K,)
        Cluster id of each class.
    order : ndarray of int, shape (K,)
        A permutation of the classes that keeps each cluster contiguous.
    class_names : tuple of str, length K
        Names of the classes.
    threshold : float
        The cut of the dendrogram, a fraction of its largest merge height.
    name : str, default ""
        The dataset's name.

    Examples
    --------
    >>> cc = ClassCorrelation(corr=np.eye(2), clusters=np.array([0, 1]), order=np.array([0, 1]),
    ...                       class_names=("a", "b"), threshold=0.7)
    >>> cc.clusters.tolist()
    [0, 1]
    """

    corr: np.ndarray  # (K, K) correlation of the class-mean features, class order
    clusters: np.ndarray  # (K,) cluster id per class (selfdistill.noise.class_clusters)
    order: np.ndarray  # (K,) a permutation of the classes, clusters contiguous
    class_names: tuple
    threshold: float
    name: str = ""


def class_correlation(dataset: Any, *, threshold: float = 0.7) -> ClassCorrelation:
    """Compute the class-mean correlation and the clusters of confusable classes of a dataset.

    On the training part of a :class:`selfdistill.data.Dataset`: the correlation R (K, K) between
    the class-mean features, the clusters that ``class_clusters(X, y, threshold=threshold)``
    (``rule="library"``) cuts from the complete-linkage tree on 1 - R, and a class order that
    keeps each cluster contiguous (clusters in order of their first class; inside a cluster, the
    order of the dendrogram's leaves).

    Parameters
    ----------
    dataset : selfdistill.data.Dataset
        Its ``X_train`` (n, d), ``y_train`` (n,), ``n_classes``, ``class_names`` and ``name``
        are read; every class needs training points.
    threshold : float, default 0.7, keyword-only
        Cut height as a fraction of the largest merge height, in [0, 1].

    Returns
    -------
    ClassCorrelation
        Correlation, clusters, order, names, threshold and the dataset's name.

    Raises
    ------
    ValueError
        As :func:`selfdistill.noise.class_clusters` (a class without points, fewer than 2
        features, ``threshold`` outside [0, 1]).

    Examples
    --------
    Classes "cat" and "dog" have nearly the same mean features:

    >>> from selfdistill.data import Dataset
    >>> X = np.array([[4.0, 1.0, 0.0, 0.0], [4.0, 1.0, 0.0, 0.0], [4.0, 1.5, 0.0, 0.5],
    ...               [4.0, 1.5, 0.0, 0.5], [0.0, 0.0, 4.0, 1.0], [0.0, 0.0, 4.0, 1.0]])
    >>> ds = Dataset(X, np.array([0, 0, 1, 1, 2, 2]), X[:0], np.array([], dtype=int), ("cat", "dog", "owl"), name="toy")
    >>> cc = class_correlation(ds)
    >>> cc.clusters, cc.order
    (array([0, 0, 1]), array([0, 1, 2]))
    """
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import squareform

    from ..noise import class_clusters, class_mean_correlation, correlation_distance

    X, y, K = dataset.X_train, dataset.y_train, dataset.n_classes
    clusters = class_clusters(X, y, threshold=threshold, n_classes=K)
    R = class_mean_correlation(X, y, K)
    D = correlation_distance(R)
    leaves = leaves_list(linkage(squareform(D, checks=False), method="complete"))
    pos = np.empty(K, dtype=int)
    pos[leaves] = np.arange(K)
    order = np.array(sorted(range(K), key=lambda k: (clusters[k], pos[k])))
    return ClassCorrelation(corr=R, clusters=np.asarray(clusters), order=order, class_names=tuple(dataset.class_names),
                            threshold=float(threshold), name=dataset.name)


def format_clusters(cc: ClassCorrelation) -> str:
    """Describe the clusters as text: one line per cluster of two or more classes, then the singletons.

    Parameters
    ----------
    cc : ClassCorrelation
        The output of :func:`class_correlation`.

    Returns
    -------
    str
        A header line (classes, clusters, threshold), then a line per cluster of 2+ classes
        ("name (label)" in ``cc.order``), then the classes alone in their cluster, whose labels
        ``"class_cluster"`` noise never changes.

    Examples
    --------
    >>> from selfdistill.data import Dataset
    >>> X = np.array([[4.0, 1.0, 0.0, 0.0], [4.0, 1.0, 0.0, 0.0], [4.0, 1.5, 0.0, 0.5],
    ...               [4.0, 1.5, 0.0, 0.5], [0.0, 0.0, 4.0, 1.0], [0.0, 0.0, 4.0, 1.0]])
    >>> ds = Dataset(X, np.array([0, 0, 1, 1, 2, 2]), X[:0], np.array([], dtype=int), ("cat", "dog", "owl"), name="toy")
    >>> cc = class_correlation(ds)
    >>> print(format_clusters(cc))
    3 classes, 2 clusters at threshold 0.7 (1 with 2+ classes; class_cluster noise moves labels only inside those):
      cluster 0: cat (0), dog (1)
      alone (labels never changed by class_cluster noise): owl (2)
    """
    K = len(cc.class_names)
    ids = np.unique(cc.clusters)
    multi = [c for c in ids if np.sum(cc.clusters == c) > 1]
    lines = [f"{K} classes, {ids.size} clusters at threshold {cc.threshold:g} "
             f"({len(multi)} with 2+ classes; class_cluster noise moves labels only inside those):"]
    for c in multi:
        members = [k for k in cc.order if cc.clusters[k] == c]
        lines.append(f"  cluster {c}: " + ", ".join(f"{cc.class_names[k]} ({k})" for k in members))
    alone = [k for k in cc.order if np.sum(cc.clusters == cc.clusters[k]) == 1]
    if alone:
        lines.append("  alone (labels never changed by class_cluster noise): "
                     + ", ".join(f"{cc.class_names[k]} ({k})" for k in alone))
    return "\n".join(lines)


def make_class_correlation_figure(cc: ClassCorrelation) -> Figure:
    """Draw the heat map of the class-mean correlation (RdBu_r, -1..1, colour bar), as a Figure.

    Classes in ``cc.order`` (clusters contiguous); each cluster of two or more classes outlined by a
    black box on the diagonal; class names as ticks when K <= 60.

    Parameters
    ----------
    cc : ClassCorrelation
        The output of :func:`class_correlation`.

    Returns
    -------
    matplotlib.figure.Figure
        The figure (the map and its colour bar).

    Examples
    --------
    >>> from selfdistill.data import Dataset
    >>> X = np.array([[4.0, 1.0, 0.0, 0.0], [4.0, 1.0, 0.0, 0.0], [4.0, 1.5, 0.0, 0.5],
    ...               [4.0, 1.5, 0.0, 0.5], [0.0, 0.0, 4.0, 1.0], [0.0, 0.0, 4.0, 1.0]])
    >>> ds = Dataset(X, np.array([0, 0, 1, 1, 2, 2]), X[:0], np.array([], dtype=int), ("cat", "dog", "owl"), name="toy")
    >>> cc = class_correlation(ds)
    >>> fig = make_class_correlation_figure(cc)
    >>> [t.get_text() for t in fig.axes[0].get_xticklabels()], len(fig.axes[0].patches)  # one box: {cat, dog}
    (['cat', 'dog', 'owl'], 1)
    """
    from matplotlib.patches import Rectangle

    from .figures import new_figure

    K = len(cc.class_names)
    R = cc.corr[np.ix_(cc.order, cc.order)]
    size = min(max(5.0, 0.18 * K + 3), 16.0)
    fig, axes = new_figure(figsize=(size + 1.2, size))
    ax = axes[0][0]
    im = ax.imshow(R, cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="correlation of class-mean features")
    start = 0
    ordered = cc.clusters[cc.order]
    for i in range(1, K + 1):
        if i == K or ordered[i] != ordered[start]:
            if i - start > 1:
                ax.add_patch(Rectangle((start - 0.5, start - 0.5), i - start, i - start, fill=False,
                                       edgecolor="black", linewidth=1.2))
            start = i
    if K <= 60:
        names = [cc.class_names[k] for k in cc.order]
        ax.set_xticks(range(K))
        ax.set_yticks(range(K))
        ax.set_xticklabels(names, rotation=90, fontsize="x-small")
        ax.set_yticklabels(names, fontsize="x-small")
    n_multi = sum(np.sum(cc.clusters == c) > 1 for c in np.unique(cc.clusters))
    ax.set_title(f"{cc.name}: class-mean feature correlation, ordered by cluster\n"
                 f"(boxes: the {n_multi} clusters of 2+ classes, threshold {cc.threshold:g})", fontsize="medium")
    return fig


def plot_class_correlation(
    cc: ClassCorrelation, path: str | os.PathLike[str], *, dpi: int = 120
) -> str | os.PathLike[str]:
    """Write :func:`make_class_correlation_figure` (the class-correlation heat map) to ``path`` atomically.

    Parameters
    ----------
    cc : ClassCorrelation
        The output of :func:`class_correlation`.
    path : str or os.PathLike
        The image file; the format comes from its suffix.
    dpi : int, default 120, keyword-only
        Resolution.

    Returns
    -------
    str or os.PathLike
        ``path``.

    Examples
    --------
    >>> import os, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> cc = ClassCorrelation(corr=np.eye(2), clusters=np.array([0, 1]), order=np.array([0, 1]),
    ...                       class_names=("a", "b"), threshold=0.7)
    >>> p = plot_class_correlation(cc, os.path.join(tmp.name, "corr.png"), dpi=40)
    >>> os.path.getsize(p) > 0
    True
    >>> tmp.cleanup()
    """
    from .._io import save_figure

    return save_figure(make_class_correlation_figure(cc), path, dpi=dpi)
