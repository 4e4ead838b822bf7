"""Result rows as CSV: the one writer (and reader) of ``results.csv``, for ``run`` and ``report``.

A row is one dict per task and model (:meth:`selfdistill.experiments.store.ResultStore.rows`).
Columns: :data:`CSV_COLUMNS` in that order, then any other keys of the rows, sorted (e.g. the
solver's ``n_grad_evals`` and ``n_hessp``). Floats are written as Python's shortest repr, so a
file read back gives the same numbers; an empty cell is None.
"""

from __future__ import annotations

import csv
import io

from .._io import atomic_write_text

__all__ = ["CSV_COLUMNS", "write_results_csv", "read_results_csv"]

#: The first columns of ``results.csv``, in order.
CSV_COLUMNS = (
    "dataset", "noise", "rate", "seed", "rounds", "top_k", "exact_noise", "reg_rule", "reg", "realised_rate",
    "model", "kind", "test_acc", "gain", "train_acc", "kept", "corrected", "agree_given", "topk_coverage",
    "n_iter", "seconds", "converged",
)

_STR_COLUMNS = {"dataset", "noise", "reg_rule", "model", "kind"}
_INT_COLUMNS = {"seed", "rounds", "top_k", "n_iter", "n_grad_evals", "n_hessp"}
_BOOL_COLUMNS = {"exact_noise", "converged"}


def _cell(v):
    if v is None:
        return ""
    return repr(v) if isinstance(v, float) else str(v)


def write_results_csv(path, rows) -> None:
    """Write ``rows`` to ``path`` atomically (temporary file, then rename).

    Parameters
    ----------
    path : the file to write.
    rows : iterable of dicts, one per task and model.

    Examples
    --------
    >>> import os, tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "r.csv")
    >>> write_results_csv(p, [{"dataset": "d", "model": "round 0", "test_acc": 0.5}])
    >>> read_results_csv(p)[0]["test_acc"]
    0.5
    """
    rows = list(rows)
    cols = list(CSV_COLUMNS) + sorted({k for r in rows for k in r} - set(CSV_COLUMNS))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in rows:
        w.writerow([_cell(r.get(c)) for c in cols])
    atomic_write_text(path, buf.getvalue())


def _typed(k, v):
    if k in _STR_COLUMNS:
        return v
    if v == "":
        return None
    if k in _INT_COLUMNS:
        return int(v)
    if k in _BOOL_COLUMNS:
        return v == "True"
    try:
        return float(v)
    except ValueError:
        return v


def read_results_csv(path) -> list:
    """Read a ``results.csv`` back into rows with Python types (empty cells become None).

    Examples
    --------
    See :func:`write_results_csv`.
    """
    with open(path, newline="", encoding="utf-8") as fh:
        return [{k: _typed(k, v) for k, v in rec.items()} for rec in csv.DictReader(fh)]
