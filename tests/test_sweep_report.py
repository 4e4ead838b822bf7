"""`selfdistill report RESULTS.db`: figures, Markdown/LaTeX tables (best in bold), CSV, one HTML page."""

from __future__ import annotations

import base64
import csv
import re

import pytest

from selfdistill.cli import main
from selfdistill.experiments.store import ResultStore
from selfdistill.report.sweep_report import accuracy_tables, latex_tables, markdown_tables, write_report

PNG = b"\x89PNG\r\n\x1a\n"


def _rows():
    """Hand-made rows: 2 datasets x 1 noise x 2 rates x 2 seeds x 4 models, known means."""
    rows = []
    acc = {"round 0": 0.80, "round 1": 0.84, "pll-uniform": 0.86, "label smoothing 0.1": 0.81}
    kind = {"round 0": "round", "round 1": "round", "pll-uniform": "pll", "label smoothing 0.1": "baseline"}
    for ds in ("alpha", "beta_set"):
        for rate in (0.0, 0.5):
            for seed in (0, 1):
                for m, a in acc.items():
                    a = a - rate * (0.2 if m == "round 0" else 0.1) + (0.01 if seed else -0.01)
                    if rate == 0.0 and m == "round 0":
                        a += 0.2  # round 0 best at rate 0
                    rows.append({"dataset": ds, "noise": "class_cluster", "rate": rate, "seed": seed, "model": m,
                                 "kind": kind[m], "test_acc": a, "corrected": None if rate == 0 else 0.3 + 0.1 * seed,
                                 "topk_coverage": 0.9 - 0.2 * rate if m == "round 0" else 0.9 - 0.2 * rate,
                                 "train_acc": 0.8 - 0.3 * rate, "reg": 1e-3})
    for r in rows:
        base = next(x["test_acc"] for x in rows if x["dataset"] == r["dataset"] and x["rate"] == r["rate"]
                    and x["seed"] == r["seed"] and x["model"] == "round 0")
        r["gain"] = r["test_acc"] - base
    return rows


def test_tables_bold_the_best_of_each_row():
    rows = _rows()
    tabs = accuracy_tables(rows)
    assert [(d, n) for d, n, _, _ in tabs] == [("alpha", "class_cluster"), ("beta_set", "class_cluster")]
    _, _, models, lines = tabs[0]
    assert models == ["round 0", "round 1", "pll-uniform", "label smoothing 0.1"]
    (r0, cells0, bold0), (r1, cells1, bold1) = lines
    assert bold0 == {0} and bold1 == {2}
    assert cells1[2][0] == pytest.approx(0.81) and cells1[2][1] == pytest.approx(0.01414, abs=1e-4)
    md = markdown_tables(rows)
    assert "| 0 | **100.0 ± 1.4** | 84.0 ± 1.4 | 86.0 ± 1.4 | 81.0 ± 1.4 |" in md
    assert "| 0.5 | 70.0 ± 1.4 | 79.0 ± 1.4 | **81.0 ± 1.4** | 76.0 ± 1.4 |" in md
    assert "| 0.5 | +9.0 ± 0.0 | +11.0 ± 0.0 | +6.0 ± 0.0 |" in md  # gains of round 1, pll, smoothing
    tex = latex_tables(rows)
    assert tex.count("\\begin{tabular}") == 2 and "beta\\_set" in tex
    assert "0.5 & $70.0 \\pm 1.4$ & $79.0 \\pm 1.4$ & $\\mathbf{81.0} \\pm 1.4$ & $76.0 \\pm 1.4$ \\\\" in tex


