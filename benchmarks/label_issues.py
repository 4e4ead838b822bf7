"""Label-issue benchmark (issue 12): ``python -m benchmarks.label_issues [--quick] [--datasets ...]``.

For every dataset x noise kind x rate x seed: corrupt the training labels, choose reg once from the
noisy labels (:func:`selfdistill.select_reg`, shared by the methods that take a reg), then

* ``selfdistill``: :func:`selfdistill.inspect_labels` at that reg (its model chosen by its own rule,
  the one-standard-error rule on held-out noisy labels), fixed by pruning (its default; relabelling
  is measured too);
* ``cleanlab-probe``: ``cleanlab.filter.find_label_issues`` (its defaults) on 5-fold out-of-fold
  probabilities of the same probe at the same reg (``out_of_fold_probabilities`` of the sweep's
  cleanlab baseline), fixed by pruning (refit on the kept points, as the sweep's baseline does);
* ``cleanlab-default``: ``cleanlab.classification.CleanLearning()`` with all its defaults
  (scikit-learn ``LogisticRegression()``, 5-fold cross-validation), its ``fit`` prunes and refits.

Measured against the clean labels (never used by any method): precision, recall, F1 of the flags,
AUROC of the ranking (lower label quality = more suspect; cleanlab: its default
``get_label_quality_scores``), accuracy of the corrected labels (a flagged label replaced by the
method's suggestion: ours its model's top class; cleanlab's the out-of-fold top class other than
the given one), test accuracy of the teacher and after fixing, seconds (reg selection not included;
it is reported on its own).

Datasets: ``digits`` (selfdistill's loader), ``wine``, ``breast_cancer`` (scikit-learn's bundled
data, stratified 70/30 split with seed 0, standardised with the training mean and std), or the path
of a feature ``.npz`` (``selfdistill extract``'s format: X_train, y_train, X_test, y_test).
Development datasets (used to choose the rule, not for the evaluation): ``iris``, ``synth``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

import numpy as np

DATASETS = ("digits", "wine", "breast_cancer")
DEV_DATASETS = ("iris", "synth")
KINDS = ("symmetric", "class_cluster", "pairflip")
RATES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
SEEDS = (0, 1, 2)
METHODS = ("selfdistill", "cleanlab-probe", "cleanlab-default")
#: also measurable: selfdistill with in-sample scoring forced (cv=None), the rule before out-of-fold scoring
EXTRA_METHODS = ("selfdistill-insample",)
QUICK = dict(datasets=("digits", "wine"), kinds=("symmetric",), rates=(0.2, 0.6), seeds=(0,))


# ---------------------------------------------------------------- data
def _split_standardise(X, y, name):
    from sklearn.model_selection import train_test_split

    tr, te = train_test_split(np.arange(y.shape[0]), test_size=0.3, stratify=y, random_state=0)
    mu, sd = X[tr].mean(0), X[tr].std(0)
    sd[sd == 0] = 1.0
    X = (X - mu) / sd
    return dict(name=name, X=X[tr], y=y[tr].astype(np.int64), X_test=X[te], y_test=y[te].astype(np.int64))


def _stratified_subset(y, n, what):
    """Indices of a stratified subset of n of the rows labelled y (seed 0, sorted); all of them if n >= len(y)."""
    from sklearn.model_selection import train_test_split

    if n is None or n >= y.shape[0]:
        return np.arange(y.shape[0])
    if n < 2 * (int(y.max()) + 1):
        raise SystemExit(f"--limit-{what} {n}: expected at least 2 points per class ({2 * (int(y.max()) + 1)})")
    keep, _ = train_test_split(np.arange(y.shape[0]), train_size=n, stratify=y, random_state=0)
    return np.sort(keep)


def load(name: str, subsample=None, limit_train=None, limit_test=None) -> dict:
    """{name, X, y, X_test, y_test} of a benchmark dataset name or a feature .npz path.

    limit_train / limit_test: stratified subsets (seed 0) of the training / test points, taken before
    any noise; the dataset's name then says so (``NAME[5000/2000]``).
    """
    import sklearn.datasets as skd

    if name == "digits":
        from selfdistill.data import load_dataset

        ds = load_dataset("digits", seed=0)
        d = dict(name=name, X=ds.X_train, y=ds.y_train, X_test=ds.X_test, y_test=ds.y_test)
    elif name in ("wine", "breast_cancer", "iris"):
        X, y = getattr(skd, f"load_{name}")(return_X_y=True)
        d = _split_standardise(X.astype(np.float64), y, name)
    elif name == "synth":  # development only: 10 Gaussian classes in 40 dimensions, ~80% probe accuracy
        X, y = skd.make_classification(3000, 40, n_informative=20, n_redundant=5, n_classes=10,
                                       n_clusters_per_class=1, class_sep=1.5, random_state=123)
        d = _split_standardise(X, y, name)
    elif os.path.isfile(name):
        from selfdistill.data import load_dataset

        ds = load_dataset(name)
        d = dict(name=os.path.splitext(os.path.basename(name))[0], X=ds.X_train, y=ds.y_train,
                 X_test=ds.X_test, y_test=ds.y_test)
    else:
        raise SystemExit(f"unknown dataset {name!r}: expected one of {DATASETS + DEV_DATASETS} or a .npz path")
    if subsample:
        d["X"], d["y"] = d["X"][:subsample], d["y"][:subsample]
    if limit_train or limit_test:
        tr = _stratified_subset(d["y"], limit_train, "train")
        te = _stratified_subset(d["y_test"], limit_test, "test")
        d.update(X=d["X"][tr], y=d["y"][tr], X_test=d["X_test"][te], y_test=d["y_test"][te])
        d["name"] = f"{d['name']}[{tr.shape[0]}/{te.shape[0]}]"
    return d


# ---------------------------------------------------------------- methods
def run_selfdistill(d, yn, y_true, reg, seed, cv="auto"):
    from selfdistill import inspect_labels
    from selfdistill.label_issues import refit_on_fixed

    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # in-sample memorisation: measured here, not warned
        res = inspect_labels(d["X"], yn, reg=reg, seed=seed, X_test=d["X_test"], y_test=d["y_test"],
                             y_true=y_true, n_classes=d["K"], fix="prune", cv=cv)
    seconds = time.perf_counter() - t
    relabelled = refit_on_fixed(d["X"], yn, res.is_issue, res.suggested, reg, fix="relabel", n_classes=d["K"])
    return {**res.metrics, "test_fixed": res.test_acc["fixed"], "test_teacher": res.test_acc["teacher"],
            "test_relabel": float(np.mean(relabelled.predict(d["X_test"]) == d["y_test"])), "seconds": seconds,
            "model": res.model, "scoring": res.scoring["mode"]}


def run_selfdistill_insample(d, yn, y_true, reg, seed):
    return run_selfdistill(d, yn, y_true, reg, seed, cv=None)


def _cleanlab_metrics(yn, y_true, issues, P, scores):
    from selfdistill.label_issues import issue_metrics

    Q = P.copy()
    Q[np.arange(yn.shape[0]), yn] = -np.inf
    return issue_metrics(issues, scores, Q.argmax(1), yn, y_true)


def run_cleanlab_probe(d, yn, y_true, reg, seed):
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    from selfdistill.experiments.baselines import out_of_fold_probabilities
    from selfdistill.label_issues import refit_on_fixed

    t = time.perf_counter()
    P, _ = out_of_fold_probabilities(d["X"], yn, reg, d["K"], 5, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        issues = np.asarray(find_label_issues(labels=yn, pred_probs=P), dtype=bool)
    probe = refit_on_fixed(d["X"], yn, issues, yn, reg, fix="prune", n_classes=d["K"])
    seconds = time.perf_counter() - t
    m = _cleanlab_metrics(yn, y_true, issues, P, get_label_quality_scores(yn, P))
    return {**m, "test_fixed": float(np.mean(probe.predict(d["X_test"]) == d["y_test"])), "seconds": seconds}


def run_cleanlab_default(d, yn, y_true, reg, seed):
    from cleanlab.classification import CleanLearning

    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cl = CleanLearning(seed=seed, verbose=False)
        cl.fit(d["X"], yn)
    seconds = time.perf_counter() - t
    info = cl.get_label_issues()
    from selfdistill.label_issues import issue_metrics

    issues = info["is_label_issue"].to_numpy(bool)
    # cleanlab's own quality scores and suggestion (its predicted_label, the out-of-fold top class)
    m = issue_metrics(issues, info["label_quality"].to_numpy(float), info["predicted_label"].to_numpy(int), yn, y_true)
    return {**m, "test_fixed": float(np.mean(cl.predict(d["X_test"]) == d["y_test"])), "seconds": seconds}


RUNNERS = {"selfdistill": run_selfdistill, "selfdistill-insample": run_selfdistill_insample,
           "cleanlab-probe": run_cleanlab_probe,
           "cleanlab-default": run_cleanlab_default}


def diagonally_dominant(matrix) -> bool:
    """True when every class keeps its own label more often than it gets any single other one.

    C[k, k] > C[k, j] for all j != k (rows = true class). Otherwise some class's labels are mostly
    one wrong class (pairflip at rate >= 0.5, two classes at >= 0.5, ...): from the labels alone
    that class cannot be told from the one it is flipped to, and every method's flags invert.
    """
    C = np.asarray(matrix, dtype=float)
    off = C - np.diag(np.diag(C)) - np.eye(C.shape[0])  # the diagonal pushed below every entry
    return bool(np.all(np.diag(C) > off.max(axis=1)))


# ---------------------------------------------------------------- one cell
def run_cell(d, kind, rate, seed, methods):
    from selfdistill import select_reg
    from selfdistill.noise import make_noisy_labels

    y_true = d["y"]
    yn, info = make_noisy_labels(y_true, kind, rate, seed, X=d["X"], n_classes=d["K"])
    yn = np.asarray(yn)
    t = time.perf_counter()
    reg, _ = select_reg(d["X"], yn, seed=seed, n_classes=d["K"])
    reg_seconds = time.perf_counter() - t
    rows = []
    for method in methods:
        r = RUNNERS[method](d, yn, y_true, reg, seed)
        rows.append({"dataset": d["name"], "noise": kind, "rate": rate, "seed": seed, "method": method, "reg": reg,
                     "reg_seconds": reg_seconds, "dominant": diagonally_dominant(info["matrix"]), **r})
    return rows


# ---------------------------------------------------------------- tables
COLS = (("f1", "F1"), ("precision", "prec"), ("recall", "rec"), ("auroc", "AUROC"), ("corrected_acc", "corr acc"),
        ("test_fixed", "test fixed"), ("seconds", "s"))


def _mean(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return float(np.mean(vals)) if vals else float("nan")


def aggregate(rows):
    """{(dataset, noise, rate, method): {metric: mean over seeds}} plus the teacher's test accuracy."""
    cells = {}
    for r in rows:
        cells.setdefault((r["dataset"], r["noise"], r["rate"], r["method"]), []).append(r)
    out = {}
    for key, rs in cells.items():
        out[key] = {k: _mean(rs, k) for k, _ in COLS}
        out[key]["test_teacher"] = _mean(rs, "test_teacher")
        out[key]["noise_rate"] = _mean(rs, "noise_rate")
        out[key]["dominant"] = all(r.get("dominant", True) for r in rs)
        if key[3] == "selfdistill":
            out[key]["test_relabel"] = _mean(rs, "test_relabel")
        out[key]["n_seeds"] = len(rs)
        if key[3] == "selfdistill":
            out[key]["models"] = sorted({r["model"] for r in rs})
    return out


