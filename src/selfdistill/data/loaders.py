"""Loaders: scikit-learn's digits, user features in ``.npz`` files, and a name-based dispatcher."""

from __future__ import annotations

import json
import os
import zipfile
import zlib
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from .._io import atomic_open
from .._validation import check_features, check_int, check_label_values, check_labels
from ._checks import check_features_maybe_empty, check_real
from .dataset import Dataset
from .synthetic import make_block_features

__all__ = ["DATASETS", "BLOCK_DEFAULTS", "load_digits", "load_npz", "save_npz", "load_dataset"]

#: Names accepted by :func:`load_dataset` besides ``.npz`` paths.
DATASETS = ("digits", "block")

#: Defaults of ``load_dataset("block")`` (keyword arguments of :func:`make_block_features`).
BLOCK_DEFAULTS = MappingProxyType(
    {"n_classes": 4, "per_class": 100, "c": 0.4, "d": 0.1, "n_test_per_class": 100}
)

_NPZ_REQUIRED = ("X_train", "y_train", "X_test", "y_test")
_NPZ_OPTIONAL = ("class_names", "name", "info")


# --------------------------------------------------------------------------------------------
# digits
# --------------------------------------------------------------------------------------------
def load_digits(*, test_size=0.3, seed=0) -> Dataset:
    """scikit-learn's bundled handwritten digits (no download), split and normalised.

    1,797 images of 8 x 8 pixels (values 0..16), 64 features, 10 classes ``"0".."9"``.

    Steps, all recorded in ``info``:

    1. stratified train/test split: ``sklearn.model_selection.train_test_split(...,
       test_size=test_size, stratify=y, random_state=seed)`` (same arguments, same split);
    2. pixels divided by 16 (to [0, 1]);
    3. the mean of the *training* rows subtracted from train and test rows;
    4. every row (train and test) scaled to unit L2 norm; a row that is all zero after centring
       stays zero.

    Nothing is computed from the test part, so it stays a clean held-out set.

    Parameters
    ----------
    test_size : float, default 0.3
        Fraction of the 1,797 points in the test part, in (0, 1).
    seed : int, default 0
        ``random_state`` of the split (a non-negative int, so the split is reproducible).

    Returns
    -------
    Dataset
        ``X_train`` (n_train, 64), ``y_train`` (n_train,), ``X_test`` (n_test, 64),
        ``y_test`` (n_test,) with n_train + n_test = 1797; ``info`` holds the split indices
        (into scikit-learn's order) and the normalisation.

    Examples
    --------
    >>> ds = load_digits(test_size=0.3, seed=0)
    >>> ds.n_train, ds.n_test, ds.n_features, ds.n_classes
    (1257, 540, 64, 10)
    >>> bool(np.allclose(np.linalg.norm(ds.X_train, axis=1), 1.0))  # unit rows
    True
    """
    from sklearn.datasets import load_digits as _sk_load_digits
    from sklearn.model_selection import train_test_split

    test_size = check_real(test_size, "test_size")
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be a fraction in (0, 1), got {test_size!r}")
    seed = check_int(seed, "seed", low=0)

    X_raw, y = _sk_load_digits(return_X_y=True)
    y = y.astype(np.int64)
    idx = np.arange(y.shape[0])
    idx_train, idx_test = train_test_split(idx, test_size=test_size, stratify=y, random_state=seed)

    X = X_raw.astype(np.float64) / 16.0
    mean = X[idx_train].mean(axis=0)
    X_train, n_zero_train = _center_unit_rows(X[idx_train], mean)
    X_test, n_zero_test = _center_unit_rows(X[idx_test], mean)

    info = {
        "source": "sklearn.datasets.load_digits (bundled, no download)",
        "dataset": "digits",  # train_indices index selfdistill.data.images.load_images("digits", "all")
        "n_samples": int(y.shape[0]),
        "n_features": int(X.shape[1]),
        "split": "sklearn.model_selection.train_test_split(stratify=y)",
        "test_size": test_size,
        "seed": seed,
        "normalisation": [
            "divide pixels by 16",
            "subtract the mean of the training rows (train and test)",
            "scale each row to unit L2 norm (rows all zero after centring stay zero)",
        ],
        "normalisation_fit_on": "train",
        "zero_rows_train": n_zero_train,
        "zero_rows_test": n_zero_test,
        "train_indices": [int(i) for i in idx_train],
        "test_indices": [int(i) for i in idx_test],
    }
    return Dataset(
        X_train=X_train,
        y_train=y[idx_train],
        X_test=X_test,
        y_test=y[idx_test],
        class_names=tuple(str(k) for k in range(10)),
        name="digits",
        info=info,
    )


