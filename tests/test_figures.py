"""What the figures show: inspected on the Figure objects the make_*_figure builders return."""

from __future__ import annotations

import json

import matplotlib
import numpy as np
import pytest
from matplotlib.colors import BoundaryNorm, to_rgba
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure

from selfdistill.report import figures, sweep_report, theory_figures
from selfdistill.report.correlation import ClassCorrelation, make_class_correlation_figure, plot_class_correlation
from selfdistill.report.figures import rate_colors


def main_rows(seeds=(0, 1), rounds=2, plls=("pll-uniform", "pll-gce")):
    """Main-job rows: 2 noise kinds x rates 0, 0.4; every PLL student at the same accuracy for every rate
    (so undodged markers would sit on top of each other); symmetric noise far below pairflip."""
    rows = []
    for noise, level in (("pairflip", 0.95), ("symmetric", 0.55)):
        for rate in (0.0, 0.4):
            for seed in seeds:
                acc = {f"round {t}": level - 0.2 * rate + 0.01 * t + 0.005 * seed for t in range(rounds + 1)}
                acc |= {m: 0.9 for m in plls}
                for m, a in acc.items():
                    rows.append({"dataset": "toy", "noise": noise, "rate": rate, "seed": seed, "model": m,
                                 "test_acc": a, "gain": a - acc["round 0"]})
    return rows


def sweep_rows(seeds=(0, 1)):
    """Sweep rows: 2 datasets x 2 noise kinds x rates 0, 0.3, 0.6; corrected is None at rate 0."""
    rows = []
    for ds, level in (("alpha", 0.9), ("beta", 0.5)):
        for noise, shift in (("class_cluster", 0.0), ("symmetric", -0.3)):
            for rate in (0.0, 0.3, 0.6):
                for seed in seeds:
                    acc = {"round 0": level + shift - 0.3 * rate, "round 1": level + shift - 0.2 * rate,
                           "pll-uniform": 0.7, "label smoothing 0.1": 0.7}
                    kind = {"round 0": "round", "round 1": "round", "pll-uniform": "pll",
                            "label smoothing 0.1": "baseline"}
                    for m, a in acc.items():
                        a += 0.01 * seed
                        rows.append({"dataset": ds, "noise": noise, "rate": rate, "seed": seed, "model": m,
                                     "kind": kind[m], "test_acc": a, "gain": a - acc["round 0"] - 0.01 * seed,
                                     "corrected": None if rate == 0 else 0.2 + (0.5 if ds == "alpha" else 0.0) + shift,
                                     "topk_coverage": 0.95 - 0.2 * rate, "train_acc": 0.9 - 0.4 * rate, "top_k": 2})
    return rows


def theory_inputs():
    rates = np.array([0.0, 0.25, 0.5, 0.75])
    gaps = np.array([0.2, 0.5, 0.8])
    t_star = np.array([[0, 2, 5, np.nan], [0, 1, 3, np.nan], [0, 1, 2, 7]], dtype=float)
    verdict = np.array([["both", "both", "SD only", "neither"], ["both", "both", "PLL only", "neither"],
                        ["both", "both", "both", "SD only"]], dtype=object)
    tvt = [{"reg": reg, "round": t, "theory_test_acc": 0.8 + 0.01 * t, "trained_test_acc": 0.79 + 0.01 * t,
            "test_agreement": 0.95} for reg in (1e-2, 1e-3) for t in range(3)]
    return rates, gaps, t_star, verdict, tvt


def toy_correlation():
    corr = np.array([[1.0, 0.8, 0.1], [0.8, 1.0, 0.2], [0.1, 0.2, 1.0]])
    return ClassCorrelation(corr=corr, clusters=np.array([0, 0, 1]), order=np.array([0, 1, 2]),
                            class_names=("a", "b", "c"), threshold=0.7, name="toy")


def error_markers(ax):
    """(x, y, marker, rgba) of every errorbar marker of ``ax`` (the models right of the last round)."""
    out = []
    for c in ax.containers:
        if isinstance(c, ErrorbarContainer):
            line = c.lines[0]
            out.append((float(line.get_xdata()[0]), float(line.get_ydata()[0]), line.get_marker(),
                        to_rgba(line.get_color())))
    return out


