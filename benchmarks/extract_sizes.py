"""EfficientNet-Lite0 features of Fashion-MNIST at several image sizes: extraction speed and probe accuracy.

    python -m benchmarks.extract_sizes --sizes 64 96 128 --train 5000 --test 2000 --out DIR

For each size S: ``selfdistill extract fashion_mnist --backbone efficientnet_lite0 --image-size S``
on the same stratified subset (seed 0), timed (wall and CPU seconds, images/s), then the test
accuracy of scikit-learn's LogisticRegression(C=1) on standardised features and, with ``--probe``,
of the probe with reg chosen by :func:`selfdistill.model_selection.select_reg` on a validation split
of the training labels (never the test set), on the features as extracted (as a sweep uses them)
(and standardised, ``--standardised``). Prints one row per size; ``--json`` writes them. Needs the
``efficientnet`` extra and the dataset (``dataset-fashion-mnist``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

import numpy as np


def _cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def probe_accuracy(ds, standardise, grid):
    from selfdistill.model_selection import select_reg
    from selfdistill.probe import fit_linear_probe

    Xtr, Xte = ds.X_train, ds.X_test
    if standardise:
        mu, sd = Xtr.mean(0), Xtr.std(0)
        sd[sd == 0] = 1.0
        Xtr, Xte = (Xtr - mu) / sd, (Xte - mu) / sd
    reg, _ = select_reg(Xtr, ds.y_train, grid=grid)
    return reg, float(np.mean(fit_linear_probe(Xtr, ds.y_train, reg).predict(Xte) == ds.y_test))


def logreg_accuracy(ds):
    """scikit-learn LogisticRegression(C=1, max_iter=300) on features standardised with training statistics."""
    from sklearn.linear_model import LogisticRegression

    mu, sd = ds.X_train.mean(0), ds.X_train.std(0)
    sd[sd == 0] = 1.0
    clf = LogisticRegression(C=1.0, max_iter=300).fit((ds.X_train - mu) / sd, ds.y_train)
    return float(np.mean(clf.predict((ds.X_test - mu) / sd) == ds.y_test))


def extract_size(size, args):
    """Extract the subset at ``size`` px (timed); an existing file is kept (no timing)."""
    from selfdistill.data.extract import extract_features

    out = os.path.join(args.out, f"fashion_mnist_effnet_{size}px_{args.train}_{args.test}.npz")
    if os.path.exists(out):
        return out, {}
    t0, c0 = time.perf_counter(), _cpu_seconds()
    extract_features(
        "fashion_mnist",
        out,
        backbone="efficientnet_lite0",
        image_size=size,
        limit_train=args.train,
        limit_test=args.test,
        batch_size=args.batch_size,
        progress=False,
        device="cpu",
    )
    wall, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
    n = args.train + args.test
    return out, {
        "wall_s": wall,
        "cpu_s": cpu,
        "images_per_s": n / wall,
        "cpu_s_per_image": cpu / n,
        "load_avg_1min": os.getloadavg()[0],
    }


def _save(rows, path):
    if path:
        with open(path, "w") as fh:
            json.dump(rows, fh, indent=1)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.extract_sizes", description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 96, 128])
    p.add_argument("--train", type=int, default=5000)
    p.add_argument("--test", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--out", required=True, help="folder for the feature files")
    p.add_argument("--json", default=None, help="rows (read first, if it exists: earlier timings are kept)")
    p.add_argument(
        "--grid",
        type=float,
        nargs="+",
        default=[1e-2, 1e-3, 1e-4, 1e-5],
        help="reg values select_reg chooses from (on the training labels)",
    )
    p.add_argument(
        "--probe",
        action="store_true",
        help="also fit_linear_probe with reg chosen by select_reg (slow: minutes per fit at weak reg)",
    )
    p.add_argument("--standardised", action="store_true", help="--probe also on standardised features")
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    rows = {}
    if args.json and os.path.exists(args.json):
        rows = {r["size"]: r for r in json.load(open(args.json))}
    for size in args.sizes:  # first every extraction (timed), then the probes
        out, timing = extract_size(size, args)
        rows.setdefault(size, {"size": size, "n_images": args.train + args.test}).update(timing, file=out)
        _save(list(rows.values()), args.json)
        print(f"{size} px: {rows[size]}", flush=True)
    from selfdistill.data import load_npz

    for size in args.sizes:
        ds = load_npz(rows[size]["file"])
        rows[size]["test_acc_logreg_C1_standardised"] = logreg_accuracy(ds)
        for std in ((False, True) if args.standardised else (False,)) if args.probe else ():
            reg, acc = probe_accuracy(ds, std, args.grid)
            key = "standardised" if std else "raw"
            rows[size][f"reg_{key}"], rows[size][f"test_acc_{key}"] = reg, acc
        _save(list(rows.values()), args.json)
        print(f"{size} px: {rows[size]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
