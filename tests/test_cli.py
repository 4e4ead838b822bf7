"""The `selfdistill` command and the main job behind it (tiny configs, fixed reg: fast)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from selfdistill.cli import main
from selfdistill.experiments import (
    REG_GRID,
    ConfigError,
    ExperimentConfig,
    main_job,
    noise_seed,
    run_config,
    run_main_job,
    runner,
)
from selfdistill.experiments.store import ResultStore
from selfdistill.report import CSV_COLUMNS, read_results_csv

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
N_MODELS = 3 + 3  # rounds 0..2 and three PLL students
TINY = []  # filled by the tiny_data fixture: the CLI arguments of a tiny run (quiet)


@pytest.fixture(scope="module", autouse=True)
def tiny_data(tmp_path_factory):
    """A small block-model dataset (4 classes, 30 + 30 points each, 40-d) as an .npz file."""
    from selfdistill.data import make_block_features, save_npz

    path = tmp_path_factory.mktemp("data") / "tiny_block.npz"
    save_npz(path, make_block_features(4, 30, 0.4, 0.1, n_test_per_class=30, dim=40, seed=0))
    TINY[:] = ["run", "--dataset", str(path), "--rates", "0", "0.5", "--seeds", "0", "--rounds", "2",
               "--noise", "symmetric", "--reg", "0.001", "--quiet"]
    return path


def tiny(out, *extra):
    return TINY + ["--output", str(out), *extra]


class Counter:
    """Wraps the task runner's distill and counts the calls (one per computed task)."""

    def __init__(self, monkeypatch, fail_on=None):
        self.calls = 0
        self.fail_on = fail_on
        self._real = runner.distill
        monkeypatch.setattr(runner, "distill", self)

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.fail_on is not None and self.calls == self.fail_on:
            raise KeyboardInterrupt
        return self._real(*args, **kwargs)


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("base") / "out"
    assert main(tiny(out)) == 0
    return out


