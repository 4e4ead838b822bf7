"""`selfdistill extract`: features of a (randomly initialised) torchvision backbone on a tiny image folder."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from selfdistill.cli import main  # noqa: E402
from selfdistill.data import extract as ex  # noqa: E402
from selfdistill.data import load_npz  # noqa: E402
from selfdistill.data.extract import ExtractError, extract_features  # noqa: E402

FAST = dict(backbone="resnet18", weights="none", image_size=32, batch_size=4, progress=False)
# On a GPU (the default device when there is one) cuDNN picks algorithms by batch size and may use
# TF32: features agree with the CPU only to ~1e-3.
TOL = dict(rtol=2e-2, atol=5e-3) if torch.cuda.is_available() else dict(rtol=1e-4, atol=1e-5)


def make_folder(root, classes=("cat", "dog", "owl"), per_class=6, seed=0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    for k, c in enumerate(classes):
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            arr = (rng.random((20, 24, 3)) * 80 + 60 * k).astype(np.uint8)
            mode = "L" if i == 0 else "RGB"  # a grayscale image too: converted to RGB
            img = Image.fromarray(arr[..., 0] if mode == "L" else arr, mode=mode)
            img.save(root / c / f"img{i}.{'png' if i % 2 else 'jpg'}")
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("imgs") / "animals")


def test_image_folder_features_and_provenance(tmp_path, folder):
    out = extract_features(str(folder), tmp_path / "f.npz", chunk_size=5, test_size=1 / 3, **FAST)
    ds = load_npz(out)
    assert ds.class_names == ("cat", "dog", "owl")
    assert ds.X_train.shape == (12, 512) and ds.X_test.shape == (6, 512)
    assert np.bincount(ds.y_train).tolist() == [4, 4, 4] and np.bincount(ds.y_test).tolist() == [2, 2, 2]
    assert np.all(np.isfinite(ds.X_train)) and ds.X_train.std() > 0
    info = ds.info
    assert info["backbone"]["backbone"] == "resnet18" and info["backbone"]["removed_layer"] == "fc"
    assert info["backbone"]["weights"].startswith("none")
    assert info["preprocessing"]["resize"] == [32, 32] and info["split"]["split"] == "stratified"
    assert info["torch"] == torch.__version__
    assert not (tmp_path / "f.npz.chunks").exists()  # chunks cleaned up
    # the features are the backbone's penultimate layer: recompute one image by hand
    model, _ = ex.load_backbone("resnet18", "none")
    full = __import__("torchvision").datasets.ImageFolder(str(folder), transform=ex._transform(32))
    split_train = ex._open_dataset(str(folder), root=None, download=False, test_dir=None, test_size=1 / 3, seed=None,
                                   image_size=32)[0]
    x0 = split_train[0][0][None]
    with torch.inference_mode():
        ref = model(x0).numpy()[0]
    np.testing.assert_allclose(ds.X_train[0], ref, **TOL)
    assert len(full) == 18


def test_interrupted_extraction_resumes_from_chunks(tmp_path, folder, monkeypatch):
    ref = load_npz(extract_features(str(folder), tmp_path / "ref.npz", chunk_size=5, **FAST))
    real = ex._chunked_features

    def interrupt_on_test_part(model, ds, part, chunk_dir, **kw):
        if part == "test":
            raise KeyboardInterrupt
        return real(model, ds, part, chunk_dir, **kw)

    monkeypatch.setattr(ex, "_chunked_features", interrupt_on_test_part)
    with pytest.raises(KeyboardInterrupt):
        extract_features(str(folder), tmp_path / "f.npz", chunk_size=5, **FAST)
    chunks = sorted(p.name for p in (tmp_path / "f.npz.chunks").glob("train_*.npz"))
    assert len(chunks) == 3  # 14 training images in chunks of 5
    assert json.loads((tmp_path / "f.npz.chunks" / "manifest.json").read_text())["n_train"] == 14
    monkeypatch.setattr(ex, "_chunked_features", real)

    import torch.utils.data as tud

    seen = []
    real_loader = tud.DataLoader

    def counting_loader(ds, *a, **k):
        seen.append(len(ds))
        return real_loader(ds, *a, **k)

    monkeypatch.setattr(tud, "DataLoader", counting_loader)
    out = load_npz(extract_features(str(folder), tmp_path / "f.npz", chunk_size=5, **FAST))
    assert seen == [4]  # only the test part was computed; the train chunks were reused
    np.testing.assert_array_equal(out.X_train, ref.X_train)
    np.testing.assert_array_equal(out.X_test, ref.X_test)


def test_bad_input(tmp_path, folder, capsys, monkeypatch):
    with pytest.raises(ExtractError, match="unknown backbone 'resnet35'"):
        extract_features(str(folder), tmp_path / "x.npz", backbone="resnet35", weights="none", progress=False)
    with pytest.raises(ExtractError, match="unknown dataset 'imagenet-1k'"):
        extract_features("imagenet-1k", tmp_path / "x.npz", **FAST)
    one = make_folder(tmp_path / "one", classes=("solo",))
    with pytest.raises(ExtractError, match="has 1 class folder.*at least 2"):
        extract_features(str(one), tmp_path / "x.npz", **FAST)
    # offline first: a paper dataset that is not there says what to put where
    with pytest.raises(ExtractError, match=r"dataset cifar100 not found under .*cifar-100-python.*--download"):
        extract_features("cifar100", tmp_path / "x.npz", root=tmp_path / "data", **FAST)
    # ImageNet weights that are not cached: a clear error, no download
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    with pytest.raises(ExtractError, match=r"not in the torch cache: expected .*resnet18.*--download"):
        extract_features(str(folder), tmp_path / "x.npz", backbone="resnet18", weights="DEFAULT", progress=False)
    with pytest.raises(ExtractError, match="no such file"):
        extract_features(str(folder), tmp_path / "x.npz", backbone="resnet18", weights=str(tmp_path / "w.pt"),
                         progress=False)
    assert not (tmp_path / "x.npz").exists()
    # through the CLI: exit 2 and one line
    assert main(["extract", str(one), "-o", str(tmp_path / "x.npz"), "--weights", "none", "-q"]) == 2
    assert "at least 2" in capsys.readouterr().err


def test_cli_extract_then_sweep_ready(tmp_path, folder, capsys):
    out = tmp_path / "cli.npz"
    assert main(["extract", str(folder), "-o", str(out), "--backbone", "resnet18", "--weights", "none",
                 "--image-size", "32", "--batch-size", "8", "--test-size", "0.34", "-q"]) == 0
    ds = load_npz(out)
    assert ds.n_classes == 3 and ds.n_train + ds.n_test == 18 and ds.n_features == 512
    # a state_dict file as weights gives the same features as the module it came from
    import torchvision

    torch.manual_seed(0)  # the initialisation of weights="none"
    w = tmp_path / "w.pt"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), w)
    out2 = extract_features(str(folder), tmp_path / "sd.npz", backbone="resnet18", weights=str(w), image_size=32,
                            test_size=0.34, progress=False)
    np.testing.assert_allclose(load_npz(out2).X_train, ds.X_train, **TOL)
    assert load_npz(out2).info["backbone"]["weights_sha256"]


class _FakeTV:
    """Stands in for a torchvision dataset class: records its arguments, serves blank images."""

    made: list = []

    def __init__(self, root, *, n, labels, categories=None, classes=None, **kwargs):
        self.kwargs = dict(kwargs, root=root)
        self.y = list(labels)
        self.categories = categories
        self.classes = classes
        self.transform = kwargs.get("transform")
        _FakeTV.made.append(self)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        from PIL import Image

        return self.transform(Image.new("RGB", (8, 8), (i % 255, 0, 0))), self.y[i]


def test_paper_splits_caltech256_and_flowers(monkeypatch, tmp_path):
    import torchvision.datasets as tvd

    cats = [f"{k + 1:03d}.c{k}" for k in range(4)] + ["257.clutter"]
    labels = [k for k in range(5) for _ in range(10)]  # 10 images per category, clutter last
    monkeypatch.setattr(tvd, "Caltech256", lambda root, **kw: _FakeTV(root, n=50, labels=labels, categories=cats, **kw))
    train, test, classes, split = ex._open_dataset("caltech256", root=tmp_path, download=False, test_dir=None,
                                                   test_size=0.2, seed=None, image_size=8)
    assert classes == cats[:4]  # clutter dropped
    assert split["seed"] == 42 and split["split"] == "80/20 stratified by class"
    assert len(train) == 32 and len(test) == 8
    ytr = [train.dataset.y[i] for i in train.indices]
    yte = [test.dataset.y[i] for i in test.indices]
    assert np.bincount(ytr).tolist() == [8, 8, 8, 8] and np.bincount(yte).tolist() == [2, 2, 2, 2]
    assert not set(train.indices) & set(test.indices) and 4 not in ytr + yte
    again = ex._open_dataset("caltech256", root=tmp_path, download=False, test_dir=None, test_size=0.2, seed=None,
                             image_size=8)[0]
    assert again.indices == train.indices  # fixed seed: the same split every time
    other = ex._open_dataset("caltech256", root=tmp_path, download=False, test_dir=None, test_size=0.2, seed=7,
                             image_size=8)[0]
    assert other.indices != train.indices

    _FakeTV.made.clear()
    monkeypatch.setattr(tvd, "Flowers102", lambda root, split, **kw: _FakeTV(
        root, n=6 if split == "test" else 3, labels=[0, 1, 2] * (2 if split == "test" else 1), split=split, **kw))
    train, test, classes, split = ex._open_dataset("flowers102", root=tmp_path, download=False, test_dir=None,
                                                   test_size=0.2, seed=None, image_size=8)
    assert [m.kwargs["split"] for m in _FakeTV.made] == ["test", "train"]  # trained on 'test', as the authors did
    assert len(train) == 6 and len(test) == 3 and classes == ["flower_001", "flower_002", "flower_003"]
    assert "as the authors did" in split["split"]
    assert all(m.kwargs["download"] is False for m in _FakeTV.made)  # offline unless asked


def test_any_torch_module_in_python(tmp_path, folder):
    """A user module: per-channel mean of the normalised image, 3 features, checked by hand."""
    module = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    out = load_npz(extract_features(str(folder), tmp_path / "m.npz", model=module, image_size=16, test_size=1 / 3,
                                    progress=False, device="cpu"))
    assert out.X_train.shape == (12, 3) and out.info["backbone"]["backbone"] == "user module Sequential"
    x0 = ex._open_dataset(str(folder), root=None, download=False, test_dir=None, test_size=1 / 3, seed=None,
                          image_size=16)[0][0][0]
    np.testing.assert_allclose(out.X_train[0], x0.mean(dim=(1, 2)).numpy(), rtol=1e-5, atol=1e-6)
