"""Figures of the main job's rows (PNGs written atomically), and the helpers every figure uses.

Nothing is recomputed: every function takes the rows (list of dicts with ``noise``, ``rate``,
``seed``, ``model``, ``test_acc``, ``gain``) and aggregates over seeds.

Figures are :class:`matplotlib.figure.Figure` objects made by :func:`new_figure`, outside pyplot:
plotting never switches the caller's matplotlib backend nor opens pyplot figures. Each
``plot_*`` function writes the figure its ``make_*_figure`` builder returns.
"""

from __future__ import annotations

import numpy as np

from .._io import save_figure
from .tables import _round_index, aggregate, model_order, noise_order, seeds_text

__all__ = [
    "plot_gain_vs_rate",
    "plot_accuracy_vs_round",
    "make_gain_vs_rate_figure",
    "make_accuracy_vs_round_figure",
    "new_figure",
    "colormap",
    "rate_colors",
    "dodge",
    "seeds_text",
]

#: Markers of the models drawn right of the last round (PLL students, baselines), in model order.
MARKERS = ("s", "^", "D", "v", "P", "X", "*", "h")


def new_figure(nrows=1, ncols=1, *, figsize, **subplot_kw):
    """(Figure, 2-D array of axes): a grid of panels on a Figure with its own Agg canvas.

    The one place figures are made: no pyplot, so no global figure and no backend change.
    ``subplot_kw`` goes to :meth:`Figure.subplots` (``sharey=`` ...).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False, **subplot_kw)
    return fig, axes


def colormap(name):
    """The registered colormap ``name`` (no pyplot)."""
    import matplotlib

    return matplotlib.colormaps[name]


def rate_colors(rates) -> dict:
    """{rate: RGBA}: the sorted distinct rates spread over viridis (0 .. 0.9). Every figure uses it."""
    rates = sorted({float(r) for r in rates})
    cmap = colormap("viridis")
    return {r: cmap(0.9 * i / max(len(rates) - 1, 1)) for i, r in enumerate(rates)}


def dodge(n, *, spread=0.5):
    """``n`` horizontal offsets centred on 0, at most ``spread`` apart end to end (0 for one)."""
    if n <= 1:
        return np.zeros(max(n, 0))
    return np.linspace(-spread / 2, spread / 2, n)


def _nan(v):
    return np.nan if v is None else v


def make_gain_vs_rate_figure(rows):
    """The paper's Figure 2 as a Figure; None when no model but round 0 (nothing to compare).

    One panel per noise kind (shared y range); grouped bars per noise rate: rounds 1..R (blues,
    darker = later) then each PLL student (oranges, hatched); height = mean over seeds of the
    gain over round 0 (percentage points), error bars = sample std over seeds (none with one
    seed); a zero line; legend "model" outside the last panel; the title names the seed count.
    """
    rows = list(rows)
    if not rows:
        raise ValueError("rows must hold at least one result row, got none")
    models = [m for m in model_order(rows) if m != "round 0"]
    if not models:
        return None
    rounds = [m for m in models if _round_index(m) is not None]
    plls = [m for m in models if _round_index(m) is None]
    blues = colormap("Blues")(np.linspace(0.4, 0.95, max(len(rounds), 1)))
    warm = colormap("Oranges")(np.linspace(0.5, 0.9, max(len(plls), 1)))
    hatches = ["", "//", ".."]
    colors = {m: blues[i] for i, m in enumerate(rounds)} | {m: warm[i] for i, m in enumerate(plls)}
    gain = aggregate(rows, "gain")
    noises = noise_order(rows)
    n_bars = len(models) * len({float(r["rate"]) for r in rows})
    width_in = min(max(5.2, 1.5 + 0.2 * n_bars), 9.0)
    fig, axes = new_figure(1, len(noises), figsize=(width_in * len(noises), 3.9), sharey=True)
    axes = axes[0]
    for ax, noise in zip(axes, noises):
        by_rate = gain[noise]
        rates = list(by_rate)
        x = np.arange(len(rates))
        width = 0.8 / len(models)
        for j, m in enumerate(models):
            mean = np.array([_nan(by_rate[r].get(m, (None,))[0]) for r in rates], dtype=float) * 100
            std = np.array([_nan(by_rate[r].get(m, (None, None))[1]) for r in rates], dtype=float) * 100
            err = None if np.all(np.isnan(std)) else np.nan_to_num(std)
            ax.bar(
                x - 0.4 + width * (j + 0.5), mean, width, yerr=err, capsize=2, color=colors[m],
                edgecolor="black", linewidth=0.4, label=m,
                hatch=hatches[plls.index(m) % len(hatches)] if m in plls else "",
                error_kw={"elinewidth": 0.8},
            )
        ax.axhline(0.0, color="black", linewidth=0.8)
        ax.set_xticks(x)
        ax.set_xticklabels([f"{r:g}" for r in rates])
        ax.set_xlabel("noise rate")
        ax.set_title(f"noise: {noise}")
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("gain over round 0 (test accuracy, points)")
    axes[-1].legend(fontsize="small", ncol=1, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="model")
    n_seeds = len({r["seed"] for r in rows})
    fig.suptitle(f"Distillation gain vs noise rate ({rows[0].get('dataset', '')}; mean ± std over "
                 f"{seeds_text(n_seeds)})", fontsize="medium")
    return fig


def plot_gain_vs_rate(rows, path, *, dpi: int = 120):
    """Write :func:`make_gain_vs_rate_figure` to ``path`` atomically; returns ``path``.

    Returns None and writes nothing when the rows hold no model but round 0 (``--rounds 0``
    without PLL students): there is no gain to show.
    """
    fig = make_gain_vs_rate_figure(rows)
    if fig is None:
        return None
    return save_figure(fig, path, dpi=dpi)


def make_accuracy_vs_round_figure(rows):
    """Test accuracy vs round as a Figure: one panel per noise kind (shared y), one colour per rate.

    x = round 0..R (lines with markers labelled "rate <r>", shaded band = ± sample std over
    seeds); right of a dotted line, one x tick per PLL student, where each rate's marker (the
    student's marker shape, the rate's colour of :func:`rate_colors`, error bar = std) is dodged
    sideways so no rate hides another. Legend outside the last panel: rates, then marker shapes.
    """
    from matplotlib.lines import Line2D

    rows = list(rows)
    if not rows:
        raise ValueError("rows must hold at least one result row, got none")
    models = model_order(rows)
    rounds = [m for m in models if _round_index(m) is not None]
    plls = [m for m in models if _round_index(m) is None]
    acc = aggregate(rows, "test_acc")
    noises = noise_order(rows)
    color = rate_colors(r["rate"] for r in rows)
    offset = dict(zip(color, dodge(len(color))))
    fig, axes = new_figure(1, len(noises), figsize=(5.2 * len(noises), 3.9), sharey=True)
    axes = axes[0]
    xr = np.array([_round_index(m) for m in rounds], dtype=float)
    x_last = xr.max() if xr.size else -1.0
    xp = x_last + 1.0 + np.arange(len(plls))
    for ax, noise in zip(axes, noises):
        for rate, by_model in acc[noise].items():
            c = color[rate]
            mean = np.array([_nan(by_model.get(m, (None,))[0]) for m in rounds], dtype=float) * 100
            std = np.array([_nan(by_model.get(m, (None, None))[1]) for m in rounds], dtype=float) * 100
            ax.plot(xr, mean, "-o", color=c, markersize=4, label=f"rate {rate:g}")
            if not np.all(np.isnan(std)):
                ax.fill_between(xr, mean - std, mean + std, color=c, alpha=0.15, linewidth=0)
            for j, m in enumerate(plls):
                pm, ps, _ = by_model.get(m, (None, None, 0))
                if pm is None:
                    continue
                ax.errorbar(xp[j] + offset[rate], 100 * pm, yerr=None if ps is None else 100 * ps,
                            fmt=MARKERS[j % len(MARKERS)], color=c, markersize=6, markeredgecolor="black",
                            markeredgewidth=0.5, capsize=2)
        if plls:
            ax.axvline(x_last + 0.5, color="grey", linewidth=0.8, linestyle=":")
        ax.set_xticks(list(xr) + list(xp))
        ax.set_xticklabels([str(int(v)) for v in xr] + plls)
        for tick in ax.get_xticklabels()[len(xr):]:
            tick.set_rotation(30)
            tick.set_ha("right")
        ax.set_xlabel("round (PLL students at the right)")
        ax.set_title(f"noise: {noise}")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy (%)")
    handles = [Line2D([], [], color=c, marker="o", markersize=4, label=f"rate {r:g}") for r, c in color.items()]
    for j, m in enumerate(plls):
        handles.append(Line2D([], [], linestyle="", marker=MARKERS[j % len(MARKERS)], color="grey",
                              markeredgecolor="black", markeredgewidth=0.5, label=m))
    axes[-1].legend(handles=handles, fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    n_seeds = len({r["seed"] for r in rows})
    fig.suptitle(f"Test accuracy by round ({rows[0].get('dataset', '')}; mean ± std over {seeds_text(n_seeds)})",
                 fontsize="medium")
    return fig


def plot_accuracy_vs_round(rows, path, *, dpi: int = 120):
    """Write :func:`make_accuracy_vs_round_figure` to ``path`` atomically; returns ``path``."""
    return save_figure(make_accuracy_vs_round_figure(rows), path, dpi=dpi)
