"""The authors' SGD recipe as a trainer (selfdistill.recipe) and its place in configs and sweeps."""

import numpy as np
import pytest

from selfdistill.recipe import recipe_distill, recipe_settings, sgd_recipe_fit


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    n, d, K = 300, 12, 4
    means = 2 * rng.normal(size=(K, d))
    y = rng.integers(0, K, n)
    X = means[y] + rng.normal(size=(n, d))
    yt = rng.integers(0, K, 200)
    Xt = means[yt] + rng.normal(size=(200, d))
    y_noisy = np.where(rng.random(n) < 0.3, rng.integers(0, K, n), y)
    return X, y, y_noisy, Xt, yt, K


def plain_sgd(X, y, K, reg, *, epochs, batch, lr, momentum, decay, seed):
    """The recipe in a few lines: PyTorch's SGD with momentum and weight decay on mean cross-entropy."""
    rng = np.random.default_rng(seed)
    X = X.astype(np.float32)
    n, d = X.shape
    W = rng.uniform(-1 / np.sqrt(d), 1 / np.sqrt(d), size=(K, d)).astype(np.float32)
    buf = None
    for _ in range(epochs):
        order = rng.permutation(n)
        for s in range(0, n, batch):
            i = order[s : s + batch]
            Z = X[i] @ W.T
            P = np.exp(Z - Z.max(1, keepdims=True))
            P /= P.sum(1, keepdims=True)
            P[np.arange(i.size), y[i]] -= 1
            g = P.T @ X[i] / i.size + np.float32(reg) * W
            buf = g if buf is None else np.float32(momentum) * buf + g
            W = W - np.float32(lr) * buf
        lr *= decay
    return W


def test_recipe_is_the_plain_sgd_loop(data):
    X, y, y_noisy, Xt, yt, K = data
    s = recipe_settings(epochs=7, batch_size=32, lr=0.05, momentum=0.9, lr_decay=0.98)
    fit = sgd_recipe_fit(X, y_noisy, 1e-3, n_classes=K, seed=3, settings=s)
    W = plain_sgd(X, y_noisy, K, 1e-3, epochs=7, batch=32, lr=0.05, momentum=0.9, decay=0.98, seed=3)
    assert fit.epoch == 7 and fit.test_acc == []
    assert np.allclose(fit.W, W, atol=1e-5)
    other = sgd_recipe_fit(X, y_noisy, 1e-3, n_classes=K, seed=4, settings=s)
    assert not np.allclose(other.W, W, atol=1e-3)  # the seed matters
    again = sgd_recipe_fit(X, y_noisy, 1e-3, n_classes=K, seed=3, settings=s)
    assert np.array_equal(again.W, fit.W)  # and makes it reproducible


def test_last_epoch_reads_no_test_label(data):
    X, y, y_noisy, Xt, yt, K = data
    s = recipe_settings(epochs=5)
    kw = dict(reg=1e-3, rounds=2, pll_losses=("uniform", "gce", "candidate"), top_k=2, n_classes=K, seed=0,
              settings=s, X_test=Xt)
    a = recipe_distill(X, y_noisy, y_test=yt, **kw)
    b = recipe_distill(X, y_noisy, y_test=np.random.default_rng(1).permutation(yt), **kw)
    assert list(a.models) == ["round 0", "round 1", "round 2", "pll-uniform", "pll-gce", "pll-candidate"]
    for name in a.models:
        assert np.array_equal(a.models[name].coef_, b.models[name].coef_)
    assert a.models["round 0"].loss_ == "sgd-recipe" and not a.models["round 0"].converged_


