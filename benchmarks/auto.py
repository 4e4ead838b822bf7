"""The real workload's unit: one task with reg chosen honestly (``reg = "auto"``), against a fixed-reg chain.

    python -m benchmarks.auto                        # the "mid" case (minutes)
    python -m benchmarks.auto --cases cifar          # CIFAR-100 scale (50,000 x 512, 100 classes: an hour)
    python -m benchmarks.auto --features F.npz       # a feature file (e.g. selfdistill extract's)
    python -m benchmarks.auto --quick                # seconds (the CI smoke test)

For each case it times, in this process, one after the other:

- ``fixed``: one chain (teacher, 4 SD rounds, the uniform PLL student) at the case's reg, ``stop="tol"``;
- ``fixed-certain``: the same chain with ``stop="certain"`` (the test set certified too), and how
  many of its test predictions differ from ``fixed``'s;
- ``auto-before``: the reg-"auto" task as computed before the reg path: an independent, cold chain
  per reg of the 7-value grid on the 80% fit part, then a whole chain on all the points for every
  distinct chosen reg;
- ``auto``: today's task (:func:`selfdistill.model_selection.reg_path` + :func:`refit_selected`),
  with a check that the chosen regs, the validation accuracies and every model's test accuracy equal
  ``auto-before``'s.

Prints one table (seconds, passes over X, ratio to ``fixed``), then the profile of each ``auto`` task
(evaluations per reg of the path and of the refit, per model: where the passes go), and writes ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

import numpy as np

GRID = (1e-1, 1e-2, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5)  # experiments.config.REG_GRID
CHAIN = dict(rounds=4, pll_loss="uniform")
CASES = {
    "quick": dict(n=600, d=32, K=10, reg=1e-3),
    "mid": dict(n=10_000, d=256, K=20, reg=5e-5),
    "cifar": dict(n=50_000, d=512, K=100, reg=5e-5),
}


def _data(spec, features=None):
    """(X, y_noisy, y_true, X_test, y_test, K): synthetic class_cluster 0.5 (benchmarks/data.py) or a file."""
    from selfdistill.noise import make_noisy_labels

    if features is not None:
        from selfdistill.data import load_npz

        ds = load_npz(features)
        K = int(max(ds.y_train.max(), ds.y_test.max())) + 1
        yn, _ = make_noisy_labels(ds.y_train, "symmetric", 0.5, 1, n_classes=K)
        return ds.X_train, np.asarray(yn), ds.y_train, ds.X_test, ds.y_test, K
    from .data import make_problem

    X, yn, y = make_problem(spec["n"] + spec["n"] // 5, spec["d"], spec["K"], rate=0.5)
    n = spec["n"]
    return X[:n], yn[:n], y[:n], X[n:], y[n:], spec["K"]


def _evals(models):
    return sum(m.n_grad_evals_ + m.n_hessp_ for m in models)


def _auto_before(X, yn, K, test):
    """The reg-auto task before the reg path: cold chains per grid reg, full refits."""
    from selfdistill import distill
    from selfdistill.model_selection import stratified_split as _split

    idx_fit, idx_val = _split(yn, 0.2, 0)
    scores, models = {}, []
    for reg in GRID:
        res = distill(X[idx_fit], yn[idx_fit], reg=reg, X_test=X[idx_val], y_test=yn[idx_val], n_classes=K, **CHAIN)
        models += res.models.values()
        for m in res.metrics:
            scores.setdefault(m["model"], {})[reg] = m["test_acc"]
    best = {name: max(sorted(GRID, reverse=True), key=lambda r: s[r]) for name, s in scores.items()}
    chains = {r: distill(X, yn, reg=r, n_classes=K, **test, **CHAIN) for r in sorted(set(best.values()), reverse=True)}
    models += [m for c in chains.values() for m in c.models.values()]
    test_acc = {name: chains[best[name]].metric(name, "test_acc") for name in best}
    return best, scores, test_acc, models


def _auto_now(X, yn, K, test):
    from selfdistill.model_selection import refit_selected, reg_path

    best, scores, path = reg_path(X, yn, grid=GRID, seed=0, n_classes=K, **CHAIN)
    chains = refit_selected(X, yn, best, path, n_classes=K, **test, **CHAIN)
    models = [m for p in path.values() for m in p.values()] + [m for c in chains.values() for m in c.models.values()]
    test_acc = {name: chains[best[name]].metric(name, "test_acc") for name in best}
    return best, scores, test_acc, models, profile(path, chains)


def profile(path, chains):
    """Where the auto task's passes go: {"path": {reg: {model: evals}}, "refit": {reg: {model: evals}}}.

    ``path`` is :func:`reg_path`'s third value, ``chains`` :func:`refit_selected`'s answer. Evaluations
    (gradient evaluations + Hessian products, each one pass pair over X) do not depend on the load.
    """
    return {"path": {str(r): {m: _evals([p]) for m, p in models.items()} for r, models in path.items()},
            "refit": {str(r): {m: _evals([p]) for m, p in c.models.items()} for r, c in chains.items()}}


def format_profile(row):
    """The profile of one ``auto`` row as a table: one line per fit reg, one column per model."""
    prof, fixed = row["profile"], row["fixed_evals"]
    models = list(next(iter(prof["path"].values())))
    head = f"{'part':6} {'reg':>7} " + " ".join(f"{m:>10}" for m in models) + f" {'total':>7} {'x fixed':>8}"
    lines = [f"{row['case']}: evaluations of the auto task (fit part for the path, all points for the refit); "
             f"fixed chain at reg {row['fixed_reg']:g}: {fixed} (a fit-part evaluation costs about 0.8 of a full one)",
             head, "-" * len(head)]
    for part in ("path", "refit"):
        for reg, ev in prof[part].items():
            tot = sum(ev.values())
            cells = " ".join(f"{ev[m]:>10}" if m in ev else f"{'':>10}" for m in models)
            lines.append(f"{part:6} {float(reg):>7g} {cells} {tot:>7} {tot / fixed:>8.2f}")
    return "\n".join(lines)


def run_case(name, spec, features=None, log=print):
    """Rows of the table for one case."""
    from selfdistill import distill

    X, yn, y, Xt, yt, K = _data(spec, features)
    reg = spec["reg"]
    test = dict(X_test=Xt, y_test=yt)
    rows = []

    def row(variant, seconds, models, **extra):
        r = dict(case=name, n=X.shape[0], d=X.shape[1], K=K, variant=variant, seconds=round(seconds, 2),
                 evals=_evals(models), **extra)
        rows.append(r)
        log(json.dumps(r))

    t0 = time.perf_counter()
    fixed = distill(X, yn, reg=reg, n_classes=K, **test, **CHAIN)
    row("fixed", time.perf_counter() - t0, fixed.models.values(), reg=reg)
    t0 = time.perf_counter()
    cert = distill(X, yn, reg=reg, n_classes=K, stop="certain", **test, **CHAIN)
    diff = sum(int((cert.models[m].predict(Xt) != fixed.models[m].predict(Xt)).sum()) for m in fixed.models)
    row("fixed-certain", time.perf_counter() - t0, cert.models.values(), reg=reg, test_pred_diffs=diff,
        uncertain=sum(m.n_uncertain_ for m in cert.models.values()))
    t0 = time.perf_counter()
    before = _auto_before(X, yn, K, test)
    row("auto-before", time.perf_counter() - t0, before[3], chosen=before[0])
    t0 = time.perf_counter()
    now = _auto_now(X, yn, K, test)
    same = before[0] == now[0] and before[1] == now[1] and before[2] == now[2]
    row("auto", time.perf_counter() - t0, now[3], chosen=now[0], same_as_before=same, profile=now[4],
        fixed_evals=rows[0]["evals"], fixed_reg=reg)
    base = rows[0]["seconds"]
    for r in rows:
        r["x_fixed"] = round(r["seconds"] / base, 2) if base > 0 else None
    return rows


def format_table(rows):
    head = f"{'case':8} {'n':>7} {'d':>5} {'K':>4} {'variant':14} {'sec':>9} {'evals':>7} {'x fixed':>8}  note"
    lines = [head, "-" * len(head)]
    for r in rows:
        note = ""
        if "test_pred_diffs" in r:
            note = f"uncertain {r['uncertain']}, test predictions differing from fixed: {r['test_pred_diffs']}"
        if "same_as_before" in r:
            note = f"same regs, val and test accuracies as auto-before: {r['same_as_before']}"
        lines.append(f"{r['case']:8} {r['n']:>7} {r['d']:>5} {r['K']:>4} {r['variant']:14} {r['seconds']:>9.2f} "
                     f"{r['evals']:>7} {r['x_fixed']:>8}  {note}")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.auto", description=__doc__.split("\n")[0])
    p.add_argument("--cases", nargs="+", default=["mid"], choices=sorted(CASES), help="synthetic cases (default: mid)")
    p.add_argument("--quick", action="store_true", help="the tiny case only (seconds)")
    p.add_argument("--features", metavar="NPZ", help="also a feature file (symmetric noise 0.5, its own reg: --reg)")
    p.add_argument("--reg", type=float, default=5e-5, help="the fixed reg for --features (default 5e-5)")
    p.add_argument("--json", metavar="PATH", help="write the rows as JSON")
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")
    cases = ["quick"] if args.quick else args.cases
    rows = []
    for name in cases:
        rows += run_case(name, CASES[name], log=lambda s: print(s, file=sys.stderr, flush=True))
    if args.features:
        rows += run_case(os.path.basename(args.features).split(".")[0][:8], dict(reg=args.reg),
                         features=args.features, log=lambda s: print(s, file=sys.stderr, flush=True))
    print(format_table(rows))
    for r in rows:
        if "profile" in r:
            print()
            print(format_profile(r))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    if __package__ in (None, ""):
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.exit(main())
