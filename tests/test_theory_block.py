"""selfdistill.theory.block: the block model's closed forms, checked against the exact chain and distill."""

import itertools

import numpy as np
import pytest

from selfdistill import distill
from selfdistill.data import block_gram, make_block_features
from selfdistill.theory import BlockModel, exact_chain, label_averaging


def _labels_from_counts(N):
    """Observed labels for points sorted by class, consistent with counts N[k, j]."""
    return np.concatenate([np.repeat(np.arange(N.shape[0]), N[k]) for k in range(N.shape[0])])


def _symmetric_counts(K, m, q):
    """Balanced counts: q points of each class carry each wrong label (column sums all m)."""
    N = np.full((K, K), q)
    np.fill_diagonal(N, m - (K - 1) * q)
    return N


# ------------------------------------------------------------------------------ eigenvalues
def test_eigenvalues_closed_form_equal_sizes():
    K, m, c, d = 4, 6, 0.4, 0.1
    bm = BlockModel(K, m, c, d, 0.01)
    spec = bm.eigenvalues()
    n = K * m
    assert spec.names == ("all-ones", "class contrast", "within class")
    np.testing.assert_allclose(spec.values, [1 - c + m * (c - d) + n * d, 1 - c + m * (c - d), 1 - c])
    assert spec.multiplicities.tolist() == [1, K - 1, n - K]
    np.testing.assert_allclose(spec.all(), np.sort(np.linalg.eigvalsh(block_gram(bm.labels, c, d)))[::-1], atol=1e-12)
    # eigenvectors: the all-ones one is constant on classes, the contrasts sum to zero over classes
    np.testing.assert_allclose(np.ptp(spec.class_vectors[0]), 0, atol=1e-12)
    np.testing.assert_allclose(spec.class_vectors[1].sum(axis=0), 0, atol=1e-12)
    assert spec.class_vectors[2] is None


def test_eigenvalues_superclasses_unequal_sizes_and_d_zero():
    K, m, c, cs, d = 4, 5, 0.6, 0.3, 0.05
    bm = BlockModel(K, m, c, d, 0.01, superclasses=[0, 0, 1, 1], c_super=cs)
    spec = bm.eigenvalues()
    base = 1 - c + m * (c - cs)
    assert spec.names == ("all-ones", "superclass contrast", "class contrast", "within class")
    np.testing.assert_allclose(spec.values, [base + 2 * m * (cs - d) + K * m * d, base + 2 * m * (cs - d), base, 1 - c])
    assert spec.multiplicities.tolist() == [1, 1, 2, K * m - K]
    np.testing.assert_allclose(spec.all(), np.sort(np.linalg.eigvalsh(bm.gram()))[::-1], atol=1e-12)
    bu = BlockModel(3, [5, 9, 2], 0.5, 0.1, 0.01)
    np.testing.assert_allclose(bu.eigenvalues().all(), np.sort(np.linalg.eigvalsh(bu.gram()))[::-1], atol=1e-12)
    assert bu.eigenvalues().multiplicities.sum() == 16
    b0 = BlockModel(3, 4, 0.5, 0.0, 0.01)  # d = 0: all-ones and contrasts share an eigenvalue
    assert b0.eigenvalues().names[0] == "all-ones + class contrast"
    assert b0.eigenvalues().multiplicities.tolist() == [3, 9]


@pytest.mark.parametrize("eps", [-1e-15, 0.0, 1e-15])
def test_tied_eigenvalue_names_do_not_depend_on_round_off(monkeypatch, eps):
    """d = 0: all-ones and class contrasts tie; whichever round-off orders them, the name is in block order."""
    eigh = np.linalg.eigh

    def nudged(a, *args, **kw):  # round-off of either sign on the class-level eigenvalues
        w, v = eigh(a, *args, **kw)
        return w * (1.0 + eps * np.arange(1, len(w) + 1)), v

    monkeypatch.setattr(np.linalg, "eigh", nudged)
    for K, m in [(3, 4), (4, 5), (5, 2)]:
        spec = BlockModel(K, m, 0.5, 0.0, 0.01).eigenvalues()
        assert spec.names == ("all-ones + class contrast", "within class")
        assert spec.multiplicities.tolist() == [K, K * m - K]
        assert spec.class_vectors[0].shape == (K, K)


