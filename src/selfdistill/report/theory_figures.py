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

import numpy as np

from .._io import save_figure
from .figures import colormap, new_figure

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
]

#: Region labels of :func:`plot_pll_vs_sd_map`, in colour order.
VERDICTS = ("both", "PLL only", "SD only", "neither")


def make_theory_accuracy_figure(curves, *, pll=None, title="", ylabel="training accuracy (%)"):
    """Accuracy vs round, one line per source (own colour, line style and marker), as a Figure.

    curves : dict label -> (rounds+1,) accuracies in [0, 1] (e.g. "closed form", "exact", "trained");
        None values are skipped.
    pll : optional dict label -> accuracy of the PLL student, drawn as stars right of the last round
        (x tick "PLL", past a dotted line), in the colour of the curve of the same label.
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


def plot_theory_accuracy(curves, path, *, pll=None, title="", ylabel="training accuracy (%)", dpi=120):
    """Write :func:`make_theory_accuracy_figure` to ``path``; returns ``path``."""
    return save_figure(make_theory_accuracy_figure(curves, pll=pll, title=title, ylabel=ylabel), path, dpi=dpi)


def make_spectrum_filter_figure(values, multiplicities, names, shrinkage, *, rounds=(0, 1, 3, 10)):
    """The Gram eigenvalues (distinct values with multiplicities) and the filter (mu/(mu+lam))^(t+1).

    Filter curves over a log grid of mu, one per round t in ``rounds`` (viridis, later = lighter),
    and the filter value at each eigenvalue (markers). Eigenvalues are grey dashed vertical lines
    labelled with name and multiplicity; lam is a red dotted line.
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
    for v, m_, name in zip(values, mult, names):
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


def plot_spectrum_filter(values, multiplicities, names, shrinkage, path, *, rounds=(0, 1, 3, 10), dpi=120):
    """Write :func:`make_spectrum_filter_figure` to ``path``; returns ``path``."""
    return save_figure(make_spectrum_filter_figure(values, multiplicities, names, shrinkage, rounds=rounds), path,
                       dpi=dpi)


def make_min_rounds_map_figure(rates, gaps, min_rounds, *, title=""):
    """Heat map of t* over noise rate (x) and c - d (y), as a Figure; NaN cells (never 100%) grey.

    min_rounds : (len(gaps), len(rates)) array of t* (whole numbers as floats, NaN for never).
    t* is a count, so the colours are discrete: one colour per integer 0..max (a BoundaryNorm with
    edges at the half-integers), and the colour bar is ticked at integers only.
    """
    from matplotlib.colors import BoundaryNorm
    from matplotlib.ticker import MaxNLocator

    Z = np.asarray(min_rounds, dtype=float)
    rates, gaps = np.asarray(rates, dtype=float), np.asarray(gaps, dtype=float)
    if Z.shape != (gaps.size, rates.size):
        raise ValueError(f"min_rounds must have shape (len(gaps), len(rates)) = {(gaps.size, rates.size)}, got {Z.shape}")
    finite = Z[np.isfinite(Z)]
    top = max(1, int(np.rint(finite.max()))) if finite.size else 1
    cmap = colormap("magma_r").resampled(top + 1).with_extremes(bad="lightgrey")
    norm = BoundaryNorm(np.arange(-0.5, top + 1.0), top + 1)
    fig, axes = new_figure(figsize=(6.4, 4.6))
    ax = axes[0][0]
    im = ax.pcolormesh(_edges(rates), _edges(gaps), np.ma.masked_invalid(np.rint(Z)), cmap=cmap, norm=norm,
                       shading="flat")
    ticks = [t for t in MaxNLocator(nbins=12, integer=True).tick_values(0, top) if 0 <= t <= top]
    cbar = fig.colorbar(im, ax=ax, ticks=ticks, label="minimum rounds t* (grey: never 100%)")
    cbar.minorticks_off()
    ax.set_xlabel("noise rate")
    ax.set_ylabel("c - d")
    if title:
        ax.set_title(title, fontsize="medium")
    return fig


def plot_min_rounds_map(rates, gaps, min_rounds, path, *, title="", dpi=120):
    """Write :func:`make_min_rounds_map_figure` to ``path``; returns ``path``."""
    return save_figure(make_min_rounds_map_figure(rates, gaps, min_rounds, title=title), path, dpi=dpi)


def make_pll_vs_sd_map_figure(rates, gaps, verdicts, *, title=""):
    """Region map over noise rate (x) and c - d (y), as a Figure: which of PLL / SD reaches 100%.

    One colour per verdict of :data:`VERDICTS`; the legend ("reaches 100%") lists all four and
    sits outside the axes, right of the map, so it hides no cell.
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    V = np.asarray(verdicts, dtype=object)
    rates, gaps = np.asarray(rates, dtype=float), np.asarray(gaps, dtype=float)
    if V.shape != (gaps.size, rates.size):
        raise ValueError(f"verdicts must have shape (len(gaps), len(rates)) = {(gaps.size, rates.size)}, got {V.shape}")
    bad = set(V.ravel().tolist()) - set(VERDICTS)
    if bad:
        raise ValueError(f"verdicts must be among {VERDICTS}, got {sorted(bad)}")
    code = np.vectorize(VERDICTS.index)(V).astype(float)
    colours = ["#4daf4a", "#377eb8", "#ff7f00", "#d9d9d9"]
    fig, axes = new_figure(figsize=(7.4, 4.6))
    ax = axes[0][0]
    ax.pcolormesh(_edges(rates), _edges(gaps), code, cmap=ListedColormap(colours), vmin=-0.5, vmax=3.5, shading="flat")
    ax.legend(handles=[Patch(color=c, label=v) for c, v in zip(colours, VERDICTS)], fontsize="small",
              loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, title="reaches 100%")
    ax.set_xlabel("noise rate")
    ax.set_ylabel("c - d")
    if title:
        ax.set_title(title, fontsize="medium")
    return fig


def plot_pll_vs_sd_map(rates, gaps, verdicts, path, *, title="", dpi=120):
    """Write :func:`make_pll_vs_sd_map_figure` to ``path``; returns ``path``."""
    return save_figure(make_pll_vs_sd_map_figure(rates, gaps, verdicts, title=title), path, dpi=dpi)


def make_theory_vs_training_figure(rows, *, title=""):
    """Label averaging vs the trained chain on real features, as a Figure: test accuracy vs round,
    one panel per reg (shared y range), two lines each; the panel title gives the mean agreement.

    rows : the output of :func:`selfdistill.theory.theory_vs_training` (keys reg, round,
        theory_test_acc, trained_test_acc, test_agreement).
    """
    rows = list(rows)
    if not rows:
        raise ValueError("rows must hold at least one row")
    regs = sorted({r["reg"] for r in rows})
    fig, axes = new_figure(1, len(regs), figsize=(4.2 * len(regs), 3.8), sharey=True)
    for ax, reg in zip(axes[0], regs):
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
    if title:
        fig.suptitle(title, fontsize="medium")
    return fig


def plot_theory_vs_training(rows, path, *, title="", dpi=120):
    """Write :func:`make_theory_vs_training_figure` to ``path``; returns ``path``."""
    return save_figure(make_theory_vs_training_figure(rows, title=title), path, dpi=dpi)


def _edges(centres):
    """Cell edges around sorted centres (for pcolormesh)."""
    c = np.asarray(centres, dtype=float)
    if c.size == 1:
        return np.array([c[0] - 0.5, c[0] + 0.5])
    mid = (c[1:] + c[:-1]) / 2
    return np.concatenate([[c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]])