def _center_unit_rows(X, mean):
    """Return ((X - mean) with rows scaled to unit norm, number of zero rows left at zero)."""
    Z = X - mean
    norms = np.linalg.norm(Z, axis=1)
    zero = norms == 0.0
    Z[~zero] /= norms[~zero, None]
    return Z, int(zero.sum())


# --------------------------------------------------------------------------------------------
# .npz files
# --------------------------------------------------------------------------------------------
def load_npz(path) -> Dataset:
    """Load user features from an ``.npz`` archive.

    The archive must hold ``X_train`` (n, d), ``y_train`` (n,), ``X_test`` (m, d) and
    ``y_test`` (m,) (``m`` may be 0, ``X_test`` of shape (0, d)); optional: ``class_names``
    (K,) strings, ``name`` (a string) and ``info`` (a JSON string), as written by
    :func:`save_npz`. Other arrays are ignored (their keys are listed in ``info``).

    It is read with ``np.load(path, allow_pickle=False)``: archives holding pickled / object
    arrays are refused for safety (loading a pickle can run arbitrary code).

    Labels:

    * float labels must be integer-valued (``2.0`` is read as 2): a non-integer or non-finite
      float (``y + 0.5``, NaN) is a ``ValueError`` naming the array (``y_train`` / ``y_test``) and
      the first offending value; continuous targets are no class labels;
    * integer labels are class indices, as everywhere in selfdistill (the rule of
      ``fit_linear_probe`` and ``distill``, see :func:`selfdistill._validation.check_labels`): a
      negative label is an error naming the array, the value and its index;
    * with ``class_names`` in the file, the labels must be integer indices ``0..K-1`` (a label
      ``>= K`` is an error);
    * otherwise integer labels are kept as they are, with K = the largest label (train and test
      together) + 1 and ``class_names`` ``"0".."K-1"``; a class of ``0..K-1`` that the training
      labels lack warns (below), and so, naming it and its count, does a label that looks stray
      (labels 0..9 and a single 12, which leaves classes 10 and 11 empty). A largest label beyond
      10 classes per point is refused;
    * string labels are encoded with ``np.unique`` over train + test, and the original values
      become ``class_names`` (store label values such as -1/1 or 1..10 as strings to have them
      encoded this way);
    * ``y_train`` must hold at least 2 classes: a file whose training labels are a single class
      is an error naming that class.

    The classes are thus those of ``class_names`` or of the train and test labels together (the
    file plays the part of ``n_classes=``). A class with no training point (one that only
    ``y_test`` holds, or one of ``class_names`` that ``y_train`` lacks) is kept but warns
    (``UserWarning`` naming the class; see :class:`Dataset`): no probe predicts it.

    Parameters
    ----------
    path : str or path-like
        The ``.npz`` file.

    Returns
    -------
    Dataset
        ``name`` is the stored name or the file stem; ``info`` is the stored info (if any) plus an
        ``"npz"`` entry recording the path and how the labels were read.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        The file holds pickled/object arrays or is not an ``.npz`` archive, a required array is
        missing, shapes do not match, features are too large (see
        :func:`selfdistill._validation.check_features`), labels are invalid, or ``y_train`` holds a
        single class.

    Examples
    --------
    >>> import os, tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = os.path.join(tmp, "toy.npz")
    ...     np.savez(path, X_train=np.eye(4), y_train=np.array(["b", "a", "b", "c"]),
    ...              X_test=np.zeros((0, 4)), y_test=np.array([], dtype=str))
    ...     ds = load_npz(path)
    >>> ds.name, ds.class_names, ds.y_train.tolist()  # string labels encoded with np.unique
    ('toy', ('a', 'b', 'c'), [1, 0, 1, 2])
    """
    path_str = os.fspath(path)
    if os.path.isdir(path_str):
        raise IsADirectoryError(f"{path_str!r} is a directory, not a file (load_npz needs an existing .npz file)")
    if not os.path.exists(path_str):
        raise FileNotFoundError(f"no such file: {path_str!r} (load_npz needs an existing .npz file)")
    arrays, ignored = _read_npz(path_str)
    _check_npz_shapes(arrays, path_str)
    try:
        X_train = check_features(arrays["X_train"], "X_train")
        X_test = check_features_maybe_empty(arrays["X_test"], "X_test", n_features=X_train.shape[1])
        y_train, y_test, class_names, label_note = _encode_labels(
            arrays["y_train"], arrays["y_test"], arrays.get("class_names")
        )
        _check_two_classes(y_train, class_names, "class_names" in arrays)
    except ValueError as exc:
        raise ValueError(f"in {path_str!r}: {exc}") from None
    name, info = _npz_name_and_info(arrays, path_str)
    info["npz"] = {"path": os.path.abspath(path_str), "labels": label_note, "ignored_keys": ignored}
    return Dataset(X_train=X_train, y_train=y_train, X_test=X_test, y_test=y_test, class_names=class_names,
                   name=name, info=info)


