"""Tests of selfdistill.data: digits, the block correlation model, .npz files, the dispatcher."""

import json
import os

import numpy as np
import pytest

from selfdistill.data import (
    BLOCK_DEFAULTS,
    DATASETS,
    Dataset,
    block_gram,
    load_dataset,
    load_digits,
    load_npz,
    make_block_features,
    save_npz,
)


def _all_points(ds):
    return np.vstack([ds.X_train, ds.X_test]), np.concatenate([ds.y_train, ds.y_test])


# ------------------------------------------------------------------------------------------
# Dataset
# ------------------------------------------------------------------------------------------
def _tiny(**over):
    kw = dict(
        X_train=np.eye(4, 3),
        y_train=np.array([0, 1, 0, 1]),
        X_test=np.ones((2, 3)),
        y_test=np.array([1, 0]),
        class_names=("a", "b"),
        name="tiny",
        info={"k": 1},
    )
    kw.update(over)
    return Dataset(**kw)


def test_dataset_fields_and_dtypes():
    ds = _tiny(y_train=[0, 1, 0, 1], class_names=["a", "b"])
    assert ds.X_train.dtype == np.float64 and ds.y_train.dtype == np.int64
    assert ds.y_test.dtype == np.int64
    assert ds.class_names == ("a", "b") and isinstance(ds.class_names, tuple)
    assert (ds.n_classes, ds.n_features, ds.n_train, ds.n_test) == (2, 3, 4, 2)
    assert "n_train=4" in repr(ds)
    with pytest.raises(AttributeError):
        ds.name = "other"  # frozen


def test_dataset_empty_test_set_allowed():
    ds = _tiny(X_test=np.zeros((0, 3)), y_test=np.zeros(0, dtype=int))
    assert ds.n_test == 0 and ds.X_test.shape == (0, 3) and ds.y_test.dtype == np.int64


@pytest.mark.parametrize(
    "over, match",
    [
        (dict(y_train=np.array([0, 1, 0])), "y_train"),
        (dict(y_train=np.array([0, 1, 2, 1])), "y_train"),
        (dict(y_test=np.array([1, -1])), "y_test"),
        (dict(X_test=np.ones((2, 4))), "X_test"),
        (dict(y_test=np.array([1])), "y_test"),
        (dict(class_names=("a",)), "class_names"),
        (dict(class_names=("a", "a")), "class_names"),
        (dict(X_train=np.full((4, 3), np.nan)), "X_train"),
        (dict(info={"a": object()}), "info"),
    ],
)
def test_dataset_validation(over, match):
    with pytest.raises(ValueError, match=match):
        _tiny(**over)


# ------------------------------------------------------------------------------------------
# digits
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits():
    return load_digits()


def test_digits_shapes_and_classes(digits):
    assert digits.n_train + digits.n_test == 1797
    assert digits.X_train.shape[1] == digits.X_test.shape[1] == 64
    assert digits.n_classes == 10 and digits.class_names == tuple(str(k) for k in range(10))
    assert digits.name == "digits"
    assert set(np.unique(digits.y_train)) == set(range(10))
    json.dumps(digits.info)
    assert digits.info["seed"] == 0 and digits.info["test_size"] == 0.3


def test_digits_stratified(digits):
    y = np.concatenate([digits.y_train, digits.y_test])
    for k in range(10):
        n_k = np.sum(y == k)
        assert abs(np.sum(digits.y_test == k) - 0.3 * n_k) <= 1


def test_digits_normalisation(digits):
    norms = np.linalg.norm(digits.X_train, axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-12)
    test_norms = np.linalg.norm(digits.X_test, axis=1)
    assert np.all((np.abs(test_norms - 1) < 1e-12) | (test_norms == 0))
    # Reproduce the documented recipe from scikit-learn's raw data and the stored indices.
    from sklearn.datasets import load_digits as sk_load

    X_raw, y_raw = sk_load(return_X_y=True)
    tr, te = digits.info["train_indices"], digits.info["test_indices"]
    assert sorted(tr + te) == list(range(1797))
    X = X_raw / 16.0
    Z = X[tr] - X[tr].mean(axis=0)
    Z /= np.linalg.norm(Z, axis=1, keepdims=True)
    np.testing.assert_allclose(digits.X_train, Z, atol=1e-12)
    np.testing.assert_array_equal(digits.y_train, y_raw[tr])
    np.testing.assert_array_equal(digits.y_test, y_raw[te])


