
import numpy as np
import pytest
from conftest import make_classes
from sklearn.datasets import load_digits, load_iris, load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from selfdistill import ConvergenceWarning, fit_linear_probe, fit_partial_label_probe
from selfdistill.probe import log_softmax, softmax


def _objective(X, T, W, b, reg):
    Z = X @ W.T + b
    return -np.sum(T * log_softmax(Z)) / X.shape[0] + 0.5 * reg * np.sum(W * W)


def _datasets():
    digits = load_digits()
    iris = load_iris()
    wine = load_wine()
    yield "digits", digits.data / 16.0, digits.target
    yield "iris", StandardScaler().fit_transform(iris.data), iris.target
    yield "wine", StandardScaler().fit_transform(wine.data), wine.target
    yield "blobs", *make_classes(n=400, d=20, K=6, seed=3)


@pytest.mark.parametrize("name,X,y", list(_datasets()), ids=lambda v: v if isinstance(v, str) else "")
@pytest.mark.parametrize("reg", [1e-2, 1e-4])
def test_agrees_with_sklearn_multinomial(name, X, y, reg):
    n = X.shape[0]
    probe = fit_linear_probe(X, y, reg)
    assert probe.converged_
    lr = LogisticRegression(C=1.0 / (n * reg), fit_intercept=False, tol=1e-12, max_iter=100_000).fit(X, y)
    rel = np.abs(probe.coef_ - lr.coef_).max() / np.abs(lr.coef_).max()
    assert rel < 1e-5, f"{name}: relative coef difference {rel:.2e}"