def test_best_test_keeps_the_best_epoch(data):
    X, y, y_noisy, Xt, yt, K = data
    s = recipe_settings(epochs=8, select="best-test", lr=0.5)
    fit = sgd_recipe_fit(X, y_noisy, 1e-3, n_classes=K, seed=0, settings=s, X_test=Xt, y_test=yt)
    assert len(fit.test_acc) == 8
    assert fit.epoch == 1 + int(np.argmax(fit.test_acc))  # the first epoch of the best accuracy
    assert np.mean(np.argmax(Xt @ fit.W.T, 1) == yt) == pytest.approx(max(fit.test_acc), abs=1e-6)
    res = recipe_distill(X, y_noisy, reg=1e-3, rounds=1, pll_losses=(), top_k=2, n_classes=K, seed=0,
                         settings=s, X_test=Xt, y_test=yt)
    # the reported test accuracy is the best over the epochs
    assert res.metric("round 0", "test_acc") == pytest.approx(max(fit.test_acc))
    with pytest.raises(ValueError, match="select='best-test' scores every epoch on the test set"):
        sgd_recipe_fit(X, y_noisy, 1e-3, n_classes=K, settings=s)


def test_recipe_settings_are_checked():
    with pytest.raises(ValueError, match=r"unknown recipe setting\(s\) \['lrate'\]"):
        recipe_settings(lrate=0.1)
    with pytest.raises(ValueError, match="select must be one of"):
        recipe_settings(select="best")
    with pytest.raises(ValueError, match="epochs must be an integer >= 1, got 0"):
        recipe_settings(epochs=0)


def test_config_keys_and_a_sweep_of_the_recipe(tmp_path):
    from selfdistill.experiments import ConfigError, prepare_datasets, read_rows, run_sweep
    from selfdistill.experiments.config import parse_sweep_config

    sweep = {"noise": ["symmetric"], "rates": [0.3], "seeds": [0], "rounds": 1, "pll_losses": ["gce"]}
    base = {"name": "b", "features": "block", "reg": 1e-3}
    with pytest.raises(ConfigError, match="trains at a fixed weight decay"):
        parse_sweep_config({"sweep": sweep, "datasets": [dict(base, reg="auto", trainer="sgd-recipe")]})
    with pytest.raises(ConfigError, match="applies to trainer"):
        parse_sweep_config({"sweep": sweep, "datasets": [dict(base, recipe_epochs=3)]})
    with pytest.raises(ConfigError, match="expected one of"):
        parse_sweep_config({"sweep": sweep, "datasets": [dict(base, trainer="adam")]})
    cfg = parse_sweep_config({"sweep": sweep, "datasets": [
        dict(base, name="exact", train_subset=200),
        dict(base, name="last", trainer="sgd-recipe", recipe_epochs=3, train_subset=200),
        dict(base, name="best", trainer="sgd-recipe", recipe_epochs=3, recipe_select="best-test", train_subset=200)]})
    payloads = prepare_datasets(cfg)
    assert payloads["exact"]["X_train"] is payloads["last"]["X_train"]  # one copy: their passes can be shared
    assert payloads["exact"]["X_train"].shape[0] == 200
    assert cfg.task_settings("last")["recipe"]["epochs"] == 3 and "trainer" not in cfg.task_settings("exact")
    assert len({p["config_hash"] for p in payloads.values()}) == 3
    stored = {d["name"]: d for d in cfg.to_dict()["datasets"]}  # the TOML keys, defaults left out
    assert stored["last"]["recipe_epochs"] == 3 and "trainer" not in stored["exact"]
    run_sweep(cfg, tmp_path / "r.db", jobs=1, quiet=True)
    rows = read_rows(tmp_path / "r.db")
    assert {(r["dataset"], r["model"]) for r in rows} == {
        (d, m) for d in ("exact", "last", "best") for m in ("round 0", "round 1", "pll-gce")}
    assert {r["n_iter"] for r in rows if r["dataset"] == "last"} == {3}


