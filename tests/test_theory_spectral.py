"""selfdistill.theory.spectral: label averaging, the exact fixed point and chain, bad input."""

import dataclasses
import tracemalloc
import warnings

import numpy as np
import pytest

from selfdistill import distill, fit_linear_probe
from selfdistill.probe import softmax
from selfdistill.theory import (
    adam_fixed_point,
    exact_chain,
    fixed_point,
    fixed_point_residual,
    label_averaging,
    theory_vs_training,
)


def _problem(n=60, d=8, K=3, m=12, seed=0):
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(K, d))
    y = np.arange(n) % K
    X = (means[y] + rng.normal(size=(n, d))) / np.sqrt(d)
    Xt = (means[np.arange(m) % K] + rng.normal(size=(m, d))) / np.sqrt(d)
    return X, y, Xt, np.arange(m) % K


# ------------------------------------------------------------------------------ label averaging
def test_label_averaging_matches_matrix_powers_for_X_and_gram():
    X, y, Xt, _ = _problem()
    n, K, reg, R = X.shape[0], 3, 0.01, 4
    G = X @ X.T
    A = G @ np.linalg.inv(G + K * n * reg * np.eye(n))
    Rm = np.eye(K)[y] - 1.0 / K
    a = label_averaging(y, reg, R, X=X, X_test=Xt)
    b = label_averaging(y, reg, R, gram=G, gram_test=Xt @ X.T)
    assert a.train_probs.shape == (R + 1, n, K)
    Ak = np.eye(n)
    for t in range(R + 1):
        Ak = A @ Ak
        expected = 1.0 / K + Ak @ Rm
        np.testing.assert_allclose(a.train_probs[t], expected, atol=1e-12)
        np.testing.assert_allclose(b.train_probs[t], expected, atol=1e-12)
        # test point: 1/K + g^T (G + lam)^-1 A^t R
        lin_t = 1.0 / K + (Xt @ X.T) @ np.linalg.solve(G + K * n * reg * np.eye(n), np.linalg.matrix_power(A, t) @ Rm)
        np.testing.assert_allclose(a.test_probs[t], lin_t, atol=1e-12)
        np.testing.assert_allclose(b.test_probs[t], lin_t, atol=1e-12)
    # rows sum to 1 (linear model: entries need not be in [0, 1])
    np.testing.assert_allclose(a.train_probs.sum(axis=2), 1.0, atol=1e-12)
    # the training points seen as new points reproduce the training outputs
    np.testing.assert_allclose(a.predict_proba(X), a.train_probs, atol=1e-12)
    np.testing.assert_array_equal(a.predictions, np.argmax(a.train_probs, axis=2))
    assert a.accuracy(y).shape == (R + 1,)


def test_label_averaging_spectrum_and_signal_account_for_all_energy():
    X, y, _, _ = _problem(n=40, d=6)
    K, reg, R = 3, 0.05, 3
    la = label_averaging(y, reg, R, X=X)
    assert la.eigenvalues.shape == (6,) and np.all(np.diff(la.eigenvalues) <= 0)
    np.testing.assert_allclose(la.eigenvalues, np.sort(np.linalg.eigvalsh(X.T @ X))[::-1], rtol=1e-10)
    f = la.eigenvalues / (la.eigenvalues + K * 40 * reg)
    np.testing.assert_allclose(la.filters, f[None, :] ** np.arange(1, R + 2)[:, None])
    Rm = np.eye(K)[y] - 1.0 / K
    # energy: in the span of X plus outside it = ||R||^2; per round: ||P_t - 1/K||^2 = sum of signal
    assert la.label_signal.sum() + la.null_signal == pytest.approx(float(np.sum(Rm**2)))
    assert la.null_signal > 0  # n > d: most of the label signal is outside the span and dies at once
    for t in range(R + 1):
        assert la.signal[t].sum() == pytest.approx(float(np.sum((la.train_probs[t] - 1.0 / K) ** 2)), rel=1e-10)
    # filters fall with the round; small eigenvalues die first
    assert np.all(la.filters[1:] <= la.filters[:-1])
    assert la.filters[-1, -1] / la.filters[0, -1] < la.filters[-1, 0] / la.filters[0, 0]


def test_label_averaging_accepts_soft_targets_and_absent_classes():
    X, y, _, _ = _problem()
    T = np.eye(4)[y]  # class 3 absent: K = 4 from the target matrix
    a = label_averaging(T, 0.01, 2, X=X)
    b = label_averaging(y, 0.01, 2, X=X, n_classes=4)
    assert a.train_probs.shape == (3, 60, 4)
    np.testing.assert_allclose(a.train_probs, b.train_probs)


