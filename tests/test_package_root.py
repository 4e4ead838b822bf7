"""The package root only re-exports, lazily: no watchdog, no heavy import, every name resolves."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import selfdistill

ROOT = Path(__file__).resolve().parents[1]
INIT = ROOT / "src" / "selfdistill" / "__init__.py"


def test_the_root_has_no_watchdog_and_no_with_block():
    tree = ast.parse(INIT.read_text())
    imported = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    imported += [f"{'.' * n.level}{n.module or ''}" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert not [m for m in imported if "_orphans" in m]
    assert not [n for n in ast.walk(tree) if isinstance(n, (ast.With, ast.AsyncWith))]


def test_importing_the_root_loads_nothing_heavy():
    code = ("import sys, selfdistill, selfdistill.experiments; "
            "print(sorted(m for m in ('numpy', 'scipy', 'sklearn') if m in sys.modules)); "
            "print(sorted(m for m in sys.modules if m.startswith('selfdistill')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT / "src"))).stdout.splitlines()
    assert out[0] == "[]"
    assert out[1] == str(["selfdistill", "selfdistill._lazy", "selfdistill._version", "selfdistill.experiments"])


def test_every_public_name_resolves():
    for name in selfdistill.__all__:
        assert getattr(selfdistill, name) is not None, name
    assert set(selfdistill.__all__) <= set(dir(selfdistill))
    import selfdistill.experiments as experiments

    for name in experiments.__all__:
        assert getattr(experiments, name) is not None, name


def test_a_submodule_import_does_not_shadow_the_name_it_re_exports():
    # ``selfdistill.distill`` is the function, also once the submodule of that name is imported
    code = ("import selfdistill.estimator, selfdistill.distill; import selfdistill; "
            "from selfdistill import distill; assert callable(distill) and distill is selfdistill.distill; "
            "assert distill.__module__ == 'selfdistill.distill'; import selfdistill.noise as n; "
            "assert n is selfdistill.noise and selfdistill.theory.__name__ == 'selfdistill.theory'")
    subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ, PYTHONPATH=str(ROOT / "src")))


def test_an_unknown_name_is_an_attribute_error():
    import pytest

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        getattr(selfdistill, "nope")  # noqa: B009
    assert selfdistill.__version__.count(".") == 2