# ------------------------------------------------------------------------------ closed form = label averaging
@pytest.mark.parametrize(
    "args, kw",
    [
        ((3, [5, 7, 4], 0.5, 0.1, 0.01), {}),
        ((4, 6, 0.4, 0.1, 0.003), {}),
        ((4, 5, 0.6, 0.05, 0.02), dict(superclasses=[0, 0, 1, 1], c_super=0.3)),
        ((3, 6, 0.4, -0.1, 0.01), {}),
    ],
)
def test_group_formula_equals_label_averaging_point_for_point(args, kw):
    bm = BlockModel(*args, **kw)
    N = bm.sample_counts("symmetric", 0.4, seed=1)
    y, yn, K, R = bm.labels, _labels_from_counts(N), bm.n_classes, 4
    la = label_averaging(yn, bm.reg, R, gram=bm.gram(), gram_test=bm.gamma[:, y], n_classes=K)
    np.testing.assert_allclose(bm.train_probs(N, R)[:, y, yn], la.train_probs, atol=1e-12)
    np.testing.assert_array_equal(bm.predictions(N, R)[:, y, yn], la.predictions)
    np.testing.assert_allclose(bm.accuracy(N, R), la.accuracy(y))
    # new points (one per class): only the class-level part survives
    np.testing.assert_allclose(bm.test_scores(N, R), la.test_probs - 1 / K, atol=1e-12)
    np.testing.assert_array_equal(bm.test_predictions(N, R), la.test_predictions)


def test_score_decomposition_equal_sizes():
    """S_t(k, j, l) = a_t N[k,l]/m + b_t delta_l + w_t [l = j] + const (module docstring)."""
    K, m, c, d, reg = 4, 50, 0.4, 0.1, 1e-3
    bm = BlockModel(K, m, c, d, reg)
    N = bm.sample_counts("asymmetric", 0.5, seed=3)
    n, lam = K * m, K * K * m * reg
    mu_w, mu_c = 1 - c, 1 - c + m * (c - d)
    mu_1 = mu_c + n * d
    fw, gc, g1 = mu_w / (mu_w + lam), mu_c / (mu_c + lam), mu_1 / (mu_1 + lam)
    delta = N.sum(axis=0) / n - 1 / K
    P = bm.train_probs(N, 5) - 1 / K
    for t in range(6):
        a, b, w = gc ** (t + 1) - fw ** (t + 1), g1 ** (t + 1) - gc ** (t + 1), fw ** (t + 1)
        for k, j in itertools.product(range(K), range(K)):
            S = a * N[k] / m + b * delta + w * (np.arange(K) == j)
            np.testing.assert_allclose(P[t, k, j] - P[t, k, j].mean(), S - S.mean(), atol=1e-12)


def test_new_points_follow_the_class_plurality_at_every_round_when_labels_are_balanced():
    """delta = 0: a new class-k point is predicted argmax_l N[k, l], whatever the round (docs section 5)."""
    bm = BlockModel(3, 30, 0.4, 0.1, 1e-4)
    N = np.array([[12, 10, 8], [8, 12, 10], [10, 8, 12]])  # balanced, plurality holds
    pred = bm.test_predictions(N, 30)
    assert np.all(pred == np.arange(3)[None, :])
    assert np.all(bm.test_accuracy(N, 30) == 1.0)
    N2 = np.array([[10, 12, 8], [8, 10, 12], [12, 8, 10]])  # balanced, the plurality is a wrong label
    assert np.all(bm.test_predictions(N2, 30) == np.array([1, 2, 0])[None, :])
    # the training points, in contrast, change with the round (the memorised labels die out)
    t_star = bm.min_rounds(N)
    assert t_star == 67
    acc = bm.accuracy(N, t_star)
    assert acc[0] < 1.0 and acc[-1] == 1.0


