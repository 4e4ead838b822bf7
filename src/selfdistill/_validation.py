"""Input validation, in one place (as ``sklearn.utils.validation``).

Every checker raises ``ValueError`` (or ``TypeError``) with a message that names the
argument, shows the offending value and says what was expected.
"""

from __future__ import annotations

import math
import numbers
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "check_features",
    "check_labels",
    "warn_empty_classes",
    "check_targets",
    "check_positive",
    "check_int",
    "check_fraction",
    "check_transition_matrix",
    "check_random_state",
    "check_choice",
    "validate_params",
    "PARAMS",
    "Constraint",
    "Integer",
    "Real",
    "OneOf",
    "Boolean",
    "String",
    "ArrayOf",
    "Reg",
    "AnyOf",
    "BadValueError",
]


def _short(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


#: rows per chunk wherever a memory-mapped feature matrix is streamed: its validation here, and
#: every pass over it (``_backend.Features``: the fits and the probes' predictions)
CHUNK_ROWS = 16384

#: memory-map dtypes that ``check_features(..., stream=True)`` keeps as they are
STREAM_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


#: The largest feature magnitude the solvers accept: ``check_features`` refuses ``max |x| > MAX_ABS_FEATURE``.
#: The rule: the fits square the features (the curvature X^T X / n, the Hessian products) and divide by reg
#: (a Newton step scales as 1/reg), and the logits of such a step add n * d of those terms. With
#: ``|x| <= 1e100`` the squares stay <= 1e200, which leaves float64 (max 1.8e308) a factor of 1e108 for
#: n * d and 1/reg together (n * d up to 1e30 with reg down to 1e-30 still fit with room to spare);
#: features near 1e150 and beyond overflow the first step (a fit that "does not converge", or an
#: eigen-decomposition that fails). No real feature is this large: scale such data first.
MAX_ABS_FEATURE = 1e100


def _raise_nonfinite(name: str, value, row: int, col: int, count: int):
    raise ValueError(
        f"{name} must be finite, found {value!r} at row {row}, column {col} "
        f"({count} non-finite entries in all)"
    )


def _raise_huge(name: str, value, row: int, col: int, count: int):
    raise ValueError(
        f"{name} holds values too large for the solver's float64 arithmetic: the largest in magnitude is "
        f"{float(value):.6g} at row {row}, column {col} ({count} entr{'y' if count == 1 else 'ies'} with "
        f"|x| > {MAX_ABS_FEATURE:g}, the limit); a fit squares the features and divides by reg, which overflows: "
        f"scale {name} first, e.g. standardise each column ((X - mean) / std, with the mean and std of the "
        "training rows) or divide by the largest magnitude"
    )


def _check_huge(arr: np.ndarray, row0: int = 0) -> tuple | None:
    """(largest |x|, row, column, count above the limit) of a finite 2-D block whose max |x| exceeds
    :data:`MAX_ABS_FEATURE`, rows counted from ``row0``; None when it does not (the common case:
    two reductions, no temporary)."""
    if max(-float(arr.min()), float(arr.max())) <= MAX_ABS_FEATURE:
        return None
    mag = np.abs(arr)
    r, c = np.unravel_index(int(np.argmax(mag)), mag.shape)
    return arr[r, c], row0 + int(r), int(c), int(np.count_nonzero(mag > MAX_ABS_FEATURE))


def _check_finite_chunked(X, name: str, chunk_rows: int | None = None) -> None:
    """Finiteness and magnitude of a 2-D (memory-mapped) array, ``chunk_rows`` rows at a time.

    Only O(chunk_rows * d) is in memory at once (no n x d mask); the error names the first
    offending row/column (counted over the whole array) and the total count, as for in-memory
    arrays. A non-finite entry is reported before a too large one (|x| > :data:`MAX_ABS_FEATURE`,
    the largest of which is named).
    """
    chunk_rows = CHUNK_ROWS if chunk_rows is None else chunk_rows
    first = None
    count = 0
    huge = None
    n_huge = 0
    for s in range(0, X.shape[0], chunk_rows):
        block = np.asarray(X[s : s + chunk_rows])
        lo, hi = block.min(), block.max()  # NaN propagates, inf shows: no mask for a finite block
        if np.isfinite(lo) and np.isfinite(hi):
            if first is None:
                found = _check_huge(block, s)
                if found is not None:
                    n_huge += found[3]
                    if huge is None or abs(found[0]) > abs(huge[0]):
                        huge = found
            continue
        finite = np.isfinite(block)
        bad = ~finite
        if first is None:
            r, c = np.argwhere(bad)[0]
            first = (block[r, c], s + int(r), int(c))
        count += int(np.count_nonzero(bad))
    if first is not None:
        _raise_nonfinite(name, first[0], first[1], first[2], count)
    if huge is not None:
        _raise_huge(name, huge[0], huge[1], huge[2], n_huge)


def check_matrix_shape(X, name: str) -> None:
    """X (an array or a torch tensor) must be 2-D (n_samples, n_features) and non-empty; the error names ``name``."""
    if X.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array of shape (n_samples, n_features), got {X.ndim}-D "
            f"array of shape {tuple(X.shape)}; reshape a single feature with X.reshape(-1, 1)"
        )
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"{name} must be non-empty, got shape {tuple(X.shape)}")


