"""Each argument is checked once, at the public function the user handed it to (issue: checks, one way, once).

The constraint types of ``selfdistill._validation`` are the one way: the public functions, the
estimator's ``_parameter_constraints``, the config files and the CLI's argument types use them.
Internal calls go to the private twins, which check nothing, so ``reg`` is checked once per
``distill`` call (it was checked by distill, then again by every probe fit).
"""

from __future__ import annotations

import doctest
from collections import Counter

import numpy as np
import pytest

import selfdistill._validation as V
from selfdistill import distill, fit_linear_probe, fit_linear_probes, select_reg
from selfdistill.model_selection import reg_path

X = np.random.default_rng(0).normal(size=(60, 4))
Y = np.argmax(X[:, :3], axis=1)


@pytest.fixture
def checked(monkeypatch):
    """A Counter of the argument names checked by a constraint (outermost checks only) and, under
    ("features", name), of the feature matrices checked by ``check_features``."""
    seen: Counter = Counter()
    depth = [0]
    for cls in (V.Constraint, V.AnyOf, V.ArrayOf):
        real = cls.__dict__["check"]

        def check(self, value, name, _real=real):
            depth[0] += 1
            try:
                if depth[0] == 1:
                    seen[name] += 1
                return _real(self, value, name)
            finally:
                depth[0] -= 1

        monkeypatch.setattr(cls, "check", check)
    shape = V.check_matrix_shape

    def matrix_shape(arr, name):
        seen["features", name] += 1
        return shape(arr, name)

    monkeypatch.setattr(V, "check_matrix_shape", matrix_shape)
    return seen


def test_distill_checks_each_argument_once(checked):
    distill(X, Y, reg=1e-2, rounds=3, X_test=X[:10], y_test=Y[:10], pll_loss=["uniform", "gce"], tol=1e-8,
            max_iter=100, n_classes=3)
    # temperature, mix and top_k are checked again by refine_targets (a public function of targets.py
    # that distill calls each round): not yet one of the unchecked twins
    for name in ("reg", "rounds", "n_classes", "stop", "tol", "max_iter"):
        assert checked[name] == 1, (name, checked)
    assert checked["features", "X"] == 1 and checked["features", "X_test"] == 1, checked  # was once per fit


def test_stop_certain_checks_x_test_once(checked):
    distill(X, Y, reg=1e-2, rounds=2, X_test=X[:10], y_test=Y[:10], stop="certain")
    assert checked["features", "X_test"] == 1 and checked["features", "X"] == 1, checked


def test_reg_is_checked_once_by_distill_not_again_by_each_fit(checked):
    distill(X, Y, reg=1e-2, rounds=4)
    assert checked["reg"] == 1  # was 1 + one per fit (6 fits: rounds 0..4 and the PLL student)


def test_fit_linear_probe_checks_each_argument_once(checked):
    fit_linear_probe(X, Y, 1e-2, tol=1e-8, max_iter=50)
    assert [checked[k] for k in ("reg", "tol", "max_iter", "n_classes", "stop")] == [1] * 5, checked
    assert checked["features", "X"] == 1


def test_batched_reg_is_checked_once_per_problem(checked):
    fit_linear_probes(X, [Y, Y], reg=[1e-1, 1e-2])
    assert checked["reg[0]"] == checked["reg[1]"] == 1 and checked["reg"] == 0, checked
    checked.clear()
    fit_linear_probes(X, [Y, Y], reg=1e-2)  # one value for every problem: checked once, as "reg"
    assert checked["reg"] == 1 and checked["reg[0]"] == 0, checked


def test_select_reg_checks_the_grid_and_x_once(checked):
    select_reg(X, Y, grid=(1e-1, 1e-2, 1e-3))
    assert checked["grid entry"] == 3 and checked["reg"] == 0, checked  # the fits are the unchecked twin
    assert checked["features", "X"] == 1 and checked["val_fraction"] == 1


def test_reg_path_checks_its_inputs_once(checked):
    reg_path(X, Y, grid=(1e-1, 1e-2), rounds=1)
    assert checked["val_fraction"] == 1 and checked["grid entry"] == 2
    # each reg of the path is one distill call (the public function: it checks its own arguments)
    assert checked["reg"] == 2


