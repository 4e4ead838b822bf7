"""Project habits that a reader relies on: the layers, the version in one place."""

from __future__ import annotations

import ast
import importlib.metadata
import sys
from pathlib import Path

import selfdistill

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "src" / "selfdistill"

#: lowest first: a module may import only from its own layer or a lower one (docs/architecture.md)
LAYERS = {"theory": 1, "data": 1, "report": 2, "experiments": 3, "cli": 4, "__main__": 4}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS.get(parts[1], 0) if len(parts) > 1 else 0


def _imports(path: Path):
    """(line, imported module) of every selfdistill import in ``path``, relative ones resolved."""
    mod = _module_name(path)
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("selfdistill"):
                    yield node.lineno, a.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.startswith("selfdistill"):
                target = node.module
            else:
                continue
            names = [target + "." + a.name for a in node.names] if node.module is None else [target]
            for t in names:
                yield node.lineno, t


def test_lower_layers_never_import_higher_ones():
    bad = []
    for path in sorted(PKG.rglob("*.py")):
        if path == PKG / "__init__.py":  # the public API re-exports from every layer
            continue
        src = _module_name(path)
        for line, target in _imports(path):
            if _layer(target) > _layer(src):
                bad.append(f"{path.relative_to(ROOT)}:{line}: {src} (layer {_layer(src)}) imports {target} "
                           f"(layer {_layer(target)})")
    assert not bad, "\n".join(bad)


def test_the_layer_check_sees_a_violation(tmp_path, monkeypatch):
    fake = PKG / "report" / "x.py"  # not written: parse a string under that name
    monkeypatch.setattr(Path, "read_text", lambda self: "from ..experiments import store\nfrom .. import probe\n")
    assert [t for _, t in _imports(fake)] == ["selfdistill.experiments", "selfdistill.probe"]
    assert _layer("selfdistill.experiments") > _layer(_module_name(fake)) > _layer("selfdistill.probe")


def test_the_version_lives_in_one_place():
    text = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in text and "\nversion =" not in text.split("[project.optional")[0]
    assert importlib.metadata.version("selfdistill") == selfdistill.__version__
    assert sys.modules["selfdistill"].__version__.count(".") == 2


def _tool(name):
    """Path of a tool installed with the test extra (beside this interpreter)."""
    import shutil

    path = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    assert path, f"{name} is not installed: pip install '.[test]' installs it"
    return path


def test_ruff_is_clean():
    import subprocess

    res = subprocess.run([_tool("ruff"), "check", "--no-cache", "src", "tests", "benchmarks"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr


def test_mypy_is_clean():
    import subprocess

    res = subprocess.run([_tool("mypy"), "--no-incremental", "--cache-dir", "/dev/null"], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr


def test_no_function_is_longer_than_60_lines():
    """Function bodies (docstring excluded) stay short enough to read at once."""
    long = []
    for path in sorted(PKG.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = node.body
                if isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
                    body = body[1:] or body
                n = (node.end_lineno or node.lineno) - body[0].lineno + 1
                if n > 60:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.name} ({n} lines)")
    assert not long, "\n".join(long)
