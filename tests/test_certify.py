"""stop="certain": the strong-convexity certificate of the exact minimiser's predictions."""

import numpy as np
import pytest
from conftest import make_classes

from selfdistill import distill, fit_linear_probe


def _noisy(n=400, d=10, K=4, seed=0):
    X, y = make_classes(n=n, d=d, K=K, seed=seed)
    y = y.copy()
    y[::4] = (y[::4] + 1) % K
    return X, y


def test_certified_answer_has_the_exact_minimisers_predictions_and_top_k():
    X, y = _noisy()
    Xt, _ = make_classes(n=200, d=10, K=4, seed=9)
    exact = fit_linear_probe(X, y, 1e-4, tol=1e-14, max_iter=200)
    cert = fit_linear_probe(X, y, 1e-4, tol=1e-13, stop="certain", certify_X=Xt, certify_top_k=2)
    assert cert.n_uncertain_ == 0 and cert.converged_
    np.testing.assert_array_equal(cert.predict(X), exact.predict(X))
    np.testing.assert_array_equal(cert.predict(Xt), exact.predict(Xt))
    top2 = lambda m, A: np.sort(np.argsort(-m.decision_function(A), axis=1)[:, :2], axis=1)  # noqa: E731
    np.testing.assert_array_equal(top2(cert, X), top2(exact, X))
    assert fit_linear_probe(X, y, 1e-4).n_uncertain_ is None  # stop="tol" certifies nothing


@pytest.mark.parametrize("max_iter", [1, 2, 3])
def test_the_certificate_is_sound_far_from_the_optimum(max_iter):
    # a few Newton steps only: many points are uncertain, and every prediction that differs
    # from the exact minimiser's must be among them
    X, y = _noisy(seed=1)
    Xt, _ = make_classes(n=300, d=10, K=4, seed=8)
    exact = fit_linear_probe(X, y, 1e-3, tol=1e-14, max_iter=200)
    with pytest.warns(Warning):
        rough = fit_linear_probe(X, y, 1e-3, stop="certain", certify_X=Xt, max_iter=max_iter, tol=1e-14)
    wrong = int((rough.predict(X) != exact.predict(X)).sum() + (rough.predict(Xt) != exact.predict(Xt)).sum())
    assert rough.n_uncertain_ >= wrong
    assert rough.n_uncertain_ > 0


def test_certain_stops_no_later_than_tol():
    X, y = _noisy(seed=2)
    by_tol = fit_linear_probe(X, y, 1e-2)
    by_cert = fit_linear_probe(X, y, 1e-2, stop="certain")
    assert by_cert.n_iter_ <= by_tol.n_iter_
    assert by_cert.n_uncertain_ == 0


def test_stop_arguments_are_checked():
    X, y = _noisy(n=60)
    with pytest.raises(ValueError, match="stop must be 'tol' or 'certain', got 'exact'"):
        fit_linear_probe(X, y, 1e-2, stop="exact")
    with pytest.raises(ValueError, match="stop='certain' needs fit_intercept=False"):
        fit_linear_probe(X, y, 1e-2, stop="certain", fit_intercept=True)
    with pytest.raises(ValueError, match="certify_X\\[0\\] has 3 features but X has 10"):
        fit_linear_probe(X, y, 1e-2, stop="certain", certify_X=np.ones((5, 3)))
    with pytest.raises(ValueError, match="certify_top_k"):
        fit_linear_probe(X, y, 1e-2, stop="certain", certify_top_k=0)
    with pytest.raises(ValueError, match="stop must be 'tol' or 'certain'"):
        distill(X, y, reg=1e-2, stop="sure")


def test_distill_certifies_each_convex_model():
    X, y = _noisy(seed=3)
    Xt, yt = make_classes(n=100, d=10, K=4, seed=7)
    res = distill(X, y, reg=1e-3, rounds=2, pll_loss=("uniform", "gce"), X_test=Xt, y_test=yt,
                  stop="certain", tol=1e-13)
    for name in ("round 0", "round 1", "round 2", "pll-uniform"):
        assert res.models[name].n_uncertain_ == 0, name
    assert res.models["pll-gce"].n_uncertain_ is None  # non-convex: stops at tol
    assert res.config["stop"] == "certain"
