"""Inputs that slipped through (issue 'Inputs that slip through'): each is refused or warned by name.

* features too large for float64 arithmetic (x 1e200) are refused where features enter, naming the
  largest value and where it is, with advice to scale; large but representable ones (1e6) still fit;
* labels follow one rule everywhere (the API and ``.npz`` files): an integer label is a class index,
  a negative one is refused, and a stray label above empty classes (0..9 and one 12) warns;
* ``select_reg`` refuses a validation split that cannot score reg, saying how many points per
  class it needs;
* a one-class file says that y_train holds a single class, not that class_names is short;
* a two-class file asks for ``--pll-loss none`` (needs a change in experiments/runner.py).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from selfdistill import distill, fit_linear_probe
from selfdistill._validation import check_labels
from selfdistill.cli.main import main
from selfdistill.data import load_npz
from selfdistill.model_selection import reg_path, select_reg

RUN = ["--rates", "0", "--seeds", "0", "--rounds", "0", "--noise", "symmetric", "--reg", "1e-2"]


def _blobs(K=10, per_class=20, d=8, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(K), per_class)
    return rng.normal(size=(y.size, d)) + 3.0 * np.eye(K, d)[y], y


def _npz(path, X_train, y_train, X_test=None, y_test=None, **extra):
    X_test = X_train[:5] if X_test is None else X_test
    y_test = y_train[:5] if y_test is None else y_test
    np.savez(path, X_train=X_train, y_train=y_train, X_test=X_test, y_test=y_test, **extra)
    return str(path)


def _run(path, out, *extra):
    return main(["run", "--dataset", str(path), *RUN, *extra, "-o", str(out), "--quiet"])


# ------------------------------------------------------------------------------ 1. huge features
def test_features_beyond_float64_range_are_refused_naming_the_largest_value():
    X, y = _blobs()
    big = X * 1e150
    big[7, 2] = -3e200
    msg = r"X holds values too large .*largest in magnitude is -3e\+200 at row 7, column 2 .*standardise"
    with pytest.raises(ValueError, match=msg):
        fit_linear_probe(big, y, 1e-2)
    with pytest.raises(ValueError, match=msg):
        distill(big, y, reg=1e-2, rounds=1, pll=False)
    with pytest.raises(ValueError, match=r"X_test holds values too large .*at row 7, column 2"):
        distill(X, y, reg=1e-2, rounds=0, pll=False, X_test=big, y_test=y)


def test_a_torch_tensor_of_huge_features_is_refused_too():
    torch = pytest.importorskip("torch")
    X, y = _blobs()
    big = torch.tensor(X)
    big[5, 1] = 1e200
    with pytest.raises(ValueError, match=r"X holds values too large .*1e\+200 at row 5, column 1 \(1 entry"):
        fit_linear_probe(big, y, 1e-2, backend="torch")


def test_large_but_representable_features_still_fit():
    X, y = _blobs()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        probe = fit_linear_probe(X * 1e6, y, 1e-2)
    assert probe.converged_ and np.mean(probe.predict(X * 1e6) == y) > 0.7
    from selfdistill._validation import MAX_ABS_FEATURE, check_features

    at_limit = X / np.abs(X).max() * MAX_ABS_FEATURE  # the limit itself is accepted
    assert check_features(at_limit) is not None


def test_a_memory_map_is_checked_for_huge_values_chunk_by_chunk(tmp_path):
    from selfdistill._validation import _check_finite_chunked

    X = np.ones((50, 3))
    X[44, 1] = 5e120
    X[17, 0] = 2e101
    with pytest.raises(ValueError, match=r"A holds values too large .*5e\+120 at row 44, column 1 \(2 entries"):
        _check_finite_chunked(X, "A", chunk_rows=7)
    path = tmp_path / "X.npy"
    np.save(path, X)
    with pytest.raises(ValueError, match=r"X holds values too large .*at row 44, column 1"):
        fit_linear_probe(np.load(path, mmap_mode="r"), np.arange(50) % 2, 1e-2)


def test_a_file_of_huge_features_is_refused_by_the_cli_with_scaling_advice(tmp_path, capsys):
    X, y = _blobs()
    path = _npz(tmp_path / "huge.npz", X * 1e200, y)
    with pytest.raises(ValueError, match=r"huge\.npz'.*X_train holds values too large"):
        load_npz(path)
    out = tmp_path / "out"
    assert _run(path, out, "--pll-loss", "none") == 2
    err = capsys.readouterr().err
    assert "X_train" in err and "largest in magnitude" in err and "standardise" in err
    assert "max_iter" not in err and "Traceback" not in err and not out.exists()


# ------------------------------------------------------------------------------ 2. labels: one rule
def test_a_stray_label_above_empty_classes_warns_in_the_api():
    X, y = _blobs()
    y = y.copy()
    y[3] = 12  # 0..9 and one 12: classes 10 and 11 are empty
    stray = r"has label 12 \(1 point\) above classes 10, 11, which no point holds"
    with pytest.warns(UserWarning, match="targets " + stray):
        probe = fit_linear_probe(X, y, 1e-2)
    assert probe.n_classes_ == 13
    with pytest.warns(UserWarning, match="y " + stray):
        distill(X, y, reg=1e-2, rounds=0, pll=False)
    with warnings.catch_warnings():  # n_classes says the empty classes are meant; ordinary labels are quiet
        warnings.simplefilter("error")
        fit_linear_probe(X, y, 1e-2, n_classes=13)
        fit_linear_probe(X, _blobs()[1], 1e-2)
        fit_linear_probe(X, _blobs()[1] + 1, 1e-2)  # labels from 1: no gap between labels
    far = _blobs()[1].copy()
    far[0] = 1000
    with pytest.warns(UserWarning, match=r"label 1000 \(1 point\) above classes 10\.\.999 \(990 classes\)"):
        check_labels(far, "y")


def test_a_stray_label_in_a_file_warns_with_its_count_and_the_empty_classes(tmp_path, capsys):
    X, y = _blobs()
    y = y.copy()
    y[3] = 12
    path = _npz(tmp_path / "stray.npz", X, y)
    with pytest.warns(UserWarning, match=r"y_train has label 12 \(1 point\) above classes 10, 11, which no point"):
        ds = load_npz(path)
    assert ds.n_classes == 13 and ds.y_train[3] == 12  # integer labels are class indices, as in the API
    out = tmp_path / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["run", "--dataset", path, *RUN, "--pll-loss", "none", "-o", str(out)]) == 0
    assert "label 12 (1 point) above classes 10, 11" in capsys.readouterr().err


def test_negative_labels_are_refused_by_the_api_and_by_files_alike(tmp_path, capsys):
    X, y = _blobs()
    y = y.copy()
    y[4] = -1
    with pytest.raises(ValueError, match=r"targets must hold labels in 0\.\.K-1.* negative label -1 at index 4"):
        fit_linear_probe(X, y, 1e-2)
    with pytest.raises(ValueError, match=r"y must hold labels in 0\.\.K-1.* negative label -1 at index 4"):
        distill(X, y, reg=1e-2, rounds=0, pll=False)
    path = _npz(tmp_path / "neg.npz", X, y)
    with pytest.raises(ValueError, match=r"y_train must hold class indices 0\.\.K-1, got the negative label -1 at "
                                         r"index 4.*as strings"):
        load_npz(path)
    test_neg = _npz(tmp_path / "neg_test.npz", X, _blobs()[1], X[:3], np.array([0, -2, 1]))
    with pytest.raises(ValueError, match=r"y_test must hold class indices .*negative label -2 at index 1"):
        load_npz(test_neg)
    out = tmp_path / "out"
    assert _run(path, out, "--pll-loss", "none") == 2
    err = capsys.readouterr().err
    assert "--dataset" in err and "negative label -1 at index 4" in err and not out.exists()
    # label values other than class indices: strings, encoded with np.unique (the documented way)
    ds = load_npz(_npz(tmp_path / "pm.npz", X, np.where(y < 5, "-1", "1")))
    assert ds.class_names == ("-1", "1")


def test_a_file_label_that_would_make_absurdly_many_classes_is_refused(tmp_path):
    X, y = _blobs()
    y = y.copy()
    y[9] = 10**9
    with pytest.raises(ValueError, match=r"y_train holds the label 1,000,000,000 at index 9: .*1,000,000,001 classes"):
        load_npz(_npz(tmp_path / "absurd.npz", X, y))


# ------------------------------------------------------------------------------ 3. select_reg
@pytest.mark.parametrize("per_class", [1, 2, 4])
def test_select_reg_refuses_too_few_points_per_class(per_class):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(10), per_class)
    X = rng.normal(size=(y.size, 4))
    msg = r"too few points per class for a validation split.*needs at least 5 points per class.*fixed reg"
    with pytest.raises(ValueError, match=msg):
        select_reg(X, y)
    with pytest.raises(ValueError, match=msg):
        reg_path(X, y, rounds=0, pll=False)


def test_select_reg_refuses_when_every_reg_scores_zero():
    from selfdistill.model_selection import stratified_split

    y = np.repeat([0, 1], 10)
    X = np.where(y == 0, 1.0, -1.0)[:, None] * np.array([[1.0, 0.0]])
    _, idx_val = stratified_split(y, 0.2, 0)
    X[idx_val] *= -1  # the held-out points sit on the other class's side: no reg scores a point
    with pytest.raises(ValueError, match=r"every reg of the grid scores 0 on the 4 validation points.*fixed reg"):
        select_reg(X, y)
    assert select_reg(X * np.where(np.isin(np.arange(20), idx_val), -1, 1)[:, None], y)[0] == 0.1  # fixed: fine


# ------------------------------------------------------------------------------ 4. one-class file
def test_a_one_class_file_says_y_train_holds_a_single_class(tmp_path, capsys):
    X, y = _blobs()
    path = _npz(tmp_path / "one.npz", X, np.zeros_like(y))
    with pytest.raises(ValueError, match=r"y_train holds a single class, label 0 \(all 200 training points\): at "
                                         r"least 2 classes are needed") as err:
        load_npz(path)
    assert "class_names" not in str(err.value)
    strings = _npz(tmp_path / "cats.npz", X, np.full(y.size, "cat"))
    with pytest.raises(ValueError, match=r"y_train holds a single class, 'cat' \(label 0\)"):
        load_npz(strings)
    out = tmp_path / "out"
    assert _run(path, out, "--pll-loss", "none") == 2
    err_text = capsys.readouterr().err
    assert "y_train holds a single class" in err_text and "class_names" not in err_text and not out.exists()


# ------------------------------------------------------------------------------ 5. two-class file
def test_two_classes_and_pll_in_the_api_suggest_pll_false():
    X, y = _blobs(K=2)
    with pytest.raises(ValueError, match=r"pll=False"):
        distill(X, y, reg=1e-2, rounds=0)


def test_a_two_class_file_suggests_pll_loss_none(tmp_path, capsys):
    X, y = _blobs(K=2)
    path = _npz(tmp_path / "two.npz", X, y)
    assert main(["run", "--dataset", path, *RUN, "-o", str(tmp_path / "out"), "--quiet"]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]  # the error line, after the usage text
    assert "--pll-loss none" in error and "--top-k" not in error