def _numpy_ops():
    from ._backend import NumpyOps  # imported here: _backend imports this module

    return NumpyOps()


def check_feature_values(X, name: str = "X", ops=None) -> None:
    """Refuse a 2-D in-memory feature matrix holding NaN/inf or a value with ``|x| > MAX_ABS_FEATURE``.

    The one such check for every backend: ``ops`` (``_backend.ops_of(X)``: a torch tensor is
    checked on its device) supplies the reductions; None is NumPy. The errors name ``name``, the
    first offending entry's row and column and the count, as :func:`check_features` says.
    """
    ops = _numpy_ops() if ops is None else ops
    lo, hi = ops.extremes(X)  # NaN propagates, inf shows: no n x d mask for a finite matrix
    if not (math.isfinite(lo) and math.isfinite(hi)):
        _raise_nonfinite(name, *ops.first_nonfinite(X))
    if max(-lo, hi) > MAX_ABS_FEATURE:
        _raise_huge(name, *ops.largest_abs(X, MAX_ABS_FEATURE))


def check_features(
    X, name: str = "X", *, dtype=np.float64, allow_memmap: bool = True, stream: bool = False
) -> np.ndarray:
    """Return ``X`` as a finite 2-D float array of shape (n, d), of magnitude the solver can handle.

    Raises ``ValueError`` naming ``name`` if X is not 2-D, is empty, holds NaN/inf, or holds a value
    with ``|x| > MAX_ABS_FEATURE`` (1e100: beyond it the fits' float64 arithmetic overflows, see
    :data:`MAX_ABS_FEATURE`); that message names the largest value and its row and column and
    advises scaling (standardising) the features. Large but representable features (1e6, raw
    pixel values) pass unchanged.

    A ``numpy.memmap`` (e.g. ``np.load(path, mmap_mode="r")``) of dtype ``dtype`` is returned as
    it is (with ``allow_memmap``), and so, with ``stream=True``, is one of dtype float32 or
    float64 (for callers that stream it in row chunks: the probe fits and predictions, and
    :func:`selfdistill.distill`). A memmap kept this way is never loaded whole: its finiteness is
    checked ``CHUNK_ROWS`` rows at a time. Anything else is converted to ``dtype``.
    """
    if isinstance(X, np.memmap) and allow_memmap:
        check_matrix_shape(X, name)  # from the shape alone, before anything is read
        if X.dtype == np.dtype(dtype) or (stream and X.dtype in STREAM_DTYPES):
            _check_finite_chunked(X, name)
            return X
    _refuse_sparse_or_complex(X, name)
    try:
        arr = np.asarray(X, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a numeric array, got {type(X).__name__}: {exc}") from None
    check_matrix_shape(arr, name)
    check_feature_values(arr, name)
    return arr


def physical_memory() -> int | None:
    """This machine's physical memory in bytes (None where the platform does not say)."""
    import os

    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - platforms without sysconf
        return None


def check_memory(need: float, name: str, what: str, hint: str) -> None:
    """Refuse up front, naming ``name`` and giving the estimate, work whose arrays (``need`` bytes,
    described by ``what``) would not fit in physical memory; ``hint`` says what to change."""
    have = physical_memory()
    if have is not None and need > have:
        raise ValueError(f"{name}: {what} would need about {need / 2**30:,.1f} GiB, more than this machine's "
                         f"{have / 2**30:,.1f} GiB of memory; {hint}")


def _refuse_sparse_or_complex(X, name: str) -> None:
    """A ValueError naming ``name`` for scipy.sparse matrices and complex arrays (refused, not converted)."""
    import scipy.sparse

    if scipy.sparse.issparse(X):
        raise ValueError(
            f"{name} is a scipy.sparse {type(X).__name__} of shape {X.shape}; the solver needs a dense array: "
            f"pass {name}.toarray() (reduce the dimension first, e.g. with TruncatedSVD, if it is too large)")
    if np.iscomplexobj(X):
        raise ValueError(f"{name} must be real, got a complex array (dtype {np.asarray(X).dtype}); the imaginary "
                         "part is not dropped silently: pass the real features you mean")


#: Labels beyond this magnitude cannot be class indices (and would overflow int64).
_MAX_LABEL = 2**62


def check_label_values(arr: np.ndarray, name: str) -> np.ndarray:
    """Integer labels as int64 from an integer, boolean or integer-valued float array.

    Float labels must be finite and integer-valued (``2.0`` becomes 2): anything else (``0.5``,
    NaN) is a ``ValueError`` naming ``name``, the first offending value and its index, and how
    many there are. Other dtypes (strings, objects) are refused: encode them first.
    """
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr)
        what = "non-finite"
        if not bad.any():
            bad = arr != np.round(arr)
            what = "non-integer"
        if not bad.any():
            bad = np.abs(arr) > _MAX_LABEL
            what = "out-of-range"
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{name} must hold integer class labels 0..K-1, got the {what} value {arr[i].item()!r} at "
                f"index {i} ({int(bad.sum())} such value(s) in all); labels are class indices, not "
                "continuous targets (integer-valued floats such as 2.0 are accepted)"
            )
    elif arr.dtype.kind not in "iub":
        raise ValueError(
            f"{name} must hold integer class indices 0..K-1, got dtype {arr.dtype}; "
            "encode labels first (SelfDistillationClassifier accepts any label values)"
        )
    return arr.astype(np.int64)


