import numpy as np
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


def _cold_path(X, y, grid, seed, **chain):
    """The reg path as it was computed before warm starts: an independent chain per reg."""
    from selfdistill import distill
    from selfdistill.model_selection import stratified_split

    idx_fit, idx_val = stratified_split(y, 0.2, seed)
    out = {}
    for reg in grid:
        res = distill(X[idx_fit], y[idx_fit], reg=reg, X_test=X[idx_val], y_test=y[idx_val], **chain)
        out[reg] = res
    return out


def test_reg_path_warm_starts_reach_the_cold_starts_minimisers():
    from selfdistill.model_selection import reg_path

    X, y = make_classes(n=400, d=12, K=4, seed=3)
    y = y.copy()
    y[::5] = (y[::5] + 1) % 4  # 20% of the labels flipped
    grid = (1e-1, 1e-2, 1e-3, 1e-4)
    chain = dict(rounds=3, pll_loss=("uniform", "candidate"), n_classes=4, tol=1e-10)
    best, scores, models = reg_path(X, y, grid=grid, seed=2, **chain)
    cold = _cold_path(X, y, grid, 2, **chain)
    for reg in grid:
        for m in cold[reg].metrics:
            assert scores[m["model"]][reg] == m["test_acc"]
            warm_W, cold_W = models[reg][m["model"]].coef_, cold[reg].models[m["model"]].coef_
            scale = np.abs(cold_W).max()
            assert np.abs(warm_W - cold_W).max() <= 1e-5 * scale, (reg, m["model"])
    # the teachers' warm starts along the path save work over cold starts
    warm_evals = sum(models[reg]["round 0"].n_hessp_ + models[reg]["round 0"].n_grad_evals_ for reg in grid[1:])
    cold_evals = sum(cold[reg].models["round 0"].n_hessp_ + cold[reg].models["round 0"].n_grad_evals_
                     for reg in grid[1:])
    assert warm_evals < cold_evals


def test_refit_selected_fits_only_what_the_choice_needs_and_the_same_models():
    from selfdistill import distill
    from selfdistill.model_selection import refit_selected, reg_path

    X, y = make_classes(n=300, d=10, K=4, seed=5)
    y = y.copy()
    y[::4] = (y[::4] + 2) % 4
    chain = dict(rounds=3, pll_loss=("uniform", "gce"), n_classes=4, tol=1e-10)
    _, _, path = reg_path(X, y, grid=(1e-1, 1e-3), seed=0, **chain)
    best = {"round 0": 1e-1, "round 1": 1e-3, "round 2": 1e-1, "round 3": 1e-1,
            "pll-uniform": 1e-3, "pll-gce": 1e-1}
    chains = refit_selected(X, y, best, path, **chain)
    assert sorted(chains[1e-1].models) == ["pll-gce", "round 0", "round 1", "round 2", "round 3"]
    assert sorted(chains[1e-3].models) == ["pll-uniform", "round 0", "round 1"]
    for reg, part in chains.items():
        full = distill(X, y, reg=reg, **chain)
        for name, model in part.models.items():
            W = full.models[name].coef_
            np.testing.assert_allclose(model.coef_, W, atol=1e-6 * np.abs(W).max())
    with pytest.raises(ValueError, match="missing \\['pll-gce'\\]"):
        refit_selected(X, y, {k: v for k, v in best.items() if k != "pll-gce"}, **chain)
