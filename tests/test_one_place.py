"""Concepts built once: each has one implementation that every user calls.

* the label-issue ranking: :func:`selfdistill.metrics.flag_label_issues`, behind
  ``DistillResult.label_issues`` and ``inspect_labels``;
* the exact block chain's accuracies: ``BlockModel.exact_accuracies``, which ``selfdistill theory``
  calls instead of recomputing them;
* ``NOISE_KINDS``: :mod:`selfdistill.noise`'s, which ``selfdistill theory`` imports;
* the per-round accuracies of ``LabelAveraging`` and ``ExactChain``: one shared base;
* the ``plot_*`` functions of :mod:`selfdistill.report`: each saves its ``make_*`` figure with
  :func:`selfdistill._io.save_figure`.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from selfdistill import distill, inspect_labels, noise
from selfdistill.cli import theory as cli_theory
from selfdistill.distill import DistillResult
from selfdistill.label_issues import LabelIssues, label_quality_scores
from selfdistill.metrics import flag_label_issues, rank_flagged
from selfdistill.report import correlation, figures, theory_figures
from selfdistill.theory import BlockModel, exact_chain, label_averaging
from selfdistill.theory.spectral import ExactChain, LabelAveraging


def _probs(n=200, K=4, seed=0):
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n, K))
    P = np.exp(Z)
    return P / P.sum(axis=1, keepdims=True), rng.integers(0, K, size=n)


# ------------------------------------------------------------------------------ label-issue ranking
def test_flag_label_issues_is_the_old_rule():
    P, y = _probs()
    flags = flag_label_issues(P, y)
    pred = np.argmax(P, axis=1)
    idx = np.flatnonzero(pred != y)
    margin = P[idx, pred[idx]] - P[idx, y[idx]]
    np.testing.assert_array_equal(flags.ranked, idx[np.lexsort((idx, -margin))])  # DistillResult's old rule
    np.testing.assert_array_equal(flags.is_issue, pred != y)
    np.testing.assert_array_equal(flags.suggested, np.where(pred != y, pred, y))
    np.testing.assert_array_equal(flags.score, label_quality_scores(P, y))
    np.testing.assert_array_equal(flags.is_issue, flags.score < 0.5)


def test_ties_are_broken_by_index():
    P = np.array([[0.2, 0.8], [0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    flags = flag_label_issues(P, np.zeros(4, dtype=int))
    assert flags.ranked.tolist() == [0, 2]
    assert rank_flagged([True, True, True], [0.5, 0.1, 0.1]).tolist() == [1, 2, 0]


def test_distill_result_and_inspect_labels_rank_alike():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(90, 3))
    y = np.argmax(X, axis=1)
    y[:9] = (y[:9] + 1) % 3
    res = distill(X, y, reg=1e-2, rounds=1, pll=False)
    P = res.train_probs["round 0"]
    np.testing.assert_array_equal(res.label_issues("round 0"), flag_label_issues(P, y).ranked)
    li = inspect_labels(X, y, reg=1e-2, model="round 0", cv=None)
    np.testing.assert_array_equal(li.ranked, flag_label_issues(li.probs, y).ranked)
    np.testing.assert_array_equal(li.indices("normalized_margin"), li.ranked)


def test_one_ranking_in_the_source():
    for fn in (DistillResult.label_issues, inspect_labels, LabelIssues.indices):
        src = inspect.getsource(fn)
        assert "lexsort" not in src, fn.__qualname__
    assert "flag_label_issues" in inspect.getsource(DistillResult.label_issues)
    assert "flag_label_issues" in inspect.getsource(inspect_labels)


# ------------------------------------------------------------------------------ the exact chain's accuracies
def test_noise_kinds_come_from_noise():
    assert cli_theory.NOISE_KINDS is noise.NOISE_KINDS


def test_exact_accuracies_are_the_old_formulas():
    bm = BlockModel(4, 15, c=0.4, d=0.1, reg=1e-2)
    N = bm.sample_counts("symmetric", 0.4, seed=1)
    ex = bm.exact_probs(N, 3, pll=True, top_k=2)
    acc = bm.exact_accuracies(N, ex)
    K = 4
    right = np.argmax(np.nan_to_num(ex["train"], nan=-1.0), axis=3) == np.arange(K)[None, :, None]
    np.testing.assert_array_equal(acc["train"], np.einsum("tkj,kj->t", right.astype(float), N) / bm.n)
    test = (np.argmax(ex["test"], axis=2) == np.arange(K)[None, :]).astype(float) @ (bm.sizes / bm.n)
    np.testing.assert_array_equal(acc["test"], test)
    pll_right = np.argmax(np.nan_to_num(ex["pll"], nan=-1.0), axis=2) == np.arange(K)[:, None]
    assert acc["pll"] == float((pll_right * N).sum() / bm.n)
    np.testing.assert_array_equal(bm.exact_accuracy(N, 3), acc["train"])
    assert "pll" not in bm.exact_accuracies(N, bm.exact_probs(N, 1))


def test_exact_accuracies_refuse_another_models_chain():
    bm = BlockModel(3, 10, c=0.4, d=0.1, reg=1e-2)
    other = BlockModel(4, 10, c=0.4, d=0.1, reg=1e-2)
    N4 = other.sample_counts("symmetric", 0.2, seed=0)
    with pytest.raises(ValueError, match="exact_probs"):
        bm.exact_accuracies(bm.sample_counts("symmetric", 0.2, seed=0), other.exact_probs(N4, 1))


def test_cli_theory_calls_the_library():
    src = inspect.getsource(cli_theory._exact)
    assert "exact_accuracies" in src and "einsum" not in src and "argmax" not in src


# ------------------------------------------------------------------------------ per-round accuracies
def test_label_averaging_and_exact_chain_share_their_accuracies():
    for name in ("predictions", "test_predictions", "accuracy", "test_accuracy"):
        assert name not in vars(LabelAveraging) and name not in vars(ExactChain), name
        assert getattr(LabelAveraging, name) is getattr(ExactChain, name), name


def test_shared_accuracies_name_their_builder():
    X = np.random.default_rng(0).normal(size=(12, 4))
    y = np.argmax(X[:, :3], axis=1)
    la, ch = label_averaging(y, 1e-2, 1, X=X), exact_chain(y, 1e-2, 1, X=X)
    with pytest.raises(ValueError, match="to label_averaging$"):
        la.test_accuracy(y)
    with pytest.raises(ValueError, match="to exact_chain$"):
        ch.test_accuracy(y)
    ch_t = exact_chain(y, 1e-2, 1, X=X, X_test=X[:5])
    expect = np.mean(np.argmax(ch_t.test_probs, axis=2) == y[None, :5], axis=1)
    np.testing.assert_array_equal(ch_t.test_accuracy(y[:5]), expect)
    np.testing.assert_array_equal(ch.accuracy(y), np.mean(np.argmax(ch.train_probs, axis=2) == y, axis=1))


# ------------------------------------------------------------------------------ report figures
@pytest.mark.parametrize("module", [figures, theory_figures, correlation])
def test_every_plot_saves_through_save_figure(module):
    plots = [n for n in module.__all__ if n.startswith("plot_")]
    assert plots
    for name in plots:
        src = inspect.getsource(getattr(module, name))
        body = src.split('"""')[-1]  # the code after the docstring
        assert "save_figure(" in body and "savefig" not in body.replace("save_figure", ""), name
        assert "close(" not in body, name
        assert len([ln for ln in body.strip().splitlines() if ln.strip()]) <= 3, name
