"""Array backends and precisions of the solver: same answers everywhere (issue 5, section 3)."""


import numpy as np
import pytest
from conftest import make_classes

from selfdistill import distill, fit_linear_probe, fit_partial_label_probe


def _problem(n=600, d=12, K=5, seed=0):
    X, y = make_classes(n=n, d=d, K=K, sep=1.5, seed=seed)
    return X, y


def _same(a, b, atol):
    np.testing.assert_array_equal(a.predict(_problem()[0]), b.predict(_problem()[0]))
    np.testing.assert_allclose(a.predict_proba(_problem()[0]), b.predict_proba(_problem()[0]), atol=atol, rtol=0)


# ---------------------------------------------------------------- numpy float32 / streaming
def test_float32_iterations_meet_the_float64_tolerance():
    X, y = _problem()
    ref = fit_linear_probe(X, y, 1e-3)
    p32 = fit_linear_probe(X, y, 1e-3, dtype=np.float32)
    assert p32.converged_ and p32.grad_norm_ <= 1e-8 * max(1.0, p32.initial_grad_norm_)
    _same(ref, p32, 1e-5)
    assert p32.coef_.dtype == np.float64


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_memory_mapped_features_are_streamed(tmp_path, dtype):
    X, y = _problem()
    path = tmp_path / "X.npy"
    np.save(path, X.astype(dtype))
    Xm = np.load(path, mmap_mode="r")
    assert isinstance(Xm, np.memmap)
    ref = fit_linear_probe(X.astype(dtype).astype(np.float64), y, 1e-3)
    got = fit_linear_probe(Xm, y, 1e-3, dtype=dtype, chunk_rows=97)
    assert got.converged_
    np.testing.assert_array_equal(ref.predict(X), got.predict(X))
    np.testing.assert_allclose(ref.predict_proba(X), got.predict_proba(X), atol=1e-6)


def test_chunk_rows_in_memory_and_partial_label():
    X, y = _problem()
    mask = np.zeros((X.shape[0], 5), bool)
    mask[np.arange(X.shape[0]), y] = True
    mask[np.arange(X.shape[0]), (y + 1) % 5] = True
    teacher = fit_linear_probe(X, y, 1e-3)
    for loss in ("candidate", "gce"):
        a = fit_partial_label_probe(X, mask, 1e-3, loss=loss, init=teacher)
        b = fit_partial_label_probe(X, mask, 1e-3, loss=loss, init=teacher, chunk_rows=128, dtype=np.float32)
        np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), atol=1e-5)


def test_bad_backend_arguments():
    X, y = _problem()
    with pytest.raises(ValueError, match="backend must be one of"):
        fit_linear_probe(X, y, 1e-3, backend="jax")
    with pytest.raises(ValueError, match="dtype must be float64 or float32"):
        fit_linear_probe(X, y, 1e-3, dtype=np.float16)
    with pytest.raises(ValueError, match="needs backend='torch'"):
        fit_linear_probe(X, y, 1e-3, device="cuda")


def test_memmap_with_nonfinite_values_is_rejected(tmp_path):
    X, y = _problem()
    X = X.astype(np.float32)
    X[5, 3] = np.nan
    np.save(tmp_path / "X.npy", X)
    with pytest.raises(ValueError, match="finite"):
        fit_linear_probe(np.load(tmp_path / "X.npy", mmap_mode="r"), y, 1e-3)


# ---------------------------------------------------------------- torch
try:
    import torch
except ImportError:  # torch is optional
    torch = None

requires_torch = pytest.mark.skipif(torch is None, reason="torch (optional dependency) is not installed")


@requires_torch
@pytest.mark.parametrize("fit_intercept", [False, True])
def test_torch_float64_matches_numpy(fit_intercept):
    X, y = _problem()
    a = fit_linear_probe(X + 1.0, y, 1e-3, fit_intercept=fit_intercept)
    b = fit_linear_probe(X + 1.0, y, 1e-3, fit_intercept=fit_intercept, backend="torch", device="cpu")
    assert b.converged_ and isinstance(b.coef_, np.ndarray)
    np.testing.assert_array_equal(a.predict(X + 1.0), b.predict(X + 1.0))
    np.testing.assert_allclose(a.predict_proba(X + 1.0), b.predict_proba(X + 1.0), atol=1e-5, rtol=0)


