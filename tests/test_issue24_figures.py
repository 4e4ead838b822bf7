"""Issue 24, figures and `selfdistill theory --help`: no RST markup in the help; the t* map says what
computed it and marks the setting; the PLL-vs-SD map can show the margin; theory_vs_training defines
"agreement"; one seed is "1 seed, no spread"; gain bars of height 0 are marked."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from matplotlib.colorbar import Colorbar

from selfdistill.cli import main
from selfdistill.cli.main import build_parser
from selfdistill.report import figures, theory_figures

RATES = np.array([0.0, 0.25, 0.5, 0.75])
GAPS = np.array([0.2, 0.5, 0.8])
T_STAR = np.array([[0, 2, 5, np.nan], [0, 1, 3, np.nan], [0, 1, 2, 7]], dtype=float)
VERDICT = np.array([["both", "both", "SD only", "neither"], ["both", "both", "PLL only", "neither"],
                    ["both", "both", "both", "SD only"]], dtype=object)
MARGIN = np.array([[0.0, 0.0, -0.1, -0.3], [0.0, 0.0, 0.2, 0.05], [0.0, 0.0, 0.0, -0.02]])


def rows(seeds=(0,), gain1=(0.0, 0.1)):
    """Result rows: rates 0 and 0.4; round 1's gain over round 0 is ``gain1`` per rate (0 at rate 0)."""
    out = []
    for seed in seeds:
        for rate, g in zip((0.0, 0.4), gain1, strict=True):
            acc0 = 0.8 - 0.2 * rate
            for m, a in (("round 0", acc0), ("round 1", acc0 + g), ("pll-uniform", acc0 + 0.05)):
                out.append({"dataset": "toy", "noise": "symmetric", "rate": rate, "seed": seed, "model": m,
                            "test_acc": a, "gain": a - acc0, "topk_coverage": 0.9, "train_acc": 0.8, "top_k": 2})
    return out