def _empty_classes(labels: np.ndarray, n_classes: int) -> list:
    """The classes of ``0..n_classes-1`` that no entry of ``labels`` holds."""
    return np.flatnonzero(np.bincount(labels, minlength=n_classes)[:n_classes] == 0).tolist()


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def _stray_labels(labels: np.ndarray, class_names=None) -> tuple | None:
    """(a sentence on the labels above the highest gap of ``labels``, the gap's classes) if those
    labels look stray, else None.

    The classes of ``0..max(labels)`` have a gap where some class between two labels holds no
    point. The labels above the highest gap look stray (a typo, a sentinel, an encoding slip) when

    * they are few: each holds at most ``max(1, m / 10)`` points, m the median count of the
      classes below the gap (a class of a single point always counts), or
    * they are far: the gap holds at least as many classes as there are labels below it (labels
      0..9 and 1000).

    A gap below the smallest label (labels from 1) is no stray label. The sentence names the
    labels above the gap with their counts, and the empty classes of the gap.
    """
    values, counts = np.unique(labels, return_counts=True)
    steps = np.flatnonzero(np.diff(values) > 1)
    if steps.size == 0:
        return None
    i = int(steps[-1])
    below, above, above_counts = values[: i + 1], values[i + 1 :], counts[i + 1 :]
    gap_lo, gap_hi = int(values[i]) + 1, int(values[i + 1]) - 1
    width = gap_hi - gap_lo + 1
    few = int(above_counts.max()) <= max(1.0, float(np.median(counts[: i + 1])) / 10)
    if not (few or width >= below.size):
        return None

    def label(v) -> str:
        name = None if class_names is None else str(class_names[int(v)])
        return str(int(v)) if name in (None, str(int(v))) else f"{int(v)} ({name!r})"

    one = above.size == 1
    below_labels = f"label {int(below[0])}" if below.size == 1 else f"labels {int(below[0])}..{int(below[-1])}"
    pairs = zip(above[:5], above_counts[:5], strict=True)
    shown = ", ".join(f"{label(v)} ({_plural(int(c), 'point')})" for v, c in pairs)
    if above.size > 5:
        shown += f" and {above.size - 5} more"
    gap = (", ".join(label(k) for k in range(gap_lo, gap_hi + 1)) if width <= 6
           else f"{gap_lo}..{gap_hi} ({width:,} classes)")
    sentence = (
        f"label{'' if one else 's'} {shown} above {'class' if width == 1 else 'classes'} {gap}, which no point "
        f"holds, while {below_labels} hold{'s' if below.size == 1 else ''} the other "
        f"{_plural(int(counts[: i + 1].sum()), 'point')}: {'a stray or mistyped label' if one else 'stray labels'}? "
        f"Fix or drop {'it' if one else 'them'}: integer labels are class indices, so label {int(values[-1])} makes "
        f"{int(values[-1]) + 1:,} classes, and one without a training point is a class no probe learns"
    )
    return sentence, set(range(gap_lo, gap_hi + 1)) if width <= 10**6 else None


def warn_empty_classes(labels, name: str, n_classes: int, class_names=None, *, stacklevel: int = 2) -> list:
    """Warn (``UserWarning``) if some class of ``0..n_classes-1`` has no entry in ``labels``.

    The message names each empty class by index (and by ``class_names[k]`` when given): a probe
    does not learn a class it has no training point of, so test points of that class are
    misclassified. Where the empty classes are a gap below labels that look stray (see
    :func:`check_labels`: labels 0..9 and a single 12 leave 10 and 11 empty), it names those
    labels, their counts and the gap first. Returns the empty classes (a list, empty when every
    class has a point).
    """
    labels = np.asarray(labels, dtype=np.int64)
    empty = _empty_classes(labels, n_classes)
    if empty:
        stray = _stray_labels(labels, class_names)
        rest = empty if stray is None or stray[1] is None else [k for k in empty if k not in stray[1]]
        shown = ", ".join(
            f"{k} ({class_names[k]!r})" if class_names is not None else str(k) for k in rest[:10]
        ) + (f" and {len(rest) - 10} more" if len(rest) > 10 else "")
        plain = (
            f"{name} has no point of class{'es' if len(rest) > 1 else ''} {shown} among classes "
            f"0..{n_classes - 1}: a probe does not learn a class it has no training point of, so its "
            "test points are misclassified; check the label encoding"
        )
        if stray is not None:
            message = f"{name} has {stray[0]}" + (f". Also: {plain}" if rest else "")
        else:
            message = plain
        warnings.warn(message, UserWarning, stacklevel=stacklevel + 1)
    return empty