def test_binary_relation_to_sklearn():
    X, y = make_classes(n=200, d=5, K=2, seed=1)
    n, reg = X.shape[0], 1e-2
    probe = fit_linear_probe(X, y, reg)
    lr = LogisticRegression(C=2.0 / (n * reg), fit_intercept=False, tol=1e-12, max_iter=10_000).fit(X, y)
    w = lr.coef_[0]
    np.testing.assert_allclose(probe.coef_, np.stack([-w / 2, w / 2]), rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(probe.predict_proba(X), lr.predict_proba(X), atol=1e-7)


def test_intercept_agrees_with_sklearn():
    X, y = make_classes(n=300, d=6, K=3, seed=2)
    X = X + 3.0  # an offset the bias must absorb
    n, reg = X.shape[0], 1e-3
    probe = fit_linear_probe(X, y, reg, fit_intercept=True)
    lr = LogisticRegression(C=1.0 / (n * reg), fit_intercept=True, tol=1e-12, max_iter=100_000).fit(X, y)
    # the offset makes W and b nearly collinear: lbfgs stops a few 1e-6 away along that direction,
    # by an amount that depends on the BLAS kernel; ours is the better optimum on every kernel
    T = np.eye(3)[y]
    ours = _objective(X, T, probe.coef_, probe.intercept_, reg)
    assert ours <= _objective(X, T, lr.coef_, lr.intercept_, reg) + 1e-14
    np.testing.assert_allclose(probe.coef_, lr.coef_, rtol=1e-5, atol=1e-5)
    b_ref = lr.intercept_ - lr.intercept_.mean()
    assert np.abs(probe.intercept_ - b_ref).max() / np.abs(b_ref).max() < 1e-4
    assert abs(probe.intercept_.sum()) < 1e-10


def test_optimality_soft_targets(blobs):
    X, y = blobs
    rng = np.random.default_rng(0)
    T = rng.dirichlet(np.ones(4), size=X.shape[0])
    reg = 1e-3
    probe = fit_linear_probe(X, T, reg)
    P = probe.predict_proba(X)
    # stationarity: reg n W = (T - P)^T X
    np.testing.assert_allclose(reg * X.shape[0] * probe.coef_, (T - P).T @ X, atol=1e-6)
    assert probe.grad_norm_ <= 1e-8 * max(1.0, probe.initial_grad_norm_)
    # the answer is a minimum: random perturbations only increase the objective
    f0 = _objective(X, T, probe.coef_, 0.0, reg)
    assert abs(f0 - probe.objective_) < 1e-12
    for _ in range(5):
        dW = rng.normal(size=probe.coef_.shape) * 1e-3
        assert _objective(X, T, probe.coef_ + dW, 0.0, reg) > f0


def _num_grad(f, W, h=1e-6):
    g = np.zeros_like(W)
    for idx in np.ndindex(W.shape):
        E = np.zeros_like(W)
        E[idx] = h
        g[idx] = (f(W + E) - f(W - E)) / (2 * h)
    return g


def test_finite_difference_gradient_soft_targets():
    X, y = make_classes(n=50, d=4, K=3, seed=5)
    rng = np.random.default_rng(1)
    T = rng.dirichlet(np.ones(3), size=50)
    reg = 0.1
    W = rng.normal(size=(3, 4))
    from selfdistill.losses import CrossEntropy

    loss = CrossEntropy(T)

    def f(W):
        return _objective(X, T, W, 0.0, reg)

    _, G = loss.value_grad(X @ W.T)
    analytic = G.T @ X / 50 + reg * W
    np.testing.assert_allclose(analytic, _num_grad(f, W), atol=1e-7)


@pytest.mark.parametrize("kind", ["ce", "candidate", "gce"])
def test_hessian_vector_products_match_finite_differences(kind):
    from selfdistill.losses import GCE, Candidate, CrossEntropy

    rng = np.random.default_rng(2)
    Z = rng.normal(size=(30, 5))
    V = rng.normal(size=(30, 5))
    mask = np.zeros((30, 5), bool)
    mask[np.arange(30), rng.integers(0, 5, 30)] = True
    mask[np.arange(30), (np.argmax(mask, 1) + 1) % 5] = True
    loss = {"ce": lambda: CrossEntropy(rng.dirichlet(np.ones(5), 30)), "candidate": lambda: Candidate(mask),
            "gce": lambda: GCE(mask)}[kind]()
    h = 1e-6
    v0, G = loss.value_grad(Z)
    HV = loss.hessp(V)
    _, Gp = loss.value_grad(Z + h * V)
    _, Gm = loss.value_grad(Z - h * V)
    np.testing.assert_allclose(HV, (Gp - Gm) / (2 * h), atol=1e-6)
    # gradient check on the value
    vp, _ = loss.value_grad(Z + h * V)
    vm, _ = loss.value_grad(Z - h * V)
    assert abs((vp - vm) / (2 * h) - np.sum(G * V)) < 1e-5


def test_warm_start_saves_work(blobs):
    X, y = blobs
    cold = fit_linear_probe(X, y, 1e-3)
    T = cold.predict_proba(X)
    student_cold = fit_linear_probe(X, T, 1e-3)
    student_warm = fit_linear_probe(X, T, 1e-3, init=cold)
    assert student_warm.initial_grad_norm_ < 0.1 * student_cold.initial_grad_norm_
    assert student_warm.objective_ == pytest.approx(student_cold.objective_, abs=1e-12)
    # both meet |grad| <= 1e-8, so they agree to about 1e-8 / reg
    np.testing.assert_allclose(student_warm.coef_, student_cold.coef_, atol=1e-8 / 1e-3)
    # init as a (W, b) tuple and as an array give the same answer
    again = fit_linear_probe(X, T, 1e-3, init=(cold.coef_, cold.intercept_))
    np.testing.assert_allclose(again.coef_, student_warm.coef_)


def test_not_converged_warns_with_gradient_norm(blobs):
    X, y = blobs
    with pytest.warns(ConvergenceWarning, match=r"max-abs gradient [0-9.e+-]+ after 1 Newton"):
        probe = fit_linear_probe(X, y, 1e-5, max_iter=1)
    assert not probe.converged_


def test_predict_and_shapes(blobs):
    X, y = blobs
    probe = fit_linear_probe(X, y, 1e-3, n_classes=5)  # one class absent
    assert probe.coef_.shape == (5, X.shape[1])
    P = probe.predict_proba(X[:7])
    assert P.shape == (7, 5)
    np.testing.assert_allclose(P.sum(axis=1), 1.0)
    np.testing.assert_array_equal(probe.predict(X[:7]), np.argmax(probe.decision_function(X[:7]), 1))
    assert np.mean(probe.predict(X) == y) > 0.8
    with pytest.raises(ValueError, match="features"):
        probe.predict(X[:, :3])


def test_extreme_logits_are_stable():
    Z = np.array([[1000.0, 0.0, -1000.0], [-800.0, -800.0, -800.0]])
    P = softmax(Z)
    assert np.all(np.isfinite(P)) and np.all(np.isfinite(log_softmax(Z)))
    np.testing.assert_allclose(P[1], 1 / 3)


def test_negative_targets_only_when_allowed(blobs):
    X, y = blobs
    T = np.full((X.shape[0], 4), 0.25)
    T[:, 0] = -0.2
    T[:, 1] = 0.7
    with pytest.raises(ValueError, match="targets.*negative.*allow_negative_targets"):
        fit_linear_probe(X, T, 1e-3)
    probe = fit_linear_probe(X, T, 1e-3, allow_negative_targets=True)
    assert probe.converged_


@pytest.mark.parametrize("loss", ["candidate", "gce"])
def test_partial_label_probe_is_stationary(blobs, loss):
    X, y = blobs
    teacher = fit_linear_probe(X, y, 1e-3)
    mask = np.zeros((X.shape[0], 4), bool)
    mask[np.arange(X.shape[0]), y] = True
    mask[np.arange(X.shape[0]), (y + 1) % 4] = True
    probe = fit_partial_label_probe(X, mask, 1e-3, loss=loss, init=teacher)
    assert probe.converged_ and probe.loss_ == loss
    with pytest.warns(ConvergenceWarning):
        start = fit_partial_label_probe(X, mask, 1e-3, loss=loss, init=teacher, max_iter=0)
    assert probe.objective_ < start.objective_
    np.testing.assert_allclose(start.coef_, teacher.coef_)
    # true label is one of the candidates here, so the student predicts inside the candidate set
    pred = probe.predict(X)
    assert np.mean(mask[np.arange(X.shape[0]), pred]) > 0.95


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "X,y,reg,match",
    [
        (np.array([[0.0, np.nan], [1.0, 2.0]]), [0, 1], 1.0, "X must be finite"),
        (np.array([[0.0, np.inf], [1.0, 2.0]]), [0, 1], 1.0, "X must be finite"),
        (np.zeros((3, 2)), [0, 1], 1.0, "y has 2 entries but X has 3 rows|targets has 2 entries"),
        (np.zeros(3), [0, 1, 0], 1.0, "X must be a 2-D array"),
        (np.zeros((3, 2)), [0, 1, -1], 1.0, "labels in"),
        (np.zeros((3, 2)), [0, 0, 0], 1.0, "at least 2 classes"),
        (np.ones((3, 2)), [0, 1, 0], 0.0, "reg must be > 0"),
        (np.ones((3, 2)), [0, 1, 0], -1.0, "reg must be > 0"),
    ],
)
def test_bad_input(X, y, reg, match):
    with pytest.raises(ValueError, match=match):
        fit_linear_probe(X, y, reg)