@pytest.fixture
def run_copy(base_run, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(base_run, out)
    return out


def _stored_tasks(out):
    """{task_id: finished_at} of the run's results store."""
    with ResultStore(out / "results.db", create=False) as store:
        return {r["task_id"]: r["finished_at"] for r in store.records()}


# ------------------------------------------------------------------ outputs
def test_run_writes_every_file(base_run):
    rows = list(csv.DictReader(open(base_run / "results.csv", newline="")))
    assert len(rows) == 2 * 1 * N_MODELS
    assert tuple(rows[0])[:len(CSV_COLUMNS)] == CSV_COLUMNS
    assert {r["model"] for r in rows} == {"round 0", "round 1", "round 2", "pll-uniform", "pll-candidate", "pll-gce"}
    assert {(r["noise"], r["rate"], r["seed"]) for r in rows} == {("symmetric", "0.0", "0"), ("symmetric", "0.5", "0")}
    assert all(r["dataset"] == "tiny_block" and r["reg"] == "0.001" and r["reg_rule"] == "fixed" for r in rows)
    for r in rows:
        if r["model"] == "round 0":
            assert float(r["gain"]) == 0.0
    typed = read_results_csv(base_run / "results.csv")
    assert all(abs(r["gain"] - (r["test_acc"] - next(
        q["test_acc"] for q in typed if q["model"] == "round 0" and q["rate"] == r["rate"])) < 1e-12) for r in typed)

    cfg = json.loads((base_run / "config.json").read_text())
    assert cfg["config"]["rates"] == [0.0, 0.5]
    assert cfg["config"]["rounds"] == 2 and cfg["config"]["datasets"][0]["reg"] == 0.001
    assert cfg["config"]["noise"] == ["symmetric"] and cfg["config"]["seeds"] == [0]
    assert cfg["dataset"]["name"] == "tiny_block" and cfg["dataset"]["n_classes"] == 4
    assert "selfdistill_version" in cfg and "timestamp" in cfg
    assert [set(c["reg"].values()) for c in cfg["chosen_reg"]] == [{0.001}, {0.001}]  # {model: reg}
    assert cfg["command"].startswith("selfdistill run")

    summary = (base_run / "summary.md").read_text()
    assert "## noise: symmetric" in summary and "pll-gce" in summary
    for name in ("gain_vs_rate.png", "accuracy_vs_round.png"):
        data = (base_run / name).read_bytes()
        assert len(data) > 1000 and data.startswith(PNG_MAGIC)
    assert sorted(_stored_tasks(base_run)) == ["tiny_block/symmetric/0.0/0", "tiny_block/symmetric/0.5/0"]
    leftovers = [p for p in base_run.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


def test_quiet_prints_nothing_and_loud_prints_the_table(run_copy, capsys):
    capsys.readouterr()
    assert main(tiny(run_copy)) == 0
    assert capsys.readouterr() == ("", "")
    assert main(tiny(run_copy)[:-3] + ["--output", str(run_copy)]) == 0  # without --quiet
    out, err = capsys.readouterr()
    assert "| rate | round 0 | round 1 | round 2 |" in out
    assert "results.csv" in out and str(run_copy) in out
    assert "resuming" in err


# ------------------------------------------------------------------ resuming
def test_rerun_recomputes_nothing(run_copy, base_run, monkeypatch):
    before = _stored_tasks(run_copy)
    counter = Counter(monkeypatch)
    assert main(tiny(run_copy)) == 0
    assert counter.calls == 0
    assert _stored_tasks(run_copy) == before
    assert (run_copy / "results.csv").read_bytes() == (base_run / "results.csv").read_bytes()


def test_interrupted_run_recovers_every_row_once(run_copy, base_run, monkeypatch):
    (run_copy / "results.csv").unlink()
    with ResultStore(run_copy / "results.db", create=False) as store:  # as if killed before this task's commit
        store.conn.execute("DELETE FROM tasks WHERE task_id = 'tiny_block/symmetric/0.5/0'")
    counter = Counter(monkeypatch)
    assert main(tiny(run_copy)) == 0
    assert counter.calls == 1
    new = (run_copy / "results.csv").read_text()
    old = (base_run / "results.csv").read_text()
    seconds = CSV_COLUMNS.index("seconds")
    strip = lambda text: [line.split(",")[:seconds] + line.split(",")[seconds + 1:] for line in text.splitlines()]  # noqa: E731
    assert strip(new) == strip(old)  # identical except the 'seconds' column of the recomputed task
    rows = read_results_csv(run_copy / "results.csv")
    keys = [(r["noise"], r["rate"], r["seed"], r["model"]) for r in rows]
    assert len(keys) == len(set(keys)) == 2 * N_MODELS


def test_keyboard_interrupt_exits_130_then_resumes(tmp_path, monkeypatch, capsys, base_run):
    out = tmp_path / "out"
    Counter(monkeypatch, fail_on=2)
    assert main(tiny(out)) == 130
    err = capsys.readouterr().err
    assert "rerun the same command" in err.lower()
    assert list(_stored_tasks(out)) == ["tiny_block/symmetric/0.0/0"]
    assert not (out / "results.csv").exists()
    assert [p for p in out.rglob("*.tmp")] == []
    monkeypatch.undo()
    counter = Counter(monkeypatch)
    assert main(tiny(out)) == 0
    assert counter.calls == 1
    assert len(read_results_csv(out / "results.csv")) == 2 * N_MODELS


def test_other_settings_recompute_and_say_so(run_copy, monkeypatch, capsys):
    counter = Counter(monkeypatch)
    args = tiny(run_copy)
    args[args.index("--reg") + 1] = "0.01"
    args.remove("--quiet")
    assert main(args) == 0
    assert counter.calls == 2
    assert "other settings" in capsys.readouterr().err
    cfg = json.loads((run_copy / "config.json").read_text())
    assert cfg["config"]["datasets"][0]["reg"] == 0.01 and cfg["tasks"]["recomputed_stale"] == 2
    assert {r["reg"] for r in read_results_csv(run_copy / "results.csv")} == {0.01}


def test_growing_the_grid_reuses_finished_tasks(run_copy, monkeypatch):
    counter = Counter(monkeypatch)
    args = tiny(run_copy)
    args[args.index("--seeds") + 1: args.index("--seeds") + 2] = ["0", "1"]
    assert main(args) == 0
    assert counter.calls == 2  # the two seed-1 tasks only
    assert len(read_results_csv(run_copy / "results.csv")) == 2 * 2 * N_MODELS


# ------------------------------------------------------------------ bad arguments
@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--rates", "1.5"], ["--rates", "1.5"]),
        (["--rates", "abc"], ["--rates", "abc"]),
        (["--rounds", "-1"], ["--rounds", "-1"]),
        (["--seeds", "-3"], ["--seeds", "-3"]),
        (["--noise", "gaussian"], ["--noise", "gaussian"]),
        (["--reg", "-0.1"], ["--reg", "-0.1"]),
        (["--reg", "often"], ["--reg", "often"]),
        (["--pll-loss", "hinge"], ["--pll-loss", "hinge"]),
        (["--top-k", "1"], ["--top-k", "1"]),
        (["--top-k", "4"], ["--top-k", "4"]),  # K = 4 classes: top-k <= 3
        (["--dataset", "missing.npz"], ["--dataset", "missing.npz"]),
    ],
)
def test_bad_arguments_exit_2_naming_the_option(tmp_path, capsys, extra, expected):
    rc = main(TINY + ["--output", str(tmp_path / "out")] + extra)
    err = capsys.readouterr().err
    assert rc == 2
    assert "error:" in err and "Traceback" not in err
    for word in expected:
        assert word in err
    assert not (tmp_path / "out").exists()  # checked before anything is created (was: out/ and out/tasks/ left)