def check_labels(
    y,
    name: str = "y",
    *,
    n_samples: int | None = None,
    n_classes: int | None = None,
    empty_classes: str = "ignore",
    hint: str | None = None,
    stacklevel: int = 2,
) -> np.ndarray:
    """Return integer labels (n,) as int64 with values in 0..K-1.

    ``n_samples`` checks the length against X; ``n_classes`` (K) the range; ``stacklevel`` places
    the warnings, counted from the caller of ``check_labels`` (2: the line that called that caller).

    The label rule, shared by every entry that takes class labels (:func:`selfdistill.fit_linear_probe`,
    :func:`selfdistill.distill`, :func:`selfdistill.model_selection.select_reg`, ...,
    :class:`selfdistill.data.Dataset` and so ``.npz`` feature files, ``selfdistill run --dataset
    F.npz``): **an integer label is a class index**. The classes are ``0..K-1``, K = ``n_classes``
    or, without it, the largest label + 1. (Label *values* of any kind -- -1/1, strings -- are for
    :class:`selfdistill.SelfDistillationClassifier`, which encodes them with ``np.unique``, and for
    string labels in an ``.npz`` file, which are encoded the same way.) In detail:

    * integer and boolean labels are kept; float labels must be integer-valued (``2.0`` is read
      as 2): a non-integer or non-finite float is a ``ValueError`` naming ``name`` and the first
      offending value and its index (continuous targets are no class labels);
    * a negative label is a ``ValueError`` naming the first one and its index (and how many there
      are): it is no class index; map label values to ``0..K-1`` first;
    * a label outside ``0..K-1`` is a ``ValueError`` naming the first offending value and its
      index. Callers that take K from the training labels (``distill``: K = max label + 1 unless
      ``n_classes=`` is given) pass it here to check test labels, so test labels outside the
      training classes are an error; the message suggests passing ``n_classes=`` (``hint``
      replaces that suggestion, e.g. where K comes from ``class_names``);
    * without ``n_classes`` (K from the labels), labels that look stray warn (``UserWarning``
      naming them, their counts and the empty classes below them): labels above a gap of empty
      classes that are few (each at most ``max(1, m / 10)`` points, m the median count of the
      classes below the gap; a single point always counts) or far (the gap holds at least as many
      classes as there are labels below it). Labels 0..9 and one 12 warn: 10 and 11 would be
      classes without a point, which no probe predicts. Pass ``n_classes=`` where such classes are
      meant to be empty;
    * ``empty_classes="warn"``: a class of ``0..K-1`` (K = ``n_classes``, or max label + 1) with
      no entry is a ``UserWarning`` naming it (see :func:`warn_empty_classes`); ``"ignore"`` (the
      default: test and noisy labels may well lack a class) checks nothing more.
    """
    check_choice(empty_classes, "empty_classes", ("ignore", "warn"))
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of integer labels, got shape {arr.shape}")
    if n_samples is not None and arr.shape[0] != n_samples:
        raise ValueError(
            f"{name} has {arr.shape[0]} entries but X has {n_samples} rows; they must have the same length"
        )
    if arr.size == 0:
        raise ValueError(f"{name} must be non-empty")
    arr = check_label_values(arr, name)
    lo, hi = int(arr.min()), int(arr.max())
    if lo < 0:
        neg = arr < 0
        i = int(np.argmax(neg))
        expected = f"0..{n_classes - 1}" if n_classes is not None else "0..K-1 (class indices, >= 0)"
        raise ValueError(
            f"{name} must hold labels in {expected}, got the negative label {int(arr[i])} at index {i} "
            f"({_plural(int(neg.sum()), 'negative label')} in all, values from {lo} to {hi}): integer labels are "
            "class indices here; map label values to 0..K-1 first, e.g. np.unique(y, return_inverse=True) "
            "(SelfDistillationClassifier accepts any label values and does so itself)"
        )
    if n_classes is not None and hi >= n_classes:
        i = int(np.argmax(arr >= n_classes))
        if hint is None:
            hint = (
                f"the {n_classes} classes come from n_classes or, without it, from the training labels "
                f"(largest label + 1): pass n_classes={hi + 1} (the number of classes) if the data hold "
                "classes that the training labels lack"
            )
        raise ValueError(
            f"{name} must hold labels in 0..{n_classes - 1}, got values from {lo} to {hi} (first out of "
            f"range: {int(arr[i])} at index {i})" + (f"; {hint}" if hint else "")
        )
    if empty_classes == "warn":
        warn_empty_classes(arr, name, n_classes if n_classes is not None else hi + 1, stacklevel=stacklevel + 1)
    elif n_classes is None:
        stray = _stray_labels(arr)
        if stray is not None:
            warnings.warn(
                f"{name} has {stray[0]} (K is the largest label + 1 without n_classes=; pass n_classes= where "
                "classes without a point are meant)",
                UserWarning,
                stacklevel=stacklevel + 1,
            )
    return arr


def check_targets(
    targets,
    *,
    n_samples: int,
    n_classes: int | None = None,
    allow_negative: bool = False,
    name: str = "targets",
    atol: float = 1e-6,
) -> np.ndarray:
    """Return a target matrix T (n, K) whose rows are probability vectors.

    ``targets`` may be integer labels (n,) in 0..K-1 (turned into one-hot rows) or an (n, K)
    float array. Rows must sum to 1 (within ``atol``) and be non-negative unless
    ``allow_negative`` (extrapolated targets, mix > 1, whose rows still sum to 1).
    """
    arr = np.asarray(targets)
    if arr.ndim == 1:
        labels = check_labels(arr, name, n_samples=n_samples, n_classes=n_classes)
        K = n_classes if n_classes is not None else int(labels.max()) + 1
        if K < 2:
            raise ValueError(
                f"{name} must hold at least 2 classes, got a single class (K={K}); "
                "pass n_classes= if some classes are absent"
            )
        T = np.zeros((labels.shape[0], K))
        T[np.arange(labels.shape[0]), labels] = 1.0
        return T
    if arr.ndim != 2:
        raise ValueError(f"{name} must be labels (n,) or a (n, K) target matrix, got shape {arr.shape}")
    try:
        T = np.asarray(arr, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}") from None
    check_target_matrix(T, name, n_samples=n_samples, n_classes=n_classes, allow_negative=allow_negative, atol=atol)
    return T