def test_digits_split_reproducible(digits):
    again = load_digits()
    np.testing.assert_array_equal(again.X_train, digits.X_train)
    np.testing.assert_array_equal(again.y_test, digits.y_test)
    other = load_digits(seed=1, test_size=0.2)
    assert other.n_test == 360
    assert other.info["train_indices"] != digits.info["train_indices"]


def test_digits_bad_args():
    with pytest.raises(ValueError, match="test_size"):
        load_digits(test_size=1.5)
    with pytest.raises(ValueError, match="seed"):
        load_digits(seed=-1)


# ------------------------------------------------------------------------------------------
# block model
# ------------------------------------------------------------------------------------------
def test_block_exact_gram():
    ds = make_block_features(3, 5, 0.6, 0.2, n_test_per_class=2)
    X, y = _all_points(ds)
    G = X @ X.T
    same = y[:, None] == y[None, :]
    expected = np.where(same, 0.6, 0.2)
    np.fill_diagonal(expected, 1.0)
    np.testing.assert_allclose(G, expected, atol=1e-12, rtol=0)
    assert ds.X_train.shape == (15, 1 + 3 + 15 + 6)
    np.testing.assert_array_equal(ds.y_train, np.repeat(np.arange(3), 5))
    np.testing.assert_array_equal(ds.y_test, np.repeat(np.arange(3), 2))
    assert ds.info["c"] == 0.6 and ds.info["d"] == 0.2 and ds.info["dim"] is None
    json.dumps(ds.info)


def test_block_superclasses_and_unequal_sizes():
    sizes = [2, 3, 4, 1]
    sup = np.array([7, 7, 3, 3])  # arbitrary ids
    ds = make_block_features(4, sizes, 0.7, 0.05, superclasses=sup, c_super=0.3, n_test_per_class=[1, 0, 2, 1])
    np.testing.assert_array_equal(np.bincount(ds.y_train), sizes)
    np.testing.assert_array_equal(np.bincount(ds.y_test, minlength=4), [1, 0, 2, 1])
    X, y = _all_points(ds)
    G = X @ X.T
    s = sup[y]
    expected = np.where(y[:, None] == y[None, :], 0.7, np.where(s[:, None] == s[None, :], 0.3, 0.05))
    np.fill_diagonal(expected, 1.0)
    np.testing.assert_allclose(G, expected, atol=1e-12, rtol=0)
    np.testing.assert_allclose(G, block_gram(y, 0.7, 0.05, superclasses=sup, c_super=0.3), atol=1e-12, rtol=0)
    assert ds.info["per_class"] == sizes and ds.info["superclasses"] == [1, 1, 0, 0]


def test_block_test_points_correlation_with_train():
    ds = make_block_features(3, 4, 0.5, 0.1, n_test_per_class=3)
    C = ds.X_test @ ds.X_train.T
    expected = np.where(ds.y_test[:, None] == ds.y_train[None, :], 0.5, 0.1)
    np.testing.assert_allclose(C, expected, atol=1e-12, rtol=0)
    # test points are distinct from training points (own e_i): never correlation 1
    assert C.max() < 1 - 1e-6


def test_block_c_equal_one_and_d_zero():
    ds = make_block_features(2, 3, 1.0, 0.0)
    G = ds.X_train @ ds.X_train.T
    np.testing.assert_allclose(G, block_gram(ds.y_train, 1.0, 0.0), atol=1e-12, rtol=0)
    np.testing.assert_allclose(ds.X_train[0], ds.X_train[2], atol=1e-12)


def test_block_gram_matches_features():
    ds = make_block_features(4, [3, 1, 2, 5], 0.45, 0.15, n_test_per_class=1)
    X, y = _all_points(ds)
    np.testing.assert_allclose(block_gram(y, 0.45, 0.15), X @ X.T, atol=1e-12, rtol=0)
    G = block_gram([0, 0, 1], 0.5, -0.2)  # negative d is fine for the Gram matrix alone
    np.testing.assert_allclose(G, [[1, 0.5, -0.2], [0.5, 1, -0.2], [-0.2, -0.2, 1]])


def test_block_approximate_dim():
    ds = make_block_features(3, 8, 0.4, 0.1, n_test_per_class=2, dim=2048, seed=0)
    assert ds.X_train.shape == (24, 2048) and ds.X_test.shape == (6, 2048)
    X, y = _all_points(ds)
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-12)
    G = X @ X.T
    target = block_gram(y, 0.4, 0.1)
    assert np.abs(G - target).max() < 0.1
    off = ~np.eye(len(y), dtype=bool)
    same = (y[:, None] == y[None, :]) & off
    assert abs(G[same].mean() - 0.4) < 0.03 and abs(G[~same & off].mean() - 0.1) < 0.03
    again = make_block_features(3, 8, 0.4, 0.1, n_test_per_class=2, dim=2048, seed=0)
    np.testing.assert_array_equal(again.X_train, ds.X_train)
    other = make_block_features(3, 8, 0.4, 0.1, n_test_per_class=2, dim=2048, seed=1)
    assert not np.allclose(other.X_train, ds.X_train)


