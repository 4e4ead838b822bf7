"""Figures of the theory engine (PNGs written atomically).

Nothing is computed here beyond plotting: every function takes arrays produced by
:mod:`selfdistill.theory` (or by ``selfdistill theory``) and writes one figure; its
``make_*_figure`` builder returns it as a :class:`matplotlib.figure.Figure`, made outside pyplot
(:func:`selfdistill.report.figures.new_figure`: the caller's backend is left alone).

* :func:`plot_theory_accuracy` -- accuracy vs round: closed form / exact fixed point / trained.
* :func:`plot_spectrum_filter` -- the Gram spectrum with the spectral filter at several rounds.
* :func:`plot_min_rounds_map` -- heat map of the minimum number of rounds t* over (noise rate, c - d).
* :func:`plot_pll_vs_sd_map` -- which of PLL (one round) / SD (some round) reaches 100%.
* :func:`plot_theory_vs_training` -- label averaging vs the trained chain on real features, per reg.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from .._io import save_figure
from .figures import colormap, new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "plot_theory_accuracy",
    "plot_spectrum_filter",
    "plot_min_rounds_map",
    "plot_pll_vs_sd_map",
    "plot_theory_vs_training",
    "make_theory_accuracy_figure",
    "make_spectrum_filter_figure",
    "make_min_rounds_map_figure",
    "make_pll_vs_sd_map_figure",
    "make_theory_vs_training_figure",
    "VERDICTS",
    "SOURCES",
    "AGREEMENT",
]

#: Region labels of :func:`plot_pll_vs_sd_map`, in colour order.
VERDICTS = ("both", "PLL only", "SD only", "neither")

#: What can have computed the t* of :func:`plot_min_rounds_map`.
SOURCES = ("closed form", "exact chain")

#: The definition of "agreement" that :func:`plot_theory_vs_training` puts in its title.
AGREEMENT = ("agreement: share of test points where label averaging and the trained probe predict the same class, "
             "mean over rounds")


def make_theory_accuracy_figure(
    curves: Mapping[str, Any],
    *,
    pll: Mapping[str, float | None] | None = None,
    title: str = "",
    ylabel: str = "training accuracy (%)",
) -> Figure:
    """Draw accuracy vs SD round, one line per source (own colour, line style and marker), as a Figure.

    Parameters
    ----------
    curves : dict of str to array-like of shape (rounds + 1,)
        Label -> accuracies in [0, 1] at rounds 0..R (e.g. "closed form", "exact", "trained");
        None values are skipped.
    pll : dict of str to float, optional, keyword-only
        Label -> accuracy of the PLL student, drawn as stars right of the last round (x tick
        "PLL", past a dotted line), in the colour of the curve of the same label.
    title : str, default "", keyword-only
        Title (none when empty).
    ylabel : str, default "training accuracy (%)", keyword-only
        Label of the y axis.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.

    Raises
    ------
    ValueError
        No curve.

    Examples
    --------
    >>> fig = make_theory_accuracy_figure({"closed form": [0.5, 0.75, 1.0], "trained": [0.5, 0.7, 0.9]},
    ...                                   pll={"trained": 1.0})
    >>> [t.get_text() for t in fig.axes[0].get_xticklabels()]
    ['0', '1', '2', 'PLL']
    >>> fig.axes[0].get_legend_handles_labels()[1]
    ['closed form', 'trained', 'PLL student (trained)']
    """
    curves = {k: np.asarray(v, dtype=float) for k, v in curves.items() if v is not None}
    if not curves:
        raise ValueError("curves must hold at least one accuracy curve")
    styles = {"closed form": ("-", "o"), "exact": ("--", "s"), "trained": (":", "^")}
    fig, axes = new_figure(figsize=(6.4, 4.2))
    ax = axes[0][0]
    R = max(len(v) for v in curves.values()) - 1
    for i, (name, acc) in enumerate(curves.items()):
        ls, mk = styles.get(name, ("-", "o"))
        ax.plot(np.arange(len(acc)), 100 * acc, linestyle=ls, marker=mk, markersize=4, label=name, color=f"C{i}")
    if pll:
        for i, (name, value) in enumerate(pll.items()):
            if value is None:
                continue
            ax.plot(R + 1.0 + 0.15 * i, 100 * value, marker="*", markersize=11, linestyle="", color=f"C{i}",
                    markeredgecolor="black", markeredgewidth=0.5, label=f"PLL student ({name})")
        ax.axvline(R + 0.5, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xlabel("round t (PLL student at the right)")
    ax.set_ylabel(ylabel)
    ax.set_xticks(list(range(R + 1)) + ([R + 1] if pll else []))
    ax.set_xticklabels([str(t) for t in range(R + 1)] + (["PLL"] if pll else []))
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="best")
    if title:
        ax.set_title(title, fontsize="medium")
    return fig


def plot_theory_accuracy(
    curves: Mapping[str, Any],
    path: str | os.PathLike[str],
    *,
    pll: Mapping[str, float | None] | None = None,
    title: str = "",
    ylabel: str = "training accuracy (%)",
    dpi: int = 120,
) -> str | os.PathLike[str]:
    """Write :func:`make_theory_accuracy_figure` (accuracy vs round) to ``path`` atomically.

    Parameters
    ----------
    curves : dict of str to array-like of shape (rounds + 1,)
        Label -> accuracies in [0, 1] at rounds 0..R.
    path : str or os.PathLike
        The image file; the format comes from its suffix.
    pll : dict of str to float, optional, keyword-only
        Label -> accuracy of the PLL student.
    title : str, default "", keyword-only
        Title (none when empty).
    ylabel : str, default "training accuracy (%)", keyword-only
        Label of the y axis.
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
    >>> p = plot_theory_accuracy({"exact": [0.5, 0.75]}, os.path.join(tmp.name, "acc.png"), dpi=40)
    >>> os.path.getsize(p) > 0
    True
    >>> tmp.cleanup()
    """
    return save_figure(make_theory_accuracy_figure(curves, pll=pll, title=title, ylabel=ylabel), path, dpi=dpi)


def make_spectrum_filter_figure(
    values: ArrayLike,
    multiplicities: ArrayLike,
    names: Sequence[str],
    shrinkage: float,
    *,
    rounds: Iterable[int] = (0, 1, 3, 10),
) -> Figure:
    """Draw the Gram eigenvalues and the spectral filter (mu/(mu+lam))^(t+1) of SD round t.

    Filter curves over a log grid of mu, one per round t in ``rounds`` (viridis, later = lighter),
    and the filter value at each eigenvalue (markers). Eigenvalues are grey dashed vertical lines
    labelled with name and multiplicity; lam is a red dotted line.

    Parameters
    ----------
    values : array-like of float, shape (p,)
        The distinct eigenvalues mu of the Gram matrix G; those <= 0 are not drawn.
    multiplicities : array-like of int, shape (p,)
        The multiplicity of each.
    names : sequence of str, length p
        A name for each (e.g. "within class", "class contrasts").
    shrinkage : float
        lam = K n reg.
    rounds : iterable of int, default (0, 1, 3, 10), keyword-only
        The rounds t whose filter is drawn.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.

    Raises
    ------
    ValueError
        No positive eigenvalue.

    Examples
    --------
    >>> fig = make_spectrum_filter_figure([4.0, 1.0, 0.0], [1, 2, 3], ["top", "mid", "null"], 1.0, rounds=(0, 1))
    >>> fig.axes[0].get_legend_handles_labels()[1]
    ['round 0: (mu/(mu+lam))^1', 'round 1: (mu/(mu+lam))^2', 'lam = K n reg = 1']
    """
    values = np.asarray(values, dtype=float)
    mult = np.asarray(multiplicities)
    pos = values[values > 0]
    if pos.size == 0:
        raise ValueError("values must hold at least one positive eigenvalue")
    lo = min(pos.min(), shrinkage) / 10
    hi = max(pos.max(), shrinkage) * 10
    mu = np.geomspace(lo, hi, 400)
    fig, axes = new_figure(figsize=(6.8, 4.2))
    ax = axes[0][0]
    cmap = colormap("viridis")
    rounds = list(rounds)
    for i, t in enumerate(rounds):
        c = cmap(0.9 * i / max(len(rounds) - 1, 1))
        ax.plot(mu, (mu / (mu + shrinkage)) ** (t + 1), color=c, label=f"round {t}: (mu/(mu+lam))^{t + 1}")
        f = (pos / (pos + shrinkage)) ** (t + 1)
        ax.plot(pos, f, "o", color=c, markersize=4)
    for v, m_, name in zip(values, mult, names, strict=False):
        if v <= 0:
            continue
        ax.axvline(v, color="grey", linewidth=0.7, linestyle="--")
        ax.text(v, 1.02, f"{name}\n(x{int(m_)})", rotation=90, fontsize="x-small", ha="right", va="bottom",
                transform=ax.get_xaxis_transform())
    ax.axvline(shrinkage, color="red", linewidth=0.8, linestyle=":", label=f"lam = K n reg = {shrinkage:.3g}")
    ax.set_xscale("log")
    ax.set_ylim(0, 1.0)
    ax.set_xlabel("eigenvalue mu of G")
    ax.set_ylabel("spectral filter")
    ax.legend(fontsize="x-small", loc="lower right")
    ax.grid(alpha=0.3)
    return fig


def plot_spectrum_filter(
    values: ArrayLike,
    multiplicities: ArrayLike,
    names: Sequence[str],
    shrinkage: float,
    path: str | os.PathLike[str],
    *,
    rounds: Iterable[int] = (0, 1, 3, 10),
    dpi: int = 120,
) -> str | os.PathLike[str]:
    """Write :func:`make_spectrum_filter_figure` (eigenvalues and spectral filter) to ``path`` atomically.

    Parameters
    ----------
    values : array-like of float, shape (p,)
        The distinct eigenvalues of the Gram matrix.
    multiplicities : array-like of int, shape (p,)
        The multiplicity of each.
    names : sequence of str, length p
        A name for each.
    shrinkage : float
        lam = K n reg.
    path : str or os.PathLike
        The image file; the format comes from its suffix.
    rounds : iterable of int, default (0, 1, 3, 10), keyword-only
        The rounds t whose filter is drawn.
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
    >>> p = plot_spectrum_filter([4.0, 1.0], [1, 2], ["a", "b"], 1.0, os.path.join(tmp.name, "s.png"), dpi=40)
    >>> os.path.getsize(p) > 0
    True
    >>> tmp.cleanup()
    """
    return save_figure(make_spectrum_filter_figure(values, multiplicities, names, shrinkage, rounds=rounds), path,
                       dpi=dpi)


def make_min_rounds_map_figure(
    rates: ArrayLike,
    gaps: ArrayLike,
    min_rounds: ArrayLike,
    *,
    title: str = "",
    source: str = "closed form",
    setting: tuple[float, float] | None = None,
) -> Figure:
    """Draw the heat map of t*, the fewest SD rounds reaching 100% training accuracy, over noise rate and c - d.

    Noise rate on x, c - d (within-class minus between-class feature correlation of the block
    model) on y; NaN cells (never 100%) grey. t* is a count, so the colours are discrete: one
    colour per integer 0..max (a BoundaryNorm with edges at the half-integers), and the colour bar
    is ticked at integers only. The colour bar's label says where t* comes from (``source``);
    ``setting`` is marked with a white star (named in the x label).

    Parameters
    ----------
    rates : array-like of float, shape (R,)
        Noise rates, sorted (cell centres on x).
    gaps : array-like of float, shape (G,)
        Values of c - d, sorted (cell centres on y).
    min_rounds : array-like of float, shape (G, R)
        t* (whole numbers as floats, NaN for never), e.g. ``phase_maps(...)["min_rounds"]``.
    title : str, default "", keyword-only
        Title (none when empty).
    source : {"closed form", "exact chain"}, default "closed form", keyword-only
        What computed t*: the closed form of label averaging (``phase_maps``) or the exact
        fixed-point chain.
    setting : (float, float), optional, keyword-only
        The (noise rate, c - d) asked for, marked on the map.

    Returns
    -------
    matplotlib.figure.Figure
        The figure (the map and its colour bar).

    Raises
    ------
    ValueError
        ``min_rounds`` not of shape (len(gaps), len(rates)), or an unknown ``source``.

    Examples
    --------
    >>> fig = make_min_rounds_map_figure([0.1, 0.2], [0.5, 1.0], [[1, 3], [0, np.nan]], setting=(0.2, 0.5))
    >>> fig.axes[0].get_xlabel()
    'noise rate (star: the setting asked for, rate 0.2, c - d 0.5)'
    >>> fig.axes[0].get_ylabel(), fig.axes[1].get_ylabel()
    ('c - d', 'minimum rounds t*, closed form (grey: never 100%)')
    """
    from matplotlib.colors import BoundaryNorm
    from matplotlib.ticker import MaxNLocator

    Z, rates, gaps = _map_grid(min_rounds, rates, gaps, "min_rounds", float)
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    finite = Z[np.isfinite(Z)]
    top = max(1, int(np.rint(finite.max()))) if finite.size else 1
    cmap = colormap("magma_r").resampled(top + 1).with_extremes(bad="lightgrey")
    norm = BoundaryNorm(np.arange(-0.5, top + 1.0), top + 1)
    fig, axes = new_figure(figsize=(6.4, 4.6))
    ax = axes[0][0]
    im = ax.pcolormesh(_edges(rates), _edges(gaps), np.ma.masked_invalid(np.rint(Z)), cmap=cmap, norm=norm,
                       shading="flat")
    ticks = [t for t in MaxNLocator(nbins=12, integer=True).tick_values(0, top) if 0 <= t <= top]
    cbar = fig.colorbar(im, ax=ax, ticks=ticks, label=f"minimum rounds t*, {source} (grey: never 100%)")
    cbar.minorticks_off()
    _label_map(ax, setting, title)
    return fig


def _map_grid(values, rates, gaps, name, dtype):
    """``values`` (len(gaps), len(rates)) of a (noise rate, c - d) map, and the axes, as arrays."""
    Z = np.asarray(values, dtype=dtype)
    rates, gaps = np.asarray(rates, dtype=float), np.asarray(gaps, dtype=float)
    if Z.shape != (gaps.size, rates.size):
        raise ValueError(f"{name} must have shape (len(gaps), len(rates)) = {(gaps.size, rates.size)}, got {Z.shape}")
    return Z, rates, gaps


def _label_map(ax, setting, title) -> None:
    """Name a map's axes (noise rate, c - d), star ``setting`` and set the title (none when empty)."""
    ax.set_xlabel("noise rate" + _mark_setting(ax, setting))
    ax.set_ylabel("c - d")
    if title:
        ax.set_title(title, fontsize="medium")