def check_target_matrix(T, name: str = "targets", *, n_samples: int, n_classes: int | None = None,
                        allow_negative: bool = False, atol: float = 1e-6, ops=None) -> None:
    """Refuse an (n, K) target matrix of the wrong shape, non-finite, negative (unless
    ``allow_negative``) or with a row that does not sum to 1 (within ``atol``), naming the row.

    The one such check for every backend: ``ops`` (``_backend.ops_of(T)``: a torch tensor is
    checked on its device) supplies the reductions; None is NumPy.
    """
    if T.shape[0] != n_samples:
        raise ValueError(f"{name} has {T.shape[0]} rows but X has {n_samples} rows; they must match")
    if n_classes is not None and T.shape[1] != n_classes:
        raise ValueError(f"{name} has {T.shape[1]} columns but n_classes={n_classes}")
    if T.shape[1] < 2:
        raise ValueError(f"{name} must have at least 2 columns (classes), got shape {tuple(T.shape)}")
    ops = _numpy_ops() if ops is None else ops
    lo, hi = ops.extremes(T)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{name} must be finite, found NaN or inf")
    if not allow_negative and lo < 0:
        mins = ops.row_mins(T)
        i = int(np.argmin(mins))
        raise ValueError(
            f"{name} rows must be probability vectors (non-negative), row {i} has minimum {mins[i]:.6g}; "
            "extrapolated targets (mix > 1, from refine_targets) need allow_negative_targets=True"
        )
    sums = ops.row_sums(T)
    bad = np.abs(sums - 1.0) > atol
    if np.any(bad):
        i = int(np.argmax(bad))
        raise ValueError(f"{name} rows must sum to 1, row {i} sums to {sums[i]:.6g}")


# ---------------------------------------------------------------- declarative constraints
# One type per kind of value, with two faces: ``check(value, name)`` for the Python API (a
# TypeError for the wrong type, a ValueError out of range: "NAME must be RULE, got VALUE") and
# ``__call__(value)`` for config files (a BadValueError "expected WHAT, got VALUE", to which the
# config adds the file, line and key). :func:`validate_params` checks several arguments against
# them at once (:data:`PARAMS` by default); ``SelfDistillationClassifier._parameter_constraints``,
# the config's tables and ``cli.argtypes`` are built from the same types.


class BadValueError(ValueError):
    """A value that fails its constraint: the message alone (``expected ..., got ...``), to which
    whoever checked it (a config file, a command-line option) adds where the value came from."""


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def type_name(v) -> str:
    """A value's type as a config file names it ("an integer", "a string", ...)."""
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array",
            dict: "a table"}.get(type(v), type(v).__name__)


class Constraint:
    """What a value must be. Subclasses define ``accepts`` and ``describe`` (the config face's
    words); ``rule`` (the API face's words), ``type_ok`` and ``convert`` as they need."""

    def type_ok(self, v) -> bool:
        """Whether ``v`` is of the right type (else :meth:`check` raises ``TypeError``)."""
        return True

    def applies(self, v) -> bool:
        """Whether ``v`` is the kind of value this constraint is about (:class:`AnyOf` reports its error)."""
        return self.type_ok(v)

    def accepts(self, v) -> bool:
        raise NotImplementedError

    def convert(self, v):
        return v

    def describe(self, many: bool = False) -> str:
        """The config face's words: "an integer >= 2" (``many``: of array items, "integers >= 2")."""
        raise NotImplementedError

    def rule(self) -> str:
        """The API face's words, after "must be": "an integer in [2, inf]"."""
        return self.describe()

    def type_rule(self) -> str:
        """The API face's words for a value of the wrong type: "an integer"."""
        return self.rule()

    def shown(self, v) -> str:
        return _short(v)

    def check(self, value, name: str):
        """``value`` converted, or a TypeError / ValueError naming ``name``, the value and the rule."""
        if not self.type_ok(value):
            raise TypeError(f"{name} must be {self.type_rule()}, got {_short(value)} ({type(value).__name__})")
        if not self.accepts(value):
            raise ValueError(f"{name} must be {self.rule()}, got {self.shown(value)}")
        return self.convert(value)

    def __call__(self, v, many: bool = False):
        """``v`` converted, or a :class:`BadValueError` ``expected ..., got ...`` (config files)."""
        if not self.accepts(v):
            raise BadValueError(f"expected {self.describe(many)}, got {type_name(v)} {v!r}")
        return self.convert(v)


@dataclass(frozen=True)
class Integer(Constraint):
    """An integer in [low, high] (a bound of None: no bound); booleans are no integers."""

    low: int | None = None
    high: int | None = None

    def type_ok(self, v) -> bool:
        return _is_int(v)

    def accepts(self, v) -> bool:
        return _is_int(v) and (self.low is None or v >= self.low) and (self.high is None or v <= self.high)

    def convert(self, v):
        return int(v)

    def describe(self, many=False):
        bounds = ([] if self.low is None else [f">= {self.low}"]) + ([] if self.high is None else [f"<= {self.high}"])
        return " ".join([("integers" if many else "an integer"), " and ".join(bounds)]).rstrip()

    def rule(self):
        lo = "-inf" if self.low is None else self.low
        hi = "inf" if self.high is None else self.high
        return f"an integer in [{lo}, {hi}]"

    def type_rule(self):
        return "an integer"

    def shown(self, v):
        return str(int(v))