def test_block_approximate_superclasses():
    sup = [0, 0, 1]
    ds = make_block_features(3, 6, 0.6, 0.1, superclasses=sup, c_super=0.35, dim=2048, seed=3)
    G = ds.X_train @ ds.X_train.T
    assert np.abs(G - block_gram(ds.y_train, 0.6, 0.1, sup, 0.35)).max() < 0.1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(c=0.2, d=0.2), r"c must be > d.*c=0\.2"),
        (dict(c=0.1, d=0.3), r"c must be > d"),
        (dict(c=1.2, d=0.1), r"c must be <= 1.*1\.2"),
        (dict(c=0.5, d=-0.1), r"d must be >= 0.*this generator needs d >= 0.*-0\.1"),
        (dict(superclasses=[0, 0, 1], c_super=0.7), r"c_super must be in \[d, c\].*0\.7"),
        (dict(superclasses=[0, 0, 1], c_super=0.05), r"c_super must be in \[d, c\]"),
        (dict(superclasses=[0, 1], c_super=0.3), r"superclasses must have length n_classes=3.*2"),
        (dict(superclasses=[0, 0, 1]), r"c_super is required"),
        (dict(c_super=0.3), r"c_super.*without superclasses"),
        (dict(n_classes=1), r"n_classes must be an integer in \[2, inf\], got 1"),
        (dict(per_class=0), r"per_class must be an integer in \[1, inf\], got 0"),
        (dict(per_class=[2, 0, 1]), r"per_class\[1\] must be an integer in \[1, inf\], got 0"),
        (dict(per_class=[2, 2]), r"per_class must .*length n_classes=3\), got length 2"),
        (dict(n_test_per_class=-1), r"n_test_per_class must be an integer in \[0, inf\], got -1"),
        (dict(dim=0), r"dim must be an integer in \[1, inf\], got 0"),
    ],
)
def test_block_bad_inputs(kwargs, match):
    args = dict(n_classes=3, per_class=4, c=0.5, d=0.1)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        make_block_features(**args)


def test_block_gram_bad_inputs():
    with pytest.raises(ValueError, match="c must be > d"):
        block_gram([0, 1], 0.1, 0.1)
    with pytest.raises(ValueError, match="labels"):
        block_gram([0, 3], 0.5, 0.1, superclasses=[0, 1], c_super=0.2)
    with pytest.raises(ValueError, match="labels"):
        block_gram([[0, 1]], 0.5, 0.1)


# ------------------------------------------------------------------------------------------
# .npz
# ------------------------------------------------------------------------------------------
def test_npz_round_trip(tmp_path):
    ds = make_block_features(3, [2, 3, 4], 0.5, 0.1, n_test_per_class=1, superclasses=[0, 0, 1], c_super=0.2)
    path = tmp_path / "block.npz"
    save_npz(path, ds)
    back = load_npz(path)
    for key in ("X_train", "y_train", "X_test", "y_test"):
        np.testing.assert_array_equal(getattr(back, key), getattr(ds, key))
        assert getattr(back, key).dtype == getattr(ds, key).dtype
    assert back.class_names == ds.class_names and back.name == ds.name
    assert back.info["c_super"] == 0.2 and back.info["npz"]["path"] == os.path.abspath(path)
    # stored without pickles
    with np.load(path, allow_pickle=False) as f:
        assert f["class_names"].dtype.kind == "U"
    # empty test set round trip, and through load_dataset
    empty = make_block_features(2, 2, 0.5, 0.1)
    save_npz(tmp_path / "empty.npz", empty)
    back = load_dataset(str(tmp_path / "empty.npz"))
    assert back.n_test == 0 and back.X_test.shape == (0, empty.n_features)


def test_npz_atomic_no_temp_left(tmp_path, monkeypatch):
    ds = make_block_features(2, 2, 0.5, 0.1)
    path = tmp_path / "out.npz"
    save_npz(path, ds)
    save_npz(path, ds)  # overwrite
    assert sorted(os.listdir(tmp_path)) == ["out.npz"]
    before = path.read_bytes()

    # a write failing halfway leaves the old file intact and no temporary file behind
    def broken_savez(fh, **arrays):
        fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        save_npz(path, make_block_features(3, 2, 0.5, 0.1))
    with pytest.raises(OSError, match="disk full"):
        save_npz(tmp_path / "new.npz", ds)
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["out.npz"]
    assert path.read_bytes() == before
    with pytest.raises(TypeError, match="Dataset"):
        save_npz(path, {"X_train": 1})


