"""distill() and LinearProbe predictions on memory-mapped features (.npy, float32 / float64),
streamed in row chunks and never loaded whole."""

import importlib
import tracemalloc

import numpy as np
import pytest
from conftest import make_classes

from selfdistill import LinearProbe, distill, fit_linear_probe
from selfdistill._validation import _check_finite_chunked, check_features

distill_module = importlib.import_module("selfdistill.distill")  # the module, not the function

N, D, K = 600, 20, 4


def _data(seed=0):
    X, y = make_classes(n=N + 200, d=D, K=K, sep=1.5, seed=seed)
    rng = np.random.default_rng(seed + 1)
    y_noisy = np.where(rng.random(N) < 0.3, rng.integers(0, K, N), y[:N])
    return X[:N], y_noisy, y[:N], X[N:], y[N:]


def _memmap(tmp_path, name, A):
    path = tmp_path / f"{name}.npy"
    np.save(path, A)
    Am = np.load(path, mmap_mode="r")
    assert isinstance(Am, np.memmap) and Am.dtype == A.dtype
    return Am


def _run(X, y, y_true, X_test, y_test):
    return distill(
        X, y, reg=1e-3, rounds=2, pll_loss=("uniform", "candidate"), top_k=2,
        X_test=X_test, y_test=y_test, y_true=y_true,
    )


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_distill_on_memmap_matches_in_memory(tmp_path, dtype):
    X, y, y_true, X_test, y_test = _data()
    X, X_test = X.astype(dtype), X_test.astype(dtype)
    Xm, Xm_test = _memmap(tmp_path, "X", X), _memmap(tmp_path, "X_test", X_test)
    # reference: the very same values, in memory, as float64 (exact upcast of the float32 ones)
    ref = _run(X.astype(np.float64), y, y_true, X_test.astype(np.float64), y_test)
    got = _run(Xm, y, y_true, Xm_test, y_test)

    assert list(got.models) == list(ref.models) == ["round 0", "round 1", "round 2", "pll-uniform", "pll-candidate"]
    X64 = X.astype(np.float64)
    for name in ref.models:
        np.testing.assert_array_equal(got.corrected_labels(name), ref.corrected_labels(name))
        np.testing.assert_allclose(got.train_probs[name], ref.train_probs[name], atol=1e-6, rtol=0)
        np.testing.assert_allclose(got.models[name].coef_, ref.models[name].coef_, atol=1e-6, rtol=0)
        # the fitted probes predict the same from the memmap as from memory
        mine, theirs = got.models[name], ref.models[name]
        np.testing.assert_array_equal(mine.predict(Xm_test), theirs.predict(X_test.astype(np.float64)))
        np.testing.assert_allclose(mine.predict_proba(Xm), theirs.predict_proba(X64), atol=1e-6, rtol=0)
    for a, b in zip(got.metrics, ref.metrics, strict=False):
        assert a["model"] == b["model"]
        for key in ("test_acc", "train_acc", "kept", "corrected", "agree_given", "topk_coverage"):
            assert a[key] == b[key], (a["model"], key)
        assert a["converged"]
    assert got.config["n_train"] == N and got.config["n_features"] == D


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_check_features_keeps_the_memmap(tmp_path, dtype):
    X = _data()[0].astype(dtype)
    Xm = _memmap(tmp_path, "X", X)
    out = check_features(Xm, stream=True)
    assert out is Xm and isinstance(out, np.memmap) and out.dtype == dtype
    # without stream=, a memmap of the requested dtype (float64) is kept, others converted as before
    plain = check_features(Xm)
    if dtype == np.float64:
        assert plain is Xm
    else:
        assert not isinstance(plain, np.memmap) and plain.dtype == np.float64
        np.testing.assert_array_equal(plain, X.astype(np.float64))
    # ordinary arrays: unchanged behaviour (converted to float64)
    arr = check_features(X, stream=True)
    assert type(arr) is np.ndarray and arr.dtype == np.float64


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_distill_passes_the_memmap_itself_to_the_fits(tmp_path, monkeypatch, dtype):
    X, y, *_ = _data()
    Xm = _memmap(tmp_path, "X", X.astype(dtype))
    checked, fitted = [], []
    real_check, real_fit = distill_module.check_features, distill_module.fit_ce_unchecked
    real_pll = distill_module.fit_pll_unchecked

    def check(X, *args, **kwargs):
        out = real_check(X, *args, **kwargs)
        checked.append(out)
        return out

    def fit(X, *args, **kwargs):
        fitted.append(X)
        return real_fit(X, *args, **kwargs)

    def fit_pll(X, *args, **kwargs):
        fitted.append(X)
        return real_pll(X, *args, **kwargs)

    monkeypatch.setattr(distill_module, "check_features", check)
    monkeypatch.setattr(distill_module, "fit_ce_unchecked", fit)
    monkeypatch.setattr(distill_module, "fit_pll_unchecked", fit_pll)
    distill(Xm, y, reg=1e-3, rounds=1, pll_loss=("uniform", "gce"))
    assert checked and checked[0] is Xm
    assert len(fitted) == 4 and all(f is Xm for f in fitted)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_decision_function_on_memmap_equals_in_memory(tmp_path, dtype):
    X, y, *_ = _data()
    X = X.astype(dtype)
    probe = fit_linear_probe(X.astype(np.float64), y, 1e-3, fit_intercept=True)
    Xm = _memmap(tmp_path, "X", X)
    Z = probe.decision_function(Xm)
    assert type(Z) is np.ndarray and Z.dtype == np.float64 and Z.shape == (N, K)
    np.testing.assert_allclose(Z, X.astype(np.float64) @ probe.coef_.T + probe.intercept_, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(probe.predict_proba(Xm), probe.predict_proba(X.astype(np.float64)),
                               rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(probe.predict(Xm), probe.predict(X.astype(np.float64)))
    with pytest.raises(ValueError, match="X has 20 features but the probe was fitted on 3"):
        LinearProbe(coef_=np.zeros((K, 3)), intercept_=np.zeros(K), reg_=1.0).decision_function(Xm)


def test_decision_function_streams_several_chunks(tmp_path, monkeypatch):
    X, y, *_ = _data()
    probe = fit_linear_probe(X, y, 1e-3)
    Xm = _memmap(tmp_path, "X", X.astype(np.float32))
    monkeypatch.setattr("selfdistill._validation.CHUNK_ROWS", 97)  # 600 rows: 7 chunks, the last short
    np.testing.assert_allclose(
        probe.decision_function(Xm), X.astype(np.float32).astype(np.float64) @ probe.coef_.T, rtol=1e-12, atol=1e-12
    )


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_memmap_with_nan_names_the_argument_and_row(tmp_path, dtype):
    X, y, y_true, X_test, y_test = _data()
    bad = X.astype(dtype)
    bad[123, 7] = np.nan
    bad[400, 0] = np.inf
    msg = r"X must be finite, found .*nan.* at row 123, column 7 \(2 non-finite entries in all\)"
    with pytest.raises(ValueError, match=msg):
        distill(_memmap(tmp_path, "bad", bad), y, reg=1e-3, rounds=1)
    Xm = _memmap(tmp_path, "X", X.astype(dtype))
    with pytest.raises(ValueError, match=r"X_test must be finite, found .* at row 123, column 7"):
        distill(Xm, y, reg=1e-3, rounds=0, pll=False, X_test=_memmap(tmp_path, "bad_test", bad[:200]), y_test=y_test)
    probe = fit_linear_probe(X, y, 1e-3)
    with pytest.raises(ValueError, match=r"X must be finite, found .* at row 123, column 7"):
        probe.predict(_memmap(tmp_path, "bad2", bad))


def test_chunked_finiteness_counts_rows_over_the_whole_array():
    X = np.zeros((50, 3), np.float32)
    X[17, 2] = np.nan
    X[18, 0] = -np.inf
    X[44, 1] = np.nan
    msg = r"A must be finite, found .*nan.* at row 17, column 2 \(3 non-finite entries in all\)"
    with pytest.raises(ValueError, match=msg):
        _check_finite_chunked(X, "A", chunk_rows=7)
    _check_finite_chunked(np.ones((50, 3)), "A", chunk_rows=7)  # finite: no error


def test_memmap_shape_errors(tmp_path):
    with pytest.raises(ValueError, match="X must be a 2-D array"):
        check_features(_memmap(tmp_path, "v", np.ones(5, np.float32)), stream=True)
    with pytest.raises(ValueError, match="X must be non-empty"):
        check_features(_memmap(tmp_path, "e", np.ones((0, 4), np.float32)), stream=True)


def test_no_whole_copy_or_mask_of_a_large_memmap(tmp_path):
    # 300000 x 20 float32 = 24 MB on disk; a float64 copy would be 48 MB, an isfinite mask 6 MB
    n, d = 300_000, 20
    path = tmp_path / "big.npy"
    Xw = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, d))
    for s in range(0, n, 50_000):
        Xw[s : s + 50_000] = np.random.default_rng(s).normal(size=(min(50_000, n - s), d))
    Xw.flush()
    del Xw
    Xm = np.load(path, mmap_mode="r")
    probe = LinearProbe(coef_=np.random.default_rng(0).normal(size=(K, d)), intercept_=np.zeros(K), reg_=1.0)

    tracemalloc.start()
    try:
        assert check_features(Xm, stream=True) is Xm
        _, peak_check = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        Z = probe.decision_function(Xm)
        _, peak_predict = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # chunk masks (CHUNK_ROWS x d bytes, 0.3 MB each): far under the 6 MB n x d boolean mask
    assert peak_check < 0.75 * n * d
    # Z (n x K float64, 9.6 MB) + a float64 chunk (CHUNK_ROWS x d, 2.6 MB): far under the 48 MB copy
    assert peak_predict < 28e6
    np.testing.assert_allclose(Z[-5:], np.asarray(Xm[-5:], np.float64) @ probe.coef_.T, rtol=1e-12)