def test_label_averaging_on_features_never_forms_an_n_by_n_matrix():
    rng = np.random.default_rng(1)
    n, d, K = 20_000, 16, 5
    X = rng.normal(size=(n, d)) / 4
    y = rng.integers(0, K, n)
    tracemalloc.start()
    la = label_averaging(y, 1e-4, 2, X=X)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert la.train_probs.shape == (3, n, K)
    assert peak < 60e6  # an n x n float64 matrix alone would be 3.2 GB


# ------------------------------------------------------------------------------ the fixed point
def test_fixed_point_solves_the_equation_and_matches_the_probe():
    X, y, _, _ = _problem()
    n, reg = X.shape[0], 0.003
    P, info = fixed_point(y, reg, X=X, return_info=True)
    assert info["residual"] < 1e-10
    G = X @ X.T
    T = np.eye(3)[y]
    assert np.abs(P - softmax(G @ (T - P) / (n * reg))).max() < 1e-10
    probe = fit_linear_probe(X, y, reg, tol=1e-12)
    np.testing.assert_allclose(P, probe.predict_proba(X), atol=1e-8)
    Pg = fixed_point(y, reg, gram=G)
    np.testing.assert_allclose(Pg, P, atol=1e-8)
    assert fixed_point_residual(Pg, y, reg, gram=G) < 1e-10
    assert fixed_point_residual(np.full_like(P, 1 / 3), y, reg, X=X) > 1e-2


def test_fixed_point_soft_targets_rank_deficient_and_roundoff_gram():
    rng = np.random.default_rng(3)
    n, K, reg = 30, 4, 0.01
    X = rng.normal(size=(n, 3))  # rank 3 < n: G singular
    T = softmax(rng.normal(size=(n, K)))
    G = X @ X.T
    E = rng.normal(size=(n, n)) * 1e-15
    G_noisy = G + (E + E.T) / 2  # tiny negative eigenvalues from round-off are accepted
    P = fixed_point(T, reg, gram=G_noisy)
    assert fixed_point_residual(P, T, reg, gram=G) < 1e-10
    np.testing.assert_allclose(P, fixed_point(T, reg, X=X), atol=1e-8)


def test_exact_chain_matches_distill_round_for_round():
    X, y, Xt, yt = _problem(n=45, K=3)
    reg, R = 0.01, 3
    ch = exact_chain(y, reg, R, X=X, pll=True, X_test=Xt)
    res = distill(X, y, reg=reg, rounds=R, pll=True, pll_loss="uniform", X_test=Xt, y_test=yt, tol=1e-12)
    assert ch.train_probs.shape == (R + 1, 45, 3)
    assert max(ch.residuals) < 1e-10 and len(ch.residuals) == R + 2
    for t in range(R + 1):
        np.testing.assert_allclose(ch.train_probs[t], res.train_probs[f"round {t}"], atol=1e-8)
        assert ch.test_accuracy(yt)[t] == pytest.approx(res.metric(f"round {t}", "test_acc"))
    np.testing.assert_allclose(ch.pll_probs, res.train_probs["pll-uniform"], atol=1e-8)
    # the same chain from the Gram matrix alone
    chg = exact_chain(y, reg, R, gram=X @ X.T, pll=True, gram_test=Xt @ X.T)
    np.testing.assert_allclose(chg.train_probs, ch.train_probs, atol=1e-8)
    np.testing.assert_allclose(chg.test_probs, ch.test_probs, atol=1e-8)
    np.testing.assert_allclose(chg.test_pll_probs, ch.test_pll_probs, atol=1e-8)
    assert chg.pll_accuracy(y) == pytest.approx(ch.pll_accuracy(y))


def test_linearisation_error_vanishes_as_logits_shrink():
    """Exact fixed point -> label averaging when the logits are small (large reg): error O(logit^2)."""
    X, y, _, _ = _problem(n=40)
    errors, sizes = [], []
    for reg in [1.0, 10.0, 100.0]:
        lin = label_averaging(y, reg, 0, X=X).train_probs[0]
        exact = fixed_point(y, reg, X=X)
        errors.append(np.abs(exact - lin).max())
        sizes.append(np.abs(lin - 1 / 3).max())
    # the signal falls ~ 1/reg, the linearisation error ~ 1/reg^2 (second order in the logits)
    assert sizes[0] / sizes[1] > 5 and sizes[1] / sizes[2] > 5
    assert errors[0] / errors[1] > 30 and errors[1] / errors[2] > 30
    assert errors[2] / sizes[2] < 0.01


