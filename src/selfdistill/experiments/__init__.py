"""Experiments: one config, one task runner, one store, one driver (the CLI stays thin).

* :mod:`.config` -- :class:`ExperimentConfig`, the one config of ``selfdistill run`` and
  ``selfdistill sweep`` (TOML files and run options), validated from one table of constraints.
* :mod:`.runner` -- :func:`compute_task`: one task (noise -> labels -> reg -> chain -> baselines
  -> metrics), the same function in this process, in worker processes and on Dask.
* :mod:`.sweep` -- the driver: which tasks are left, local processes or Dask, into the store.
* :mod:`.store` -- the SQLite result store (one row per task, kill-safe, resumable).
* :mod:`.main_job` -- ``selfdistill run``: a sweep of one dataset plus its files.
* :mod:`.baselines` -- tuned-reg teacher, label smoothing, cleanlab filtering, born-again ensemble.
"""

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
