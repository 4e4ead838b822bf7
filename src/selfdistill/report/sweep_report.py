"""``selfdistill report RESULTS.db``: figures, tables (Markdown, LaTeX, CSV) and one HTML page.

Input: the rows of a sweep's results database (:meth:`selfdistill.experiments.store.ResultStore.rows`:
one dict per task and model with dataset, noise, rate, seed, model, kind, test_acc, gain,
corrected, topk_coverage, ...). Nothing is recomputed. Statistics are over seeds: mean and sample
standard deviation (ddof=1; none with one seed), as in :mod:`selfdistill.report.tables`.

Files written to the output folder (each atomically):

* ``gain_vs_rate_<noise>.png`` -- the paper's Figure 2: distillation gain over round 0 vs noise
  rate, bars for rounds 1..R and the PLL students, error bars over seeds, one panel per dataset;
* ``accuracy_vs_round.png`` -- test accuracy vs round (PLL students and baselines to the right),
  one row of panels per dataset, one panel per noise kind, one line per rate;
* ``correction_vs_round.png`` -- label-correction rate (fraction of the *wrongly* labelled
  training points that the model classifies correctly) vs round, same layout;
* ``coverage_vs_rate.png`` -- fraction of training points whose teacher top-k (k = top_k, 2 by
  default) holds the true label, vs noise rate, one line per dataset and noise kind;
* ``results.md`` / ``results.tex`` -- test accuracy (%) per dataset and noise kind, rows = rates,
  columns = models (rounds, PLL students, baselines), best mean per row in bold; then the gains;
* ``results.csv`` -- every row (one per task and model);
* ``report.html`` -- all of it on one self-contained page (figures embedded as base64 PNG).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from .._io import atomic_write_text, ensure_output_dir, save_figure
from .figures import MARKERS, colormap, dodge, new_figure, rate_colors, seeds_text
from .rows import write_results_csv
from .tables import _round_index, mean_std, model_order

__all__ = [
    "write_report",
    "accuracy_tables",
    "gain_tables",
    "markdown_tables",
    "latex_tables",
    "plot_gain_by_dataset",
    "plot_metric_vs_round",
    "plot_coverage_vs_rate",
    "make_gain_by_dataset_figure",
    "make_metric_vs_round_figure",
    "make_coverage_vs_rate_figure",
]



def _order(values):
    return list(dict.fromkeys(values))


def _nan(v):
    return np.nan if v is None else float(v)


def _stats(rows, key):
    """{(dataset, noise): {rate: {model: (mean, std, n)}}}."""
    groups = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["noise"]), {}).setdefault(float(r["rate"]), {}).setdefault(
            r["model"], []).append(r.get(key))
    return {g: {rate: {m: mean_std(v) for m, v in by_m.items()} for rate, by_m in sorted(by_rate.items())}
            for g, by_rate in groups.items()}


def accuracy_tables(rows, key="test_acc"):
    """[(dataset, noise, models, [(rate, [(mean, std, n) per model], best index set)])], for rendering."""
    rows = list(rows)
    models = model_order(rows)
    stats = _stats(rows, key)
    out = []
    for ds in _order(r["dataset"] for r in rows):
        for noise in _order(r["noise"] for r in rows if r["dataset"] == ds):
            by_rate = stats[(ds, noise)]
            present = [m for m in models if any(m in by_m for by_m in by_rate.values())]
            lines = []
            for rate, by_m in by_rate.items():
                cells = [by_m.get(m, (None, None, 0)) for m in present]
                means = [c[0] for c in cells if c[0] is not None]
                best = max(means) if means else None
                bold = {i for i, c in enumerate(cells) if best is not None and c[0] is not None
                        and math.isclose(c[0], best, rel_tol=0, abs_tol=1e-12)}
                lines.append((rate, cells, bold))
            out.append((ds, noise, present, lines))
    return out


def gain_tables(rows):
    """Like :func:`accuracy_tables` for the gain over round 0, without the round 0 column and bold."""
    out = []
    for ds, noise, models, lines in accuracy_tables(rows, "gain"):
        keep = [i for i, m in enumerate(models) if m != "round 0"]
        if keep:
            out.append((ds, noise, [models[i] for i in keep],
                        [(rate, [cells[i] for i in keep], set()) for rate, cells, _ in lines]))
    return out


def _fmt(stats, signed=False, digits=1):
    mean, std, _ = stats
    if mean is None:
        return "–", None
    m = f"{100 * mean:{'+' if signed else ''}.{digits}f}"
    return m, (None if std is None else f"{100 * std:.{digits}f}")


def markdown_tables(rows, *, digits=1) -> str:
    """Markdown: per dataset and noise kind, test accuracy (best per row in bold) and gain tables."""
    rows = list(rows)
    if not rows:
        return "No results.\n"
    seeds = sorted({r["seed"] for r in rows})
    out = [f"Test accuracy (%), mean ± std over {seeds_text(len(seeds))} {seeds}; **bold**: best mean in the row. "
           "Gain: test accuracy minus round 0 of the same seed (percentage points)."]
    gains = {(d, n): (models, lines) for d, n, models, lines in gain_tables(rows)}
    for ds, noise, models, lines in accuracy_tables(rows):
        out += ["", f"### {ds} — noise: {noise}", "", "| rate | " + " | ".join(models) + " |",
                "|---:|" + "---:|" * len(models)]
        for rate, cells, bold in lines:
            txt = []
            for i, c in enumerate(cells):
                m, s = _fmt(c, digits=digits)
                t = m if s is None else f"{m} ± {s}"
                txt.append(f"**{t}**" if i in bold else t)
            out.append(f"| {rate:g} | " + " | ".join(txt) + " |")
        if (ds, noise) in gains:
            gm, glines = gains[(ds, noise)]
            out += ["", f"Gain over round 0 ({ds}, {noise}), points:", "", "| rate | " + " | ".join(gm) + " |",
                    "|---:|" + "---:|" * len(gm)]
            for rate, cells, _ in glines:
                txt = []
                for c in cells:
                    a, s = _fmt(c, signed=True, digits=digits)
                    txt.append(a if s is None else f"{a} ± {s}")
                out.append(f"| {rate:g} | " + " | ".join(txt) + " |")
    return "\n".join(out) + "\n"


def _tex(s: str) -> str:
    """Escape LaTeX's special characters in a dataset or model name."""
    out = []
    for ch in s:
        out.append({"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "_": r"\_", "#": r"\#", "$": r"\$",
                    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}.get(ch, ch))
    return "".join(out)


