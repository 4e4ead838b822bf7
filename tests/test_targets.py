import numpy as np
import pytest

from selfdistill import refine_targets, topk_mask
from selfdistill.targets import topk_weights


def test_soft_temperature_one_is_identity():
    P = np.random.default_rng(0).dirichlet(np.ones(5), size=20)
    np.testing.assert_allclose(refine_targets(P, "soft"), P)


def test_soft_temperature_sharpens_and_flattens():
    P = np.array([[0.6, 0.3, 0.1]])
    hot = refine_targets(P, "soft", temperature=0.5)
    cold = refine_targets(P, "soft", temperature=4.0)
    np.testing.assert_allclose(hot, P**2 / np.sum(P**2))
    assert hot[0, 0] > P[0, 0] > cold[0, 0]
    np.testing.assert_allclose(hot.sum(1), 1)


def test_soft_with_zero_probability():
    P = np.array([[1.0, 0.0, 0.0]])
    np.testing.assert_allclose(refine_targets(P, "soft", temperature=2.0), P)


def test_topk_targets_share_tied_mass():
    P = np.array([[0.1, 0.5, 0.4, 0.0], [0.3, 0.3, 0.3, 0.1], [0.25, 0.25, 0.25, 0.25], [0.5, 0.2, 0.2, 0.1]])
    T = refine_targets(P, "topk", top_k=2)
    np.testing.assert_allclose(T[0], [0, 0.5, 0.5, 0])
    np.testing.assert_allclose(T[1], [1 / 3, 1 / 3, 1 / 3, 0])  # three-way tie for 2 places: shared
    np.testing.assert_allclose(T[2], [0.25] * 4)
    np.testing.assert_allclose(T[3], [0.5, 0.25, 0.25, 0])  # the top label keeps 1/2, the tied share 1/2
    np.testing.assert_allclose(T.sum(1), 1)
    T3 = refine_targets(P, "topk", top_k=3)
    np.testing.assert_allclose(T3[0], [1 / 3, 1 / 3, 1 / 3, 0])
    np.testing.assert_allclose(T3[3], [1 / 3, 1 / 3, 1 / 3, 0])
    assert topk_mask(P, 1).sum(1).tolist() == [1, 3, 4, 1]
    assert topk_mask(P, 2).sum(1).tolist() == [2, 3, 4, 3]


def test_topk_targets_equivariant_under_relabelling():
    rng = np.random.default_rng(3)
    P = rng.dirichlet(np.ones(6), size=50)
    P[:20, 2] = P[:20, 4] = P[:20, 1]  # exact ties among the runner-ups
    P /= P.sum(1, keepdims=True)
    for _ in range(5):
        perm = rng.permutation(6)
        for k in (2, 3):
            np.testing.assert_allclose(refine_targets(P[:, perm], "topk", top_k=k),
                                       refine_targets(P, "topk", top_k=k)[:, perm])
            assert np.array_equal(topk_mask(P[:, perm], k), topk_mask(P, k)[:, perm])


def test_tie_tolerance_is_relative():
    for scale in (1.0, 1e-12):  # the same relative gap decides, however small the probabilities
        p = np.array([0.6, 0.2, 0.2 * (1 + 1e-7), 0.2 * (1 - 1e-4)]) * scale
        p[0] = 1 - p[1:].sum()
        np.testing.assert_allclose(refine_targets(p[None], "topk", top_k=2)[0], [0.5, 0.25, 0.25, 0], atol=1e-15)
        np.testing.assert_allclose(refine_targets(p[None], "topk", top_k=2, tie_rtol=0.0)[0], [0.5, 0, 0.5, 0])
        np.testing.assert_allclose(refine_targets(p[None], "topk", top_k=2, tie_rtol=1e-3)[0],
                                   [0.5, 1 / 6, 1 / 6, 1 / 6])


def test_topk_weights_any_leading_shape():
    S = np.array([[[3.0, 1.0, 1.0], [0.0, 2.0, 1.0]], [[1.0, 1.0, 1.0], [5.0, -1.0, 5.0]]])
    W = topk_weights(S, 1, 1e-12)
    np.testing.assert_allclose(W, [[[1, 0, 0], [0, 1, 0]], [[1 / 3] * 3, [0.5, 0, 0.5]]])


def test_mix_interpolates_and_extrapolates():
    P = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]])
    y = np.array([1, 1])
    half = refine_targets(P, "soft", mix=0.5, given=y)
    np.testing.assert_allclose(half, 0.5 * P + 0.5 * np.eye(3)[y])
    ext = refine_targets(P, "soft", mix=1.5, given=y)
    np.testing.assert_allclose(ext.sum(1), 1)
    assert ext.min() < 0
    np.testing.assert_allclose(ext, 1.5 * P - 0.5 * np.eye(3)[y])


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(kind="hard"), "kind must be one of"),
        (dict(kind="topk", top_k=1), "top_k must be an integer in \\[2, 2\\], got 1"),
        (dict(kind="topk", top_k=3), "top_k must be an integer in \\[2, 2\\], got 3"),
        (dict(kind="soft", temperature=0.0), "temperature must be > 0"),
        (dict(kind="soft", mix=0.5), "given .* is required when mix != 1"),
        (dict(kind="soft", mix=-1.0), "mix must be >= 0"),
    ],
)
def test_bad_arguments(kwargs, match):
    P = np.array([[0.7, 0.2, 0.1]])
    with pytest.raises(ValueError, match=match):
        refine_targets(P, **kwargs)


def test_bad_probs():
    with pytest.raises(ValueError, match="probs rows must sum to 1"):
        refine_targets(np.array([[0.5, 0.6, 0.1]]), "soft")
