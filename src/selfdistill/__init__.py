"""selfdistill: self-distillation and partial-label refinement of linear probes under label noise.

Implements and checks H. Jeong and H. W. Chung, "Rethinking Self-Distillation: Label Averaging and
Enhanced Soft Label Refinement with Partial Labels", ICLR 2025 (arXiv 2402.10482).
"""

from ._orphans import forkserver_import_watch

with forkserver_import_watch():  # a sweep's forkserver exits if its driver dies during these imports
    from . import noise, theory
    from .distill import PLL_LOSSES, DistillResult, distill
    from .estimator import SelfDistillationClassifier
    from .label_issues import LabelIssues, find_label_issues, inspect_labels
    from .model_selection import select_reg
    from .noise import class_clusters, corrupt_labels, transition_matrix
    from .probe import (
        ConvergenceWarning,
        LinearProbe,
        fit_linear_probe,
        fit_linear_probes,
        fit_partial_label_probe,
        fit_partial_label_probes,
    )
    from .targets import refine_targets, topk_mask

from ._version import __version__

__all__ = [
    "ConvergenceWarning",
    "DistillResult",
    "LabelIssues",
    "LinearProbe",
    "PLL_LOSSES",
    "SelfDistillationClassifier",
    "class_clusters",
    "corrupt_labels",
    "distill",
    "find_label_issues",
    "inspect_labels",
    "fit_linear_probe",
    "fit_linear_probes",
    "fit_partial_label_probe",
    "fit_partial_label_probes",
    "noise",
    "theory",
    "refine_targets",
    "select_reg",
    "topk_mask",
    "transition_matrix",
    "__version__",
]