def _mark_setting(ax, setting) -> str:
    """Mark (noise rate, c - d) ``setting`` with a white star; return the x label's note on it ("" for None)."""
    if setting is None:
        return ""
    rate, gap = (float(v) for v in setting)
    ax.plot([rate], [gap], linestyle="", marker="*", markersize=14, color="white", markeredgecolor="black",
            markeredgewidth=0.8, zorder=4, gid="setting", label="_setting")
    return f" (star: the setting asked for, rate {rate:g}, c - d {gap:g})"


def plot_min_rounds_map(
    rates: ArrayLike,
    gaps: ArrayLike,
    min_rounds: ArrayLike,
    path: str | os.PathLike[str],
    *,
    title: str = "",
    source: str = "closed form",
    setting: tuple[float, float] | None = None,
    dpi: int = 120,
) -> str | os.PathLike[str]:
    """Write :func:`make_min_rounds_map_figure` (the t* heat map) to ``path`` atomically.

    Parameters
    ----------
    rates : array-like of float, shape (R,)
        Noise rates.
    gaps : array-like of float, shape (G,)
        Values of c - d.
    min_rounds : array-like of float, shape (G, R)
        t* (NaN for never).
    path : str or os.PathLike
        The image file; the format comes from its suffix.
    title : str, default "", keyword-only
        Title (none when empty).
    source : {"closed form", "exact chain"}, default "closed form", keyword-only
        What computed t* (named in the colour bar's label).
    setting : (float, float), optional, keyword-only
        The (noise rate, c - d) asked for, marked on the map.
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
    >>> p = plot_min_rounds_map([0.1, 0.2], [0.5], [[1, 2]], os.path.join(tmp.name, "t.png"), dpi=40)
    >>> os.path.getsize(p) > 0
    True
    >>> tmp.cleanup()
    """
    fig = make_min_rounds_map_figure(rates, gaps, min_rounds, title=title, source=source, setting=setting)
    return save_figure(fig, path, dpi=dpi)


