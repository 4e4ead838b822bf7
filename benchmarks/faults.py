"""Fault injection: ``python -m benchmarks.faults [--trials N] [--seed S]``.

Kills ``selfdistill run`` and ``selfdistill sweep`` with SIGKILL at random moments, reruns the same
command to the end, and prints a table:

* results equal to an uninterrupted run (every stored task and model: the same accuracies, label
  metrics, chosen regs and iteration counts; solver floats within 1e-9 relative);
* files left over in the output folder (temporary ``*.tmp`` files, anything not written by a
  clean run);
* processes that outlive their driver (descendants of a killed driver still running 3 s later;
  a zombie has exited).

Targets, drawn at random per trial: the driver of ``run`` (in-process tasks), the driver of
``sweep -j 2``, one of ``sweep -j 2``'s worker processes, and two ``sweep`` drivers sharing one
database of which one is killed. Kill moments are uniform in [0.3 s, the clean run's time].
Needs psutil (a dependency of the ``sweep`` extra's dask.distributed).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = str(ROOT / "src")
TARGETS = ("run driver", "sweep driver", "sweep worker", "shared sweep driver")
SKIP_KEYS = {"seconds"}
FLOAT_KEYS = {"objective", "grad_norm"}


def _env():
    return dict(os.environ, PYTHONPATH=os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]))


def _data(folder: Path) -> Path:
    sys.path.insert(0, SRC)
    from selfdistill.data import make_block_features, save_npz

    path = folder / "blk.npz"
    save_npz(path, make_block_features(4, 30, 0.4, 0.1, n_test_per_class=15, dim=24, seed=0))
    return path


def _config(folder: Path, feats: Path) -> Path:
    p = folder / "faults.toml"
    p.write_text(textwrap.dedent(f"""\
        [sweep]
        noise = ["symmetric", "class_cluster"]
        rates = [0.0, 0.2, 0.4, 0.6]
        seeds = [0, 1]
        rounds = 2
        pll_losses = ["uniform"]

        [[datasets]]
        name = "blk"
        features = "{feats}"
        reg = 1e-2
        """))
    return p


def _command(target, feats, config, out):
    base = [sys.executable, "-m", "selfdistill"]
    if target == "run driver":
        return base + ["run", "--dataset", str(feats), "--noise", "symmetric", "class_cluster", "--rates", "0", "0.2",
                       "0.4", "0.6", "--seeds", "0", "1", "--rounds", "2", "--pll-loss", "uniform", "--reg", "0.01",
                       "-o", str(out), "-q"]
    return base + ["sweep", str(config), "--db", str(out / "results.db"), "-j", "2", "-q"]


def _rows(db: Path):
    sys.path.insert(0, SRC)
    from selfdistill.experiments.store import read_rows

    rows = [{k: v for k, v in r.items() if k not in SKIP_KEYS} for r in read_rows(db)]
    return sorted(rows, key=lambda r: (r["noise"], r["rate"], r["seed"], r["model"]))


def _same(a, b) -> bool:
    if len(a) != len(b):
        return False
    for ra, rb in zip(a, b, strict=True):
        if {k: v for k, v in ra.items() if k not in FLOAT_KEYS} != {k: v for k, v in rb.items() if k not in FLOAT_KEYS}:
            return False
        for k in FLOAT_KEYS & ra.keys():
            x, y = ra[k], rb[k]
            if (x is None) != (y is None) or (x is not None and abs(x - y) > 1e-9 * max(1.0, abs(x))):
                return False
    return True


def _descendants(psutil, pid):
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _survivors(psutil, procs, timeout):
    """Those of ``procs`` still running after ``timeout`` seconds. A zombie has exited: it only
    waits for its new parent (the driver is dead) to collect its exit status."""
    def running(p):
        try:
            return p.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    t0 = time.time()
    while (alive := [p for p in procs if running(p)]) and time.time() - t0 < timeout:
        time.sleep(0.05)
    return alive


def _short(proc) -> str:
    try:
        cmd = " ".join(proc.cmdline())
    except Exception:  # noqa: BLE001 - gone or unreadable
        return f"pid {proc.pid}"
    return f"pid {proc.pid}: " + ("resource_tracker" if "resource_tracker" in cmd else
                                  "forkserver/worker" if "forkserver" in cmd else cmd[:60])


def _trial(psutil, rng, target, feats, config, out, clean_seconds):
    """Start, kill at a random moment, count survivors, rerun to the end; returns (orphans, rc)."""
    cmd = _command(target, feats, config, out)
    procs = [subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    if target == "shared sweep driver":
        procs.append(subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    time.sleep(rng.uniform(0.3, max(0.4, clean_seconds)))
    victim, orphans = procs[0], 0
    if target == "sweep worker":
        workers = [p for p in _descendants(psutil, victim.pid) if p.children() == [] and "resource_tracker"
                   not in " ".join(p.cmdline())]
        if workers:
            os.kill(rng.choice(workers).pid, signal.SIGKILL)
    else:
        family = _descendants(psutil, victim.pid)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        alive = _survivors(psutil, family, 3.0)
        orphans = len(alive)
        if alive:
            names = [_short(p) for p in alive]
            still = _survivors(psutil, alive, 30.0)
            print(f"  outlived the driver by 3 s: {names}; {len(still)} still alive 30 s later", file=sys.stderr)
            for p in still:
                p.kill()
    for p in procs:
        p.wait()
    rc = subprocess.run(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE).returncode
    return orphans, rc


def _leftovers(out: Path, clean_names) -> list:
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and p.name not in clean_names)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.faults", description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=12, help="kill trials (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the targets and kill moments")
    args = ap.parse_args(argv)
    import psutil

    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="selfdistill-faults-") as tmp:
        tmp = Path(tmp)
        feats = _data(tmp)
        config = _config(tmp, feats)
        reference, clean_names, seconds = {}, {}, {}
        for target in ("run driver", "sweep driver"):
            out = tmp / f"clean-{target.split()[0]}"
            out.mkdir()
            t0 = time.perf_counter()
            subprocess.run(_command(target, feats, config, out), env=_env(), check=True)
            seconds[target] = time.perf_counter() - t0
            reference[target] = _rows(out / "results.db")
            clean_names[target] = {p.name for p in out.rglob("*") if p.is_file()} | {"results.db-journal"}
        table = {t: [0, 0, 0, 0, 0] for t in TARGETS}  # trials, equal, leftovers, orphans, failed reruns
        for i in range(args.trials):
            target = rng.choice(TARGETS)
            kind = "run driver" if target == "run driver" else "sweep driver"
            out = tmp / f"trial{i}"
            out.mkdir()
            orphans, rc = _trial(psutil, rng, target, feats, config, out, seconds[kind])
            row = table[target]
            row[0] += 1
            row[1] += rc == 0 and _same(_rows(out / "results.db"), reference[kind])
            row[2] += len(_leftovers(out, clean_names[kind]))
            row[3] += orphans
            row[4] += rc != 0
            print(f"trial {i + 1}/{args.trials}: {target}: rerun rc {rc}, orphans {orphans}", file=sys.stderr)
    print("| target | trials | results equal to an uninterrupted run | files left over | processes outliving "
          "their driver | failed reruns |")
    print("|---|---:|---:|---:|---:|---:|")
    for target, (n, eq, left, orph, failed) in table.items():
        print(f"| {target} | {n} | {eq} | {left} | {orph} | {failed} |")
    total = [sum(col) for col in zip(*table.values(), strict=True)]
    print(f"| all | {total[0]} | {total[1]} | {total[2]} | {total[3]} | {total[4]} |")
    return 0 if total[1] == total[0] and total[2] == total[3] == total[4] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
