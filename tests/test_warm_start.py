"""The SD students' warm start: the line search along the previous round's change."""

import numpy as np
import pytest
from conftest import make_classes

from selfdistill import distill, fit_linear_probe
from selfdistill._backend import Features, make_ops
from selfdistill._newton import Objective, line_min
from selfdistill.distill import student_warm_start
from selfdistill.losses import CrossEntropy, log_softmax


def _objective(X, T, W, b, reg):
    Z = X @ W.T + b
    return -np.sum(T * log_softmax(Z)) / X.shape[0] + 0.5 * reg * np.sum(W * W)


def _line(X, T, reg, W, b, D, fit_intercept=False):
    """line_min on the packed parameters [W | b] (or W), unpacked again."""
    ops = make_ops("numpy", "cpu")
    obj = Objective(CrossEntropy(T, ops), Features(X, ops), reg, fit_intercept)
    if not fit_intercept:
        return line_min(obj, W, D[0]), np.zeros(len(b))
    out = line_min(obj, np.hstack([W, b[:, None]]), np.hstack([D[0], D[1][:, None]]))
    return out[:, :-1], out[:, -1]


@pytest.mark.parametrize("c_true", [0.7, 1.6, -0.4])
def test_line_min_finds_the_minimum_on_the_line(c_true):
    X, y = make_classes(n=200, d=6, K=3)
    reg = 1e-2
    T = np.eye(3)[y]
    opt = fit_linear_probe(X, y, reg, tol=1e-12)
    D = np.random.default_rng(1).normal(size=opt.coef_.shape)
    start = opt.coef_ - c_true * D  # the optimum lies on start + c D at c = c_true
    W, _ = _line(X, T, reg, start, np.zeros(3), (D, np.zeros(3)))
    np.testing.assert_allclose(W, opt.coef_, atol=1e-4)


def test_line_min_never_worse_than_the_start():
    X, y = make_classes(n=200, d=6, K=3)
    reg = 1e-2
    T = np.eye(3)[y]
    opt = fit_linear_probe(X, y, reg, tol=1e-12)
    # from the optimum every direction can only go up: the start is kept
    D = np.random.default_rng(2).normal(size=opt.coef_.shape)
    W, b = _line(X, T, reg, opt.coef_, np.zeros(3), (D, np.zeros(3)))
    assert _objective(X, T, W, b, reg) <= _objective(X, T, opt.coef_, np.zeros(3), reg) + 1e-15
    # the minimum beyond c = 2 is clipped to c = 2, still an improvement
    W, b = _line(X, T, reg, opt.coef_ - 5 * D, np.zeros(3), (D, np.zeros(3)))
    np.testing.assert_allclose(W, opt.coef_ - 3 * D)


def test_line_min_with_intercept_moves_the_bias_too():
    X, y = make_classes(n=200, d=6, K=3)
    reg = 1e-2
    T = np.eye(3)[y]
    opt = fit_linear_probe(X, y, reg, fit_intercept=True, tol=1e-12)
    DW = np.random.default_rng(3).normal(size=opt.coef_.shape)
    Db = np.array([0.5, -1.0, 0.5])
    W, b = _line(X, T, reg, opt.coef_ - 0.8 * DW, opt.intercept_ - 0.8 * Db, (DW, Db), fit_intercept=True)
    np.testing.assert_allclose(W, opt.coef_, atol=1e-4)
    np.testing.assert_allclose(b, opt.intercept_, atol=1e-4)


def test_student_warm_start_keywords():
    X, y = make_classes()
    t0 = fit_linear_probe(X, y, 1e-3)
    assert student_warm_start(t0) == {"init": t0}
    t1 = fit_linear_probe(X, t0.predict_proba(X), 1e-3, init=t0)
    kw = student_warm_start(t1, t0)
    assert kw["init"] is t1
    np.testing.assert_array_equal(kw["_init_direction"][0], t1.coef_ - t0.coef_)


@pytest.mark.parametrize("fit_intercept", [False, True])
def test_distill_rounds_equal_cold_fits(fit_intercept):
    """The warm start changes where the solver starts, not the answer of any round."""
    X, y = make_classes(n=400, d=10, K=5, sep=1.0, seed=3)
    y = y.copy()
    y[::4] = (y[::4] + 1) % 5  # 25% wrong labels
    reg = 1e-3
    res = distill(X, y, reg=reg, rounds=4, pll=False, fit_intercept=fit_intercept)
    P = np.eye(5)[y]
    for t in range(5):
        cold = fit_linear_probe(X, P if t else y, reg, fit_intercept=fit_intercept)
        np.testing.assert_allclose(res.train_probs[f"round {t}"], cold.predict_proba(X), atol=1e-6)
        assert res.models[f"round {t}"].converged_
        P = cold.predict_proba(X)
