"""Sweep configs: strict TOML validation (errors name the key and the line) and task expansion."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from selfdistill.experiments.config import (
    BASELINES,
    SweepConfigError,
    Task,
    load_sweep_config,
)

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

GOOD = """\
[sweep]
noise = ["symmetric", "class_cluster"]
rates = [0.5, 0.0, 0.5]
seeds = [0, 1]
rounds = 2
pll_losses = ["uniform", "gce"]
baselines = ["label_smoothing"]

[[datasets]]
name = "blk"
features = "block"
reg = 1e-3

[[datasets]]
name = "dig"
features = "digits"
reg = "auto"
n_classes = 10
"""


def write(tmp_path, text, name="c.toml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def test_good_config_expands_to_the_grid(tmp_path):
    cfg = load_sweep_config(write(tmp_path, GOOD))
    assert cfg.rates == (0.0, 0.5)  # sorted, repeats dropped
    tasks = cfg.tasks()
    assert len(tasks) == 2 * 2 * 2 * 2
    assert tasks[0] == Task("blk", "symmetric", 0.0, 0)
    assert tasks[-1] == Task("dig", "class_cluster", 0.5, 1)
    assert len({t.task_id for t in tasks}) == len(tasks)
    assert tasks[1].task_id == "blk/symmetric/0.0/1"
    assert cfg.dataset("dig").reg == "auto" and cfg.dataset("blk").reg == 1e-3
    assert cfg.model_names() == ["round 0", "round 1", "round 2", "pll-uniform", "pll-gce", "label smoothing 0.1"]
    # the per-dataset settings differ by reg only
    a, b = cfg.task_settings("blk"), cfg.task_settings("dig")
    assert a["reg"] == 1e-3 and b["reg"] == "auto" and {k: v for k, v in a.items() if k != "reg"} == {
        k: v for k, v in b.items() if k != "reg"}


def test_relative_feature_path_is_relative_to_the_config(tmp_path):
    (tmp_path / "sub").mkdir()
    p = write(tmp_path / "sub", GOOD.replace('features = "block"', 'features = "feats/x.npz"'))
    assert load_sweep_config(p).dataset("blk").features == str(tmp_path / "sub" / "feats" / "x.npz")


@pytest.mark.parametrize(
    "old, new, line, key, words",
    [
        ("rounds = 2", "roundz = 2", 5, "[sweep] roundz", "unknown key"),
        ("rounds = 2", 'rounds = "2"', 5, "[sweep] rounds", "integer"),
        ("rounds = 2", "rounds = 2.5", 5, "[sweep] rounds", "integer"),
        ("rates = [0.5, 0.0, 0.5]", "rates = []", 3, "[sweep] rates", "empty grid"),
        ("seeds = [0, 1]", "seeds = []", 4, "[sweep] seeds", "empty grid"),
        ('noise = ["symmetric", "class_cluster"]', "noise = []", 2, "[sweep] noise", "empty grid"),
        ('noise = ["symmetric", "class_cluster"]', 'noise = ["gaussian"]', 2, "[sweep] noise", "unknown noise kind"),
        ("rates = [0.5, 0.0, 0.5]", "rates = [0.5, 1.5]", 3, "[sweep] rates", "[0, 1]"),
        ("rates = [0.5, 0.0, 0.5]", "rates = [true]", 3, "[sweep] rates", "boolean"),
        ("seeds = [0, 1]", "seeds = [-1]", 4, "[sweep] seeds", "integers >= 0"),
        ("seeds = [0, 1]", 'seeds = "0"', 4, "[sweep] seeds", "an array"),
        ('baselines = ["label_smoothing"]', 'baselines = ["mixup"]', 7, "[sweep] baselines", "unknown baseline"),
        ('pll_losses = ["uniform", "gce"]', 'pll_losses = ["hinge"]', 6, "[sweep] pll_losses", "unknown PLL loss"),
        ("reg = 1e-3", "reg = -1.0", 12, "[[datasets]] #1 reg", "number > 0"),
        ("reg = 1e-3", 'reg = "tuned"', 12, "[[datasets]] #1 reg", '"auto"'),
        ("n_classes = 10", "n_classes = 1", 18, "[[datasets]] #2 n_classes", "integer >= 2"),
        ("n_classes = 10", "colour = 10", 18, "[[datasets]] #2 colour", "unknown key"),
        ('features = "block"', 'features = "imagenet"', 11, "[[datasets]] #1 features", "unknown dataset"),
        ('name = "dig"', 'name = "blk"', 15, "[[datasets]] #2 name", "duplicate"),
        ("rounds = 2", 'cluster_rule = "paper"', 5, "[sweep] cluster_rule", "expected one of ['library', 'authors']"),
    ],
)
def test_bad_values_name_the_key_and_the_line(tmp_path, old, new, line, key, words):
    assert old in GOOD
    p = write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(SweepConfigError) as err:
        load_sweep_config(p)
    e = err.value
    assert e.line == line, str(e)
    assert e.key == key
    assert str(e).startswith(f"{p}:{line}: {key}: ")
    assert words in str(e)


def test_multiline_arrays_and_comments_keep_line_numbers(tmp_path):
    text = GOOD.replace("rates = [0.5, 0.0, 0.5]", "rates = [  # [comment] with brackets\n  0.5,\n  0.0,\n]")
    text = text.replace("rounds = 2", "rounds = -3")
    with pytest.raises(SweepConfigError) as err:
        load_sweep_config(write(tmp_path, text))
    assert err.value.line == 8 and err.value.key == "[sweep] rounds"


def test_structure_errors(tmp_path):
    with pytest.raises(SweepConfigError, match=r"c.toml:1: \[extra\]: unknown table"):
        load_sweep_config(write(tmp_path, "[extra]\nx = 1\n" + GOOD))
    with pytest.raises(SweepConfigError, match=r"c.toml:1: seeds: unknown key at the top level"):
        load_sweep_config(write(tmp_path, "seeds = [1]\n" + GOOD))
    with pytest.raises(SweepConfigError, match=r"datasets: no \[\[datasets\]\] table"):
        load_sweep_config(write(tmp_path, GOOD.split("[[datasets]]")[0]))
    with pytest.raises(SweepConfigError, match=r"c.toml:14: \[\[datasets\]\] #2: missing key 'reg'"):
        load_sweep_config(write(tmp_path, GOOD.replace('reg = "auto"\n', "")))
    with pytest.raises(SweepConfigError, match=r"c.toml:3: invalid TOML"):
        load_sweep_config(write(tmp_path, "[sweep]\nrounds = 2\nrates = = [0.1]\n"))
    with pytest.raises(SweepConfigError, match="no such config file"):
        load_sweep_config(tmp_path / "missing.toml")


def test_shipped_configs_are_valid():
    digits = load_sweep_config(CONFIGS / "digits.toml")
    assert [d.features for d in digits.datasets] == ["digits"]
    assert len(digits.tasks()) >= 12
    paper = load_sweep_config(CONFIGS / "paper_figure2.toml")
    assert paper.noise == ("class_cluster",)
    assert paper.rates == (0.0, 0.1, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9)
    assert paper.seeds == (0, 1, 2) and paper.rounds == 4 and paper.pll_losses
    regs = {d.name: d.reg for d in paper.datasets}
    assert regs == {"cifar100": 5e-5, "caltech256": 5e-5, "food101": 5e-5,
                    "caltech101": 5e-4, "stanford_cars": 5e-4, "flowers102": 5e-4}
    assert {d.name: d.n_classes for d in paper.datasets}["cifar100"] == 100
    assert paper.cluster_rule == "authors" and paper.cluster_threshold == 0.8  # their get_confusable_class
    assert set(paper.baselines) <= set(BASELINES)


def test_cluster_rule_sets_the_default_cut(tmp_path):
    lib = load_sweep_config(write(tmp_path, GOOD))
    assert (lib.cluster_rule, lib.cluster_threshold) == ("library", 0.7)
    auth = load_sweep_config(write(tmp_path, GOOD.replace("rounds = 2", 'rounds = 2\ncluster_rule = "authors"')))
    assert (auth.cluster_rule, auth.cluster_threshold) == ("authors", 0.8)
    assert auth.task_settings("blk") != lib.task_settings("blk")  # a different rule is a different task
    both = GOOD.replace("rounds = 2", 'rounds = 2\ncluster_rule = "authors"\ncluster_threshold = 0.5')
    assert load_sweep_config(write(tmp_path, both)).cluster_threshold == 0.5


def test_sweep_clusters_follow_the_rule(tmp_path):
    import numpy as np

    from selfdistill.data import load_digits
    from selfdistill.experiments.sweep import prepare_datasets
    from selfdistill.noise import class_clusters

    text = GOOD.replace("rounds = 2", 'rounds = 2\ncluster_rule = "authors"').split("[[datasets]]")
    cfg = load_sweep_config(write(tmp_path, text[0] + "[[datasets]]" + text[2]))
    ds = load_digits()
    got = prepare_datasets(cfg)["dig"]["clusters"]
    np.testing.assert_array_equal(got, class_clusters(ds.X_train, ds.y_train, rule="authors"))