# ------------------------------------------------------------------ C. --help without RST markup
def _subparsers(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


def test_theory_help_has_no_rst_markup(capsys):
    assert main(["theory", "--help"]) == 0
    text = capsys.readouterr().out
    assert "selfdistill theory" in text and "--classes" in text
    assert "``" not in text
    # and every parser below it (sub-commands of theory, if any), with every help string
    theory = dict(_subparsers(build_parser()))["theory"]
    todo = [theory]
    while todo:
        p = todo.pop()
        assert "``" not in p.format_help()
        assert all("``" not in (a.help or "") for a in p._actions)
        todo += [sub for _, sub in _subparsers(p)]


# ------------------------------------------------------------------ D1. t* map: source and setting
def test_min_rounds_map_names_its_source_and_marks_the_setting():
    fig = theory_figures.make_min_rounds_map_figure(RATES, GAPS, T_STAR)
    assert "closed form" in fig.axes[1].get_ylabel()  # the colour bar's label
    assert not [line for line in fig.axes[0].get_lines() if line.get_gid() == "setting"]
    fig = theory_figures.make_min_rounds_map_figure(RATES, GAPS, T_STAR, source="exact chain", setting=(0.5, 0.5))
    assert "exact chain" in fig.axes[1].get_ylabel() and "closed form" not in fig.axes[1].get_ylabel()
    star = [line for line in fig.axes[0].get_lines() if line.get_gid() == "setting"]
    assert len(star) == 1 and star[0].get_marker() == "*"
    assert list(star[0].get_xdata()) == [0.5] and list(star[0].get_ydata()) == [0.5]
    assert "setting" in fig.axes[0].get_xlabel() and "0.5" in fig.axes[0].get_xlabel()
    with pytest.raises(ValueError, match="source"):
        theory_figures.make_min_rounds_map_figure(RATES, GAPS, T_STAR, source="trained")


# ------------------------------------------------------------------ D2. PLL vs SD: the margin
def test_pll_vs_sd_map_shows_the_margin_on_a_diverging_map_with_a_colour_bar():
    fig = theory_figures.make_pll_vs_sd_map_figure(RATES, GAPS, VERDICT, margin=MARGIN, setting=(0.25, 0.5))
    ax = fig.axes[0]
    mesh = ax.collections[0]
    np.testing.assert_allclose(np.ma.getdata(mesh.get_array()).reshape(MARGIN.shape), 100 * MARGIN)
    assert mesh.cmap.name.startswith("RdBu")
    assert mesh.norm.vmin == -mesh.norm.vmax == pytest.approx(-30.0)  # centred on 0, +-max |margin|
    cbar = mesh.colorbar
    assert isinstance(cbar, Colorbar) and cbar.ax in fig.axes
    assert "PLL minus" in cbar.ax.get_xlabel()
    # the verdict is still there: a marker per cell that reaches 100% somehow, and the legend
    marked = {line.get_label(): len(line.get_xdata()) for line in ax.get_lines() if line.get_gid() != "setting"}
    assert marked == {"both": 7, "PLL only": 1, "SD only": 2}
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["both", "PLL only", "SD only",
                                                                  "neither (no marker)"]
    assert [line.get_gid() for line in ax.get_lines()].count("setting") == 1
    with pytest.raises(ValueError, match="margin"):
        theory_figures.make_pll_vs_sd_map_figure(RATES, GAPS, VERDICT, margin=MARGIN[:2])


def test_theory_cli_draws_the_margin_and_the_setting(tmp_path, monkeypatch):
    made = {}
    for name in ("min_rounds_map", "pll_vs_sd_map"):
        build = getattr(theory_figures, f"make_{name}_figure")

        def record(*args, _name=name, _build=build, **kwargs):
            made[_name] = _build(*args, **kwargs)
            return made[_name]

        monkeypatch.setattr(theory_figures, f"make_{name}_figure", record)
    out = tmp_path / "th"
    assert main(["theory", "--classes", "3", "--per-class", "10", "--rate", "0.3", "--c", "0.5", "--d", "0.1",
                 "--rounds", "3", "--no-train", "--dpi", "30", "-q", "-o", str(out)]) == 0
    assert json.loads((out / "summary.json").read_text())["files"]["pll_vs_sd_map"]
    t_map, v_map = made["min_rounds_map"], made["pll_vs_sd_map"]
    assert "closed form" in t_map.axes[1].get_ylabel()
    for fig in (t_map, v_map):
        star = [line for line in fig.axes[0].get_lines() if line.get_gid() == "setting"]
        assert len(star) == 1
        assert star[0].get_xdata()[0] == pytest.approx(0.3) and star[0].get_ydata()[0] == pytest.approx(0.4)
    assert v_map.axes[0].collections[0].colorbar is not None  # the margin, with its colour bar
    assert np.all(np.isfinite(np.ma.getdata(v_map.axes[0].collections[0].get_array())))


# ------------------------------------------------------------------ D3. "agreement" defined
def test_theory_vs_training_defines_agreement():
    tvt = [{"reg": reg, "round": t, "theory_test_acc": 0.8, "trained_test_acc": 0.79, "test_agreement": 0.9}
           for reg in (1e-2, 1e-3) for t in range(3)]
    for title in ("", "digits: theory vs training"):
        fig = theory_figures.make_theory_vs_training_figure(tvt, title=title)
        text = " ".join(fig.get_suptitle().split())
        assert "agreement: share of test points where label averaging and the trained probe predict the same " \
               "class" in text
        assert text.startswith(title)
        assert all("agreement 90.0%" in ax.get_title() for ax in fig.axes)


# ------------------------------------------------------------------ D4. one seed: no spread
def test_one_seed_titles_say_no_spread():
    one = rows(seeds=(0,))
    titles = [figures.make_gain_vs_rate_figure(one).get_suptitle(),
              figures.make_metric_vs_round_figure(one).get_suptitle(),
              figures.make_coverage_vs_rate_figure(one).axes[0].get_title()]
    for title in titles:
        assert "1 seed, no spread" in title and "mean ± std over 1 seed" not in title
    three = rows(seeds=(0, 1, 2))
    assert "mean ± std over 3 seeds" in figures.make_gain_vs_rate_figure(three).get_suptitle()
    assert "no spread" not in figures.make_coverage_vs_rate_figure(three).axes[0].get_title()


# ------------------------------------------------------------------ D5. bars of height 0 are marked
def test_zero_height_gain_bars_are_marked():
    fig = figures.make_gain_vs_rate_figure(rows(gain1=(0.0, 0.1)))
    ax = fig.axes[0]
    bars = {c.get_label(): c for c in ax.containers if hasattr(c, "patches")}
    zero_bars = [(p.get_x() + p.get_width() / 2, m) for m, c in bars.items() for p in c.patches
                 if p.get_height() == 0]
    assert zero_bars and [m for _, m in zero_bars] == ["round 1"]  # round 1 at rate 0: no gain
    marks = [line for line in ax.get_lines() if line.get_gid() == "zero gain"]
    xs = sorted(x for line in marks for x in line.get_xdata())
    assert xs == pytest.approx(sorted(x for x, _ in zero_bars))
    assert all(np.all(line.get_ydata() == 0) and line.get_marker() == "D" for line in marks)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["round 1", "pll-uniform"]  # not in the legend
    # no bar of height 0: no mark
    fig = figures.make_gain_vs_rate_figure(rows(gain1=(0.02, 0.1)))
    assert not [line for line in fig.axes[0].get_lines() if line.get_gid() == "zero gain"]