#: What numpy and zipfile raise on a damaged archive (truncated, empty, bad CRC, bad compression).
_DAMAGED = (zipfile.BadZipFile, EOFError, zlib.error)


def _read_npz(path_str) -> tuple:
    """The known arrays of an .npz file ({key: array}) and the other keys; clear errors for pickles,
    damaged archives and members that are not .npy arrays."""
    try:
        npz = np.load(path_str, allow_pickle=False)
    except ValueError as exc:
        raise ValueError(
            f"{path_str!r} cannot be read without unpickling: it holds pickled/object data (or is not a "
            f"NumPy .npz file); pickled/object arrays are refused for safety. Save plain numeric/string "
            f"arrays instead (numpy said: {exc})"
        ) from None
    except _DAMAGED as exc:
        raise ValueError(f"{path_str!r} is not a valid .npz archive ({type(exc).__name__}: {exc or 'empty file'}); "
                         "it may be truncated or damaged: write it again") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise ValueError(
            f"{path_str!r} holds a single .npy array, not an .npz archive with arrays "
            f"{', '.join(_NPZ_REQUIRED)}"
        )
    with npz:
        keys = set(npz.files)
        missing = [k for k in _NPZ_REQUIRED if k not in keys]
        if missing:
            raise ValueError(
                f"{path_str!r} is missing required array(s) {missing}; an .npz dataset needs "
                f"{list(_NPZ_REQUIRED)} (optional: {list(_NPZ_OPTIONAL)}), found {sorted(keys)}"
            )
        arrays = {key: _read_member(npz, key, path_str) for key in _NPZ_REQUIRED + _NPZ_OPTIONAL if key in keys}
        ignored = sorted(keys - set(_NPZ_REQUIRED) - set(_NPZ_OPTIONAL))
    return arrays, ignored


