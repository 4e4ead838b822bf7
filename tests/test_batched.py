"""Batched probes: B problems over one X solved together give each problem's one-at-a-time answer."""

import threading

import numpy as np
import pytest

from selfdistill import distill, fit_linear_probe, fit_linear_probes, fit_partial_label_probe, fit_partial_label_probes
from selfdistill._batch import PassBatcher, share_passes
from selfdistill.targets import topk_mask


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    n, d, K = 400, 30, 5
    means = rng.normal(size=(K, d))
    y = rng.integers(0, K, n)
    X = means[y] + 1.5 * rng.normal(size=(n, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    flip = rng.random(n) < 0.9
    y90 = np.where(flip, rng.integers(0, K, n), y)
    return X, y, y90, K


def _same(a, b, X):
    assert np.array_equal(a.predict(X), b.predict(X))
    assert abs(a.objective_ - b.objective_) <= 1e-10 * max(1.0, abs(b.objective_))
    assert a.reg_ == b.reg_ and a.loss_ == b.loss_


def test_mixed_speeds_equal_one_at_a_time(data):
    X, y, y90, K = data
    targets, regs = [y, y90, y, y90], [1e-1, 1e-1, 1e-5, 1e-5]
    batch = fit_linear_probes(X, targets, regs, max_iter=1000)
    alone = [fit_linear_probe(X, t, r, max_iter=1000) for t, r in zip(targets, regs, strict=True)]
    for a, b in zip(batch, alone, strict=True):
        _same(a, b, X)
        assert a.converged_ and a.n_iter_ == b.n_iter_ and a.n_hessp_ == b.n_hessp_
    # the problems converge at very different speeds (and each kept its own count)
    assert len({p.n_hessp_ for p in batch}) > 1


def test_passes_are_shared(data, monkeypatch):
    X, y, y90, K = data
    seen = []
    real = PassBatcher._serve

    def spy(self, reqs):
        seen.append(len(reqs))
        return real(self, reqs)

    monkeypatch.setattr(PassBatcher, "_serve", spy)
    probes = fit_linear_probes(X, [y, y90, y], [1e-2, 1e-2, 1e-3])
    assert max(seen) == 3  # every problem's pass in one product
    assert len(seen) < sum(seen) == 2 * sum(p.n_grad_evals_ + p.n_hessp_ for p in probes)


def test_soft_targets_weights_and_warm_starts(data):
    X, y, y90, K = data
    teacher = fit_linear_probe(X, y90, 1e-3)
    P = teacher.predict_proba(X)
    w = (np.arange(X.shape[0]) % 5 != 0).astype(float)  # a 0/1 validation split
    batch = fit_linear_probes(X, [P, y90, P], 1e-3, sample_weight=[None, w, w], init=[teacher, None, teacher])
    alone = [fit_linear_probe(X, P, 1e-3, init=teacher), fit_linear_probe(X, y90, 1e-3, sample_weight=w),
             fit_linear_probe(X, P, 1e-3, sample_weight=w, init=teacher)]
    for a, b in zip(batch, alone, strict=True):
        _same(a, b, X)
    sub = fit_linear_probe(X[w > 0], y90[w > 0], 1e-3, n_classes=K, tol=1e-12)
    assert np.allclose(batch[1].coef_, sub.coef_, atol=1e-6)  # a 0/1 weight is the row subset


def test_partial_label_batch(data):
    X, y, y90, K = data
    teacher = fit_linear_probe(X, y90, 1e-3)
    S = topk_mask(teacher.predict_proba(X), 2)
    batch = fit_partial_label_probes(X, [S, S], [1e-3, 1e-2], loss=["candidate", "gce"], init=[teacher, teacher])
    alone = [fit_partial_label_probe(X, S, 1e-3, loss="candidate", init=teacher),
             fit_partial_label_probe(X, S, 1e-2, loss="gce", init=teacher)]
    for a, b in zip(batch, alone, strict=True):
        _same(a, b, X)


def test_float32_and_torch_backends(data):
    X, y, y90, K = data
    alone = [fit_linear_probe(X, t, 1e-3) for t in (y, y90)]
    for a, b in zip(fit_linear_probes(X, [y, y90], 1e-3, dtype=np.float32), alone, strict=True):
        assert np.array_equal(a.predict(X), b.predict(X))
        assert abs(a.objective_ - b.objective_) <= 1e-9 * abs(b.objective_)
    pytest.importorskip("torch", reason="torch is an optional dependency (CI installs it)")
    for a, b in zip(fit_linear_probes(X, [y, y90], 1e-3, backend="torch"), alone, strict=True):
        assert np.array_equal(a.predict(X), b.predict(X))
        assert abs(a.objective_ - b.objective_) <= 1e-10 * abs(b.objective_)


def test_bad_input_names_the_argument(data):
    X, y, y90, K = data
    with pytest.raises(ValueError, match=r"reg must be one value or a sequence of B = 2"):
        fit_linear_probes(X, [y, y90], [1e-3])
    with pytest.raises(ValueError, match=r"reg\[1\] must be"):
        fit_linear_probes(X, [y, y90], [1e-3, -1.0])
    with pytest.raises(ValueError, match="targets must be a non-empty list"):
        fit_linear_probes(X, y, 1e-3)
    with pytest.raises(ValueError, match=r"sample_weight must be one value or a sequence of B = 2"):
        fit_linear_probes(X, [y, y90], 1e-3, sample_weight=[None])
    with pytest.raises(ValueError, match=r"loss\[1\] must be one of"):
        fit_partial_label_probes(X, [topk_mask(np.eye(K)[y], 2)] * 2, 1e-3, loss=["gce", "ce"])


def test_a_failing_problem_does_not_hang_the_others(data):
    X, y, y90, K = data
    done = []

    def run():
        with pytest.raises(ValueError, match="init must have shape"):
            fit_linear_probes(X, [y, y90, y], 1e-3, init=[None, np.zeros((K + 1, X.shape[1])), None])
        done.append(True)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout=60)
    assert done == [True]


def test_share_passes_batches_chains_in_threads(data):
    X, y, y90, K = data
    alone = [distill(X, t, reg=1e-3, rounds=2, pll_loss=("uniform", "gce")) for t in (y, y90)]
    out = [None, None]
    with share_passes(X) as batcher:
        def run(i, t):
            out[i] = distill(X, t, reg=1e-3, rounds=2, pll_loss=("uniform", "gce"))

        threads = [threading.Thread(target=run, args=(i, t)) for i, t in enumerate((y, y90))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert sum(batcher.requests.values()) > sum(batcher.passes.values())  # some passes were shared
    for a, b in zip(out, alone, strict=True):
        assert list(a.models) == list(b.models)
        for name in b.models:
            _same(a.models[name], b.models[name], X)
    before = sum(batcher.requests.values())
    fit_linear_probe(X, y, 1e-3)  # outside the block nothing goes through the batcher any more
    assert sum(batcher.requests.values()) == before


def test_sweep_batched_stores_the_same_numbers(tmp_path):
    from selfdistill.experiments import read_rows, run_config, run_sweep
    from selfdistill.experiments.sweep import batch_size

    cfg = run_config("block", noise=["symmetric", "class_cluster"], rates=[0.2, 0.6], seeds=[0, 1], rounds=2,
                     pll_losses=["uniform", "gce"], reg=1e-3)
    one = run_sweep(cfg, tmp_path / "one.db", jobs=1, quiet=True, batch=1)
    many = run_sweep(cfg, tmp_path / "many.db", quiet=True, batch=5, dtype="float64")
    assert one.n_computed == many.n_computed == 8
    key = ("noise", "rate", "seed", "model")
    a = {tuple(r[k] for k in key): r for r in read_rows(tmp_path / "one.db")}
    b = {tuple(r[k] for k in key): r for r in read_rows(tmp_path / "many.db")}
    assert a.keys() == b.keys() and len(a) == 8 * 5
    for k in a:
        assert a[k]["test_acc"] == b[k]["test_acc"] and a[k]["n_hessp"] == b[k]["n_hessp"]
    # a rerun finds every task stored; small features are not batched by default
    assert run_sweep(cfg, tmp_path / "many.db", quiet=True, batch=5).n_computed == 0
    # float32 passes (the default when batching) reach the same tolerance: the same models
    run_sweep(cfg, tmp_path / "f32.db", quiet=True, batch=5)
    c = {tuple(r[k] for k in key): r for r in read_rows(tmp_path / "f32.db")}
    assert c.keys() == a.keys()
    assert max(abs(a[k]["test_acc"] - c[k]["test_acc"]) for k in a) <= 0.01
    from selfdistill.experiments.store import ResultStore

    with ResultStore(tmp_path / "f32.db", create=False) as store:
        assert {r["solver"]["execution"]["dtype"] for r in store.records()} == {"float32"}
    from selfdistill.experiments import prepare_datasets

    assert batch_size(cfg, prepare_datasets(cfg)) == 1
    with pytest.raises(ValueError, match="batch must be 'auto' or an integer >= 1, got 0"):
        run_sweep(cfg, tmp_path / "x.db", quiet=True, batch=0)


def test_batched_tasks_keep_their_own_warnings():
    import warnings

    from selfdistill.experiments.runner import _task_warnings, thread_warnings

    logs = {}
    barrier = threading.Barrier(2)

    def task(name):
        with _task_warnings() as caught:
            barrier.wait()  # both tasks are capturing at once
            warnings.warn(f"from {name}", UserWarning, stacklevel=1)
            barrier.wait()
        logs[name] = [str(w.message) for w in caught]

    with thread_warnings():
        threads = [threading.Thread(target=task, args=(n,)) for n in ("a", "b")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert logs == {"a": ["from a"], "b": ["from b"]}


@pytest.mark.parametrize("loss", ["candidate", "gce"])
def test_pll_sample_weight_is_the_row_subset(data, loss):
    X, y, y90, K = data
    teacher = fit_linear_probe(X, y90, 1e-2)
    S = topk_mask(teacher.predict_proba(X), 2)
    w = (np.arange(X.shape[0]) % 4 != 0).astype(float)
    keep = w > 0
    a = fit_partial_label_probe(X, S, 1e-2, loss=loss, init=teacher, sample_weight=w, tol=1e-11)
    b = fit_partial_label_probe(X[keep], S[keep], 1e-2, loss=loss, init=teacher, tol=1e-11)
    assert np.allclose(a.coef_, b.coef_, atol=1e-6)
    assert a.objective_ == pytest.approx(b.objective_, rel=1e-9)
    two = w.copy()
    two[::3] *= 2  # integer weights: repeated rows
    rep = np.repeat(np.arange(X.shape[0]), two.astype(int))
    c = fit_partial_label_probe(X, S, 1e-2, loss=loss, init=teacher, sample_weight=two, tol=1e-11)
    d = fit_partial_label_probe(X[rep], S[rep], 1e-2, loss=loss, init=teacher, tol=1e-11)
    assert np.allclose(c.coef_, d.coef_, atol=1e-6)
