"""The ``selfdistill`` command. Thin: parse, check, call :mod:`selfdistill.experiments`, print.

Each subcommand has one function that adds its parser (``_add_<name>``) and one that runs it
(``_cmd_<name>``), registered in :data:`SUBCOMMANDS`; new subcommands (theory, sweep, report,
extract, bench) slot in the same way.

Exit codes: 0 success; 2 bad arguments or invalid settings (``selfdistill: error: ...``, no
traceback); 1 an I/O error; 130 interrupted (Ctrl-C; finished tasks are kept, rerun to resume).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys

__all__ = ["main", "build_parser", "SUBCOMMANDS"]

PROG = "selfdistill"
DEFAULT_OUTPUT = "selfdistill-output"


# ---------------------------------------------------------------------------- argument types
def _rate(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid rate {text!r}: expected a number in [0, 1]") from None
    if not 0.0 <= v <= 1.0:  # also rejects nan
        raise argparse.ArgumentTypeError(f"invalid rate {text!r}: noise rates must be in [0, 1]")
    return v


def _nonneg_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected an integer >= 0") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: must be an integer >= 0")
    return v


def _top_k(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected an integer >= 2") from None
    if v < 2:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: top-k must be >= 2 (and <= K-1)")
    return v


def _reg(text: str):
    if text.strip().lower() == "auto":
        return "auto"
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid reg {text!r}: expected 'auto' or a number > 0") from None
    if not (v > 0 and v < float("inf")):
        raise argparse.ArgumentTypeError(f"invalid reg {text!r}: must be 'auto' or a finite number > 0")
    return v


def _fraction(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected a number in [0, 1]") from None
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: must be in [0, 1]")
    return v


# ---------------------------------------------------------------------------- run
#: MainJobConfig field -> command-line option, to name the option in error messages.
_RUN_OPTIONS = {
    "dataset": "--dataset",
    "noise": "--noise",
    "rates": "--rates",
    "rounds": "--rounds",
    "seeds": "--seeds",
    "reg": "--reg",
    "pll_losses": "--pll-loss",
    "top_k": "--top-k",
    "exact_noise": "--exact-noise",
    "cluster_threshold": "--cluster-threshold",
}


def _add_run(sub):
    from .distill import PLL_LOSSES
    from .experiments import REG_RULE, MainJobConfig
    from .noise import NOISE_KINDS

    d = MainJobConfig()
    p = sub.add_parser(
        "run",
        help="the main job: distillation gain of SD rounds and PLL students vs label-noise rate",
        description=(
            "The main job (the paper's Figure 2). For every noise kind x noise rate x seed: corrupt the "
            "training labels, choose reg, train the teacher (round 0), ROUNDS self-distillation rounds and "
            "one partial-label (PLL) student per --pll-loss on the teacher's top-k labels, and record each "
            "model's test accuracy and its gain over round 0. Writes results.csv, config.json, summary.md, "
            "gain_vs_rate.png, accuracy_vs_round.png and tasks/*.json (one file per finished task) to "
            "--output. Interrupted runs resume: rerun the same command and finished tasks are loaded, "
            "not recomputed."
        ),
    )
    p.add_argument(
        "--dataset", default=d.dataset, metavar="{digits,block,PATH.npz}",
        help="features and labels: 'digits' (scikit-learn's bundled 8x8 digits, 10 classes, 70/30 split), "
             "'block' (synthetic block-correlation features of the theory, 4 classes) or the path of an "
             ".npz file with arrays X_train, y_train, X_test, y_test (default: %(default)s)",
    )
    p.add_argument(
        "--noise", nargs="+", choices=NOISE_KINDS, default=list(d.noise), metavar="KIND",
        help=f"one or more label-noise kinds, of {', '.join(NOISE_KINDS)}; class_cluster moves a label to "
             "another class of the same cluster of confusable classes (clusters computed once from the "
             "class-mean training features and clean labels) (default: " + " ".join(d.noise) + ")",
    )
    p.add_argument("--rates", nargs="+", type=_rate, default=list(d.rates), metavar="RATE",
                   help="one or more noise rates in [0, 1], the probability that a label is changed (default: "
                        + " ".join(f"{r:g}" for r in d.rates) + ")")
    p.add_argument("--rounds", type=_nonneg_int, default=d.rounds, metavar="R",
                   help="self-distillation rounds after the teacher, >= 0: models round 0..R (default: %(default)s)")
    p.add_argument("--seeds", nargs="+", type=_nonneg_int, default=list(d.seeds), metavar="SEED",
                   help="one or more non-negative integer seeds (label noise and reg-selection split); "
                        "results are mean ± std over them (default: " + " ".join(map(str, d.seeds)) + ")")
    p.add_argument("--reg", type=_reg, default=d.reg, metavar="{auto,FLOAT}",
                   help="L2 strength of every probe: a number > 0 used for every task, or "
                        + REG_RULE.replace("%", "%%") + " (default: %(default)s)")
    p.add_argument("--pll-loss", nargs="+", choices=PLL_LOSSES + ("none",), default=list(d.pll_losses), metavar="LOSS",
                   dest="pll_loss",
                   help="one PLL student per loss, of: uniform (cross-entropy to 1/k on each of the teacher's "
                        "top-k labels; the theory), candidate (-log of the top-k's total probability), gce "
                        "(generalised cross-entropy, q=0.7, averaged over the top-k; the authors' code); 'none': no PLL "
                        "student (needed for 2-class data) (default: "
                        + " ".join(d.pll_losses) + ")")
    p.add_argument("--top-k", type=_top_k, default=d.top_k, metavar="K", dest="top_k",
                   help="candidate-set size of the PLL students: the teacher's top-k labels, 2 <= k <= classes-1 "
                        "(default: %(default)s)")
    p.add_argument("--exact-noise", action="store_true",
                   help="flip exactly round(rate * n_k) labels of every class k (default: each label "
                        "independently with probability rate, so the realised rate varies a little)")
    p.add_argument("--cluster-threshold", type=_fraction, default=d.cluster_threshold, metavar="T",
                   help="class_cluster noise: cut the dendrogram of the classes (complete linkage of 1 - correlation "
                        "of class-mean features) at this fraction of its height, in [0, 1] (default: %(default)s)")
    p.add_argument("--output", "-o", default=DEFAULT_OUTPUT, metavar="DIR",
                   help="output folder, created if needed; rerunning the same command into the same folder resumes "
                        "(default: ./%(default)s)")
    p.add_argument("--quiet", "-q", action="store_true",
                   help="print nothing but errors (no progress bar, no table)")
    p.set_defaults(func=_cmd_run, parser=p)
    return p


def _cmd_run(args, parser) -> int:
    from . import experiments
    from ._io import ensure_output_dir
    from .data import DATASETS
    from .experiments import ConfigError, MainJobConfig

    if args.dataset not in DATASETS and not os.path.isfile(args.dataset):
        parser.error(
            f"argument --dataset: no such file: {args.dataset!r} (expected {' or '.join(DATASETS)} "
            "or the path of an existing .npz file)"
        )
    try:
        config = MainJobConfig(
            dataset=args.dataset, noise=tuple(args.noise), rates=tuple(args.rates), rounds=args.rounds,
            seeds=tuple(args.seeds), reg=args.reg, top_k=args.top_k,
            pll_losses=() if "none" in args.pll_loss else tuple(args.pll_loss),
            exact_noise=args.exact_noise, cluster_threshold=args.cluster_threshold,
        )
        try:
            ensure_output_dir(args.output, name="argument --output")
        except ValueError as exc:
            parser.error(str(exc))
        result = experiments.run_main_job(config, args.output, quiet=args.quiet,
                                          command=shlex.join([PROG] + list(args.argv)))
    except ConfigError as exc:
        parser.error(f"argument {_RUN_OPTIONS.get(exc.option, exc.option)}: {exc}")
    except KeyboardInterrupt:
        print(
            f"\n{PROG}: interrupted; finished tasks are saved in {os.path.join(args.output, 'tasks')}. "
            "Rerun the same command to resume.",
            file=sys.stderr,
        )
        return 130
    if not args.quiet:
        print(result.summary)
        print(f"Results in {result.output_dir}/: " + ", ".join(
            os.path.relpath(result.files[k], result.output_dir)
            for k in ("results", "summary", "config", "gain_figure", "round_figure")
        ) + f", tasks/ ({result.n_computed} task(s) computed, {result.n_loaded} loaded)")
    return 0


# ---------------------------------------------------------------------------- registry
#: name -> function adding the subparser (and setting ``func``). Future: theory, sweep, report,
#: extract, bench.
SUBCOMMANDS = {
    "run": _add_run,
}


def build_parser() -> argparse.ArgumentParser:
    """The ``selfdistill`` parser with every subcommand of :data:`SUBCOMMANDS`."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Self-distillation and partial-label refinement of linear probes under label noise "
                    "(Jeong & Chung, ICLR 2025).",
        epilog=f"Run '{PROG} <command> --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<command>", title="commands")
    sub.required = True
    for add in SUBCOMMANDS.values():
        add(sub)
    return parser


def main(argv=None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        args.argv = argv
        return int(args.func(args, args.parser) or 0)
    except SystemExit as exc:  # argparse: --help (0) and usage errors (2)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted", file=sys.stderr)
        return 130
    except ValueError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
