"""CI smoke test of the label-issue benchmark: the --quick version runs end to end (no time limits)."""

import json

import numpy as np
import pytest
from conftest import import_benchmark, run_benchmark


def test_label_issue_benchmark_quick_runs(tmp_path):
    pytest.importorskip("cleanlab")  # installed by the README's test command (the [cleanlab] extra)
    out, md = tmp_path / "rows.json", tmp_path / "table.md"
    res = run_benchmark("benchmarks.label_issues", "--quick", "--json", out, "--markdown", md)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "vs cleanlab-probe:" in res.stdout and "vs cleanlab-default:" in res.stdout
    rows = json.loads(out.read_text())
    assert {r["method"] for r in rows} == {"selfdistill", "cleanlab-probe", "cleanlab-default"}
    assert {r["dataset"] for r in rows} == {"digits", "wine"} and len(rows) == 2 * 2 * 3
    for r in rows:
        assert 0 <= r["precision"] <= 1 and 0 <= r["recall"] <= 1 and 0 <= r["corrected_acc"] <= 1
        assert r["seconds"] > 0 and r["reg"] > 0
    # at 20% symmetric noise on digits every method finds most wrong labels
    easy = [r for r in rows if r["dataset"] == "digits" and r["noise"] == "symmetric" and r["rate"] == 0.2]
    assert all(r["f1"] > 0.7 and r["auroc"] > 0.9 for r in easy)
    assert "| digits | symmetric | 0.2 |" in md.read_text()


def test_limit_train_and_test_take_stratified_subsets_before_the_noise():
    bench = import_benchmark("label_issues")
    full = bench.load("wine")
    d = bench.load("wine", limit_train=60, limit_test=30)
    assert d["name"] == "wine[60/30]" and d["X"].shape == (60, 13) and d["X_test"].shape == (30, 13)
    # stratified: each class keeps its share of the points to within one point
    for y_all, y_sub, n in ((full["y"], d["y"], 60), (full["y_test"], d["y_test"], 30)):
        share = np.bincount(y_all) / y_all.shape[0] * n
        assert np.all(np.abs(np.bincount(y_sub) - share) <= 1.0)
    # the subset's rows are rows of the full data, the same ones every time (seed 0)
    assert all(any(np.array_equal(row, f) for f in full["X"]) for row in d["X"][:5])
    assert np.array_equal(bench.load("wine", limit_train=60, limit_test=30)["X"], d["X"])
    with pytest.raises(SystemExit, match="--limit-train 4: expected at least 2 points per class"):
        bench.load("wine", limit_train=4)


def test_an_interrupted_run_resumes_without_losing_or_duplicating_rows(tmp_path):
    pytest.importorskip("cleanlab")  # installed by the README's test command (the [cleanlab] extra)
    bench = import_benchmark("label_issues")
    out = tmp_path / "rows.json"
    base = ["--datasets", "wine", "--limit-train", "80", "--noise", "symmetric", "--rates", "0.3",
            "--methods", "selfdistill", "cleanlab-probe", "--json", str(out)]
    assert bench.main(base + ["--seeds", "0"]) == 0
    rows = json.loads(out.read_text())
    assert len(rows) == 2 and {r["seed"] for r in rows} == {0}
    # mark the finished rows, drop one method's row of a second seed as if killed half-way through it
    for r in rows:
        r["marker"] = "kept"
    rows.append({**rows[0], "seed": 1, "marker": "half-done"})
    out.write_text(json.dumps(rows))
    assert bench.main(base + ["--seeds", "0", "1"]) == 0
    again = json.loads(out.read_text())
    keys = [(r["seed"], r["method"]) for r in again]
    assert sorted(keys) == [(0, "cleanlab-probe"), (0, "selfdistill"), (1, "cleanlab-probe"), (1, "selfdistill")]
    assert all(r.get("marker") == "kept" for r in again if r["seed"] == 0)  # not recomputed
    assert not any(r.get("marker") == "half-done" for r in again)  # the unfinished seed was redone whole
    out.write_text("{not json")
    with pytest.raises(SystemExit, match="cannot resume from it"):
        bench.main(base + ["--seeds", "0"])
