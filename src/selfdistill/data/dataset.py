"""The :class:`Dataset` container: fixed features with a train/test split."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from .._validation import check_features, check_labels, warn_empty_classes
from ._checks import check_features_maybe_empty

__all__ = ["Dataset"]


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """Fixed features and integer labels, split into a training and a test part.

    Parameters
    ----------
    X_train : array-like of shape (n_train, n_features)
        Training features, stored as a finite float64 array.
    y_train : array-like of shape (n_train,)
        Training labels, integers in ``0..n_classes-1``, stored as int64.
    X_test : array-like of shape (n_test, n_features)
        Test features (``n_test`` may be 0: shape ``(0, n_features)``).
    y_test : array-like of shape (n_test,)
        Test labels in ``0..n_classes-1``.
    class_names : tuple of str, length n_classes
        Names of the classes; label ``k`` means ``class_names[k]``. At least two, no duplicates.
    name : str
        A short name of the dataset (``"digits"``, ``"block"``, a file stem).
    info : dict
        How the data were made and normalised; must be JSON-serialisable.

    Notes
    -----
    Labels: float labels must be integer-valued (``2.0`` is read as 2; ``0.5`` is an error naming
    the field and the value); labels outside ``0..n_classes-1`` are an error. A class with no
    training point (``y_train`` lacks it, e.g. labels 0, 1, 3 of 4 classes, or a class that only
    the test labels hold) is allowed but warns (``UserWarning`` naming the class and its name): a
    probe never predicts such a class, so its test points are always misclassified.

    The dataclass is frozen (fields cannot be reassigned) but the arrays are not copied and not
    made read-only: do not modify them in place. Validation runs in ``__post_init__`` and raises
    ``ValueError`` naming the offending field.

    Examples
    --------
    >>> import numpy as np
    >>> from selfdistill.data import Dataset
    >>> ds = Dataset(np.eye(3), np.array([0.0, 1.0, 1.0]), np.ones((1, 3)), np.array([0]), ("cat", "dog"))
    >>> ds
    Dataset(name='dataset', n_train=3, n_test=1, n_features=3, n_classes=2)
    >>> ds.y_train.dtype, ds.X_train.dtype  # integer-valued float labels become int64
    (dtype('int64'), dtype('float64'))
    >>> Dataset(np.eye(3), np.array([0, 1, 2]), np.zeros((0, 3)), np.zeros(0), ("cat", "dog"))
    Traceback (most recent call last):
    ...
    ValueError: y_train ...
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple
    name: str = "dataset"
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        if isinstance(self.class_names, (str, bytes)):
            raise TypeError(f"class_names must be a sequence of str, got a single string {self.class_names!r}")
        names = tuple(self.class_names)
        for k, nm in enumerate(names):
            if not isinstance(nm, str):
                raise TypeError(f"class_names[{k}] must be a str, got {nm!r} ({type(nm).__name__})")
        names = tuple(str(nm) for nm in names)  # numpy.str_ -> str
        K = len(names)
        if K < 2:
            raise ValueError(f"class_names must name at least 2 classes, got {K}: {names!r}")
        if len(set(names)) != K:
            dup = sorted({nm for nm in names if names.count(nm) > 1})
            raise ValueError(f"class_names must be distinct, got duplicates {dup!r}")
        if not isinstance(self.name, str):
            raise TypeError(f"name must be a str, got {self.name!r} ({type(self.name).__name__})")
        if not isinstance(self.info, dict):
            raise TypeError(f"info must be a dict, got {type(self.info).__name__}")
        try:
            json.dumps(self.info)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"info must be JSON-serialisable: {exc}") from None

        X_train = check_features(self.X_train, "X_train")
        n, dim = X_train.shape
        y_train = np.asarray(self.y_train)
        if y_train.ndim != 1 or y_train.shape[0] != n:
            raise ValueError(
                f"y_train must have shape ({n},) to match X_train of shape {X_train.shape}, "
                f"got shape {y_train.shape}"
            )
        hint = f"class_names names {K} classes; labels index them (give one name per class)"
        y_train = check_labels(y_train, "y_train", n_samples=n, n_classes=K, hint=hint)
        warn_empty_classes(y_train, "y_train", K, names, stacklevel=3)

        X_test = check_features_maybe_empty(self.X_test, "X_test", n_features=dim)
        m = X_test.shape[0]
        y_test = np.asarray(self.y_test)
        if y_test.ndim != 1 or y_test.shape[0] != m:
            raise ValueError(
                f"y_test must have shape ({m},) to match X_test of shape {X_test.shape}, "
                f"got shape {y_test.shape}"
            )
        if m == 0:
            y_test = np.zeros(0, dtype=np.int64)
        else:
            y_test = check_labels(y_test, "y_test", n_samples=m, n_classes=K, hint=hint)

        object.__setattr__(self, "X_train", X_train)
        object.__setattr__(self, "y_train", y_train)
        object.__setattr__(self, "X_test", X_test)
        object.__setattr__(self, "y_test", y_test)
        object.__setattr__(self, "class_names", names)
        object.__setattr__(self, "info", dict(self.info))

    @property
    def n_classes(self) -> int:
        """Number of classes K (= ``len(class_names)``).

        Returns
        -------
        int
            K.

        Examples
        --------
        >>> import numpy as np
        >>> from selfdistill.data import Dataset
        >>> ds = Dataset(np.eye(3), np.array([0, 1, 1]), np.zeros((0, 3)), np.zeros(0), ("cat", "dog"))
        >>> ds.n_classes
        2
        """
        return len(self.class_names)

    @property
    def n_features(self) -> int:
        """Feature dimension d (columns of ``X_train`` and ``X_test``).

        Returns
        -------
        int
            d.

        Examples
        --------
        >>> import numpy as np
        >>> from selfdistill.data import Dataset
        >>> ds = Dataset(np.eye(3), np.array([0, 1, 1]), np.zeros((0, 3)), np.zeros(0), ("cat", "dog"))
        >>> ds.n_features
        3
        """
        return int(self.X_train.shape[1])

    @property
    def n_train(self) -> int:
        """Number of training points n.

        Returns
        -------
        int
            n.

        Examples
        --------
        >>> import numpy as np
        >>> from selfdistill.data import Dataset
        >>> ds = Dataset(np.eye(3), np.array([0, 1, 1]), np.zeros((0, 3)), np.zeros(0), ("cat", "dog"))
        >>> ds.n_train
        3
        """
        return int(self.X_train.shape[0])

    @property
    def n_test(self) -> int:
        """Number of test points m (may be 0).

        Returns
        -------
        int
            m.

        Examples
        --------
        >>> import numpy as np
        >>> from selfdistill.data import Dataset
        >>> ds = Dataset(np.eye(3), np.array([0, 1, 1]), np.zeros((0, 3)), np.zeros(0), ("cat", "dog"))
        >>> ds.n_test
        0
        """
        return int(self.X_test.shape[0])

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, n_train={self.n_train}, n_test={self.n_test}, "
            f"n_features={self.n_features}, n_classes={self.n_classes})"
        )
