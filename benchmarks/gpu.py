"""GPU benchmark: the chain with the torch backend at CIFAR-100 and ImageNet feature scale.

    python -m benchmarks.gpu [--device cuda] [--imagenet-n 1281167] [--budget-s 420] [--out DIR]

Features are generated on the device in float32 (same recipe as benchmarks/data.py: relu of
superclass mean + class offset + unit noise; superclasses of 5 classes); labels are corrupted
with class-cluster noise at rate 0.5 inside each superclass (the clusters of confusable classes
are the superclasses, known by construction, instead of being recomputed from 10 GB of features).
Each model is timed with the device synchronised; results are printed as a table and written as
JSON to --out after every model, so a run stopped by its time limit still reports what it did.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np


def make_features_torch(n, d, K, *, group=5, seed=0, device="cuda", chunk_rows=131072):
    import torch

    from .data import CLASS_STD, SUPER_STD

    g = torch.Generator(device=device).manual_seed(seed)
    n_super = max(1, K // group)
    super_means = torch.randn(n_super, d, generator=g, device=device) * SUPER_STD
    class_means = (
        super_means[torch.arange(K, device=device) % n_super]
        + torch.randn(K, d, generator=g, device=device) * CLASS_STD
    )
    y = torch.randperm(n, generator=g, device=device) % K
    X = torch.empty(n, d, device=device, dtype=torch.float32)
    for s in range(0, n, chunk_rows):
        yc = y[s : s + chunk_rows]
        block = 0.3 + class_means[yc] + torch.randn(yc.numel(), d, generator=g, device=device)
        X[s : s + chunk_rows] = block.clamp_(min=0.0)
    # class-cluster noise: with probability rate move to another class of the same superclass
    rate = 0.5
    flip = torch.rand(n, generator=g, device=device) < rate
    shift = torch.randint(1, group, (n,), generator=g, device=device) * n_super
    yn = torch.where(flip, (y + shift) % (n_super * group), y)
    return X, yn, y


def probs_f64(X, W, chunk_rows=131072):
    """softmax(X W^T) in float64 on the device, (n, K)."""
    import torch

    Wd = torch.as_tensor(W, device=X.device, dtype=torch.float32)
    out = torch.empty(X.shape[0], W.shape[0], device=X.device, dtype=torch.float64)
    for s in range(0, X.shape[0], chunk_rows):
        out[s : s + chunk_rows] = torch.softmax((X[s : s + chunk_rows] @ Wd.T).double(), dim=1)
    return out


def topk_targets(P, k=2):
    import torch

    idx = torch.topk(P, k, dim=1).indices
    T = torch.zeros_like(P)
    T.scatter_(1, idx, 1.0 / k)
    return T


def run_chain(name, X, yn, y, K, reg, *, device, dtype, rounds=4, budget_s=None, out=None, record=None):
    import torch

    from selfdistill.probe import ChainCache as _ChainCache
    from selfdistill.probe import fit_linear_probe

    cache = _ChainCache()
    kw = dict(n_classes=K, backend="torch", device=device, dtype=dtype, _cache=cache)
    t_start = time.perf_counter()
    models, probs = {}, {}
    order = [f"round {t}" for t in range(rounds + 1)] + ["pll"]
    for mname in order:
        if budget_s is not None and time.perf_counter() - t_start > budget_s:
            print(f"[{name}] budget of {budget_s} s spent: skipping {mname} and later models", flush=True)
            break
        if mname == "round 0":
            T, init = yn, None
        elif mname == "pll":
            T, init = topk_targets(probs["round 0"]), models["round 0"]
        else:
            prev = f"round {int(mname.split()[1]) - 1}"
            T, init = probs[prev], models[prev]
        torch.cuda.synchronize() if str(device).startswith("cuda") else None
        t = time.perf_counter()
        m = fit_linear_probe(X, T, reg, init=init, **kw)
        if str(device).startswith("cuda"):
            torch.cuda.synchronize()
        secs = time.perf_counter() - t
        models[mname] = m
        probs[mname] = probs_f64(X, m.coef_)
        if mname.startswith("round") and int(mname.split()[1]) >= 2:  # keep the teacher's (PLL) and the last
            probs.pop(f"round {int(mname.split()[1]) - 1}")
        acc = float((probs[mname].argmax(1) == y).double().mean())
        row = dict(
            case=name,
            dtype=np.dtype(dtype).name,
            model=mname,
            seconds=secs,
            newton=m.n_iter_,
            grads=m.n_grad_evals_,
            grads_f32=m.n_grad_evals_f32_,
            hvps=m.n_hessp_,
            grad_norm=m.grad_norm_,
            objective=m.objective_,
            converged=bool(m.converged_),
            train_acc_true=acc,
        )
        if str(device).startswith("cuda"):
            row["max_mem_GB"] = torch.cuda.max_memory_allocated() / 2**30
        print(json.dumps(row), flush=True)
        if record is not None:
            record.append(row)
            if out:
                with open(os.path.join(out, "gpu_results.json"), "w") as fh:
                    json.dump(record, fh, indent=1)
    return time.perf_counter() - t_start


def eval_seconds(X, K, dtype, device):
    import torch

    tdt = torch.float64 if np.dtype(dtype) == np.float64 else torch.float32
    Xd = X.to(tdt)
    W = torch.randn(K, X.shape[1], device=X.device, dtype=tdt)
    G = torch.randn(X.shape[0], K, device=X.device, dtype=tdt)
    ts = []
    for _ in range(4):
        torch.cuda.synchronize() if str(device).startswith("cuda") else None
        t = time.perf_counter()
        _ = Xd @ W.T, (Xd.T @ G).T  # the two products of one evaluation
        torch.cuda.synchronize() if str(device).startswith("cuda") else None
        ts.append(time.perf_counter() - t)
    del Xd
    return float(np.median(ts[1:]))


def main(argv=None):
    import torch

    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu")
    p.add_argument("--device", default="cuda")
    p.add_argument("--cifar-n", type=int, default=50_000)
    p.add_argument("--imagenet-n", type=int, default=1_281_167)
    p.add_argument("--imagenet-d", type=int, default=2048)
    p.add_argument("--imagenet-K", type=int, default=1000)
    p.add_argument("--reg", type=float, default=5e-5)
    p.add_argument(
        "--budget-s", type=float, default=300.0, help="stop starting ImageNet models after this many seconds"
    )
    p.add_argument("--skip-cifar64", action="store_true")
    p.add_argument("--skip-cifar", action="store_true")
    p.add_argument("--out", default=os.environ.get("OUT", "."))
    args = p.parse_args(argv)
    dev = args.device
    if dev.startswith("cuda"):
        print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}", flush=True)
    record, summary = [], []
    # CIFAR-100 scale
    X, yn, y = make_features_torch(args.cifar_n, 512, 100, device=dev)
    for dt in [] if args.skip_cifar else [np.float32] if args.skip_cifar64 else [np.float32, np.float64]:
        ev = eval_seconds(X, 100, dt, dev)
        s = run_chain("cifar", X, yn, y, 100, args.reg, device=dev, dtype=dt, record=record, out=args.out)
        rows = [r for r in record if r["case"] == "cifar" and r["dtype"] == np.dtype(dt).name]
        summary.append(
            dict(
                case="cifar",
                dtype=np.dtype(dt).name,
                chain_s=s,
                eval_s=ev,
                evals=sum(r["grads"] + r["hvps"] for r in rows),
            )
        )
        print(json.dumps(summary[-1]), flush=True)
    del X, yn, y
    torch.cuda.empty_cache() if dev.startswith("cuda") else None
    # ImageNet scale
    t = time.perf_counter()
    X, yn, y = make_features_torch(args.imagenet_n, args.imagenet_d, args.imagenet_K, device=dev)
    if dev.startswith("cuda"):
        torch.cuda.synchronize()
    print(f"imagenet features generated in {time.perf_counter() - t:.1f} s", flush=True)
    ev = eval_seconds(X, args.imagenet_K, np.float32, dev)
    s = run_chain(
        "imagenet",
        X,
        yn,
        y,
        args.imagenet_K,
        args.reg,
        device=dev,
        dtype=np.float32,
        budget_s=args.budget_s,
        record=record,
        out=args.out,
    )
    rows = [r for r in record if r["case"] == "imagenet"]
    summary.append(
        dict(case="imagenet", dtype="float32", chain_s=s, eval_s=ev, evals=sum(r["grads"] + r["hvps"] for r in rows))
    )
    print(json.dumps(summary[-1]), flush=True)
    with open(os.path.join(args.out, "gpu_summary.json"), "w") as fh:
        json.dump(summary, fh, indent=1)
    print(
        f"{'case':9s} {'dtype':7s} {'model':8s} {'sec':>7s} {'newt':>4s} {'grad':>4s} {'hvp':>4s} "
        f"{'|grad|':>8s} {'objective':>11s} {'acc':>6s}"
    )
    for r in record:
        print(
            f"{r['case']:9s} {r['dtype']:7s} {r['model']:8s} {r['seconds']:7.2f} {r['newton']:4d} "
            f"{r['grads']:4d} {r['hvps']:4d} "
            f"{r['grad_norm']:8.1e} {r['objective']:11.7f} {r['train_acc_true']:6.3f}"
        )
    for sm in summary:
        print(
            f"{sm['case']:9s} {sm['dtype']:7s} chain {sm['chain_s']:7.2f} s, {sm['evals']} evals, one eval "
            f"{sm['eval_s'] * 1e3:.2f} ms, "
            f"chain/floor {sm['chain_s'] / (sm['evals'] * sm['eval_s']):.2f}"
        )
    return 0


if __name__ == "__main__":
    if __package__ in (None, ""):
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.exit(main())