def make_pll_vs_sd_map_figure(
    rates: ArrayLike,
    gaps: ArrayLike,
    verdicts: ArrayLike,
    *,
    title: str = "",
    margin: ArrayLike | None = None,
    setting: tuple[float, float] | None = None,
) -> Figure:
    """Draw the map of which of PLL (one round) / SD (some round) reaches 100% training accuracy.

    Noise rate on x, c - d on y. Without ``margin``: one colour per verdict of :data:`VERDICTS`.
    With ``margin``: the colours show it, PLL's training accuracy minus SD's best, in points, on a
    diverging colour map centred on 0 (blue: PLL ahead, red: SD ahead; colour bar below the map),
    and a marker per cell gives the verdict (none for "neither"). The legend ("reaches 100%")
    lists all four verdicts and sits outside the axes, right of the map, so it hides no cell.

    Parameters
    ----------
    rates : array-like of float, shape (R,)
        Noise rates, sorted.
    gaps : array-like of float, shape (G,)
        Values of c - d, sorted.
    verdicts : array-like of str, shape (G, R)
        One of :data:`VERDICTS` per cell, e.g. ``phase_maps(...)["verdict"]``.
    title : str, default "", keyword-only
        Title (none when empty).
    margin : array-like of float, shape (G, R), optional, keyword-only
        PLL's training accuracy minus SD's best (fractions in [-1, 1]; NaN cells grey).
    setting : (float, float), optional, keyword-only
        The (noise rate, c - d) asked for, marked with a white star.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.

    Raises
    ------
    ValueError
        ``verdicts`` or ``margin`` of the wrong shape, or a verdict not in :data:`VERDICTS`.

    Examples
    --------
    >>> fig = make_pll_vs_sd_map_figure([0.1, 0.2], [0.5, 1.0], [["both", "PLL only"], ["SD only", "neither"]])
    >>> [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    ['both', 'PLL only', 'SD only', 'neither']
    >>> fig = make_pll_vs_sd_map_figure([0.1, 0.2], [0.5, 1.0], [["both", "PLL only"], ["SD only", "neither"]],
    ...                                 margin=[[0.0, 0.25], [-0.5, 0.1]])
    >>> fig.axes[1].get_xlabel()
    'PLL minus best SD training accuracy (points; blue: PLL ahead)'
    """
    V, rates, gaps = _map_grid(verdicts, rates, gaps, "verdicts", object)
    bad = set(V.ravel().tolist()) - set(VERDICTS)
    if bad:
        raise ValueError(f"verdicts must be among {VERDICTS}, got {sorted(bad)}")
    fig, axes = new_figure(figsize=(7.4, 4.6 if margin is None else 5.6))
    ax = axes[0][0]
    if margin is None:
        handles = _verdict_regions(ax, V, rates, gaps)
    else:
        M = np.asarray(margin, dtype=float)
        if M.shape != V.shape:
            raise ValueError(f"margin must have the shape of verdicts {V.shape}, got {M.shape}")
        handles = _margin_cells(fig, ax, 100 * M, V, rates, gaps)
    ax.legend(handles=handles, fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0,
              title="reaches 100%")
    _label_map(ax, setting, title)
    return fig


