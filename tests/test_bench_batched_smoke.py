"""CI smoke test of the batched-probes benchmark (benchmarks/batched.py) on its synthetic quick case."""

import json

from conftest import run_benchmark


def test_batched_benchmark_quick_runs(tmp_path):
    out = tmp_path / "batched.json"
    res = run_benchmark("benchmarks.batched", "--quick", "--recipe", "--json", out, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    saved = json.loads(out.read_text())
    assert set(saved["pass_ms_per_probe"]) == {f"{dt}/{b}" for dt in ("float64", "float32") for b in (1, 2, 4, 8, 16)}
    fits = saved["fits"]
    assert fits["B"] == 8 and fits["max_rel_objective_diff_float64"] <= 1e-10
    assert fits["max_rel_objective_diff_float32"] <= 1e-8 and fits["converged_float32"] is True
    assert fits["min_prediction_agreement_float64"] == 1.0
    grid = saved["grid"]
    assert grid["exact, batch 4, float64"]["same_test_acc"] is True  # batched tasks store the same numbers
    assert grid["exact, batch 4, float32"]["max_rel_objective_diff"] <= 1e-8
    assert grid["recipe"]["exact_lower"] == 24  # the exact optimum is below SGD's answer for every model
    assert "BLAS:" in res.stdout and "kernel" in res.stdout
