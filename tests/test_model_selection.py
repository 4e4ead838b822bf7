import pytest
from conftest import make_classes

from selfdistill.model_selection import select_reg, select_reg_per_model


def test_select_reg_picks_best_held_out_noisy_accuracy():
    X, y = make_classes(n=300, d=10, K=3, seed=7)
    reg, scores = select_reg(X, y, grid=(1e-1, 1e-3, 10.0), seed=1)
    assert set(scores) == {1e-1, 1e-3, 10.0}
    assert scores[reg] == max(scores.values())
    assert scores[10.0] <= scores[reg]  # a huge reg underfits
    assert select_reg(X, y, grid=(1e-1, 1e-3, 10.0), seed=1) == (reg, scores)  # seeded


def test_select_reg_per_model_scores_every_model():
    X, y = make_classes(n=300, d=10, K=3, seed=8)
    best, scores = select_reg_per_model(X, y, grid=(1e-2, 1e-4), seed=0, rounds=2, pll_loss=("uniform", "gce"))
    assert set(best) == {"round 0", "round 1", "round 2", "pll-uniform", "pll-gce"}
    for name, reg in best.items():
        assert set(scores[name]) == {1e-2, 1e-4}
        assert scores[name][reg] == max(scores[name].values())
        if scores[name][1e-2] == scores[name][1e-4]:
            assert reg == 1e-2  # ties: the larger reg


def test_bad_arguments():
    X, y = make_classes(n=50, d=3, K=2)
    with pytest.raises(ValueError, match="val_fraction must be in \\(0, 1\\)"):
        select_reg(X, y, val_fraction=1.5)
    with pytest.raises(ValueError, match="grid entry must be > 0"):
        select_reg_per_model(X, y, grid=(1e-2, -1.0), pll=False)
