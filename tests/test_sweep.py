"""Sweeps: tasks, resume, kill -9 safety (driver and worker), baselines, Dask, bad input."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from selfdistill.cli import main
from selfdistill.experiments import sweep as sweep_mod
from selfdistill.experiments.config import load_sweep_config
from selfdistill.experiments.store import ResultStore, read_rows
from selfdistill.experiments.sweep import compute_task, prepare_datasets, run_sweep

SRC = str(Path(__file__).resolve().parents[1] / "src")
TIMING_KEYS = {"seconds"}


@pytest.fixture(scope="module")
def feats(tmp_path_factory):
    from selfdistill.data import make_block_features, save_npz

    path = tmp_path_factory.mktemp("feats") / "blk.npz"
    save_npz(path, make_block_features(4, 25, 0.4, 0.1, n_test_per_class=25, dim=30, seed=0))
    return path


def cfg(tmp_path, feats, *, rates="[0.0, 0.4]", seeds="[0, 1]", extra="", dataset_extra="", name="s.toml",
        noise='["symmetric", "class_cluster"]'):
    text = f"""\
    [sweep]
    noise = {noise}
    rates = {rates}
    seeds = {seeds}
    rounds = 2
    pll_losses = ["uniform"]
    {extra}

    [[datasets]]
    name = "blk"
    features = "{feats}"
    reg = 1e-2
    {dataset_extra}
    """
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def stable(rows):
    """Rows without timing fields, sorted: what must not depend on where or when a task ran."""
    out = [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in rows]
    return sorted(out, key=lambda r: (r["dataset"], r["noise"], r["rate"], r["seed"], r["model"]))


#: solver floats that may differ in the last bits (SIMD summation order depends on memory alignment)
ROUNDOFF_KEYS = {"objective", "grad_norm"}


def assert_same_results(a, b):
    """Same tasks, models, accuracies, label metrics and iteration counts; solver floats to round-off."""
    a, b = stable(a), stable(b)
    assert len(a) == len(b)
    for ra, rb in zip(a, b, strict=False):
        assert ra.keys() == rb.keys()
        assert {k: v for k, v in ra.items() if k not in ROUNDOFF_KEYS} == {
            k: v for k, v in rb.items() if k not in ROUNDOFF_KEYS}
        if ra.get("objective") is not None:
            assert ra["objective"] == pytest.approx(rb["objective"], rel=1e-9)
        if ra.get("grad_norm") is not None:  # ~1e-10 at convergence: round-off itself
            assert ra["grad_norm"] == pytest.approx(rb["grad_norm"], abs=1e-7)


def test_sweep_runs_every_task_once_and_resumes(tmp_path, feats, monkeypatch):
    db = tmp_path / "r.db"
    res = run_sweep(cfg(tmp_path, feats), db, jobs=1, quiet=True)
    assert (res.n_tasks, res.n_computed, res.n_skipped) == (8, 8, 0)
    rows = read_rows(db)
    assert len(rows) == 8 * 4  # rounds 0..2 + one PLL student
    by_task = {}
    for r in rows:
        by_task.setdefault((r["noise"], r["rate"], r["seed"]), []).append(r)
        assert 0.0 <= r["test_acc"] <= 1.0
    for task_rows in by_task.values():
        assert [r["model"] for r in task_rows] == ["round 0", "round 1", "round 2", "pll-uniform"]
        base = task_rows[0]["test_acc"]
        assert all(r["gain"] == pytest.approx(r["test_acc"] - base) for r in task_rows)
    # noisy rates differ from clean; same seed + rate 0 are clean under both kinds
    assert {r["realised_rate"] for r in rows if r["rate"] == 0.0} == {0.0}
    assert all(0.2 < r["realised_rate"] < 0.6 for r in rows if r["rate"] == 0.4 and r["noise"] == "symmetric")

    calls = []
    monkeypatch.setattr(sweep_mod, "compute_task", lambda *a, **k: calls.append(a) or None)
    res2 = run_sweep(cfg(tmp_path, feats), db, jobs=1, quiet=True)
    assert (res2.n_computed, res2.n_skipped) == (0, 8) and calls == []
    monkeypatch.undo()

    # growing the grid computes only the new tasks; a changed setting recomputes (and replaces) all
    res3 = run_sweep(cfg(tmp_path, feats, seeds="[0, 1, 2]"), db, jobs=1, quiet=True)
    assert (res3.n_computed, res3.n_skipped) == (4, 8)
    res4 = run_sweep(cfg(tmp_path, feats, seeds="[0, 1, 2]", extra="top_k = 3"), db, jobs=1, quiet=True)
    assert (res4.n_computed, res4.n_replaced) == (12, 12)
    with ResultStore(db) as st:
        assert st.count() == 12


def test_reg_auto_never_looks_at_test_or_clean_labels(tmp_path, feats):
    p = cfg(tmp_path, feats, extra="reg_grid = [1e-1, 1e-2, 1e-3]", name="auto.toml")
    p.write_text(p.read_text().replace("reg = 1e-2", 'reg = "auto"'))
    config = load_sweep_config(p)
    data = prepare_datasets(config)["blk"]
    task = config.tasks()[-1]  # class_cluster, rate 0.4
    a = compute_task(task, config, data)
    rng = np.random.default_rng(1)
    scrambled = dict(data, y_test=rng.permutation(data["y_test"]))
    b = compute_task(task, config, scrambled)
    assert a["solver"]["chosen_reg"] == b["solver"]["chosen_reg"]
    assert set(a["solver"]["chosen_reg"].values()) <= {0.1, 0.01, 0.001}
    assert a["solver"]["reg_scores"] == b["solver"]["reg_scores"]
    # only test accuracy moved
    assert [m["train_acc"] for m in a["metrics"]] == [m["train_acc"] for m in b["metrics"]]


def test_baselines_same_labels_one_table(tmp_path, feats):
    pytest.importorskip("cleanlab")
    db = tmp_path / "b.db"
    p = cfg(tmp_path, feats, rates="[0.4]", seeds="[0]", noise='["symmetric"]',
            extra='baselines = ["tuned_teacher", "label_smoothing", "cleanlab", "born_again"]\n'
                  "reg_grid = [1e-1, 1e-2]\nlabel_smoothing = 0.2\ncleanlab_folds = 3")
    run_sweep(p, db, jobs=1, quiet=True)
    rows = {r["model"]: r for r in read_rows(db)}
    assert list(rows) == ["round 0", "round 1", "round 2", "pll-uniform", "teacher (tuned reg)",
                          "label smoothing 0.2", "cleanlab filter", "born-again ensemble"]
    for name in ("teacher (tuned reg)", "label smoothing 0.2", "cleanlab filter", "born-again ensemble"):
        assert rows[name]["kind"] == "baseline"
        assert rows[name]["gain"] == pytest.approx(rows[name]["test_acc"] - rows["round 0"]["test_acc"])
        assert 0.25 < rows[name]["test_acc"] <= 1.0
    assert rows["teacher (tuned reg)"]["reg"] in (0.1, 0.01)
    cl = rows["cleanlab filter"]
    assert 0 < cl["removed"] < 1 and cl["removed_precision"] > 0.4  # the flagged points are mostly noisy ones
    rec = ResultStore(db, create=False).records()[0]
    assert rec["solver"]["baselines"]["cleanlab"]["cleanlab_folds"] == 3
    assert set(rec["solver"]["baselines"]["tuned_teacher"]["reg_scores"]) == {"0.1", "0.01"}


def test_bad_input(tmp_path, feats, capsys):
    # a feature file whose class count differs from the config: names the key and the line
    p = cfg(tmp_path, feats, dataset_extra="n_classes = 5")
    with pytest.raises(Exception) as err:
        run_sweep(p, tmp_path / "x.db", jobs=1, quiet=True)
    line = p.read_text().splitlines().index("n_classes = 5") + 1
    assert f"{p}:{line}: [[datasets]] blk n_classes: the config says n_classes = 5" in str(err.value)
    assert not (tmp_path / "x.db").exists()
    # through the CLI: exit 2, one line, nothing written
    assert main(["sweep", str(p), "--db", str(tmp_path / "x.db"), "-q"]) == 2
    assert "has 4 classes" in capsys.readouterr().err
    missing = cfg(tmp_path, tmp_path / "nope.npz", name="m.toml")
    assert main(["sweep", str(missing), "--db", str(tmp_path / "x.db"), "-q"]) == 2
    assert "no such feature file" in capsys.readouterr().err
    # a database from another schema version
    db = tmp_path / "old.db"
    ResultStore(db).close()
    con = sqlite3.connect(db)
    con.execute("UPDATE meta SET value='0' WHERE key='schema_version'")
    con.commit()
    con.close()
    assert main(["sweep", str(cfg(tmp_path, feats)), "--db", str(db), "-q"]) == 2
    assert "schema version 0" in capsys.readouterr().err
    assert not (tmp_path / "x.db").exists()
    # a database in a folder that does not exist: said so, not "not a selfdistill results database"
    nodir = tmp_path / "nodir" / "x" / "s.db"
    assert main(["sweep", str(cfg(tmp_path, feats)), "--db", str(nodir), "-q"]) == 2
    err = capsys.readouterr().err
    assert f"--db '{nodir}': its folder '{nodir.parent}' does not exist" in err and "Traceback" not in err
    assert not (tmp_path / "nodir").exists()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_scheduler_fails_fast_and_writes_nothing(tmp_path, feats, capsys):
    pytest.importorskip("distributed")
    db = tmp_path / "d.db"
    t0 = time.perf_counter()
    rc = main(["sweep", str(cfg(tmp_path, feats)), "--db", str(db), "-q", "--scheduler",
               f"tcp://127.0.0.1:{_free_port()}"])
    assert time.perf_counter() - t0 < 10
    assert rc == 1
    err = capsys.readouterr().err
    assert "cannot reach the Dask scheduler" in err and "nothing was run or written" in err
    assert not db.exists()


def test_bad_scheduler_addresses_exit_at_once_without_a_traceback(tmp_path, feats):
    pytest.importorskip("distributed")
    config = cfg(tmp_path, feats)
    for address in (f"tcp://127.0.0.1:{_free_port()}", "not-an-address"):
        code = ("import sys, time; from selfdistill.cli import main; rc = main(sys.argv[1:]); "
                "print(repr(time.time())); sys.exit(rc)")
        res = subprocess.run([sys.executable, "-c", code, "sweep", str(config), "--db", str(tmp_path / "d.db"), "-q",
                              "--scheduler", address], capture_output=True, text=True, timeout=120,
                             env=dict(os.environ, PYTHONPATH=SRC))
        exit_delay = time.time() - float(res.stdout.strip())
        assert res.returncode == 1 and "cannot reach the Dask scheduler" in res.stderr
        assert "Traceback" not in res.stderr, res.stderr
        assert exit_delay < 3.0  # no Client left to finalise at exit (it was: a traceback and ~10 s)
    assert not (tmp_path / "d.db").exists()


def test_dask_local_cluster_gives_identical_results(tmp_path, feats, monkeypatch):
    distributed = pytest.importorskip("distributed")
    config = cfg(tmp_path, feats, extra='baselines = ["born_again", "label_smoothing"]')
    run_sweep(config, tmp_path / "local.db", jobs=1, quiet=True)
    scatters = []
    real_scatter = distributed.Client.scatter

    def counting_scatter(self, data, *a, **k):
        scatters.append((type(data).__name__, len(data), k.get("broadcast")))
        return real_scatter(self, data, *a, **k)

    monkeypatch.setattr(distributed.Client, "scatter", counting_scatter)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as lc:
        res = run_sweep(config, tmp_path / "dask.db", scheduler=lc.scheduler_address, quiet=True)
    assert res.n_computed == 8
    assert scatters == [("list", 1, True)]  # the dataset went to the workers once, not once per task
    local, dask = read_rows(tmp_path / "local.db"), read_rows(tmp_path / "dask.db")
    assert len(local) == len(dask) == 8 * 6
    assert_same_results(local, dask)
    workers = {rec["worker"] for rec in ResultStore(tmp_path / "dask.db", create=False).records()}
    assert all(not w.endswith(f":{os.getpid()}") for w in workers)  # really ran elsewhere


# ----------------------------------------------------------------------------------- kill -9
SITECUSTOMIZE = """
import os, time
_delay = os.environ.get("SD_TEST_TASK_DELAY")
if _delay:
    import selfdistill.experiments.sweep as _sw
    _orig = _sw.compute_task
    def _slow(*a, **k):
        time.sleep(float(_delay))
        return _orig(*a, **k)
    _sw.compute_task = _slow