def format_table(rows, methods):
    """One Markdown table, a row per dataset x noise x rate (means over seeds); each cell lists the methods."""
    agg = aggregate(rows)
    keys = sorted({k[:3] for k in agg}, key=lambda k: (k[0], k[1], k[2]))
    cols = [c for c in COLS if c[0] != "test_fixed"]
    head = ["dataset", "noise", "rate", "wrong"] + [short for _, short in cols] + ["test: teacher; fixed", "sd model"]
    lines = [f"Each cell: {' / '.join(methods)} (percent; seconds); wrong: the realised fraction of wrong labels",
             "", "| " + " | ".join(head) + " |", "|---|---|---:|---:|" + "---:|" * (len(cols) + 1) + "---|"]
    for k in keys:
        a = [agg.get(k + (m,)) for m in methods]
        cells = [k[0], k[1], f"{k[2]:g}", f"{100 * next(x for x in a if x)['noise_rate']:.1f}"]
        for col, _ in cols:
            fmt = (lambda v: f"{v:.2f}") if col == "seconds" else (lambda v: f"{100 * v:.1f}")
            cells.append(" / ".join(fmt(x[col]) if x else "-" for x in a))
        sd = agg.get(k + ("selfdistill",), {})
        cells.append(f"{100 * sd.get('test_teacher', float('nan')):.1f}; "
                     + " / ".join(f"{100 * x['test_fixed']:.1f}" if x else "-" for x in a)
                     + (f" (relabel {100 * sd['test_relabel']:.1f})" if "test_relabel" in sd else ""))
        cells.append(", ".join(sd.get("models", [])))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def goal_summary(rows, baseline):
    """The issue's goal against one baseline: wins at rates >= 0.4, F1 gaps at <= 0.2, speed."""
    agg = aggregate(rows)
    keys = sorted({k[:3] for k in agg if k[3] == "selfdistill" and k[:3] + (baseline,) in agg})
    if not keys:
        return f"(no {baseline} results)"
    clean = [k for k in keys if agg[k + ("selfdistill",)]["noise_rate"] == 0]  # e.g. class_cluster, 2 classes
    keys = [k for k in keys if k not in clean]
    hi = [k for k in keys if k[2] >= 0.4 - 1e-9]
    lo = [k for k in keys if k[2] <= 0.2 + 1e-9]
    def ours(k, c):
        return agg[k + ("selfdistill",)][c]
    def theirs(k, c):
        return agg[k + (baseline,)][c]

    def wins(cells):
        f1 = sum(ours(k, "f1") > theirs(k, "f1") for k in cells)
        acc = sum(ours(k, "corrected_acc") > theirs(k, "corrected_acc") for k in cells)
        both = sum(ours(k, "f1") > theirs(k, "f1") and ours(k, "corrected_acc") > theirs(k, "corrected_acc")
                   for k in cells)
        return (f"F1 ahead in {f1}/{len(cells)} cells, corrected-label accuracy ahead in {acc}/{len(cells)}, "
                f"both in {both}/{len(cells)}" + (f" ({100 * both / len(cells):.0f}%)" if cells else ""))

    hi_dom = [k for k in hi if agg[k + ("selfdistill",)]["dominant"]]
    gaps = [100 * (theirs(k, "f1") - ours(k, "f1")) for k in lo]
    within = sum(g <= 2.0 for g in gaps)
    t_ours = sum(ours(k, "seconds") for k in keys)
    t_theirs = sum(theirs(k, "seconds") for k in keys)
    lines = [f"vs {baseline}:",
             f"  rates >= 0.4: {wins(hi)}",
             f"  rates >= 0.4, diagonally dominant noise only: {wins(hi_dom)}",
             f"  rates <= 0.2: within 2 F1 points in {within}/{len(lo)} cells"
             + (f" (largest gap {max(gaps):+.1f} points)" if gaps else ""),
             f"  seconds (sum over cells of the seed means): selfdistill {t_ours:.1f}, {baseline} {t_theirs:.1f}"
             + (f" ({t_theirs / t_ours:.2f}x)" if t_ours > 0 else "")
             + f"; faster in {sum(ours(k, 'seconds') < theirs(k, 'seconds') for k in keys)}/{len(keys)} cells"]
    if clean:
        left_out = ", ".join(f"{k[0]} {k[1]} {k[2]:g}" for k in clean)
        lines.append(f"  ({len(clean)} cells without a wrong label left out: {left_out})")
    return "\n".join(lines)


