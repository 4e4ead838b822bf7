"""selfdistill.cli.theory: the `selfdistill theory` options and run()."""

import argparse
import json

import pytest

from selfdistill.cli.theory import add_arguments, run

FIGURES = {"accuracy_vs_round.png", "spectrum.png", "min_rounds_map.png", "pll_vs_sd_map.png"}


def _parse(*argv):
    return add_arguments(argparse.ArgumentParser(prog="selfdistill theory")).parse_args(list(argv))


def test_defaults_are_the_issue_example():
    a = _parse()
    assert (a.classes, a.per_class, a.c, a.d, a.noise, a.rate, a.reg, a.rounds) == (
        4, 500, 0.4, 0.1, "symmetric", 0.5, 1e-3, 10)
    assert a.output and a.quiet is False and a.no_train is False


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """One full run (trained probes and figures) shared by the tests below: figures are the slow part."""
    out = tmp_path_factory.mktemp("cli") / "theory"
    args = _parse("--classes", "3", "--per-class", "12", "--c", "0.4", "--d", "0.1", "--noise", "asymmetric",
                  "--rate", "0.4", "--reg", "1e-4", "--rounds", "4", "--test-per-class", "2", "--dpi", "40",
                  "--output", str(out))
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = run(args)
    return rc, buf.getvalue(), out


def test_run_prints_table_and_writes_figures(small_run):
    rc, text, out = small_run
    assert rc == 0
    for needle in ["round | closed form | exact  | trained", "noise threshold", "t* (minimum rounds to 100%)",
                   "PLL student (top-2)", "verdict:"]:
        assert needle in text
    assert len([line for line in text.splitlines() if line.strip()[:1].isdigit() and "|" in line]) == 5
    # only the finished files: atomic writes leave no temporary files behind
    assert {p.name for p in out.iterdir()} == FIGURES | {"summary.json"}
    for name in FIGURES:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_run_summary_trained_equals_exact(small_run):
    _, _, out = small_run
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["rounds"]) == 5
    # trained probes = exact fixed-point chain, round for round (train and test accuracy)
    for row in summary["rounds"]:
        assert row["trained_train_acc"] == pytest.approx(row["exact_train_acc"])
        assert row["trained_test_acc"] == pytest.approx(row["exact_test_acc"])
    assert summary["pll"]["trained_accuracy"] == pytest.approx(summary["pll"]["exact_accuracy"])
    assert summary["noise_threshold"] == pytest.approx(3 / 5, abs=1e-6)  # asymmetric: K / (K + 2)
    assert summary["exact_residual_max"] < 1e-10
    assert sum(map(sum, summary["noise"]["label_counts"])) == 36
    assert set(summary["files"]) == {"accuracy", "spectrum", "min_rounds_map", "pll_vs_sd_map"}


def test_run_quiet_no_train_superclasses_and_class_cluster(tmp_path, capsys):
    out = tmp_path / "o"
    args = _parse("--classes", "4", "--per-class", "8", "--c", "0.6", "--d", "0.05", "--superclasses", "0,0,1,1",
                  "--c-super", "0.3", "--noise", "class_cluster", "--rate", "0.3", "--rounds", "3", "--no-train",
                  "--no-figures", "--quiet", "--output", str(out))
    assert run(args) == 0
    assert capsys.readouterr().out == ""
    summary = json.loads((out / "summary.json").read_text())
    assert summary["noise"]["clusters"] == [0, 0, 1, 1]
    assert [e["name"] for e in summary["eigenvalues"]] == ["all-ones", "superclass contrast", "class contrast",
                                                          "within class"]
    assert all(r["trained_train_acc"] is None for r in summary["rounds"])
    assert {p.name for p in out.iterdir()} == {"summary.json"}


def test_output_that_is_a_file_is_rejected(tmp_path):
    f = tmp_path / "taken"
    f.write_text("x")
    with pytest.raises(ValueError, match="--output"):
        run(_parse("--classes", "3", "--per-class", "5", "--no-train", "--quiet", "--output", str(f)))
    assert f.read_text() == "x"


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--c", "0.1", "--d", "0.1"], "c must be > d"),
        (["--c", "1.5"], "c must be <= 1"),
        (["--d", "-0.9"], "positive semi-definite"),
        (["--classes", "3", "--top-k", "3"], "--top-k"),
        (["--superclasses", "0,0,1,1"], "--c-super"),
    ],
)
def test_invalid_settings_raise_value_error(tmp_path, argv, match):
    base = ["--per-class", "5", "--no-train", "--quiet", "--output", str(tmp_path / "o")]
    with pytest.raises(ValueError, match=match):
        run(_parse(*(argv + base)))


@pytest.mark.parametrize("argv", [["--rate", "1.5"], ["--classes", "1"], ["--reg", "0"], ["--rounds", "-1"],
                                  ["--noise", "gaussian"], ["--superclasses", "a,b"]])
def test_bad_option_values_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        _parse(*argv)
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err


def test_real_features_compare_theory_with_training(tmp_path, capsys):
    out = tmp_path / "real"
    args = _parse("--features", "digits", "--noise", "symmetric", "--rate", "0.4", "--rounds", "2",
                  "--regs", "1e-2", "1e-3", "--output", str(out))
    assert run(args) == 0
    text = capsys.readouterr().out
    assert "label averaging" in text and "digits" in text
    summary = json.loads((out / "summary.json").read_text())
    rows = summary["rows"]
    assert len(rows) == 2 * 3 and {r["reg"] for r in rows} == {1e-2, 1e-3}
    # at strong reg the linearisation is accurate: most test predictions agree with the trained probes
    strong = [r for r in rows if r["reg"] == 1e-2]
    assert min(r["test_agreement"] for r in strong) > 0.9
    assert all(abs(r["theory_test_acc"] - r["trained_test_acc"]) < 0.05 for r in strong)
    assert (out / "theory_vs_training.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
