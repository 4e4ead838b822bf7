import numpy as np
import pytest
from conftest import make_classes

from selfdistill import distill, fit_linear_probe, fit_partial_label_probe, refine_targets, topk_mask
from selfdistill.data import make_block_features
from selfdistill.noise import corrupt_labels, transition_matrix


@pytest.fixture(scope="module")
def noisy_block():
    ds = make_block_features(4, 60, 0.4, 0.1, n_test_per_class=50)
    C = transition_matrix("symmetric", 4, 0.4)
    y_noisy = corrupt_labels(ds.y_train, C, seed=0)
    return ds, y_noisy


def test_round_t_is_trained_on_round_t_minus_1(blobs):
    X, y = blobs
    res = distill(X, y, reg=1e-3, rounds=3, pll=False)
    assert list(res.models) == ["round 0", "round 1", "round 2", "round 3"]
    teacher = fit_linear_probe(X, y, 1e-3)
    np.testing.assert_allclose(res.models["round 0"].coef_, teacher.coef_, atol=1e-5)
    for t in range(1, 4):
        prev = res.models[f"round {t - 1}"].predict_proba(X)
        direct = fit_linear_probe(X, prev, 1e-3)
        np.testing.assert_allclose(res.models[f"round {t}"].coef_, direct.coef_, atol=1e-5)
        np.testing.assert_allclose(res.train_probs[f"round {t}"], res.models[f"round {t}"].predict_proba(X))


def test_pll_students(blobs):
    X, y = blobs
    res = distill(X, y, reg=1e-3, rounds=1, pll_loss=("uniform", "candidate", "gce"))
    assert list(res.models)[-3:] == ["pll-uniform", "pll-candidate", "pll-gce"]
    P0 = res.train_probs["round 0"]
    uniform = fit_linear_probe(X, refine_targets(P0, "topk"), 1e-3)
    np.testing.assert_allclose(res.models["pll-uniform"].coef_, uniform.coef_, atol=1e-5)
    cand = fit_partial_label_probe(X, topk_mask(P0, 2), 1e-3, loss="candidate", init=res.models["round 0"])
    np.testing.assert_allclose(res.models["pll-candidate"].coef_, cand.coef_, atol=1e-6)
    single = distill(X, y, reg=1e-3, rounds=0, pll_loss="gce")
    assert list(single.models) == ["round 0", "pll-gce"]  # one naming scheme, one loss or several
    assert single.models["pll-gce"].loss_ == "gce"


def test_metrics_match_their_definitions(noisy_block):
    ds, y_noisy = noisy_block
    res = distill(ds.X_train, y_noisy, reg=1e-3, rounds=2, X_test=ds.X_test, y_test=ds.y_test, y_true=ds.y_train)
    clean = y_noisy == ds.y_train
    top2 = topk_mask(res.train_probs["round 0"], 2)
    for m in res.metrics:
        pred = res.corrected_labels(m["model"])
        assert m["test_acc"] == pytest.approx(np.mean(res.models[m["model"]].predict(ds.X_test) == ds.y_test))
        assert m["train_acc"] == pytest.approx(np.mean(pred == ds.y_train))
        assert m["kept"] == pytest.approx(np.mean(pred[clean] == ds.y_train[clean]))
        assert m["corrected"] == pytest.approx(np.mean(pred[~clean] == ds.y_train[~clean]))
        assert m["agree_given"] == pytest.approx(np.mean(pred == y_noisy))
        assert m["topk_coverage"] == pytest.approx(np.mean(top2[np.arange(len(y_noisy)), ds.y_train]))
        assert m["converged"] and m["n_iter"] >= 0 and m["seconds"] >= 0
    assert res.metric("round 1", "model") == "round 1"


def test_sd_corrects_noisy_labels_on_block_model(noisy_block):
    # weak reg: the teacher fits the noisy labels; SD rounds average them out (docs/science.md, label averaging)
    ds, y_noisy = noisy_block
    res = distill(ds.X_train, y_noisy, reg=1e-3, rounds=4, y_true=ds.y_train, X_test=ds.X_test, y_test=ds.y_test)
    corrected = [res.metric(f"round {t}", "corrected") for t in range(5)]
    assert corrected[0] < 0.2  # the teacher memorises the wrong labels
    assert corrected[4] > 0.9
    assert res.metric("round 4", "train_acc") > res.metric("round 0", "train_acc")