def test_adam_baseline_approaches_the_exact_fixed_point():
    X, y, _, _ = _problem(n=30, d=5)
    G = X @ X.T
    P_exact = fixed_point(y, 0.05, gram=G)
    P, hist = adam_fixed_point(y, 0.05, gram=G, steps=3000, lr=0.02, record_every=500)
    assert hist[-1] < hist[0]
    assert np.abs(P - P_exact).max() < 1e-3
    assert hist[-1] > 1e-12  # an iterative method: nowhere near the exact solver's residual


def test_theory_vs_training_rows():
    X, y, Xt, yt = _problem(n=60, K=3, m=30)
    rows = theory_vs_training(X, y, Xt, yt, [0.01, 100.0], rounds=2, y_true=y)
    assert len(rows) == 6
    assert {r["reg"] for r in rows} == {0.01, 100.0}
    for r in rows:
        assert 0 <= r["theory_test_acc"] <= 1 and 0 <= r["trained_test_acc"] <= 1
        assert 0 <= r["test_agreement"] <= 1
    # at large reg (logits ~ 1e-2) the linearised theory and training agree on every test point
    assert all(r["test_agreement"] == 1.0 for r in rows if r["reg"] == 100.0)


# ------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "gram, match",
    [
        (np.ones((3, 4)), "square"),
        (np.array([[1.0, 0.5], [0.2, 1.0]]), "symmetric"),
        (np.array([[1.0, 2.0], [2.0, 1.0]]), "positive semi-definite"),
        (np.array([[1.0, np.nan], [np.nan, 1.0]]), "finite"),
    ],
)
def test_bad_gram_is_rejected(gram, match):
    y = np.array([0, 1, 0, 1])[: gram.shape[0]]
    with pytest.raises(ValueError, match=match):
        label_averaging(y, 0.1, 1, gram=gram)
    with pytest.raises(ValueError, match=match):
        fixed_point(y, 0.1, gram=gram)


def test_bad_arguments_are_rejected():
    X, y, Xt, _ = _problem(n=20)
    with pytest.raises(ValueError, match="reg"):
        label_averaging(y, 0.0, 1, X=X)
    with pytest.raises(ValueError, match="reg"):
        fixed_point(y, -1.0, X=X)
    with pytest.raises(ValueError, match="rounds"):
        label_averaging(y, 0.1, -1, X=X)
    with pytest.raises(ValueError, match="rounds"):
        exact_chain(y, 0.1, -1, X=X)
    with pytest.raises(ValueError, match="exactly one"):
        label_averaging(y, 0.1, 1)
    with pytest.raises(ValueError, match="exactly one"):
        fixed_point(y, 0.1, X=X, gram=X @ X.T)
    with pytest.raises(ValueError, match="rows"):
        label_averaging(y[:-1], 0.1, 1, X=X)
    with pytest.raises(ValueError, match="gram_test"):
        label_averaging(y, 0.1, 1, gram=X @ X.T, gram_test=np.ones((3, 5)))
    with pytest.raises(ValueError, match="X_test"):
        label_averaging(y, 0.1, 1, gram=X @ X.T, X_test=Xt)
    with pytest.raises(ValueError, match="features"):
        label_averaging(y, 0.1, 1, X=X, X_test=Xt[:, :3])
    with pytest.raises(ValueError, match="sum to 1"):
        fixed_point(np.full((20, 3), 0.5), 0.1, X=X)
    with pytest.raises(ValueError, match="top_k"):
        exact_chain(y, 0.1, 1, X=X, pll=True, top_k=3)
    la = label_averaging(y, 0.1, 1, X=X)
    with pytest.raises(ValueError, match="X_new"):
        la.predict_proba(gram_new=np.ones((2, 20)))
    with pytest.raises(ValueError, match="no eigenbasis"):  # a copy made without label_averaging's basis
        dataclasses.replace(la, _basis=None).predict_proba(X)


def test_fixed_point_warns_when_residual_target_is_unreachable():
    X, y, _, _ = _problem(n=20)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fixed_point(y, 0.1, X=X)  # reachable: no warning
    with pytest.warns(RuntimeWarning, match="residual"):
        fixed_point(y, 0.1, X=X, tol=1e-30)