def rate_line_colours(fig):
    """{legend label 'rate r': rgba} of the round lines of every panel; one colour per label or fail."""
    colours = {}
    for ax in fig.axes:
        for line in ax.get_lines():
            label = line.get_label()
            if label.startswith("rate "):
                colours.setdefault(label, set()).add(to_rgba(line.get_color()))
    assert all(len(v) == 1 for v in colours.values()), colours
    return {k: v.pop() for k, v in colours.items()}


@pytest.fixture
def svg_backend():
    """The caller's backend is 'svg' (not the Agg the library renders with); restored afterwards."""
    import matplotlib.pyplot as plt

    before = matplotlib.get_backend()
    plt.close("all")
    matplotlib.use("svg")
    yield plt
    plt.close("all")
    matplotlib.use(before)


# ------------------------------------------------------------------ A. no backend switch, no pyplot figures
def test_plotting_keeps_the_callers_backend_and_opens_no_pyplot_figure(svg_backend, tmp_path):
    plt = svg_backend
    rates, gaps, t_star, verdict, tvt = theory_inputs()
    calls = {
        "gain": lambda p: figures.plot_gain_vs_rate(main_rows(), p),
        "accuracy": lambda p: figures.plot_accuracy_vs_round(main_rows(), p),
        "sweep_gain": lambda p: figures.plot_gain_vs_rate(sweep_rows(), p),
        "sweep_round": lambda p: figures.plot_metric_vs_round(sweep_rows(), p),
        "sweep_coverage": lambda p: figures.plot_coverage_vs_rate(sweep_rows(), p),
        "theory_acc": lambda p: theory_figures.plot_theory_accuracy({"exact": [0.5, 0.7, 1.0]}, p,
                                                                    pll={"exact": 1.0}),
        "spectrum": lambda p: theory_figures.plot_spectrum_filter([4.0, 1.0, 0.0], [1, 3, 8],
                                                                  ["all-ones", "class contrast", "within"], 0.5, p),
        "min_rounds": lambda p: theory_figures.plot_min_rounds_map(rates, gaps, t_star, p),
        "pll_vs_sd": lambda p: theory_figures.plot_pll_vs_sd_map(rates, gaps, verdict, p),
        "theory_vs_training": lambda p: theory_figures.plot_theory_vs_training(tvt, p),
        "correlation": lambda p: plot_class_correlation(toy_correlation(), p),
    }
    for name, call in calls.items():
        path = tmp_path / f"{name}.png"
        assert call(path) == path
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert matplotlib.get_backend() == "svg", f"{name} switched the backend"
        assert plt.get_fignums() == [], f"{name} left a pyplot figure open"


def test_builders_return_figures_outside_pyplot(svg_backend):
    plt = svg_backend
    rates, gaps, t_star, verdict, tvt = theory_inputs()
    made = [
        figures.make_gain_vs_rate_figure(main_rows()),
        figures.make_accuracy_vs_round_figure(main_rows()),
        figures.make_gain_vs_rate_figure(sweep_rows()),
        figures.make_metric_vs_round_figure(sweep_rows()),
        figures.make_coverage_vs_rate_figure(sweep_rows()),
        theory_figures.make_theory_accuracy_figure({"exact": [0.5, 1.0]}),
        theory_figures.make_spectrum_filter_figure([2.0, 1.0], [1, 2], ["x", "y"], 0.1),
        theory_figures.make_min_rounds_map_figure(rates, gaps, t_star),
        theory_figures.make_pll_vs_sd_map_figure(rates, gaps, verdict),
        theory_figures.make_theory_vs_training_figure(tvt),
        make_class_correlation_figure(toy_correlation()),
    ]
    for fig in made:
        assert isinstance(fig, Figure) and fig.canvas.manager is None and fig.axes
    assert plt.get_fignums() == [] and matplotlib.get_backend() == "svg"


