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

Rows of one dataset stored with different settings (several ``config_hash`` values: a sweep
database that configs with other rounds, reg, ... wrote into) are never averaged together: each
config's rows are drawn apart, their dataset labelled with the settings that differ
(``blk [rounds=1]``, :func:`label_configs`), and ``results.md`` opens with a notice saying so
(:func:`config_notice`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .._io import atomic_write_text, safe_name, staged_dir
from ..models import TEACHER
from .figures import plot_coverage_vs_rate, plot_gain_vs_rate, plot_metric_vs_round
from .rows import write_results_csv
from .tables import grouped_stats, model_order, seeds_text, unique_in_order

__all__ = [
    "write_report",
    "label_test_selected",
    "accuracy_tables",
    "gain_tables",
    "markdown_tables",
    "latex_tables",
    "label_configs",
    "config_notice",
]



def accuracy_tables(rows: Iterable[Mapping[str, Any]], key: str = "test_acc") -> list:
    """Aggregate ``key`` over seeds into one table per dataset and noise kind, for rendering.

    Parameters
    ----------
    rows : iterable of dict
        Result rows with ``dataset``, ``noise``, ``rate``, ``seed``, ``model`` and ``key``.
    key : str, default "test_acc"
        The metric.

    Returns
    -------
    list of tuple
        ``[(dataset, noise, models, lines)]`` with ``models`` the columns (models present for
        that dataset and noise, in :func:`~selfdistill.report.tables.model_order`) and
        ``lines = [(rate, cells, bold)]``: ``cells`` one ``(mean, std, n_seeds)`` per model,
        ``bold`` the set of column indices holding the row's best mean.

    Examples
    --------
    >>> rows = [dict(dataset="digits", noise="symmetric", rate=0.2, seed=s, model=m, test_acc=a, gain=a - 0.5)
    ...         for s, a1 in enumerate([0.5, 0.75, 1.0]) for m, a in (("round 0", 0.5), ("round 1", a1))]
    >>> accuracy_tables(rows)
    [('digits', 'symmetric', ['round 0', 'round 1'], [(0.2, [(0.5, 0.0, 3), (0.75, 0.25, 3)], {1})])]
    """
    rows = list(rows)
    models = model_order(rows)
    stats = grouped_stats(rows, key)
    out = []
    for ds in unique_in_order(r["dataset"] for r in rows):
        for noise in unique_in_order(r["noise"] for r in rows if r["dataset"] == ds):
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


def gain_tables(rows: Iterable[Mapping[str, Any]]) -> list:
    """Aggregate the gain over round 0 like :func:`accuracy_tables`, without the round 0 column and bold.

    Parameters
    ----------
    rows : iterable of dict
        Result rows with ``gain`` (test accuracy minus the same seed's round 0).

    Returns
    -------
    list of tuple
        ``[(dataset, noise, models, lines)]`` as :func:`accuracy_tables`, every ``bold`` empty;
        a dataset and noise kind with no model but round 0 is left out.

    Examples
    --------
    >>> rows = [dict(dataset="digits", noise="symmetric", rate=0.2, seed=s, model=m, test_acc=a, gain=a - 0.5)
    ...         for s, a1 in enumerate([0.5, 0.75, 1.0]) for m, a in (("round 0", 0.5), ("round 1", a1))]
    >>> gain_tables(rows)
    [('digits', 'symmetric', ['round 1'], [(0.2, [(0.25, 0.25, 3)], set())])]
    """
    out: list = []
    for ds, noise, models, lines in accuracy_tables(rows, "gain"):
        keep = [i for i, m in enumerate(models) if m != TEACHER.name]
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


def markdown_tables(rows: Iterable[Mapping[str, Any]], *, digits: int = 1) -> str:
    """Write the Markdown tables of a report: per dataset and noise kind, test accuracy and gain.

    Cells are ``mean ± std`` over seeds in percent (sample std; the mean only with one seed); the
    best mean of each row of the accuracy table in bold.

    Parameters
    ----------
    rows : iterable of dict
        Result rows.
    digits : int, default 1, keyword-only
        Decimals of the percentages.

    Returns
    -------
    str
        The Markdown text ("No results." for no rows).

    Examples
    --------
    >>> rows = [dict(dataset="digits", noise="symmetric", rate=0.2, seed=s, model=m, test_acc=a, gain=a - 0.5)
    ...         for s, a1 in enumerate([0.5, 0.75, 1.0]) for m, a in (("round 0", 0.5), ("round 1", a1))]
    >>> print(markdown_tables(rows))
    Test accuracy (%), mean ± std over 3 seeds [0, 1, 2]; **bold**: best mean in the row.
    Gain: test accuracy minus round 0 of the same seed (percentage points).
    <BLANKLINE>
    ### digits — noise: symmetric
    <BLANKLINE>
    | rate | round 0 | round 1 |
    |---:|---:|---:|
    | 0.2 | 50.0 ± 0.0 | **75.0 ± 25.0** |
    <BLANKLINE>
    Gain over round 0 (digits, symmetric), points:
    <BLANKLINE>
    | rate | round 1 |
    |---:|---:|
    | 0.2 | +25.0 ± 25.0 |
    <BLANKLINE>
    """
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


def latex_tables(rows: Iterable[Mapping[str, Any]], *, digits: int = 1) -> str:
    r"""Write the LaTeX (booktabs) test-accuracy tables: one per dataset and noise kind.

    Cells are ``$mean \pm std$`` over seeds in percent; the best mean of each row in
    ``\mathbf``; names are escaped for LaTeX.

    Parameters
    ----------
    rows : iterable of dict
        Result rows.
    digits : int, default 1, keyword-only
        Decimals of the percentages.

    Returns
    -------
    str
        The LaTeX text (needs ``\usepackage{booktabs}``).

    Examples
    --------
    >>> rows = [dict(dataset="digits", noise="symmetric", rate=0.2, seed=s, model=m, test_acc=a, gain=a - 0.5)
    ...         for s, a1 in enumerate([0.5, 0.75, 1.0]) for m, a in (("round 0", 0.5), ("round 1", a1))]
    >>> tex = latex_tables(rows)
    >>> print(tex.splitlines()[9])
    0.2 & $50.0 \pm 0.0$ & $\mathbf{75.0} \pm 25.0$ \\
    """
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


# ------------------------------------------------------------------------------------ all of it
#: The suffix of a dataset whose protocol chose checkpoints or accuracies on test labels.
TEST_SELECTED = " [selected on TEST labels]"


def label_test_selected(rows: Iterable[Mapping[str, Any]], config: Mapping[str, Any] | None) -> list:
    """``rows`` with every dataset whose table chose on test labels (``recipe_select =
    "best-test"``: the authors' published protocol) renamed ``<name> [selected on TEST labels]``,
    so every table, figure and CSV of the report says so.

    Parameters
    ----------
    rows : iterable of dict
        Result rows.
    config : dict or None
        The stored experiment config (``ExperimentConfig.to_dict()``).

    Returns
    -------
    list of dict
        The rows (copies where renamed).

    Examples
    --------
    >>> cfg = {"datasets": [{"name": "a"}, {"name": "b", "trainer": "sgd-recipe", "recipe_select": "best-test"}]}
    >>> [r["dataset"] for r in label_test_selected([{"dataset": "a"}, {"dataset": "b"}], cfg)]
    ['a', 'b [selected on TEST labels]']
    """
    marked = {d["name"] for d in (config or {}).get("datasets", []) if d.get("recipe_select") == "best-test"}
    return [dict(r, dataset=r["dataset"] + TEST_SELECTED) if r["dataset"] in marked else r for r in rows]


#: The row columns that stand for a task's settings when the stored settings are not given.
_ROW_SETTINGS = ("rounds", "top_k", "exact_noise", "reg_rule")


def _configs_of(rows, settings):
    """{dataset: (hashes, differences)} of each dataset whose rows come from several config hashes:
    ``differences`` is :func:`selfdistill._io.settings_differences` of their settings
    (``settings[hash]``, else the first row's :data:`_ROW_SETTINGS`)."""
    from .._io import settings_differences

    first: dict = {}
    for r in rows:
        if r.get("config_hash") is not None:
            first.setdefault(r["dataset"], {}).setdefault(r["config_hash"], r)
    out = {}
    for ds, by_hash in first.items():
        if len(by_hash) > 1:
            each = [(settings or {}).get(h) or {k: r.get(k) for k in _ROW_SETTINGS} for h, r in by_hash.items()]
            diffs = settings_differences(each)
            diffs.pop("dataset", None)
            out[ds] = (list(by_hash), diffs)
    return out


def _config_labels(rows, settings) -> dict:
    """{(dataset, config_hash): '<dataset> [<settings that differ>]'} for the datasets of several configs
    (the hash's first 8 digits where no setting tells them apart)."""
    labels = {}
    for ds, (hashes, diffs) in _configs_of(rows, settings).items():
        texts = [", ".join(f"{k}={v[i]}" for k, v in diffs.items()) for i in range(len(hashes))]
        if not all(texts) or len(set(texts)) < len(texts):
            texts = [f"{t}, config {h[:8]}" if t else f"config {h[:8]}" for t, h in zip(texts, hashes, strict=True)]
        labels.update({(ds, h): f"{ds} [{t}]" for h, t in zip(hashes, texts, strict=True)})
    return labels


def label_configs(rows: Iterable[Mapping[str, Any]],
                  settings: Mapping[str, Mapping[str, Any]] | None = None) -> list:
    """``rows`` with each dataset whose rows come from several configs (``config_hash`` values)
    renamed per config, ``<name> [<settings that differ>]``, so no table, figure or CSV line
    averages rows of different settings together.

    Parameters
    ----------
    rows : iterable of dict
        Result rows; rows without ``config_hash`` count as one config.
    settings : dict or None, default None
        ``{config_hash: settings}`` (:meth:`~selfdistill.experiments.store.ResultStore.config_settings`);
        None: the rows' own ``rounds``, ``top_k``, ``exact_noise`` and ``reg_rule``.

    Returns
    -------
    list of dict
        The rows (copies where renamed); unchanged when every dataset has one config.

    Examples
    --------
    >>> rows = [{"dataset": "blk", "config_hash": h, "rounds": n, "model": "round 0"}
    ...         for h, n in (("a1", 1), ("b2", 2))]
    >>> [r["dataset"] for r in label_configs(rows)]
    ['blk [rounds=1]', 'blk [rounds=2]']
    >>> [r["dataset"] for r in label_configs(rows, {"a1": {"reg": 0.01}, "b2": {"reg": 0.001}})]
    ['blk [reg=0.01]', 'blk [reg=0.001]']
    """
    rows = list(rows)
    labels = _config_labels(rows, settings)
    if not labels:
        return rows
    return [dict(r, dataset=labels[(r["dataset"], r.get("config_hash"))]) if (r["dataset"], r.get("config_hash"))
            in labels else r for r in rows]


def config_notice(rows: Iterable[Mapping[str, Any]],
                  settings: Mapping[str, Mapping[str, Any]] | None = None) -> str | None:
    """The notice of a report whose rows of one dataset come from several configs, or None.

    Parameters
    ----------
    rows : iterable of dict
        Result rows (before :func:`label_configs`).
    settings : dict or None, default None
        As for :func:`label_configs`.

    Returns
    -------
    str or None
        One sentence per such dataset: how many configs, the settings that differ and the labels
        their rows are drawn under; None when every dataset has one config.

    Examples
    --------
    >>> rows = [{"dataset": "blk", "config_hash": h, "rounds": n, "model": "round 0"}
    ...         for h, n in (("a1", 1), ("b2", 2))]
    >>> print(config_notice(rows))  # doctest: +NORMALIZE_WHITESPACE
    these results come from more than one config, drawn apart (never averaged together):
    blk: 2 configs, differing in rounds, drawn as 'blk [rounds=1]', 'blk [rounds=2]'.
    """
    rows = list(rows)
    labels = _config_labels(rows, settings)
    parts = []
    for ds, (hashes, diffs) in _configs_of(rows, settings).items():
        differ = ", ".join(diffs) or "settings hash only"
        drawn = ", ".join(repr(labels[(ds, h)]) for h in hashes)
        parts.append(f"{ds}: {len(hashes)} configs, differing in {differ}, drawn as {drawn}")
    if not parts:
        return None
    return "these results come from more than one config, drawn apart (never averaged together): " + \
        "; ".join(parts) + "."


def write_report(
    rows: Iterable[Mapping[str, Any]],
    output_dir: str | os.PathLike[str],
    *,
    title: str = "results",
    config: Mapping[str, Any] | None = None,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict:
    """Write every figure and table of ``rows`` to ``output_dir`` (created).

    The files (see the module docstring) are made in a temporary folder and moved in only when
    all of them are written: a failed report leaves ``output_dir`` as it was.

    Parameters
    ----------
    rows : iterable of dict
        The result rows (one dict per task and model, e.g. ``ResultStore.rows()``).
    output_dir : str or os.PathLike
        The report folder.
    title : str, default "results", keyword-only
        Shown in the headings (e.g. the database's file name).
    config : dict, optional, keyword-only
        The experiment config (its ``top_k`` labels the coverage figure; the HTML page shows
        it), or None.
    settings : dict, optional, keyword-only
        ``{config_hash: settings}`` of the rows
        (:meth:`~selfdistill.experiments.store.ResultStore.config_settings`): the labels of rows
        of several configs (:func:`label_configs`); None: from the rows' own settings columns.

    Returns
    -------
    dict of str to pathlib.Path
        {name: path} of the files written.

    Raises
    ------
    ValueError
        No rows; ``output_dir`` is a file.

    Examples
    --------
    >>> import os, tempfile
    >>> rows = [dict(dataset="digits", noise="symmetric", rate=0.2, seed=s, model=m, test_acc=a, gain=a - 0.5)
    ...         for s, a1 in enumerate([0.5, 0.75, 1.0]) for m, a in (("round 0", 0.5), ("round 1", a1))]
    >>> tmp = tempfile.TemporaryDirectory()
    >>> files = write_report(rows, os.path.join(tmp.name, "report"))
    >>> sorted(p.name for p in files.values())
    ['accuracy_vs_round.png', 'gain_vs_rate_symmetric.png', 'report.html', 'results.csv', 'results.md', 'results.tex']
    >>> tmp.cleanup()
    """
    rows = label_test_selected(rows, config)
    if not rows:
        raise ValueError("rows must hold at least one finished task, got none: run 'selfdistill sweep' first")
    notice = config_notice(rows, settings)
    rows = label_configs(rows, settings)  # one config per table: rows of other settings drawn apart
    final = Path(output_dir)
    with staged_dir(final, name="--output") as out:  # nothing appears in output_dir unless all succeeds
        files = _write_report_files(rows, out, title, config, notice)
    return {k: final / p.name for k, p in files.items()}


def _write_report_files(rows, out, title, config, notice=None) -> dict:
    from .html import render_html

    files = {}
    for noise in unique_in_order(r["noise"] for r in rows):
        gain = plot_gain_vs_rate(rows, out / f"gain_vs_rate_{safe_name(noise)}.png", noise=noise)
        if gain is not None:  # None: only round 0, no gain to draw
            files[f"gain_{noise}"] = gain
    files["accuracy"] = plot_metric_vs_round(rows, out / "accuracy_vs_round.png")
    if any(r.get("corrected") is not None for r in rows):
        files["correction"] = plot_metric_vs_round(
            rows, out / "correction_vs_round.png", key="corrected",
            ylabel="wrong labels corrected (%)", title="Label-correction rate by round")
    if any(r["model"] == TEACHER.name and r.get("topk_coverage") is not None for r in rows):
        files["coverage"] = plot_coverage_vs_rate(rows, out / "coverage_vs_rate.png",
                                                  top_k=(config or {}).get("top_k"))
    files["markdown"], files["latex"], files["csv"] = out / "results.md", out / "results.tex", out / "results.csv"
    head = f"# selfdistill report: {title}\n\n" + (f"**Note:** {notice}\n\n" if notice else "")
    atomic_write_text(files["markdown"], head + markdown_tables(rows))
    atomic_write_text(files["latex"], latex_tables(rows))
    write_results_csv(files["csv"], rows)
    figures = [(p, _caption(name)) for name, p in files.items() if str(p).endswith(".png")]
    html = render_html(f"selfdistill report: {title}", rows=rows, tables=accuracy_tables(rows),
                       gain_tables=gain_tables(rows), figures=figures, config=config)
    files["html"] = out / "report.html"
    atomic_write_text(files["html"], html)
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
