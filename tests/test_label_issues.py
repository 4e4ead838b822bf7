"""selfdistill.find_label_issues / inspect_labels and `selfdistill label-issues`.

Small data, fixed reg where possible."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
from conftest import make_classes

import selfdistill
from selfdistill.cli import main
from selfdistill.label_issues import (
    choose_model,
    find_label_issues,
    inspect_labels,
    issue_metrics,
    label_quality_scores,
    refit_on_fixed,
)


@pytest.fixture(scope="module")
def planted():
    """Well-separated classes (K=4) with 24 of 240 labels moved to another class; a test set."""
    X, y = make_classes(n=400, d=8, K=4, sep=6.0, seed=3)
    X, X_test, y, y_test = X[:240], X[240:], y[:240], y[240:]
    rng = np.random.default_rng(0)
    flip = rng.choice(240, size=24, replace=False)
    y_noisy = y.copy()
    y_noisy[flip] = (y[flip] + rng.integers(1, 4, size=24)) % 4
    return X, y_noisy, y, X_test, y_test, np.sort(flip)


def test_exported():
    assert selfdistill.find_label_issues is find_label_issues
    assert selfdistill.inspect_labels is inspect_labels
    assert "LabelIssues" in selfdistill.__all__


def test_mask_and_ranked_indices_conventions(planted):
    X, yn = planted[:2]
    mask = find_label_issues(X, yn, reg=1e-2)
    assert mask.dtype == bool and mask.shape == yn.shape
    for by in ("normalized_margin", "self_confidence"):
        idx = find_label_issues(X, yn, reg=1e-2, return_indices_ranked_by=by)
        assert idx.dtype.kind == "i" and sorted(idx.tolist()) == np.flatnonzero(mask).tolist()
    res = inspect_labels(X, yn, reg=1e-2)
    P = res.probs
    by_margin = res.indices("normalized_margin")
    assert np.all(np.diff(res.score[by_margin]) >= 0)  # most suspect (lowest quality) first
    by_conf = res.indices("self_confidence")
    assert np.all(np.diff(P[by_conf, yn[by_conf]]) >= 0)


def test_scores_flags_and_suggestions_are_consistent(planted):
    X, yn = planted[:2]
    res = inspect_labels(X, yn, reg=1e-2)
    assert np.all((res.score >= 0) & (res.score <= 1))
    np.testing.assert_array_equal(res.is_issue, res.score < 0.5)  # flagged iff another class is more probable
    np.testing.assert_array_equal(res.suggested[~res.is_issue], yn[~res.is_issue])
    assert np.all(res.suggested[res.is_issue] != yn[res.is_issue])
    np.testing.assert_array_equal(res.suggested, np.argmax(res.probs, axis=1))
    np.testing.assert_allclose(res.confidence, res.probs.max(axis=1))
    assert res.n_issues == len(res.records()) == res.ranked.size


def test_planted_flips_are_found_and_corrected(planted):
    X, yn, y, X_test, y_test, flip = planted
    res = inspect_labels(X, yn, y_true=y, X_test=X_test, y_test=y_test)
    found = np.intersect1d(res.ranked, flip)
    assert found.size >= 22 and res.n_issues <= 28  # recall >= 0.9 with few false flags
    assert np.mean(res.suggested[flip] == y[flip]) >= 0.9
    assert res.metrics["f1"] >= 0.9 and res.metrics["corrected_acc"] >= 0.98
    assert res.metrics["auroc"] > 0.95
    assert set(res.test_acc) == {"teacher", "fixed", "fix"} and res.test_acc["fixed"] >= res.test_acc["teacher"] - 0.02
    assert set(res.ranked[:20].tolist()) <= set(flip.tolist())  # the top of the ranking is all planted


def test_selection_never_sees_clean_or_test_labels(planted):
    X, yn, y, X_test, y_test, _ = planted
    base = inspect_labels(X, yn, seed=1)
    with_truth = inspect_labels(X, yn, seed=1, y_true=y, X_test=X_test, y_test=y_test)
    shuffled = inspect_labels(X, yn, seed=1, y_true=np.roll(y, 7), X_test=X_test, y_test=np.roll(y_test, 3))
    for other in (with_truth, shuffled):
        np.testing.assert_array_equal(other.is_issue, base.is_issue)
        np.testing.assert_array_equal(other.ranked, base.ranked)
        np.testing.assert_array_equal(other.suggested, base.suggested)
        assert (other.model, other.reg, other.selection, other.reg_scores) == (
            base.model, base.reg, base.selection, base.reg_scores)
    assert base.metrics is None and with_truth.metrics is not None
    assert with_truth.metrics != shuffled.metrics  # the clean labels do reach the metrics
    assert base.reg_scores and set(base.selection) == {"round 0", "round 1", "pll-uniform", "pll-candidate"}


def test_one_standard_error_rule():
    # teacher 0.80 on 100 points: SE 0.04
    assert choose_model({"round 0": 0.80, "round 1": 0.83, "pll-candidate": 0.82}, 100) == "round 0"
    assert choose_model({"round 0": 0.80, "round 1": 0.83, "pll-candidate": 0.85}, 100) == "pll-candidate"
    assert choose_model({"round 0": 0.80, "pll-uniform": 0.86, "pll-candidate": 0.86}, 100) == "pll-uniform"
    assert choose_model({"round 0": 1.0, "round 1": 1.0}, 10) == "round 0"


def test_explicit_model_and_two_classes():
    X, y = make_classes(n=120, d=6, K=2, sep=5.0, seed=1)
    yn = y.copy()
    yn[:6] = 1 - yn[:6]
    res = inspect_labels(X, yn, reg=1e-2)
    assert set(res.selection) == {"round 0", "round 1"}  # no PLL student with 2 classes
    assert set(range(6)) <= set(res.ranked.tolist())
    pll = inspect_labels(make_classes(n=120, K=3, seed=2)[0], make_classes(n=120, K=3, seed=2)[1], reg=1e-2,
                         model="pll-candidate")
    assert pll.model == "pll-candidate" and pll.selection == {}


def test_refit_prune_keeps_every_class():
    X, y = make_classes(n=90, d=4, K=3, seed=0)
    issue = y == 2  # a whole class flagged
    probe = refit_on_fixed(X, y, issue, y, 1e-2, fix="prune", n_classes=3)
    assert probe.coef_.shape[0] == 3 and set(np.unique(probe.predict(X))) == {0, 1, 2}


def test_label_quality_scores_values():
    P = np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3]])
    np.testing.assert_allclose(label_quality_scores(P, [0, 2]), [0.75, 0.4])
    np.testing.assert_allclose(label_quality_scores(P, [0, 2], "self_confidence"), [0.7, 0.3])
    m = issue_metrics([True, False], [0.1, 0.9], [1, 0], [0, 0], [1, 0])
    assert m["precision"] == m["recall"] == m["f1"] == m["corrected_acc"] == 1.0


@pytest.mark.parametrize("kwargs, name", [
    (dict(y=np.zeros(5, int)), "y"),
    (dict(reg=-1.0), "reg"),
    (dict(reg="fast"), "reg"),
    (dict(model="round 9"), "model"),
    (dict(fix="drop"), "fix"),
    (dict(val_fraction=1.5), "val_fraction"),
    (dict(pll_loss=["hinge"]), "pll_loss"),
    (dict(return_indices_ranked_by="entropy"), "return_indices_ranked_by"),
    (dict(X_test=np.zeros((3, 8))), "X_test and y_test"),
])
def test_bad_input_names_the_argument(planted, kwargs, name):
    X, yn = planted[:2]
    args = dict(X=X, y=yn, reg=1e-2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        find_label_issues(args.pop("X"), args.pop("y"), **args)


def _write_npz(path, planted):
    X, yn, _, X_test, y_test, _ = planted
    np.savez(path, X_train=X, y_train=yn, X_test=X_test, y_test=y_test,
             class_names=np.array(["cat", "dog", "emu", "owl"]))


def test_cli_writes_csv_summary_and_json(tmp_path, planted, capsys):
    data = tmp_path / "feat.npz"
    _write_npz(data, planted)
    out = tmp_path / "out"
    assert main(["label-issues", str(data), "-o", str(out), "--reg", "0.01", "--fix", "prune"]) == 0
    assert sorted(os.listdir(out)) == ["label_issues.csv", "label_issues.json", "summary.md"]  # no temp files
    info = json.loads((out / "label_issues.json").read_text())
    with open(out / "label_issues.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["rank", "index", "given_label", "suggested_label", "given_name", "suggested_name",
                             "score", "confidence"]
    assert len(rows) == info["n_issues"] > 0
    assert [int(r["rank"]) for r in rows] == list(range(1, len(rows) + 1))
    assert all(float(a["score"]) <= float(b["score"]) for a, b in zip(rows, rows[1:], strict=False))
    names = ["cat", "dog", "emu", "owl"]
    assert all(r["given_name"] == names[int(r["given_label"])] and r["given_label"] != r["suggested_label"]
               for r in rows)
    yn = planted[1]
    assert all(int(r["given_label"]) == yn[int(r["index"])] for r in rows)
    assert info["config"]["reg"] == 0.01 and info["config"]["fix"] == "prune" and info["test_acc"]["fix"] == "prune"
    assert info["command"].startswith("selfdistill label-issues")
    summary = (out / "summary.md").read_text()
    assert f"{info['n_issues']} of 240 training labels flagged" in summary and "test accuracy" in summary
    assert "label_issues.csv" in capsys.readouterr().out


def test_cli_bad_arguments_write_nothing(tmp_path, planted, capsys):
    data = tmp_path / "feat.npz"
    _write_npz(data, planted)
    out = tmp_path / "never"
    assert main(["label-issues", str(tmp_path / "missing.npz"), "-o", str(out)]) == 2
    assert main(["label-issues", str(data), "-o", str(out), "--model", "round 5"]) == 2
    assert main(["label-issues", str(data), "-o", str(out), "--reg", "-1"]) == 2
    err = capsys.readouterr().err
    assert "no such file" in err and "model must be one of" in err and "invalid reg" in err
    assert not out.exists()
