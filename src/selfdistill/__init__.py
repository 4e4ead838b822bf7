"""selfdistill: self-distillation and partial-label refinement of linear probes under label noise.

Implements and checks H. Jeong and H. W. Chung, "Rethinking Self-Distillation: Label Averaging and
Enhanced Soft Label Refinement with Partial Labels", ICLR 2025 (arXiv 2402.10482).

The package root only re-exports, lazily (PEP 562): ``import selfdistill`` loads nothing heavy,
and each name of ``__all__`` is imported from its submodule on first access.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ._lazy import lazy_exports
from ._version import __version__

if TYPE_CHECKING:  # the names, for type checkers and IDEs; at run time __getattr__ imports them
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

#: the submodules re-exported as such
_SUBMODULES = ("noise", "theory")

#: each other re-exported name -> the submodule that defines it
_SOURCES = {
    "PLL_LOSSES": "distill",
    "DistillResult": "distill",
    "distill": "distill",
    "SelfDistillationClassifier": "estimator",
    "LabelIssues": "label_issues",
    "find_label_issues": "label_issues",
    "inspect_labels": "label_issues",
    "select_reg": "model_selection",
    "class_clusters": "noise",
    "corrupt_labels": "noise",
    "transition_matrix": "noise",
    "ConvergenceWarning": "probe",
    "LinearProbe": "probe",
    "fit_linear_probe": "probe",
    "fit_linear_probes": "probe",
    "fit_partial_label_probe": "probe",
    "fit_partial_label_probes": "probe",
    "refine_targets": "targets",
    "topk_mask": "targets",
}

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


__getattr__, __dir__ = lazy_exports(__name__, globals(), _SOURCES, __all__, _SUBMODULES)


class _Root(ModuleType):
    """This package's module type: importing the submodule ``selfdistill.distill`` does not bind it
    over the function ``distill`` of the same name (an eager root bound the function last)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _SOURCES and isinstance(value, ModuleType):
            return  # the import system binding a submodule whose name is a re-exported object
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Root