def test_recipe_fits_in_lockstep_are_the_one_at_a_time_fits(data):
    from selfdistill.recipe import sgd_recipe_fits

    X, y, y_noisy, Xt, yt, K = data
    s = recipe_settings(epochs=4, batch_size=32, select="best-test", lr=0.5)
    soft = np.full((X.shape[0], K), 1.0 / K)
    soft[np.arange(X.shape[0]), y] += 0.5
    soft /= soft.sum(1, keepdims=True)
    for targets, loss in (([y, y_noisy, (y + 1) % K], "ce"), ([soft, soft[::-1].copy()], "gce"),
                          ([soft, soft[::-1].copy()], "candidate")):
        init = None if loss == "ce" else [np.full((K, X.shape[1]), 0.01 * b) for b in range(len(targets))]
        fits = sgd_recipe_fits(X, targets, 1e-3, n_classes=K, loss=loss, init=init, seed=5, settings=s, X_test=Xt,
                               y_test=yt)
        for b, t in enumerate(targets):
            one = sgd_recipe_fit(X, t, 1e-3, n_classes=K, loss=loss, init=None if init is None else init[b], seed=5,
                                 settings=s, X_test=Xt, y_test=yt)
            assert np.allclose(fits[b].W, one.W, atol=1e-4), (loss, b)
            assert fits[b].epoch == one.epoch and np.allclose(fits[b].test_acc, one.test_acc, atol=1e-2)
    with pytest.raises(ValueError, match="targets must be 2 arrays of one shape"):
        sgd_recipe_fits(X, [y, soft], 1e-3, n_classes=K, settings=s, X_test=Xt, y_test=yt)
    with pytest.raises(ValueError, match="init must hold 2 weight arrays"):
        sgd_recipe_fits(X, [y, y], 1e-3, n_classes=K, init=[np.zeros((K, X.shape[1]))], settings=s, X_test=Xt,
                        y_test=yt)


def test_recipe_chains_in_lockstep_are_the_one_at_a_time_chains(data):
    from selfdistill.recipe import recipe_distills

    X, y, y_noisy, Xt, yt, K = data
    kw = dict(reg=1e-3, rounds=1, pll_losses=("uniform", "gce"), top_k=2, n_classes=K, seed=2,
              settings=recipe_settings(epochs=3), X_test=Xt, y_test=yt, y_true=y)
    ys = [y_noisy, np.where(np.arange(X.shape[0]) % 3 == 0, (y + 1) % K, y)]
    many = recipe_distills(X, ys, **kw)
    for yb, res in zip(ys, many, strict=True):
        one = recipe_distill(X, yb, **kw)
        assert list(res.models) == list(one.models)
        for name in one.models:
            assert np.allclose(res.models[name].coef_, one.models[name].coef_, atol=1e-4), name
        assert [m["model"] for m in res.metrics] == [m["model"] for m in one.metrics]


def test_a_batched_sweep_trains_recipe_tasks_of_a_seed_together(tmp_path):
    from selfdistill.experiments import read_rows, run_sweep
    from selfdistill.experiments.config import parse_sweep_config

    sweep = {"noise": ["symmetric", "class_cluster"], "rates": [0.0, 0.3, 0.6], "seeds": [0, 1], "rounds": 1,
             "pll_losses": ["uniform"]}
    cfg = parse_sweep_config({"sweep": sweep, "datasets": [
        {"name": "last", "features": "block", "reg": 1e-3, "trainer": "sgd-recipe", "recipe_epochs": 3}]})
    one = run_sweep(cfg, tmp_path / "one.db", jobs=1, quiet=True, batch=1)
    many = run_sweep(cfg, tmp_path / "many.db", jobs=1, quiet=True, batch=4)
    assert one.n_computed == many.n_computed == 12
    key = lambda r: (r["noise"], r["rate"], r["seed"], r["model"])  # noqa: E731
    a, b = sorted(read_rows(tmp_path / "one.db"), key=key), sorted(read_rows(tmp_path / "many.db"), key=key)
    assert [key(r) for r in a] == [key(r) for r in b]
    for ra, rb in zip(a, b, strict=True):
        assert ra["test_acc"] == pytest.approx(rb["test_acc"], abs=0.02), key(ra)
    assert run_sweep(cfg, tmp_path / "many.db", jobs=1, quiet=True, batch=4).n_computed == 0
    from selfdistill.experiments import ResultStore

    with ResultStore(tmp_path / "many.db") as st:  # one group per seed: one time, shared by its tasks
        recs = [r for r in st.records() if "reused_from" not in r["solver"]]
    assert {r["seed"]: r["seconds"] for r in recs} == {r["seed"]: r["seconds"] for r in recs[::-1]}
    assert {r["solver"]["execution"]["dtype"] for r in recs} == {"float32"}