def test_write_report_files(tmp_path):
    rows = _rows()
    files = write_report(rows, tmp_path / "rep", title="x.db")
    for key in ("gain_class_cluster", "accuracy", "correction", "coverage"):
        assert files[key].read_bytes()[:8] == PNG
    with open(files["csv"], newline="") as fh:
        data = list(csv.DictReader(fh))
    assert len(data) == len(rows) and data[0]["dataset"] == "alpha"
    assert float(data[0]["test_acc"]) == rows[0]["test_acc"]
    html = files["html"].read_text()
    imgs = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", html)
    assert len(imgs) == 4 and all(base64.b64decode(i)[:8] == PNG for i in imgs)
    assert not re.search(r"(src|href)=['\"](?!data:)", html)  # nothing outside the page
    assert "<td class='best'>81.0 ± 1.4</td>" in html
    # the gain tables of results.md, signed, after each accuracy table
    for ds in ("alpha", "beta_set"):
        assert html.index(f"{ds} — noise: class_cluster") < html.index(f"Gain over round 0 ({ds}, class_cluster)")
    gain = html.split("Gain over round 0 (alpha, class_cluster)")[1].split("</table>")[0]
    assert "<th>round 0</th>" not in gain
    assert "<th>round 1</th><th>pll-uniform</th><th>label smoothing 0.1</th>" in gain
    assert "<tr><td>0.5</td><td>+9.0 ± 0.0</td><td>+11.0 ± 0.0</td><td>+6.0 ± 0.0</td></tr>" in gain
    assert "<tr><td>0</td><td>-16.0 ± 0.0</td>" in gain
    assert "**100.0 ± 1.4**" in files["markdown"].read_text()


def test_report_cli(tmp_path, capsys):
    db = tmp_path / "r.db"
    with ResultStore(db) as st:
        by_task = {}
        for r in _rows():
            by_task.setdefault((r["dataset"], r["noise"], r["rate"], r["seed"]), []).append(
                {k: v for k, v in r.items() if k not in ("dataset", "noise", "rate", "seed")})
        for (ds, noise, rate, seed), metrics in by_task.items():
            st.put({"task_id": f"{ds}/{noise}/{rate!r}/{seed}", "dataset": ds, "noise": noise, "rate": rate,
                    "seed": seed, "config_hash": "h", "config": {}, "metrics": metrics, "solver": {}})
    assert main(["report", str(db)]) == 0
    out = capsys.readouterr().out
    assert "### alpha — noise: class_cluster" in out and "**81.0 ± 1.4**" in out
    rep = tmp_path / "r-report"
    assert sorted(p.name for p in rep.iterdir()) == sorted([
        "gain_vs_rate_class_cluster.png", "accuracy_vs_round.png", "correction_vs_round.png", "coverage_vs_rate.png",
        "results.md", "results.tex", "results.csv", "report.html"])
    # errors: missing file, empty database, foreign database
    assert main(["report", str(tmp_path / "none.db")]) == 2
    assert "no results database" in capsys.readouterr().err
    ResultStore(tmp_path / "empty.db").close()
    assert main(["report", str(tmp_path / "empty.db")]) == 2
    assert "holds no finished task" in capsys.readouterr().err
    (tmp_path / "junk.db").write_bytes(b"x" * 2000)
    assert main(["report", str(tmp_path / "junk.db")]) == 2
    assert "not a selfdistill results database" in capsys.readouterr().err


def test_names_from_the_data_cannot_leave_the_report_folder(tmp_path):
    rows = [dict(r, noise="x/../../ESCAPED") for r in _rows()]
    files = write_report(rows, tmp_path / "rep", title="x.db")
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert all(p.parent == tmp_path / "rep" for p in written), written
    assert (tmp_path / "rep" / "gain_vs_rate_x_.._.._ESCAPED.png") in written
    assert files["html"].is_file()


def test_a_failed_report_leaves_no_folder_and_no_temporary(tmp_path, monkeypatch):
    from selfdistill.report import sweep_report

    def boom(rows, **kw):
        raise RuntimeError("disk full")

    monkeypatch.setattr(sweep_report, "latex_tables", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        write_report(_rows(), tmp_path / "rep", title="x.db")
    assert list(tmp_path.iterdir()) == []  # no report folder, no .rep.*.tmp
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    monkeypatch.undo()
    files = write_report(_rows(), tmp_path / "mine", title="x.db")  # an existing folder keeps its files
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me" and files["html"].parent == tmp_path / "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]