def test_messages_name_the_argument_the_value_and_what_was_expected():
    with pytest.raises(ValueError, match=r"^reg must be > 0 and finite, got 0\.0$"):
        distill(X, Y, reg=0)
    with pytest.raises(TypeError, match=r"^tol must be a real number, got 'tight' \(str\)$"):
        fit_linear_probe(X, Y, 1e-2, tol="tight")
    with pytest.raises(ValueError, match=r"^max_iter must be an integer in \[0, inf\], got -1$"):
        distill(X, Y, reg=1e-2, max_iter=-1)
    with pytest.raises(ValueError, match=r"^n_classes must be an integer in \[2, inf\], got 1$"):
        select_reg(X, Y, n_classes=1)
    with pytest.raises(ValueError, match=r"^stop must be 'tol' or 'certain', got 'exact'$"):
        distill(X, Y, reg=1e-2, stop="exact")
    with pytest.raises(ValueError, match=r"^backend must be one of"):
        distill(X, Y, reg=1e-2, backend="jax")


def test_a_single_class_is_named_by_select_reg():
    with pytest.raises(ValueError, match=r"y must hold at least 2 classes, got a single class \[0\]"):
        select_reg(X, np.zeros(60, dtype=int))


def test_one_constraint_two_faces():
    c = V.Integer(2, 5)
    with pytest.raises(ValueError, match=r"^top_k must be an integer in \[2, 5\], got 7$"):
        c.check(7, "top_k")
    with pytest.raises(TypeError, match=r"^top_k must be an integer, got 2\.5 \(float\)$"):
        c.check(2.5, "top_k")
    with pytest.raises(V.BadValueError, match=r"^expected an integer >= 2 and <= 5, got an integer 7$"):
        c(7)
    assert c.check(np.int64(3), "top_k") == 3 and type(c.check(np.int64(3), "top_k")) is int
    opt = V.make_constraint([None, V.Real(0.0, closed="neither")])
    assert opt.check(None, "x") is None and opt.check(2, "x") == 2.0
    with pytest.raises(ValueError, match=r"^x must be > 0 and finite, got -1\.0$"):
        opt.check(-1, "x")
    with pytest.raises(TypeError, match=r"^x must be None or > 0 and finite, got 'a' \(str\)$"):
        opt.check("a", "x")
    auto = V.make_constraint([V.OneOf(("auto",)), V.Real(0.0, closed="neither")])
    assert auto.check("auto", "reg") == "auto"
    with pytest.raises(ValueError, match=r"^reg must be one of \['auto'\], got 'often'$"):
        auto.check("often", "reg")


def test_the_config_uses_the_same_types():
    from selfdistill.experiments import config

    assert config.Integer is V.Integer and config.Real is V.Real and config.ArrayOf is V.ArrayOf
    assert config.SWEEP_CONSTRAINTS["rounds"] == V.Integer(0)


def test_the_validation_module_doctests_pass():
    assert doctest.testmod(V, optionflags=doctest.ELLIPSIS).failed == 0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_distill_hands_the_checked_memmap_itself_to_the_unchecked_fits(tmp_path, monkeypatch, dtype):
    # tests/test_memmap_distill.py checks this through the public fits distill called before; it calls the twins now
    import importlib

    distill_module = importlib.import_module("selfdistill.distill")  # the module, not the function
    path = tmp_path / "X.npy"
    np.save(path, X.astype(dtype))
    Xm = np.load(path, mmap_mode="r")
    fitted = []
    for twin in ("fit_ce_unchecked", "fit_pll_unchecked"):
        real = getattr(distill_module, twin)

        def fit(X, *args, _real=real, **kwargs):
            fitted.append(X)
            return _real(X, *args, **kwargs)

        monkeypatch.setattr(distill_module, twin, fit)
    distill(Xm, Y, reg=1e-3, rounds=1, pll_loss=("uniform", "gce"))
    assert len(fitted) == 4 and all(f is Xm for f in fitted)


