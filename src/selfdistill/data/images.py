"""Grayscale image datasets read offline as arrays: Fashion-MNIST and scikit-learn's digits.

These are the raw images behind ``selfdistill extract fashion_mnist`` / ``extract digits`` (the
feature files record, per point, the index into these arrays, so a page can show a flagged image).
NumPy only: no torch needed to read them.

* ``fashion_mnist``: 60,000 training / 10,000 test images, 28 x 28, 10 classes, read from the idx
  files (``train-images-idx3-ubyte[.gz]`` ...). Looked for, in order: ``<root>/FashionMNIST/raw/``
  (torchvision's layout) and ``<root>/`` itself when ``root`` is given; otherwise
  ``<default root>/FashionMNIST/raw/`` and the Debian package ``dataset-fashion-mnist``
  (``/usr/share/datasets/fashion-mnist/``).
* ``digits``: scikit-learn's bundled 1,797 images of 8 x 8 pixels (values 0..16, scaled to 0..255
  here), one part ``"all"``; the caller splits it.

:func:`source_images` goes the other way: from a feature file's ``info`` (``dataset`` and
``train_indices``, as ``selfdistill extract`` and :func:`selfdistill.data.load_digits` record them)
to the image behind each training row.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

__all__ = ["IMAGE_DATASETS", "FASHION_MNIST_CLASSES", "DEBIAN_FASHION_MNIST", "load_images", "find_fashion_mnist",
           "read_idx", "default_data_root", "source_images"]

#: Names :func:`load_images` knows.
IMAGE_DATASETS = ("fashion_mnist", "digits")

#: Fashion-MNIST's class names, label k = FASHION_MNIST_CLASSES[k] (as in the dataset's README).
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                         "Ankle boot")

#: Where the Debian package ``dataset-fashion-mnist`` puts the idx files.
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

_FMNIST_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                 "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def read_idx(path) -> np.ndarray:
    """Read an idx file (the MNIST format; gzipped when the name ends in ``.gz``) into a uint8 array.

    Parameters
    ----------
    path : str or path-like
        The file. Header: two zero bytes, the type code 0x08 (unsigned byte), the number of
        dimensions, then each dimension as a big-endian int32.

    Returns
    -------
    numpy.ndarray of uint8, shape given by the header (e.g. (60000, 28, 28) or (60000,))

    Raises
    ------
    ValueError
        The file is not an idx file of unsigned bytes, or its size disagrees with its header.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "tiny-idx1-ubyte")
    >>> with open(path, "wb") as fh:  # 3 labels: header 00 00 08 01, size 3, then the bytes
    ...     _ = fh.write(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 9]))
    >>> read_idx(path).tolist()
    [7, 2, 9]
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{str(path)!r} is not an idx file of unsigned bytes (header {data[:4]!r})")
    ndim = data[3]
    shape = tuple(int(v) for v in np.frombuffer(data, dtype=">i4", count=ndim, offset=4))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise ValueError(f"{str(path)!r}: header says shape {shape} ({int(np.prod(shape))} bytes), "
                         f"the file holds {body.size} (truncated or damaged)")
    return body.reshape(shape)


def default_data_root() -> Path:
    """Where datasets live by default: ``$SELFDISTILL_DATA``, else ``~/.cache/selfdistill/data``.

    Returns
    -------
    pathlib.Path
        The folder (not created here).

    Examples
    --------
    >>> import os
    >>> os.environ["SELFDISTILL_DATA"] = "/data/mine"
    >>> str(default_data_root())
    '/data/mine'
    >>> del os.environ["SELFDISTILL_DATA"]
    """
    return Path(os.environ.get("SELFDISTILL_DATA") or Path.home() / ".cache" / "selfdistill" / "data")


def find_fashion_mnist(root=None) -> Path:
    """The folder holding Fashion-MNIST's four idx files (see the module docstring for the search order).

    Parameters
    ----------
    root : str or path-like, optional
        Look in ``root/FashionMNIST/raw`` (torchvision's layout) and ``root`` only; default:
        ``default_data_root()/FashionMNIST/raw``, then the Debian package's folder.

    Returns
    -------
    pathlib.Path
        The first folder that holds the four files (each plain or ``.gz``).

    Raises
    ------
    FileNotFoundError
        None of the places holds the four files; the message lists where it looked and how to
        install them.

    Examples
    --------
    >>> import tempfile
    >>> try:
    ...     find_fashion_mnist(tempfile.mkdtemp())  # an empty folder
    ... except FileNotFoundError as exc:
    ...     print("dataset-fashion-mnist" in str(exc))
    True
    """
    if root is not None:
        places = [Path(root) / "FashionMNIST" / "raw", Path(root)]
    else:
        places = [default_data_root() / "FashionMNIST" / "raw", DEBIAN_FASHION_MNIST]
    names = [n for pair in _FMNIST_FILES.values() for n in pair]
    for place in places:
        if all((place / n).is_file() or (place / f"{n}.gz").is_file() for n in names):
            return place
    raise FileNotFoundError(
        f"Fashion-MNIST not found: looked for {', '.join(n + '[.gz]' for n in names)} in "
        f"{', '.join(repr(str(p)) for p in places)}. Install the Debian package (apt-get install "
        "dataset-fashion-mnist, which puts them in /usr/share/datasets/fashion-mnist/) or put them in "
        "<root>/FashionMNIST/raw/ (torchvision's layout) and pass root / --root")


def _read_fashion_mnist(part, root):
    place = find_fashion_mnist(root)
    arrays = []
    for n in _FMNIST_FILES[part]:
        path = place / n if (place / n).is_file() else place / f"{n}.gz"
        arrays.append(read_idx(path))
    images, labels = arrays
    if images.ndim != 3 or labels.shape != (images.shape[0],):
        raise ValueError(f"Fashion-MNIST {part} in {str(place)!r}: images {images.shape} and labels {labels.shape} "
                         "do not match")
    return images, labels.astype(np.int64), {"source": str(place), "files": list(_FMNIST_FILES[part])}


