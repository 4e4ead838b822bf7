"""``selfdistill correlation FEATURES.npz``: which classes are confusable, as class_cluster noise sees it.

:func:`class_correlation` computes the Pearson correlation between the class-mean training
features (the matrix :func:`selfdistill.noise.class_clusters` clusters) and the clusters
themselves (the same function, same threshold), and an order of the classes that keeps each
cluster contiguous (clusters in order of their first class; inside a cluster, the classes in the
order of the complete-linkage dendrogram's leaves). :func:`make_class_correlation_figure` draws it
(outside pyplot) and :func:`plot_class_correlation` writes it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ClassCorrelation", "class_correlation", "plot_class_correlation", "make_class_correlation_figure",
           "format_clusters"]


@dataclass
class ClassCorrelation:
    corr: np.ndarray  # (K, K) correlation of the class-mean features, class order
    clusters: np.ndarray  # (K,) cluster id per class (selfdistill.noise.class_clusters)
    order: np.ndarray  # (K,) a permutation of the classes, clusters contiguous
    class_names: tuple
    threshold: float
    name: str = ""


def class_correlation(dataset, *, threshold=0.7) -> ClassCorrelation:
    """Class-mean correlation and class clusters of a :class:`selfdistill.data.Dataset`'s training part."""
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
    """The clusters as text: one line per cluster of two or more classes, then the singletons."""
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


def make_class_correlation_figure(cc: ClassCorrelation):
    """Heat map of the class-mean correlation (RdBu_r, -1..1, colour bar), as a Figure.

    Classes in ``cc.order`` (clusters contiguous); each cluster of two or more classes outlined by a
    black box on the diagonal; class names as ticks when K <= 60.
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


def plot_class_correlation(cc: ClassCorrelation, path, *, dpi=120):
    """Write :func:`make_class_correlation_figure` to ``path`` atomically; returns ``path``."""
    from .._io import save_figure

    return save_figure(make_class_correlation_figure(cc), path, dpi=dpi)
