"""Inputs a new user hit (issue 'What a new user hit', items 4 and 6): each gets a clear answer."""

import subprocess
import sys

import numpy as np
import pytest

from selfdistill.data import load_npz
from selfdistill.model_selection import reg_path, select_reg


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "selfdistill", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_select_reg_refuses_a_split_that_cannot_score():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(10, 4)), np.arange(10)  # 10 points of 10 classes
    with pytest.raises(ValueError, match="leaves 2 of its 2 points in classes with no point in the fit part"):
        select_reg(X, y)
    with pytest.raises(ValueError, match="give a fixed reg"):
        reg_path(X, y, rounds=0, pll=False)


def test_a_directory_is_not_a_file(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a directory, not a file"):
        load_npz(tmp_path)
    res = _cli("run", "--dataset", tmp_path, "-o", tmp_path / "out")
    assert res.returncode == 2 and "is a directory, not a file" in res.stderr


def test_report_finds_the_store_in_a_run_folder(tmp_path):
    out = tmp_path / "run"
    res = _cli("run", "--dataset", "block", "--noise", "symmetric", "--rates", "0.3", "--seeds", "0", "--rounds",
               "1", "--pll-loss", "none", "--reg", "1e-3", "-o", out, "--quiet")
    assert res.returncode == 0, res.stderr
    rep = _cli("report", out, "-o", tmp_path / "rep", "--quiet")
    assert rep.returncode == 0, rep.stderr
    assert (tmp_path / "rep" / "report.html").is_file()
    empty = tmp_path / "empty"
    empty.mkdir()
    rep = _cli("report", empty)
    assert rep.returncode == 2 and "is a folder without a results.db" in rep.stderr


def test_classifier_reg_auto_is_the_pipelines_rule():
    from selfdistill import SelfDistillationClassifier
    from selfdistill.model_selection import reg_path

    rng = np.random.default_rng(0)
    X = np.repeat(np.eye(4), 30, axis=0) + 0.4 * rng.normal(size=(120, 4))
    y = np.repeat(np.arange(4), 30)
    clf = SelfDistillationClassifier(reg="auto", rounds=1).fit(X, y)
    best, scores, _ = reg_path(X, y, rounds=1, pll=False)
    assert clf.reg_ == best["round 1"] and clf.reg_scores_ == scores["round 1"]
    assert clf.models_["round 1"].reg_ == clf.reg_ and clf.score(X, y) > 0.9
    with pytest.raises(ValueError, match="reg"):
        SelfDistillationClassifier(reg="best").fit(X, y)


def test_one_naming_scheme_for_pll_students():
    from selfdistill import distill

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    y = np.argmax(X[:, :3], axis=1)
    assert list(distill(X, y, reg=1e-2, rounds=0, pll_loss="uniform").models) == ["round 0", "pll-uniform"]
    assert list(distill(X, y, reg=1e-2, rounds=0, pll_loss=("uniform",)).models) == ["round 0", "pll-uniform"]