def load_images(name, part, *, root=None):
    """The raw images of a grayscale dataset, in the dataset's own order.

    Parameters
    ----------
    name : {"fashion_mnist", "digits"}
    part : str
        ``"train"`` or ``"test"`` for Fashion-MNIST; ``"all"`` for digits.
    root : str or path-like, optional
        Fashion-MNIST only: where to look first (see the module docstring).

    Returns
    -------
    images : numpy.ndarray of uint8, shape (n, h, w)
        28 x 28 for Fashion-MNIST, 8 x 8 for digits (0..16 scaled by 255/16 and rounded).
    labels : numpy.ndarray of int64, shape (n,)
    class_names : tuple of str
    provenance : dict
        Where the images were read from.

    Examples
    --------
    >>> images, labels, classes, _ = load_images("digits", "all")
    >>> images.shape, classes[3]
    ((1797, 8, 8), '3')
    """
    if name == "fashion_mnist":
        if part not in _FMNIST_FILES:
            raise ValueError(f"part {part!r}: Fashion-MNIST has parts 'train' and 'test'")
        images, labels, prov = _read_fashion_mnist(part, root)
        return images, labels, FASHION_MNIST_CLASSES, prov
    if name == "digits":
        if part != "all":
            raise ValueError(f"part {part!r}: digits has one part, 'all' (split it yourself)")
        from sklearn.datasets import load_digits as _sk_load_digits

        bunch = _sk_load_digits()
        images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)
        return images, bunch.target.astype(np.int64), tuple(str(k) for k in range(10)), {
            "source": "sklearn.datasets.load_digits (bundled), pixels 0..16 scaled by 255/16"}
    raise ValueError(f"unknown image dataset {name!r}: expected one of {list(IMAGE_DATASETS)}")


#: The part of :func:`load_images` that a feature file's ``train_indices`` index, per dataset.
_TRAIN_PART = {"fashion_mnist": "train", "digits": "all"}


def source_images(info, *, n_train=None, root=None):
    """The images behind the training rows of a feature file, from the file's ``info`` record.

    ``selfdistill extract fashion_mnist`` / ``extract digits`` (and :func:`selfdistill.data.load_digits`)
    record ``info["dataset"]`` and ``info["train_indices"]``: training row i is image
    ``train_indices[i]`` of Fashion-MNIST's official training set (``load_images(name, "train")``)
    or of scikit-learn's digits (``load_images("digits", "all")``). Fashion-MNIST is looked for first
    in the folder the extraction read (``info["split"]["source"]``), then as :func:`load_images` does.

    Parameters
    ----------
    info : dict
        A feature file's ``info`` (``Dataset.info``).
    n_train : int, optional
        The file's number of training rows; when given, ``train_indices`` must have that length.
    root : str or path-like, optional
        Fashion-MNIST only: where to look instead of the recorded folder (see :func:`find_fashion_mnist`).

    Returns
    -------
    images : numpy.ndarray of uint8, shape (N, h, w)
        The whole source set, in its own order.
    indices : numpy.ndarray of int64, shape (n_train,)
        Row i's image is ``images[indices[i]]``.
    part : str
        The source set, e.g. ``"fashion_mnist train"`` or ``"digits"``.

    Raises
    ------
    LookupError
        ``info`` records no source images (no ``dataset`` / ``train_indices``, or a dataset whose
        images this module cannot read, such as an ImageFolder); the message says which.
    FileNotFoundError
        The dataset's files are not installed (Fashion-MNIST: the message says how to install them).
    ValueError
        ``train_indices`` does not match the file (length) or the source set (out of range).

    Examples
    --------
    >>> from selfdistill.data import load_digits
    >>> ds = load_digits(seed=0)
    >>> images, indices, part = source_images(ds.info, n_train=ds.n_train)
    >>> images.shape, indices.shape, part
    ((1797, 8, 8), (1257,), 'digits')
    >>> source_images({"source": "my own features"})
    Traceback (most recent call last):
    ...
    LookupError: the file's info records no source images ...
    """
    info = info if isinstance(info, dict) else {}
    name, indices = info.get("dataset"), info.get("train_indices")
    if not isinstance(name, str) or not isinstance(indices, list):
        raise LookupError("the file's info records no source images (no 'dataset' and 'train_indices', as "
                          "'selfdistill extract' writes)")
    if name.lower() not in _TRAIN_PART:
        raise LookupError(f"the images of dataset {name!r} cannot be read back (only {', '.join(IMAGE_DATASETS)})")
    name = name.lower()
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if n_train is not None and idx.size != n_train:
        raise ValueError(f"info records {idx.size} training images but the file has {n_train} training rows")
    images = _load_recorded(name, info, root)
    if idx.size and (idx.min() < 0 or idx.max() >= images.shape[0]):
        raise ValueError(f"train_indices out of range for {name} ({images.shape[0]} images): "
                         f"{int(idx.min())}..{int(idx.max())}")
    part = _TRAIN_PART[name]
    return images, idx, name if part == "all" else f"{name} {part}"


def _load_recorded(name, info, root):
    """The source set's images, trying the folder the extraction recorded first (Fashion-MNIST)."""
    part = _TRAIN_PART[name]
    split = info.get("split")
    recorded = split.get("source") if isinstance(split, dict) else None
    if root is None and name == "fashion_mnist" and isinstance(recorded, str) and os.path.isdir(recorded):
        try:
            return load_images(name, part, root=recorded)[0]
        except FileNotFoundError:
            pass
    return load_images(name, part, root=root)[0]
