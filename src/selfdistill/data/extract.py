"""Penultimate-layer features of pretrained backbones: ``selfdistill extract``.

Needs the optional dependencies torch and torchvision (``pip install 'selfdistill[extract]'``);
they are imported only when a function here runs.

What it does, for a dataset (one of :data:`PAPER_DATASETS` or an ImageFolder directory) and a
backbone (any torchvision classification model by name, or a torch module you pass):

1. **Backbone.** ``torchvision.models.get_model(name)``; its last ``nn.Linear`` (the classifier,
   e.g. ResNet's ``fc``) is replaced by ``nn.Identity``, so the output is the penultimate layer
   (512-d for ResNet-18/34, 2048-d for ResNet-50). Weights: ``"DEFAULT"`` (torchvision's ImageNet
   weights, read from the torch hub cache, ``$TORCH_HOME/hub/checkpoints``), ``"none"`` (random
   initialisation, for tests) or the path of a ``state_dict`` file. Eval mode, no gradients,
   batched, on the GPU when there is one.
2. **Preprocessing** (the authors' code): RGB, ``Resize((S, S))`` (no crop, S = 224), to tensor,
   ImageNet mean/std normalisation. No normalisation of the features (``selfdistill`` probes take
   them as they are).
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
   ImageFolder     one sub-folder per class; ``test_dir`` or a stratified ``test_size`` split
                   (seed 0)
   ==============  =====================================================================

   (The authors' Caltech split is ``train_test_split(test_size=0.2, random_state=42)``
   *without* stratification; we stratify, so every class is in both parts.)
4. **Offline first.** Data come from ``root`` (default ``$SELFDISTILL_DATA`` or
   ``~/.cache/selfdistill/data``) in torchvision's layout; nothing is downloaded unless
   ``download=True``. A missing file raises :class:`ExtractError` saying what to fetch and where.
5. **Resumable.** Features are computed in chunks of ``chunk_size`` images, each written
   atomically to ``<output>.chunks/`` as it finishes, with a manifest of everything that
   determines them; a rerun with the same settings reuses the finished chunks. The chunks are
   removed when the ``.npz`` is written.
6. **Output.** An ``.npz`` read by :func:`selfdistill.data.load_npz` (``X_train``, ``y_train``,
   ``X_test``, ``y_test``, ``class_names``, ``name``, ``info``), ``info`` recording the dataset, the
   split, the backbone, the weights, the preprocessing, torch/torchvision versions and the device.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np

__all__ = ["ExtractError", "PAPER_DATASETS", "extract_features", "load_backbone", "default_data_root"]

#: Dataset names :func:`extract_features` knows (besides ImageFolder paths).
PAPER_DATASETS = ("cifar10", "cifar100", "caltech101", "caltech256", "food101", "stanford_cars", "flowers102")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_IMAGE_EXT = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

# what to fetch, for the error message of a missing dataset (torchvision's layout under root)
_LAYOUT = {
    "cifar10": "cifar-10-python.tar.gz extracted to <root>/cifar-10-batches-py/",
    "cifar100": "cifar-100-python.tar.gz extracted to <root>/cifar-100-python/",
    "caltech101": "101_ObjectCategories.tar.gz (and Annotations.tar) extracted to <root>/caltech101/101_ObjectCategories/",
    "caltech256": "256_ObjectCategories.tar extracted to <root>/caltech256/256_ObjectCategories/",
    "food101": "food-101.tar.gz extracted to <root>/food-101/ (images/, meta/)",
    "stanford_cars": "the Stanford Cars images and devkit in <root>/stanford_cars/ (cars_train/, cars_test/, devkit/, "
                     "cars_test_annos_withlabels.mat) -- torchvision cannot download this one",
    "flowers102": "102flowers.tgz, imagelabels.mat and setid.mat in <root>/flowers-102/",
}


class ExtractError(ValueError):
    """Bad input or a missing file for feature extraction (the message says what to do)."""


def default_data_root() -> Path:
    return Path(os.environ.get("SELFDISTILL_DATA") or Path.home() / ".cache" / "selfdistill" / "data")


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


def load_backbone(name="resnet34", weights="DEFAULT", *, download=False):
    """(model with its classifier replaced by Identity, provenance dict). See the module docstring."""
    torch, torchvision = _torch()
    from torchvision import models

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
        enum = models.get_model_weights(name)
        wobj = enum.DEFAULT if w.upper() == "DEFAULT" else getattr(enum, w, None)
        if wobj is None:
            raise ExtractError(f"backbone {name!r} has no weights {w!r}; it has {[x.name for x in enum]}")
        fname = os.path.basename(wobj.url)
        cached = Path(torch.hub.get_dir()) / "checkpoints" / fname
        if not cached.is_file() and not download:
            raise ExtractError(
                f"the ImageNet weights of {name} ({enum.__name__}.{wobj.name}) are not in the torch cache: expected "
                f"{cached}. Download {wobj.url} to that path (or set TORCH_HOME), pass --download to let torchvision "
                "fetch it, or pass --weights PATH of a state_dict file")
        model = models.get_model(name, weights=wobj)
        info.update(weights=f"{enum.__name__}.{wobj.name}", weights_file=fname)
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
    return model.eval(), info


def _sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ------------------------------------------------------------------------------------ datasets
def _transform(image_size):
    from torchvision import transforms

    return transforms.Compose([
        transforms.Lambda(lambda im: im.convert("RGB")),
        transforms.Resize((image_size, image_size)),
        transforms.ToTensor(),
        transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


def _labels_of(ds):
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


def _open_dataset(dataset, *, root, download, test_dir, test_size, seed, image_size):
    """(train torch dataset, test torch dataset, class names, split info)."""
    torch, torchvision = _torch()
    from torch.utils.data import Subset
    from torchvision import datasets as tvd

    tf = _transform(image_size)
    name = str(dataset)
    if name.lower() not in PAPER_DATASETS:
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

    name = name.lower()
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


def extract_features(dataset, output, *, backbone="resnet34", weights="DEFAULT", model=None, root=None,
                     download=False, test_dir=None, test_size=0.2, seed=None, batch_size=128, chunk_size=2048,
                     image_size=224, device=None, num_workers=0, progress=True) -> Path:
    """Extract features of ``dataset`` and write them to ``output`` (.npz). Returns the path.

    ``model``: a torch module mapping a batch of images (B, 3, S, S) to features (B, d); when given,
    ``backbone`` and ``weights`` are only recorded. Everything else: see the module docstring.
    """
    torch, torchvision = _torch()
    from .dataset import Dataset
    from .datasets import save_npz

    output = Path(output)
    if not output.parent.is_dir():
        raise ExtractError(f"--output: folder {str(output.parent)!r} does not exist")
    if str(dataset).lower() not in PAPER_DATASETS and not Path(str(dataset)).exists():
        raise ExtractError(f"unknown dataset {str(dataset)!r}: expected one of {list(PAPER_DATASETS)} or an "
                           "ImageFolder directory (one sub-folder of images per class)")
    if model is None:
        model, binfo = load_backbone(backbone, weights, download=download)
    else:
        binfo = {"backbone": f"user module {type(model).__name__}", "weights": "as passed"}
        model = model.eval()
    train, test, classes, split = _open_dataset(dataset, root=root, download=download, test_dir=test_dir,
                                                test_size=test_size, seed=seed, image_size=image_size)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = model.to(device)
    prep = {"resize": [image_size, image_size], "crop": None, "to": "RGB, [0, 1]", "normalize_mean": IMAGENET_MEAN,
            "normalize_std": IMAGENET_STD, "source": "the authors' code: Resize((224, 224)), ToTensor, Normalize"}
    manifest = {"dataset": str(dataset), "split": split, "backbone": binfo, "preprocessing": prep,
                "n_train": len(train), "n_test": len(test), "chunk_size": chunk_size, "classes": classes}
    key = hashlib.sha256(json.dumps(manifest, sort_keys=True, default=str).encode()).hexdigest()[:16]
    chunk_dir = output.with_name(output.name + ".chunks")
    if chunk_dir.is_dir():
        try:
            old = json.loads((chunk_dir / "manifest.json").read_text())
        except (OSError, ValueError):
            old = {}
        if old.get("key") != key:
            shutil.rmtree(chunk_dir)  # chunks of other settings: not reusable
    chunk_dir.mkdir(exist_ok=True)
    (chunk_dir / "manifest.json").write_text(json.dumps({"key": key, **manifest}, indent=1, default=str))

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(train) + len(test), unit="img", desc=f"extract {Path(str(dataset)).name}")
    try:
        common = dict(chunk_size=chunk_size, batch_size=batch_size, device=device, num_workers=num_workers, bar=bar)
        X_tr, y_tr = _chunked_features(model, train, "train", chunk_dir, **common)
        X_te, y_te = _chunked_features(model, test, "test", chunk_dir, **common)
    finally:
        if bar is not None:
            bar.close()
    info = {
        "source": "selfdistill extract",
        "dataset": str(dataset),
        "split": split,
        "backbone": binfo,
        "feature": "penultimate layer (input of the removed classifier), float32 -> float64, not normalised",
        "preprocessing": prep,
        "device": str(device),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "n_train": int(X_tr.shape[0]),
        "n_test": int(X_te.shape[0]),
    }
    name = Path(str(dataset)).name.lower() if str(dataset).lower() not in PAPER_DATASETS else str(dataset).lower()
    present = sorted(set(np.unique(y_tr)) | set(np.unique(y_te)))
    if len(present) < len(classes):
        info["classes_without_images"] = [classes[k] for k in range(len(classes)) if k not in present]
    save_npz(output, Dataset(X_train=X_tr, y_train=y_tr, X_test=X_te, y_test=y_te, class_names=tuple(classes),
                             name=f"{name}_{binfo['backbone']}".replace(" ", "_"), info=info))
    shutil.rmtree(chunk_dir, ignore_errors=True)
    return output
