"""The figures of ``selfdistill run`` and ``selfdistill report`` (PNGs written atomically), and the
helpers every figure uses.

Nothing is recomputed: every function takes the result rows (dicts with ``dataset``, ``noise``,
``rate``, ``seed``, ``model``, ``test_acc``, ``gain``, ...; one per task and model) and
aggregates over seeds. A run's rows are one dataset's; a report's may hold several.

* :func:`make_gain_vs_rate_figure` -- the paper's Figure 2: gain over round 0 vs noise rate;
* :func:`make_metric_vs_round_figure` -- a metric (test accuracy, label correction) vs round;
* :func:`make_coverage_vs_rate_figure` -- the teacher's top-k coverage of the true label.

Figures are :class:`matplotlib.figure.Figure` objects made by :func:`new_figure`, outside pyplot:
plotting never switches the caller's matplotlib backend nor opens pyplot figures. Each
``plot_*`` function writes the figure its ``make_*_figure`` builder returns.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from .._io import save_figure
from ..models import TEACHER, round_index
from .tables import grouped_stats, model_order, seeds_text, unique_in_order

if TYPE_CHECKING:
    from matplotlib.colors import Colormap
    from matplotlib.figure import Figure

_Rows = Iterable[Mapping[str, Any]]

__all__ = [
    "plot_gain_vs_rate",
    "plot_accuracy_vs_round",
    "plot_metric_vs_round",
    "plot_coverage_vs_rate",
    "make_gain_vs_rate_figure",
    "make_accuracy_vs_round_figure",
    "make_metric_vs_round_figure",
    "make_coverage_vs_rate_figure",
    "new_figure",
    "colormap",
    "rate_colors",
    "dodge",
    "seeds_text",
]

#: Markers of the models drawn right of the last round (PLL students, baselines), in model order.
MARKERS = ("s", "^", "D", "v", "P", "X", "*", "h")


def new_figure(
    nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float], **subplot_kw: Any
) -> tuple[Figure, np.ndarray]:
    """Make a grid of panels on a Figure with its own Agg canvas.

    The one place figures are made: no pyplot, so no global figure and no backend change.

    Parameters
    ----------
    nrows : int, default 1
        _Rows of panels.
    ncols : int, default 1
        Columns of panels.
    figsize : (float, float), keyword-only
        Width and height in inches.
    **subplot_kw
        Passed to :meth:`matplotlib.figure.Figure.subplots` (``sharey=`` ...).

    Returns
    -------
    fig : matplotlib.figure.Figure
        The figure.
    axes : ndarray of Axes, shape (nrows, ncols)
        Always 2-D, also for one panel.

    Examples
    --------
    >>> fig, axes = new_figure(1, 2, figsize=(6, 3))
    >>> type(fig).__name__, axes.shape
    ('Figure', (1, 2))
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False, **subplot_kw)
    return fig, axes


def colormap(name: str) -> Colormap:
    """Return the registered matplotlib colormap ``name`` (no pyplot).

    Parameters
    ----------
    name : str
        A colormap name ("viridis", "Blues" ...).

    Returns
    -------
    matplotlib.colors.Colormap
        The colormap.

    Examples
    --------
    >>> colormap("viridis").name
    'viridis'
    """
    import matplotlib

    return matplotlib.colormaps[name]


def rate_colors(rates: Iterable[float]) -> dict:
    """Give each noise rate its colour: the sorted distinct rates spread over viridis (0 .. 0.9).

    Every figure uses it, so a rate has the same colour in all of them.

    Parameters
    ----------
    rates : iterable of float
        Noise rates (repeats allowed).

    Returns
    -------
    dict of float to tuple
        {rate: RGBA}, rates sorted.

    Examples
    --------
    >>> colors = rate_colors([0.4, 0.0, 0.2, 0.4])
    >>> list(colors), colors[0.0] == colormap("viridis")(0.0)
    ([0.0, 0.2, 0.4], True)
    """
    rates = sorted({float(r) for r in rates})
    cmap = colormap("viridis")
    return {r: cmap(0.9 * i / max(len(rates) - 1, 1)) for i, r in enumerate(rates)}


