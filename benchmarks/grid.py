"""The paper's grid for one dataset under both protocols: a sample of its tasks timed, the rest projected.

    python -m benchmarks.grid                         # CIFAR-100 size (50,000 x 512, 100 classes): an hour+
    python -m benchmarks.grid --case mid              # 10,000 x 256, 20 classes: minutes
    python -m benchmarks.grid --quick                 # seconds (the CI smoke test)
    python -m benchmarks.grid --rates 0 0.5 0.9 --auto-rates 0.5 --seeds 0 --json grid.json

The grid is ``configs/paper_figure2.toml``'s ``[sweep]`` table (class_cluster noise by the authors'
rule at rates 0, 0.1, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9; seeds 0, 1, 2; teacher + 4 SD rounds + the
uniform and gce PLL students) on one synthetic feature file of the case's size
(``benchmarks/data.py``: non-negative features with superclasses), under both protocols: the
paper's (one fixed reg, the case's: 5e-5 at CIFAR-100 size, the authors' weight decay there) and
the honest one (``reg = "auto"``, the config's 7-value grid). Each sampled task is one
:func:`selfdistill.experiments.compute_task` call (the sweep's unit of work, all BLAS threads),
timed one after the other in this process.

Projection (printed as such, not measured):

* **the whole grid** (8 rates x 3 seeds x 2 protocols): per protocol and rate, the mean seconds of
  the sampled seeds at that rate, or linear interpolation between the nearest sampled rates
  (the nearest one outside them), times the grid's 3 seeds;
* **the paper's six datasets** (ResNet-34 features, 512-d; training sizes of their splits): the
  grid's seconds x (seconds of one evaluation, i.e. the two n x d x K products and the softmax, at
  the dataset's n x 512 x K) / (the same at the case's size). That assumes each task needs as many
  evaluations as on the case's data; conditioning differs between datasets (and the real
  low-noise tasks were the expensive ones on real features), so it is a first-order projection.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

CASES = {
    "quick": dict(n=600, d=32, K=10, reg=1e-3),
    "mid": dict(n=10_000, d=256, K=20, reg=5e-5),
    "cifar": dict(n=50_000, d=512, K=100, reg=5e-5),
}
# (training points, classes) of the paper's six datasets as selfdistill extract splits them
PAPER_SIZES = {
    "cifar100": (50_000, 100),
    "caltech101": (6_941, 101),      # 80% of 8,677 images
    "caltech256": (23_824, 256),     # 80% of 29,780 images (257.clutter dropped)
    "food101": (75_750, 101),
    "stanford_cars": (8_144, 196),
    "flowers102": (6_149, 102),      # trained on the "test" split, as the authors did
}
PAPER_D = 512
GOAL_HOURS = 1.0


def _grid_settings(root):
    """The [sweep] table of configs/paper_figure2.toml (the paper's grid)."""
    import tomllib

    with open(os.path.join(root, "configs", "paper_figure2.toml"), "rb") as fh:
        return tomllib.load(fh)["sweep"]


def _config(sweep, features, reg, K, rates, seeds):
    """The grid's sweep settings with the sampled rates and seeds, one dataset entry per protocol."""
    from selfdistill.experiments.config import parse_sweep_config

    table = {**sweep, "name": "grid_benchmark", "rates": list(rates), "seeds": list(seeds)}
    datasets = [{"name": name, "features": features, "reg": r, "n_classes": K}
                for name, r in (("fixed", reg), ("auto", "auto"))]
    return parse_sweep_config({"sweep": table, "datasets": datasets})


def _features(folder, spec, seed=0):
    from .data import make_features

    n_test = max(spec["n"] // 5, 2 * spec["K"])
    X, y = make_features(spec["n"] + n_test, spec["d"], spec["K"], seed=seed)
    path = os.path.join(folder, "features.npz")
    np.savez(path, X_train=X[: spec["n"]], y_train=y[: spec["n"]], X_test=X[spec["n"]:], y_test=y[spec["n"]:])
    return path


def seconds_per_evaluation(n, d, K, *, repeats=3, seed=0):
    """Seconds of one objective-and-gradient evaluation's work at n x d x K (float64).

    Z = X W^T (n x K), the row softmax, and (X^T G)^T (K x d): what every evaluation and Hessian
    product of the solver costs (the matrix products are ~3/4 of a fit's time). Best of ``repeats``.
    """
    rng = np.random.default_rng(seed)
    X = np.abs(rng.standard_normal((n, d)))
    W = rng.standard_normal((K, d)) * 1e-2
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        Z = X @ W.T
        Z -= Z.max(axis=1, keepdims=True)
        np.exp(Z, out=Z)
        Z /= Z.sum(axis=1, keepdims=True)
        _ = (X.T @ Z).T
        best = min(best, time.perf_counter() - t)
    return best


def interpolate(sampled: dict, rates) -> dict:
    """{rate: seconds} for every grid rate from {sampled rate: seconds} (linear; flat outside)."""
    xs = sorted(sampled)
    return {r: float(np.interp(r, xs, [sampled[x] for x in xs])) for r in rates}


def project(rows, grid_rates, n_seeds):
    """{protocol: projected seconds of the whole grid} from the timed rows."""
    out = {}
    for proto in dict.fromkeys(r["protocol"] for r in rows):
        per_rate = {}
        for r in rows:
            if r["protocol"] == proto:
                per_rate.setdefault(r["rate"], []).append(r["seconds"])
        means = {rate: float(np.mean(v)) for rate, v in per_rate.items()}
        out[proto] = n_seeds * sum(interpolate(means, grid_rates).values())
    return out


def main(argv=None):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = argparse.ArgumentParser(prog="python -m benchmarks.grid", description=__doc__.splitlines()[0])
    p.add_argument("--case", choices=sorted(CASES), default="cifar")
    p.add_argument("--quick", action="store_true", help="the quick case, rates 0 and 0.5, seed 0 (seconds)")
    p.add_argument("--rates", nargs="+", type=float, metavar="RATE",
                   help="the grid's rates to time (default: 0 0.5 0.9; the others are interpolated)")
    p.add_argument("--seeds", nargs="+", type=int, metavar="SEED", help="seeds to time (default: 0)")
    p.add_argument("--auto-rates", nargs="+", type=float, metavar="RATE",
                   help="rates to time under reg = 'auto' (default: --rates; one rate = the same time at every rate)")
    p.add_argument("--protocols", nargs="+", choices=("fixed", "auto"), default=["fixed", "auto"])
    p.add_argument("--json", metavar="PATH", help="write the timed rows and the projections")
    args = p.parse_args(argv)
    case = "quick" if args.quick else args.case
    spec = CASES[case]
    sweep = _grid_settings(root)
    grid_rates, grid_seeds = [float(r) for r in sweep["rates"]], list(sweep["seeds"])
    rates = args.rates or ([0.0, 0.5] if args.quick else [0.0, 0.5, 0.9])
    seeds = args.seeds or [0]
    auto_rates = args.auto_rates or rates
    for flag, given in (("--rates", rates), ("--auto-rates", auto_rates)):
        bad = [r for r in given if r not in grid_rates]
        if bad:
            p.error(f"{flag} {bad}: expected rates of the grid {grid_rates}")

    from selfdistill.experiments import compute_task, prepare_datasets

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        feats = _features(tmp, spec)
        timed = sorted(set(rates) | set(auto_rates))
        cfg = _config(sweep, feats, spec["reg"], spec["K"], timed, seeds)
        data = prepare_datasets(cfg)
        tasks = [t for t in cfg.tasks() if t.dataset in args.protocols
                 and t.rate in (auto_rates if t.dataset == "auto" else rates)]
        for i, task in enumerate(tasks, 1):
            rec = compute_task(task, cfg, data[task.dataset], blas_threads=None)
            rows.append({"protocol": task.dataset, "rate": task.rate, "seed": task.seed, "seconds": rec["seconds"],
                         "chosen_reg": rec["solver"]["chosen_reg"],
                         "test_acc": {m["model"]: m["test_acc"] for m in rec["metrics"]}})
            print(f"[{i}/{len(tasks)}] {task.dataset} rate {task.rate:g} seed {task.seed}: {rec['seconds']:.1f} s",
                  file=sys.stderr, flush=True)

    grid = project(rows, grid_rates, len(grid_seeds))
    lines = [f"case {case}: {spec['n']} x {spec['d']}, {spec['K']} classes, fixed reg {spec['reg']:g}; "
             f"timed: rates {rates} (auto: {auto_rates}), seeds {seeds}; "
             f"grid: {len(grid_rates)} rates x {len(grid_seeds)} seeds",
             "", f"{'protocol':<9} {'rate':>5} {'seed':>4} {'seconds':>9}"]
    lines += [f"{r['protocol']:<9} {r['rate']:>5g} {r['seed']:>4} {r['seconds']:>9.1f}" for r in rows]
    total = sum(grid.values())
    lines += ["", "projected whole grid (this machine):"]
    lines += [f"  {proto:<6} {s / 3600:8.2f} h" for proto, s in grid.items()]
    met = total < GOAL_HOURS * 3600
    lines.append(f"  both   {total / 3600:8.2f} h   goal < {GOAL_HOURS:g} h: {'met' if met else 'missed'}"
                 + ("" if met else f" ({total / 3600 / GOAL_HOURS:.1f}x over)"))
    if "fixed" in grid and "auto" in grid:
        lines.append(f"  auto / fixed {grid['auto'] / grid['fixed']:.1f}x")
    if case == "quick":
        lines += ["", "(no projection for the paper's datasets from the quick case: its evaluations take "
                  "microseconds, all overhead)"]
        print("\n".join(lines))
        _save(args.json, case, spec, {"fixed": rates, "auto": auto_rates}, seeds, rows, grid, None, {}, sweep)
        return 0
    lines += ["", "projected for the paper's six datasets (512-d; evaluations per task as on this case):",
              f"  {'dataset':<14} {'n':>7} {'K':>4} {'s/eval':>7} {'fixed h':>8} {'auto h':>8} {'both h':>8}"]
    six, spe_case = {}, seconds_per_evaluation(spec["n"], spec["d"], spec["K"])
    for name, (n, K) in PAPER_SIZES.items():
        spe = seconds_per_evaluation(n, PAPER_D, K)
        f = {proto: s * spe / spe_case / 3600 for proto, s in grid.items()}
        six[name] = {"n": n, "K": K, "seconds_per_evaluation": spe, "hours": f}
        lines.append(f"  {name:<14} {n:>7} {K:>4} {spe:>7.3f} {f.get('fixed', float('nan')):>8.2f} "
                     f"{f.get('auto', float('nan')):>8.2f} {sum(f.values()):>8.2f}")
    lines.append(f"  {'all six':<14} {'':>7} {'':>4} {'':>7} "
                 f"{sum(v['hours'].get('fixed', 0) for v in six.values()):>8.2f} "
                 f"{sum(v['hours'].get('auto', 0) for v in six.values()):>8.2f} "
                 f"{sum(sum(v['hours'].values()) for v in six.values()):>8.2f}")
    print("\n".join(lines))
    _save(args.json, case, spec, {"fixed": rates, "auto": auto_rates}, seeds, rows, grid, spe_case, six, sweep)
    return 0


def _save(path, case, spec, rates, seeds, rows, grid, spe_case, six, sweep):
    if not path:
        return
    from selfdistill._io import atomic_write_text

    atomic_write_text(path, json.dumps({
        "case": case, "spec": spec, "rates_timed": rates, "seeds_timed": seeds, "rows": rows,
        "grid_seconds": grid, "seconds_per_evaluation_case": spe_case, "six": six, "sweep_settings": sweep},
        indent=1))


if __name__ == "__main__":
    if __package__ in (None, ""):  # pragma: no cover - run as a script from a checkout
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.exit(main())
