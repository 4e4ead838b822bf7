"""Batched exact probes on real features: pass cost per probe, batched fits, and the 4-task grid.

    python -m benchmarks.batched                      # Fashion-MNIST EfficientNet-Lite0 features (extracted if missing)
    python -m benchmarks.batched --features F.npz     # any feature file (X_train, y_train, X_test, y_test)
    python -m benchmarks.batched --quick              # synthetic, seconds (the CI smoke test)

Three tables, every ratio measured side by side in one run:

1. **pass cost**: milliseconds per probe of one forward (X W^T) plus one backward (G^T X) pass
   over the full training features, B probes' columns side by side, float64 and float32;
2. **fits**: B teachers (clean and symmetric-0.5 labels, alternately; reg 5e-5) fitted one at a
   time and with :func:`selfdistill.fit_linear_probes`, on an n-point stratified subset; the
   largest relative objective difference and prediction agreement between the two;
3. **grid**: the issue's 4 tasks (symmetric noise 0 and 0.5, seeds 0 and 1, teacher + 4 SD rounds
   + pll-uniform, reg 5e-5) through :func:`selfdistill.experiments.run_sweep` one task at a time
   (``batch=1``, all BLAS threads) and batched (``batch=4``, float64 and float32 passes); with
   ``--recipe`` also the authors' SGD recipe (``benchmarks/sgd.py``) for the same 24 models, and
   how far each recipe answer is above the exact minimum of its own objective.

The BLAS library and kernel in use (threadpoolctl) are printed with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FEATURES = ROOT / "configs" / "features" / "fashion_mnist_effnet_64px.npz"
REG = 5e-5


def blas_info() -> str:
    """'openblas 0.3.x, kernel SkylakeX, 2 threads' from threadpoolctl."""
    from threadpoolctl import threadpool_info

    infos = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    return "; ".join(f"{i.get('internal_api')} {i.get('version')}, kernel {i.get('architecture')}, "
                     f"{i.get('num_threads')} threads" for i in infos) or "unknown"


def load(path, quick):
    """(X_train, y_train, X_test, y_test, K): real features from ``path`` (extracted if missing) or,
    with ``quick``, a small synthetic problem."""
    if quick:
        from benchmarks.data import make_problem

        X, _, y = make_problem(3000, 64, 10, noise="symmetric", rate=0.0, seed=0)
        Xt, _, yt = make_problem(500, 64, 10, noise="symmetric", rate=0.0, seed=1)
        return X, y, Xt, yt, 10
    path = Path(path)
    if not path.exists():
        print(f"extracting {path} (a few minutes) ...", file=sys.stderr)
        from selfdistill.data.extract import extract_features

        extract_features("fashion_mnist", path, backbone="efficientnet_lite0", image_size=64)
    from selfdistill.data import load_npz

    ds = load_npz(path)
    return ds.X_train, ds.y_train, ds.X_test, ds.y_test, int(ds.n_classes)


def stratified(y, n, seed=0):
    """Indices of a stratified n-point subset of labels y (sorted)."""
    from sklearn.model_selection import train_test_split

    if n >= y.size:
        return np.arange(y.size)
    idx, _ = train_test_split(np.arange(y.size), train_size=n, stratify=y, random_state=seed)
    return np.sort(idx)


def pass_costs(X, K, widths, repeats=3):
    """{(dtype, B): ms per probe} of X V^T + G^T X with B probes' columns side by side."""
    rng = np.random.default_rng(0)
    out = {}
    for dt in (np.float64, np.float32):
        Xd = np.ascontiguousarray(X, dtype=dt)
        for B in widths:
            W = rng.normal(size=(B * K, X.shape[1])).astype(dt)
            G = rng.normal(size=(X.shape[0], B * K)).astype(dt)
            best = np.inf
            for _ in range(repeats):
                t = time.perf_counter()
                _ = Xd @ W.T, Xd.T @ G
                best = min(best, time.perf_counter() - t)
            out[(np.dtype(dt).name, B)] = 1e3 * best / B
    return out


