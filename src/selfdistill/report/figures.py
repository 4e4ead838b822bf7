"""Figures of the main job's rows (matplotlib, Agg backend; PNGs written atomically).

Nothing is recomputed: every function takes the rows (list of dicts with ``noise``, ``rate``,
``seed``, ``model``, ``test_acc``, ``gain``) and aggregates over seeds.
"""

from __future__ import annotations

import numpy as np

from .._io import save_figure
from .tables import _round_index, aggregate, model_order, noise_order

__all__ = ["plot_gain_vs_rate", "plot_accuracy_vs_round"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _panels(plt, n, *, width=5.2, height=3.9):
    fig, axes = plt.subplots(1, n, figsize=(width * n, height), squeeze=False, sharey=True)
    return fig, axes[0]


def _nan(v):
    return np.nan if v is None else v


def plot_gain_vs_rate(rows, path, *, dpi: int = 120):
    """The paper's Figure 2: distillation gain vs noise rate, one panel per noise kind.

    Grouped bars per noise rate: rounds 1..R (blues, darker = later) then each PLL student
    (warm colours); height = mean over seeds of the gain over round 0 (percentage points),
    error bars = sample std over seeds (none with one seed); a zero line; legend; axis labels.
    Saved atomically to ``path`` (PNG unless the suffix says otherwise). Returns ``path``.
    """
    plt = _pyplot()
    rows = list(rows)
    if not rows:
        raise ValueError("rows must hold at least one result row, got none")
    models = [m for m in model_order(rows) if m != "round 0"]
    rounds = [m for m in models if _round_index(m) is not None]
    plls = [m for m in models if _round_index(m) is None]
    blues = plt.get_cmap("Blues")(np.linspace(0.4, 0.95, max(len(rounds), 1)))
    warm = plt.get_cmap("Oranges")(np.linspace(0.5, 0.9, max(len(plls), 1)))
    hatches = ["", "//", ".."]
    colors = {m: blues[i] for i, m in enumerate(rounds)} | {m: warm[i] for i, m in enumerate(plls)}
    gain = aggregate(rows, "gain")
    noises = noise_order(rows)
    n_bars = len(models) * len({float(r["rate"]) for r in rows})
    fig, axes = _panels(plt, len(noises), width=min(max(5.2, 1.5 + 0.2 * n_bars), 9.0))
    for ax, noise in zip(axes, noises):
        by_rate = gain[noise]
        rates = list(by_rate)
        x = np.arange(len(rates))
        width = 0.8 / max(len(models), 1)
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
    if models:
        axes[-1].legend(fontsize="small", ncol=1, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="model")
    seeds = sorted({r["seed"] for r in rows})
    fig.suptitle(f"Distillation gain vs noise rate ({rows[0].get('dataset', '')}; mean ± std over {len(seeds)} seed(s))",
                 fontsize="medium")
    save_figure(fig, path, dpi=dpi)
    return path


def plot_accuracy_vs_round(rows, path, *, dpi: int = 120):
    """Test accuracy vs round, one panel per noise kind, one line per noise rate.

    x = round 0..R (lines with markers, shaded band = ± sample std over seeds); the PLL students
    are drawn as separate markers to the right of round R, one x position per PLL loss, in the
    colour of their rate. Saved atomically to ``path``. Returns ``path``.
    """
    plt = _pyplot()
    rows = list(rows)
    if not rows:
        raise ValueError("rows must hold at least one result row, got none")
    models = model_order(rows)
    rounds = [m for m in models if _round_index(m) is not None]
    plls = [m for m in models if _round_index(m) is None]
    acc = aggregate(rows, "test_acc")
    noises = noise_order(rows)
    all_rates = sorted({float(r["rate"]) for r in rows})
    cmap = plt.get_cmap("viridis")
    color = {r: cmap(0.9 * i / max(len(all_rates) - 1, 1)) for i, r in enumerate(all_rates)}
    markers = ["s", "^", "D", "v", "P", "X"]
    fig, axes = _panels(plt, len(noises))
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
                ax.errorbar(xp[j], 100 * pm, yerr=None if ps is None else 100 * ps, fmt=markers[j % len(markers)],
                            color=c, markersize=6, markeredgecolor="black", markeredgewidth=0.5, capsize=2)
        if plls:
            ax.axvline(x_last + 0.5, color="grey", linewidth=0.8, linestyle=":")
        ticks = list(xr) + list(xp)
        labels = [str(int(v)) for v in xr] + plls
        ax.set_xticks(ticks)
        ax.set_xticklabels(labels)
        for tick in ax.get_xticklabels()[len(xr):]:
            tick.set_rotation(30)
            tick.set_ha("right")
        ax.set_xlabel("round (PLL students at the right)")
        ax.set_title(f"noise: {noise}")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy (%)")
    handles, labels = axes[0].get_legend_handles_labels()
    for j, m in enumerate(plls):
        handles.append(plt.Line2D([], [], linestyle="", marker=markers[j % len(markers)], color="grey",
                                  markeredgecolor="black", markeredgewidth=0.5))
        labels.append(m)
    axes[-1].legend(handles, labels, fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: no marker hidden
    seeds = sorted({r["seed"] for r in rows})
    fig.suptitle(f"Test accuracy by round ({rows[0].get('dataset', '')}; mean ± std over {len(seeds)} seed(s))",
                 fontsize="medium")
    save_figure(fig, path, dpi=dpi)
    return path
