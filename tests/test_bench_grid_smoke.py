"""CI smoke test of the grid benchmark (benchmarks/grid.py): it runs end to end; its projection arithmetic."""

import json

import pytest
from conftest import import_benchmark, run_benchmark


def test_grid_benchmark_quick_runs(tmp_path):
    out = tmp_path / "grid.json"
    res = run_benchmark("benchmarks.grid", "--quick", "--json", out, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    saved = json.loads(out.read_text())
    # the paper's grid (configs/paper_figure2.toml), timed at 2 rates x 1 seed x 2 protocols
    assert saved["sweep_settings"]["rates"] == [0.0, 0.1, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9]
    assert [(r["protocol"], r["rate"]) for r in saved["rows"]] == [
        ("fixed", 0.0), ("fixed", 0.5), ("auto", 0.0), ("auto", 0.5)]
    fixed = [r for r in saved["rows"] if r["protocol"] == "fixed"]
    assert all(set(r["chosen_reg"].values()) == {1e-3} for r in fixed)  # the quick case's fixed reg
    assert set(saved["rows"][0]["test_acc"]) == {"round 0", "round 1", "round 2", "round 3", "round 4",
                                                  "pll-uniform", "pll-gce"}
    # rates 0.1, 0.3 interpolate; 0.6-0.9 take rate 0.5's time; x 3 seeds
    by = {r["rate"]: r["seconds"] for r in fixed}
    expect = 3 * (by[0.0] + 0.8 * by[0.0] + 0.2 * by[0.5] + 0.4 * by[0.0] + 0.6 * by[0.5] + 5 * by[0.5])
    assert saved["grid_seconds"]["fixed"] == pytest.approx(expect)
    assert "projected whole grid" in res.stdout and "auto / fixed" in res.stdout


def test_interpolation_and_evaluation_timing():
    grid = import_benchmark("grid")
    assert grid.interpolate({0.0: 10.0, 0.5: 20.0, 0.9: 40.0}, [0.0, 0.1, 0.5, 0.7, 0.9, 1.0]) == pytest.approx(
        {0.0: 10.0, 0.1: 12.0, 0.5: 20.0, 0.7: 30.0, 0.9: 40.0, 1.0: 40.0})
    assert grid.interpolate({0.5: 7.0}, [0.0, 0.9]) == {0.0: 7.0, 0.9: 7.0}  # one timed rate (--auto-rates 0.5)
    rows = [{"protocol": "fixed", "rate": 0.0, "seconds": 2.0}, {"protocol": "fixed", "rate": 0.0, "seconds": 4.0},
            {"protocol": "auto", "rate": 0.5, "seconds": 10.0}]
    assert grid.project(rows, [0.0, 0.5], 3) == {"fixed": 3 * (3.0 + 3.0), "auto": 3 * 20.0}
    assert grid.seconds_per_evaluation(2000, 64, 10, repeats=2) > 0
