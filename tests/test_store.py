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


def _open_at_once(folder, trials, barrier, results):
    """One of several processes: for each trial, wait for the others, then create/open the same new file."""
    for trial in range(trials):
        barrier.wait()
        try:
            ResultStore(f"{folder}/new{trial}.db").close()
            results.put("ok")
        except Exception as exc:  # noqa: BLE001 - the test reports any failure
            results.put(f"{type(exc).__name__}: {exc}")


def test_creating_one_database_from_several_processes_at_once(tmp_path):
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    n_proc, trials = 4, 15
    barrier, results = ctx.Barrier(n_proc), ctx.Queue()
    procs = [ctx.Process(target=_open_at_once, args=(str(tmp_path), trials, barrier, results)) for _ in range(n_proc)]
    for p in procs:
        p.start()
    got = [results.get(timeout=120) for _ in range(n_proc * trials)]
    for p in procs:
        p.join(timeout=60)
    assert got == ["ok"] * (n_proc * trials), sorted(set(got))
    for trial in range(trials):
        with ResultStore(tmp_path / f"new{trial}.db", create=False) as st:
            assert st.get_meta("schema_version") == SCHEMA_VERSION and st.count() == 0


def test_wrong_columns_and_bad_json_are_named(tmp_path):
    db = tmp_path / "cols.db"
    ResultStore(db).close()
    con = sqlite3.connect(db)
    con.execute("ALTER TABLE tasks RENAME COLUMN metrics TO scores")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match=r"cols.db'.*table 'tasks'.*missing \['metrics'\], unexpected \['scores'\]"):
        ResultStore(db, create=False)
    db = tmp_path / "json.db"
    with ResultStore(db) as st:
        st.put(record())
        st.conn.execute("UPDATE tasks SET metrics = 'not json{'")
        with pytest.raises(StoreError, match=r"json.db'.*task 'd/symmetric/0.5/0'.*column 'metrics': not JSON"):
            st.rows()
        st.conn.execute("UPDATE tasks SET metrics = '{\"a\": 1}'")
        with pytest.raises(StoreError, match="column 'metrics': expected a JSON array of objects"):
            st.records()


def test_wrongly_typed_metrics_are_named(tmp_path):
    db = tmp_path / "types.db"
    with ResultStore(db) as st:
        st.put(record())
        st.conn.execute("""UPDATE tasks SET metrics = '[{"model": "round 0", "test_acc": "high"}]'""")
        with pytest.raises(StoreError, match=r"types.db'.*column 'metrics': model 'round 0', 'test_acc' must be a "
                                             r"number or null, got str 'high'"):
            st.rows()
        st.conn.execute("""UPDATE tasks SET metrics = '[{"test_acc": 0.5}]'""")
        with pytest.raises(StoreError, match="a model without a string 'model' name"):
            st.rows()
