"""Experiments: the jobs behind ``selfdistill`` subcommands (logic here, the CLI stays thin).

* :mod:`.main_job` -- ``selfdistill run``: distillation gain vs noise rate (the paper's Figure 2),
  resumable task by task.
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

__all__ = [
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
