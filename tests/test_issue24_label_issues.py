"""label-issues when the probe can memorise (out-of-fold scoring), with noise made for trying it,
and written all or nothing (issue: what a new user hit, items 1, 2 and 6)."""

import json
import os
import warnings

import numpy as np
import pytest

from selfdistill.cli.main import main
from selfdistill.label_issues import choose_scoring, inspect_labels, out_of_fold_probs
from selfdistill.probe import fit_linear_probe


@pytest.fixture(scope="module")
def wide():
    """d >= n: 150 points in 400 dimensions, 3 classes, 30% of the labels wrong."""
    rng = np.random.default_rng(0)
    n, d, K = 150, 400, 3
    y = np.repeat(np.arange(K), n // K)
    X = 3 * np.eye(K, d)[y] + rng.normal(size=(n, d))
    wrong = rng.random(n) < 0.3
    y_noisy = np.where(wrong, (y + rng.integers(1, K, n)) % K, y)
    return X, y, y_noisy


def test_in_sample_scoring_of_a_memorising_probe_flags_nothing_and_warns(wide):
    X, y, y_noisy = wide
    with pytest.warns(UserWarning, match=r"fits 100.0% of the given labels it was trained on.*score out of fold"):
        res = inspect_labels(X, y_noisy, reg=1e-4, model="round 0", cv=None, y_true=y)
    assert res.scoring["mode"] == "in-sample" and res.metrics["recall"] < 0.1


def test_auto_scores_out_of_fold_when_the_probe_memorises(wide):
    X, y, y_noisy = wide
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no memorisation warning: it was handled
        res = inspect_labels(X, y_noisy, reg=1e-4, model="round 0", y_true=y)
    assert res.scoring["mode"] == "out-of-fold" and res.scoring["folds"] == 5
    assert res.scoring["in_sample_agreement"] == 1.0 and res.scoring["held_out_acc"] < 0.9
    assert res.metrics["recall"] > 0.7 and res.metrics["precision"] > 0.4
    assert res.summary()["scoring"]["mode"] == "out-of-fold"


def test_auto_keeps_in_sample_scoring_when_the_probe_does_not_memorise():
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(3), 100)
    X = 2 * np.eye(3)[y] + 0.5 * rng.normal(size=(300, 3))
    y_noisy = np.where(rng.random(300) < 0.2, (y + 1) % 3, y)
    res = inspect_labels(X, y_noisy, reg=1e-2, model="round 0", y_true=y)
    assert res.scoring["mode"] == "in-sample" and res.metrics["recall"] > 0.8


def test_out_of_fold_outputs_are_those_of_probes_fitted_without_the_fold(wide):
    from selfdistill.label_issues import stratified_folds

    X, y, y_noisy = wide
    P, k = out_of_fold_probs(X, y_noisy, 3, 1e-2, "round 0", folds=3, seed=4)
    assert k == 3
    for val in stratified_folds(y_noisy, 3, 4):
        fit = np.setdiff1d(np.arange(y.shape[0]), val)
        probe = fit_linear_probe(X[fit], y_noisy[fit], 1e-2, n_classes=3)
        assert np.allclose(P[val], probe.predict_proba(X[val]), atol=1e-6)


def test_scoring_rule_and_bad_cv():
    assert choose_scoring(1.0, 0.6, 100) == "out-of-fold"
    assert choose_scoring(0.62, 0.6, 100) == "in-sample"
    X = np.random.default_rng(0).normal(size=(30, 2))
    y = np.repeat([0, 1, 2], 10)
    for bad in (1, 0, "folds", 2.5, True):
        with pytest.raises(ValueError, match="cv must be 'auto', None"):
            inspect_labels(X, y, reg=1e-2, cv=bad)


def test_cli_noise_reports_precision_recall_against_the_clean_labels(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["label-issues", "digits", "-o", str(out), "--noise", "symmetric", "--rate", "0.3",
                 "--reg", "1e-3", "--model", "round 0", "--no-html"]) == 0
    text = capsys.readouterr().out
    assert "corrupted first: symmetric noise at rate 0.3" in text and "precision" in text and "recall" in text
    meta = json.loads((out / "label_issues.json").read_text())
    assert meta["config"]["noise"]["kind"] == "symmetric" and 0.25 < meta["config"]["noise"]["realised_rate"] < 0.35
    assert meta["metrics"]["recall"] > 0.5 and "corrected_acc" in meta["metrics"]
    assert main(["label-issues", "digits", "-o", str(tmp_path / "x"), "--noise", "symmetric"]) == 2
    assert "--noise and --rate go together" in capsys.readouterr().err


def test_an_interrupted_label_issues_writes_nothing(tmp_path, monkeypatch):
    import sys

    cli = sys.modules["selfdistill.cli.main"]

    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep")

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_label_issues_page", interrupted)
    assert main(["label-issues", "digits", "-o", str(out), "--reg", "1e-3", "--model", "round 0", "-q"]) == 130
    assert sorted(os.listdir(out)) == ["mine.txt"]
    monkeypatch.undo()
    assert main(["label-issues", "digits", "-o", str(out), "--reg", "1e-3", "--model", "round 0", "-q"]) == 0
    assert {"label_issues.csv", "label_issues.json", "summary.md", "label_issues.html"} <= set(os.listdir(out))
    assert not [f for f in os.listdir(out) if f.startswith(".")]
