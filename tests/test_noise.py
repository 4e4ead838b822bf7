"""Tests for selfdistill.noise (label-noise models). Convention: C[k, j] = P(observed j | true k)."""

import warnings

import numpy as np
import pytest

from selfdistill.noise import (
    NOISE_KINDS,
    class_clusters,
    class_pair_correlation,
    corrupt_labels,
    make_noisy_labels,
    noise_kinds,
    realised_rates,
    transition_matrix,
)

CLUSTERS6 = np.array([0, 0, 0, 1, 1, 1])


def _matrix(kind, K, eta):
    clusters = np.arange(K) // 2 if K % 2 == 0 else np.r_[np.arange(K - 1) // 2, (K - 2) // 2]
    return transition_matrix(kind, K, eta, clusters=clusters if kind == "class_cluster" else None)


def _balanced(K, n_per):
    return np.repeat(np.arange(K), n_per)


# ---------------------------------------------------------------- transition matrices


def test_noise_kinds():
    assert NOISE_KINDS == ("symmetric", "asymmetric", "pairflip", "class_cluster")
    assert noise_kinds() == NOISE_KINDS


@pytest.mark.parametrize("kind", NOISE_KINDS)
@pytest.mark.parametrize("K", [2, 3, 5, 10])
@pytest.mark.parametrize("eta", [0.0, 0.1, 0.5, 0.9, 1.0])
def test_rows_sum_to_one_and_diagonal(kind, K, eta):
    C = _matrix(kind, K, eta)
    assert C.shape == (K, K) and C.dtype == np.float64
    assert np.all(C >= 0)
    np.testing.assert_allclose(C.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(np.diag(C), 1.0 - eta, atol=1e-12)


def test_symmetric_values():
    C = transition_matrix("symmetric", 4, 0.3)
    expected = np.full((4, 4), 0.1)
    np.fill_diagonal(expected, 0.7)
    np.testing.assert_allclose(C, expected)


def test_asymmetric_authors_formula():
    C = transition_matrix("asymmetric", 4, 0.4)
    expected = np.array(
        [
            [0.6, 0.2, 0.1, 0.1],
            [0.1, 0.6, 0.2, 0.1],
            [0.1, 0.1, 0.6, 0.2],
            [0.2, 0.1, 0.1, 0.6],
        ]
    )
    np.testing.assert_allclose(C, expected)
    # general K: eta/K off-diagonal, 2 eta/K on the next class
    K, eta = 7, 0.35
    C = transition_matrix("asymmetric", K, eta)
    for k in range(K):
        for j in range(K):
            if j == k:
                want = 1 - eta
            elif j == (k + 1) % K:
                want = 2 * eta / K
            else:
                want = eta / K
            assert C[k, j] == pytest.approx(want)
    # K = 2: identical to symmetric
    np.testing.assert_allclose(transition_matrix("asymmetric", 2, 0.3), transition_matrix("symmetric", 2, 0.3))


def test_pairflip_values():
    C = transition_matrix("pairflip", 3, 0.2)
    np.testing.assert_allclose(C, [[0.8, 0.2, 0.0], [0.0, 0.8, 0.2], [0.2, 0.0, 0.8]])


def test_class_cluster_values_and_singleton_warning():
    with pytest.warns(UserWarning, match=r"classes \[5\]"):
        C = transition_matrix("class_cluster", 6, 0.3, clusters=[0, 0, 0, 1, 1, 2])
    expected = np.zeros((6, 6))
    expected[:3, :3] = 0.15
    expected[3:5, 3:5] = 0.3
    np.fill_diagonal(expected, 0.7)
    expected[5, 5] = 1.0
    np.testing.assert_allclose(C, expected)


def test_class_cluster_no_warning_without_singletons():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        C = transition_matrix("class_cluster", 6, 0.4, clusters=CLUSTERS6)
        # rate 0: singletons do not matter, no warning
        transition_matrix("class_cluster", 3, 0.0, clusters=[0, 1, 2])
    assert np.all(C[:3, 3:] == 0) and np.all(C[3:, :3] == 0)
    np.testing.assert_allclose(C[0, 1:3], 0.2)


def test_class_cluster_arbitrary_ids_and_all_singletons():
    C1 = transition_matrix("class_cluster", 4, 0.5, clusters=[7, -1, 7, -1])
    C2 = transition_matrix("class_cluster", 4, 0.5, clusters=[0, 1, 0, 1])
    np.testing.assert_allclose(C1, C2)
    with pytest.warns(UserWarning, match=r"\[0, 1, 2\]"):
        C = transition_matrix("class_cluster", 3, 0.5, clusters=[0, 1, 2])
    np.testing.assert_allclose(C, np.eye(3))


@pytest.mark.parametrize(
    "clusters, match",
    [
        (None, "clusters is required"),
        ([0, 0, 1], "clusters must be a 1-D array"),
        ([[0, 0], [1, 1]], "clusters must be a 1-D array"),
        ([0, 0.5, 1, 1], "clusters must hold integer"),
        (["a", "a", "b", "b"], "clusters must hold integer"),
    ],
)
def test_class_cluster_bad_clusters(clusters, match):
    with pytest.raises(ValueError, match=match):
        transition_matrix("class_cluster", 4, 0.2, clusters=clusters)


def test_user_matrix_accepted_and_copied():
    M = np.array([[0.9, 0.1, 0.0], [0.0, 1.0, 0.0], [0.25, 0.25, 0.5]])
    C = transition_matrix(M, 3, None)
    np.testing.assert_array_equal(C, M)
    assert C is not M
    np.testing.assert_array_equal(transition_matrix(M.tolist(), None, 0.7), M)


@pytest.mark.parametrize(
    "M, match",
    [
        (np.full((2, 3), 1 / 3), "kind must be a square"),
        ([[0.5, 0.4], [0.0, 1.0]], "kind rows must sum to 1.*row 0 sums to 0.9"),
        ([[1.2, -0.2], [0.0, 1.0]], "kind must be finite and non-negative"),
    ],
)
def test_user_matrix_invalid(M, match):
    with pytest.raises(ValueError, match=match):
        transition_matrix(M, None, 0.1)


def test_user_matrix_n_classes_mismatch():
    with pytest.raises(ValueError, match="n_classes=3"):
        transition_matrix(np.eye(2), 3, 0.1)


@pytest.mark.parametrize("rate", [-0.1, 1.5, float("nan")])
def test_rate_outside_unit_interval(rate):
    with pytest.raises(ValueError, match="rate must be in"):
        transition_matrix("symmetric", 3, rate)


def test_unknown_kind_lists_allowed():
    with pytest.raises(ValueError, match="kind must be one of.*'pairflip'.*'symmetric'.*got 'uniform'"):
        transition_matrix("uniform", 3, 0.1)


@pytest.mark.parametrize("n_classes", [1, 0, -3])
def test_n_classes_too_small(n_classes):
    with pytest.raises(ValueError, match="n_classes"):
        transition_matrix("symmetric", n_classes, 0.1)


# ---------------------------------------------------------------- corrupt_labels


@pytest.mark.parametrize("kind", ["symmetric", "asymmetric", "pairflip", "class_cluster"])
def test_realised_rate_within_sampling_error(kind):
    K, n_per, eta = 4, 5000, 0.3
    y = _balanced(K, n_per)
    C = transition_matrix(kind, K, eta, clusters=[0, 0, 1, 1])
    y_noisy, rates = corrupt_labels(y, C, seed=0, return_rates=True)
    n = y.size
    assert abs(rates["overall"] - eta) < 4 * np.sqrt(eta * (1 - eta) / n)
    assert np.all(np.abs(rates["per_class"] - eta) < 4 * np.sqrt(eta * (1 - eta) / n_per))
    # every transition probability, from the confusion counts
    est = rates["confusion"] / n_per
    sigma = np.sqrt(C * (1 - C) / n_per)
    assert np.all(np.abs(est - C) <= 4 * sigma + 1e-12)
    assert y_noisy.dtype == np.int64 and y_noisy.shape == y.shape


def test_sampling_with_unbalanced_and_shuffled_labels():
    rng = np.random.default_rng(1)
    y = rng.choice(3, size=20000, p=[0.6, 0.3, 0.1])
    C = transition_matrix("symmetric", 3, 0.2)
    rates = realised_rates(y, corrupt_labels(y, C, 5))
    n_k = np.bincount(y)
    assert np.all(np.abs(rates["per_class"] - 0.2) < 4 * np.sqrt(0.16 / n_k))


def test_pairflip_flips_only_to_next_class():
    K = 5
    y = _balanced(K, 400)
    y_noisy = corrupt_labels(y, transition_matrix("pairflip", K, 0.45), seed=3)
    flipped = y_noisy != y
    assert flipped.any()
    np.testing.assert_array_equal(y_noisy[flipped], (y[flipped] + 1) % K)


def test_class_cluster_stays_in_cluster_and_singleton_keeps_labels():
    clusters = np.array([0, 0, 0, 1, 1, 2])
    y = _balanced(6, 500)
    with pytest.warns(UserWarning):
        C = transition_matrix("class_cluster", 6, 0.6, clusters=clusters)
    y_noisy = corrupt_labels(y, C, seed=11)
    np.testing.assert_array_equal(clusters[y_noisy], clusters[y])
    np.testing.assert_array_equal(y_noisy[y == 5], 5)
    assert np.all(np.bincount(y[y_noisy != y], minlength=6)[:5] > 0)


@pytest.mark.parametrize("kind", NOISE_KINDS)
@pytest.mark.parametrize("eta", [0.1, 0.2, 0.55, 0.9])
def test_exact_flip_counts_per_class(kind, eta):
    K = 4
    sizes = np.array([10, 37, 250, 3])
    y = np.random.default_rng(0).permutation(np.repeat(np.arange(K), sizes))
    C = transition_matrix(kind, K, eta, clusters=[0, 0, 1, 1])
    y_noisy, rates = corrupt_labels(y, C, seed=4, exact=True, return_rates=True)
    flips = np.bincount(y[y_noisy != y], minlength=K)
    np.testing.assert_array_equal(flips, [round(eta * n) for n in sizes])
    assert rates["per_class"] == pytest.approx(flips / sizes)
    # flipped labels go only where the matrix allows
    assert np.all(C[y, y_noisy] > 0)


def test_exact_pairflip_destinations_and_user_matrix():
    M = np.array([[0.5, 0.5, 0.0], [0.0, 0.9, 0.1], [0.0, 0.0, 1.0]])
    y = _balanced(3, 40)
    y_noisy = corrupt_labels(y, M, seed=0, exact=True)
    flips = np.bincount(y[y_noisy != y], minlength=3)
    np.testing.assert_array_equal(flips, [20, 4, 0])
    np.testing.assert_array_equal(y_noisy[(y == 0) & (y_noisy != 0)], 1)
    np.testing.assert_array_equal(y_noisy[(y == 1) & (y_noisy != 1)], 2)


def test_exact_fixes_small_class_rates():
    # sampled noise on a 10-point class is a coin toss; exact gives 2 of 10 flips at eta=0.2
    y = np.repeat(np.arange(3), 10)
    C = transition_matrix("symmetric", 3, 0.2)
    for seed in range(20):
        r = realised_rates(y, corrupt_labels(y, C, seed, exact=True))
        np.testing.assert_allclose(r["per_class"], 0.2)
        assert r["overall"] == pytest.approx(0.2)


@pytest.mark.parametrize("exact", [False, True])
def test_seed_reproducible(exact):
    y = _balanced(5, 200)
    C = transition_matrix("symmetric", 5, 0.4)
    a = corrupt_labels(y, C, 123, exact)
    b = corrupt_labels(y, C, 123, exact)
    c = corrupt_labels(y, C, 124, exact)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    d = corrupt_labels(y, C, np.random.default_rng(123), exact)
    np.testing.assert_array_equal(a, d)


def test_bad_seed():
    with pytest.raises(ValueError, match="seed"):
        corrupt_labels([0, 1], np.eye(2), seed=-1)


@pytest.mark.parametrize("kind", NOISE_KINDS)
@pytest.mark.parametrize("exact", [False, True])
def test_rate_zero_identity(kind, exact):
    y = np.random.default_rng(0).integers(0, 4, size=500)
    C = transition_matrix(kind, 4, 0.0, clusters=[0, 0, 1, 1])
    np.testing.assert_array_equal(corrupt_labels(y, C, 0, exact), y)


def test_rate_one_pairflip_flips_all():
    y = _balanced(3, 20)
    y_noisy = corrupt_labels(y, transition_matrix("pairflip", 3, 1.0), 0)
    np.testing.assert_array_equal(y_noisy, (y + 1) % 3)


def test_corrupt_validation():
    C = transition_matrix("symmetric", 3, 0.1)
    with pytest.raises(ValueError, match="y must hold labels in 0..2"):
        corrupt_labels([0, 1, 3], C, 0)
    with pytest.raises(ValueError, match="y must be a 1-D"):
        corrupt_labels([[0, 1]], C, 0)
    with pytest.raises(ValueError, match="matrix rows must sum to 1"):
        corrupt_labels([0, 1], [[0.5, 0.4], [0.0, 1.0]], 0)
    with pytest.raises(ValueError, match="matrix must be a square"):
        corrupt_labels([0, 1], np.ones((2, 3)) / 3, 0)


def test_missing_classes_are_fine():
    y = np.array([0, 0, 2, 2, 2])
    y_noisy, rates = corrupt_labels(y, transition_matrix("symmetric", 4, 0.5), 0, return_rates=True)
    assert y_noisy.max() <= 3
    assert np.isnan(rates["per_class"][1]) and np.isnan(rates["per_class"][3])
    assert rates["confusion"].shape == (4, 4)


# ---------------------------------------------------------------- realised_rates


def test_realised_rates_by_hand():
    y = np.array([0, 0, 0, 1, 1, 2])
    z = np.array([0, 1, 2, 1, 1, 0])
    r = realised_rates(y, z)
    assert r["overall"] == pytest.approx(3 / 6)
    np.testing.assert_allclose(r["per_class"], [2 / 3, 0.0, 1.0])
    np.testing.assert_array_equal(r["confusion"], [[1, 1, 1], [0, 2, 0], [1, 0, 0]])
    assert r["confusion"].dtype == np.int64
    r4 = realised_rates(y, z, n_classes=4)
    assert r4["confusion"].shape == (4, 4) and np.isnan(r4["per_class"][3])


def test_realised_rates_errors():
    with pytest.raises(ValueError, match="y_noisy has 2 entries but y_true has 3"):
        realised_rates([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match="y_noisy must hold labels in 0..1"):
        realised_rates([0, 1], [0, 2], n_classes=2)


# ---------------------------------------------------------------- class_clusters


def _grouped_data(seed=0, n_per=100, d=40, noise=1.0):
    rng = np.random.default_rng(seed)
    group = np.array([0, 0, 0, 1, 1, 1])
    g = rng.normal(size=(2, d))
    means = g[group] + 0.3 * rng.normal(size=(6, d))
    y = np.repeat(np.arange(6), n_per)
    X = means[y] + noise * rng.normal(size=(y.size, d))
    perm = rng.permutation(y.size)
    return X[perm], y[perm]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_class_clusters_recovers_planted_groups(seed):
    X, y = _grouped_data(seed)
    np.testing.assert_array_equal(class_clusters(X, y), [0, 0, 0, 1, 1, 1])


def test_class_clusters_ids_by_first_class():
    rng = np.random.default_rng(0)
    d = 30
    g = rng.normal(size=(2, d))
    group = np.array([1, 0, 1, 0])  # classes 0 and 2 together
    means = g[group] + 0.2 * rng.normal(size=(4, d))
    y = np.repeat(np.arange(4), 50)
    X = means[y] + 0.5 * rng.normal(size=(y.size, d))
    np.testing.assert_array_equal(class_clusters(X, y), [0, 1, 0, 1])


def _two_level_data():
    # 2 super-groups, each of 2 sub-groups of 2 classes, built on orthogonal directions
    d = 20
    E = np.eye(d)
    sup = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    sub = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    means = 3.0 * E[sup] + 1.5 * E[2 + sub] + 0.3 * E[6 + np.arange(8)]
    y = np.repeat(np.arange(8), 20)
    X = means[y] + 0.01 * np.random.default_rng(0).normal(size=(y.size, d))
    return X, y


def test_class_clusters_threshold_effect():
    X, y = _two_level_data()
    np.testing.assert_array_equal(class_clusters(X, y), [0, 0, 0, 0, 1, 1, 1, 1])
    np.testing.assert_array_equal(class_clusters(X, y, threshold=0.15), [0, 0, 1, 1, 2, 2, 3, 3])
    np.testing.assert_array_equal(class_clusters(X, y, threshold=0.0), np.arange(8))
    np.testing.assert_array_equal(class_clusters(X, y, threshold=1.0), np.zeros(8))
    counts = [np.unique(class_clusters(X, y, threshold=t)).size for t in np.linspace(0, 1, 11)]
    assert counts == sorted(counts, reverse=True)


def test_class_clusters_two_classes():
    X, y = _grouped_data()
    keep = y < 2
    c = class_clusters(X[keep], y[keep])
    np.testing.assert_array_equal(c, [0, 1])
    np.testing.assert_array_equal(class_clusters(X[keep], y[keep], threshold=1.0), [0, 0])


def test_class_clusters_errors():
    X, y = _grouped_data()
    with pytest.raises(ValueError, match=r"no points of classes \[2\]"):
        class_clusters(X[y != 2], y[y != 2])
    with pytest.raises(ValueError, match=r"no points of classes \[6, 7\]"):
        class_clusters(X, y, n_classes=8)
    with pytest.raises(ValueError, match="at least 2 features"):
        class_clusters(X[:, :1], y)
    with pytest.raises(ValueError, match="threshold must be in"):
        class_clusters(X, y, threshold=1.5)
    with pytest.raises(ValueError, match="y has 10 entries"):
        class_clusters(X, y[:10])


def test_class_clusters_feed_transition_matrix():
    X, y = _grouped_data()
    C = transition_matrix("class_cluster", 6, 0.4, clusters=class_clusters(X, y))
    assert np.all(C[:3, 3:] == 0)
    np.testing.assert_allclose(C[0, 1:3], 0.2)


# ---------------------------------------------------------------- make_noisy_labels


def test_make_noisy_labels_class_cluster_from_X():
    X, y = _grouped_data()
    y_noisy, info = make_noisy_labels(y, "class_cluster", 0.5, 0, X=X)
    np.testing.assert_array_equal(info["clusters"], [0, 0, 0, 1, 1, 1])
    group = np.array([0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(group[y_noisy], group[y])
    assert info["matrix"].shape == (6, 6)
    assert info["rates"]["overall"] == pytest.approx(np.mean(y_noisy != y))
    np.testing.assert_array_equal(info["rates"]["confusion"], realised_rates(y, y_noisy)["confusion"])


def test_make_noisy_labels_requires_X_for_class_cluster():
    with pytest.raises(ValueError, match="X is required"):
        make_noisy_labels([0, 1, 2, 3], "class_cluster", 0.3, 0)
    y_noisy, info = make_noisy_labels([0, 1, 2, 3], "class_cluster", 0.3, 0, clusters=[0, 0, 1, 1])
    np.testing.assert_array_equal(info["clusters"], [0, 0, 1, 1])


def test_make_noisy_labels_other_kinds():
    y = _balanced(4, 50)
    y_noisy, info = make_noisy_labels(y, "pairflip", 0.2, 7, exact=True)
    assert info["clusters"] is None
    np.testing.assert_allclose(info["matrix"], transition_matrix("pairflip", 4, 0.2))
    np.testing.assert_allclose(info["rates"]["per_class"], 0.2)
    np.testing.assert_array_equal(y_noisy, corrupt_labels(y, info["matrix"], 7, exact=True))
    # n_classes larger than the labels present; user matrix
    _, info = make_noisy_labels(y, "symmetric", 0.1, 0, n_classes=6)
    assert info["matrix"].shape == (6, 6)
    M = np.eye(5)
    y_noisy, info = make_noisy_labels(y, M, None, 0)
    np.testing.assert_array_equal(y_noisy, y)
    with pytest.raises(ValueError, match="kind must be one of"):
        make_noisy_labels(y, "nope", 0.1, 0)


# ---------------------------------------------------------------- the authors' clustering rule, by hand
def _authors_clusters_by_hand(X, y, frac=0.8):
    """get_confusable_class of the authors' code, redone with loops: pairwise cosine map, then
    complete linkage of the rows of 1 - R as observation vectors (Euclidean), cut at frac x height."""
    K = int(y.max()) + 1
    Xc = X - X.mean(axis=0)
    Xn = Xc / np.linalg.norm(Xc, axis=1, keepdims=True)
    C = Xn @ Xn.T
    R = np.zeros((K, K))
    for a in range(K):
        for b in range(K):
            block = C[np.ix_(y == a, y == b)]
            R[a, b] = block[~np.eye(len(block), dtype=bool)].mean() if a == b else block.mean()
    rows = 1.0 - R
    dist = np.sqrt(((rows[:, None, :] - rows[None, :, :]) ** 2).sum(-1))
    clusters, heights = [[k] for k in range(K)], []
    history = [[list(c) for c in clusters]]
    while len(clusters) > 1:  # complete linkage: merge the pair with the smallest largest distance
        pairs = [(max(dist[i, j] for i in A for j in B), ia, ib)
                 for ia, A in enumerate(clusters) for ib, B in enumerate(clusters) if ia < ib]
        h, ia, ib = min(pairs)
        heights.append(h)
        clusters = [c for i, c in enumerate(clusters) if i not in (ia, ib)] + [clusters[ia] + clusters[ib]]
        history.append([list(c) for c in clusters])
    cut = frac * max(heights)
    kept = history[sum(h <= cut for h in heights)]  # every merge at height <= cut is done
    ids = np.empty(K, dtype=int)
    for c in kept:
        ids[c] = min(c)
    return np.unique(ids, return_inverse=True)[1]  # numbered by first class, as class_clusters does


def _same_partition(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return np.array_equal(a[:, None] == a[None, :], b[:, None] == b[None, :])


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_class_clusters_authors_rule_matches_hand_computation(seed):
    rng = np.random.default_rng(seed)
    K, d = 9, 12
    means = rng.normal(size=(3, d))[rng.integers(0, 3, K)] + 0.7 * rng.normal(size=(K, d))
    y = rng.permutation(np.repeat(np.arange(K), 15))
    X = means[y] + 1.5 * rng.normal(size=(y.size, d))
    hand = _authors_clusters_by_hand(X, y)
    got = class_clusters(X, y, rule="authors")
    assert _same_partition(got, hand), (got, hand)
    np.testing.assert_array_equal(got, hand)
    assert _same_partition(class_clusters(X, y, rule="authors", threshold=0.5), _authors_clusters_by_hand(X, y, 0.5))


def test_class_pair_correlation_is_the_mean_pairwise_cosine():
    rng = np.random.default_rng(5)
    X, y = rng.normal(size=(40, 6)) + 2.0, np.repeat(np.arange(4), 10)
    Xn = X - X.mean(0)
    Xn /= np.linalg.norm(Xn, axis=1, keepdims=True)
    C = Xn @ Xn.T
    R = class_pair_correlation(X, y, 4)
    assert R[1, 3] == pytest.approx(C[np.ix_(y == 1, y == 3)].mean())
    inner = C[np.ix_(y == 2, y == 2)]
    assert R[2, 2] == pytest.approx(inner[~np.eye(10, dtype=bool)].mean())


def test_class_clusters_rules_differ_and_validate():
    rng = np.random.default_rng(0)  # the data of the hand-computation test, seed 0
    K, d = 9, 12
    means = rng.normal(size=(3, d))[rng.integers(0, 3, K)] + 0.7 * rng.normal(size=(K, d))
    y = rng.permutation(np.repeat(np.arange(K), 15))
    X = means[y] + 1.5 * rng.normal(size=(y.size, d))
    # not only the cut differs: at the same cut the two distances give other clusters
    assert not _same_partition(class_clusters(X, y, threshold=0.8), class_clusters(X, y, rule="authors"))
    with pytest.raises(ValueError, match="rule must be one of"):
        class_clusters(X, y, rule="paper")
    keep = np.r_[np.flatnonzero(y == 0)[:1], np.flatnonzero(y != 0)]
    with pytest.raises(ValueError, match=r"at least 2 points per class.*\[0\]"):
        class_clusters(X[keep], y[keep], rule="authors")
