"""The benchmark driver: ``python -m benchmarks [--quick] [--sizes ...]``.

Every case runs in its own child process (fresh memory accounting, no allocator reuse between
sizes). Inside it each model's peak memory is measured from the kernel's resident-set
high-water mark: write ``5`` to ``/proc/self/clear_refs`` (resets VmHWM to the current RSS),
read VmRSS, fit, read VmHWM; the model's peak is VmHWM - VmRSS before the fit, i.e. the extra
memory the fit needed above the features and targets already held (reported in MB and as a
multiple of the feature matrix's bytes). Where clear_refs is not writable the fallback is
``resource.getrusage`` maxrss deltas (which can only see new maxima: an under-estimate).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

REG_CIFAR = 5e-5

# name -> case spec. baselines: sklearn teacher fit; sgd: the authors' recipe on every model.
CASES = {
    "digits": dict(kind="digits", reg=1e-3, sklearn=True, sgd=True, dtypes=["float64", "float32"]),
    "cifar": dict(
        kind="random",
        n=50_000,
        d=512,
        K=100,
        reg=REG_CIFAR,
        sklearn=True,
        sgd=True,
        dtypes=["float64"],
        sklearn_max_iter=3000,
        theory=True,
    ),
    "cifar32": dict(kind="random", n=50_000, d=512, K=100, reg=REG_CIFAR, dtypes=["float32"]),
    "n12500": dict(kind="random", n=12_500, d=512, K=100, reg=REG_CIFAR, dtypes=["float64"], rounds=0, pll=False),
    "n25000": dict(kind="random", n=25_000, d=512, K=100, reg=REG_CIFAR, dtypes=["float64"], rounds=0, pll=False),
    "n100000": dict(kind="random", n=100_000, d=512, K=100, reg=REG_CIFAR, dtypes=["float64"], rounds=0, pll=False),
    "K10": dict(kind="random", n=50_000, d=512, K=10, reg=REG_CIFAR, dtypes=["float64"], rounds=0, pll=False),
    "K50": dict(kind="random", n=50_000, d=512, K=50, reg=REG_CIFAR, dtypes=["float64"], rounds=0, pll=False),
    "K200": dict(kind="random", n=50_000, d=512, K=200, reg=REG_CIFAR, dtypes=["float64"], rounds=0, pll=False),
}
# scaling series: teacher fits only (rounds=0, no PLL); the n = 50,000, K = 100 point is "cifar"
DEFAULT = ["digits", "cifar", "n12500", "n25000", "K10", "K50", "cifar32", "n100000", "K200"]
# --quick: tiny versions of the same cases (CI smoke test), every code path, seconds in all
QUICK = {
    "digits": dict(
        kind="digits", reg=1e-3, sklearn=True, sgd=True, dtypes=["float64", "float32"], sgd_epochs=2, subsample=400
    ),
    "tiny": dict(
        kind="random",
        n=600,
        d=32,
        K=10,
        reg=1e-3,
        sklearn=True,
        sgd=True,
        dtypes=["float64", "float32"],
        sgd_epochs=2,
        theory=True,
    ),
}


# ---------------------------------------------------------------- memory
def _status_kb(field):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class PeakMemory:
    """Extra peak resident memory (bytes) of the block, above the RSS at its start."""

    def __enter__(self):
        self.method = "VmHWM"
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
            self.rss0 = _status_kb("VmRSS")
        except OSError:
            import resource

            self.method = "ru_maxrss"
            self.rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return self

    def __exit__(self, *exc):
        if self.method == "VmHWM":
            peak = _status_kb("VmHWM")
        else:
            import resource

            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        self.extra = max(0, peak - self.rss0) * 1024
        return False


# ---------------------------------------------------------------- data
def _case_data(spec, seed=0):
    if spec["kind"] == "digits":
        from sklearn.datasets import load_digits

        from selfdistill.noise import make_noisy_labels

        X, y = load_digits(return_X_y=True)
        X = X / 16.0
        if spec.get("subsample"):
            X, y = X[: spec["subsample"]], y[: spec["subsample"]]
        yn, _ = make_noisy_labels(y, "symmetric", 0.3, seed + 1, n_classes=10)
        return np.ascontiguousarray(X), np.asarray(yn), y, 10
    from .data import make_problem

    X, yn, y = make_problem(spec["n"], spec["d"], spec["K"], noise="class_cluster", rate=0.5, seed=seed)
    return X, yn, y, spec["K"]


def _eval_seconds(X, K, dtype, repeats=3):
    """Median seconds of one gradient evaluation's two matrix products, X W^T and X^T G."""
    rng = np.random.default_rng(0)
    Xd = X if X.dtype == dtype else X.astype(dtype)
    W = rng.normal(size=(K, X.shape[1])).astype(dtype)
    G = rng.normal(size=(X.shape[0], K)).astype(dtype)
    times = []
    for _ in range(repeats + 1):
        t = time.perf_counter()
        _ = Xd @ W.T, (Xd.T @ G).T  # the two products of one evaluation
        times.append(time.perf_counter() - t)
    return float(np.median(times[1:]))


