"""The real-feature experiment's page, from its committed results.

    python -m benchmarks.real_features page                # docs/real-features/: figures and tables
    python -m benchmarks.real_features theory --json results/fashion_mnist_effnet_label_averaging.json

``page`` needs only the committed store (``results/fashion_mnist_effnet.db``) and the committed
label-averaging rows: it runs ``selfdistill report`` into ``docs/real-features/`` (every figure and
table of the store, the test-selected protocol labelled) and writes ``docs/real-features/tables.md``:
what the store holds, the four protocols side by side per noise kind and rate (teacher, the best SD
round, each PLL student, mean over the seeds stored), the chance control (symmetric noise at rate
(K - 1) / K, where the given labels are independent of the truth) and label averaging beside the
trained chain. ``docs/results-real-features.md`` answers the experiment's questions from these.

``theory`` needs the feature file (``selfdistill extract``, see ``configs/fashion_mnist_effnet.toml``):
for every stored task of a fixed-reg table (``--dataset``, default ``exact_fixed``) it rebuilds the
task's noisy labels (:func:`selfdistill.experiments.runner.task_labels`), computes
:func:`selfdistill.theory.label_averaging` (P_t - 1/K = A^(t+1) (Y - 1/K), A = G (G + K n reg I)^-1,
on the same training features) for rounds 0..R and writes one row per (task, round): the closed
form's test accuracy beside the stored trained chain's. Resumable: tasks already in ``--json`` are kept.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "fashion_mnist_effnet.toml"
DB = ROOT / "results" / "fashion_mnist_effnet.db"
THEORY = ROOT / "results" / "fashion_mnist_effnet_label_averaging.json"
PAGE = ROOT / "docs" / "real-features"
PROTOCOLS = ("exact_fixed", "exact_honest", "recipe_published", "recipe_last")


def _write(path, text):
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def theory(args) -> int:
    from selfdistill.experiments import read_rows
    from selfdistill.experiments.config import Task, load_sweep_config
    from selfdistill.experiments.runner import prepare_datasets, task_labels
    from selfdistill.theory import label_averaging

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
        acc = np.mean(np.argmax(la.test_probs, axis=2) == yt, axis=1)
        trained = {r["model"]: r["test_acc"] for r in stored
                   if (r["noise"], r["rate"], r["seed"]) == (noise, rate, seed)}
        for t in range(config.rounds + 1):
            rows.append({"dataset": args.dataset, "noise": noise, "rate": rate, "seed": seed, "round": t,
                         "reg": float(spec.reg), "theory_test_acc": float(acc[t]),
                         "trained_test_acc": trained.get(f"round {t}")})
        _write(args.json, json.dumps(rows, indent=1))
        print(f"[{i}/{len(todo)}] {noise} {rate:g} seed {seed}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0


def _means(rows):
    """{(dataset, noise, rate): {model: (mean test acc, seeds)}} over the stored seeds."""
    acc = defaultdict(lambda: defaultdict(list))
    for r in rows:
        acc[(r["dataset"], r["noise"], r["rate"])][r["model"]].append(r["test_acc"])
    return {k: {m: (float(np.mean(v)), len(v)) for m, v in ms.items()} for k, ms in acc.items()}


def _pct(x):
    return "-" if x is None else f"{100 * x:.1f}"


MODELS = ("round 0", "round 1", "round 2", "round 3", "round 4", "pll-uniform", "pll-candidate", "pll-gce")
PLL = ("pll-uniform", "pll-candidate", "pll-gce")


def _store_section(rows):
    out = ["## What the store holds", "", "| protocol | tasks stored | seeds |", "|---|---:|---|"]
    for p in PROTOCOLS:
        tasks = {(r["noise"], r["rate"], r["seed"]) for r in rows if r["dataset"] == p}
        seeds = sorted({t[2] for t in tasks})
        out.append(f"| {p} | {len(tasks)} of 48 | {', '.join(map(str, seeds)) or '-'} |")
    return out


def _cell(m):
    """teacher / best SD round (its round) / each PLL student (seeds) of one protocol's means."""
    rounds = {int(k.split()[1]): v[0] for k, v in m.items() if k.startswith("round ") and k != "round 0"}
    best = max(rounds, key=rounds.get) if rounds else None
    sd = f"{_pct(rounds[best])} (r{best})" if best is not None else "-"
    pll = " / ".join(_pct(m[k][0]) if k in m else "-" for k in PLL)
    return f"{_pct(m['round 0'][0])} / {sd} / {pll} ({m['round 0'][1]})"


def _protocol_sections(means, present):
    out = []
    for noise in ("class_cluster", "symmetric"):
        out += ["", f"## {noise} noise: the protocols side by side", "",
                "Per protocol: teacher (round 0) / best SD round (its round) / pll-uniform / pll-candidate /"
                " pll-gce; (n) = seeds.", "",
                "| rate | " + " | ".join(present) + " |", "|---:|" + "---|" * len(present)]
        for rate in sorted({k[2] for k in means}):
            cells = [_cell(means[(p, noise, rate)]) if (p, noise, rate) in means else "-" for p in present]
            out.append(f"| {rate:g} | " + " | ".join(cells) + " |")
    return out