def test_bad_soft_targets():
    X = np.ones((2, 2))
    with pytest.raises(ValueError, match="targets rows must sum to 1, row 1 sums to 0.9"):
        fit_linear_probe(X, np.array([[0.5, 0.5], [0.5, 0.4]]), 1.0)
    with pytest.raises(ValueError, match="targets.*negative"):
        fit_linear_probe(X, np.array([[1.5, -0.5], [0.5, 0.5]]), 1.0)
    with pytest.raises(ValueError, match="labels in 0..2"):
        fit_linear_probe(X, np.array([0, 3]), 1.0, n_classes=3)


@pytest.mark.parametrize("loss", ["candidate", "gce"])
def test_partial_label_weights(loss):
    """Weights 1/k on a mask give the mask's answer; the weighted losses are the stated formulas."""
    X, y = make_classes(n=120, d=6, K=4, seed=2)
    teacher = fit_linear_probe(X, y, 1e-3)
    P0 = teacher.predict_proba(X)
    mask = np.zeros(P0.shape, bool)
    np.put_along_axis(mask, np.argsort(-P0, axis=1)[:, :2], True, axis=1)
    a = fit_partial_label_probe(X, mask, 1e-3, loss=loss, init=teacher)
    b = fit_partial_label_probe(X, mask / 2.0, 1e-3, loss=loss, init=teacher)
    np.testing.assert_allclose(a.coef_, b.coef_, atol=1e-7)
    rng = np.random.default_rng(0)
    w = rng.random(P0.shape) * (rng.random(P0.shape) < 0.6)
    w[np.arange(len(w)), y] += 0.1
    w /= w.sum(1, keepdims=True)
    probe = fit_partial_label_probe(X, w, 1e-3, loss=loss, init=teacher)
    P = probe.predict_proba(X)
    data = -np.log((w * P).sum(1)) if loss == "candidate" else (w * (1 - P**0.7) / 0.7).sum(1)
    assert probe.objective_ == pytest.approx(data.mean() + 0.5 * 1e-3 * np.sum(probe.coef_**2), rel=1e-9)
    assert probe.converged_
    with pytest.raises(ValueError, match="sum to 1"):
        fit_partial_label_probe(X, w * 2, 1e-3, loss=loss)