@dataclass(frozen=True)
class Real(Constraint):
    """A finite number between low and high; ``closed`` ("both", "neither", "left") says which
    ends belong to the interval. Booleans are no numbers."""

    low: float = -math.inf
    high: float = math.inf
    closed: str = "both"

    def type_ok(self, v) -> bool:
        return _is_num(v)

    def accepts(self, v) -> bool:
        if not (_is_num(v) and math.isfinite(float(v))):
            return False
        x = float(v)
        lo_ok = x >= self.low if self.closed in ("both", "left") else x > self.low
        return lo_ok and (x <= self.high if self.closed == "both" else x < self.high)

    def convert(self, v):
        return float(v)

    def _interval(self) -> str:
        lb = "[" if self.closed in ("both", "left") else "("
        return f"{lb}{self.low:g}, {self.high:g}{']' if self.closed == 'both' else ')'}"

    def _bound(self) -> str:
        if self.high != math.inf:
            return f"in {self._interval()}"
        return f"{'>' if self.closed == 'neither' else '>='} {self.low:g}"

    def describe(self, many=False):
        if self.low == -math.inf and self.high == math.inf:
            return "finite numbers" if many else "a finite number"
        return f"{'numbers' if many else 'a number'} {self._bound()}"

    def rule(self):
        if self.high != math.inf:
            return self._bound()
        return "finite" if self.low == -math.inf else f"{self._bound()} and finite"

    def type_rule(self):
        return "a real number" + ("" if self.high == math.inf else f" in {self._interval()}")

    def shown(self, v):
        return repr(float(v))


@dataclass(frozen=True)
class OneOf(Constraint):
    """One of a fixed set of values (strings); ``noun`` names them in errors of array items, ``hint``
    follows the options in config errors, ``phrase`` replaces "one of [...]" in API errors."""

    options: tuple
    noun: str = "value"
    hint: str = ""
    phrase: str = ""

    def applies(self, v) -> bool:
        return any(isinstance(v, type(o)) for o in self.options)

    def accepts(self, v) -> bool:
        try:
            return v in self.options
        except (TypeError, ValueError):  # an array: no option
            return False

    def describe(self, many=False):
        return f"one of {list(self.options)}{self.hint}"

    def rule(self):
        return self.phrase or f"one of {sorted(self.options)}"

    def __call__(self, v, many=False):
        if not self.accepts(v):
            if many:
                raise BadValueError(f"unknown {self.noun} {v!r} (expected some of {list(self.options)}{self.hint})")
            raise BadValueError(f"expected {self.describe()}, got {type_name(v)} {v!r}")
        return v


@dataclass(frozen=True)
class Boolean(Constraint):
    """True or False (a NumPy boolean too)."""

    def type_ok(self, v) -> bool:
        return isinstance(v, (bool, np.bool_))

    def accepts(self, v) -> bool:
        return self.type_ok(v)

    def convert(self, v):
        return bool(v)

    def describe(self, many=False):
        return "true or false"

    def rule(self):
        return "True or False"


@dataclass(frozen=True)
class String(Constraint):
    """A non-empty string (matching ``pattern``, if given); ``what`` says what it must be."""

    pattern: re.Pattern | None = None
    what: str = "a string"

    def type_ok(self, v) -> bool:
        return isinstance(v, str)

    def accepts(self, v) -> bool:
        return isinstance(v, str) and bool(v) and (self.pattern is None or bool(self.pattern.match(v)))

    def describe(self, many=False):
        return self.what

    def rule(self):
        return self.what if self.pattern is not None else "a non-empty string"

    def type_rule(self):
        return "a string"

    def __call__(self, v, many=False):
        if not self.accepts(v):
            raise BadValueError(f"expected {self.what}, got {v!r}")
        return v


@dataclass(frozen=True)
class ArrayOf(Constraint):
    """A non-empty (unless ``allow_empty``) list or tuple of ``item`` values; repeats are dropped
    and the result ordered by ``order``: "given" (first appearance), "ascending" or "descending"."""

    item: Constraint
    what: str
    allow_empty: bool = False
    order: str = "given"

    def type_ok(self, v) -> bool:
        return isinstance(v, (list, tuple))

    def accepts(self, v) -> bool:
        return self.type_ok(v) and (bool(v) or self.allow_empty) and all(self.item.accepts(x) for x in v)

    def describe(self, many=False):
        return f"an array of {self.what}"

    def _ordered(self, values) -> tuple:
        if self.order == "given":
            return tuple(dict.fromkeys(values))
        return tuple(sorted(set(values), reverse=self.order == "descending"))

    def check(self, value, name):
        if not self.type_ok(value):
            raise TypeError(f"{name} must be a list or tuple of {self.what}, got {_short(value)} "
                            f"({type(value).__name__})")
        if not value and not self.allow_empty:
            raise ValueError(f"{name} must hold at least one value, got {value!r}")
        return self._ordered([self.item.check(x, f"{name}[{i}]") for i, x in enumerate(value)])

    def __call__(self, v, many=False):
        if not isinstance(v, (list, tuple)):
            raise BadValueError(f"expected an array of {self.what}, got {type_name(v)} ({v!r})")
        if not v and not self.allow_empty:
            raise BadValueError("empty grid: give at least one value")
        return self._ordered([self.item(x, True) for x in v])