def dodge(n: int, *, spread: float = 0.5) -> np.ndarray:
    """Return ``n`` horizontal offsets centred on 0, at most ``spread`` apart end to end (0 for one).

    Parameters
    ----------
    n : int
        Number of markers to set side by side.
    spread : float, default 0.5, keyword-only
        Distance between the first and the last offset.

    Returns
    -------
    ndarray of float, shape (n,)
        Evenly spaced offsets (empty for ``n <= 0``).

    Examples
    --------
    >>> dodge(3)
    array([-0.25,  0.  ,  0.25])
    >>> dodge(1)
    array([0.])
    """
    if n <= 1:
        return np.zeros(max(n, 0))
    return np.linspace(-spread / 2, spread / 2, n)


def _nan(v):
    return np.nan if v is None else float(v)


def _spread_text(n_seeds: int) -> str:
    """Return "1 seed, no spread" for one seed (no std to show), else "mean ± std over <n> seeds"."""
    return "1 seed, no spread" if n_seeds == 1 else f"mean ± std over {seeds_text(n_seeds)}"


def _panel_title(ds, noise, datasets, noises):
    if len(datasets) == 1:
        return f"noise: {noise}"
    return ds if len(noises) == 1 else f"{ds} — {noise}"


def _gain_colors(models):
    """Rounds in blues (darker = later), other models in oranges with a hatch each."""
    rounds = [m for m in models if round_index(m) is not None]
    plls = [m for m in models if round_index(m) is None]
    blues = colormap("Blues")(np.linspace(0.4, 0.95, max(len(rounds), 1)))
    warm = colormap("Oranges")(np.linspace(0.5, 0.9, max(len(plls), 1)))
    colors = {m: blues[i] for i, m in enumerate(rounds)} | {m: warm[i] for i, m in enumerate(plls)}
    hatches = {m: ("", "//", "..")[i % 3] for i, m in enumerate(plls)} | {m: "" for m in rounds}
    return colors, hatches


def _gain_bars(ax, by_rate, models, colors, hatches):
    rates = list(by_rate)
    x = np.arange(len(rates))
    width = 0.8 / len(models)
    for j, m in enumerate(models):
        mean = np.array([_nan(by_rate[r].get(m, (None,))[0]) for r in rates]) * 100
        std = np.array([_nan(by_rate[r].get(m, (None, None))[1]) for r in rates]) * 100
        xs = x - 0.4 + width * (j + 0.5)
        ax.bar(xs, mean, width, yerr=None if np.all(np.isnan(std)) else np.nan_to_num(std),
               capsize=2, color=colors[m], edgecolor="black", linewidth=0.4, label=m, hatch=hatches[m],
               error_kw={"elinewidth": 0.8})
        zero = np.abs(np.nan_to_num(mean, nan=np.inf)) < 1e-9  # a bar of height 0 is invisible: mark it
        if zero.any():
            ax.plot(xs[zero], np.zeros(int(zero.sum())), linestyle="", marker="D", markersize=5, color=colors[m],
                    markeredgecolor="black", markeredgewidth=0.6, zorder=3, clip_on=False, label="_zero gain",
                    gid="zero gain")
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xticks(x)
    ax.set_xticklabels([f"{r:g}" for r in rates])
    ax.set_xlabel("noise rate")
    ax.grid(axis="y", alpha=0.3)