def _verdict_regions(ax, V, rates, gaps) -> list:
    """One colour per verdict; returns the legend's patches."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    code = np.vectorize(VERDICTS.index)(V).astype(float)
    colours = ["#4daf4a", "#377eb8", "#ff7f00", "#d9d9d9"]
    ax.pcolormesh(_edges(rates), _edges(gaps), code, cmap=ListedColormap(colours), vmin=-0.5, vmax=3.5, shading="flat")
    return [Patch(color=c, label=v) for c, v in zip(colours, VERDICTS, strict=False)]


#: Markers of the verdicts on the margin map ("" = none).
_VERDICT_MARKERS = {"both": "o", "PLL only": "^", "SD only": "s", "neither": ""}


def _margin_cells(fig, ax, points, V, rates, gaps) -> list:
    """The PLL-minus-SD margin (points) on a diverging map centred on 0, with its colour bar, and a
    marker per cell for its verdict; returns the legend's handles."""
    from matplotlib.lines import Line2D

    finite = np.abs(points[np.isfinite(points)])
    lim = max(float(finite.max()) if finite.size else 0.0, 1.0)  # at least +-1 point: all-zero maps stay white
    cmap = colormap("RdBu").with_extremes(bad="lightgrey")
    im = ax.pcolormesh(_edges(rates), _edges(gaps), np.ma.masked_invalid(points), cmap=cmap, vmin=-lim, vmax=lim,
                       shading="flat")
    fig.colorbar(im, ax=ax, location="bottom", fraction=0.06, pad=0.16,
                 label="PLL minus best SD training accuracy (points; blue: PLL ahead)")
    R, G = np.meshgrid(rates, gaps)
    handles = []
    for v in VERDICTS:
        mk = _VERDICT_MARKERS[v]
        if mk:
            ax.plot(R[V == v], G[V == v], linestyle="", marker=mk, markersize=3.5, markerfacecolor="none",
                    markeredgecolor="black", markeredgewidth=0.6, label=v)
        handles.append(Line2D([], [], linestyle="", marker=mk or "None", markerfacecolor="none",
                              markeredgecolor="black", label=v if mk else f"{v} (no marker)"))
    return handles


