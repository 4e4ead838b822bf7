"""The SQLite result store: one row per task, transactions, schema version, foreign files."""

from __future__ import annotations

import sqlite3

import pytest

from selfdistill.experiments.store import SCHEMA_VERSION, ResultStore, StoreError, read_rows


def record(task_id="d/symmetric/0.5/0", h="abc", acc=0.9):
    ds, noise, rate, seed = task_id.split("/")
    return {
        "task_id": task_id, "dataset": ds, "noise": noise, "rate": float(rate), "seed": int(seed), "config_hash": h,
        "config": {"rounds": 1}, "solver": {"chosen_reg": {"round 0": 1e-3}},
        "metrics": [{"model": "round 0", "test_acc": acc, "gain": 0.0}, {"model": "round 1", "test_acc": acc + 0.01,
                                                                          "gain": 0.01}],
        "seconds": 1.5, "worker": "host:1",
    }


def test_put_done_rows_and_replace(tmp_path):
    db = tmp_path / "r.db"
    with ResultStore(db) as st:
        assert st.done() == {}
        st.put(record())
        st.put(record("d/symmetric/0.0/0"))
        assert st.done() == {"d/symmetric/0.5/0": "abc", "d/symmetric/0.0/0": "abc"}
        st.put(record(h="new", acc=0.5))  # same task, other settings: replaced, not added
        assert st.count() == 2
        assert st.done()["d/symmetric/0.5/0"] == "new"
        st.set_meta("config", {"a": [1, 2]})
        assert st.get_meta("config") == {"a": [1, 2]}
    rows = read_rows(db)
    assert [(r["rate"], r["model"]) for r in rows] == [(0.0, "round 0"), (0.0, "round 1"), (0.5, "round 0"),
                                                       (0.5, "round 1")]
    assert rows[2]["test_acc"] == 0.5 and rows[2]["dataset"] == "d" and rows[2]["seed"] == 0
    rec = ResultStore(db, create=False).records()[1]
    assert rec["solver"] == {"chosen_reg": {"round 0": 1e-3}} and rec["library_version"] and rec["finished_at"]


def test_schema_version_mismatch_is_refused(tmp_path):
    db = tmp_path / "r.db"
    ResultStore(db).close()
    con = sqlite3.connect(db)
    con.execute("UPDATE meta SET value='999' WHERE key='schema_version'")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match=f"schema version 999.*version {SCHEMA_VERSION}"):
        ResultStore(db)


def test_foreign_files_are_refused(tmp_path):
    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE people (name TEXT)")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="not a selfdistill results database"):
        ResultStore(other)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StoreError, match="not SQLite"):
        ResultStore(junk)
    with pytest.raises(FileNotFoundError):
        ResultStore(tmp_path / "none.db", create=False)
    assert not (tmp_path / "none.db").exists()


def test_a_failed_write_leaves_no_row(tmp_path):
    db = tmp_path / "r.db"
    with ResultStore(db) as st:
        bad = record()
        bad["metrics"] = [{"model": "round 0", "test_acc": object()}]  # not JSON-serialisable
        with pytest.raises(TypeError):
            st.put(bad)
        assert st.count() == 0
        st.put(record())  # the connection is still usable (no transaction left open)
        assert st.count() == 1