# ---------------------------------------------------------------- main
def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.label_issues", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a tiny version (CI smoke test): digits (400 points) "
                   "and wine, symmetric noise, rates 0.2 and 0.6, seed 0")
    p.add_argument("--datasets", nargs="+", metavar="NAME", help=f"of {DATASETS} (development: {DEV_DATASETS}) "
                   "or a feature .npz path (default: the three)")
    p.add_argument("--noise", nargs="+", choices=KINDS, metavar="KIND", help=f"of {KINDS} (default: all)")
    p.add_argument("--rates", nargs="+", type=float, metavar="RATE", help="default: 0.1 ... 0.8")
    p.add_argument("--seeds", nargs="+", type=int, metavar="SEED", help="default: 0 1 2")
    p.add_argument("--methods", nargs="+", choices=METHODS + EXTRA_METHODS, metavar="METHOD",
                   help=f"of {METHODS + EXTRA_METHODS} (default: {' '.join(METHODS)})")
    p.add_argument("--limit-train", type=int, metavar="N", help="a stratified subset (seed 0) of N training points "
                   "of every dataset, taken before the noise (default: all)")
    p.add_argument("--limit-test", type=int, metavar="M", help="a stratified subset (seed 0) of M test points")
    p.add_argument("--json", metavar="PATH", help="write every row (one per cell, seed and method) as JSON, after "
                   "every setting x seed; an existing file is resumed: its settings x seeds are kept, not recomputed")
    p.add_argument("--markdown", metavar="PATH", help="write the table and the goal summary as Markdown")
    p.add_argument("--tables-from", metavar="JSON", help="compute nothing: print (and --markdown) the tables of "
                   "the rows saved by an earlier --json")
    args = p.parse_args(argv)
    if args.tables_from:
        with open(args.tables_from, encoding="utf-8") as fh:
            rows = json.load(fh)
        _add_dominance(rows)
        return _report(rows, args.methods or [m for m in METHODS if any(r["method"] == m for r in rows)], args)
    q = QUICK if args.quick else {}
    datasets = args.datasets or q.get("datasets", DATASETS)
    kinds = args.noise or q.get("kinds", KINDS)
    rates = args.rates or q.get("rates", RATES)
    seeds = args.seeds or q.get("seeds", SEEDS)
    methods = args.methods or METHODS
    for flag in ("limit_train", "limit_test"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            p.error(f"--{flag.replace('_', '-')} {getattr(args, flag)}: expected a positive number of points")
    rows, done = _resume(args.json, methods)
    for name in datasets:
        d = load(name, subsample=400 if args.quick and name == "digits" else None,
                 limit_train=args.limit_train, limit_test=args.limit_test)
        d["K"] = int(max(d["y"].max(), d["y_test"].max())) + 1
        for kind in kinds:
            for rate in rates:
                t = time.perf_counter()
                todo = [s for s in seeds if (d["name"], kind, rate, s) not in done]
                for seed in todo:
                    rows += run_cell(d, kind, rate, seed, methods)
                    if args.json:
                        _write(args.json, json.dumps(rows, indent=1))
                if not todo:
                    continue
                print(f"[{d['name']} {kind} {rate:g}] {time.perf_counter() - t:.1f} s", file=sys.stderr, flush=True)
    if args.json:
        _write(args.json, json.dumps(rows, indent=1))
    return _report(rows, methods, args)


def _key(row):
    return row["dataset"], row["noise"], row["rate"], row["seed"]


def _resume(path, methods):
    """(rows, done) of an earlier --json run: done = the settings x seeds that have every method asked for.

    Every row is kept except those of unfinished settings x seeds for the methods about to be rerun,
    so a resumed run neither loses nor duplicates a row.
    """
    if not path or not os.path.exists(path):
        return [], set()
    try:
        with open(path, encoding="utf-8") as fh:
            rows = json.load(fh)
        by_key = {}
        for r in rows:
            by_key.setdefault(_key(r), set()).add(r["method"])
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise SystemExit(f"--json {path!r}: cannot resume from it ({exc!r}); move it away to start afresh") from None
    done = {k for k, have in by_key.items() if set(methods) <= have}
    rows = [r for r in rows if _key(r) in done or r["method"] not in methods]
    if done:
        print(f"resuming {path}: {len(done)} settings x seeds done", file=sys.stderr)
    return rows, done


def _add_dominance(rows):
    """Rows saved before the "dominant" field: recompute it from the noise model (no method is rerun)."""
    from selfdistill.noise import make_noisy_labels

    cache, data = {}, {}
    for r in rows:
        if "dominant" in r:
            continue
        key = (r["dataset"], r["noise"], r["rate"], r["seed"])
        if key not in cache:
            if r["dataset"] not in data:
                d = load(r["dataset"])
                data[r["dataset"]] = (d, int(max(d["y"].max(), d["y_test"].max())) + 1)
            d, K = data[r["dataset"]]
            _, info = make_noisy_labels(d["y"], r["noise"], r["rate"], r["seed"], X=d["X"], n_classes=K)
            cache[key] = diagonally_dominant(info["matrix"])
        r["dominant"] = cache[key]


def _report(rows, methods, args):
    table = format_table(rows, methods)
    goals = "\n".join(goal_summary(rows, b) for b in methods[1:] if "selfdistill" in methods)
    print(table)
    print()
    print(goals)
    if args.markdown:
        _write(args.markdown, table + "\n\n```\n" + goals + "\n```\n")
    return 0


def _write(path, text):
    from selfdistill._io import atomic_write_text

    atomic_write_text(path, text)


if __name__ == "__main__":
    if __package__ in (None, ""):  # pragma: no cover - run as a script from a checkout
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.exit(main())
