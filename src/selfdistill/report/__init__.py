"""Tables and figures from result rows (nothing is recomputed).

* :func:`summary_table` -- Markdown: test accuracy and gain over round 0, mean ± std over seeds.
* :func:`plot_gain_vs_rate` -- the paper's Figure 2: gain vs noise rate, grouped bars.
* :func:`plot_accuracy_vs_round` -- test accuracy vs round, PLL students at the right.
"""

from .figures import plot_accuracy_vs_round, plot_gain_vs_rate
from .tables import aggregate, mean_std, summary_table

__all__ = ["summary_table", "aggregate", "mean_std", "plot_gain_vs_rate", "plot_accuracy_vs_round"]