def test_output_that_is_a_file(tmp_path, capsys):
    f = tmp_path / "results.txt"
    f.write_text("not a folder")
    assert main(tiny(f)) == 2
    err = capsys.readouterr().err
    assert err == f"selfdistill: error: --output '{f}': is a file, expected a directory\n"
    assert f.read_text() == "not a folder"


def _output_error(err, path):
    """The one line of an unusable output path: ``selfdistill: error: --output 'PATH': reason``."""
    prefix = f"selfdistill: error: --output '{path}': "
    assert err.startswith(prefix) and err.count("\n") == 1 and "Traceback" not in err, err
    return err[len(prefix):].strip()


def test_output_under_a_file(tmp_path, capsys):
    f = tmp_path / "results.txt"
    f.write_text("x")
    assert main(tiny(f / "sub")) == 2
    assert "is a file" in _output_error(capsys.readouterr().err, f / "sub")


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
def test_output_that_cannot_be_created_names_output(capsys):
    # /proc refuses new folders, even to root; was: rc 1 and a bare "[Errno 2] No such file or directory"
    assert main(tiny("/proc/selfdistill-test-out")) == 2
    assert "cannot be created" in _output_error(capsys.readouterr().err, "/proc/selfdistill-test-out")


def _refuse_writes_in(monkeypatch, folder):
    """Make ``folder`` read-only, also for root (who ignores permission bits): mkdir / new files fail."""
    import errno

    folder = os.path.abspath(folder)
    real_mkdir, real_open = os.mkdir, os.open

    def inside(p):
        return os.path.abspath(os.fsdecode(p)).startswith(folder + os.sep)

    def mkdir(p, *a, **k):
        if inside(p):
            raise PermissionError(errno.EACCES, "Permission denied", os.fsdecode(p))
        return real_mkdir(p, *a, **k)

    def open_(p, flags, *a, **k):
        if inside(p) and flags & os.O_CREAT:
            raise PermissionError(errno.EACCES, "Permission denied", os.fsdecode(p))
        return real_open(p, flags, *a, **k)

    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(os, "open", open_)


@pytest.mark.parametrize("sub", ["new", None])
def test_output_in_a_read_only_folder(tmp_path, capsys, monkeypatch, sub):
    ro = tmp_path / "ro"
    ro.mkdir()
    _refuse_writes_in(monkeypatch, ro)
    out = ro / sub if sub else ro
    assert main(tiny(out)) == 2
    assert "Permission denied" in _output_error(capsys.readouterr().err, out)
    assert sorted(os.listdir(ro)) == []


