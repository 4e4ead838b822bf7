"""The one metrics module: hand-computed values, and distill and the baselines agreeing on it."""

from __future__ import annotations

import numpy as np
import pytest

from selfdistill import distill
from selfdistill.data import make_block_features
from selfdistill.metrics import accuracy, label_metrics, model_metrics, solver_metrics, topk_coverage
from selfdistill.noise import corrupt_labels, transition_matrix


def test_label_metrics_by_hand():
    given = np.array([0, 1, 0, 0, 2])
    true = np.array([0, 1, 1, 1, 2])  # points 2 and 3 mislabelled
    pred = np.array([0, 0, 1, 0, 2])
    m = label_metrics(pred, given, true)
    assert m == {"train_acc": 0.6, "kept": 2 / 3, "corrected": 0.5, "agree_given": 0.6}
    assert label_metrics(pred, given) == {"train_acc": None, "kept": None, "corrected": None, "agree_given": 0.6}
    assert label_metrics(true, true, true)["corrected"] is None  # no wrong label: nothing to correct
    assert accuracy(pred, None) is None


def test_topk_coverage_shares_ties_like_the_pll_targets():
    probs = np.array([[0.4, 0.3, 0.3], [0.6, 0.3, 0.1]])
    assert topk_coverage(probs, np.array([2, 2]), 2) == 0.5  # row 0: labels 1 and 2 tie for 2nd place
    assert topk_coverage(probs, None, 2) is None


def test_distill_and_the_baselines_score_with_the_same_function():
    from selfdistill.experiments.baselines import BaselineContext, run_baselines

    blk = make_block_features(3, 20, 0.5, 0.1, n_test_per_class=10, dim=20, seed=0)
    y = corrupt_labels(blk.y_train, transition_matrix("symmetric", 3, 0.3), seed=0)
    res = distill(blk.X_train, y, reg=1e-2, rounds=0, pll=False, X_test=blk.X_test, y_test=blk.y_test,
                  y_true=blk.y_train)
    teacher = res.models["round 0"]
    expect = model_metrics("round 0", train_pred=teacher.predict(blk.X_train), y_given=y, y_true=blk.y_train,
                           test_pred=teacher.predict(blk.X_test), y_test=blk.y_test,
                           coverage=res.metric("round 0", "topk_coverage"), probe=teacher)
    assert res.metric_dict("round 0") == expect

    class Cfg:
        label_smoothing = 0.1

    ctx = BaselineContext(X=blk.X_train, y_noisy=y, y_true=blk.y_train, X_test=blk.X_test, y_test=blk.y_test,
                          n_classes=3, reg=1e-2, seed=0, config=Cfg(), round_models=[teacher])
    (ens,), _ = run_baselines(["born_again"], ctx)  # an ensemble of the teacher alone is the teacher
    for key in ("test_acc", "train_acc", "kept", "corrected", "agree_given"):
        assert ens[key] == pytest.approx(expect[key])
    assert ens["n_iter"] is None and set(solver_metrics()) <= set(ens)
