"""argparse ``type=`` converters and output-path checks shared by every ``selfdistill`` subcommand.

Each converter is built by :func:`argtype` from a constraint of :mod:`selfdistill._validation` (the
types that check the Python API and config files) and raises ``argparse.ArgumentTypeError`` with the
offending text and what was expected, so the error names the option (argparse adds it) and the value.

Output paths (``--output`` folders and files, ``sweep --db``): :func:`check_output_dir` and
:func:`check_output_file` check, creating nothing, that a path can be written, once the other
arguments are valid; :func:`output_errors` turns an ``OSError`` met while creating or writing it
into an :class:`OutputPathError` (``--output 'PATH': reason``, exit status 2).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
from collections.abc import Callable
from typing import Any

from .._validation import BadValueError, Constraint, Integer, Real

__all__ = [
    "argtype",
    "int_at_least",
    "finite_float",
    "positive_float",
    "unit_interval",
    "RATE",
    "FRACTION",
    "OutputPathError",
    "check_output_dir",
    "check_output_file",
    "output_errors",
]


def argtype(constraint: Constraint, parse: Callable[[str], Any] = float, *, what: str = "value",
            rule: str | None = None) -> Callable[[str], Any]:
    """An argparse ``type=`` from a constraint of :mod:`selfdistill._validation` (the one way of checking).

    The converter parses the text with ``parse`` and checks the value against ``constraint``;
    either failing is an ``argparse.ArgumentTypeError`` naming the text: ``invalid WHAT 'TEXT':
    expected ...`` (text that does not parse) or ``invalid WHAT 'TEXT': RULE`` (default: ``must be``
    and the constraint's words, e.g. ``must be an integer >= 1``); argparse adds the option.
    """

    def convert(text: str):
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {what} {text!r}: expected {constraint.describe()}") from None
        try:
            return constraint(value)
        except BadValueError:
            raise argparse.ArgumentTypeError(
                f"invalid {what} {text!r}: {rule or 'must be ' + constraint.describe()}") from None

    return convert


def int_at_least(low: int, rule: str | None = None):
    """A converter to int >= ``low``; ``rule`` replaces the text of the range message."""
    return argtype(Integer(low), int, rule=rule)


#: A finite float.
finite_float = argtype(Real(), what="number", rule="must be finite")
#: A finite float > 0.
positive_float = argtype(Real(0.0, closed="neither"), rule="must be > 0 and finite")


def unit_interval(what: str, rule: str):
    """A converter to a float in [0, 1]; messages call the value ``what`` and state ``rule``."""
    return argtype(Real(0.0, 1.0), what=what, rule=rule)


#: A noise rate in [0, 1].
RATE = unit_interval("rate", "noise rates must be in [0, 1]")
#: Any fraction in [0, 1].
FRACTION = unit_interval("value", "must be in [0, 1]")


# ---------------------------------------------------------------------------- output paths
class OutputPathError(ValueError):
    """An output folder or file that cannot be created or written.

    ``str(exc)`` is ``"<option> '<path>': <reason>"``, which the ``selfdistill`` command prints as
    ``selfdistill: error: --output 'DIR': <reason>`` (exit status 2, like argparse's errors).
    """

    def __init__(self, option: str, path, reason: str):
        self.option, self.path, self.reason = option, os.fspath(path), reason
        super().__init__(f"{option} '{self.path}': {reason}")


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _nearest_existing(path: str) -> str:
    """``path`` or its nearest ancestor that exists (at worst the root or the current folder)."""
    p = os.path.abspath(path)
    while not os.path.lexists(p):
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    return p


def _probe_folder(folder: str, *, make_dir: bool) -> None:
    """Create and remove a temporary folder (or file) in ``folder``: raises the OSError if that fails."""
    if make_dir:
        os.rmdir(tempfile.mkdtemp(prefix=".selfdistill-probe-", dir=folder))
    else:
        fd, tmp = tempfile.mkstemp(prefix=".selfdistill-probe-", dir=folder)
        os.close(fd)
        os.unlink(tmp)


def check_output_dir(path, option: str = "--output") -> None:
    """Check that ``path`` can be (or is) a writable output folder, creating nothing.

    An existing folder must let a file be created in it; a missing one needs its nearest existing
    ancestor to be a folder in which a folder can be created (tried with a temporary folder, which
    is removed at once). Raises :class:`OutputPathError` naming ``option``, the path and the
    reason (a part of the path is a file, permission denied, read-only file system, ...).
    Commands call it once their other arguments are checked and create the folder only when they
    are about to write.
    """
    p = os.fspath(path)
    if os.path.isdir(p):
        try:
            _probe_folder(p, make_dir=False)
        except OSError as exc:
            raise OutputPathError(option, p, f"the folder is not writable ({_why(exc)})") from None
        return
    if os.path.lexists(p):
        raise OutputPathError(option, p, "is a file, expected a directory")
    anc = _nearest_existing(p)
    if not os.path.isdir(anc):
        raise OutputPathError(option, p, f"cannot be created: '{anc}' is a file, expected a directory")
    try:
        _probe_folder(anc, make_dir=True)
    except OSError as exc:
        raise OutputPathError(option, p, f"cannot be created: no folder can be made in '{anc}' ({_why(exc)})") from None


def check_output_file(path, option: str = "--output") -> None:
    """Check that the file ``path`` can be written, creating nothing; its folder must exist.

    Raises :class:`OutputPathError` naming ``option`` when ``path`` is a folder, its folder does
    not exist (or is a file), no file can be created in that folder (tried with a temporary file,
    removed at once) or the file exists and is read-only.
    """
    p = os.fspath(path)
    if os.path.isdir(p):
        raise OutputPathError(option, p, "is a directory, expected a file")
    folder = os.path.dirname(os.path.abspath(p))
    if not os.path.isdir(folder):
        what = "is a file, expected a directory" if os.path.lexists(folder) else "does not exist"
        raise OutputPathError(option, p, f"its folder '{folder}' {what}")
    try:
        _probe_folder(folder, make_dir=False)
    except OSError as exc:
        raise OutputPathError(option, p, f"cannot write in its folder '{folder}' ({_why(exc)})") from None
    if os.path.exists(p) and not os.access(p, os.W_OK):
        raise OutputPathError(option, p, "the file is not writable (permission denied)")


def _concerns(filename, path, is_dir: bool) -> bool:
    """Whether an OSError on ``filename`` is about the output ``path`` (or what is written next to it)."""
    if filename is None:
        return False
    fn, p = os.path.abspath(os.fsdecode(filename)), os.path.abspath(os.fspath(path))
    if is_dir:  # the folder, anything in it, or a parent being created
        return fn == p or fn.startswith(p.rstrip(os.sep) + os.sep) or p.startswith(fn.rstrip(os.sep) + os.sep)
    folder, base = os.path.dirname(p), os.path.basename(p)
    if fn == folder:
        return True
    rel = os.path.relpath(fn, folder)
    first = rel.split(os.sep)[0]
    return not rel.startswith("..") and first.lstrip(".").startswith(base)  # the file, its temp file, base.chunks/


@contextlib.contextmanager
def output_errors(path, option: str = "--output", *, is_dir: bool = True):
    """Turn an ``OSError`` on ``path`` (creating or writing it) into an :class:`OutputPathError`.

    For a folder, errors on it, on anything in it or on a parent being created count; for a file,
    errors on it, on its folder, on its temporary file (``.<name>.*``) or on a sibling whose name
    starts with its name (``<name>.chunks/``). Other ``OSError``s pass unchanged.
    """
    try:
        yield
    except OSError as exc:
        if _concerns(exc.filename, path, is_dir) or _concerns(getattr(exc, "filename2", None), path, is_dir):
            raise OutputPathError(option, path, _why(exc)) from None
        raise