# ------------------------------------------------------------------------------ exact chain
@pytest.mark.parametrize(
    "args, kw, kind, rate",
    [
        ((3, [5, 7, 4], 0.5, 0.1, 0.01), {}, "asymmetric", 0.4),
        ((4, 6, 0.4, 0.1, 0.003), {}, "symmetric", 0.5),
        ((4, 5, 0.6, 0.05, 0.02), dict(superclasses=[0, 0, 1, 1], c_super=0.3), "pairflip", 0.3),
    ],
)
def test_reduced_exact_chain_equals_full_exact_chain(args, kw, kind, rate):
    bm = BlockModel(*args, **kw)
    N = bm.sample_counts(kind, rate, seed=2)
    y, yn, K, R = bm.labels, _labels_from_counts(N), bm.n_classes, 3
    ex = bm.exact_probs(N, R, pll=True)
    ch = exact_chain(yn, bm.reg, R, gram=bm.gram(), pll=True, gram_test=bm.gamma[:, y], n_classes=K)
    assert max(ex["residuals"]) < 1e-12
    np.testing.assert_allclose(ex["train"][:, y, yn], ch.train_probs, atol=1e-8)
    np.testing.assert_allclose(ex["test"], ch.test_probs, atol=1e-8)
    if not ex["ties"]:
        np.testing.assert_allclose(ex["pll"][y, yn], ch.pll_probs, atol=1e-8)
    np.testing.assert_allclose(bm.exact_accuracy(N, R), ch.accuracy(y))


# ------------------------------------------------------------------------------ thresholds
@pytest.mark.parametrize("K, m, q, reg", [(4, 60, 10, 1e-3), (3, 100, 20, 1e-2), (5, 40, 6, 1e-4), (4, 60, 14, 1e-5)])
def test_min_rounds_scan_equals_formula(K, m, q, reg):
    bm = BlockModel(K, m, 0.4, 0.1, reg)
    N = _symmetric_counts(K, m, q)
    t_star = bm.min_rounds(N, max_rounds=5000)  # an explicit horizon forces the scan
    assert t_star == bm.min_rounds_formula(N) == bm.min_rounds(N)
    acc = bm.accuracy(N, t_star + 2)
    assert acc[t_star] == 1.0 and np.all(acc[:t_star] < 1.0)
    assert bm.over_averaging_round(N) is None  # balanced labels: no over-averaging


def test_no_rounds_reach_full_accuracy_beyond_the_plurality_condition():
    K, m = 4, 60
    bm = BlockModel(K, m, 0.4, 0.1, 1e-3)
    N = _symmetric_counts(K, m, 15)  # N[k, k] = 15 = N[k, l]: no strict plurality
    assert bm.min_rounds(N, max_rounds=5000) is None and bm.min_rounds_formula(N) is None
    assert not bm.reaches_full_accuracy(N)
    assert bm.accuracy(N, 200).max() < 1


@pytest.mark.parametrize("kind, expected", [("symmetric", 3 / 4), ("asymmetric", 4 / 6), ("pairflip", 1 / 2)])
def test_noise_threshold_formulas(kind, expected):
    bm = BlockModel(4, 100, 0.4, 0.1, 1e-3)
    assert bm.noise_threshold(kind) == pytest.approx(expected, abs=1e-6)


def test_noise_threshold_class_cluster():
    bm = BlockModel(6, 50, 0.4, 0.1, 1e-3)
    assert bm.noise_threshold("class_cluster", clusters=[0, 0, 0, 1, 1, 1]) == pytest.approx(2 / 3, abs=1e-6)


def test_over_averaging_round_with_unbalanced_labels():
    K, m = 3, 50
    bm = BlockModel(K, m, 0.4, 0.1, 1e-3)
    N = np.array([[30, 5, 15], [5, 30, 15], [10, 5, 35]])  # label 2 is globally over-represented
    t_over = bm.over_averaging_round(N)
    acc = bm.accuracy(N, t_over + 1)
    assert t_over is not None
    assert acc[t_over + 1] < acc[t_over] == acc[: t_over + 1].max()
    t_star = bm.min_rounds(N)
    assert t_star is not None and t_star <= t_over
    # everything collapses to the majority label in the end
    assert bm.accuracy(N, 20_000)[-1] == pytest.approx(m / (K * m))