def test_output_write_failure_mid_run_names_output(tmp_path, capsys, monkeypatch):
    import errno

    out = tmp_path / "out"

    def full(path, obj):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(main_job, "write_json", full)
    assert main(tiny(out)) == 2
    assert _output_error(capsys.readouterr().err, out) == "No space left on device"


def test_other_commands_name_their_output_path(tmp_path, capsys):
    f = tmp_path / "afile"
    f.write_text("x")
    theory = ["theory", "--classes", "3", "--per-class", "4", "--rounds", "1", "--no-train", "--no-figures", "-q"]
    assert main(theory + ["-o", str(f / "sub")]) == 2
    assert "is a file" in _output_error(capsys.readouterr().err, f / "sub")
    assert main(["report", str(f), "-o", str(f / "rep")]) == 2  # checked before the database is read
    assert "is a file" in _output_error(capsys.readouterr().err, f / "rep")
    png = tmp_path / "missing" / "c.png"
    assert main(["correlation", "block", "-o", str(png)]) == 2
    assert "does not exist" in _output_error(capsys.readouterr().err, png)
    npz = tmp_path / "missing" / "f.npz"
    assert main(["extract", "cifar10", "-o", str(npz)]) == 2
    assert "does not exist" in _output_error(capsys.readouterr().err, npz)
    cfg = Path(__file__).resolve().parents[1] / "configs" / "digits.toml"
    db = tmp_path / "missing" / "r.db"
    assert main(["sweep", str(cfg), "--db", str(db), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"selfdistill: error: --db '{db}': ") and "does not exist" in err, err
    assert not (tmp_path / "missing").exists()


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
def test_other_commands_output_under_proc(capsys):
    theory = ["theory", "--classes", "3", "--per-class", "4", "--rounds", "1", "--no-train", "--no-figures", "-q"]
    assert main(theory + ["-o", "/proc/selfdistill-x"]) == 2  # was: rc 1, a bare OS error
    assert "cannot be created" in _output_error(capsys.readouterr().err, "/proc/selfdistill-x")
    assert main(["correlation", "block", "-o", "/proc/selfdistill-x.png"]) == 2
    _output_error(capsys.readouterr().err, "/proc/selfdistill-x.png")


def test_library_errors_without_traceback(tmp_path, capsys, monkeypatch):
    def boom(*a, **k):
        raise ValueError("something precise went wrong")

    monkeypatch.setattr("selfdistill.experiments.run_main_job", boom)
    assert main(tiny(tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert err.strip() == "selfdistill: error: something precise went wrong"


def test_no_command_is_a_usage_error(capsys):
    assert main([]) == 2
    assert "required" in capsys.readouterr().err


# ------------------------------------------------------------------ help
def test_help_lists_subcommands(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "run" in out and "the main job" in out


def test_run_help_mentions_every_option(capsys):
    assert main(["run", "--help"]) == 0
    out = capsys.readouterr().out
    for opt in ("--dataset", "--noise", "--rates", "--rounds", "--seeds", "--reg", "--pll-loss", "--top-k",
                "--exact-noise", "--output", "--quiet", "--cluster-threshold", "--cluster-rule", "--jobs",
                "--backend", "--device"):
        assert opt in out
    for word in ("digits", "block", ".npz", "auto", "uniform", "candidate", "gce", "noisy",
                 "selfdistill-output", "resume"):
        assert word in out


def test_python_dash_m_works():
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    res = subprocess.run([sys.executable, "-m", "selfdistill", "--help"], capture_output=True, text=True, env=env,
                         timeout=60)
    assert res.returncode == 0
    assert "usage: selfdistill" in res.stdout and "run" in res.stdout


# ------------------------------------------------------------------ the job's library face
def test_run_config_defaults_and_validation():
    c = run_config()
    assert [d.features for d in c.datasets] == ["digits"] and c.datasets[0].reg == "auto"
    assert c.noise == ("symmetric", "class_cluster")
    assert c.rates == (0.0, 0.3, 0.5, 0.7) and c.rounds == 4 and c.seeds == (0, 1, 2)
    assert c.pll_losses == ("uniform", "candidate", "gce") and c.top_k == 2
    assert c == ExperimentConfig(datasets=c.datasets)  # run's defaults are the config's
    assert len(c.tasks()) == 24
    assert c.model_names()[-1] == "pll-gce" and c.model_names()[0] == "round 0"
    assert json.loads(json.dumps(c.to_dict()))["rates"] == [0.0, 0.3, 0.5, 0.7]
    for kwargs, param in [({"rates": (0.2, 1.5)}, "rates"), ({"rounds": -1}, "rounds"),
                          ({"noise": ("nope",)}, "noise"), ({"reg": 0.0}, "reg"), ({"top_k": 1}, "top_k"),
                          ({"seeds": (-1,)}, "seeds"), ({"seeds": (2**64,)}, "seeds"),
                          ({"pll_losses": ("x",)}, "pll_losses"), ({"cluster_rule": "x"}, "cluster_rule")]:
        with pytest.raises(ConfigError) as info:
            run_config(**kwargs)
        assert info.value.param == param and param in str(info.value)
    assert run_config(rates=(0.5, 0.0, 0.5)).rates == (0.0, 0.5)
    assert run_config("some dir/my feats.npz").datasets[0].name == "my_feats"


def test_noise_seed_is_a_fixed_function_of_the_task():
    assert noise_seed(0, "symmetric", 0.3) == noise_seed(0, "symmetric", 0.3)
    seeds = {noise_seed(s, k, r) for s in (0, 1) for k in ("symmetric", "class_cluster") for r in (0.3, 0.5)}
    assert len(seeds) == 8


def test_run_main_job_returns_rows_and_summary(tmp_path):
    cfg = run_config("block", noise=("symmetric",), rates=(0.5,), seeds=(1,), rounds=1, reg=1e-3,
                     pll_losses=("uniform",))
    rows, summary = run_main_job(cfg, tmp_path / "o", quiet=True)
    assert [r["model"] for r in rows] == ["round 0", "round 1", "pll-uniform"]
    assert rows == read_results_csv(tmp_path / "o" / "results.csv")
    assert summary == (tmp_path / "o" / "summary.md").read_text()


def test_config_json_holds_every_tasks_chosen_regs(tmp_path):
    out = tmp_path / "auto"
    args = [a for a in tiny(out) if a not in ("--reg", "0.001")] + ["--reg", "auto"]
    assert main(args) == 0
    meta = json.loads((out / "config.json").read_text())
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(meta["chosen_reg"]) == 2  # rates 0, 0.5 x seed 0
    grid = {f"{g:g}" for g in REG_GRID}
    for entry in meta["chosen_reg"]:
        assert set(entry["reg"]) == set(meta["models"]), entry
        assert all(isinstance(r, float) and r > 0 for r in entry["reg"].values()), entry  # was null
        assert {f"{r:g}" for r in entry["reg"].values()} <= grid  # a reg of the grid
        assert set(entry["scores"]) == set(meta["models"])  # each model's held-out score of every grid reg
        for scores in entry["scores"].values():
            assert {f"{float(g):g}" for g in scores} == grid
            assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in scores.values())
        for model, reg in entry["reg"].items():  # the chosen reg is one the scores were computed for
            assert f"{reg:g}" in {f"{float(g):g}" for g in entry["scores"][model]}
            row = [r for r in rows if r["model"] == model and float(r["rate"]) == entry["rate"]]
            assert float(row[0]["reg"]) == reg
    fixed = (json.loads((tmp_path / "fixed" / "config.json").read_text())
             if main(tiny(tmp_path / "fixed")) == 0 else None)
    assert all(set(e["reg"].values()) == {0.001} for e in fixed["chosen_reg"])


def test_rerun_removes_the_temporaries_a_killed_run_left(run_copy):
    stale = [run_copy / ".results.csv.k1ll9d.tmp", run_copy / ".config.json.x7.tmp"]
    for p in stale:
        p.write_text("half-written")
    (run_copy / ".notes.txt.keep.tmp").write_text("not ours")
    assert main(tiny(run_copy)) == 0
    assert not any(p.exists() for p in stale)
    assert (run_copy / ".notes.txt.keep.tmp").exists()