# ------------------------------------------------------------------ B. what the figures show
def test_accuracy_vs_round_dodges_the_pll_markers_of_each_rate():
    fig = figures.make_accuracy_vs_round_figure(main_rows())
    colours = rate_colors([0.0, 0.4])
    for ax in fig.axes[:2]:
        points = error_markers(ax)
        assert len(points) == 2 * 2  # 2 PLL students x 2 rates, all at 90%
        assert all(y == pytest.approx(90.0) for _, y, _, _ in points)
        xs = [x for x, _, _, _ in points]
        assert len(set(np.round(xs, 6))) == len(xs), "a PLL marker hides another"
        ticks = list(ax.get_xticks())[3:]  # after rounds 0..2: one tick per PLL student
        for x, _, marker, _rgba in points:
            j = {"s": 0, "^": 1}[marker]
            assert 0.05 < abs(x - ticks[j]) <= 0.3  # dodged, still at its student's tick
        for _rate, c in colours.items():  # one side of the tick per rate, in the rate's colour
            side = {np.sign(x - ticks[{"s": 0, "^": 1}[m]]) for x, _, m, rgba in points if rgba == c}
            assert len(side) == 1
    labels = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert labels == ["rate 0", "rate 0.4", "pll-uniform", "pll-gce"]


def test_sweep_round_figures_dodge_markers_and_share_the_row_y_range():
    fig = figures.make_metric_vs_round_figure(sweep_rows())
    axes = np.array(fig.axes).reshape(2, 2)
    for row in axes:
        assert row[0].get_ylim() == row[1].get_ylim()
        for ax in row:
            xs = [x for x, _, _, _ in error_markers(ax)]
            assert len(xs) == 2 * 3 and len(set(np.round(xs, 6))) == 6


def test_one_colour_per_rate_in_every_figure():
    rows = sweep_rows()
    expected = {f"rate {r:g}": c for r, c in rate_colors([0.0, 0.3, 0.6]).items()}
    acc = rate_line_colours(figures.make_metric_vs_round_figure(rows))
    corr = rate_line_colours(figures.make_metric_vs_round_figure(rows, key="corrected"))
    assert acc == expected
    assert set(corr) == {"rate 0.3", "rate 0.6"}  # corrected is None at rate 0
    assert corr == {k: expected[k] for k in corr}
    main = rate_line_colours(figures.make_accuracy_vs_round_figure(main_rows()))
    assert main == {f"rate {r:g}": c for r, c in rate_colors([0.0, 0.4]).items()}
    # the markers right of the last round too
    fig = figures.make_metric_vs_round_figure(rows, key="corrected")
    assert {rgba for ax in fig.axes for *_, rgba in error_markers(ax)} == {expected["rate 0.3"], expected["rate 0.6"]}


def test_gain_panels_share_a_y_range():
    fig = figures.make_gain_vs_rate_figure(sweep_rows(), noise="class_cluster")
    panels = [ax for ax in fig.axes if ax.get_title() in ("alpha", "beta")]
    assert len(panels) == 2 and panels[0].get_ylim() == panels[1].get_ylim()
    fig = figures.make_gain_vs_rate_figure(main_rows())
    assert fig.axes[0].get_ylim() == fig.axes[1].get_ylim()


def test_no_gain_figure_when_only_round_0(tmp_path):
    rows = [r for r in main_rows() if r["model"] == "round 0"]
    assert figures.make_gain_vs_rate_figure(rows) is None
    assert figures.plot_gain_vs_rate(rows, tmp_path / "gain.png") is None
    srows = [r for r in sweep_rows() if r["model"] in ("round 0", "label smoothing 0.1")]
    assert figures.plot_gain_vs_rate(srows, tmp_path / "gain_s.png") is None
    assert list(tmp_path.iterdir()) == []
    files = sweep_report.write_report(srows, tmp_path / "rep", title="x.db")
    assert not [k for k in files if k.startswith("gain_")]
    assert not list((tmp_path / "rep").glob("gain_vs_rate*"))
    assert files["html"].read_text().count("<img ") == len([p for p in files.values() if str(p).endswith(".png")])