@dataclass(frozen=True)
class Reg(Constraint):
    """``"auto"`` (any case, spaces around it ignored) or a finite number > 0 (config files)."""

    def accepts(self, v) -> bool:
        if isinstance(v, str):
            return v.strip().lower() == "auto"
        return _is_num(v) and 0 < float(v) < math.inf

    def convert(self, v):
        return "auto" if isinstance(v, str) else float(v)

    def describe(self, many=False):
        return 'a number > 0 or "auto"'

    def __call__(self, v, many=False):
        if isinstance(v, str) and not self.accepts(v):
            raise BadValueError(f"expected {self.describe()}, got {v!r}")
        return super().__call__(v, many)


@dataclass(frozen=True)
class NoneValue(Constraint):
    """None (in a list of constraints: the argument is optional)."""

    def type_ok(self, v) -> bool:
        return v is None

    def accepts(self, v) -> bool:
        return v is None

    def describe(self, many=False):
        return "None"


@dataclass(frozen=True)
class AnyOf(Constraint):
    """Any of ``options`` (scikit-learn's list of constraints). The first that accepts the value
    converts it; else the error is that of the first option the value's kind fits (a string: a
    :class:`OneOf`; a number: a :class:`Real`), or a TypeError naming every option."""

    options: tuple

    def type_ok(self, v) -> bool:
        return any(c.applies(v) for c in self.options)

    def applies(self, v) -> bool:
        return self.type_ok(v)

    def accepts(self, v) -> bool:
        return any(c.accepts(v) for c in self.options)

    def convert(self, v):
        return next(c.convert(v) for c in self.options if c.accepts(v))

    def describe(self, many=False):
        return " or ".join(c.describe(many) for c in self.options)

    def rule(self):
        return " or ".join(c.rule() for c in self.options)

    def check(self, value, name):
        for c in self.options:
            if c.accepts(value):
                return c.convert(value)
        for c in self.options:
            if c.applies(value):
                return c.check(value, name)
        return super().check(value, name)


def make_constraint(spec) -> Constraint:
    """A :class:`Constraint` from a spec: a constraint, None (:class:`NoneValue`) or a list of them
    (:class:`AnyOf`), as in scikit-learn's ``_parameter_constraints``."""
    if spec is None:
        return NoneValue()
    if isinstance(spec, Constraint):
        return spec
    if isinstance(spec, (list, tuple)):
        parts = tuple(make_constraint(s) for s in spec)
        return parts[0] if len(parts) == 1 else AnyOf(parts)
    raise TypeError(f"not a constraint: {spec!r}")


#: The scalar arguments that mean the same in every public function, with their constraints: the
#: default table of :func:`validate_params` (and of ``SelfDistillationClassifier._parameter_constraints``).
PARAMS = {
    "reg": Real(0.0, closed="neither"),
    "tol": Real(0.0, closed="neither"),
    "max_iter": [None, Integer(0)],
    "n_classes": [None, Integer(2)],
    "rounds": Integer(0),
    "temperature": Real(0.0, closed="neither"),
    "stop": OneOf(("tol", "certain"), phrase="'tol' or 'certain'"),
    "certify_top_k": Integer(1),
    "val_fraction": Real(0.0, 1.0, closed="neither"),
}


def validate_params(constraints: Mapping[str, Any] | None = None, /, **params: Any) -> dict[str, Any]:
    """Check arguments against their constraints once, at the public function they were given to.

    In the manner of scikit-learn's ``validate_params``: each keyword is an argument's name and
    value, ``constraints`` maps names to constraints (:data:`PARAMS` by default). Checked in the
    order given; the first that fails raises the TypeError or ValueError of its constraint, naming
    the argument, its value and what was expected. Internal calls skip the check (the private
    twins of the public functions take checked values).

    Parameters
    ----------
    constraints : mapping of str to constraint, optional
        Name -> a :class:`Constraint`, None, or a list of them (any of them); default :data:`PARAMS`.
    **params : Any
        The arguments to check, by name.

    Returns
    -------
    dict
        Name -> the value, converted (floats as float, integers as int).

    Raises
    ------
    TypeError
        A value of the wrong type.
    ValueError
        A value out of range.

    Examples
    --------
    >>> validate_params(reg=1e-2, max_iter=None, rounds=2)
    {'reg': 0.01, 'max_iter': None, 'rounds': 2}
    >>> validate_params(reg=0)
    Traceback (most recent call last):
    ...
    ValueError: reg must be > 0 and finite, got 0.0
    >>> validate_params({"top_k": Integer(2, 3)}, top_k=4)
    Traceback (most recent call last):
    ...
    ValueError: top_k must be an integer in [2, 3], got 4
    """
    table = PARAMS if constraints is None else constraints
    return {name: make_constraint(table[name]).check(value, name) for name, value in params.items()}


