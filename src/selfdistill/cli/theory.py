"""selfdistill theory: the block model's closed forms beside the exact chain and trained probes.

(The first line is the description of ``selfdistill theory --help``: plain text, no markup.)

:func:`add_arguments` adds the options to a parser; :func:`run` does the work and returns the exit
code (the main ``selfdistill`` command registers both as its ``theory`` subcommand).

Per round it prints the training accuracy predicted by the closed form (label averaging on the
block model), the exact fixed point chain's (reduced to the K^2 label groups, which is exact by
symmetry) and, unless ``--no-train``, the accuracy of probes trained by :func:`selfdistill.distill`
on synthetic block-model features; then the noise threshold, t*, the over-averaging round and the
PLL verdict. Figures (written atomically into ``--output``): accuracy_vs_round.png, spectrum.png,
min_rounds_map.png, pll_vs_sd_map.png; and summary.json.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from ..noise import NOISE_KINDS
from .argtypes import RATE
from .argtypes import finite_float as _float
from .argtypes import int_at_least as _int_at_least
from .argtypes import positive_float as _positive

__all__ = ["add_arguments", "run"]

DEFAULT_OUTPUT = "selfdistill-theory"


# ------------------------------------------------------------------------------ argument types
def _ids(text):
    try:
        return [int(v) for v in text.split(",") if v.strip() != ""]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid ids {text!r}: expected comma-separated integers such as 0,0,1,1") from None


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the options of ``selfdistill theory`` to ``parser``; returns the parser."""
    if parser.description:  # argparse prints it as is: no RST markup in --help
        parser.description = parser.description.replace("``", "")
    g = parser.add_argument_group("block model")
    g.add_argument("--classes", type=_int_at_least(2), default=4, metavar="K",
                   help="number of classes K >= 2 (default: %(default)s)")
    g.add_argument("--per-class", type=_int_at_least(1), default=500, metavar="M", dest="per_class",
                   help="training points per class m >= 1 (default: %(default)s)")
    g.add_argument("--c", type=_float, default=0.4, metavar="C",
                   help="correlation of two points of the same class, d < c <= 1 (default: %(default)s)")
    g.add_argument("--d", type=_float, default=0.1, metavar="D",
                   help="correlation of points of different classes, -1 <= d < c, with a positive semi-definite "
                        "Gram matrix (d >= -(1 - c + m c)/((K - 1) m)); trained probes need d >= 0 "
                        "(default: %(default)s)")
    g.add_argument("--superclasses", type=_ids, default=None, metavar="IDS",
                   help="optional superclass id of every class, comma-separated (e.g. 0,0,1,1); needs --c-super")
    g.add_argument("--c-super", type=_float, default=None, metavar="CS", dest="c_super",
                   help="correlation of points of different classes in the same superclass, d <= CS <= c")
    g.add_argument("--reg", type=_positive, default=1e-3, metavar="REG",
                   help="L2 strength of every probe, > 0 (default: %(default)s)")
    n = parser.add_argument_group("label noise")
    n.add_argument("--noise", choices=NOISE_KINDS, default="symmetric",
                   help="noise model (rows = true class): symmetric, asymmetric (the authors' definition), pairflip, "
                        "class_cluster (labels move inside clusters of classes, see --clusters) (default: %(default)s)")
    n.add_argument("--rate", type=RATE, default=0.5, metavar="RATE",
                   help="noise rate in [0, 1]: the probability that a label is changed (default: %(default)s)")
    n.add_argument("--clusters", type=_ids, default=None, metavar="IDS",
                   help="class_cluster noise: cluster id of every class, comma-separated (default: the superclasses "
                        "if given, else pairs of consecutive classes 0,0,1,1,...)")
    n.add_argument("--seed", type=_int_at_least(0), default=0, metavar="SEED",
                   help="seed of the label corruption (exactly round(rate * m) labels flipped per class) "
                        "(default: %(default)s)")
    c = parser.add_argument_group("chain")
    c.add_argument("--rounds", type=_int_at_least(0), default=10, metavar="R",
                   help="self-distillation rounds after the teacher, >= 0: rounds 0..R (default: %(default)s)")
    c.add_argument("--top-k", type=_int_at_least(2), default=2, metavar="K", dest="top_k",
                   help="candidate-set size of the PLL student (the teacher's top-k labels, 2 <= k < classes) "
                        "(default: %(default)s)")
    c.add_argument("--no-train", action="store_true", dest="no_train",
                   help="skip the trained probes (distill on synthetic block features): closed form and exact only")
    c.add_argument("--test-per-class", type=_int_at_least(0), default=100, metavar="N", dest="test_per_class",
                   help="test points per class of the trained probes' features (default: %(default)s)")
    r = parser.add_argument_group("theory on real features (instead of the block model)")
    r.add_argument("--features", default=None, metavar="{digits,PATH.npz}",
                   help="compare label averaging (linearised, through the thin SVD of X) with the trained chain "
                        "on real features: 'digits' or an .npz with X_train, y_train, X_test, y_test; uses "
                        "--noise, --rate, --seed, --rounds and --regs; writes theory_vs_training.png and "
                        "summary.json")
    r.add_argument("--regs", type=_positive, nargs="+", default=[1e-2, 1e-3, 1e-4], metavar="REG",
                   help="with --features: the reg values to compare (default: 1e-2 1e-3 1e-4)")
    o = parser.add_argument_group("output")
    o.add_argument("--output", "-o", default=DEFAULT_OUTPUT, metavar="DIR",
                   help="output folder for the figures and summary.json, created if needed (default: ./%(default)s)")
    o.add_argument("--dpi", type=_int_at_least(20), default=120, help="figure resolution (default: %(default)s)")
    o.add_argument("--no-figures", action="store_true", dest="no_figures",
                   help="write summary.json only, no figures (faster)")
    o.add_argument("--quiet", "-q", action="store_true", help="print nothing but errors")
    return parser