def make_gain_vs_rate_figure(rows: _Rows, *, noise: str | None = None) -> Figure | None:
    """Draw the paper's Figure 2, the distillation gain over round 0 vs noise rate, as a Figure.

    One panel per (dataset, noise kind) of the rows (``noise``: only that kind), at most three
    per row, all sharing one y range; grouped bars per noise rate: rounds 1..R (blues, darker =
    later) then each PLL student (oranges, hatched); height = mean over seeds of the gain over
    round 0 (percentage points), error bars = sample std over seeds (none with one seed); a zero
    line, and a diamond on it for each bar of height 0 (which would not show); legend "model"
    outside the last panel of the first row; the title names the seed count ("1 seed, no spread"
    for one). Baselines are left out (they are in the tables).

    Parameters
    ----------
    rows : iterable of dict
        Result rows with ``dataset``, ``noise``, ``rate``, ``seed``, ``model`` and ``gain``.
    noise : str, optional, keyword-only
        Only this noise kind; None: all.

    Returns
    -------
    matplotlib.figure.Figure or None
        The figure; None when no model but round 0 (nothing to compare).

    Raises
    ------
    ValueError
        No round or PLL row (of that noise kind).

    Examples
    --------
    >>> rows = [dict(dataset="digits", noise="symmetric", rate=0.2, seed=s, model=m, test_acc=a, gain=a - 0.5)
    ...         for s, a1 in enumerate([0.5, 0.75, 1.0]) for m, a in (("round 0", 0.5), ("round 1", a1))]
    >>> fig = make_gain_vs_rate_figure(rows)
    >>> [ax.get_title() for ax in fig.axes]
    ['noise: symmetric']
    >>> make_gain_vs_rate_figure([r for r in rows if r["model"] == "round 0"]) is None
    True
    """
    rows = [r for r in rows if r.get("kind") != "baseline"]  # rows without a kind: rounds and PLL students
    if noise is not None:
        rows = [r for r in rows if r["noise"] == noise]
    if not rows:
        raise ValueError("rows must hold at least one round or PLL row, got none")
    models = [m for m in model_order(rows) if m != TEACHER.name]
    if not models:
        return None
    colors, hatches = _gain_colors(models)
    stats = grouped_stats(rows, "gain")
    datasets, noises = unique_in_order(r["dataset"] for r in rows), unique_in_order(r["noise"] for r in rows)
    panels = [p for p in ((d, n) for d in datasets for n in noises) if p in stats]
    ncol = min(3, len(panels))
    nrow = -(-len(panels) // ncol)
    width_in = min(max(5.2, 1.5 + 0.2 * len(models) * len({float(r["rate"]) for r in rows})), 9.0)
    fig, axes = new_figure(nrow, ncol, figsize=(width_in * ncol, 3.9 * nrow), sharey=True)
    for i, (ds, nz) in enumerate(panels):
        ax = axes[i // ncol][i % ncol]
        _gain_bars(ax, stats[(ds, nz)], models, colors, hatches)
        ax.set_title(_panel_title(ds, nz, datasets, noises))
        if i % ncol == 0:
            ax.set_ylabel("gain over round 0 (test accuracy, points)")
    for k in range(len(panels), nrow * ncol):
        axes[k // ncol][k % ncol].axis("off")
    axes[0][ncol - 1].legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), title="model")
    what = datasets[0] if len(datasets) == 1 else f"{noises[0]} noise" if len(noises) == 1 else "by dataset"
    n_seeds = len({r["seed"] for r in rows})
    fig.suptitle(f"Distillation gain vs noise rate ({what}; {_spread_text(n_seeds)})", fontsize="medium")
    return fig


def plot_gain_vs_rate(rows: _Rows, path: str | os.PathLike[str], *, noise: str | None = None,
                      dpi: int = 120) -> str | os.PathLike[str] | None:
    """Write :func:`make_gain_vs_rate_figure` (the paper's Figure 2) to ``path`` atomically.

    Parameters
    ----------
    rows : iterable of dict
        Result rows (see :func:`make_gain_vs_rate_figure`).
    path : str or os.PathLike
        The image file; the format comes from its suffix.
    noise : str, optional, keyword-only
        Only this noise kind; None: all.
    dpi : int, default 120, keyword-only
        Resolution.

    Returns
    -------
    str or os.PathLike or None
        ``path``; None, with nothing written, when the rows hold no model but round 0
        (``--rounds 0`` without PLL students): there is no gain to show.

    Examples
    --------
    >>> import os, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> rows = [dict(dataset="digits", noise="symmetric", rate=0.2, seed=s, model=m, test_acc=a, gain=a - 0.5)
    ...         for s, a1 in enumerate([0.5, 0.75, 1.0]) for m, a in (("round 0", 0.5), ("round 1", a1))]
    >>> p = plot_gain_vs_rate(rows, os.path.join(tmp.name, "gain.png"), dpi=40)
    >>> os.path.basename(p), os.path.getsize(p) > 0
    ('gain.png', True)
    >>> tmp.cleanup()
    """
    fig = make_gain_vs_rate_figure(rows, noise=noise)
    return None if fig is None else save_figure(fig, path, dpi=dpi)


def make_accuracy_vs_round_figure(rows: _Rows) -> Figure:
    """Draw test accuracy vs round: :func:`make_metric_vs_round_figure` with ``key="test_acc"``.

    Parameters
    ----------
    rows : iterable of dict
        Result rows with ``dataset``, ``noise``, ``rate``, ``seed``, ``model`` and ``test_acc``.

    Returns
    -------
    matplotlib.figure.Figure
        A row of panels per dataset, a panel per noise kind, a line per rate.

    Examples
    --------
    >>> rows = [dict(dataset="digits", noise="symmetric", rate=0.2, seed=s, model=m, test_acc=a, gain=a - 0.5)
    ...         for s, a1 in enumerate([0.5, 0.75, 1.0]) for m, a in (("round 0", 0.5), ("round 1", a1))]
    >>> fig = make_accuracy_vs_round_figure(rows)
    >>> [(ax.get_title(), ax.get_ylabel()) for ax in fig.axes]
    [('digits — symmetric', 'test accuracy (%)')]
    """
    return make_metric_vs_round_figure(rows)


def plot_accuracy_vs_round(rows: _Rows, path: str | os.PathLike[str], *, dpi: int = 120) -> str | os.PathLike[str]:
    """Write :func:`make_accuracy_vs_round_figure` to ``path`` atomically.

    Parameters
    ----------
    rows : iterable of dict
        Result rows.
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
    >>> rows = [dict(dataset="digits", noise="symmetric", rate=0.2, seed=s, model=m, test_acc=a, gain=a - 0.5)
    ...         for s, a1 in enumerate([0.5, 0.75, 1.0]) for m, a in (("round 0", 0.5), ("round 1", a1))]
    >>> p = plot_accuracy_vs_round(rows, os.path.join(tmp.name, "acc.png"), dpi=40)
    >>> os.path.getsize(p) > 0
    True
    >>> tmp.cleanup()
    """
    return save_figure(make_accuracy_vs_round_figure(rows), path, dpi=dpi)


def make_metric_vs_round_figure(
    rows: _Rows, *, key: str = "test_acc", ylabel: str = "test accuracy (%)", title: str = "Test accuracy by round"
) -> Figure:
    """Draw a metric (x 100) vs round as a Figure: a panel per dataset and noise kind, a line per rate.

    A row of panels per dataset (sharing a y range), a panel per noise kind, a line per rate.

    Rounds 0..R are joined by lines (band: ± sample std over seeds); the other models (PLL
    students, baselines) are markers to the right of round R, each rate's marker dodged
    sideways. A rate has the colour :func:`rate_colors` gives it among all the rates of
    ``rows``, so it matches across figures even where ``key`` is None at some rates (e.g.
    ``corrected`` at rate 0). Models whose ``key`` is None everywhere are skipped.

    Parameters
    ----------
    rows : iterable of dict
        Result rows with ``dataset``, ``noise``, ``rate``, ``seed``, ``model`` and ``key``.
    key : str, default "test_acc", keyword-only
        The metric (a fraction; drawn in percent), e.g. ``"corrected"``.
    ylabel : str, default "test accuracy (%)", keyword-only
        Label of the y axis.
    title : str, default "Test accuracy by round", keyword-only
        First line of the figure's title.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.

    Raises
    ------
    ValueError
        No row holds a value of ``key``.

    Examples
    --------
    >>> rows = [dict(dataset="digits", noise="symmetric", rate=0.2, seed=s, model=m, test_acc=a, gain=a - 0.5)
    ...         for s, a1 in enumerate([0.5, 0.75, 1.0]) for m, a in (("round 0", 0.5), ("round 1", a1))]
    >>> fig = make_metric_vs_round_figure(rows, key="gain", ylabel="gain (points)", title="Gain by round")
    >>> [ax.get_ylabel() for ax in fig.axes]
    ['gain (points)']
    """
    from matplotlib.lines import Line2D

    rows = list(rows)
    color = rate_colors(r["rate"] for r in rows)
    offset = dict(zip(color, dodge(len(color)), strict=False))
    rows = [r for r in rows if r.get(key) is not None]
    if not rows:
        raise ValueError(f"rows hold no value of {key!r}")
    models = model_order(rows)
    rounds = [m for m in models if round_index(m) is not None]
    others = [m for m in models if round_index(m) is None]
    datasets = unique_in_order(r["dataset"] for r in rows)
    noises = unique_in_order(r["noise"] for r in rows)
    stats = grouped_stats(rows, key)
    fig, axes = new_figure(len(datasets), len(noises), figsize=(5.4 * len(noises), 3.6 * len(datasets)),
                           sharey="row")
    xr = np.array([round_index(m) for m in rounds], dtype=float)
    x_last = xr.max() if xr.size else -1.0
    xo = x_last + 1.0 + np.arange(len(others))
    for i, ds in enumerate(datasets):
        for j, noise in enumerate(noises):
            ax = axes[i][j]
            by_rate = stats.get((ds, noise), {})
            for rate, by_m in by_rate.items():
                c = color[rate]
                mean = np.array([_nan(by_m.get(m, (None,))[0]) for m in rounds]) * 100
                std = np.array([_nan(by_m.get(m, (None, None))[1]) for m in rounds]) * 100
                if xr.size:
                    ax.plot(xr, mean, "-o", color=c, markersize=3.5, label=f"rate {rate:g}")
                    if not np.all(np.isnan(std)):
                        ax.fill_between(xr, mean - std, mean + std, color=c, alpha=0.15, linewidth=0)
                for k, m in enumerate(others):
                    pm, ps, _ = by_m.get(m, (None, None, 0))
                    if pm is not None:
                        ax.errorbar(xo[k] + offset[rate], 100 * pm, yerr=None if ps is None else 100 * ps,
                                    fmt=MARKERS[k % len(MARKERS)], color=c, markersize=5, markeredgecolor="black",
                                    markeredgewidth=0.4, capsize=2)
            if others:
                ax.axvline(x_last + 0.5, color="grey", linewidth=0.8, linestyle=":")
            ax.set_xticks(list(xr) + list(xo))
            ax.set_xticklabels([str(int(v)) for v in xr] + others, fontsize="small")
            for t in ax.get_xticklabels()[len(xr):]:
                t.set_rotation(35)
                t.set_ha("right")
            ax.set_title(f"{ds} — {noise}", fontsize="medium")
            ax.grid(alpha=0.3)
            if j == 0:
                ax.set_ylabel(ylabel)
    shown = sorted({float(r["rate"]) for r in rows})
    handles = [Line2D([], [], color=color[r], marker="o", markersize=3.5, label=f"rate {r:g}") for r in shown]
    handles += [Line2D([], [], linestyle="", marker=MARKERS[k % len(MARKERS)], color="grey", markeredgecolor="black",
                       markeredgewidth=0.4, label=m) for k, m in enumerate(others)]
    axes[0][-1].legend(handles=handles, fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    n_seeds = len({r["seed"] for r in rows})
    fig.suptitle(f"{title}\n(rounds 0..R; other models at the right; {_spread_text(n_seeds)})", fontsize="medium")
    return fig


def plot_metric_vs_round(rows: _Rows, path: str | os.PathLike[str], *, key: str = "test_acc",
                         ylabel: str = "test accuracy (%)", title: str = "Test accuracy by round",
                         dpi: int = 110) -> str | os.PathLike[str]:
    """Write :func:`make_metric_vs_round_figure` to ``path`` atomically.

    Parameters
    ----------
    rows : iterable of dict
        Result rows.
    path : str or os.PathLike
        The image file; the format comes from its suffix.
    key : str, default "test_acc", keyword-only
        The metric.
    ylabel : str, default "test accuracy (%)", keyword-only
        Label of the y axis.
    title : str, default "Test accuracy by round", keyword-only
        First line of the figure's title.
    dpi : int, default 110, keyword-only
        Resolution.

    Returns
    -------
    str or os.PathLike
        ``path``.

    Examples
    --------
    >>> import os, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> rows = [dict(dataset="digits", noise="symmetric", rate=0.2, seed=s, model=m, test_acc=a, gain=a - 0.5)
    ...         for s, a1 in enumerate([0.5, 0.75, 1.0]) for m, a in (("round 0", 0.5), ("round 1", a1))]
    >>> p = plot_metric_vs_round(rows, os.path.join(tmp.name, "gain.png"), key="gain", dpi=40)
    >>> os.path.getsize(p) > 0
    True
    >>> tmp.cleanup()
    """
    return save_figure(make_metric_vs_round_figure(rows, key=key, ylabel=ylabel, title=title), path, dpi=dpi)


def make_coverage_vs_rate_figure(rows: _Rows, *, top_k: int | None = None) -> Figure:
    """Draw the teacher's top-k coverage of the true label and its top-1 accuracy vs noise rate.

    The teacher (round 0) on its training points, as a Figure: where the PLL student can help.

    Per dataset and noise kind one colour and two lines, each named in the legend: solid = share
    of training points whose true label is among the teacher's top-k labels (band: ± std over
    seeds); dotted = the teacher's top-1 training accuracy against the true labels. k is the
    rows' ``top_k`` (or ``top_k=``; "k" when unknown).

    Parameters
    ----------
    rows : iterable of dict
        Result rows; those of round 0 with ``topk_coverage`` are drawn (with ``train_acc``).
    top_k : int, optional, keyword-only
        k for the legend when the rows hold no ``top_k``.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.

    Raises
    ------
    ValueError
        No round 0 row with a ``topk_coverage``.

    Examples
    --------
    >>> rows = [dict(dataset="digits", noise="symmetric", rate=r, seed=0, model="round 0", top_k=2,
    ...              topk_coverage=c, train_acc=a) for r, c, a in ((0.2, 0.95, 0.8), (0.4, 0.9, 0.6))]
    >>> fig = make_coverage_vs_rate_figure(rows)
    >>> [line.get_label() for line in fig.axes[0].get_lines()]
    ['digits, symmetric: true label in the top-2', 'digits, symmetric: top-1 is the true label']
    """
    teacher = TEACHER.name
    rows = [r for r in rows if r["model"] == teacher and r.get("topk_coverage") is not None]
    if not rows:
        raise ValueError("rows hold no teacher (round 0) top-k coverage")
    ks = sorted({int(r["top_k"]) for r in rows if r.get("top_k") is not None}) or ([int(top_k)] if top_k else [])
    k = "/".join(map(str, ks)) or "k"
    fig, axes = new_figure(figsize=(6.6, 4.2))
    ax = axes[0][0]
    stats = grouped_stats(rows, "topk_coverage")
    acc = grouped_stats(rows, "train_acc")
    for (ds, noise), by_rate in stats.items():
        rates = list(by_rate)
        mean = np.array([_nan(by_rate[r][teacher][0]) for r in rates]) * 100
        std = np.array([_nan(by_rate[r][teacher][1]) for r in rates]) * 100
        line, = ax.plot(rates, mean, "-o", markersize=4, label=f"{ds}, {noise}: true label in the top-{k}")
        if not np.all(np.isnan(std)):
            ax.fill_between(rates, mean - std, mean + std, color=line.get_color(), alpha=0.15, linewidth=0)
        top1 = np.array([_nan(acc[(ds, noise)][r][teacher][0]) for r in rates]) * 100
        ax.plot(rates, top1, ":", color=line.get_color(), label=f"{ds}, {noise}: top-1 is the true label")
    ax.set_xlabel("noise rate")
    ax.set_ylabel("share of the training points (%)")
    n_seeds = len({r["seed"] for r in rows})
    ax.set_title(f"Teacher (round 0) on its training points: true label in its top-{k} (solid)\n"
                 f"or its top-1 (dotted); {_spread_text(n_seeds)}", fontsize="medium")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="x-small")
    return fig


def plot_coverage_vs_rate(rows: _Rows, path: str | os.PathLike[str], *, top_k: int | None = None,
                          dpi: int = 110) -> str | os.PathLike[str]:
    """Write :func:`make_coverage_vs_rate_figure` to ``path`` atomically.

    Parameters
    ----------
    rows : iterable of dict
        Result rows (see :func:`make_coverage_vs_rate_figure`).
    path : str or os.PathLike
        The image file; the format comes from its suffix.
    top_k : int, optional, keyword-only
        k for the legend when the rows hold no ``top_k``.
    dpi : int, default 110, keyword-only
        Resolution.

    Returns
    -------
    str or os.PathLike
        ``path``.

    Examples
    --------
    >>> import os, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> rows = [dict(dataset="digits", noise="symmetric", rate=r, seed=0, model="round 0", top_k=2,
    ...              topk_coverage=c, train_acc=a) for r, c, a in ((0.2, 0.95, 0.8), (0.4, 0.9, 0.6))]
    >>> p = plot_coverage_vs_rate(rows, os.path.join(tmp.name, "coverage.png"), dpi=40)
    >>> os.path.getsize(p) > 0
    True
    >>> tmp.cleanup()
    """
    return save_figure(make_coverage_vs_rate_figure(rows, top_k=top_k), path, dpi=dpi)