def plot_pll_vs_sd_map(
    rates: ArrayLike,
    gaps: ArrayLike,
    verdicts: ArrayLike,
    path: str | os.PathLike[str],
    *,
    title: str = "",
    margin: ArrayLike | None = None,
    setting: tuple[float, float] | None = None,
    dpi: int = 120,
) -> str | os.PathLike[str]:
    """Write :func:`make_pll_vs_sd_map_figure` (PLL vs SD regions) to ``path`` atomically.

    Parameters
    ----------
    rates : array-like of float, shape (R,)
        Noise rates.
    gaps : array-like of float, shape (G,)
        Values of c - d.
    verdicts : array-like of str, shape (G, R)
        One of :data:`VERDICTS` per cell.
    path : str or os.PathLike
        The image file; the format comes from its suffix.
    title : str, default "", keyword-only
        Title (none when empty).
    margin : array-like of float, shape (G, R), optional, keyword-only
        PLL's training accuracy minus SD's best (fractions), shown as colours.
    setting : (float, float), optional, keyword-only
        The (noise rate, c - d) asked for, marked on the map.
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
    >>> p = plot_pll_vs_sd_map([0.1], [0.5], [["both"]], os.path.join(tmp.name, "v.png"), dpi=40)
    >>> os.path.getsize(p) > 0
    True
    >>> tmp.cleanup()
    """
    fig = make_pll_vs_sd_map_figure(rates, gaps, verdicts, title=title, margin=margin, setting=setting)
    return save_figure(fig, path, dpi=dpi)