def _chance_section(rows, present, K):
    chance = (K - 1) / K
    out = ["", f"## The chance control: symmetric noise at rate {chance:g}", "",
           f"At rate (K - 1) / K = {chance:g} the given label is uniform over the K = {K} classes whatever the"
           f" true class: no model trained on these labels can know the truth, so a protocol that reads no"
           f" test label must score about 1/K = {100 / K:.0f}% on the balanced test set (in expectation over the"
           " noise; one draw of the labels scatters around it). Every model, every seed stored:", "",
           "| protocol | seed | " + " | ".join(MODELS) + " |", "|---|---:|" + "---:|" * len(MODELS)]
    for p in present:
        for seed in sorted({r["seed"] for r in rows if r["dataset"] == p}):
            accs = {r["model"]: r["test_acc"] for r in rows if r["dataset"] == p and r["noise"] == "symmetric"
                    and abs(r["rate"] - chance) < 1e-9 and r["seed"] == seed}
            if accs:
                out.append(f"| {p} | {seed} | " + " | ".join(_pct(accs.get(m)) for m in MODELS) + " |")
    return out


def _theory_section(la_rows):
    out = ["", "## Label averaging (closed form) beside the trained chain", ""]
    if not la_rows:
        return out + ["No rows yet: `python -m benchmarks.real_features theory` computes them (needs the features)."]
    out += ["Test accuracy of `label_averaging` (the linearised chain) and of the exact chain of `exact_fixed`,"
            " same labels, same reg; mean over the seeds computed; diff = closed form - trained (points).", "",
            "| noise | rate | " + " | ".join(f"round {t}: closed / trained / diff" for t in range(5)) + " |",
            "|---|---:|" + "---|" * 5]
    grid: dict = defaultdict(lambda: defaultdict(list))
    for r in la_rows:
        if r["trained_test_acc"] is not None:
            grid[(r["noise"], r["rate"])][r["round"]].append((r["theory_test_acc"], r["trained_test_acc"]))
    for (noise, rate), per in sorted(grid.items()):
        cells = []
        for t in range(5):
            v = np.array(per.get(t, []))
            diff = 100 * (v[:, 0] - v[:, 1]).mean() if v.size else 0.0
            cells.append(f"{_pct(v[:, 0].mean())} / {_pct(v[:, 1].mean())} / {diff:+.1f}" if v.size else "-")
        out.append(f"| {noise} | {rate:g} | " + " | ".join(cells) + " |")
    return out


def tables(rows, la_rows, K=10) -> str:
    """The page's Markdown: the store's contents, protocols side by side, the chance control, theory."""
    means = _means(rows)
    present = [p for p in PROTOCOLS if any(k[0] == p for k in means)]
    head = ["# The real-feature experiment: tables from the committed results", "",
            "Made by `python -m benchmarks.real_features page` from `results/fashion_mnist_effnet.db` (test"
            " accuracy in %, mean over the seeds stored). `recipe_published` chooses its checkpoints and its"
            " reported accuracy on TEST labels (the authors' protocol): a labelled reference, not a result.", ""]
    body = _store_section(rows) + _protocol_sections(means, present) + _chance_section(rows, present, K)
    return "\n".join(head + body + _theory_section(la_rows)) + "\n"


def page(args) -> int:
    from selfdistill.experiments import ResultStore
    from selfdistill.report.sweep_report import write_report

    with ResultStore(args.db, create=False) as store:
        rows, config, settings = store.rows(), store.get_meta("config"), store.config_settings()
    write_report(rows, args.out, title="Fashion-MNIST EfficientNet-Lite0 (configs/fashion_mnist_effnet.toml)",
                 config=config, settings=settings)
    la = json.load(open(args.theory, encoding="utf-8")) if os.path.exists(args.theory) else []
    _write(Path(args.out) / "tables.md", tables(rows, la))
    n_tasks = len({(r["dataset"], r["noise"], r["rate"], r["seed"]) for r in rows})
    print(f"wrote {args.out}: the report and tables.md ({n_tasks} tasks)")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.real_features", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("page", help="docs/real-features/ from the committed results")
    p.add_argument("--db", default=str(DB), help="the results store (default: %(default)s)")
    p.add_argument("--theory", default=str(THEORY), help="label-averaging rows (default: %(default)s)")
    p.add_argument("--out", default=str(PAGE), help="the page's folder (default: %(default)s)")
    p.set_defaults(func=page)
    t = sub.add_parser("theory", help="label averaging beside each stored chain (needs the features)")
    t.add_argument("--config", default=str(CONFIG), help="the sweep config (default: %(default)s)")
    t.add_argument("--db", default=str(DB), help="the results store (default: %(default)s)")
    t.add_argument("--dataset", default="exact_fixed", help="a fixed-reg [[datasets]] table (default: %(default)s)")
    t.add_argument("--json", default=str(THEORY), help="rows out, resumed when it exists (default: %(default)s)")
    t.set_defaults(func=theory)
    args = ap.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