def latex_tables(rows, *, digits=1) -> str:
    """LaTeX (booktabs): one table per dataset and noise kind; best mean per row in \\textbf."""
    rows = list(rows)
    out = ["% selfdistill report: test accuracy (%), mean $\\pm$ std over seeds; needs \\usepackage{booktabs}"]
    for ds, noise, models, lines in accuracy_tables(rows):
        out += ["\\begin{table}[t]", "\\centering", "\\small",
                f"\\caption{{Test accuracy (\\%) on {_tex(ds)}, {_tex(noise)} noise (mean $\\pm$ std over seeds; "
                "best in bold).}",
                "\\begin{tabular}{r" + "c" * len(models) + "}", "\\toprule",
                "rate & " + " & ".join(_tex(m) for m in models) + " \\\\", "\\midrule"]
        for rate, cells, bold in lines:
            txt = []
            for i, c in enumerate(cells):
                m, s = _fmt(c, digits=digits)
                if m == "–":
                    txt.append("--")
                    continue
                if i in bold:
                    m = f"\\mathbf{{{m}}}"
                txt.append(f"${m}$" if s is None else f"${m} \\pm {s}$")
            out.append(f"{rate:g} & " + " & ".join(txt) + " \\\\")
        out += ["\\bottomrule", "\\end{tabular}", "\\end{table}", ""]
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------------ figures
def make_gain_by_dataset_figure(rows, *, noise=None):
    """The paper's Figure 2 as a Figure: gain over round 0 vs noise rate, one panel per dataset.

    Grouped bars per rate: rounds 1..R (blues, darker = later) then the PLL students (oranges,
    hatched); height = mean over seeds (points), error bars = sample std over seeds; all panels
    share one y range. Baselines are left out (they are in the tables). ``noise``: the noise
    kind to draw (default: the first). None when no model but round 0 (nothing to compare).
    """
    rows = [r for r in rows if r.get("kind", "round" if _round_index(r["model"]) is not None else "pll") != "baseline"]
    if not rows:
        raise ValueError("rows must hold at least one round or PLL row, got none")
    noise = noise or rows[0]["noise"]
    rows = [r for r in rows if r["noise"] == noise]
    models = [m for m in model_order(rows) if m != "round 0"]
    if not models:
        return None
    rounds = [m for m in models if _round_index(m) is not None]
    plls = [m for m in models if _round_index(m) is None]
    blues = colormap("Blues")(np.linspace(0.4, 0.95, max(len(rounds), 1)))
    warm = colormap("Oranges")(np.linspace(0.55, 0.9, max(len(plls), 1)))
    colors = {m: blues[i] for i, m in enumerate(rounds)} | {m: warm[i] for i, m in enumerate(plls)}
    datasets = _order(r["dataset"] for r in rows)
    ncol = min(3, len(datasets))
    nrow = int(math.ceil(len(datasets) / ncol))
    fig, axes = new_figure(nrow, ncol, figsize=(5.0 * ncol, 3.6 * nrow), sharey=True)
    stats = _stats(rows, "gain")
    for i, ds in enumerate(datasets):
        ax = axes[i // ncol][i % ncol]
        by_rate = stats[(ds, noise)]
        rates = list(by_rate)
        x = np.arange(len(rates))
        width = 0.8 / len(models)
        for j, m in enumerate(models):
            mean = np.array([_nan(by_rate[r].get(m, (None,))[0]) for r in rates]) * 100
            std = np.array([_nan(by_rate[r].get(m, (None, None))[1]) for r in rates]) * 100
            ax.bar(x - 0.4 + width * (j + 0.5), mean, width, color=colors[m], edgecolor="black", linewidth=0.4,
                   yerr=None if np.all(np.isnan(std)) else np.nan_to_num(std), capsize=2, label=m,
                   hatch="//" if m in plls else "", error_kw={"elinewidth": 0.7})
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xticks(x)
        ax.set_xticklabels([f"{r:g}" for r in rates])
        ax.set_xlabel("noise rate")
        ax.set_title(ds)
        ax.grid(axis="y", alpha=0.3)
        if i % ncol == 0:
            ax.set_ylabel("gain over round 0 (points)")
    for k in range(len(datasets), nrow * ncol):
        axes[k // ncol][k % ncol].axis("off")
    axes[0][ncol - 1].legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), title="model")
    n_seeds = len({r["seed"] for r in rows})
    fig.suptitle(f"Distillation gain vs noise rate\n({noise} noise; mean ± std over {seeds_text(n_seeds)})",
                 fontsize="medium")
    return fig


