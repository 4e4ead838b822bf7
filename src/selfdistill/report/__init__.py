"""Tables and figures from result rows (nothing is recomputed).

* :mod:`.rows` -- ``results.csv``: the one writer and reader of result rows.
* :func:`summary_table` -- Markdown: test accuracy and gain over round 0, mean ± std over seeds.
* :func:`plot_gain_vs_rate` -- the paper's Figure 2: gain vs noise rate, grouped bars.
* :func:`plot_accuracy_vs_round` -- test accuracy vs round, PLL students at the right.
* :mod:`.sweep_report` -- ``selfdistill report RESULTS.db``: figures, Markdown/LaTeX/CSV tables and
  one self-contained HTML page (:mod:`.html`) of a sweep.
* :mod:`.correlation` -- ``selfdistill correlation``: class-mean correlation heat map by cluster.
"""

from .figures import plot_accuracy_vs_round, plot_gain_vs_rate
from .rows import CSV_COLUMNS, read_results_csv, write_results_csv
from .tables import aggregate, mean_std, summary_table

__all__ = ["summary_table", "aggregate", "mean_std", "plot_gain_vs_rate", "plot_accuracy_vs_round",
           "CSV_COLUMNS", "read_results_csv", "write_results_csv"]

from .sweep_report import write_report  # noqa: E402  (sweep reports)

__all__ += ["write_report"]