def check_positive(value, name: str, *, strict: bool = True) -> float:
    """Return ``value`` as a float, checking it is finite and > 0 (>= 0 if not strict)."""
    return Real(0.0, closed="neither" if strict else "left").check(value, name)


def check_int(value, name: str, *, low: int | None = None, high: int | None = None) -> int:
    """Return ``value`` as an int in [low, high] (either bound optional, both inclusive)."""
    return Integer(low, high).check(value, name)


def check_fraction(value, name: str) -> float:
    """Return ``value`` as a float in [0, 1] (a noise rate or a fraction)."""
    return Real(0.0, 1.0).check(value, name)


def check_choice(value, name: str, choices) -> str:
    """Return ``value`` if it is one of ``choices``, else a ValueError listing them."""
    return OneOf(tuple(choices)).check(value, name)


def check_transition_matrix(
    matrix, name: str = "matrix", *, n_classes: int | None = None, atol: float = 1e-8
) -> np.ndarray:
    """Return a K x K row-stochastic matrix, matrix[k, j] = P(observed j | true k)."""
    C = np.asarray(matrix, dtype=np.float64)
    if C.ndim != 2 or C.shape[0] != C.shape[1]:
        raise ValueError(f"{name} must be a square K x K transition matrix, got shape {C.shape}")
    if C.shape[0] < 2:
        raise ValueError(f"{name} must have at least 2 classes, got shape {C.shape}")
    if n_classes is not None and C.shape[0] != n_classes:
        raise ValueError(f"{name} is {C.shape[0]} x {C.shape[0]} but the labels have {n_classes} classes")
    if not np.all(np.isfinite(C)) or C.min() < 0:
        raise ValueError(f"{name} must be finite and non-negative, got minimum {np.nanmin(C):.6g}")
    sums = C.sum(axis=1)
    bad = np.abs(sums - 1.0) > atol
    if np.any(bad):
        k = int(np.argmax(bad))
        raise ValueError(
            f"{name} rows must sum to 1 (rows are the true class, matrix[k, j] = P(observed j | true k)), "
            f"row {k} sums to {sums[k]:.6g}"
        )
    return C


def check_random_state(seed) -> np.random.Generator:
    """Return a ``numpy.random.Generator`` from None, an int seed or a Generator."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        return np.random.default_rng()
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool) and int(seed) >= 0:
        return np.random.default_rng(int(seed))
    raise ValueError(f"seed must be None, a non-negative int or a numpy Generator, got {_short(seed)}")


def check_gram(gram, name: str = "gram", *, n_samples: int | None = None, rtol: float = 1e-10) -> np.ndarray:
    """Return a Gram matrix G (n, n) as a finite, exactly symmetric float64 array.

    Checks: 2-D and square, non-empty, finite, symmetric up to round-off
    (``max|G - G^T| <= rtol * max(1, max|G|)``); returns ``(G + G^T) / 2``. ``n_samples``
    checks n against the labels. Positive semi-definiteness needs the spectrum: see
    :func:`check_psd_spectrum`.
    """
    try:
        G = np.asarray(gram, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a numeric (n, n) array, got {type(gram).__name__}: {exc}") from None
    if G.ndim != 2 or G.shape[0] != G.shape[1]:
        raise ValueError(f"{name} must be a square (n, n) Gram matrix, got shape {G.shape}")
    if G.shape[0] == 0:
        raise ValueError(f"{name} must be non-empty, got shape {G.shape}")
    if n_samples is not None and G.shape[0] != n_samples:
        raise ValueError(f"{name} is {G.shape[0]} x {G.shape[0]} but there are {n_samples} labels; they must match")
    if not np.all(np.isfinite(G)):
        raise ValueError(f"{name} must be finite, found {int(np.sum(~np.isfinite(G)))} NaN or inf entries")
    scale = max(1.0, float(np.abs(G).max()))
    asym = float(np.abs(G - G.T).max())
    if asym > rtol * scale:
        i, j = np.unravel_index(int(np.argmax(np.abs(G - G.T))), G.shape)
        raise ValueError(
            f"{name} must be symmetric (a Gram matrix X X^T), but {name}[{i}, {j}] = {G[i, j]!r} and "
            f"{name}[{j}, {i}] = {G[j, i]!r} (max asymmetry {asym:.3g} > {rtol:g} * {scale:.3g})"
        )
    return (G + G.T) / 2.0


def check_psd_spectrum(eigenvalues, name: str = "gram", *, rtol: float = 1e-10) -> np.ndarray:
    """Check that the eigenvalues of a symmetric matrix are >= 0 up to round-off; return them clipped at 0.

    Round-off allowance: ``min(eigenvalues) >= -rtol * max(1, max|eigenvalues|) * n`` (n = their
    number). Larger negative eigenvalues raise ``ValueError`` naming ``name``: the matrix is not
    positive semi-definite, so it is no Gram matrix.
    """
    mu = np.asarray(eigenvalues, dtype=np.float64)
    scale = max(1.0, float(np.abs(mu).max())) if mu.size else 1.0
    allowance = rtol * scale * max(1, mu.size)
    if mu.size and float(mu.min()) < -allowance:
        raise ValueError(
            f"{name} must be positive semi-definite (a Gram matrix X X^T), but it has eigenvalue "
            f"{float(mu.min()):.6g} < -{allowance:.3g} (round-off allowance)"
        )
    return np.clip(mu, 0.0, None)
