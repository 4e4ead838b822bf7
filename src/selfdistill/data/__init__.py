"""Datasets for selfdistill: fixed features with a train/test split.

* :class:`Dataset` -- the container (X_train (n, d), y_train (n,), X_test (m, d), y_test (m,),
  class_names, name, info).
* :func:`load_digits` -- scikit-learn's bundled digits, stratified split, normalised on train.
* :func:`make_block_features`, :func:`block_gram` -- the block correlation model of the theory.
* :func:`load_npz`, :func:`save_npz` -- user features in ``.npz`` archives (no pickles).
* :func:`load_dataset` -- by name (:data:`DATASETS`) or path.
"""

from .dataset import Dataset
from .loaders import BLOCK_DEFAULTS, DATASETS, load_dataset, load_digits, load_npz, save_npz
from .synthetic import block_gram, make_block_features

__all__ = [
    "Dataset",
    "DATASETS",
    "BLOCK_DEFAULTS",
    "load_digits",
    "make_block_features",
    "block_gram",
    "load_npz",
    "save_npz",
    "load_dataset",
]

# Feature extraction (optional dependencies torch, torchvision; imported when called).
from .extract import PAPER_DATASETS, ExtractError, extract_features  # noqa: E402

__all__ += ["extract_features", "ExtractError", "PAPER_DATASETS"]