# ------------------------------------------------------------------------------ run
def _run_real_features(args, t_start) -> int:
    """``--features``: label averaging's per-round test accuracy beside the trained chain's."""
    from .._io import ensure_output_dir, write_json
    from ..data import load_dataset
    from ..noise import make_noisy_labels
    from ..theory.spectral import theory_vs_training

    ds = load_dataset(args.features)
    K = ds.n_classes
    y_noisy, info = make_noisy_labels(ds.y_train, args.noise, args.rate, args.seed, X=ds.X_train,
                                      clusters=args.clusters, n_classes=K)
    rows = theory_vs_training(ds.X_train, y_noisy, ds.X_test, ds.y_test, args.regs, rounds=args.rounds,
                              y_true=ds.y_train, n_classes=K)
    out = ensure_output_dir(args.output, name="--output")
    if not args.quiet:
        print(f"{ds.name}: {ds.n_train} x {ds.n_features}, K={K}, {args.noise} noise {args.rate:g} "
              f"(realised {info['rates']['overall']:.3f})")
        print("   reg | round | test acc: label averaging | trained | agreement")
        for r in rows:
            print(f"{r['reg']:6g} | {r['round']:5d} |            {_fmt(r['theory_test_acc'])}      | "
                  f"{_fmt(r['trained_test_acc'])}  | {_fmt(r['test_agreement'])}")
    summary = {"features": args.features, "noise": args.noise, "rate": args.rate, "seed": args.seed,
               "rounds": args.rounds, "regs": list(args.regs), "rows": rows}
    write_json(out / "summary.json", summary)
    if not args.no_figures:
        from ..report.theory_figures import plot_theory_vs_training

        title = f"{ds.name}, {args.noise} noise {args.rate:g}: linearised theory vs trained probes"
        plot_theory_vs_training(rows, out / "theory_vs_training.png", dpi=args.dpi, title=title)
    if not args.quiet:
        print(f"figures and summary.json in {out}/ ({time.perf_counter() - t_start:.1f} s)")
    return 0


def _fmt(v, pct=True):
    if v is None:
        return "-"
    return f"{100 * v:6.1f}" if pct else str(v)