def _write(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_npz_missing_key(tmp_path):
    path = _write(tmp_path / "m.npz", X_train=np.ones((3, 2)), y_train=[0, 1, 0], X_test=np.ones((1, 2)))
    with pytest.raises(ValueError, match=r"m\.npz' is missing required array\(s\) \['y_test'\]"):
        load_npz(path)


@pytest.mark.parametrize(
    "arrays, match",
    [
        (dict(X_train=np.ones((3, 2)), y_train=[0, 1], X_test=np.ones((1, 2)), y_test=[0]),
         r"X_train has shape \(3, 2\) but y_train has shape \(2,\)"),
        (dict(X_train=np.ones((3, 2)), y_train=[0, 1, 0], X_test=np.ones((2, 2)), y_test=[0]),
         r"X_test has shape \(2, 2\) but y_test has shape \(1,\)"),
        (dict(X_train=np.ones((3, 2)), y_train=[0, 1, 0], X_test=np.ones((1, 5)), y_test=[0]),
         r"X_train has shape \(3, 2\), X_test has shape \(1, 5\)"),
        (dict(X_train=np.ones(3), y_train=[0, 1, 0], X_test=np.ones((1, 5)), y_test=[0]),
         r"X_train .* must be 2-D"),
    ],
)
def test_npz_mismatched_shapes(tmp_path, arrays, match):
    path = _write(tmp_path / "s.npz", **arrays)
    with pytest.raises(ValueError, match=match):
        load_npz(path)


def test_npz_pickled_object_array_refused(tmp_path):
    obj = np.empty(3, dtype=object)
    obj[:] = ["a", {"b": 1}, None]
    path = _write(tmp_path / "p.npz", X_train=np.ones((3, 2)), y_train=obj, X_test=np.ones((1, 2)), y_test=[0])
    with pytest.raises(ValueError, match=r"pickled/object array.*refused for safety"):
        load_npz(path)
    # a pickle disguised as .npz
    import pickle

    fake = tmp_path / "fake.npz"
    fake.write_bytes(pickle.dumps({"X_train": [1]}))
    with pytest.raises(ValueError, match=r"pickled/object .*refused for safety"):
        load_npz(fake)


def test_npz_string_labels_mapped(tmp_path):
    path = _write(
        tmp_path / "s.npz",
        X_train=np.ones((4, 2)),
        y_train=np.array(["cat", "dog", "cat", "emu"]),
        X_test=np.ones((2, 2)),
        y_test=np.array(["ant", "dog"]),
    )
    with pytest.warns(UserWarning, match=r"y_train has no point of class 0 \('ant'\)"):  # a test-only class
        ds = load_npz(path)
    assert ds.class_names == ("ant", "cat", "dog", "emu")
    np.testing.assert_array_equal(ds.y_train, [1, 2, 1, 3])
    np.testing.assert_array_equal(ds.y_test, [0, 2])
    assert ds.name == "s"


def test_npz_integer_labels(tmp_path):
    kept = _write(tmp_path / "k.npz", X_train=np.ones((3, 2)), y_train=[2, 0, 1], X_test=np.ones((1, 2)), y_test=[1])
    ds = load_npz(kept)
    np.testing.assert_array_equal(ds.y_train, [2, 0, 1])
    assert ds.class_names == ("0", "1", "2")
    negative = _write(tmp_path / "g.npz", X_train=np.ones((3, 2)), y_train=[5, 10, 5], X_test=np.ones((1, 2)),
                      y_test=[-1])
    with pytest.raises(ValueError, match=r"y_test must hold class indices 0..K-1, got the negative label -1 at "):
        load_npz(negative)  # integer labels are class indices, as for fit_linear_probe
    gap = _write(tmp_path / "g2.npz", X_train=np.ones((3, 2)), y_train=[5, 10, 5], X_test=np.ones((1, 2)),
                 y_test=[0])
    with pytest.warns(UserWarning, match=r"label 10 \(1 point\) above classes 6, 7, 8, 9"):
        ds = load_npz(gap)
    assert ds.n_classes == 11
    np.testing.assert_array_equal(ds.y_train, [5, 10, 5])
    values = _write(tmp_path / "g3.npz", X_train=np.ones((3, 2)), y_train=np.array(["5", "10", "5"]),
                    X_test=np.ones((1, 2)), y_test=np.array(["-1"]))
    with pytest.warns(UserWarning, match=r"no point of class 0 \('-1'\)"):  # label values as strings: encoded
        ds = load_npz(values)
    assert ds.class_names == ("-1", "10", "5")
    named = _write(tmp_path / "n.npz", X_train=np.ones((3, 2)), y_train=[0, 1, 0], X_test=np.ones((1, 2)),
                   y_test=[2], class_names=np.array(["x", "y", "z"]))
    with pytest.warns(UserWarning, match=r"no point of class 2 \('z'\)"):
        assert load_npz(named).class_names == ("x", "y", "z")
    badnamed = _write(tmp_path / "b.npz", X_train=np.ones((3, 2)), y_train=[0, 1, 3], X_test=np.ones((1, 2)),
                      y_test=[2], class_names=np.array(["x", "y", "z"]))
    with pytest.raises(ValueError, match=r"y_train must hold labels in 0..2"):
        load_npz(badnamed)


def test_npz_file_not_found(tmp_path):
    missing = tmp_path / "nope.npz"
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        load_npz(missing)


# ------------------------------------------------------------------------------------------
# load_dataset
# ------------------------------------------------------------------------------------------
def test_load_dataset_dispatch(tmp_path):
    assert DATASETS == ("digits", "block")
    ds = load_dataset("block")
    assert ds.n_classes == BLOCK_DEFAULTS["n_classes"] == 4
    assert ds.n_train == 400 and ds.n_test == 400
    assert ds.info["c"] == 0.4 and ds.info["d"] == 0.1
    small = load_dataset("block", n_classes=3, per_class=5, n_test_per_class=0, dim=64, seed=2)
    assert small.X_train.shape == (15, 64) and small.info["seed"] == 2
    dg = load_dataset("digits", seed=3, test_size=0.25)
    assert dg.info["seed"] == 3 and dg.n_train + dg.n_test == 1797
    path = tmp_path / "mine.npz"
    save_npz(path, small)
    np.testing.assert_array_equal(load_dataset(path).X_train, small.X_train)
    np.testing.assert_array_equal(load_dataset(str(path)).X_train, small.X_train)
    with pytest.raises(ValueError, match=r"unknown dataset 'cifar'.*'digits', 'block'.*\.npz"):
        load_dataset("cifar")
    with pytest.raises(FileNotFoundError):
        load_dataset(str(tmp_path / "absent.npz"))


def _damaged_archives(tmp_path):
    """A good feature file and four damaged copies: truncated, empty, a bad CRC, a member that is not .npy."""
    import io
    import zipfile

    from selfdistill.data import make_block_features, save_npz

    good = tmp_path / "good.npz"
    save_npz(good, make_block_features(3, 10, 0.4, 0.1, n_test_per_class=5, dim=8, seed=0))
    raw = good.read_bytes()
    (tmp_path / "trunc.npz").write_bytes(raw[:300])
    (tmp_path / "empty.npz").write_bytes(b"")
    zf = zipfile.ZipFile(io.BytesIO(raw))
    member = zf.getinfo("X_train.npy")
    flipped = bytearray(raw)
    flipped[member.header_offset + 30 + len(member.filename) + len(member.extra) + 200] ^= 0xFF
    (tmp_path / "crc.npz").write_bytes(bytes(flipped))
    with zipfile.ZipFile(tmp_path / "notnpy.npz", "w") as z:
        for name in zf.namelist():
            if name != "y_train.npy":
                z.writestr(name, zf.read(name))
        z.writestr("y_train", b"not an array")
    return {"trunc": "File is not a zip file", "empty": "No data left", "crc": "Bad CRC-32",
            "notnpy": "member 'y_train' is not a .npy array"}


def test_damaged_npz_files_are_named_not_tracebacks(tmp_path, capsys):
    from selfdistill.cli import main
    from selfdistill.data import load_npz

    for stem, why in _damaged_archives(tmp_path).items():
        path = tmp_path / f"{stem}.npz"
        with pytest.raises(ValueError, match="is not a valid .npz archive") as err:
            load_npz(path)
        assert str(path) in str(err.value) and why in str(err.value)
        for argv in (["run", "--dataset", str(path), "-q", "-o", str(tmp_path / "out")],
                     ["correlation", str(path), "-o", str(tmp_path / "c.png")]):
            assert main(argv) == 2
            msg = capsys.readouterr().err
            assert "is not a valid .npz archive" in msg and "Traceback" not in msg
    assert not (tmp_path / "out").exists() and not (tmp_path / "c.png").exists()
