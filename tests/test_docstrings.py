"""The public API's docstrings: every doctest runs, every public object passes numpydoc's checks.

For each module of :data:`MODULES`:

(a) :func:`doctest.testmod` runs every ``>>>`` example of the module (functions, classes and
    methods defined there, private ones included) and the test asserts that none fails;
(b) :func:`numpydoc.validate.validate` checks every public function and class (the callables
    named in the module's ``__all__``; constants such as ``NOISE_KINDS`` are data, not checked)
    and every public method defined in a public class's own body (inherited ones belong to their
    base class), and the test asserts that none reports one of :data:`CODES` (a module without
    ``__all__`` -- the block model's internal ``theory.block_*`` modules -- is held to it for every
    function and class it defines whose name does not start with ``_``):

    * ``GL08`` -- no docstring at all;
    * ``SS01`` / ``SS03`` -- no one-line summary / a summary not ending in a period: the summary is
      what listings and ``help()`` show first;
    * ``PR01`` / ``PR02`` / ``PR03`` -- a parameter of the signature not documented / a documented
      parameter that the signature lacks / parameters documented in another order than the
      signature's: "one entry per parameter", and the docs cannot drift from the code;
    * ``PR10`` -- ``name: type`` without the space numpydoc needs to parse the entry at all;
    * ``RT01`` -- a function that returns a value without a Returns section;
    * ``EX01`` -- no Examples section: every public function shows a call that (a) runs.

    numpydoc's other codes (style: capitalisation, a period at the end of every parameter
    description, "See Also" sections ...) are not enforced: the project's docstrings phrase
    shapes and formulas in ways those rules reject without making them less clear.

A third-party class that a module re-exports (``ConvergenceWarning``, scikit-learn's, from
``selfdistill.probe``) is skipped: its docstring is not the project's. An object re-exported by
several modules (e.g. ``seeds_text`` in ``report.figures`` and ``report.tables``) is checked
once, under the module that defines it. Extend :data:`MODULES` to cover more of the package.
"""

from __future__ import annotations

import doctest
import importlib
import inspect

import pytest
from numpydoc.validate import validate  # numpydoc is in the "test" extra

#: The modules whose docstrings are held to numpydoc's rules.
MODULES = (
    "selfdistill.noise",
    "selfdistill.targets",
    "selfdistill.model_selection",
    "selfdistill.estimator",
    "selfdistill.metrics",
    "selfdistill._io",
    "selfdistill.report",
    "selfdistill.report.correlation",
    "selfdistill.report.figures",
    "selfdistill.report.html",
    "selfdistill.report.label_issues_html",
    "selfdistill.report.rows",
    "selfdistill.report.sweep_report",
    "selfdistill.report.tables",
    "selfdistill.report.theory_figures",
    "selfdistill.experiments",
    "selfdistill.experiments.config",
    "selfdistill.experiments.runner",
    "selfdistill.experiments.sweep",
    "selfdistill.experiments.store",
    "selfdistill.experiments.main_job",
    "selfdistill.experiments.baselines",
    "selfdistill.probe",
    "selfdistill.distill",
    "selfdistill.label_issues",
    "selfdistill.theory.spectral",
    "selfdistill.theory.block",
    "selfdistill.theory.block_spectrum",
    "selfdistill.theory.block_linear",
    "selfdistill.theory.block_rounds",
    "selfdistill.theory.block_exact",
    "selfdistill.data.dataset",
    "selfdistill.data.loaders",
    "selfdistill.data.synthetic",
    "selfdistill.data.images",
    "selfdistill.data.extract",
    "selfdistill.losses",
)

#: The numpydoc validation codes that fail the test (see the module docstring for why these).
CODES = ("GL08", "SS01", "SS03", "PR01", "PR02", "PR03", "PR10", "RT01", "EX01")


def _public_methods(cls):
    """Names of the public methods and properties defined in ``cls``'s own body."""
    return [name for name, attr in vars(cls).items()
            if not name.startswith("_") and (inspect.isfunction(attr) or isinstance(attr, property))]


def public_names(module):
    """The module's ``__all__``; without one, the functions and classes it defines whose names do
    not start with ``_`` (``theory.block_linear``, ``block_rounds``, ``block_exact``: internal
    modules of functions behind :class:`~selfdistill.theory.BlockModel`'s methods)."""
    if hasattr(module, "__all__"):
        return list(module.__all__)
    return [name for name, obj in vars(module).items()
            if not name.startswith("_") and (inspect.isfunction(obj) or inspect.isclass(obj))
            and obj.__module__ == module.__name__]


def public_objects(modules=MODULES):
    """Sorted import paths of every public function, class and method of ``modules``, each once."""
    paths = set()
    for modname in modules:
        module = importlib.import_module(modname)
        for name in public_names(module):
            obj = getattr(module, name)
            if not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue  # a constant
            obj = inspect.unwrap(obj)
            if not obj.__module__.startswith("selfdistill"):
                continue  # a third-party class re-exported (probe's ConvergenceWarning): not ours to document
            path = f"{obj.__module__}.{obj.__qualname__}"
            paths.add(path)
            if inspect.isclass(obj):
                paths.update(f"{path}.{m}" for m in _public_methods(obj))
    return sorted(paths)


OBJECTS = public_objects()


@pytest.mark.parametrize("modname", MODULES)
def test_doctests_pass(modname):
    module = importlib.import_module(modname)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False,
                             report=True)
    assert result.failed == 0, f"{result.failed} of {result.attempted} doctest examples of {modname} failed"


def test_every_module_is_covered():
    # a listed module that exports nothing, or a collection that finds nothing, would pass vacuously
    for modname in MODULES:
        assert public_names(importlib.import_module(modname)), modname
    assert len(OBJECTS) > 60


@pytest.mark.parametrize("path", OBJECTS)
def test_numpydoc_valid(path):
    errors = [(code, msg) for code, msg in validate(path)["errors"] if code in CODES]
    assert not errors, f"{path}: " + "; ".join(f"{c} {m}" for c, m in errors)
