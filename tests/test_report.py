"""Tables, figures and the atomic writers behind them (hand-made rows: nothing is trained)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from selfdistill._io import (
    atomic_savefig,
    atomic_write_bytes,
    atomic_write_text,
    ensure_output_dir,
    read_json,
    write_json,
)
from selfdistill.report import (
    aggregate,
    mean_std,
    plot_accuracy_vs_round,
    plot_gain_vs_rate,
    read_results_csv,
    summary_table,
    write_results_csv,
)
from selfdistill.report.tables import model_order

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# test accuracy per (noise, rate, seed, model); gain = acc - round 0 of the same seed
ACC = {
    ("symmetric", 0.0, 0): {"round 0": 0.90, "round 1": 0.91, "pll-uniform": 0.88},
    ("symmetric", 0.0, 1): {"round 0": 0.92, "round 1": 0.95, "pll-uniform": 0.89},
    ("symmetric", 0.5, 0): {"round 0": 0.70, "round 1": 0.74, "pll-uniform": 0.80},
    ("symmetric", 0.5, 1): {"round 0": 0.60, "round 1": 0.66, "pll-uniform": 0.72},
    ("class_cluster", 0.5, 0): {"round 0": 0.50, "round 1": 0.55, "pll-uniform": 0.45},
    ("class_cluster", 0.5, 1): {"round 0": 0.52, "round 1": 0.53, "pll-uniform": 0.47},
}


def make_rows(acc=ACC):
    rows = []
    for (noise, rate, seed), by_model in acc.items():
        for model, a in by_model.items():
            rows.append({"dataset": "toy", "noise": noise, "rate": rate, "seed": seed, "model": model,
                         "test_acc": a, "gain": a - by_model["round 0"], "reg": 1e-3, "realised_rate": rate})
    return rows


def _line(text, start):
    return next(line for line in text.splitlines() if line.startswith(start))


# ------------------------------------------------------------------ tables
def test_mean_std_uses_sample_std():
    mean, std, n = mean_std([0.90, 0.92])
    assert mean == pytest.approx(0.91) and std == pytest.approx(np.std([0.90, 0.92], ddof=1)) and n == 2
    assert mean_std([0.5]) == (0.5, None, 1)
    assert mean_std([None, 0.4]) == (0.4, None, 1)
    assert mean_std([]) == (None, None, 0)


def test_summary_table_cells(tmp_path):
    text = summary_table(make_rows())
    sections = text.split("## noise: ")
    assert [s.splitlines()[0] for s in sections[1:]] == ["symmetric", "class_cluster"]
    sym, cc = sections[1], sections[2]
    acc_table, gain_table = sym.split("Gain over round 0")
    # rate 0: round 0 mean 91.00, std sqrt(2) * 1 = 1.41; round 1 93.00 ± 2.83 (best: bold); PLL 88.50 ± 0.71
    row = _line(acc_table, "| 0 |")
    assert "| 91.00 ± 1.41 | **93.00 ± 2.83** | 88.50 ± 0.71 |" in row
    assert "1e-3" in row and "0.000" in row
    row = _line(acc_table, "| 0.5 |")
    assert "| 65.00 ± 7.07 | 70.00 ± 5.66 | **76.00 ± 5.66** |" in row
    # gains: rate 0 round 1: +1, +3 -> +2.00 ± 1.41;  rate 0.5 PLL: +10, +12 -> +11.00 ± 1.41
    assert "| +2.00 ± 1.41 | -2.50 ± 0.71 |" in _line(gain_table, "| 0 |")
    assert "| +5.00 ± 1.41 | +11.00 ± 1.41 |" in _line(gain_table, "| 0.5 |")
    assert "round 0" not in _line(gain_table, "| rate |")
    assert _line(cc.split("Gain over round 0")[0], "| rate |").startswith("| rate | round 0 | round 1 | pll-uniform |")
    assert "| 0 |" not in cc  # class_cluster has only rate 0.5
    assert "over 2 seeds [0, 1]" in text
    assert "over 1 seed [0]" in summary_table([r for r in make_rows() if r["seed"] == 0])


def test_summary_table_one_seed_has_no_std():
    rows = [r for r in make_rows() if r["seed"] == 0]
    text = summary_table(rows)
    assert "±" not in text.split("Bold:")[1]
    assert "| 90.00 | **91.00** | 88.00 |" in text


def test_summary_table_from_csv_round_trip(tmp_path):
    rows = make_rows()
    for r in rows:
        r.update(rounds=1, top_k=2, exact_noise=False, reg_rule="fixed", train_acc=None, kept=None,
                 corrected=None, agree_given=1.0, topk_coverage=1.0, n_iter=3, seconds=0.1, converged=True)
    write_results_csv(tmp_path / "r.csv", rows)
    back = read_results_csv(tmp_path / "r.csv")
    assert back[0]["train_acc"] is None and back[0]["converged"] is True and back[0]["n_iter"] == 3
    assert summary_table(back) == summary_table(rows)


def test_model_order_sorts_rounds_numerically():
    rows = [{"model": m} for m in ("pll-gce", "round 10", "round 2", "round 0", "pll-uniform")]
    assert model_order(rows) == ["round 0", "round 2", "round 10", "pll-gce", "pll-uniform"]


def test_aggregate_and_empty():
    agg = aggregate(make_rows(), "gain")
    assert agg["symmetric"][0.5]["pll-uniform"][0] == pytest.approx(0.11)
    assert summary_table([]) == "No results.\n"


# ------------------------------------------------------------------ figures
@pytest.mark.parametrize("plot", [plot_gain_vs_rate, plot_accuracy_vs_round])
def test_figures_are_written(tmp_path, plot):
    path = tmp_path / "fig.png"
    assert plot(make_rows(), path) == path
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 5000
    one_seed = [r for r in make_rows() if r["seed"] == 0]
    plot(one_seed, tmp_path / "one.png")
    assert (tmp_path / "one.png").read_bytes().startswith(PNG_MAGIC)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    with pytest.raises(ValueError, match="rows"):
        plot([], tmp_path / "empty.png")


def test_figures_without_pll_or_rounds(tmp_path):
    rows = [r for r in make_rows() if r["model"] != "pll-uniform"]
    plot_gain_vs_rate(rows, tmp_path / "a.png")
    plot_accuracy_vs_round(rows, tmp_path / "b.png")
    rows0 = [r for r in make_rows() if r["model"] == "round 0"]
    assert plot_gain_vs_rate(rows0, tmp_path / "c.png") is None  # round 0 alone: no gain, no file
    plot_accuracy_vs_round(rows0, tmp_path / "d.png")
    assert all((tmp_path / n).stat().st_size > 0 for n in ("a.png", "b.png", "d.png"))
    assert not (tmp_path / "c.png").exists()


# ------------------------------------------------------------------ atomic writes
def test_atomic_savefig_leaves_no_temp_file_when_savefig_raises(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    target = tmp_path / "fig.png"
    target.write_bytes(b"old")
    fig = plt.figure()

    def broken(*args, **kwargs):
        args[0].write(b"partial")
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(fig, "savefig", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        atomic_savefig(fig, target)
    plt.close(fig)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig.png"]
    assert target.read_bytes() == b"old"


def test_report_figure_failure_leaves_no_temp_file(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    def broken(self, *args, **kwargs):
        raise OSError("no space left")

    monkeypatch.setattr(Figure, "savefig", broken)
    with pytest.raises(OSError, match="no space"):
        plot_gain_vs_rate(make_rows(), tmp_path / "gain.png")
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_text_bytes_and_interrupt(tmp_path, monkeypatch):
    p = tmp_path / "a.txt"
    atomic_write_text(p, "hello\nworld\n")
    assert p.read_text() == "hello\nworld\n"
    umask = os.umask(0)
    os.umask(umask)
    assert p.stat().st_mode & 0o777 == 0o666 & ~umask  # not the 0o600 of a raw temporary file
    atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"

    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(p, "new content")
    monkeypatch.undo()
    assert p.read_text() == "hello\nworld\n"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a.txt", "b.bin"]
    with pytest.raises(FileNotFoundError):
        atomic_write_text(tmp_path / "missing" / "x.txt", "x")


def test_write_json_converts_numpy_and_sorts_keys(tmp_path):
    obj = {"b": np.int64(3), "a": np.float32(0.5), "c": np.array([1, 2]), "d": (np.bool_(True), None),
           "e": float("nan"), "f": {np.int64(1): tmp_path}}
    write_json(tmp_path / "x.json", obj)
    text = (tmp_path / "x.json").read_text()
    assert text.index('"a"') < text.index('"b"') < text.index('"c"')
    assert read_json(tmp_path / "x.json") == {"a": 0.5, "b": 3, "c": [1, 2], "d": [True, None], "e": None,
                                              "f": {"1": str(tmp_path)}}
    with pytest.raises(TypeError, match="JSON"):
        write_json(tmp_path / "y.json", {"x": object()})
    assert not (tmp_path / "y.json").exists()
    json.loads(text)


def test_ensure_output_dir(tmp_path):
    p = ensure_output_dir(tmp_path / "a" / "b")
    assert p.is_dir() and ensure_output_dir(p) == p
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ValueError, match="output_dir: output folder .* is a file, expected a directory"):
        ensure_output_dir(f)
    with pytest.raises(ValueError, match="--output"):
        ensure_output_dir(f / "sub", name="--output")
