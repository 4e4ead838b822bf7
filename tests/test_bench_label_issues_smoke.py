"""CI smoke test of the label-issue benchmark: the --quick version runs end to end (no time limits)."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_label_issue_benchmark_quick_runs(tmp_path):
    pytest.importorskip("cleanlab")  # installed by the README's test command (the [cleanlab] extra)
    out, md = tmp_path / "rows.json", tmp_path / "table.md"
    env = dict(os.environ)
    extra = [env["PYTHONPATH"]] if env.get("PYTHONPATH") else []
    env["PYTHONPATH"] = os.pathsep.join([ROOT, os.path.join(ROOT, "src")] + extra)
    res = subprocess.run(
        [sys.executable, "-m", "benchmarks.label_issues", "--quick", "--json", str(out), "--markdown", str(md)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
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
