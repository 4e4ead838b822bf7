"""The theory engine: label averaging in closed form, the exact fixed point, the block model.

* :func:`label_averaging` -- the linearised SD chain P_t = 1/K + A^(t+1) (Y - 1/K),
  A = G (G + K n reg I)^-1, through the eigenbasis of G (from a Gram matrix or, via the thin SVD,
  from features), with test-point predictions and the per-direction label signal.
* :func:`fixed_point`, :func:`exact_chain` -- the exact solution of P = softmax(G (T - P)/(n reg))
  and the exact multi-round chain (SD rounds and the PLL student) built on it.
* :class:`BlockModel` -- the block (and superclass) correlation model in closed form: eigenvalues,
  per-round predictions, noise threshold, minimum rounds, over-averaging, PLL condition.
* :func:`theory_vs_training` -- label averaging beside the trained chain on real features.

Derivations: docs/theory.md.
"""

from .block import BlockModel, BlockSpectrum, agreement_grid, phase_maps
from .spectral import (
    ExactChain,
    LabelAveraging,
    adam_fixed_point,
    exact_chain,
    fixed_point,
    fixed_point_residual,
    label_averaging,
    theory_vs_training,
)

__all__ = [
    "BlockModel",
    "BlockSpectrum",
    "ExactChain",
    "LabelAveraging",
    "adam_fixed_point",
    "agreement_grid",
    "exact_chain",
    "fixed_point",
    "fixed_point_residual",
    "label_averaging",
    "phase_maps",
    "theory_vs_training",
]