def make_theory_vs_training_figure(rows: Iterable[Mapping[str, Any]], *, title: str = "") -> Figure:
    """Draw label averaging (the linearised theory) vs the trained SD chain on real features.

    Test accuracy vs round, one panel per reg (shared y range), two lines each; the panel title
    gives the mean agreement of the two predictions, which the figure's title defines: the share of
    test points on which label averaging and the trained probe predict the same class, averaged
    over rounds 0..R.

    Parameters
    ----------
    rows : iterable of dict
        The output of :func:`selfdistill.theory.theory_vs_training` (keys reg, round,
        theory_test_acc, trained_test_acc, test_agreement).
    title : str, default "", keyword-only
        Figure title (none when empty).

    Returns
    -------
    matplotlib.figure.Figure
        The figure.

    Raises
    ------
    ValueError
        No row.

    Examples
    --------
    >>> rows = [dict(reg=r, round=t, theory_test_acc=a, trained_test_acc=a, test_agreement=1.0)
    ...         for r in (1e-2, 1e-3) for t, a in ((0, 0.5), (1, 0.75))]
    >>> fig = make_theory_vs_training_figure(rows)
    >>> [ax.get_title() for ax in fig.axes]
    ['reg = 0.001  (agreement 100.0%)', 'reg = 0.01  (agreement 100.0%)']
    >>> print(fig.get_suptitle())
    agreement: share of test points where label averaging and the trained probe predict the same class,
    mean over rounds
    """
    rows = list(rows)
    if not rows:
        raise ValueError("rows must hold at least one row")
    regs = sorted({r["reg"] for r in rows})
    fig, axes = new_figure(1, len(regs), figsize=(4.2 * len(regs), 3.8), sharey=True)
    for ax, reg in zip(axes[0], regs, strict=False):
        sel = sorted((r for r in rows if r["reg"] == reg), key=lambda r: r["round"])
        t = [r["round"] for r in sel]
        ax.plot(t, [100 * r["trained_test_acc"] for r in sel], "-s", label="trained (exact probes)")
        ax.plot(t, [100 * r["theory_test_acc"] for r in sel], "--o", label="label averaging (linearised)")
        agree = np.mean([r["test_agreement"] for r in sel])
        ax.set_title(f"reg = {reg:g}  (agreement {100 * agree:.1f}%)", fontsize="small")
        ax.set_xlabel("round t")
        ax.set_xticks(t)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test accuracy (%)")
    axes[0][-1].legend(fontsize="small", loc="best")
    width = int(12 * 4.2 * len(regs))  # characters as wide as the panels
    fig.suptitle("\n".join(textwrap.fill(t, width=width) for t in (title, AGREEMENT) if t), fontsize="medium")
    return fig