def _label_averaging_case(X, yn, reg, rounds, K):
    """Seconds and peak memory of the closed-form chain (label averaging) on X."""
    from selfdistill.theory import label_averaging

    with PeakMemory() as mem:
        t = time.perf_counter()
        label_averaging(yn, reg, rounds, X=X, n_classes=K)
        la_s = time.perf_counter() - t
    return {"seconds": la_s, "rounds": rounds, "peak_xX": mem.extra / X.nbytes}


def _sklearn_teacher(X, yn, reg, K, max_iter):
    """scikit-learn's lbfgs on the teacher's problem to tol 1e-8: seconds, iterations, objective, |grad|."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    from .sgd import objective

    n, d = X.shape
    lr = LogisticRegression(C=1.0 / (n * reg), fit_intercept=False, tol=1e-8, max_iter=max_iter)
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        lr.fit(X, yn)
    sk_s = time.perf_counter() - t
    W = np.zeros((K, d))
    W[lr.classes_] = lr.coef_ if K > 2 else np.stack([-lr.coef_[0] / 2, lr.coef_[0] / 2])
    f, g = objective(X, yn, W, reg)
    return {"seconds": sk_s, "n_iter": int(np.max(lr.n_iter_)), "objective": f, "grad_norm": g, "max_iter": max_iter}


# ---------------------------------------------------------------- one case, in a child process
def _model_inputs(mname, yn, models, probs):
    """(targets, warm-start keywords) of one model of the chain, as distill() builds them."""
    from selfdistill.distill import student_warm_start
    from selfdistill.targets import refine_targets

    if mname == "round 0":
        return yn, {}
    if mname == "pll":
        return refine_targets(probs["round 0"], "topk", top_k=2), {"init": models["round 0"]}
    t = int(mname.split()[1])  # from the teacher, plus the line search along W_{t-1} - W_{t-2}
    prev = f"round {t - 1}"
    return refine_targets(probs[prev], "soft"), student_warm_start(models[prev], models.get(f"round {t - 2}"))


def run_case(name, spec, *, sgd_epochs=200):
    from selfdistill.probe import ChainCache as _ChainCache
    from selfdistill.probe import fit_linear_probe

    from .sgd import AUTHORS_LR, objective, sgd_recipe

    X, yn, y, K = _case_data(spec)
    n, d = X.shape
    reg = spec["reg"]
    rounds = spec.get("rounds", 4)
    out = {
        "case": name,
        "n": n,
        "d": d,
        "K": K,
        "reg": reg,
        "X_MB": X.nbytes / 2**20,
        "rows": [],
        "load": os.getloadavg()[0],
    }
    t64 = _eval_seconds(X, K, np.float64)
    t32 = _eval_seconds(X, K, np.float32)
    chain_targets = {}
    for dt in spec["dtypes"]:
        dtype = np.dtype(dt)
        cache = _ChainCache()
        kw = dict(n_classes=K, dtype=dtype, _cache=cache)
        models, probs = {}, {}
        chain_t0 = time.perf_counter()
        chain_peak = 0
        order = [f"round {t}" for t in range(rounds + 1)] + (["pll"] if spec.get("pll", True) else [])
        for mname in order:
            T, warm = _model_inputs(mname, yn, models, probs)
            with PeakMemory() as mem:
                m = fit_linear_probe(X, T, reg, **warm, **kw)
            models[mname] = m
            probs[mname] = m.predict_proba(X)
            chain_targets.setdefault(mname, T)
            chain_peak = max(chain_peak, mem.extra)
            n_lo = m.n_grad_evals_f32_ + (m.n_hessp_ if dtype == np.float32 else 0)
            n_hi = m.n_grad_evals_ + m.n_hessp_ - n_lo
            out["rows"].append(
                {
                    "dtype": dt,
                    "model": mname,
                    "seconds": m.seconds_,
                    "peak_MB": mem.extra / 2**20,
                    "peak_xX": mem.extra / X.nbytes,
                    "mem_method": mem.method,
                    "newton": m.n_iter_,
                    "grads": m.n_grad_evals_,
                    "hvps": m.n_hessp_,
                    "grad_norm": m.grad_norm_,
                    "objective": m.objective_,
                    "converged": bool(m.converged_),
                    "floor_s": n_lo * t32 + n_hi * t64,
                }
            )
        chain_s = time.perf_counter() - chain_t0
        # one evaluation's matrix products, timed before and after the chain (the least is kept:
        # the machine is shared and loaded), and the floor recomputed with it
        t64 = min(t64, _eval_seconds(X, K, np.float64))
        t32 = min(t32, _eval_seconds(X, K, np.float32))
        out["eval_s"] = {"float64": t64, "float32": t32}
        for r, m in zip([r for r in out["rows"] if r["dtype"] == dt], models.values(), strict=False):
            n_lo = m.n_grad_evals_f32_ + (m.n_hessp_ if dtype == np.float32 else 0)
            r["floor_s"] = n_lo * t32 + (m.n_grad_evals_ + m.n_hessp_ - n_lo) * t64
            r["history"] = [list(h) for h in m.history_]
        rows = [r for r in out["rows"] if r["dtype"] == dt]
        out.setdefault("chains", {})[dt] = {
            "seconds": chain_s,
            "fit_seconds": sum(r["seconds"] for r in rows),
            "floor_s": sum(r["floor_s"] for r in rows),
            "evals": sum(r["grads"] + r["hvps"] for r in rows),
            "peak_MB": chain_peak / 2**20,
            "peak_xX": chain_peak / X.nbytes,
            "teacher_s": rows[0]["seconds"],
            "max_sd_over_teacher": max(r["seconds"] for r in rows[1 : rounds + 1]) / rows[0]["seconds"]
            if rounds >= 1
            else None,
            "train_acc_teacher": float(np.mean(np.argmax(probs["round 0"], 1) == y)),
            "train_acc_pll": float(np.mean(np.argmax(probs["pll"], 1) == y)) if "pll" in probs else None,
        }
    if spec.get("theory"):  # the closed-form chain (theory issue): thin SVD of X, no n x n matrix
        out["label_averaging"] = _label_averaging_case(X, yn, reg, rounds, K)
    if spec.get("sklearn"):
        out["sklearn"] = _sklearn_teacher(X, yn, reg, K, spec.get("sklearn_max_iter", 2000))
    if spec.get("sgd"):
        epochs = spec.get("sgd_epochs", sgd_epochs)
        lr0 = AUTHORS_LR["cifar100"]
        sgd_rows = []
        teacher_W = None
        for mname in order:
            if spec.get("sgd_models") and mname not in spec["sgd_models"]:
                continue
            T = chain_targets[mname]
            init = teacher_W if mname == "pll" else None
            W, s = sgd_recipe(X, T, reg, K=K, epochs=epochs, lr=lr0, init=init)
            if mname == "round 0":
                teacher_W = W
            f, g = objective(X, T, W, reg)
            row = {"model": mname, "seconds": s, "objective": f, "grad_norm": g}
            # our solver's time to the SGD answer's objective: the first Newton iterate at or
            # below it, its share of the fit's evaluations times the fit's seconds
            ours = next(r for r in out["rows"] if r["model"] == mname and r["dtype"] == spec["dtypes"][0])
            hist = ours["history"]
            hit = next((h for h in hist if h[0] <= f), None)
            if hit is not None and len(hit) > 3:
                total = ours["grads"] + ours["hvps"]
                row["ours_to_sgd_objective_s"] = ours["seconds"] * hit[3] / max(total, 1)
                row["ours_to_sgd_objective_evals"] = hit[3]
            sgd_rows.append(row)
        per_model = sum(r["seconds"] for r in sgd_rows) / len(sgd_rows)
        # every model of the recipe runs the same epochs over the same n: the chain costs
        # len(order) models; measured models are summed, the others counted at the mean
        out["sgd"] = {
            "epochs": epochs,
            "lr": lr0,
            "rows": sgd_rows,
            "measured_models": len(sgd_rows),
            "seconds": per_model * len(order),
        }
    return out


# ---------------------------------------------------------------- driver
def _child(name, spec, sgd_epochs):
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    src = os.path.join(root, "src")
    env["PYTHONPATH"] = os.pathsep.join([root, src] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    cmd = [
        sys.executable,
        "-m",
        "benchmarks",
        "--_worker",
        json.dumps({"name": name, "spec": spec, "sgd_epochs": sgd_epochs}),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=root)
    if res.returncode != 0:
        raise RuntimeError(f"benchmark case {name} failed:\n{res.stderr[-4000:]}")
    for line in res.stdout.splitlines()[::-1]:
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"benchmark case {name} printed no result:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")


def format_tables(results):
    lines = []
    hdr = (f"{'case':8s} {'dtype':7s} {'model':8s} {'sec':>8s} {'peakMB':>8s} {'xX':>5s} {'newt':>4s} {'grad':>4s} "
           f"{'hvp':>4s} {'|grad|':>8s} {'objective':>12s} {'sgd obj':>12s} {'sgd sec':>8s}")
    lines.append(hdr)
    lines.append("-" * len(hdr))
    for r in results:
        sgd = {x["model"]: x for x in r.get("sgd", {}).get("rows", [])}
        for row in r["rows"]:
            s = sgd.get(row["model"]) if row["dtype"] == "float64" else None
            lines.append(
                f"{r['case']:8s} {row['dtype']:7s} {row['model']:8s} {row['seconds']:8.2f} "
                f"{row['peak_MB']:8.1f} {row['peak_xX']:5.2f} "
                f"{row['newton']:4d} {row['grads']:4d} {row['hvps']:4d} {row['grad_norm']:8.1e} "
                f"{row['objective']:12.8f} "
                + (f"{s['objective']:12.8f} {s['seconds']:8.1f}" if s else f"{'':12s} {'':8s}")
            )
    lines.append("")
    for r in results:
        for x in r.get("sgd", {}).get("rows", []):
            if "ours_to_sgd_objective_s" in x:
                lines.append(
                    f"{r['case']}: {x['model']}: SGD recipe ({r['sgd']['epochs']} epochs) {x['seconds']:.1f} "
                    f"s to objective {x['objective']:.8f}; "
                    f"Newton-CG reaches that objective after {x['ours_to_sgd_objective_evals']} evaluations, "
                    f"~{x['ours_to_sgd_objective_s']:.2f} s "
                    f"({x['seconds'] / max(x['ours_to_sgd_objective_s'], 1e-9):.0f}x faster)"
                )
    for r in results:
        la = r.get("label_averaging")
        if la:
            lines.append(
                f"{r['case']}: label_averaging (closed form, rounds 0-{la['rounds']}) on {r['n']:,} x {r['d']}: "
                f"{la['seconds']:.2f} s, extra peak {la['peak_xX']:.2f} x X"
            )
    lines.append("")
    hdr2 = (
        f"{'case':8s} {'n':>7s} {'d':>4s} {'K':>4s} {'dtype':7s} {'chain s':>8s} {'evals':>5s} "
        f"{'floor s':>8s} {'chain/floor':>11s} "
        f"{'SD/teacher':>10s} {'peak xX':>7s} {'sklearn s':>9s} {'sk/teacher':>10s} {'sk |grad|':>9s} "
        f"{'SGD chain s':>11s} {'SGD/chain':>9s} {'load':>5s}"
    )
    lines.append(hdr2)
    lines.append("-" * len(hdr2))
    for r in results:
        for dt, c in r["chains"].items():
            sk = r.get("sklearn")
            sg = r.get("sgd")
            sd = c["max_sd_over_teacher"]
            lines.append(
                f"{r['case']:8s} {r['n']:7d} {r['d']:4d} {r['K']:4d} {dt:7s} {c['seconds']:8.2f} "
                f"{c['evals']:5d} {c['floor_s']:8.2f} "
                f"{c['seconds'] / c['floor_s']:11.2f} {sd if sd is not None else float('nan'):10.2f} "
                f"{c['peak_xX']:7.2f} "
                + (
                    f"{sk['seconds']:9.2f} {sk['seconds'] / c['teacher_s']:10.1f} {sk['grad_norm']:9.1e} "
                    if sk
                    else f"{'':9s} {'':10s} {'':9s} "
                )
                + (f"{sg['seconds']:11.1f} {sg['seconds'] / c['seconds']:9.1f} " if sg else f"{'':11s} {'':9s} ")
                + f"{r['load']:5.1f}"
            )
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m benchmarks", description="Speed and scale of the selfdistill chain (issue 5)."
    )
    p.add_argument("--quick", action="store_true", help="tiny versions of the cases (seconds; the CI smoke test)")
    p.add_argument("--sizes", nargs="+", metavar="CASE", help=f"cases to run, from {list(CASES)} (default: all)")
    p.add_argument(
        "--sgd-epochs", type=int, default=200, help="epochs of the authors' SGD recipe (default 200, theirs)"
    )
    p.add_argument(
        "--no-sgd", action="store_true", help="skip the SGD baseline (it takes minutes per model at CIFAR scale)"
    )
    p.add_argument(
        "--no-sklearn",
        action="store_true",
        help="skip the scikit-learn baseline (minutes at CIFAR scale: run to tol 1e-8)",
    )
    p.add_argument(
        "--sgd-models",
        nargs="+",
        metavar="MODEL",
        help="models to train by SGD (default: all; e.g. 'round 0' 'round 1')",
    )
    p.add_argument("--json", metavar="PATH", help="also write the raw results as JSON")
    p.add_argument("--_worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args._worker:
        job = json.loads(args._worker)
        print(json.dumps(run_case(job["name"], job["spec"], sgd_epochs=job["sgd_epochs"])))
        return 0
    table = QUICK if args.quick else CASES
    names = args.sizes or (list(QUICK) if args.quick else DEFAULT)
    unknown = [x for x in names if x not in table]
    if unknown:
        p.error(f"unknown case(s) {unknown}; choose from {list(table)}")
    results = []
    for name in names:
        spec = dict(table[name])
        if args.no_sgd:
            spec["sgd"] = False
        if args.no_sklearn:
            spec["sklearn"] = False
        if args.sgd_models:
            spec["sgd_models"] = args.sgd_models
        t = time.perf_counter()
        print(f"[{name}] running ...", file=sys.stderr, flush=True)
        results.append(_child(name, spec, args.sgd_epochs))
        print(f"[{name}] done in {time.perf_counter() - t:.1f} s", file=sys.stderr, flush=True)
        print(format_tables(results[-1:]), file=sys.stderr, flush=True)
        if args.json:
            with open(args.json, "w") as fh:
                json.dump(results, fh, indent=1)
    text = format_tables(results)
    print(text)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)
    return 0
