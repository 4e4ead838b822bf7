"""A results store is bound to its config: `run` refuses another config's folder; `report` draws sweep configs apart."""

from __future__ import annotations

import textwrap

import pytest

from selfdistill.cli import main
from selfdistill.experiments import run_config, run_main_job, runner
from selfdistill.experiments.store import ResultStore, StoreConfigError
from selfdistill.report import read_results_csv
from selfdistill.report.sweep_report import config_notice, label_configs


@pytest.fixture(scope="module")
def feats(tmp_path_factory):
    """A small block-model dataset (4 classes, 20 + 20 points each, 30-d) as an .npz file."""
    from selfdistill.data import make_block_features, save_npz

    path = tmp_path_factory.mktemp("feats") / "blk.npz"
    save_npz(path, make_block_features(4, 20, 0.4, 0.1, n_test_per_class=20, dim=30, seed=0))
    return path


def run_args(feats, out, rates, rounds):
    return ["run", "--dataset", str(feats), "--noise", "symmetric", "--rates", *rates, "--seeds", "0",
            "--rounds", rounds, "--pll-loss", "none", "--reg", "0.01", "-o", str(out), "-q"]


def snapshot(folder):
    """{name: bytes} of every file in ``folder``."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


# ------------------------------------------------------------------ run: one config per folder
def test_run_with_another_config_into_the_same_folder_is_refused_and_changes_nothing(tmp_path, feats, capsys):
    out = tmp_path / "same"
    assert main(run_args(feats, out, ["0.3"], "1")) == 0
    before = snapshot(out)
    capsys.readouterr()
    assert main(run_args(feats, out, ["0.5"], "2")) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"selfdistill: error: --output '{out}': holds results of another config") and \
        err.count("\n") == 1 and "Traceback" not in err, err
    assert "rates: [0.3] -> [0.5]" in err and "rounds: 1 -> 2" in err  # what differs, stored -> new
    assert "choose another output folder (-o DIR)" in err and f"delete '{out}'" in err  # how to start a new one
    assert snapshot(out) == before  # results.csv, results.db and the rest unchanged
    with ResultStore(out / "results.db", create=False) as store:
        assert list(store.done()) == ["blk/symmetric/0.3/0"]


def test_the_same_config_twice_resumes(tmp_path, feats, monkeypatch, capsys):
    out = tmp_path / "same"
    assert main(run_args(feats, out, ["0.3"], "1")) == 0
    csv_before = (out / "results.csv").read_bytes()
    calls = []
    real = runner.distill
    monkeypatch.setattr(runner, "distill", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert main(run_args(feats, out, ["0.3"], "1")) == 0
    assert calls == [] and (out / "results.csv").read_bytes() == csv_before
    assert "error" not in capsys.readouterr().err


def test_the_library_raises_naming_the_differences(tmp_path, feats):
    cfg = run_config(str(feats), noise=["symmetric"], rates=[0.3], seeds=[0], rounds=1, pll_losses=[], reg=0.01)
    assert run_main_job(cfg, tmp_path, quiet=True).n_computed == 1
    other = run_config(str(feats), noise=["symmetric"], rates=[0.5], seeds=[0], rounds=1, pll_losses=[], reg=0.001)
    with pytest.raises(StoreConfigError) as info:
        run_main_job(other, tmp_path, quiet=True)
    assert info.value.differences == {"rates": ["[0.3]", "[0.5]"], "reg": ["0.01", "0.001"]}
    assert str(info.value).startswith(f"output_dir '{tmp_path}': holds results of another config")
    # the same settings over a grown grid still reuse the stored task (one new task computed)
    grown = run_config(str(feats), noise=["symmetric"], rates=[0.3, 0.5], seeds=[0], rounds=1, pll_losses=[],
                       reg=0.01)
    assert run_main_job(grown, tmp_path, quiet=True).n_computed == 1


# ------------------------------------------------------------------ sweep + report: configs drawn apart
SWEEP = """\
[sweep]
noise = ["symmetric"]
rates = {rates}
seeds = [0]
rounds = {rounds}
pll_losses = []

[[datasets]]
name = "blk"
features = "{feats}"
reg = 1e-2
"""


def sweep(tmp_path, feats, db, rates, rounds):
    toml = tmp_path / f"r{rounds}.toml"
    toml.write_text(textwrap.dedent(SWEEP.format(rates=rates, rounds=rounds, feats=feats)))
    assert main(["sweep", str(toml), "--db", str(db), "-j", "1", "-q"]) == 0


def test_a_sweep_store_of_two_configs_is_reported_apart(tmp_path, feats, capsys):
    db = tmp_path / "grid.db"
    sweep(tmp_path, feats, db, "[0.3]", 1)
    sweep(tmp_path, feats, db, "[0.5]", 2)  # a sweep may add tasks of another config
    with ResultStore(db, create=False) as store:
        configs, latest = store.get_meta("configs"), store.get_meta("config")
    assert [c["rounds"] for c in configs] == [1, 2] and latest["rounds"] == 2  # every config that wrote here
    capsys.readouterr()
    assert main(["report", str(db), "-o", str(tmp_path / "rep")]) == 0
    err = capsys.readouterr().err
    assert "selfdistill: note: these results come from more than one config" in err
    assert "blk: 2 configs, differing in rounds" in err, err
    md = (tmp_path / "rep" / "results.md").read_text()
    assert "**Note:**" in md
    assert "### blk [rounds=1] — noise: symmetric\n\n| rate | round 0 | round 1 |\n" in md
    assert "### blk [rounds=2] — noise: symmetric\n\n| rate | round 0 | round 1 | round 2 |\n" in md
    assert "–" not in md  # no empty cell: no table mixes the two configs
    rows = read_results_csv(tmp_path / "rep" / "results.csv")
    assert {(r["dataset"], r["rate"], r["rounds"]) for r in rows} == {("blk [rounds=1]", 0.3, 1),
                                                                       ("blk [rounds=2]", 0.5, 2)}
    assert len({r["config_hash"] for r in rows}) == 2


def test_one_config_is_reported_as_before(tmp_path, feats, capsys):
    db = tmp_path / "one.db"
    sweep(tmp_path, feats, db, "[0.3]", 1)
    sweep(tmp_path, feats, db, "[0.3, 0.5]", 1)  # a grown grid: the same settings, one config hash
    capsys.readouterr()
    assert main(["report", str(db), "-o", str(tmp_path / "rep")]) == 0
    assert "note" not in capsys.readouterr().err
    md = (tmp_path / "rep" / "results.md").read_text()
    assert "### blk — noise: symmetric" in md and "Note" not in md


def test_labels_use_the_stored_settings():
    rows = [{"dataset": "d", "config_hash": h, "rounds": 1, "noise": "symmetric", "rate": 0.3, "seed": 0,
             "model": "round 0", "test_acc": 0.5} for h in ("h1", "h2")]
    settings = {"h1": {"rounds": 1, "reg": 0.01, "top_k": 2}, "h2": {"rounds": 1, "reg": 0.001, "top_k": 2}}
    assert [r["dataset"] for r in label_configs(rows, settings)] == ["d [reg=0.01]", "d [reg=0.001]"]
    assert "d: 2 configs, differing in reg" in config_notice(rows, settings)
    # rows alone cannot tell them apart (same rounds): the hash labels them
    assert [r["dataset"] for r in label_configs(rows)] == ["d [config h1]", "d [config h2]"]
    assert config_notice(rows[:1]) is None and label_configs(rows[:1]) == rows[:1]