def _read_member(npz, key, path_str):
    try:
        arr = npz[key]
    except ValueError as exc:
        raise ValueError(
            f"array {key!r} in {path_str!r} is a pickled/object array, which is refused for "
            f"safety (loading pickles can run arbitrary code); store it as a numeric or "
            f"string array (numpy said: {exc})"
        ) from None
    except _DAMAGED as exc:
        raise ValueError(f"{path_str!r} is not a valid .npz archive: member {key!r} cannot be read "
                         f"({type(exc).__name__}: {exc}); it may be damaged: write it again") from None
    if not isinstance(arr, np.ndarray):
        raise ValueError(f"{path_str!r} is not a valid .npz archive: member {key!r} is not a .npy array "
                         f"(got {type(arr).__name__}); write the file with numpy.savez or selfdistill's save_npz")
    return arr


def _check_npz_shapes(arrays, path_str) -> None:
    """X_* are 2-D and y_* 1-D, with matching rows and feature dimensions."""
    X_train, y_train, X_test, y_test = (arrays[k] for k in ("X_train", "y_train", "X_test", "y_test"))
    for key in _NPZ_REQUIRED:
        want = 2 if key.startswith("X") else 1
        if arrays[key].ndim != want:
            raise ValueError(f"{key} in {path_str!r} must be {want}-D, got shape {arrays[key].shape}")
    for X_key, y_key, X, y in (("X_train", "y_train", X_train, y_train), ("X_test", "y_test", X_test, y_test)):
        if X.shape[0] != y.shape[0]:
            raise ValueError(
                f"{X_key} and {y_key} in {path_str!r} disagree: {X_key} has shape {X.shape} but "
                f"{y_key} has shape {y.shape}; they need the same number of rows"
            )
    if X_train.shape[1] != X_test.shape[1]:
        raise ValueError(
            f"X_train and X_test in {path_str!r} have different feature dimensions: X_train has shape "
            f"{X_train.shape}, X_test has shape {X_test.shape}"
        )


def _npz_name_and_info(arrays, path_str) -> tuple:
    """(name, info dict) stored in the file, or (the file stem, {})."""
    name = Path(path_str).stem
    if "name" in arrays:
        name = _scalar_string(arrays["name"], "name", path_str)
    info: dict = {}
    if "info" in arrays:
        text = _scalar_string(arrays["info"], "info", path_str)
        try:
            info = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"'info' in {path_str!r} must be a JSON string: {exc}") from None
        if not isinstance(info, dict):
            raise ValueError(f"'info' in {path_str!r} must be a JSON object, got {type(info).__name__}")
    return name, info


