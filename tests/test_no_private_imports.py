"""A module's private (underscore) names stay in that module: no other selfdistill module imports them.

What another module needs is a public name of its defining module (kept out of its ``__all__``
when it is package-internal) or is passed in. Private *modules* (``_validation``, ``_backend``,
``data/_checks``, ...) may be imported, and their public names with them.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "src" / "selfdistill"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(dotted: str) -> bool:
    """Whether ``selfdistill.a.b`` names a module or package of this source tree."""
    rel = Path(*dotted.split(".")[1:]) if "." in dotted else Path()
    return (PKG / rel).with_suffix(".py").is_file() or (PKG / rel / "__init__.py").is_file()


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_imports(path: Path, text: str | None = None):
    """(line, source module, imported module, name) for each private name ``path`` imports from selfdistill."""
    mod = _module_name(path)
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    tree = ast.parse(path.read_text() if text is None else text)
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            parts = package.split(".")
            target = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
        elif node.module and (node.module == "selfdistill" or node.module.startswith("selfdistill.")):
            target = node.module
        else:
            continue
        for alias in node.names:
            if not _private(alias.name) or _is_module(target + "." + alias.name):
                continue  # a public name, a dunder (``__version__``) or a (private) module itself
            if target == mod:
                continue  # a module importing from itself is no crossing
            yield node.lineno, mod, target, alias.name


def test_no_module_imports_another_modules_private_names():
    bad = [f"{path.relative_to(ROOT)}:{line}: {src} imports {name} from {target}"
           for path in sorted(PKG.rglob("*.py"))
           for line, src, target, name in private_imports(path)]
    assert not bad, "\n".join(bad)


def test_the_check_sees_a_private_import_and_lets_the_rest_pass():
    fake = PKG / "theory" / "x.py"  # not written: parse a string under that name
    text = (
        "from ..probe import _fit_ce, fit_ce_unchecked\n"
        "from .. import _validation\n"
        "from .._validation import check_features\n"
        "from .._version import __version__\n"
        "from ..cli.argtypes import finite_float as _float\n"
        "def f():\n"
        "    from selfdistill.data._checks import _check_real\n"
    )
    found = [(t, n) for _, _, t, n in private_imports(fake, text)]
    assert found == [("selfdistill.probe", "_fit_ce"), ("selfdistill.data._checks", "_check_real")]
