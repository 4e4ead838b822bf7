"""Writing results safely: atomic file writes, JSON with NumPy values, output folders.

Every writer here goes through the same pattern, so a reader (or a rerun after a crash or a
Ctrl-C) never sees a half-written file:

1. write to a temporary file in the *same directory* as the destination
   (``.<name>.<random>.tmp``, so ``os.replace`` stays on one file system);
2. flush and ``os.fsync`` it;
3. ``os.replace`` it onto the destination (atomic on POSIX and Windows);
4. on *any* exception (``KeyboardInterrupt`` included) the temporary file is removed and the
   exception re-raised; the destination keeps its previous content, if it had one.

The new file gets the usual permissions (``0o666`` minus the umask, or the old file's mode
when it replaces one), not the ``0o600`` of a raw temporary file.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = [
    "atomic_write_text",
    "atomic_write_bytes",
    "atomic_savefig",
    "write_json",
    "read_json",
    "to_jsonable",
    "ensure_output_dir",
    "staged_dir",
    "remove_stale_temporaries",
    "safe_name",
    "settings_differences",
]


def _target_mode(path: str) -> int:
    if os.path.exists(path):
        return os.stat(path).st_mode & 0o7777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb", *, encoding: str | None = None) -> Iterator[IO[Any]]:
    """Yield a file object on a temporary file that replaces ``path`` when the block succeeds.

    Parameters
    ----------
    path : str or os.PathLike
        The destination; its folder must exist.
    mode : str, default "wb"
        A writing mode of :func:`open` ("w" or "wb"); text mode writes newlines as given.
    encoding : str, optional, keyword-only
        Text encoding (text mode only).

    Yields
    ------
    file object
        Open on ``.<name>.<random>.tmp`` in the destination's folder.

    Raises
    ------
    FileNotFoundError
        The folder of ``path`` does not exist.

    Examples
    --------
    >>> import os, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> with atomic_open(os.path.join(tmp.name, "a.bin"), "wb") as fh:
    ...     _ = fh.write(b"abc")
    >>> os.listdir(tmp.name)
    ['a.bin']
    >>> tmp.cleanup()
    """
    path_str = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path_str))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"directory {directory!r} of {path_str!r} does not exist")
    final_mode = _target_mode(path_str)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path_str)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, mode, encoding=encoding, newline="" if "b" not in mode else None) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, final_mode)
        os.replace(tmp, path_str)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    # Best effort: make the rename itself durable (not possible on every platform).
    with contextlib.suppress(OSError, AttributeError):
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    r"""Write ``data`` to ``path`` atomically (temporary file in the same folder, fsync, replace).

    Parameters
    ----------
    path : str or os.PathLike
        The destination; its folder must exist.
    data : bytes
        The new content.

    Raises
    ------
    FileNotFoundError
        The folder of ``path`` does not exist.

    Examples
    --------
    >>> import os, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> atomic_write_bytes(os.path.join(tmp.name, "a.bin"), b"\x00\x01")
    >>> open(os.path.join(tmp.name, "a.bin"), "rb").read()
    b'\x00\x01'
    >>> tmp.cleanup()
    """
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def safe_name(text: object) -> str:
    """Turn ``text`` into one safe file-name component.

    Characters other than letters, digits, ``_``, ``-`` and ``.`` become ``_``, and leading dots
    are dropped (no ``..``, no ``/``, no hidden file). Every name that comes from data (a noise
    kind read from a results database, a dataset name) goes through it before it becomes part of
    a path.

    Parameters
    ----------
    text : object
        Anything; ``str(text)`` is cleaned.

    Returns
    -------
    str
        A non-empty name (``"_"`` when nothing is left).

    Examples
    --------
    >>> safe_name("x/../../ESCAPED")
    'x_.._.._ESCAPED'
    >>> safe_name("class_cluster")
    'class_cluster'
    """
    import re

    return re.sub(r"[^A-Za-z0-9_.\-]", "_", str(text)).lstrip(".") or "_"


def atomic_write_text(path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8") -> None:
    r"""Write ``text`` to ``path`` atomically; newlines are written as given (no translation).

    Parameters
    ----------
    path : str or os.PathLike
        The destination; its folder must exist.
    text : str
        The new content.
    encoding : str, default "utf-8", keyword-only
        Text encoding.

    Raises
    ------
    FileNotFoundError
        The folder of ``path`` does not exist.

    Examples
    --------
    >>> import os, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> atomic_write_text(os.path.join(tmp.name, "a.txt"), "hello\n")
    >>> open(os.path.join(tmp.name, "a.txt"), encoding="utf-8").read()
    'hello\n'
    >>> os.listdir(tmp.name)  # no temporary file left behind
    ['a.txt']
    >>> tmp.cleanup()
    """
    with atomic_open(path, "w", encoding=encoding) as fh:
        fh.write(text)


def atomic_savefig(fig: Any, path: str | os.PathLike[str], **kwargs: Any) -> None:
    r"""Save a matplotlib figure to ``path`` atomically; the format comes from the suffix of ``path``.

    If ``savefig`` raises, no temporary file is left and ``path`` is untouched.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.
    path : str or os.PathLike
        The destination (``.png``, ``.pdf``, ``.svg`` ...; no suffix: PNG); its folder must exist.
    **kwargs
        Passed to ``fig.savefig`` (``dpi=``, ``bbox_inches=`` ...).

    Examples
    --------
    >>> import os, tempfile
    >>> from matplotlib.figure import Figure
    >>> tmp = tempfile.TemporaryDirectory()
    >>> fig = Figure()
    >>> _ = fig.subplots().plot([0, 1])
    >>> atomic_savefig(fig, os.path.join(tmp.name, "f.png"), dpi=50)
    >>> open(os.path.join(tmp.name, "f.png"), "rb").read(4)
    b'\x89PNG'
    >>> tmp.cleanup()
    """
    suffix = Path(os.fspath(path)).suffix.lstrip(".").lower()
    kwargs.setdefault("format", suffix or "png")
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, **kwargs)


def save_figure(fig: Any, path: Any, *, dpi: int = 120) -> Any:
    """Lay out ``fig``, save it atomically to ``path`` and release it (also on error).

    Renders with an Agg canvas of the figure's own (one is attached when the figure has none):
    neither the matplotlib backend nor pyplot's list of figures is touched. A figure made by
    pyplot is closed there afterwards.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.
    path : str or os.PathLike
        The destination; the format comes from its suffix.
    dpi : int, default 120, keyword-only
        Resolution.

    Returns
    -------
    path : str or os.PathLike
        ``path``, as given.

    Examples
    --------
    >>> import os, tempfile
    >>> from matplotlib.figure import Figure
    >>> tmp = tempfile.TemporaryDirectory()
    >>> p = save_figure(Figure(), os.path.join(tmp.name, "f.png"), dpi=50)
    >>> os.path.basename(p), os.path.getsize(p) > 0
    ('f.png', True)
    >>> tmp.cleanup()
    """
    import sys

    from matplotlib.backend_bases import FigureCanvasBase
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    try:
        if type(fig.canvas) is FigureCanvasBase:
            FigureCanvasAgg(fig)
        fig.tight_layout()
        atomic_savefig(fig, path, dpi=dpi)
    finally:
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is not None and getattr(fig.canvas, "manager", None) is not None:
            plt.close(fig)
    return path


def to_jsonable(obj: Any) -> Any:
    """Return ``obj`` with NumPy scalars/arrays, tuples, sets and paths turned into JSON types.

    Non-finite floats (NaN, inf) become ``None`` so the output is strict JSON. Dict keys become
    strings (as ``json`` would do for numbers). Sets become lists sorted by ``repr``; objects
    with a ``to_dict()`` method are converted through it.

    Parameters
    ----------
    obj : object
        None, bool, str, int, float, NumPy scalar or array, dict, list, tuple, set, path, or an
        object with ``to_dict()``; containers are converted recursively.

    Returns
    -------
    object
        The same data made of None, bool, int, float, str, list and dict only.

    Raises
    ------
    TypeError
        A value of any other type (the message names it).

    Examples
    --------
    >>> to_jsonable({"a": np.float64(0.5), 1: np.array([1, 2]), "b": float("nan"), "c": (True, np.bool_(False))})
    {'a': 0.5, '1': [1, 2], 'b': None, 'c': [True, False]}
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return [to_jsonable(v) for v in sorted(obj, key=repr)]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "to_dict"):
        return to_jsonable(obj.to_dict())
    raise TypeError(f"cannot write a {type(obj).__name__} to JSON: {obj!r}")


