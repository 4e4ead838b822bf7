"""One pipeline: `selfdistill run` is a sweep of one dataset (same config, runner, store, numbers)."""

from __future__ import annotations

import textwrap

import pytest

from selfdistill.cli import main
from selfdistill.experiments import load_sweep_config, run_config, runner
from selfdistill.experiments.store import ResultStore, read_rows
from selfdistill.report import read_results_csv


@pytest.fixture(scope="module")
def feats(tmp_path_factory):
    from selfdistill.data import make_block_features, save_npz

    path = tmp_path_factory.mktemp("feats") / "blk.npz"
    save_npz(path, make_block_features(4, 25, 0.4, 0.1, n_test_per_class=25, dim=30, seed=0))
    return path


RUN_ARGS = ["--noise", "symmetric", "class_cluster", "--rates", "0", "0.4", "--seeds", "0", "1", "--rounds", "2",
            "--pll-loss", "uniform", "gce", "--reg", "auto", "--quiet"]

TOML = """\
[sweep]
noise = ["symmetric", "class_cluster"]
rates = [0.0, 0.4]
seeds = [0, 1]
rounds = 2
pll_losses = ["uniform", "gce"]

[[datasets]]
name = "blk"
features = "{feats}"
reg = "auto"
"""


def _stable(rows):
    return sorted(({k: v for k, v in r.items() if k != "seconds"} for r in rows),
                  key=lambda r: (r["noise"], r["rate"], r["seed"], r["model"]))


def test_run_and_the_equivalent_sweep_give_identical_numbers(tmp_path, feats):
    assert main(["run", "--dataset", str(feats), "-o", str(tmp_path / "run")] + RUN_ARGS) == 0
    toml = tmp_path / "same.toml"
    toml.write_text(TOML.format(feats=feats))
    assert main(["sweep", str(toml), "--db", str(tmp_path / "sweep.db"), "-j", "1", "-q"]) == 0

    run_rows, sweep_rows = read_rows(tmp_path / "run" / "results.db"), read_rows(tmp_path / "sweep.db")
    assert len(run_rows) == 2 * 2 * 2 * 5  # noise x rates x seeds x (rounds 0..2, two PLL students)
    assert _stable(run_rows) == _stable(sweep_rows)  # every model, every metric, every chosen reg
    csv_rows = read_results_csv(tmp_path / "run" / "results.csv")
    assert _stable(csv_rows) == _stable(run_rows)  # results.csv is written from the store
    # one config: the run's is the TOML's, so the stored settings hashes agree too
    a, b = run_config(str(feats), name="blk", **_run_kwargs()), load_sweep_config(toml)
    assert a.task_settings("blk") == b.task_settings("blk")
    with ResultStore(tmp_path / "run" / "results.db", create=False) as s1, ResultStore(tmp_path / "sweep.db") as s2:
        assert set(s1.done().values()) == set(s2.done().values())


def _run_kwargs():
    return dict(noise=["symmetric", "class_cluster"], rates=[0.0, 0.4], seeds=[0, 1], rounds=2,
                pll_losses=["uniform", "gce"], reg="auto")


def test_tasks_with_identical_labels_are_computed_once(tmp_path, feats, monkeypatch):
    calls = []
    real = runner.distill
    monkeypatch.setattr(runner, "distill", lambda *a, **k: calls.append(1) or real(*a, **k))
    cfg = run_config(str(feats), noise=["symmetric", "class_cluster"], rates=[0.0, 0.4], seeds=[3], rounds=1,
                     pll_losses=[], reg=1e-2)
    from selfdistill.experiments import run_sweep

    res = run_sweep(cfg, tmp_path / "r.db", jobs=1, quiet=True)
    assert res.n_computed == 4 and len(calls) == 3  # rate 0 is the clean labels under both kinds
    recs = {r["task_id"]: r for r in ResultStore(tmp_path / "r.db", create=False).records()}
    a, b = recs["blk/symmetric/0.0/3"], recs["blk/class_cluster/0.0/3"]
    assert [b["solver"].get("reused_from"), a["solver"].get("reused_from")].count(None) == 1
    assert a["metrics"] == b["metrics"] and a["config"]["noise_seed"] != b["config"]["noise_seed"]


def test_run_results_can_be_reported(tmp_path, feats):
    out = tmp_path / "run"
    assert main(["run", "--dataset", str(feats), "-o", str(out), "--rates", "0", "0.4", "--seeds", "0",
                 "--rounds", "1", "--reg", "1e-2", "--noise", "symmetric", "-q"]) == 0
    assert main(["report", str(out / "results.db"), "-o", str(tmp_path / "rep"), "-q"]) == 0
    assert (tmp_path / "rep" / "report.html").is_file()


def test_cli_errors_name_the_option_from_the_shared_constraints(tmp_path, capsys, feats):
    base = ["run", "--dataset", str(feats), "-o", str(tmp_path / "o"), "-q"]
    assert main(base + ["--seeds", str(2**64)]) == 2  # beyond SQLite's integers and scikit-learn's seeds
    err = capsys.readouterr().err
    assert "argument --seeds" in err and "integers >= 0 and <= 4294967295" in err
    assert main(base + ["--seeds", str(2**32)]) == 2
    toml = tmp_path / "bad.toml"
    toml.write_text(textwrap.dedent(TOML.format(feats=feats)).replace("seeds = [0, 1]", f"seeds = [0, {2**32}]"))
    with pytest.raises(ValueError, match=r"bad.toml:4: \[sweep\] seeds: expected integers >= 0"):
        load_sweep_config(toml)
    assert not (tmp_path / "o").exists()


def test_absurd_grids_are_refused_up_front_with_the_estimate(tmp_path, capsys, feats):
    from selfdistill.experiments.runner import MAX_FITS, check_work

    out = tmp_path / "o"
    assert main(["run", "--dataset", str(feats), "--rounds", "1000000000", "-o", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert "probe fits" in err and "--allow-large" in err and "Traceback" not in err
    assert not out.exists()
    toml = tmp_path / "huge.toml"
    seeds = ", ".join(str(s) for s in range(20_000))
    toml.write_text(TOML.format(feats=feats).replace("seeds = [0, 1]", f"seeds = [{seeds}]"))
    assert main(["sweep", str(toml), "--db", str(tmp_path / "h.db"), "-q"]) == 2
    assert "80,000 tasks" in capsys.readouterr().err and not (tmp_path / "h.db").exists()
    cfg = load_sweep_config(toml)
    assert check_work(cfg, allow_large=True) > MAX_FITS  # the flag lets it through
    assert check_work(run_config()) == 24 * 8 * 14  # the default run: 8 models x (7 grid chains + refits)