# ------------------------------------------------------------------------------ PLL
def test_pll_reaches_full_accuracy_in_one_round_where_sd_needs_many():
    bm = BlockModel(4, 60, 0.4, 0.1, 1e-3)
    N = np.array([[24, 22, 8, 6], [6, 24, 22, 8], [8, 6, 24, 22], [22, 8, 6, 24]])
    cond = bm.pll_condition(N)
    assert cond["coverage"] and cond["full"] and cond["pll_accuracy"] == 1.0
    assert bm.pll_accuracy(N) == 1.0
    assert cond["sd_min_rounds"] is not None and cond["sd_min_rounds"] > 1
    assert cond["verdict"] == "both"
    # the exact chain agrees: one PLL student is right on every training point
    ex = bm.exact_probs(N, 0, pll=True)
    pred = np.argmax(np.nan_to_num(ex["pll"], nan=-1), axis=2)
    assert np.all((pred == np.arange(4)[:, None])[N > 0])


def test_pll_fails_when_true_and_top_noisy_label_fill_the_class():
    """Pair-flip noise: each point's targets are {k, k+1}, so Tbar[k, k] = Tbar[k, k+1]: a tie, not 100%."""
    bm = BlockModel(4, 60, 0.4, 0.1, 1e-3)
    N = np.array([[40, 20, 0, 0], [0, 40, 20, 0], [0, 0, 40, 20], [20, 0, 0, 40]])
    cond = bm.pll_condition(N)
    assert cond["coverage"] and not cond["full"]
    assert cond["verdict"] == "SD only"


# ------------------------------------------------------------------------------ agreement grid
def _linear_regime(bm, N, R):
    """Items (round, group) where the linearisation is trusted: see docs/theory.md, section 8."""
    return bm.linear_regime(N, R)


def test_agreement_grid_closed_form_vs_exact_chain():
    """Closed form vs exact (reduced) chain, point for point, over a grid; mismatches only outside the regime."""
    R = 6
    n_cfg = n_items = n_checked = 0
    for K, m, (c, d), reg, kind, rate in itertools.product(
        [3, 4], [20, 200], [(0.4, 0.1), (0.8, 0.5)], [1e-1, 1e-3, 1e-5], ["symmetric", "asymmetric", "pairflip"],
        [0.2, 0.6],
    ):
        bm = BlockModel(K, m, c, d, reg)
        N = bm.sample_counts(kind, rate, seed=0)
        lin = bm.predictions(N, R)
        ex = bm.exact_probs(N, R)["train"]
        exact_pred = np.argmax(np.nan_to_num(ex, nan=-1.0), axis=3)
        trusted = _linear_regime(bm, N, R)
        exist = np.broadcast_to(N > 0, lin.shape)
        assert np.all(lin[trusted & exist] == exact_pred[trusted & exist]), (K, m, c, d, reg, kind, rate)
        n_cfg += 1
        n_items += int(exist.sum())
        n_checked += int((trusted & exist).sum())
    assert n_cfg == 144
    assert n_checked > 0.5 * n_items  # the regime covers most of the grid