def test_the_twins_give_the_public_fits_answers():
    from selfdistill import fit_partial_label_probe
    from selfdistill.probe import fit_ce_unchecked, fit_pll_unchecked, solver_settings
    from selfdistill.targets import refine_targets

    solver = solver_settings()
    a, b = fit_linear_probe(X, Y, 1e-2), fit_ce_unchecked(X, Y, 3, 1e-2, solver)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    T = refine_targets(a.predict_proba(X), "topk", top_k=2)
    c, d = fit_partial_label_probe(X, T, 1e-2, loss="gce", init=a), fit_pll_unchecked(X, T, "gce", 1e-2, solver, init=a)
    np.testing.assert_array_equal(c.coef_, d.coef_)


def test_the_estimator_checks_its_parameters_with_the_same_constraints():
    from selfdistill import SelfDistillationClassifier as C

    assert set(C._parameter_constraints) == set(C().get_params())
    cases = [
        (dict(method="kd"), ValueError, r"^method must be one of \['pll', 'sd'\], got 'kd'$"),
        (dict(reg=-1), ValueError, r"^reg must be > 0 and finite, got -1\.0$"),
        (dict(reg="often"), ValueError, r"^reg must be one of \['auto'\], got 'often'$"),
        (dict(rounds=-1), ValueError, r"^rounds must be an integer in \[0, inf\], got -1$"),
        (dict(max_iter=2.5), TypeError, r"^max_iter must be None or an integer in \[0, inf\], got 2\.5 \(float\)$"),
        (dict(fit_intercept="yes"), TypeError, r"^fit_intercept must be True or False, got 'yes' \(str\)$"),
        (dict(pll_loss="hinge"), ValueError, r"^pll_loss must be one of \['candidate', 'gce', 'uniform'\]"),
    ]
    for params, exc, msg in cases:
        with pytest.raises(exc, match=msg):
            C(**params).fit(X, Y)


def test_the_cli_types_are_the_constraints_with_the_same_messages():
    import argparse

    from selfdistill.cli.argtypes import FRACTION, RATE, argtype, finite_float, int_at_least, positive_float

    cases = [
        (int_at_least(1), "0", "invalid value '0': must be an integer >= 1"),
        (int_at_least(1), "x", "invalid value 'x': expected an integer >= 1"),
        (int_at_least(2, "top-k must be >= 2 (and <= K-1)"), "1", "invalid value '1': top-k must be >= 2 (and <= K-1)"),
        (RATE, "1.5", "invalid rate '1.5': noise rates must be in [0, 1]"),
        (RATE, "nan", "invalid rate 'nan': noise rates must be in [0, 1]"),
        (RATE, "abc", "invalid rate 'abc': expected a number in [0, 1]"),
        (FRACTION, "2", "invalid value '2': must be in [0, 1]"),
        (finite_float, "inf", "invalid number 'inf': must be finite"),
        (positive_float, "-1", "invalid value '-1': must be > 0 and finite"),
        (argtype(V.Integer(0, 9), int), "10", "invalid value '10': must be an integer >= 0 and <= 9"),
    ]
    for convert, text, message in cases:
        with pytest.raises(argparse.ArgumentTypeError) as err:
            convert(text)
        assert str(err.value) == message
    assert int_at_least(0)("3") == 3 and RATE("0.5") == 0.5 and positive_float("2") == 2.0


def test_one_feature_and_target_check_for_every_backend():
    torch = pytest.importorskip("torch")
    Xt = torch.from_numpy(X.copy())
    Xt[5, 2] = float("nan")
    with pytest.raises(ValueError, match=r"^X must be finite, found nan at row 5, column 2 \(1 non-finite"):
        fit_linear_probe(Xt, Y, 1e-2, backend="torch")
    Xa = X.copy()
    Xa[5, 2] = np.nan
    with pytest.raises(ValueError, match=r"^X must be finite, found .*nan.* at row 5, column 2 \(1 non-finite"):
        fit_linear_probe(Xa, Y, 1e-2)
    T = np.full((60, 3), 0.5)
    for targets, backend in ((T, "numpy"), (torch.from_numpy(T), "torch")):
        with pytest.raises(ValueError, match=r"^targets rows must sum to 1, row 0 sums to 1\.5$"):
            fit_linear_probe(X, targets, 1e-2, backend=backend)
    with pytest.raises(ValueError, match=r"^X must be a 2-D array .* got 1-D array of shape \(60,\)"):
        fit_linear_probe(torch.zeros(60), Y, 1e-2, backend="torch")