def plot_gain_by_dataset(rows, path, *, noise=None, dpi=110):
    """Write :func:`make_gain_by_dataset_figure` to ``path``; returns ``path``, or None (nothing written)
    when there is no model but round 0."""
    fig = make_gain_by_dataset_figure(rows, noise=noise)
    return None if fig is None else save_figure(fig, path, dpi=dpi)


def make_metric_vs_round_figure(rows, *, key="test_acc", ylabel="test accuracy (%)", title="Test accuracy by round"):
    """``key`` (x 100) vs round as a Figure: a row of panels per dataset (sharing a y range), a panel
    per noise kind, a line per rate.

    Rounds 0..R are joined by lines (band: ± sample std over seeds); the other models (PLL
    students, baselines) are markers to the right of round R, each rate's marker dodged
    sideways. A rate has the colour :func:`rate_colors` gives it among all the rates of
    ``rows``, so it matches across figures even where ``key`` is None at some rates (e.g.
    ``corrected`` at rate 0). Models whose ``key`` is None everywhere are skipped.
    """
    from matplotlib.lines import Line2D

    rows = list(rows)
    color = rate_colors(r["rate"] for r in rows)
    offset = dict(zip(color, dodge(len(color))))
    rows = [r for r in rows if r.get(key) is not None]
    if not rows:
        raise ValueError(f"rows hold no value of {key!r}")
    models = model_order(rows)
    rounds = [m for m in models if _round_index(m) is not None]
    others = [m for m in models if _round_index(m) is None]
    datasets = _order(r["dataset"] for r in rows)
    noises = _order(r["noise"] for r in rows)
    stats = _stats(rows, key)
    fig, axes = new_figure(len(datasets), len(noises), figsize=(5.4 * len(noises), 3.6 * len(datasets)),
                           sharey="row")
    xr = np.array([_round_index(m) for m in rounds], dtype=float)
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
    fig.suptitle(f"{title}\n(rounds 0..R; other models at the right; mean ± std over {seeds_text(n_seeds)})",
                 fontsize="medium")
    return fig


def plot_metric_vs_round(rows, path, *, key="test_acc", ylabel="test accuracy (%)", title="Test accuracy by round",
                         dpi=110):
    """Write :func:`make_metric_vs_round_figure` to ``path``; returns ``path``."""
    return save_figure(make_metric_vs_round_figure(rows, key=key, ylabel=ylabel, title=title), path, dpi=dpi)