# ------------------------------------------------------------------------------ against distill
@pytest.mark.parametrize("kind, rate, reg", [("symmetric", 0.5, 1e-2), ("asymmetric", 0.4, 1e-3)])
def test_closed_form_and_exact_match_distill_on_block_features(kind, rate, reg):
    K, m, R = 3, 20, 3
    ds = make_block_features(K, m, 0.4, 0.1, n_test_per_class=2)
    bm = BlockModel(K, m, 0.4, 0.1, reg)
    N = bm.sample_counts(kind, rate, seed=4)
    yn = _labels_from_counts(N)
    res = distill(ds.X_train, yn, reg=reg, rounds=R, pll=True, pll_loss="uniform", X_test=ds.X_test,
                  y_test=ds.y_test, y_true=ds.y_train, tol=1e-12)
    ex = bm.exact_probs(N, R, pll=True)
    y = ds.y_train
    for t in range(R + 1):
        name = f"round {t}"
        np.testing.assert_allclose(res.train_probs[name], ex["train"][t, y, yn], atol=1e-7)
        np.testing.assert_allclose(res.models[name].predict_proba(ds.X_test), ex["test"][t, ds.y_test], atol=1e-7)
    train_acc = [res.metric(f"round {t}", "train_acc") for t in range(R + 1)]
    assert train_acc == pytest.approx(bm.exact_accuracy(N, R).tolist())
    if not ex["ties"]:
        np.testing.assert_allclose(res.train_probs["pll-uniform"], ex["pll"][y, yn], atol=1e-7)
    # closed form, where trusted, predicts distill's labels
    trusted = bm.linear_regime(N, R)[:, y, yn]
    lin = bm.predictions(N, R)[:, y, yn]
    trained = np.stack([np.argmax(res.train_probs[f"round {t}"], axis=1) for t in range(R + 1)])
    assert np.all(lin[trusted] == trained[trusted])


# ------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(c=0.1, d=0.1), "c must be > d"),
        (dict(c=0.05, d=0.1), "c must be > d"),
        (dict(c=1.2, d=0.1), "c must be <= 1"),
        (dict(c=0.4, d=-0.5), "positive semi-definite"),
        (dict(c=0.4, d=-1.5), "d must be >= -1"),
        (dict(reg=0.0), "reg"),
        (dict(reg=-1e-3), "reg"),
    ],
)
def test_invalid_models_are_rejected(kwargs, match):
    args = dict(n_classes=4, per_class=10, c=0.4, d=0.1, reg=1e-3)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        BlockModel(**args)


def test_allowed_negative_d_boundary():
    K, m, c = 4, 10, 0.4
    bound = -(1 - c + m * c) / ((K - 1) * m)
    BlockModel(K, m, c, bound + 1e-9, 1e-3)  # allowed: G positive semi-definite
    with pytest.raises(ValueError, match=f"{bound:.6g}"):
        BlockModel(K, m, c, bound - 1e-3, 1e-3)


def test_invalid_counts_and_rounds_are_rejected():
    bm = BlockModel(3, 10, 0.4, 0.1, 1e-3)
    good = _symmetric_counts(3, 10, 2)
    with pytest.raises(ValueError, match="3 x 3"):
        bm.accuracy(np.ones((2, 2)), 1)
    with pytest.raises(ValueError, match="do not match the model"):
        bm.accuracy(good + 1, 1)
    with pytest.raises(ValueError, match="non-negative"):
        bm.min_rounds(good - 3 * np.eye(3, dtype=int) + np.array([[0, 3, 0], [0, 0, 3], [3, 0, 0]]) * 0 - 20)
    with pytest.raises(ValueError, match="rounds"):
        bm.accuracy(good, -1)
    with pytest.raises(ValueError, match="top_k"):
        bm.pll_accuracy(good, top_k=3)
    with pytest.raises(ValueError, match="superclasses"):
        BlockModel(3, 10, 0.4, 0.1, 1e-3, superclasses=[0, 1], c_super=0.2)
    with pytest.raises(ValueError, match="equal class sizes"):
        BlockModel(3, [10, 5, 5], 0.4, 0.1, 1e-3).min_rounds_formula(np.diag([10, 5, 5]))


def test_pll_at_rate_zero_is_exact_despite_tied_runner_ups():
    """At rate 0 every wrong label of a group ties in the teacher; the tied labels share the
    candidate mass, so the closed form and the exact chain give the PLL student 100% (25% when
    ties went to the lowest label index)."""
    bm = BlockModel(4, 100, 0.4, 0.1, 1e-3)
    N = bm.expected_counts("pairflip", 0.0)
    assert bm.pll_accuracy(N) == 1.0
    ex = bm.exact_probs(N, 0, pll=True)
    assert ex["ties"] == [(k, k) for k in range(4)]
    P = ex["pll"][np.arange(4), np.arange(4)]  # group (k, k): class k labelled k
    assert np.array_equal(np.argmax(P, axis=1), np.arange(4))