def run(args) -> int:
    """Run ``selfdistill theory`` with parsed ``args``; returns 0. Invalid settings raise ValueError."""
    from .._io import ensure_output_dir, write_json

    t_start = time.perf_counter()
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        raise ValueError(f"--output: output folder {args.output!r} is a file, expected a directory")
    if getattr(args, "features", None) is not None:
        return _run_real_features(args, t_start)
    bm, clusters = _block_model(args)
    y_noisy, N = _block_labels(args, bm, clusters)
    # the trained probes first: their features are the largest arrays (refused up front if too large)
    tr = _trained(args, y_noisy) if not args.no_train else {"acc": None, "test": None, "pll": None, "seconds": None}
    cf = _closed_form(args, bm, N, clusters)
    ex = _exact(args, bm, N)
    out = ensure_output_dir(args.output, name="--output")
    spec = bm.eigenvalues()
    files = {}
    if not args.no_figures:
        files = _figures(args, bm, spec, clusters, out, cf["acc"], ex["acc"], tr["acc"], cf["cond"]["pll_accuracy"],
                         ex["pll"], tr["pll"])
    summary = _summary(args, bm, spec, clusters, N, cf, ex, tr, files, t_start)
    write_json(out / "summary.json", summary)
    if not args.quiet:
        _print_block(args, N, cf, ex, tr)
        what = "summary.json" if args.no_figures else "figures and summary.json"
        print(f"{what} in {out}/ ({time.perf_counter() - t_start:.1f} s)")
    return 0


