"""Experiments: the jobs behind ``selfdistill`` subcommands (logic here, the CLI stays thin).

* :mod:`.main_job` -- ``selfdistill run``: distillation gain vs noise rate (the paper's Figure 2),
  resumable task by task.
* :mod:`.config` -- ``selfdistill sweep`` configs (TOML, strictly validated) and their task grid.
* :mod:`.sweep` -- the sweep runner: local worker processes or a Dask cluster.
* :mod:`.store` -- the sweep's SQLite result store (one row per task, kill-safe, resumable).
* :mod:`.baselines` -- tuned-reg teacher, label smoothing, cleanlab filtering, born-again ensemble.
"""

from .main_job import (
    REG_RULE,
    RESULT_COLUMNS,
    ConfigError,
    MainJobConfig,
    MainJobResult,
    config_hash,
    noise_seed,
    read_results_csv,
    run_main_job,
    task_filename,
    write_results_csv,
)
from .config import BASELINES, SweepConfig, SweepConfigError, Task, load_sweep_config
from .store import ResultStore, StoreError, read_rows
from .sweep import SweepError, SweepResult, run_sweep

__all__ = [
    "BASELINES",
    "ResultStore",
    "StoreError",
    "SweepConfig",
    "SweepConfigError",
    "SweepError",
    "SweepResult",
    "Task",
    "load_sweep_config",
    "read_rows",
    "run_sweep",
    "REG_RULE",
    "RESULT_COLUMNS",
    "ConfigError",
    "MainJobConfig",
    "MainJobResult",
    "config_hash",
    "noise_seed",
    "read_results_csv",
    "run_main_job",
    "task_filename",
    "write_results_csv",
]