def fits(X, y, K, B, seed=0):
    """Seconds of B teachers one at a time and batched, and how far apart their answers are."""
    from selfdistill import fit_linear_probe, fit_linear_probes
    from selfdistill.noise import make_noisy_labels

    targets = []
    for b in range(B):
        rate = 0.0 if b % 2 == 0 else 0.5
        yn, _ = make_noisy_labels(y, "symmetric", rate, seed=seed + b, n_classes=K)
        targets.append(yn)
    t = time.perf_counter()
    alone = [fit_linear_probe(X, tb, REG, n_classes=K) for tb in targets]
    t_alone = time.perf_counter() - t
    out = dict(B=B, seconds_alone=t_alone, passes=sum(2 * (p.n_grad_evals_ + p.n_hessp_) for p in alone))
    for dt in ("float64", "float32"):
        t = time.perf_counter()
        batch = fit_linear_probes(X, targets, REG, n_classes=K, dtype=dt)
        out[f"seconds_batched_{dt}"] = s = time.perf_counter() - t
        out[f"ratio_{dt}"] = t_alone / s
        out[f"max_rel_objective_diff_{dt}"] = max(abs(a.objective_ - b.objective_) / abs(b.objective_)
                                                  for a, b in zip(batch, alone, strict=True))
        out[f"min_prediction_agreement_{dt}"] = min(float(np.mean(a.predict(X) == b.predict(X)))
                                                    for a, b in zip(batch, alone, strict=True))
        out[f"converged_{dt}"] = all(p.converged_ for p in batch)
    return out


def grid(X, y, Xt, yt, K, batch, folder, dtype="float64"):
    """Seconds of the 4-task grid through run_sweep with ``batch`` tasks at a time; its rows."""
    from selfdistill.experiments import read_rows, run_config, run_sweep

    path = Path(folder) / "grid_features.npz"
    if not path.exists():
        np.savez(path, X_train=X, y_train=y, X_test=Xt, y_test=yt)
    cfg = run_config(str(path), noise=["symmetric"], rates=[0.0, 0.5], seeds=[0, 1], rounds=4,
                     pll_losses=["uniform"], reg=REG)
    db = Path(folder) / f"grid_b{batch}_{dtype}.db"
    t = time.perf_counter()
    run_sweep(cfg, db, jobs=1, quiet=True, blas_threads=None, batch=batch, dtype=dtype)
    return time.perf_counter() - t, read_rows(db)


