"""Label averaging against the trained chain on the real-feature experiment's stored tasks.

    python -m benchmarks.real_features --db results/fashion_mnist_effnet.db \
        --json results/fashion_mnist_effnet_label_averaging.json [--dataset exact_fixed]

For every finished task of one ``[[datasets]]`` table of ``configs/fashion_mnist_effnet.toml`` (a
fixed reg: the exact protocol ``exact_fixed`` by default) it rebuilds the task's noisy training
labels (the sweep's own :func:`selfdistill.experiments.runner.task_labels`), computes
:func:`selfdistill.theory.label_averaging` (the closed form P_t - 1/K = A^(t+1) (Y - 1/K),
A = G (G + K n reg I)^-1, on the same training features) for rounds 0..R, and writes one row per
(task, round): the closed form's test accuracy beside the stored trained chain's. Needs the feature
file (``selfdistill extract``, see the config); the JSON it writes is what
``docs/results-real-features.md`` reads, so the page's numbers redraw without the features.
Resumable: tasks already in ``--json`` are kept.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "fashion_mnist_effnet.toml"


def _write(path, rows):
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(rows, fh, indent=1)
    os.replace(tmp, path)


def main(argv=None) -> int:
    from selfdistill.experiments import read_rows
    from selfdistill.experiments.config import Task, load_sweep_config
    from selfdistill.experiments.runner import prepare_datasets, task_labels
    from selfdistill.theory import label_averaging

    ap = argparse.ArgumentParser(prog="python -m benchmarks.real_features", description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(CONFIG), help="the sweep config (default: %(default)s)")
    ap.add_argument("--db", required=True, help="the sweep's results database")
    ap.add_argument("--dataset", default="exact_fixed", help="the [[datasets]] table (default: %(default)s)")
    ap.add_argument("--json", required=True, help="rows out (resumed when it exists)")
    args = ap.parse_args(argv)
    config = load_sweep_config(args.config)
    spec = config.dataset(args.dataset)
    if spec.reg == "auto":
        raise SystemExit(f"--dataset {args.dataset}: its reg is 'auto'; label averaging needs a fixed reg")
    stored = [r for r in read_rows(args.db) if r["dataset"] == args.dataset and r["model"].startswith("round ")]
    tasks = sorted({(r["noise"], r["rate"], r["seed"]) for r in stored})
    rows = json.load(open(args.json, encoding="utf-8")) if os.path.exists(args.json) else []
    done = {(r["noise"], r["rate"], r["seed"]) for r in rows}
    todo = [t for t in tasks if t not in done]
    print(f"{len(tasks)} stored tasks of {args.dataset}, {len(todo)} to compute", file=sys.stderr)
    if not todo:
        return 0
    data = prepare_datasets(config)[args.dataset]
    X, Xt, yt = data["X_train"], data["X_test"], data["y_test"]
    for i, (noise, rate, seed) in enumerate(todo, 1):
        t0 = time.perf_counter()
        y_noisy, _, _ = task_labels(Task(args.dataset, noise, rate, seed), config, data)
        la = label_averaging(y_noisy, float(spec.reg), config.rounds, X=X, X_test=Xt, n_classes=data["n_classes"])
        theory = np.mean(np.argmax(la.test_probs, axis=2) == yt, axis=1)
        trained = {r["model"]: r["test_acc"] for r in stored
                   if (r["noise"], r["rate"], r["seed"]) == (noise, rate, seed)}
        for t in range(config.rounds + 1):
            rows.append({"dataset": args.dataset, "noise": noise, "rate": rate, "seed": seed, "round": t,
                         "reg": float(spec.reg), "theory_test_acc": float(theory[t]),
                         "trained_test_acc": trained.get(f"round {t}")})
        _write(args.json, rows)
        print(f"[{i}/{len(todo)}] {noise} {rate:g} seed {seed}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