def write_json(path: str | os.PathLike[str], obj: Any, *, indent: int = 2) -> None:
    """Write ``obj`` as JSON to ``path`` atomically: sorted keys, NumPy types converted.

    Parameters
    ----------
    path : str or os.PathLike
        The destination; its folder must exist.
    obj : object
        Anything :func:`to_jsonable` accepts (NaN and inf are written as null).
    indent : int, default 2, keyword-only
        Indentation of the JSON text.

    Raises
    ------
    TypeError
        ``obj`` holds a value JSON cannot represent.

    Examples
    --------
    >>> import os, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> p = os.path.join(tmp.name, "config.json")
    >>> write_json(p, {"rate": np.float64(0.2), "seeds": np.arange(3)})
    >>> read_json(p)
    {'rate': 0.2, 'seeds': [0, 1, 2]}
    >>> tmp.cleanup()
    """
    text = json.dumps(to_jsonable(obj), indent=indent, sort_keys=True, allow_nan=False)
    atomic_write_text(path, text + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file (the counterpart of :func:`write_json`).

    Parameters
    ----------
    path : str or os.PathLike
        A UTF-8 JSON file.

    Returns
    -------
    object
        The parsed JSON value (dict, list, str, int, float, bool or None).

    Examples
    --------
    See :func:`write_json`.

    >>> import os, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> write_json(os.path.join(tmp.name, "x.json"), [1, None])
    >>> read_json(os.path.join(tmp.name, "x.json"))
    [1, None]
    >>> tmp.cleanup()
    """
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


@contextlib.contextmanager
def staged_dir(path: str | os.PathLike[str], *, name: str = "output_dir") -> Iterator[Path]:
    r"""Yield a temporary folder whose files move into the folder ``path`` only when the block succeeds.

    The files are written into ``.<name>.<random>.tmp`` beside ``path`` (the same file system),
    then each is moved into ``path`` (created if needed) with ``os.replace``; other files already
    in ``path`` are left alone. On any exception the temporary folder is removed and ``path`` is
    left as it was (not created, if it did not exist): a failed report leaves no half-made folder.

    Parameters
    ----------
    path : str or os.PathLike
        The final folder.
    name : str, default "output_dir", keyword-only
        The argument's name, for error messages.

    Yields
    ------
    pathlib.Path
        The temporary folder to write the files into (flat: only its files are moved).

    Raises
    ------
    ValueError
        ``path`` (or a parent) is a file.

    Examples
    --------
    >>> import os, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> out = os.path.join(tmp.name, "report")
    >>> with staged_dir(out) as stage:
    ...     atomic_write_text(stage / "a.md", "# a\n")
    ...     os.path.exists(out)  # nothing there until the block succeeds
    False
    >>> os.listdir(out)
    ['a.md']
    >>> tmp.cleanup()
    """
    import shutil

    final = Path(os.fspath(path))
    if final.exists() and not final.is_dir():
        raise ValueError(f"{name}: output folder '{final}' is a file, expected a directory")
    parent = final.absolute().parent
    ensure_output_dir(parent, name=name)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=parent))
    try:
        yield tmp
        ensure_output_dir(final, name=name)
        for f in sorted(tmp.iterdir()):
            os.replace(f, final / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def remove_stale_temporaries(folder: str | os.PathLike[str], names: Iterable[str]) -> list:
    """Remove the temporary files a killed writer left in ``folder`` for the given file ``names``.

    These are the ``.<name>.<random>.tmp`` files of :func:`atomic_open` whose process was killed
    (``kill -9``) mid-write. Only this module's own temporary-file pattern for those names is
    touched. Call it at the start of a job that owns ``folder`` (one job per folder at a time).

    Parameters
    ----------
    folder : str or os.PathLike
        The output folder.
    names : iterable of str
        The file names whose temporaries to remove (e.g. ``["results.csv"]``).

    Returns
    -------
    list of pathlib.Path
        The files removed.

    Examples
    --------
    >>> import os, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> atomic_write_text(os.path.join(tmp.name, ".results.csv.k3j2.tmp"), "half a fi")
    >>> [p.name for p in remove_stale_temporaries(tmp.name, ["results.csv"])]
    ['.results.csv.k3j2.tmp']
    >>> os.listdir(tmp.name)
    []
    >>> tmp.cleanup()
    """
    folder = Path(os.fspath(folder))
    gone = []
    for name in names:
        for p in folder.glob(f".{name}.*.tmp"):
            with contextlib.suppress(OSError):
                p.unlink()
                gone.append(p)
    return gone


def ensure_output_dir(path: str | os.PathLike[str], *, name: str = "output_dir") -> Path:
    """Create the folder ``path`` (and its parents) if needed and return it as a ``Path``.

    Parameters
    ----------
    path : str or os.PathLike
        The folder.
    name : str, default "output_dir", keyword-only
        The argument's name, for error messages.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        ``path`` (or one of its parents) exists and is a file; the message names ``name``.

    Examples
    --------
    >>> import os, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> ensure_output_dir(os.path.join(tmp.name, "a", "b")).is_dir()
    True
    >>> tmp.cleanup()
    """
    p = Path(os.fspath(path))
    if p.exists() and not p.is_dir():
        raise ValueError(f"{name}: output folder '{p}' is a file, expected a directory")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ValueError(
            f"{name}: output folder '{p}' cannot be created: a part of the path is a file, expected a directory"
        ) from None
    return p


def _flat(settings, prefix=""):
    """``settings`` with nested dicts flattened to dotted keys (``recipe.lr``)."""
    out = {}
    for k, v in settings.items():
        if isinstance(v, Mapping):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _show(v) -> str:
    """A setting's value as short text: lists in brackets, long hashes cut to 8 digits."""
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_show(x) for x in v) + "]"
    if isinstance(v, str):
        return v[:8] if len(v) == 64 and all(c in "0123456789abcdef" for c in v) else v
    return repr(v)


def settings_differences(settings: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    """The settings whose values are not the same in every one of ``settings``.

    Parameters
    ----------
    settings : iterable of dict
        Settings dicts (e.g. :meth:`ResultStore.config_settings` values); nested dicts are
        compared key by key (``recipe.lr``); a missing key counts as None.

    Returns
    -------
    dict of str to list of str
        ``{key: [its value in each dict, as short text]}``, keys sorted.

    Examples
    --------
    >>> settings_differences([{"rounds": 1, "reg": 0.001, "rates": [0.3]}, {"rounds": 2, "reg": 0.001, "rates": [0.5]}])
    {'rates': ['[0.3]', '[0.5]'], 'rounds': ['1', '2']}
    """
    flat = [_flat(s) for s in settings]
    keys = sorted({k for f in flat for k in f})
    return {k: [_show(f.get(k)) for f in flat] for k in keys
            if len({json.dumps(to_jsonable(f.get(k)), sort_keys=True) for f in flat}) > 1}
