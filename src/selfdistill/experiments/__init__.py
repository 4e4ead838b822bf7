"""Experiments: one config, one task runner, one store, one driver (the CLI stays thin).

* :mod:`.config` -- :class:`ExperimentConfig`, the one config of ``selfdistill run`` and
  ``selfdistill sweep`` (TOML files and run options), validated from one table of constraints.
* :mod:`.runner` -- :func:`compute_task`: one task (noise -> labels -> reg -> chain -> baselines
  -> metrics), the same function in this process, in worker processes and on Dask.
* :mod:`.sweep` -- the driver: which tasks are left, local processes or Dask, into the store.
* :mod:`.store` -- the SQLite result store (one row per task, kill-safe, resumable).
* :mod:`.main_job` -- ``selfdistill run``: a sweep of one dataset plus its files.
* :mod:`.baselines` -- tuned-reg teacher, label smoothing, cleanlab filtering, born-again ensemble.

The package only re-exports, lazily (PEP 562), as the package root does: importing it (or one of
its modules, e.g. the sweep's forkserver preload :mod:`._preload`) loads none of the others.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:  # the names, for type checkers and IDEs; at run time __getattr__ imports them
    from .config import (
        BASELINES,
        REG_GRID,
        REG_RULE,
        ConfigError,
        ExperimentConfig,
        SweepConfig,
        SweepConfigError,
        Task,
        load_sweep_config,
        run_config,
    )
    from .main_job import MainJobResult, run_main_job
    from .runner import compute_task, noise_seed, prepare_datasets, task_config_hash
    from .store import ResultStore, StoreError, read_rows
    from .sweep import SweepError, SweepResult, run_sweep

#: each re-exported name -> the module of this package that it is imported from
_SOURCES = {
    **dict.fromkeys(["BASELINES", "REG_GRID", "REG_RULE", "ConfigError", "ExperimentConfig", "SweepConfig",
                     "SweepConfigError", "Task", "load_sweep_config", "run_config"], "config"),
    **dict.fromkeys(["MainJobResult", "run_main_job"], "main_job"),
    **dict.fromkeys(["compute_task", "noise_seed", "prepare_datasets", "task_config_hash"], "runner"),
    **dict.fromkeys(["ResultStore", "StoreError", "read_rows"], "store"),
    **dict.fromkeys(["SweepError", "SweepResult", "run_sweep"], "sweep"),
}

__all__ = [
    "BASELINES",
    "REG_GRID",
    "REG_RULE",
    "ConfigError",
    "ExperimentConfig",
    "SweepConfig",
    "SweepConfigError",
    "Task",
    "load_sweep_config",
    "run_config",
    "MainJobResult",
    "run_main_job",
    "compute_task",
    "noise_seed",
    "prepare_datasets",
    "task_config_hash",
    "ResultStore",
    "StoreError",
    "read_rows",
    "SweepError",
    "SweepResult",
    "run_sweep",
]


__getattr__, __dir__ = lazy_exports(__name__, globals(), _SOURCES, __all__)