"""


def _sweep_proc(tmp_path, config, db, jobs, delay):
    hook = tmp_path / "hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(hook), SRC, os.environ.get("PYTHONPATH", "")]),
               SD_TEST_TASK_DELAY=str(delay))
    return subprocess.Popen([sys.executable, "-m", "selfdistill", "sweep", str(config), "--db", str(db), "-j",
                             str(jobs), "-q"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _count(db):
    if not db.exists():
        return 0
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return con.execute("SELECT COUNT(*) FROM tasks").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        con.close()


def _wait_for(pred, timeout=60.0):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_kill_9_driver_then_resume_gives_every_task_once(tmp_path, feats):
    config = cfg(tmp_path, feats, rates="[0.0, 0.2, 0.4]")
    db = tmp_path / "k.db"
    proc = _sweep_proc(tmp_path, config, db, jobs=1, delay=0.4)
    try:
        assert _wait_for(lambda: _count(db) >= 2 or proc.poll() is not None), "the sweep wrote nothing"
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    n_before = _count(db)
    assert 2 <= n_before < 12
    with ResultStore(db) as st:
        before = {r["task_id"]: r["finished_at"] for r in st.records()}
    res = run_sweep(config, db, jobs=1, quiet=True)
    assert res.n_skipped == n_before and res.n_computed == 12 - n_before
    with ResultStore(db) as st:
        recs = st.records()
    assert sorted(r["task_id"] for r in recs) == sorted(t.task_id for t in load_sweep_config(config).tasks())
    assert all(before[r["task_id"]] == r["finished_at"] for r in recs if r["task_id"] in before)  # not redone
    # identical to an uninterrupted run
    run_sweep(config, tmp_path / "ref.db", jobs=1, quiet=True)
    assert_same_results(read_rows(db), read_rows(tmp_path / "ref.db"))


def test_kill_9_worker_is_replaced_and_the_sweep_completes(tmp_path, feats):
    psutil = pytest.importorskip("psutil")
    config = cfg(tmp_path, feats, rates="[0.0, 0.4]")
    db = tmp_path / "w.db"
    proc = _sweep_proc(tmp_path, config, db, jobs=2, delay=0.5)
    try:
        assert _wait_for(lambda: _count(db) >= 1 or proc.poll() is not None, timeout=90)
        # the pool's workers are forked by the forkserver, itself a child of the driver
        servers = [c for c in psutil.Process(proc.pid).children() if "forkserver" in " ".join(c.cmdline())]
        workers = [w for srv in servers for w in srv.children()]
        assert servers and workers, "no worker processes found"
        os.kill(workers[0].pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "a worker process died" in err
    with ResultStore(db) as st:
        ids = [r["task_id"] for r in st.records()]
    assert sorted(ids) == sorted(t.task_id for t in load_sweep_config(config).tasks())


def test_sweep_cli_and_report_end_to_end(tmp_path, feats, capsys):
    db = tmp_path / "e.db"
    config = cfg(tmp_path, feats, rates="[0.0, 0.4]", seeds="[0]")
    assert main(["sweep", str(config), "--db", str(db), "-j", "1"]) == 0
    out = capsys.readouterr().out
    assert "4 tasks: 4 computed, 0 already done" in out
    assert main(["sweep", str(config), "--db", str(db), "-j", "1"]) == 0
    assert "4 tasks: 0 computed, 4 already done" in capsys.readouterr().out
    assert main(["report", str(db), "-o", str(tmp_path / "rep"), "-q"]) == 0
    assert (tmp_path / "rep" / "report.html").stat().st_size > 10_000
    meta = ResultStore(db, create=False).get_meta("config")
    assert meta["datasets"][0]["name"] == "blk" and json.dumps(meta)


def test_no_bench_subcommand():
    assert "bench" not in main.__globals__["SUBCOMMANDS"]  # benchmarks run from a checkout: python -m benchmarks


def test_cleanlab_baseline_without_cleanlab_says_how_to_install(tmp_path, feats, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "cleanlab", None)
    monkeypatch.setitem(sys.modules, "cleanlab.filter", None)
    p = cfg(tmp_path, feats, extra='baselines = ["cleanlab"]')
    assert main(["sweep", str(p), "--db", str(tmp_path / "c.db"), "-q"]) == 2
    assert "pip install 'selfdistill[cleanlab]'" in capsys.readouterr().err
    assert not (tmp_path / "c.db").exists()


def test_a_scheduler_killed_mid_sweep_ends_with_one_message_and_no_traceback(tmp_path, feats):
    pytest.importorskip("distributed")
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(hook), SRC, os.environ.get("PYTHONPATH", "")]),
               SD_TEST_TASK_DELAY="1.0")
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--port", str(port),
                               "--dashboard-address", ":0"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)]
    try:
        assert _wait_for(lambda: _port_open(port), timeout=60)
        procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", f"tcp://127.0.0.1:{port}",
                                       "--nthreads", "1", "--nworkers", "1"], env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
        db = tmp_path / "d.db"
        driver = subprocess.Popen([sys.executable, "-m", "selfdistill", "sweep", str(cfg(tmp_path, feats)), "--db",
                                   str(db), "-q", "--scheduler", f"tcp://127.0.0.1:{port}"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs.append(driver)
        assert _wait_for(lambda: _count(db) >= 1 or driver.poll() is not None, timeout=120)
        assert driver.poll() is None, driver.communicate()
        procs[0].send_signal(signal.SIGKILL)
        _, err = driver.communicate(timeout=120)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert driver.returncode == 1, err
    assert "Traceback" not in err, err
    assert err.count("selfdistill: error:") == 1 and "finished tasks are saved; rerun to resume" in err, err


def _port_open(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_torch_backend_gives_the_numpy_results_and_is_recorded(tmp_path, feats, capsys):
    pytest.importorskip("torch")
    config = cfg(tmp_path, feats, rates="[0.0, 0.4]", seeds="[0]")
    run_sweep(config, tmp_path / "np.db", jobs=1, quiet=True)
    assert main(["sweep", str(config), "--db", str(tmp_path / "t.db"), "--backend", "torch", "--device", "cpu",
                 "-j", "1", "-q"]) == 0
    assert_same_results(read_rows(tmp_path / "t.db"), read_rows(tmp_path / "np.db"))
    with ResultStore(tmp_path / "t.db") as st:
        recs = st.records()
    assert {json.dumps(r["solver"]["execution"], sort_keys=True) for r in recs} == {
        '{"backend": "torch", "device": "cpu", "dtype": "float64"}'}
    # an execution setting, not a task setting: a rerun on NumPy finds every task done
    res = run_sweep(config, tmp_path / "t.db", jobs=1, quiet=True)
    assert res.n_computed == 0 and res.n_skipped == len(recs)
    # bad devices are refused by name before anything is written
    assert main(["sweep", str(config), "--db", str(tmp_path / "u.db"), "--device", "cuda", "-q"]) == 2
    assert "--device cuda" in capsys.readouterr().err and not (tmp_path / "u.db").exists()
    with pytest.raises(ValueError, match="backend must be one of"):
        run_sweep(config, tmp_path / "u.db", jobs=1, quiet=True, backend="jax")
    assert not (tmp_path / "u.db").exists()
    # selfdistill run takes the same options
    out = tmp_path / "run-torch"
    assert main(["run", "--dataset", str(feats), "--rates", "0.4", "--seeds", "0", "--rounds", "1", "--pll-loss",
                 "none", "--reg", "0.01", "--backend", "torch", "-o", str(out), "-q"]) == 0
    with ResultStore(out / "results.db") as st:
        assert {r["solver"]["execution"]["backend"] for r in st.records()} == {"torch"}