def make_coverage_vs_rate_figure(rows, *, top_k=None):
    """The teacher (round 0) on its training points vs noise rate, as a Figure.

    Per dataset and noise kind one colour and two lines, each named in the legend: solid = share
    of training points whose true label is among the teacher's top-k labels (band: ± std over
    seeds); dotted = the teacher's top-1 training accuracy against the true labels. k is the
    rows' ``top_k`` (or ``top_k=``; "k" when unknown).
    """
    rows = [r for r in rows if r["model"] == "round 0" and r.get("topk_coverage") is not None]
    if not rows:
        raise ValueError("rows hold no teacher (round 0) top-k coverage")
    ks = sorted({int(r["top_k"]) for r in rows if r.get("top_k") is not None}) or ([int(top_k)] if top_k else [])
    k = "/".join(map(str, ks)) or "k"
    fig, axes = new_figure(figsize=(6.6, 4.2))
    ax = axes[0][0]
    stats = _stats(rows, "topk_coverage")
    acc = _stats(rows, "train_acc")
    for (ds, noise), by_rate in stats.items():
        rates = list(by_rate)
        mean = np.array([_nan(by_rate[r]["round 0"][0]) for r in rates]) * 100
        std = np.array([_nan(by_rate[r]["round 0"][1]) for r in rates]) * 100
        line, = ax.plot(rates, mean, "-o", markersize=4, label=f"{ds}, {noise}: true label in the top-{k}")
        if not np.all(np.isnan(std)):
            ax.fill_between(rates, mean - std, mean + std, color=line.get_color(), alpha=0.15, linewidth=0)
        top1 = np.array([_nan(acc[(ds, noise)][r]["round 0"][0]) for r in rates]) * 100
        ax.plot(rates, top1, ":", color=line.get_color(), label=f"{ds}, {noise}: top-1 is the true label")
    ax.set_xlabel("noise rate")
    ax.set_ylabel("share of the training points (%)")
    n_seeds = len({r["seed"] for r in rows})
    ax.set_title(f"Teacher (round 0) on its training points: true label in its top-{k} (solid)\n"
                 f"or its top-1 (dotted); mean ± std over {seeds_text(n_seeds)}", fontsize="medium")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="x-small")
    return fig


def plot_coverage_vs_rate(rows, path, *, top_k=None, dpi=110):
    """Write :func:`make_coverage_vs_rate_figure` to ``path``; returns ``path``."""
    return save_figure(make_coverage_vs_rate_figure(rows, top_k=top_k), path, dpi=dpi)


# ------------------------------------------------------------------------------------ all of it
def write_report(rows, output_dir, *, title="results", config=None) -> dict:
    """Write every figure and table of ``rows`` to ``output_dir`` (created).

    Parameters
    ----------
    rows : the result rows (one dict per task and model, e.g. ``ResultStore.rows()``).
    output_dir : the report folder.
    title : shown in the headings (e.g. the database's file name).
    config : the experiment config as a dict (its ``top_k`` labels the coverage figure; the HTML
        page shows it), or None.

    Returns
    -------
    dict {name: path} of the files written.
    """
    from .html import render_html

    rows = list(rows)
    if not rows:
        raise ValueError("rows must hold at least one finished task, got none: run 'selfdistill sweep' first")
    meta_config = config
    out = ensure_output_dir(output_dir, name="--output")
    files = {}
    for noise in _order(r["noise"] for r in rows):
        gain = plot_gain_by_dataset(rows, out / f"gain_vs_rate_{noise}.png", noise=noise)
        if gain is not None:  # None: only round 0, no gain to draw
            files[f"gain_{noise}"] = gain
    files["accuracy"] = plot_metric_vs_round(rows, out / "accuracy_vs_round.png")
    if any(r.get("corrected") is not None for r in rows):
        files["correction"] = plot_metric_vs_round(
            rows, out / "correction_vs_round.png", key="corrected",
            ylabel="wrong labels corrected (%)", title="Label-correction rate by round")
    if any(r["model"] == "round 0" and r.get("topk_coverage") is not None for r in rows):
        files["coverage"] = plot_coverage_vs_rate(rows, out / "coverage_vs_rate.png",
                                                  top_k=(meta_config or {}).get("top_k"))
    md = markdown_tables(rows)
    atomic_write_text(out / "results.md", f"# selfdistill report: {title}\n\n" + md)
    files["markdown"] = out / "results.md"
    atomic_write_text(out / "results.tex", latex_tables(rows))
    files["latex"] = out / "results.tex"
    write_results_csv(out / "results.csv", rows)
    files["csv"] = out / "results.csv"
    figures = [(p, _caption(name)) for name, p in files.items() if str(p).endswith(".png")]
    html = render_html(f"selfdistill report: {title}", rows=rows, tables=accuracy_tables(rows),
                       gain_tables=gain_tables(rows), figures=figures, config=meta_config)
    atomic_write_text(out / "report.html", html)
    files["html"] = out / "report.html"
    return files


def _caption(name):
    if name.startswith("gain_"):
        return (f"Distillation gain over round 0 vs noise rate ({name[5:]} noise), one panel per dataset: rounds 1..R "
                "and the PLL students; error bars: sample std over seeds (the paper's Figure 2).")
    return {
        "accuracy": "Test accuracy by round; PLL students and baselines at the right of each panel.",
        "correction": "Label-correction rate: the share of wrongly labelled training points that the model "
                      "classifies correctly, by round.",
        "coverage": "Teacher top-k coverage of the true label on the training points (solid) and its top-1 "
                    "accuracy (dotted), vs noise rate: where the PLL student can help.",
    }.get(name, name)