def _scalar_string(arr, key, path_str) -> str:
    arr = np.asarray(arr)
    if arr.ndim != 0 or arr.dtype.kind not in "US":
        raise ValueError(f"{key!r} in {path_str!r} must be a single string, got dtype {arr.dtype} shape {arr.shape}")
    value = arr.item()
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _as_str(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _integer_valued(y) -> bool:
    if y.dtype.kind in "iub":
        return True
    return y.dtype.kind == "f" and bool(np.all(np.isfinite(y))) and bool(np.all(y == np.round(y)))


def _encode_labels(y_train, y_test, class_names):
    """Return (y_train, y_test) as int64 indices, class_names (tuple of str) and a note for info."""
    n, m = y_train.shape[0], y_test.shape[0]
    for key, y in (("y_train", y_train), ("y_test", y_test)):
        if y.dtype.kind == "f" and y.size:
            check_label_values(y, key)  # non-integer floats: an error naming the array and the value
    if class_names is not None:
        name_arr = np.asarray(class_names)
        if name_arr.ndim != 1 or name_arr.dtype.kind not in "US":
            raise ValueError(
                f"class_names must be a 1-D array of strings, got dtype {name_arr.dtype} shape {name_arr.shape}"
            )
        names = tuple(_as_str(v) for v in name_arr.tolist())
        K = len(names)
        hint = f"the file's class_names names {K} classes; labels index them"
        y_tr = check_labels(y_train, "y_train", n_classes=K, hint=hint)
        y_te = check_labels(y_test, "y_test", n_classes=K, hint=hint) if m else np.zeros(0, dtype=np.int64)
        return y_tr, y_te, names, "class indices, class_names stored in the file"
    both = np.concatenate([y_train, y_test]) if m else y_train
    if both.dtype.kind == "f" and not np.all(np.isfinite(both)):
        raise ValueError("labels must be finite, found NaN or inf in y_train/y_test")
    if both.dtype.kind not in "iubfUS":
        raise ValueError(f"labels must be integers or strings, got dtype {both.dtype}")
    if _integer_valued(both):
        return _integer_labels(both.astype(np.int64), n)
    values, codes = np.unique(both, return_inverse=True)
    codes = codes.reshape(-1).astype(np.int64)
    names = tuple(_as_str(v) for v in values.tolist())
    if len(set(names)) != len(names):
        raise ValueError(f"labels map to duplicate class names {names!r}")
    return codes[:n], codes[n:], names, "encoded with np.unique over train+test; class_names are the original values"


def _integer_labels(ints, n):
    """Integer labels of a file without class_names: class indices 0..K-1, K = the largest label + 1 (the
    rule of :func:`selfdistill._validation.check_labels`, so of ``fit_linear_probe`` and ``distill``)."""
    neg = ints < 0
    if neg.any():
        j, key, i = _argmax_in(neg, n)
        raise ValueError(
            f"{key} must hold class indices 0..K-1, got the negative label {int(ints[j])} at index {i} "
            f"({int(neg.sum())} negative label(s) in y_train and y_test): integer labels in an .npz file are class "
            "indices, as for fit_linear_probe and distill; store indices 0..K-1 (with the class names as "
            "class_names), or store the labels as strings (y.astype(str)): string labels are encoded with "
            "np.unique and kept as class_names"
        )
    K = int(ints.max()) + 1
    if K > _MAX_CLASSES_PER_POINT * ints.size:
        j, key, i = _argmax_in(ints, n)
        raise ValueError(
            f"{key} holds the label {K - 1:,} at index {i}: integer labels are class indices, so it would make "
            f"{K:,} classes for {ints.size:,} points (at most {_MAX_CLASSES_PER_POINT} classes per point are "
            "accepted); fix the label, or store the labels as strings (y.astype(str)) to have them encoded with "
            "np.unique"
        )
    note = "integer labels: class indices 0..K-1 (K = largest label + 1), kept as they are"
    return ints[:n], ints[n:], tuple(str(k) for k in range(K)), note


#: A file without class_names whose largest integer label exceeds this many classes per point is refused.
_MAX_CLASSES_PER_POINT = 10


def _argmax_in(a, n):
    """(j, key, i): j = argmax of ``a`` (y_train then y_test, the first n from y_train), entry i of key."""
    j = int(np.argmax(a))
    return (j, "y_train", j) if j < n else (j, "y_test", j - n)


def _check_two_classes(y_train, class_names, from_file: bool) -> None:
    """At least 2 classes among the training labels; the error names the one class y_train holds."""
    held = np.unique(y_train)
    if held.size >= 2:
        return
    k = int(held[0])
    label = f"{class_names[k]!r} (label {k})" if class_names[k] != str(k) else f"label {k}"
    of = f" of the {len(class_names)} classes of the file's class_names" if from_file else ""
    raise ValueError(
        f"y_train holds a single class, {label}{of} (all {y_train.size:,} training points): at least 2 classes "
        "are needed to train (and compare) classifiers; check that the file holds the labels you mean"
    )


def save_npz(path, dataset: Dataset) -> None:
    """Write ``dataset`` to an ``.npz`` archive that :func:`load_npz` reads back.

    Stored arrays: ``X_train``, ``y_train``, ``X_test``, ``y_test``, ``class_names`` (a unicode
    array), ``name`` (a unicode scalar) and ``info`` (``json.dumps(dataset.info)`` as a unicode
    scalar) -- nothing is pickled. The file is written exactly at ``path`` (no ``.npz`` suffix
    is added) and atomically: to a temporary file in the same directory, then ``os.replace``,
    so a reader never sees a half-written file and a failure leaves no temporary file behind.

    Parameters
    ----------
    path : str or path-like
        Destination; its directory must exist.
    dataset : Dataset
        The data to save.

    Examples
    --------
    >>> import os, tempfile
    >>> ds = make_block_features(2, 3, c=0.5, d=0.0, n_test_per_class=1)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     save_npz(os.path.join(tmp, "block.npz"), ds)
    ...     back = load_npz(os.path.join(tmp, "block.npz"))
    >>> back.name == ds.name, bool(np.array_equal(back.X_train, ds.X_train)), back.class_names
    (True, True, ('class_0', 'class_1'))
    """
    if not isinstance(dataset, Dataset):
        raise TypeError(f"dataset must be a selfdistill.data.Dataset, got {type(dataset).__name__}")
    path_str = os.fspath(path)
    # Any: numpy's stub would otherwise match a dict[str, ndarray] against savez(allow_pickle: bool)
    arrays: dict[str, Any] = {
        "X_train": dataset.X_train,
        "y_train": dataset.y_train,
        "X_test": dataset.X_test,
        "y_test": dataset.y_test,
        "class_names": np.array(dataset.class_names, dtype=str),
        "name": np.array(dataset.name, dtype=str),
        "info": np.array(json.dumps(dataset.info), dtype=str),
    }
    with atomic_open(path_str, "wb") as fh:
        np.savez(fh, **arrays)


# --------------------------------------------------------------------------------------------
# dispatcher
# --------------------------------------------------------------------------------------------
def load_dataset(spec, *, seed=0, **kwargs) -> Dataset:
    """Load a dataset by name or path.

    Parameters
    ----------
    spec : str or path-like
        * ``"digits"``: :func:`load_digits` (``kwargs``: ``test_size``);
        * ``"block"``: :func:`make_block_features` with defaults :data:`BLOCK_DEFAULTS`
          (``n_classes=4, per_class=100, c=0.4, d=0.1, n_test_per_class=100``), overridden by
          ``kwargs`` (e.g. ``superclasses=``, ``c_super=``, ``dim=``);
        * a path-like object, a string ending in ``.npz``, or the path of an existing file:
          :func:`load_npz` (no ``kwargs``).
        The names take precedence over a file of the same name; pass ``"./digits"`` for the file.
    seed : int, default 0
        Passed to the loader (ignored for ``.npz`` files).
    **kwargs
        Further keyword arguments of the loader.

    Returns
    -------
    Dataset
        The loaded or generated data.

    Examples
    --------
    >>> ds = load_dataset("block", per_class=5, n_test_per_class=2, seed=0)
    >>> ds.name, ds.n_train, ds.n_test, ds.n_classes
    ('block', 20, 8, 4)
    >>> load_dataset("no-such-data")
    Traceback (most recent call last):
    ...
    ValueError: unknown dataset 'no-such-data': ...
    """
    if isinstance(spec, str) and spec in DATASETS:
        if spec == "digits":
            return load_digits(seed=seed, **kwargs)
        params = dict(BLOCK_DEFAULTS)
        params.update(kwargs)
        return make_block_features(seed=seed, **params)
    is_path = isinstance(spec, os.PathLike) or (
        isinstance(spec, str) and (spec.lower().endswith(".npz") or os.path.exists(spec))
    )
    if is_path:
        if kwargs:
            raise TypeError(f"load_npz takes no options, got {sorted(kwargs)} for {os.fspath(spec)!r}")
        return load_npz(spec)
    choices = f"one of {list(DATASETS)} or the path of an .npz file (arrays {', '.join(_NPZ_REQUIRED)})"
    if not isinstance(spec, str):
        raise TypeError(f"spec must be a str or path-like: {choices}; got {spec!r} ({type(spec).__name__})")
    raise ValueError(f"unknown dataset {spec!r}: spec must be {choices}")