def test_run_with_round_0_alone_writes_and_lists_no_gain_figure(tmp_path, capsys):
    from selfdistill.cli import main

    out = tmp_path / "r0"
    assert main(["run", "--dataset", "block", "--noise", "symmetric", "--rates", "0", "0.4", "--seeds", "0",
                 "--rounds", "0", "--pll-loss", "none", "--reg", "1e-3", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "gain_vs_rate.png" not in text and "accuracy_vs_round.png" in text
    assert not (out / "gain_vs_rate.png").exists() and (out / "accuracy_vs_round.png").exists()
    assert "gain_figure" not in json.loads((out / "config.json").read_text())["files"]


@pytest.mark.parametrize("seeds, text", [((0,), "1 seed, no spread)"), ((0, 1, 2), "3 seeds)")])
def test_titles_count_seeds_in_words(seeds, text):
    made = [figures.make_gain_vs_rate_figure(main_rows(seeds)), figures.make_accuracy_vs_round_figure(main_rows(seeds)),
            figures.make_gain_vs_rate_figure(sweep_rows(seeds)),
            figures.make_metric_vs_round_figure(sweep_rows(seeds))]
    for fig in made:
        title = fig.get_suptitle()
        assert title.endswith(text) and "seed(s)" not in title
    n = len(seeds)
    assert f"over {n} seed{'s' if n > 1 else ''} {list(seeds)}" in sweep_report.markdown_tables(sweep_rows(seeds))


def test_coverage_figure_names_each_line():
    fig = figures.make_coverage_vs_rate_figure(sweep_rows())
    ax = fig.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert set(legend) == set(lines)
    solid = [k for k, line in lines.items() if line.get_linestyle() == "-"]
    dotted = [k for k, line in lines.items() if line.get_linestyle() == ":"]
    assert len(solid) == len(dotted) == 4  # 2 datasets x 2 noise kinds
    assert all(k.endswith("true label in the top-2") for k in solid)
    assert all(k.endswith("top-1 is the true label") for k in dotted)
    # the dotted line is the top-1 training accuracy, the solid one the top-2 coverage
    line = lines["alpha, symmetric: top-1 is the true label"]
    np.testing.assert_allclose(line.get_ydata(), [90.0, 78.0, 66.0])
    np.testing.assert_allclose(lines["alpha, symmetric: true label in the top-2"].get_ydata(), [95.0, 89.0, 83.0])
    ylabel = ax.get_ylabel()
    assert "top-k" not in ylabel and "top-1" not in ylabel and "top-2" not in ylabel
    assert "top-2 (solid)" in ax.get_title() and "top-1 (dotted)" in ax.get_title()
    assert "top-k" in figures.make_coverage_vs_rate_figure(
        [{k: v for k, v in r.items() if k != "top_k"} for r in sweep_rows()]).axes[0].get_title()


def test_min_rounds_map_has_a_discrete_integer_colour_bar():
    rates, gaps, t_star, _, _ = theory_inputs()
    fig = theory_figures.make_min_rounds_map_figure(rates, gaps, t_star)
    mesh = fig.axes[0].collections[0]
    assert isinstance(mesh.norm, BoundaryNorm)
    np.testing.assert_array_equal(mesh.norm.boundaries, np.arange(-0.5, 8.0))  # t* = 0..7
    assert mesh.cmap.N == 8
    ticks = mesh.colorbar.get_ticks()
    assert len(ticks) and np.all(ticks == np.round(ticks)) and ticks.min() >= 0 and ticks.max() <= 7
    # every integer its own colour; a NaN cell grey
    colours = {tuple(mesh.cmap(mesh.norm(t))) for t in range(8)}
    assert len(colours) == 8
    assert np.ma.getmaskarray(mesh.get_array()).sum() == 2


def test_pll_vs_sd_legend_is_outside_the_map():
    rates, gaps, _, verdict, _ = theory_inputs()
    fig = theory_figures.make_pll_vs_sd_map_figure(rates, gaps, verdict)
    ax = fig.axes[0]
    fig.tight_layout()
    fig.canvas.draw()
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == list(theory_figures.VERDICTS)
    box, frame = legend.get_window_extent(), ax.get_window_extent()
    assert box.x0 >= frame.x1  # right of the axes: no cell hidden
    assert box.x1 <= fig.bbox.x1 + 1  # and still on the figure


def test_one_gain_builder_for_a_run_and_a_report():
    run = figures.make_gain_vs_rate_figure(main_rows())  # one dataset: a panel per noise kind
    assert [ax.get_title() for ax in run.axes] == ["noise: pairflip", "noise: symmetric"]
    rep = figures.make_gain_vs_rate_figure(sweep_rows())  # several: a panel per (dataset, noise)
    shown = [ax for ax in rep.axes if ax.get_title()]
    assert [ax.get_title() for ax in shown] == ["alpha — class_cluster", "alpha — symmetric",
                                                "beta — class_cluster", "beta — symmetric"]
    assert len({ax.get_ylim() for ax in shown}) == 1
    legend = [t.get_text() for t in shown[2].get_legend().get_texts()]
    assert legend == ["round 1", "pll-uniform"]  # baselines stay in the tables
