"""Markdown tables of the main job's rows (nothing is recomputed: rows in, text out).

Rows are dicts with at least ``noise``, ``rate``, ``seed``, ``model``, ``test_acc`` and ``gain``
(as written by :func:`selfdistill.experiments.run_main_job` or read back with
:func:`selfdistill.experiments.read_results_csv`).

Cells are ``mean ± std`` over seeds in percent; std is the sample standard deviation
(``ddof=1``); with a single seed only the mean is shown.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from ..models import TEACHER, round_index

__all__ = ["summary_table", "aggregate", "grouped_stats", "unique_in_order", "model_order", "noise_order",
           "mean_std", "seeds_text"]


def model_order(rows: Iterable[Mapping[str, Any]]) -> list:
    """Return the model names in display order: rounds by number, then the PLL students as first seen.

    Parameters
    ----------
    rows : iterable of dict
        Result rows; only their ``"model"`` is read.

    Returns
    -------
    list of str
        "round 0", "round 1", ... sorted by number, then the other models (PLL students,
        baselines) in order of first appearance.

    Examples
    --------
    >>> model_order([{"model": "pll-gce"}, {"model": "round 10"}, {"model": "round 2"}])
    ['round 2', 'round 10', 'pll-gce']
    """
    seen = []
    for r in rows:
        if r["model"] not in seen:
            seen.append(r["model"])
    rounds = {m: t for m in seen if (t := round_index(m)) is not None}
    return sorted(rounds, key=rounds.__getitem__) + [m for m in seen if m not in rounds]


def noise_order(rows: Iterable[Mapping[str, Any]]) -> list:
    """Return the noise kinds of the rows in order of first appearance.

    Parameters
    ----------
    rows : iterable of dict
        Result rows; only their ``"noise"`` is read.

    Returns
    -------
    list of str
        The distinct noise kinds.

    Examples
    --------
    >>> noise_order([{"noise": "pairflip"}, {"noise": "symmetric"}, {"noise": "pairflip"}])
    ['pairflip', 'symmetric']
    """
    seen = []
    for r in rows:
        if r["noise"] not in seen:
            seen.append(r["noise"])
    return seen


def seeds_text(n: int) -> str:
    """Return "1 seed" or "<n> seeds", for captions and titles.

    Parameters
    ----------
    n : int
        Number of seeds.

    Returns
    -------
    str
        The count with the noun in the right number.

    Examples
    --------
    >>> seeds_text(1), seeds_text(3)
    ('1 seed', '3 seeds')
    """
    return f"{n} seed" if n == 1 else f"{n} seeds"


def mean_std(values: Iterable[Any]) -> tuple[float | None, float | None, int]:
    """Return the mean, the sample standard deviation and the count of the values present.

    None and NaN values are left out (a missing metric, e.g. ``corrected`` at rate 0).

    Parameters
    ----------
    values : iterable of float or None
        One value per seed.

    Returns
    -------
    mean : float or None
        Their mean; None when no value is present.
    std : float or None
        Their sample standard deviation (ddof=1); None for fewer than two values.
    count : int
        How many values are present.

    Examples
    --------
    >>> mean_std([0.25, 0.5, 0.75, None])
    (0.5, 0.25, 3)
    >>> mean_std([0.5])
    (0.5, None, 1)
    """
    vals = np.array([float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))])
    if vals.size == 0:
        return None, None, 0
    std = float(np.std(vals, ddof=1)) if vals.size > 1 else None
    return float(np.mean(vals)), std, int(vals.size)


def unique_in_order(values: Iterable[Any]) -> list:
    """Return the distinct values in order of first appearance.

    Parameters
    ----------
    values : iterable of hashable
        Any values.

    Returns
    -------
    list
        Each value once.

    Examples
    --------
    >>> unique_in_order(["b", "a", "b", "c"])
    ['b', 'a', 'c']
    """
    return list(dict.fromkeys(values))


def grouped_stats(rows: Iterable[Mapping[str, Any]], key: str) -> dict:
    """Aggregate ``key`` over seeds, per dataset, noise kind, rate and model.

    Parameters
    ----------
    rows : iterable of dict
        Result rows with ``dataset``, ``noise``, ``rate``, ``model`` and ``key``.
    key : str
        The metric, e.g. ``"test_acc"``, ``"gain"``, ``"corrected"``.

    Returns
    -------
    dict
        {(dataset, noise): {rate: {model: (mean, std, n_seeds)}}} (see :func:`mean_std`), rates
        sorted.

    Examples
    --------
    >>> rows = [dict(dataset="digits", noise="symmetric", rate=0.2, seed=s, model=m, test_acc=a, gain=a - 0.5)
    ...         for s, a1 in enumerate([0.5, 0.75, 1.0]) for m, a in (("round 0", 0.5), ("round 1", a1))]
    >>> grouped_stats(rows, "test_acc")
    {('digits', 'symmetric'): {0.2: {'round 0': (0.5, 0.0, 3), 'round 1': (0.75, 0.25, 3)}}}
    """
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["noise"]), {}).setdefault(float(r["rate"]), {}).setdefault(
            r["model"], []).append(r.get(key))
    return {g: {rate: {m: mean_std(v) for m, v in by_m.items()} for rate, by_m in sorted(by_rate.items())}
            for g, by_rate in groups.items()}


def aggregate(rows: Iterable[Mapping[str, Any]], key: str = "test_acc") -> dict:
    """Aggregate ``key`` over seeds, per noise kind, rate and model (one dataset's rows).

    Parameters
    ----------
    rows : iterable of dict
        Result rows with ``noise``, ``rate``, ``model`` and ``key``.
    key : str, default "test_acc"
        The metric.

    Returns
    -------
    dict
        {noise: {rate: {model: (mean, std, n_seeds)}}} (see :func:`mean_std`), rates sorted.

    Examples
    --------
    >>> rows = [dict(dataset="digits", noise="symmetric", rate=0.2, seed=s, model=m, test_acc=a, gain=a - 0.5)
    ...         for s, a1 in enumerate([0.5, 0.75, 1.0]) for m, a in (("round 0", 0.5), ("round 1", a1))]
    >>> aggregate(rows, "gain")
    {'symmetric': {0.2: {'round 0': (0.0, 0.0, 3), 'round 1': (0.25, 0.25, 3)}}}
    """
    groups: dict = {}
    for r in rows:
        groups.setdefault(r["noise"], {}).setdefault(float(r["rate"]), {}).setdefault(r["model"], []).append(r.get(key))
    return {
        noise: {rate: {m: mean_std(v) for m, v in by_model.items()} for rate, by_model in sorted(by_rate.items())}
        for noise, by_rate in groups.items()
    }


def _cell(stats, *, signed=False, digits=2, bold=False):
    mean, std, n = stats
    if mean is None:
        return "–"
    fmt = f"{{:{'+' if signed else ''}.{digits}f}}"
    text = fmt.format(100 * mean)
    if std is not None:
        text += f" ± {100 * std:.{digits}f}"
    return f"**{text}**" if bold else text


def _table(agg_noise, models, *, signed, digits, bold_best, extra=None):
    header = ["rate"] + models + (list(extra[0]) if extra else [])
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---:"] * len(header)) + "|"]
    for rate, by_model in agg_noise.items():
        means = [by_model[m][0] for m in models if m in by_model and by_model[m][0] is not None]
        best = max(means) if (bold_best and means) else None
        cells = []
        for m in models:
            stats = by_model.get(m, (None, None, 0))
            is_best = best is not None and stats[0] is not None and np.isclose(stats[0], best, rtol=0, atol=1e-12)
            cells.append(_cell(stats, signed=signed, digits=digits, bold=is_best))
        tail = list(extra[1](rate)) if extra else []
        lines.append("| " + " | ".join([f"{rate:g}"] + cells + tail) + " |")
    return "\n".join(lines)


def _fmt_reg(v):
    return f"{v:.0e}".replace("e-0", "e-").replace("e+0", "e+")


def summary_table(rows: Iterable[Mapping[str, Any]], *, digits: int = 2) -> str:
    """Write the Markdown summary of a run: per noise kind, test accuracy and gain over round 0.

    For each noise kind two tables, rows = noise rate, columns = models (round 0..R, then the
    PLL students):

    1. test accuracy, % -- cells ``mean ± std`` over seeds (sample std, ddof=1; the mean only
       with one seed); the best mean of each row in bold; a column with the reg values of the
       first model (round 0) over the seeds (every model's reg is in results.csv) and the
       realised noise rate;
    2. gain over round 0, percentage points (``test_acc`` minus the same seed's round 0), signed.

    Parameters
    ----------
    rows : iterable of dict
        Result rows with ``dataset``, ``noise``, ``rate``, ``seed``, ``model``, ``test_acc``,
        ``gain`` and optionally ``reg`` and ``realised_rate``.
    digits : int, default 2, keyword-only
        Decimals of the percentages.

    Returns
    -------
    str
        The Markdown text ("No results." for no rows).

    Examples
    --------
    >>> rows = [dict(dataset="digits", noise="symmetric", rate=0.2, seed=s, model=m, test_acc=a, gain=a - 0.5)
    ...         for s, a1 in enumerate([0.5, 0.75, 1.0]) for m, a in (("round 0", 0.5), ("round 1", a1))]
    >>> print(summary_table(rows))
    # selfdistill run: digits
    <BLANKLINE>
    Test accuracy (%) and gain over round 0 (percentage points):
    mean ± std over 3 seeds [0, 1, 2] (sample std over seeds). Bold: best mean in the row.
    <BLANKLINE>
    ## noise: symmetric
    <BLANKLINE>
    Test accuracy (%):
    <BLANKLINE>
    | rate | round 0 | round 1 | reg (round 0) | realised |
    |---:|---:|---:|---:|---:|
    | 0.2 | 50.00 ± 0.00 | **75.00 ± 25.00** | – | – |
    <BLANKLINE>
    Gain over round 0 (percentage points):
    <BLANKLINE>
    | rate | round 1 |
    |---:|---:|
    | 0.2 | +25.00 ± 25.00 |
    <BLANKLINE>
    """
    rows = list(rows)
    if not rows:
        return "No results.\n"
    models = model_order(rows)
    acc = aggregate(rows, "test_acc")
    gain = aggregate(rows, "gain")
    seeds = sorted({r["seed"] for r in rows})
    datasets = sorted({str(r.get("dataset", "?")) for r in rows})
    gain_models = [m for m in models if m != TEACHER.name]

    std_note = "sample std over seeds" if len(seeds) > 1 else "one seed, no std"
    out = [
        f"# selfdistill run: {', '.join(datasets)}",
        "",
        f"Test accuracy (%) and gain over round 0 (percentage points): mean ± std over "
        f"{seeds_text(len(seeds))} {seeds} ({std_note}). Bold: best mean in the row.",
    ]

    def extra_for(noise):
        def cols(rate):
            sel = [r for r in rows if r["noise"] == noise and float(r["rate"]) == rate and r["model"] == models[0]]
            regs = sorted({float(r["reg"]) for r in sel if r.get("reg") is not None})
            real = mean_std([r.get("realised_rate") for r in sel])[0]
            return ["/".join(_fmt_reg(v) for v in regs) or "–", "–" if real is None else f"{real:.3f}"]

        return ((f"reg ({models[0]})", "realised"), cols)

    for noise in noise_order(rows):
        out += ["", f"## noise: {noise}", "", "Test accuracy (%):", ""]
        out.append(_table(acc[noise], models, signed=False, digits=digits, bold_best=True, extra=extra_for(noise)))
        if gain_models:
            out += ["", "Gain over round 0 (percentage points):", ""]
            out.append(_table(gain[noise], gain_models, signed=True, digits=digits, bold_best=False))
    return "\n".join(out) + "\n"
