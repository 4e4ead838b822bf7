"""Result rows as CSV: the one writer (and reader) of ``results.csv``, for ``run`` and ``report``.

A row is one dict per task and model (:meth:`selfdistill.experiments.store.ResultStore.rows`).
Columns: :data:`CSV_COLUMNS` in that order, then any other keys of the rows, sorted (e.g. the
solver's ``n_grad_evals`` and ``n_hessp``). Floats are written as Python's shortest repr, so a
file read back gives the same numbers; an empty cell is None.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Mapping
from typing import Any

from .._io import atomic_write_text

__all__ = ["CSV_COLUMNS", "write_results_csv", "read_results_csv"]

#: The first columns of ``results.csv``, in order.
CSV_COLUMNS = (
    "dataset", "noise", "rate", "seed", "rounds", "top_k", "exact_noise", "reg_rule", "reg", "realised_rate",
    "model", "kind", "test_acc", "gain", "train_acc", "kept", "corrected", "agree_given", "topk_coverage",
    "n_iter", "seconds", "converged",
)

_STR_COLUMNS = {"dataset", "noise", "reg_rule", "model", "kind", "config_hash"}  # a hash may look numeric
_INT_COLUMNS = {"seed", "rounds", "top_k", "n_iter", "n_grad_evals", "n_hessp"}
_BOOL_COLUMNS = {"exact_noise", "converged"}


def _cell(v):
    if v is None:
        return ""
    return repr(v) if isinstance(v, float) else str(v)


def write_results_csv(path: str | os.PathLike[str], rows: Iterable[Mapping[str, Any]]) -> None:
    """Write result rows to ``path`` as ``results.csv``, atomically (temporary file, then rename).

    Columns: :data:`CSV_COLUMNS` in that order, then the rows' other keys, sorted; a missing
    value is an empty cell; floats are written as their shortest repr.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write; its folder must exist.
    rows : iterable of dict
        One dict per task and model (``dataset``, ``noise``, ``rate``, ``seed``, ``model``,
        ``test_acc`` ...).

    Examples
    --------
    >>> import os, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> p = os.path.join(tmp.name, "r.csv")
    >>> write_results_csv(p, [{"dataset": "d", "model": "round 0", "test_acc": 0.5}])
    >>> read_results_csv(p)[0]["test_acc"]
    0.5
    >>> tmp.cleanup()
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


def read_results_csv(path: str | os.PathLike[str]) -> list:
    """Read a ``results.csv`` back into rows with Python types (empty cells become None).

    Text columns (dataset, noise, reg_rule, model, kind, config_hash) stay strings; seed, rounds, top_k and
    the solver's counts become int; exact_noise and converged bool; the others float where
    they parse as one.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :func:`write_results_csv`.

    Returns
    -------
    list of dict
        One dict per row, every column a key.

    Examples
    --------
    >>> import os, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> p = os.path.join(tmp.name, "results.csv")
    >>> write_results_csv(p, [{"dataset": "d", "seed": 3, "model": "pll-uniform", "test_acc": 0.1, "converged": True}])
    >>> row = read_results_csv(p)[0]
    >>> row["seed"], row["model"], row["test_acc"], row["converged"], row["gain"]
    (3, 'pll-uniform', 0.1, True, None)
    >>> tmp.cleanup()
    """
    with open(path, newline="", encoding="utf-8") as fh:
        return [{k: _typed(k, v) for k, v in rec.items()} for rec in csv.DictReader(fh)]
