"""Lazy re-exports for a package's ``__init__`` (PEP 562), standard library only."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def lazy_exports(package: str, namespace: dict, sources: Mapping[str, str], exported: Iterable[str],
                 submodules: Iterable[str] = ()) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for the package ``package`` whose globals are ``namespace``: a name of
    ``sources`` is imported from ``package.<its source module>`` on first access and kept in
    ``namespace``; a name of ``submodules`` is that submodule.

    Examples
    --------
    >>> ns = {}
    >>> get, names = lazy_exports("selfdistill", ns, {"softmax": "losses"}, ["softmax"])
    >>> get("softmax") is ns["softmax"], "softmax" in names()
    (True, True)
    """
    subs = frozenset(submodules)
    names = frozenset(exported)

    def get(name: str) -> Any:
        if name in subs:
            return importlib.import_module(f"{package}.{name}")  # the import binds it in the package
        source = sources.get(name)
        if source is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{source}"), name)
        namespace[name] = value  # resolved once: later lookups find it there
        return value

    def names_of() -> list[str]:
        return sorted(set(namespace) | names)

    return get, names_of