def plot_theory_vs_training(
    rows: Iterable[Mapping[str, Any]], path: str | os.PathLike[str], *, title: str = "", dpi: int = 120
) -> str | os.PathLike[str]:
    """Write :func:`make_theory_vs_training_figure` (label averaging vs training) to ``path`` atomically.

    Parameters
    ----------
    rows : iterable of dict
        The output of :func:`selfdistill.theory.theory_vs_training`.
    path : str or os.PathLike
        The image file; the format comes from its suffix.
    title : str, default "", keyword-only
        Title (none when empty).
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
    >>> rows = [dict(reg=r, round=t, theory_test_acc=a, trained_test_acc=a, test_agreement=1.0)
    ...         for r in (1e-2, 1e-3) for t, a in ((0, 0.5), (1, 0.75))]
    >>> p = plot_theory_vs_training(rows, os.path.join(tmp.name, "tvt.png"), dpi=40)
    >>> os.path.getsize(p) > 0
    True
    >>> tmp.cleanup()
    """
    return save_figure(make_theory_vs_training_figure(rows, title=title), path, dpi=dpi)


def _edges(centres):
    """Cell edges around sorted centres (for pcolormesh)."""
    c = np.asarray(centres, dtype=float)
    if c.size == 1:
        return np.array([c[0] - 0.5, c[0] + 0.5])
    mid = (c[1:] + c[:-1]) / 2
    return np.concatenate([[c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]])