@requires_torch
def test_torch_float32_matches_numpy_soft_targets():
    X, y = _problem()
    T = np.random.default_rng(0).dirichlet(np.ones(5), size=X.shape[0])
    a = fit_linear_probe(X, T, 1e-3)
    b = fit_linear_probe(X, T, 1e-3, backend="torch", dtype=np.float32)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), atol=1e-3, rtol=0)


@requires_torch
def test_torch_tensor_inputs_and_torch_dtype():
    X, y = _problem()
    T = np.eye(5)[y] * 0.9 + 0.02
    a = fit_linear_probe(X, T, 1e-3)
    b = fit_linear_probe(torch.from_numpy(X), torch.from_numpy(T), 1e-3, backend="torch", dtype=torch.float64)
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="sum to 1"):
        fit_linear_probe(torch.from_numpy(X), torch.from_numpy(T * 0.5), 1e-3, backend="torch")


@requires_torch
@pytest.mark.parametrize("loss", ["candidate", "gce"])
def test_torch_partial_label(loss):
    X, y = _problem()
    mask = np.zeros((X.shape[0], 5), bool)
    mask[np.arange(X.shape[0]), y] = True
    mask[np.arange(X.shape[0]), (y + 2) % 5] = True
    teacher = fit_linear_probe(X, y, 1e-3)
    a = fit_partial_label_probe(X, mask, 1e-3, loss=loss, init=teacher)
    b = fit_partial_label_probe(X, mask, 1e-3, loss=loss, init=teacher, backend="torch")
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), atol=1e-5, rtol=0)


@requires_torch
@pytest.mark.parametrize("dtype,atol", [(np.float64, 1e-5), (np.float32, 1e-3)])
def test_distill_chain_same_answers_across_backends(dtype, atol):
    X, y = _problem(n=400)
    ref = distill(X, y, reg=1e-3, rounds=2)
    got = distill(X, y, reg=1e-3, rounds=2, backend="torch", dtype=dtype)
    assert list(ref.models) == list(got.models)
    for name in ref.models:
        np.testing.assert_array_equal(ref.corrected_labels(name), got.corrected_labels(name))
        np.testing.assert_allclose(ref.train_probs[name], got.train_probs[name], atol=atol, rtol=0)


@requires_torch
def test_torch_not_converged_warning_text():
    X, y = _problem()
    with pytest.warns(Warning, match=r"did not converge: max-abs gradient .* after 1 Newton iterations"):
        fit_linear_probe(X, y, 1e-3, max_iter=1, backend="torch", dtype=np.float32)


@pytest.mark.skipif(torch is None or not torch.cuda.is_available(), reason="no CUDA device (or torch not installed)")
def test_torch_cuda_matches_numpy():
    X, y = _problem()
    a = fit_linear_probe(X, y, 1e-3)
    for dtype, atol in [(np.float64, 1e-5), (np.float32, 1e-3)]:
        b = fit_linear_probe(X, y, 1e-3, backend="torch", device="cuda", dtype=dtype)
        np.testing.assert_array_equal(a.predict(X), b.predict(X))
        np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), atol=atol, rtol=0)


@pytest.mark.parametrize(
    "kw",
    [
        dict(dtype=np.float32),
        dict(chunk_rows=37),
        pytest.param(dict(backend="torch"), marks=requires_torch),
        pytest.param(dict(backend="torch", dtype=np.float32, fit_intercept=True), marks=requires_torch),
    ],
    ids=["numpy-float32", "numpy-chunked", "torch-float64", "torch-float32-intercept"],
)
@pytest.mark.parametrize("soft", [False, True])
def test_sample_weight_same_answer_on_every_backend(kw, soft):
    X, y = _problem()
    T = np.random.default_rng(0).dirichlet(np.ones(5), size=X.shape[0]) if soft else y
    w = np.random.default_rng(1).uniform(0.0, 2.0, size=X.shape[0])
    fi = kw.get("fit_intercept", False)
    a = fit_linear_probe(X, T, 1e-3, sample_weight=w, fit_intercept=fi)
    b = fit_linear_probe(X, T, 1e-3, sample_weight=w, **kw)
    assert b.converged_
    np.testing.assert_allclose(b.predict_proba(X), a.predict_proba(X), atol=1e-5, rtol=0)
    # torch float32 keeps only a float32 copy of X: its float64 passes see X rounded to float32
    rel = 1e-7 if kw.get("backend") == "torch" and kw.get("dtype") == np.float32 else 1e-9
    assert b.objective_ == pytest.approx(a.objective_, rel=rel)