# ------------------------------------------------------------------------------ sample_weight
@pytest.mark.parametrize("fit_intercept", [False, True])
@pytest.mark.parametrize("soft", [False, True])
def test_integer_sample_weights_equal_repeated_rows(fit_intercept, soft):
    X, y = make_classes(n=120, d=6, K=4, seed=7)
    w = np.random.default_rng(0).integers(0, 4, size=120)  # zeros drop rows
    T = np.random.default_rng(1).dirichlet(np.ones(4), size=120) if soft else y
    reg = 1e-2
    a = fit_linear_probe(X, T, reg, sample_weight=w, fit_intercept=fit_intercept, n_classes=4, tol=1e-12)
    b = fit_linear_probe(np.repeat(X, w, axis=0), np.repeat(T, w, axis=0), reg, fit_intercept=fit_intercept,
                         n_classes=4, tol=1e-12)
    assert a.converged_ and b.converged_
    np.testing.assert_allclose(a.coef_, b.coef_, atol=1e-9)
    np.testing.assert_allclose(a.intercept_, b.intercept_, atol=1e-9)
    assert a.objective_ == pytest.approx(b.objective_, rel=1e-12)
    # only the ratios of the weights matter: (1/sum w) sum_i w_i CE_i
    c = fit_linear_probe(X, T, reg, sample_weight=2.5 * w, fit_intercept=fit_intercept, n_classes=4, tol=1e-12)
    np.testing.assert_allclose(c.coef_, a.coef_, atol=1e-9)


@pytest.mark.parametrize("fit_intercept", [False, True])
def test_sample_weight_agrees_with_sklearn(fit_intercept):
    X, y = make_classes(n=300, d=8, K=5, seed=4)
    w = np.random.default_rng(3).uniform(0.0, 3.0, size=300)
    reg = 1e-3
    probe = fit_linear_probe(X, y, reg, sample_weight=w, fit_intercept=fit_intercept, tol=1e-12)
    lr = LogisticRegression(C=1.0 / (w.sum() * reg), fit_intercept=fit_intercept, tol=1e-12, max_iter=100_000)
    lr.fit(X, y, sample_weight=w)
    rel = np.abs(probe.coef_ - lr.coef_).max() / np.abs(lr.coef_).max()
    assert rel < 1e-5
    if fit_intercept:  # sklearn's multinomial intercepts are centred too (unpenalised, shift-invariant)
        np.testing.assert_allclose(probe.intercept_, lr.intercept_ - lr.intercept_.mean(), atol=1e-5)
    np.testing.assert_allclose(probe.predict_proba(X), lr.predict_proba(X), atol=1e-6)


def test_unit_sample_weights_change_nothing():
    X, y = make_classes(n=200, d=6, K=3, seed=5)
    a = fit_linear_probe(X, y, 1e-3)
    b = fit_linear_probe(X, y, 1e-3, sample_weight=np.ones(200))
    np.testing.assert_allclose(b.coef_, a.coef_, atol=1e-10)


@pytest.mark.parametrize(
    "w, match",
    [
        (-np.ones(50), r"sample_weight must be finite and >= 0, got -1.0 at index 0"),
        (np.r_[np.ones(49), np.nan], r"sample_weight must be finite and >= 0, got nan at index 49"),
        (np.ones(49), r"sample_weight must be a 1-D numeric array of n = 50 .* shape \(49,\)"),
        (np.ones((50, 1)), r"sample_weight must be a 1-D numeric array of n = 50 .* shape \(50, 1\)"),
        (np.array(["a"] * 50), r"sample_weight must be a 1-D numeric array"),
        (np.zeros(50), r"sample_weight must have a positive sum .* all zeros"),
    ],
)
def test_bad_sample_weight_is_rejected(w, match):
    X, y = make_classes(n=50, d=4, K=3, seed=1)
    with pytest.raises(ValueError, match=match):
        fit_linear_probe(X, y, 1e-2, sample_weight=w)
