"""The forkserver preload of ``selfdistill sweep -j N`` (:func:`.sweep._process_context`).

The forkserver imports this module once; its workers fork from it with the library loaded. The
imports take seconds (scikit-learn, SciPy), and the forkserver notices its driver's death only
after them: :func:`~selfdistill._orphans.forkserver_import_watch` exits it meanwhile if the driver
dies. The watch can cover these imports because the packages above this module (the package root
and :mod:`selfdistill.experiments`) are light and lazy: importing them loads nothing heavy.
"""

from .._orphans import forkserver_import_watch

with forkserver_import_watch():  # a sweep's forkserver exits if its driver dies during these imports
    from . import sweep  # noqa: F401  (the worker's code: runner, baselines, the library below them)
