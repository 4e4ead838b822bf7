"""Smoke test of benchmarks/real_features.py: label averaging beside a stored chain, resumable."""

import json

from conftest import run_benchmark


def test_label_averaging_rows_for_stored_tasks(tmp_path):
    from selfdistill.experiments import run_sweep

    config = tmp_path / "c.toml"
    config.write_text('[sweep]\nnoise = ["symmetric"]\nrates = [0.0, 0.4]\nseeds = [0]\nrounds = 2\npll_losses = []\n'
                      '[[datasets]]\nname = "fixed"\nfeatures = "block"\nreg = 1e-2\n')
    db, out = tmp_path / "r.db", tmp_path / "la.json"
    run_sweep(config, db, jobs=1, quiet=True)
    res = run_benchmark("benchmarks.real_features", "theory", "--config", config, "--db", db, "--dataset", "fixed",
                        "--json", out, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    rows = json.loads(out.read_text())
    assert sorted((r["rate"], r["round"]) for r in rows) == [(a, t) for a in (0.0, 0.4) for t in range(3)]
    assert all(0 <= r["theory_test_acc"] <= 1 and 0 <= r["trained_test_acc"] <= 1 for r in rows)
    again = run_benchmark("benchmarks.real_features", "theory", "--config", config, "--db", db, "--dataset", "fixed",
                          "--json", out, timeout=300)
    assert "0 to compute" in again.stderr and json.loads(out.read_text()) == rows
    page = tmp_path / "page"
    made = run_benchmark("benchmarks.real_features", "page", "--db", db, "--theory", out, "--out", page, timeout=300)
    assert made.returncode == 0, made.stderr[-3000:]
    text = (page / "tables.md").read_text()
    assert "## What the store holds" in text and "| fixed |" not in text  # only the config's four protocols
    assert "closed / trained" in text and (page / "results.md").exists()