def recipe(X, y, Xt, yt, K):
    """Seconds of the authors' recipe for the grid's 24 models (its own chain: each student on its
    recipe teacher's outputs), and per model (recipe objective, exact minimum of the same objective):
    the exact minimum is computed afterwards, untimed, from the recipe's targets."""
    from benchmarks.sgd import sgd_recipe
    from selfdistill import fit_linear_probe
    from selfdistill.losses import softmax
    from selfdistill.noise import make_noisy_labels
    from selfdistill.targets import refine_targets

    def objective(W, T):
        Z = X @ W.T
        Z -= Z.max(1, keepdims=True)
        logp = Z - np.log(np.exp(Z).sum(1, keepdims=True))
        Tm = np.eye(K)[T] if T.ndim == 1 else T
        return float(-(Tm * logp).sum() / X.shape[0] + 0.5 * REG * (W * W).sum())

    problems, seconds = {}, 0.0
    for rate in (0.0, 0.5):
        for seed in (0, 1):
            yn, _ = make_noisy_labels(y, "symmetric", rate, seed=seed, n_classes=K)
            t0 = time.perf_counter()
            W, _ = sgd_recipe(X, yn, REG, K=K, seed=seed)
            chain = {"round 0": (W, yn)}
            W0 = W
            for t in range(1, 5):
                P = softmax(X @ W.T)
                W, _ = sgd_recipe(X, P, REG, K=K, seed=seed)
                chain[f"round {t}"] = (W, P)
            T = refine_targets(softmax(X @ W0.T), "topk", top_k=2)
            chain["pll"] = (sgd_recipe(X, T, REG, K=K, init=W0, seed=seed)[0], T)
            seconds += time.perf_counter() - t0
            for name, (Wm, Tm) in chain.items():
                exact = fit_linear_probe(X, Tm, REG, n_classes=K, init=Wm)
                problems[(rate, seed, name)] = (objective(Wm, Tm), float(exact.objective_))
    return seconds, problems


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.batched", description=__doc__.split("\n\n")[0])
    ap.add_argument("--features", default=str(DEFAULT_FEATURES), help="feature file (.npz)")
    ap.add_argument("--quick", action="store_true", help="synthetic data, seconds")
    ap.add_argument("--subset", type=int, default=10_000, help="training points for the fits and the grid")
    ap.add_argument("--fits", type=int, default=8, help="B teachers for the fits table")
    ap.add_argument("--skip", nargs="*", default=[], choices=["passes", "fits", "grid"], help="tables to skip")
    ap.add_argument("--recipe", action="store_true", help="also time the authors' SGD recipe on the grid")
    ap.add_argument("--json", default=None, help="write the figures to this JSON file")
    args = ap.parse_args(argv)
    X, y, Xt, yt, K = load(args.features, args.quick)
    print(f"features {X.shape[0]:,} x {X.shape[1]:,}, K = {K}; BLAS: {blas_info()}")
    out: dict = {"features": [int(X.shape[0]), int(X.shape[1]), K], "blas": blas_info()}
    if "passes" not in args.skip:
        widths = (1, 2, 4, 8, 16) if args.quick else (1, 2, 4, 8, 16, 48)
        pc = pass_costs(X, K, widths)
        print("\npass cost, ms per probe (one forward + one backward pass over all the training features)")
        print("B probes at once " + "".join(f"{b:>8}" for b in widths))
        for dt in ("float64", "float32"):
            print(f"{dt:<17}" + "".join(f"{pc[(dt, b)]:8.1f}" for b in widths))
        print(f"float32 at B = 16 / float64 alone: {pc[('float32', 16)] / pc[('float64', 1)]:.3f}; "
              f"float64 at B = 16 / alone: {pc[('float64', 16)] / pc[('float64', 1)]:.3f}")
        out["pass_ms_per_probe"] = {f"{dt}/{b}": v for (dt, b), v in pc.items()}
    idx = stratified(y, min(args.subset, y.size))
    Xs, ys = np.ascontiguousarray(X[idx]), y[idx]
    if "fits" not in args.skip:
        f = fits(Xs, ys, K, args.fits)
        print(f"\nfits: {f['B']} teachers on {Xs.shape[0]:,} points (reg {REG:g}, clean and symmetric 0.5)")
        print(f"{'variant':<30}{'seconds':>9}{'speed-up':>10}{'max rel. objective diff':>25}{'predictions agree':>19}")
        print(f"{'one at a time, float64':<30}{f['seconds_alone']:9.1f}{1.0:10.2f}{'-':>25}{'-':>19}")
        for dt in ("float64", "float32"):
            print(f"{'batched, ' + dt:<30}{f[f'seconds_batched_{dt}']:9.1f}{f[f'ratio_{dt}']:10.2f}"
                  f"{f[f'max_rel_objective_diff_{dt}']:25.1e}{100 * f[f'min_prediction_agreement_{dt}']:18.2f}%")
        out["fits"] = f
    if "grid" not in args.skip:
        variants = [("exact, one task at a time", 1, "float64"), ("exact, batch 4, float64", 4, "float64"),
                    ("exact, batch 4, float32", 4, "float32")]
        res = {}
        with tempfile.TemporaryDirectory() as tmp:
            for name, b, dt in variants:
                res[name] = grid(Xs, ys, Xt, yt, K, b, tmp, dt)
        key = ("noise", "rate", "seed", "model")
        ref = {tuple(r[k] for k in key): r for r in res[variants[0][0]][1]}
        print(f"\ngrid: 4 tasks x 6 models on {Xs.shape[0]:,} points, reg {REG:g}")
        print(f"{'variant':<30}{'seconds':>9}{'speed-up':>10}{'same test acc.':>16}{'max rel. objective diff':>25}")
        out["grid"] = {}
        for name, _, _ in variants:
            sec, rows = res[name]
            other = {tuple(r[k] for k in key): r for r in rows}
            same = other.keys() == ref.keys() and all(other[k]["test_acc"] == ref[k]["test_acc"] for k in ref)
            diff = max(abs(other[k]["objective"] - ref[k]["objective"]) / abs(ref[k]["objective"]) for k in ref)
            s1 = res[variants[0][0]][0]
            print(f"{name:<30}{sec:9.1f}{s1 / sec:10.2f}{str(same):>16}{diff:25.1e}")
            out["grid"][name] = {"seconds": sec, "same_test_acc": same, "max_rel_objective_diff": diff}
        if args.recipe:
            sr, objs = recipe(Xs, ys, Xt, yt, K)
            best = min(sec for sec, _ in res.values())
            lower = sum(exact < rec for rec, exact in objs.values())
            gaps = [(rec - exact) / abs(exact) for rec, exact in objs.values()]
            print(f"{'recipe (SGD, 200 epochs)':<30}{sr:9.1f}{s1 / sr:10.2f}")
            print(f"fastest exact variant vs the recipe: {sr / best:.2f}x. The recipe's answer is above the exact "
                  f"minimum of its own objective for {lower} of {len(objs)} models (by {100 * min(gaps):.2f}% "
                  f"to {100 * max(gaps):.2f}%)")
            out["grid"]["recipe"] = {"seconds": sr, "exact_lower": lower, "objectives": {
                f"{k[0]}/{k[1]}/{k[2]}": {"recipe": v[0], "exact": v[1]} for k, v in objs.items()}}
    if args.json:
        tmp_path = args.json + ".tmp"
        with open(tmp_path, "w") as fh:
            json.dump(out, fh, indent=1)
        os.replace(tmp_path, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