def _block_model(args):
    """The BlockModel of the options and the class clusters of class_cluster noise (or None)."""
    from ..theory.block import BlockModel

    K = args.classes
    if args.top_k >= K:
        raise ValueError(f"--top-k must be < --classes (={K}), got {args.top_k}")
    if (args.superclasses is None) != (args.c_super is None):
        raise ValueError("--superclasses and --c-super must be given together")
    bm = BlockModel(K, args.per_class, args.c, args.d, args.reg, superclasses=args.superclasses,
                    c_super=args.c_super)
    clusters = None
    if args.noise == "class_cluster":
        clusters = args.clusters if args.clusters is not None else (
            args.superclasses if args.superclasses is not None else [k // 2 for k in range(K)])
        if len(clusters) != K:
            raise ValueError(f"--clusters must give one cluster id per class ({K}), got {len(clusters)}")
    return bm, clusters


def _block_labels(args, bm, clusters):
    """Noisy labels (exact per-class corruption of the sorted training labels) and their counts N[k, j]."""
    from ..noise import corrupt_labels, realised_rates, transition_matrix

    C = transition_matrix(args.noise, args.classes, args.rate, clusters=clusters)
    y_noisy = corrupt_labels(bm.labels, C, args.seed, exact=True)
    return y_noisy, realised_rates(bm.labels, y_noisy, n_classes=args.classes)["confusion"]


def _closed_form(args, bm, N, clusters) -> dict:
    """Label averaging on the block model: accuracies per round, the PLL condition, t*, thresholds."""
    R = args.rounds
    return {"acc": bm.accuracy(N, R), "test": bm.test_accuracy(N, R), "cond": bm.pll_condition(N, top_k=args.top_k),
            "t_star": bm.min_rounds(N), "t_over": bm.over_averaging_round(N),
            "threshold": bm.noise_threshold(args.noise, clusters=clusters)}


def _exact(args, bm, N) -> dict:
    """The exact fixed-point chain, reduced to the K^2 label groups (exact by symmetry)."""
    ex = bm.exact_probs(N, args.rounds, pll=True, top_k=args.top_k)
    acc = bm.exact_accuracies(N, ex)
    hit = np.flatnonzero(acc["train"] >= 1.0 - 1e-12)
    return {"acc": acc["train"], "test": acc["test"], "pll": acc["pll"],
            "t_star": int(hit[0]) if hit.size else None, "residual": max(ex["residuals"])}


def _trained(args, y_noisy) -> dict:
    """Probes trained by distill() on synthetic block-model features with the same noisy labels."""
    from ..data import make_block_features
    from ..distill import distill
    from ..models import ModelId

    K, R = args.classes, args.rounds
    if args.d < 0:
        raise ValueError("--d must be >= 0 for the trained probes' synthetic features; pass --no-train")
    t0 = time.perf_counter()
    ds = make_block_features(K, args.per_class, args.c, args.d, n_test_per_class=args.test_per_class,
                             superclasses=args.superclasses, c_super=args.c_super)
    kw = dict(X_test=ds.X_test, y_test=ds.y_test) if args.test_per_class > 0 else {}
    res = distill(ds.X_train, y_noisy, reg=args.reg, rounds=R, pll=K > 2, top_k=args.top_k, pll_loss="uniform",
                  y_true=ds.y_train, n_classes=K, **kw)
    rounds = [ModelId.round_(t).name for t in range(R + 1)]
    return {"acc": np.array([res.metric(r, "train_acc") for r in rounds]),
            "test": np.array([res.metric(r, "test_acc") for r in rounds]) if kw else None,
            "pll": res.metric(ModelId.pll("uniform").name, "train_acc") if K > 2 else None,
            "seconds": time.perf_counter() - t0}


def _summary(args, bm, spec, clusters, N, cf, ex, tr, files, t_start) -> dict:
    """The content of summary.json."""
    R = args.rounds

    def at(v, t):
        return None if v is None else v[t]

    return {
        "model": {"n_classes": args.classes, "per_class": args.per_class, "c": args.c, "d": args.d, "reg": args.reg,
                  "superclasses": args.superclasses, "c_super": args.c_super, "shrinkage": bm.shrinkage},
        "noise": {"kind": args.noise, "rate": args.rate, "seed": args.seed, "clusters": clusters,
                  "label_counts": N.tolist()},
        "eigenvalues": [{"value": v, "multiplicity": k, "name": nm} for v, k, nm in spec],
        "rounds": [
            {"round": t, "closed_form_train_acc": cf["acc"][t], "exact_train_acc": ex["acc"][t],
             "trained_train_acc": at(tr["acc"], t), "closed_form_test_acc": cf["test"][t],
             "exact_test_acc": ex["test"][t], "trained_test_acc": at(tr["test"], t)}
            for t in range(R + 1)
        ],
        "noise_threshold": cf["threshold"],
        "min_rounds": cf["t_star"],
        "min_rounds_exact_within_R": ex["t_star"],
        "over_averaging_round": cf["t_over"],
        "pll": dict(cf["cond"], exact_accuracy=ex["pll"], trained_accuracy=tr["pll"]),
        "exact_residual_max": ex["residual"],
        "files": files,
        "seconds": {"total": time.perf_counter() - t_start, "training": tr["seconds"]},
    }


_VERDICTS = {"both": "PLL reaches 100% in one round; SD needs t* rounds",
             "PLL only": "PLL reaches 100% in one round; no number of SD rounds does",
             "SD only": "PLL does not reach 100%; SD does after t* rounds",
             "neither": "neither PLL nor any number of SD rounds reaches 100%"}


def _print_block(args, N, cf, ex, tr) -> None:
    """The printed table: per round, closed form / exact / trained accuracy; then t*, thresholds, PLL."""
    R = args.rounds
    print(f"K={args.classes}, m={args.per_class}, c={args.c:g}, d={args.d:g}, reg={args.reg:g}, "
          f"{args.noise} noise {args.rate:g}")
    print(f"label counts N[k, j] (rows: true class, columns: observed label):\n{N}")
    print()
    print("round | closed form | exact  | trained || test: closed form | exact  | trained")
    for t in range(R + 1):
        acc_tr = None if tr["acc"] is None else tr["acc"][t]
        test_tr = None if tr["test"] is None else tr["test"][t]
        print(f"{t:5d} |    {_fmt(cf['acc'][t])}   | {_fmt(ex['acc'][t])} | {_fmt(acc_tr)}  "
              f"||          {_fmt(cf['test'][t])}   | {_fmt(ex['test'][t])} | {_fmt(test_tr)}")
    print("(training-point accuracy in %, against the true labels; closed form = linearised label averaging, "
          "exact = fixed-point chain)")
    print()
    print(f"noise threshold: SD reaches 100% (some round, expected counts) iff rate < {cf['threshold']:.4f} "
          f"({args.noise} noise)")
    t_ex = ex["t_star"] if ex["t_star"] is not None else f"not within rounds 0..{R}"
    print(f"t* (minimum rounds to 100%): closed form {cf['t_star'] if cf['t_star'] is not None else 'never'}; "
          f"exact chain {t_ex}")
    print(f"over-averaging: accuracy first falls after round {cf['t_over']}" if cf["t_over"] is not None
          else "over-averaging: accuracy never falls (closed form)")
    cond = cf["cond"]
    print(f"PLL student (top-{args.top_k}): closed form {_fmt(cond['pll_accuracy']).strip()}%, exact "
          f"{_fmt(ex['pll']).strip()}%, trained {_fmt(tr['pll']).strip()}%; coverage "
          f"{'full' if cond['coverage'] else 'incomplete'}; verdict: {cond['verdict']} ({_VERDICTS[cond['verdict']]})")


def _figures(args, bm, spec, clusters, out, acc_cf, acc_ex, acc_tr, pll_cf, pll_ex, pll_tr):
    """Write the four figures (atomically, via _io.atomic_savefig); return name -> path."""
    from ..report.theory_figures import (
        plot_min_rounds_map,
        plot_pll_vs_sd_map,
        plot_spectrum_filter,
        plot_theory_accuracy,
    )
    from ..theory.block import phase_maps

    K, m, R = args.classes, args.per_class, args.rounds
    title = f"K={K}, m={m}, c={args.c:g}, d={args.d:g}, reg={args.reg:g}, {args.noise} noise {args.rate:g}"
    files = {}
    files["accuracy"] = str(plot_theory_accuracy(
        {"closed form": acc_cf, "exact": acc_ex, "trained": acc_tr},
        out / "accuracy_vs_round.png",
        pll={"closed form": pll_cf, "exact": pll_ex, "trained": pll_tr},
        title=title, dpi=args.dpi,
    ))
    files["spectrum"] = str(plot_spectrum_filter(
        spec.values, spec.multiplicities, spec.names, bm.shrinkage, out / "spectrum.png",
        rounds=sorted({0, 1, min(3, R), R}), dpi=args.dpi,
    ))
    rates = np.round(np.linspace(0.0, 0.95, 20), 4)
    gaps = np.linspace((1.0 - args.d) / 16, 1.0 - args.d, 16)
    maps = phase_maps(K, m, args.d, args.reg, args.noise, rates, gaps, clusters=clusters, top_k=args.top_k)
    map_title = f"K={K}, m={m}, d={args.d:g}, reg={args.reg:g}, {args.noise} noise (expected counts)"
    if args.superclasses is not None:
        map_title += ", no superclasses"
    setting = (args.rate, args.c - args.d)  # the options' own point on the maps
    files["min_rounds_map"] = str(plot_min_rounds_map(rates, gaps, maps["min_rounds"], out / "min_rounds_map.png",
                                                      title=map_title, source="closed form", setting=setting,
                                                      dpi=args.dpi))
    margin = _pll_margin(K, m, args.d, args.reg, args.noise, rates, gaps, clusters, args.top_k)
    files["pll_vs_sd_map"] = str(plot_pll_vs_sd_map(rates, gaps, maps["verdict"], out / "pll_vs_sd_map.png",
                                                    title=map_title, margin=margin, setting=setting, dpi=args.dpi))
    return files


def _pll_margin(K, m, d, reg, kind, rates, gaps, clusters, top_k):
    """PLL's training accuracy minus SD's best (closed form, expected counts) on the grid of phase_maps."""
    from ..theory.block import BlockModel

    margin = np.empty((len(gaps), len(rates)))
    for i, gap in enumerate(np.asarray(gaps, dtype=float).tolist()):
        bm = BlockModel(K, m, d + gap, d, reg)
        for j, rate in enumerate(np.asarray(rates, dtype=float).tolist()):
            cond = bm.pll_condition(bm.expected_counts(kind, rate, clusters=clusters), top_k=top_k)
            margin[i, j] = cond["pll_accuracy"] - cond["sd_best_accuracy"]
    return margin
