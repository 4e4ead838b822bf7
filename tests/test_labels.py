"""Labels: non-integer float labels, classes with no training point, test labels outside the classes.

The decisions (see ``check_labels`` and ``load_npz``):

* float labels must be integer-valued (``2.0`` is read as 2); any other float is an error naming
  the array (``y_train`` / ``y_test``) and the first offending value and its index;
* ``check_labels`` (so :func:`selfdistill.distill`): labels outside ``0..K-1`` are an error, with
  K from ``n_classes`` or, without it, from the training labels; the message suggests
  ``n_classes=``;
* a :class:`Dataset` (so ``load_npz`` and ``selfdistill run --dataset F.npz``) whose training
  labels lack a class warns, naming the class (index and name); in an ``.npz`` file the classes
  are those of ``class_names`` or of the train and test labels together, so a test-only label is
  such a class.
"""

from __future__ import annotations

import numpy as np
import pytest

from selfdistill import distill
from selfdistill._validation import check_labels
from selfdistill.cli import main
from selfdistill.data import Dataset, load_npz


def _arrays(K=3, per_class=4, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(K), per_class)
    X = rng.normal(size=(y.size, 5)) + 3.0 * np.eye(K, 5)[y]
    return X, y


def _npz(path, y_train, y_test, **extra):
    rng = np.random.default_rng(1)
    np.savez(path, X_train=rng.normal(size=(len(y_train), 5)), y_train=np.asarray(y_train),
             X_test=rng.normal(size=(len(y_test), 5)), y_test=np.asarray(y_test), **extra)
    return path


# ------------------------------------------------------------------------------ check_labels
def test_non_integer_float_labels_name_the_array_and_the_value():
    with pytest.raises(ValueError, match=r"y_train must hold integer class labels.* 1\.5 at index 2"):
        check_labels(np.array([0.0, 1.0, 1.5, 2.5]), "y_train")
    with pytest.raises(ValueError, match=r"y_test .*non-finite value nan at index 1"):
        check_labels(np.array([0.0, np.nan]), "y_test")


def test_integer_valued_float_labels_are_converted():
    out = check_labels(np.array([2.0, 0.0, 1.0]), "y")
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, [2, 0, 1])


def test_labels_out_of_range_suggest_n_classes():
    with pytest.raises(ValueError, match=r"y_test must hold labels in 0\.\.8, .*9 at index 9.*pass n_classes=10"):
        check_labels(np.arange(10), "y_test", n_classes=9)


def test_empty_classes_warn_on_request_naming_them():
    with pytest.warns(UserWarning, match=r"y_train has no point of class 2 among classes 0\.\.3"):
        check_labels(np.array([0, 1, 3, 3]), "y_train", n_classes=4, empty_classes="warn")


def test_distill_refuses_non_integer_labels_and_test_labels_outside_the_training_classes():
    X, y = _arrays()
    with pytest.raises(ValueError, match=r"y must hold integer class labels.*0\.5 at index 0"):
        distill(X, y + 0.5, reg=1e-2, rounds=0, pll=False)
    y_test = np.array([0, 1, 2, 3])
    with pytest.raises(ValueError, match=r"y_test must hold labels in 0\.\.2.*3 at index 3.*pass n_classes=4"):
        distill(X, y, reg=1e-2, rounds=0, pll=False, X_test=X[:4], y_test=y_test)
    res = distill(X, y, reg=1e-2, rounds=0, pll=False, X_test=X[:4], y_test=y_test, n_classes=4)
    assert 0.0 <= res.metric("round 0", "test_acc") <= 1.0


# ------------------------------------------------------------------------------ Dataset
def test_dataset_warns_about_a_class_with_no_training_point():
    X, _ = _arrays()
    y = np.array([0, 1, 3] * 4)
    with pytest.warns(UserWarning, match=r"y_train has no point of class 2 \('c'\)"):
        ds = Dataset(X, y, X[:2], np.array([0, 2]), class_names=("a", "b", "c", "d"))
    assert ds.n_classes == 4


# ------------------------------------------------------------------------------ load_npz
def test_npz_non_integer_float_labels_refused(tmp_path):
    _, y = _arrays()
    path = _npz(tmp_path / "f.npz", y + 0.5, np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"f\.npz'.*y_train must hold integer class labels.*0\.5 at index 0"):
        load_npz(path)
    path = _npz(tmp_path / "g.npz", y, np.array([0.0, 1.25]))
    with pytest.raises(ValueError, match=r"y_test must hold integer class labels.*1\.25 at index 1"):
        load_npz(path)


def test_npz_integer_valued_float_labels_accepted(tmp_path):
    _, y = _arrays()
    ds = load_npz(_npz(tmp_path / "f.npz", y.astype(float), np.array([2.0, 0.0])))
    assert ds.class_names == ("0", "1", "2")
    np.testing.assert_array_equal(ds.y_train, y)
    np.testing.assert_array_equal(ds.y_test, [2, 0])


def test_npz_test_only_class_warns(tmp_path):
    _, y = _arrays()
    path = _npz(tmp_path / "t.npz", y, np.array([0, 3]))
    with pytest.warns(UserWarning, match=r"y_train has no point of class 3 \('3'\)"):
        ds = load_npz(path)
    assert ds.n_classes == 4


def test_npz_class_names_with_an_empty_class_warn(tmp_path):
    path = _npz(tmp_path / "n.npz", [0, 1, 3, 0], [2], class_names=np.array(["a", "b", "c", "d"]))
    with pytest.warns(UserWarning, match=r"class 2 \('c'\)"):
        load_npz(path)


# ------------------------------------------------------------------------------ the CLI
def test_cli_run_refuses_non_integer_labels_and_creates_nothing(tmp_path, capsys):
    _, y = _arrays()
    path = _npz(tmp_path / "f.npz", y + 0.5, np.array([0.0, 1.0]))
    out = tmp_path / "out"
    rc = main(["run", "--dataset", str(path), "--rates", "0", "--seeds", "0", "--rounds", "0",
               "--pll-loss", "none", "--noise", "symmetric", "--reg", "1e-2", "-o", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "--dataset" in err and "y_train" in err and "0.5" in err and "Traceback" not in err
    assert not out.exists()


def test_cli_run_warns_about_a_test_only_class(tmp_path, capsys):
    import json

    _, y = _arrays()
    path = _npz(tmp_path / "t.npz", y, np.array([0, 1, 3]))
    out = tmp_path / "out"
    rc = main(["run", "--dataset", str(path), "--rates", "0", "--seeds", "0", "--rounds", "0",
               "--pll-loss", "none", "--noise", "symmetric", "--reg", "1e-2", "-o", str(out)])
    captured = capsys.readouterr()
    assert rc == 0
    assert "selfdistill: warning: " in captured.err and "no point of class 3 ('3')" in captured.err
    recorded = json.loads((out / "config.json").read_text())["dataset"]["warnings"]
    assert len(recorded) == 1 and "no point of class 3 ('3')" in recorded[0]