def test_label_issues_ranked_by_margin(noisy_block):
    ds, y_noisy = noisy_block
    res = distill(ds.X_train, y_noisy, reg=1e-2, rounds=2, pll=False, y_true=ds.y_train)
    issues = res.label_issues("round 2")
    pred = res.corrected_labels("round 2")
    assert set(issues) == set(np.flatnonzero(pred != y_noisy))
    P = res.train_probs["round 2"]
    margin = P[issues, pred[issues]] - P[issues, y_noisy[issues]]
    assert np.all(np.diff(margin) <= 1e-15)
    # most flagged points really are mislabelled
    assert np.mean(y_noisy[issues] != ds.y_train[issues]) > 0.8
    with pytest.raises(KeyError, match="name must be one of"):
        res.label_issues("round 9")


def test_mix_above_one_runs(blobs):
    X, y = blobs
    res = distill(X, y, reg=1e-3, rounds=2, pll=False, mix=1.5)
    assert all(m["converged"] for m in res.metrics)


def test_deterministic(blobs):
    X, y = blobs
    a = distill(X, y, reg=1e-3, rounds=2)
    b = distill(X, y, reg=1e-3, rounds=2)
    for name in a.models:
        np.testing.assert_array_equal(a.models[name].coef_, b.models[name].coef_)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(rounds=-1), "rounds must be an integer in \\[0, inf\\], got -1"),
        (dict(top_k=1), "top_k must be an integer in \\[2, 3\\], got 1"),
        (dict(top_k=4), "top_k must be an integer in \\[2, 3\\], got 4"),
        (dict(pll_loss="hinge"), "pll_loss must be one of"),
        (dict(reg=0.0), "reg must be > 0"),
        (dict(temperature=-1.0), "temperature must be > 0"),
        (dict(X_test=np.zeros((3, 8))), "X_test and y_test must be given together"),
        (dict(y_true=np.zeros(5, int)), "y_true has 5 entries but X has 300 rows"),
    ],
)
def test_bad_arguments(blobs, kwargs, match):
    X, y = blobs
    kwargs = {"reg": 1e-3, **kwargs}
    with pytest.raises(ValueError, match=match):
        distill(X, y, **kwargs)


def test_single_class_and_mismatched_lengths():
    X, _ = make_classes(n=20, d=3, K=2)
    with pytest.raises(ValueError, match="at least 2 classes"):
        distill(X, np.zeros(20, int), reg=1e-3)
    with pytest.raises(ValueError, match="y has 19 entries but X has 20 rows"):
        distill(X, np.arange(19) % 2, reg=1e-3)
    with pytest.raises(ValueError, match="no PLL student"):
        distill(X, np.arange(20) % 2, reg=1e-3)
    assert list(distill(X, np.arange(20) % 2, reg=1e-3, pll=False, rounds=1).models) == ["round 0", "round 1"]


# ------------------------------------------------------------------------------ ties: no label favoured by its index
def _chain(X, y, K, **kw):
    return distill(X, y, reg=1e-3, rounds=2, pll_loss=("uniform", "candidate", "gce"), n_classes=K, **kw)


@pytest.mark.parametrize("rate", [0.0, 0.3])
def test_relabelling_classes_relabels_every_model(rate):
    """Block features: the teacher's runner-up labels tie exactly at rate 0; renaming the classes
    must rename every model's predictions (it did not when ties went to the lowest index)."""
    K = 4
    ds = make_block_features(K, 30, 0.4, 0.1, n_test_per_class=10)
    y = corrupt_labels(ds.y_train, transition_matrix("pairflip", K, rate), seed=1) if rate else ds.y_train
    perm = np.array([2, 0, 3, 1])  # class k is called perm[k]
    a = _chain(ds.X_train, y, K, X_test=ds.X_test, y_test=ds.y_test)
    b = _chain(ds.X_train, perm[y], K, X_test=ds.X_test, y_test=perm[ds.y_test])
    for name, model in a.models.items():
        pa, pb = model.predict_proba(ds.X_test), b.models[name].predict_proba(ds.X_test)
        np.testing.assert_allclose(pb[:, perm], pa, atol=1e-6, err_msg=name)
        if rate == 0.0:  # no tie among the predictions themselves, so the labels map exactly
            assert np.array_equal(b.models[name].predict(ds.X_test), perm[model.predict(ds.X_test)]), name


def test_block_model_rate_zero_every_pll_student_is_exact():
    ds = make_block_features(4, 100, 0.4, 0.1, n_test_per_class=25)
    res = _chain(ds.X_train, ds.y_train, 4, X_test=ds.X_test, y_test=ds.y_test, y_true=ds.y_train)
    acc = {m["model"]: m["test_acc"] for m in res.metrics}
    assert acc == {name: 1.0 for name in acc}, acc
