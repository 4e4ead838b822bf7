"""One self-contained HTML page: tables and figures (PNG embedded as base64), no external files."""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["render_html", "embed_png"]

_CSS = """
body { font-family: system-ui, -apple-system, Segoe UI, Roboto, sans-serif; margin: 2em auto; max-width: 1200px;
       color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
h3 { font-size: 1.05em; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; } td.best { font-weight: bold; background: #eef6ee; }
figure { margin: 1em 0 2em; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #555; } pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; }
"""


def embed_png(path: str | os.PathLike[str]) -> str:
    r"""Return a ``data:image/png;base64,...`` URI of the PNG file ``path``, to embed in a page.

    Parameters
    ----------
    path : str or os.PathLike
        A PNG file (its bytes are encoded as they are).

    Returns
    -------
    str
        The data URI.

    Examples
    --------
    >>> import os, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> p = os.path.join(tmp.name, "f.png")
    >>> _ = open(p, "wb").write(b"\x89PNG")
    >>> embed_png(p)
    'data:image/png;base64,iVBORw=='
    >>> tmp.cleanup()
    """
    data = Path(path).read_bytes()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _fmt(stats, signed=False):
    mean, std, _ = stats
    if mean is None:
        return "–"
    return f"{100 * mean:{'+' if signed else ''}.1f}" + ("" if std is None else f" ± {100 * std:.1f}")


def _table(models, lines, *, signed=False):
    e = html.escape
    parts = ["<table><thead><tr><th>rate</th>" + "".join(f"<th>{e(m)}</th>" for m in models) + "</tr></thead><tbody>"]
    for rate, cells, bold in lines:
        parts.append(f"<tr><td>{rate:g}</td>" + "".join(
            f"<td class='best'>{e(_fmt(c, signed))}</td>" if i in bold else f"<td>{e(_fmt(c, signed))}</td>"
            for i, c in enumerate(cells)) + "</tr>")
    parts.append("</tbody></table>")
    return "".join(parts)


def render_html(
    title: str,
    *,
    rows: Sequence[Mapping[str, Any]],
    tables: Iterable[tuple],
    figures: Iterable[tuple[Any, str]],
    config: Mapping[str, Any] | None = None,
    gain_tables: Iterable[tuple] = (),
) -> str:
    """Render the report as one self-contained HTML page.

    The page: a summary, per dataset and noise kind the accuracy table (best per row in bold) and
    the gain table (as in results.md), the figures (embedded, :func:`embed_png`), the config.
    Every text from the data is HTML-escaped.

    Parameters
    ----------
    title : str
        Page title and heading.
    rows : sequence of dict, keyword-only
        The result rows (for the summary: tasks, datasets, seeds).
    tables : iterable of tuple, keyword-only
        :func:`selfdistill.report.sweep_report.accuracy_tables` output.
    figures : iterable of (path, str), keyword-only
        PNG files and their captions.
    config : dict, optional, keyword-only
        The sweep config, shown as JSON; None leaves the section out.
    gain_tables : iterable of tuple, default (), keyword-only
        :func:`selfdistill.report.sweep_report.gain_tables` output (signed points).

    Returns
    -------
    str
        The HTML text.

    Examples
    --------
    >>> from selfdistill.report.sweep_report import accuracy_tables
    >>> rows = [dict(dataset="digits", noise="symmetric", rate=0.2, seed=s, model=m, test_acc=a, gain=a - 0.5)
    ...         for s, a1 in enumerate([0.5, 0.75, 1.0]) for m, a in (("round 0", 0.5), ("round 1", a1))]
    >>> page = render_html("demo", rows=rows, tables=accuracy_tables(rows), figures=[])
    >>> page.startswith("<!DOCTYPE html>"), "<td class='best'>75.0 ± 25.0</td>" in page
    (True, True)
    """
    e = html.escape
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    seeds = sorted({r["seed"] for r in rows})
    n_tasks = len({(r["dataset"], r["noise"], r["rate"], r["seed"]) for r in rows})
    parts = [
        "<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>",
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(title)}</h1>",
        f"<p>{n_tasks} tasks; datasets: {e(', '.join(datasets))}; seeds: {e(str(seeds))}. Test accuracy in %, "
        "mean ± sample std over seeds; bold: the best mean in its row. Generated "
        f"{e(_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds'))} by selfdistill.</p>",
        "<h2>Tables</h2>",
    ]
    gains = {(ds, noise): (models, lines) for ds, noise, models, lines in gain_tables}
    for ds, noise, models, lines in tables:
        parts.append(f"<h3>{e(ds)} — noise: {e(noise)}</h3>" + _table(models, lines))
        if (ds, noise) in gains:
            parts.append(f"<p>Gain over round 0 ({e(ds)}, {e(noise)}), points: test accuracy minus round 0 of "
                         "the same seed.</p>" + _table(*gains[(ds, noise)], signed=True))
    parts.append("<h2>Figures</h2>")
    for path, caption in figures:
        parts.append(f"<figure><img alt='{e(Path(path).stem)}' src='{embed_png(path)}'>"
                     f"<figcaption>{e(caption)}</figcaption></figure>")
    if config is not None:
        parts.append("<h2>Sweep config</h2><pre>" + e(json.dumps(config, indent=2, sort_keys=True)) + "</pre>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
