"""Drivers sharing one results database (leases), and workers that do not outlive their driver."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from selfdistill.experiments.config import load_sweep_config
from selfdistill.experiments.store import ResultStore

SRC = str(Path(__file__).resolve().parents[1] / "src")

SITE = """
import os, time
_delay = os.environ.get("SD_TEST_TASK_DELAY")
_log = os.environ.get("SD_TEST_TASK_LOG")
if _delay:
    import selfdistill.experiments.sweep as _sw
    _orig = _sw.compute_task
    def _slow(task, *a, **k):
        time.sleep(float(_delay))
        out = _orig(task, *a, **k)
        if _log:
            with open(_log, "a") as fh:
                fh.write(f"{task.task_id} {os.getpid()}\\n")
        return out
    _sw.compute_task = _slow
_preload_delay = os.environ.get("SD_TEST_PRELOAD_DELAY")
if _preload_delay:  # a forkserver whose preload (the library's imports) takes this many seconds more
    import sys
    import multiprocessing.forkserver as _fs
    _main = _fs.main
    class _SlowImport:
        def find_spec(self, name, path=None, target=None):
            if name == "selfdistill.noise":
                time.sleep(float(_preload_delay))
            return None
    def _slow_main(*a, **k):
        sys.meta_path.insert(0, _SlowImport())
        return _main(*a, **k)
    _fs.main = _slow_main
"""

DRIVER = ("import sys; from selfdistill.experiments import run_sweep; "
          "run_sweep(sys.argv[1], sys.argv[2], jobs=int(sys.argv[3]), quiet=True, lease_seconds=float(sys.argv[4]))")


@pytest.fixture(scope="module")
def feats(tmp_path_factory):
    from selfdistill.data import make_block_features, save_npz

    path = tmp_path_factory.mktemp("feats") / "blk.npz"
    save_npz(path, make_block_features(4, 20, 0.4, 0.1, n_test_per_class=10, dim=20, seed=0))
    return path


def _config(tmp_path, feats, rates="[0.2, 0.4, 0.6]"):
    p = tmp_path / "s.toml"
    p.write_text(textwrap.dedent(f"""\
        [sweep]
        noise = ["symmetric"]
        rates = {rates}
        seeds = [0, 1]
        rounds = 1
        pll_losses = []

        [[datasets]]
        name = "blk"
        features = "{feats}"
        reg = 1e-2
        """))
    return p


def _driver(tmp_path, config, db, *, jobs=1, lease=30.0, delay=0.3, log=None, preload_delay=None):
    hook = tmp_path / "hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(SITE)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(hook), SRC, os.environ.get("PYTHONPATH", "")]),
               SD_TEST_TASK_DELAY=str(delay), SD_TEST_TASK_LOG=str(log or tmp_path / "log.txt"))
    if preload_delay is not None:  # the task hook would import the library before the forkserver's preload
        env["SD_TEST_PRELOAD_DELAY"] = str(preload_delay)
        del env["SD_TEST_TASK_DELAY"]
    return subprocess.Popen([sys.executable, "-c", DRIVER, str(config), str(db), str(jobs), str(lease)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _log(tmp_path):
    path = tmp_path / "log.txt"
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def _stored(db):
    if not db.exists():
        return []
    with ResultStore(db, create=False) as st:
        return [r["task_id"] for r in st.records()]


def _wait_for(pred, timeout=90.0):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_two_drivers_on_one_database_share_the_tasks(tmp_path, feats):
    config, db = _config(tmp_path, feats), tmp_path / "shared.db"
    procs = [_driver(tmp_path, config, db) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    every = sorted(t.task_id for t in load_sweep_config(config).tasks())
    assert sorted(_stored(db)) == every
    computed = [task for task, _ in _log(tmp_path)]
    assert sorted(computed) == every  # each task computed once, by one of the drivers
    assert len({pid for _, pid in _log(tmp_path)}) == 2  # and both drivers took a share
    with ResultStore(db, create=False) as st:
        assert st.conn.execute("SELECT COUNT(*) FROM claims").fetchone()[0] == 0  # no lease left behind


def test_a_task_whose_driver_died_is_taken_over_when_its_lease_runs_out(tmp_path, feats):
    config, db = _config(tmp_path, feats), tmp_path / "takeover.db"
    first = _driver(tmp_path, config, db, lease=2.0, delay=1.0)
    try:
        assert _wait_for(lambda: len(_stored(db)) >= 1 or first.poll() is not None)
        assert first.poll() is None, first.communicate()
        first.send_signal(signal.SIGKILL)  # it holds a lease on the task it was computing
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    with ResultStore(db) as st:
        held = st.conn.execute("SELECT task_id FROM claims").fetchall()
    assert len(held) == 1  # the dead driver's lease, not yet run out
    t0 = time.time()
    second = _driver(tmp_path, config, db, lease=2.0, delay=0.2)
    _, err = second.communicate(timeout=300)
    assert second.returncode == 0, err
    every = sorted(t.task_id for t in load_sweep_config(config).tasks())
    assert sorted(_stored(db)) == every
    assert sorted(task for task, _ in _log(tmp_path)) == every  # the held task was computed once, after all
    assert time.time() - t0 >= 1.0  # ... by the second driver, once the lease had run out


def test_workers_exit_when_the_driver_is_killed(tmp_path, feats):
    psutil = pytest.importorskip("psutil")
    config, db = _config(tmp_path, feats, rates="[0.1, 0.2, 0.3, 0.4, 0.5, 0.6]"), tmp_path / "orphans.db"
    driver = _driver(tmp_path, config, db, jobs=2, delay=3.0)
    try:
        def family():
            try:
                return psutil.Process(driver.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                return []

        # the forkserver, the resource tracker and the two workers (forked from the forkserver)
        assert _wait_for(lambda: len(family()) >= 4)
        kids = family()
        driver.send_signal(signal.SIGKILL)
        driver.wait(10)
    finally:
        if driver.poll() is None:
            driver.kill()
    gone, alive = psutil.wait_procs(kids, timeout=10)
    assert alive == [], [" ".join(p.cmdline()) for p in alive]


def _gone(proc) -> bool:
    """Exited (a zombie waiting for its new parent to reap it has exited too)."""
    import psutil

    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_driver_killed_while_its_forkserver_imports_the_library_leaves_no_process(tmp_path, feats):
    psutil = pytest.importorskip("psutil")
    config, db = _config(tmp_path, feats), tmp_path / "preload.db"
    # the forkserver's preload is held for 60 s inside the library's imports: the moment of the kill
    driver = _driver(tmp_path, config, db, jobs=2, preload_delay=60.0)
    try:
        def servers():
            try:
                kids = psutil.Process(driver.pid).children()
            except psutil.NoSuchProcess:
                return []
            return [k for k in kids if "forkserver" in " ".join(k.cmdline())]

        assert _wait_for(lambda: servers() != [] or driver.poll() is not None), "no forkserver started"
        assert driver.poll() is None, driver.communicate()
        time.sleep(1.0)  # well into the held import
        kids = psutil.Process(driver.pid).children(recursive=True)  # forkserver and resource tracker
        assert kids and not any(k.children() for k in kids if k in servers())  # no worker forked yet
        driver.send_signal(signal.SIGKILL)
        driver.wait(10)
    finally:
        if driver.poll() is None:
            driver.kill()
    try:  # gone within seconds, not after the 60 s of the held import
        assert _wait_for(lambda: all(_gone(k) for k in kids), timeout=5.0), [
            " ".join(k.cmdline()) for k in kids if not _gone(k)]
    finally:
        for k in kids:
            if not _gone(k):
                k.kill()
