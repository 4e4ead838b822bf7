"""CI smoke test of the benchmark suite: the tiny version runs end to end (no time limits)."""

import json

from conftest import run_benchmark


def test_benchmark_quick_runs(tmp_path):
    out = tmp_path / "bench.json"
    res = run_benchmark("benchmarks", "--quick", "--json", out)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "chain/floor" in res.stdout and "round 0" in res.stdout and "pll" in res.stdout
    results = json.loads(out.read_text())
    assert {r["case"] for r in results} == {"digits", "tiny"}
    tiny = next(r for r in results if r["case"] == "tiny")
    assert tiny["label_averaging"]["seconds"] > 0 and "label_averaging" in res.stdout
    for r in results:
        assert all(row["converged"] for row in r["rows"])
        assert set(r["chains"]) == {"float64", "float32"}
        assert r["sklearn"]["grad_norm"] < 1e-3
        assert len(r["sgd"]["rows"]) == 6
        # float32 iterations finish at the float64 tolerance: same objectives
        by = {(row["dtype"], row["model"]): row["objective"] for row in r["rows"]}
        for (_dt, m), f in by.items():
            assert abs(f - by[("float64", m)]) < 1e-7


def test_auto_benchmark_quick_runs_and_matches_the_old_task(tmp_path):
    out = tmp_path / "auto.json"
    res = run_benchmark("benchmarks.auto", "--quick", "--json", out)
    assert res.returncode == 0, res.stderr[-3000:]
    rows = {r["variant"]: r for r in json.loads(out.read_text())}
    assert set(rows) == {"fixed", "fixed-certain", "auto-before", "auto"}
    assert rows["auto"]["same_as_before"] is True  # same regs, validation and test accuracies
    assert rows["auto"]["evals"] < rows["auto-before"]["evals"]
    assert "x fixed" in res.stdout
    # the profile accounts for every pass of the auto task, once: 7 path regs, one refit per chosen reg
    prof = rows["auto"]["profile"]
    assert len(prof["path"]) == 7 and set(prof["refit"]) == {str(r) for r in set(rows["auto"]["chosen"].values())}
    assert sum(v for part in prof.values() for ev in part.values() for v in ev.values()) == rows["auto"]["evals"]
    assert "refit" in res.stdout and "path" in res.stdout
