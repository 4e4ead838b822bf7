"""The result store of ``selfdistill run`` and ``sweep``: one SQLite file, one row per finished task.

Schema (version :data:`SCHEMA_VERSION`)::

    meta(key TEXT PRIMARY KEY, value TEXT)        -- schema_version, created, library_version,
                                                  -- config (the last sweep config, JSON),
                                                  -- configs (every config that wrote here, JSON list)
    tasks(task_id TEXT PRIMARY KEY,               -- "<dataset>/<noise>/<rate>/<seed>"
          dataset TEXT, noise TEXT, rate REAL, seed INTEGER,
          config_hash TEXT,                       -- hash of every setting that changes the result
          config TEXT,                            -- JSON: the task's settings
          metrics TEXT,                           -- JSON: one dict per model (the report's rows)
          solver TEXT,                            -- JSON: chosen regs, reg scores, noise, baselines' records, warnings
          seconds REAL, worker TEXT, library_version TEXT, finished_at TEXT)
    claims(task_id TEXT PRIMARY KEY, owner TEXT, expires REAL)   -- leases of tasks being computed

Safety: a task's row is written in one transaction (``INSERT OR REPLACE`` then ``COMMIT``) by
the driver only, after the task has finished; SQLite's rollback journal (``synchronous=FULL``)
makes a commit all-or-nothing, so a process killed at any moment (``kill -9`` included) leaves
either the whole row or none, and the next run recomputes exactly the missing tasks. A task is
*done* when its row's ``config_hash`` matches the current settings; a row with another hash is
recomputed and replaced.

Sharing: several drivers may run on one database at once. A driver computes a task only after
:meth:`ResultStore.claim` gave it a lease (``expires``, Unix seconds) on it; it renews its leases
while it works (:meth:`ResultStore.renew`) and drops a task's lease in the transaction that stores
the task. A driver that dies stops renewing: once its lease runs out another driver claims the
task. Every task is thus computed by one driver at a time and stored once. (The ``claims`` table
was added without a new schema version: it is created when a database is opened for writing.)
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .._io import settings_differences
from .._version import __version__

__all__ = ["ResultStore", "StoreError", "StoreConfigError", "SCHEMA_VERSION", "read_rows", "settings_differences"]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    task_id TEXT PRIMARY KEY,
    dataset TEXT NOT NULL,
    noise TEXT NOT NULL,
    rate REAL NOT NULL,
    seed INTEGER NOT NULL,
    config_hash TEXT NOT NULL,
    config TEXT NOT NULL,
    metrics TEXT NOT NULL,
    solver TEXT NOT NULL,
    seconds REAL,
    worker TEXT,
    library_version TEXT,
    finished_at TEXT
);
"""
_CLAIMS = "CREATE TABLE IF NOT EXISTS claims (task_id TEXT PRIMARY KEY, owner TEXT NOT NULL, expires REAL NOT NULL)"
_SCHEMA += _CLAIMS + ";\n"

_COLUMNS = ("task_id", "dataset", "noise", "rate", "seed", "config_hash", "config", "metrics", "solver", "seconds",
            "worker", "library_version", "finished_at")


#: Metrics the reports compute with: each must be a number or null in a stored task.
_NUMERIC_METRICS = ("test_acc", "gain", "train_acc", "kept", "corrected", "agree_given", "topk_coverage", "reg",
                    "realised_rate")


class StoreError(ValueError):
    """A results database that cannot be used (other schema version, not a selfdistill file).

    The message names the file and, for a bad row, the task and the column.

    Examples
    --------
    >>> import os, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> try:
    ...     ResultStore(tmp.name)
    ... except StoreError as exc:
    ...     print("is a directory" in str(exc))
    True
    >>> tmp.cleanup()
    """


class StoreConfigError(StoreError):
    """An output folder whose results store holds another config's results (``selfdistill run``).

    ``str(exc)`` is ``"output_dir '<path>': <reason>"``; the ``selfdistill`` command prints
    ``selfdistill: error: --output '<path>': <reason>`` (exit status 2).

    Parameters
    ----------
    path : str or os.PathLike
        The output folder, as given.
    reason : str
        What differs and how to start a new store.
    differences : dict, default None
        ``{setting: [stored value, new value]}`` as text (:func:`settings_differences`).

    Examples
    --------
    >>> exc = StoreConfigError("out", "holds results of another config", {"rounds": ["1", "2"]})
    >>> str(exc), exc.differences
    ("output_dir 'out': holds results of another config", {'rounds': ['1', '2']})
    """

    def __init__(self, path: str | os.PathLike[str], reason: str, differences: dict | None = None) -> None:
        self.path, self.reason, self.differences = os.fspath(path), reason, dict(differences or {})
        super().__init__(f"output_dir '{self.path}': {reason}")


class ResultStore:
    """A results database; ``ResultStore(path, create=False)`` only opens an existing one.

    One SQLite file, one row per finished task, and the leases of tasks being computed (see the
    module docstring for the schema, the safety rules and how several drivers share one file).
    Use it as a context manager, or call :meth:`close`.

    Parameters
    ----------
    path : str or os.PathLike
        The database file.
    create : bool, default True, keyword-only
        Create the file and its tables if needed (and add the ``claims`` table to a database
        made before leases); False: open an existing database only.

    Raises
    ------
    FileNotFoundError
        With ``create=False``, when there is no such file.
    StoreError
        When ``path`` is a directory, not SQLite, not a selfdistill results database, or of
        another schema version (:data:`SCHEMA_VERSION`) or columns.

    Examples
    --------
    >>> import os, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> store = ResultStore(os.path.join(tmp.name, "results.db"))
    >>> rec = {"task_id": "b/symmetric/0.3/0", "dataset": "b", "noise": "symmetric", "rate": 0.3, "seed": 0,
    ...        "config_hash": "h1", "config": {"rounds": 0, "reg": 0.001},
    ...        "metrics": [{"model": "round 0", "test_acc": 0.9}], "solver": {}}
    >>> store.claim(rec["task_id"], owner="driver-1", config_hash="h1", lease=60.0)
    'claimed'
    >>> store.put(rec)  # stores the row and drops the lease
    >>> store.done()
    {'b/symmetric/0.3/0': 'h1'}
    >>> store.claim(rec["task_id"], owner="driver-2", config_hash="h1", lease=60.0)  # nothing to do
    'done'
    >>> store.rows()[0]["test_acc"], store.rows()[0]["reg_rule"]
    (0.9, 'fixed')
    >>> store.close()
    >>> tmp.cleanup()
    """

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True) -> None:
        self.path = Path(os.fspath(path))
        if not create and not self.path.is_file():
            raise FileNotFoundError(f"no results database {str(self.path)!r}")
        if self.path.exists() and self.path.is_dir():
            raise StoreError(f"results database {str(self.path)!r} is a directory, expected a SQLite file")
        try:
            self.conn = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None)
            self.conn.execute("PRAGMA synchronous=FULL")
            if create:
                with self._tx():  # one writer at a time: creating the schema is idempotent under concurrency
                    tables = self._tables()
                    if not tables:
                        self._create()
                    elif "tasks" in tables and "claims" not in tables:  # a database made before leases
                        self.conn.execute(_CLAIMS)
            tables = self._tables()
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            raise StoreError(f"{str(self.path)!r} is not a selfdistill results database (not SQLite: {exc})") from None
        try:
            self._check(tables)
        except StoreError:
            self.conn.close()
            raise

    def _tables(self) -> dict:
        """{table: [column names]} of the file."""
        names = [r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: [r[1] for r in self.conn.execute(f"PRAGMA table_info('{t}')")] for t in names}

    def _create(self):
        for stmt in _SCHEMA.strip().split(";"):
            if stmt.strip():
                self.conn.execute(stmt)
        for key, value in (("schema_version", str(SCHEMA_VERSION)), ("created", _now()),
                           ("library_version", __version__)):
            self.conn.execute("INSERT OR IGNORE INTO meta VALUES (?, ?)", (key, value))

    def _check(self, tables):
        """The file is a selfdistill results database of this schema version, with its columns."""
        where = repr(str(self.path))
        if not tables:
            raise StoreError(f"{where} is an empty database, not selfdistill results")
        if not {"meta", "tasks"} <= set(tables):
            raise StoreError(f"{where} is a SQLite file but not a selfdistill results database "
                             f"(tables {sorted(tables)}); use another file name")
        row = self.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        version = None if row is None else row[0]
        if version != str(SCHEMA_VERSION):
            raise StoreError(
                f"results database {where} has schema version {version}, but this selfdistill reads "
                f"and writes version {SCHEMA_VERSION}: write to a new file (or rerun the sweep that made it with "
                "the selfdistill version that made it)")
        for table, want in (("meta", ["key", "value"]), ("tasks", list(_COLUMNS))):
            if tables[table] != want:
                missing = [c for c in want if c not in tables[table]]
                extra = [c for c in tables[table] if c not in want]
                raise StoreError(f"results database {where}: table {table!r} has columns {tables[table]}, expected "
                                 f"{want} (missing {missing}, unexpected {extra}); it was not written by this "
                                 "selfdistill: write to a new file")

    # -- transactions
    @contextlib.contextmanager
    def _tx(self):
        """One IMMEDIATE transaction (the write lock taken at its start): COMMIT, or ROLLBACK on error."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def close(self) -> None:
        """Close the database connection (the context manager's exit does it too).

        Examples
        --------
        >>> import os, tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> store = ResultStore(os.path.join(tmp.name, "results.db"))
        >>> store.close()
        >>> with ResultStore(os.path.join(tmp.name, "results.db"), create=False) as store:
        ...     store.count()
        0
        >>> tmp.cleanup()
        """
        self.conn.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- meta
    def set_meta(self, key: str, value: Any) -> None:
        """Store ``value`` as JSON under ``key`` in the ``meta`` table (one transaction).

        :func:`~selfdistill.experiments.sweep.run_sweep` records its config with
        :meth:`add_config` (``"config"`` and ``"configs"``).

        Parameters
        ----------
        key : str
            The key; an existing value is replaced.
        value : Any
            A JSON-serialisable value.

        Examples
        --------
        >>> import os, tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> store = ResultStore(os.path.join(tmp.name, "results.db"))
        >>> store.set_meta("config", {"rounds": 1})
        >>> store.get_meta("config")
        {'rounds': 1}
        >>> store.close()
        >>> tmp.cleanup()
        """
        with self._tx():
            self._put_meta(key, value)

    def _put_meta(self, key, value):
        """Write one meta value (inside a transaction)."""
        self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value, sort_keys=True)))

    def add_config(self, config: Mapping[str, Any]) -> None:
        """Record ``config`` as the store's latest (``"config"``) and among every config that has
        written into it (``"configs"``: distinct, in order of arrival; ``path`` not compared).

        One transaction, so drivers of two configs starting at once both get recorded. A store
        made before ``"configs"`` starts its list with its ``"config"``.

        Parameters
        ----------
        config : dict
            An experiment config as JSON types (``ExperimentConfig.to_dict()``).

        Examples
        --------
        >>> import os, tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> store = ResultStore(os.path.join(tmp.name, "results.db"))
        >>> for cfg in ({"rounds": 1}, {"rounds": 2}, {"rounds": 1}):
        ...     store.add_config(cfg)
        >>> store.get_meta("config"), store.get_meta("configs")
        ({'rounds': 1}, [{'rounds': 1}, {'rounds': 2}])
        >>> store.close()
        >>> tmp.cleanup()
        """
        def bare(c):  # a config without the file it came from
            return {k: v for k, v in c.items() if k != "path"} if isinstance(c, dict) else c

        new = json.loads(json.dumps(dict(config), sort_keys=True))  # JSON types, as stored
        with self._tx():
            configs = self.get_meta("configs")
            if not isinstance(configs, list):
                latest = self.get_meta("config")
                configs = [] if latest is None else [latest]
            if bare(new) not in [bare(c) for c in configs]:
                configs.append(new)
            self._put_meta("configs", configs)
            self._put_meta("config", new)

    def get_meta(self, key: str, default: Any = None) -> Any:
        """The value stored under ``key`` in the ``meta`` table.

        Parameters
        ----------
        key : str
            The key, e.g. ``"schema_version"``, ``"created"``, ``"library_version"``, ``"config"``.
        default : Any, default None
            Returned when the key is absent.

        Returns
        -------
        Any
            The value decoded from JSON, or the raw text when it is not JSON.

        Examples
        --------
        >>> import os, tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> store = ResultStore(os.path.join(tmp.name, "results.db"))
        >>> store.get_meta("schema_version"), store.get_meta("config", "none")
        (1, 'none')
        >>> store.close()
        >>> tmp.cleanup()
        """
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        if row is None:
            return default
        try:
            return json.loads(row[0])
        except ValueError:
            return row[0]

    # -- tasks
    def done(self) -> dict[str, str]:
        """``{task_id: config_hash}`` of every stored task.

        A task is *done* when its stored hash equals the current
        :func:`~selfdistill.experiments.runner.task_config_hash`; otherwise it is recomputed.

        Returns
        -------
        dict of str to str
            One entry per stored row.

        Examples
        --------
        >>> import os, tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> store = ResultStore(os.path.join(tmp.name, "results.db"))
        >>> rec = {"task_id": "b/symmetric/0.3/0", "dataset": "b", "noise": "symmetric", "rate": 0.3, "seed": 0,
        ...        "config_hash": "h1", "config": {"rounds": 0, "reg": 0.001},
        ...        "metrics": [{"model": "round 0", "test_acc": 0.9}], "solver": {}}
        >>> store.done()
        {}
        >>> store.put(rec)
        >>> store.done()
        {'b/symmetric/0.3/0': 'h1'}
        >>> store.close()
        >>> tmp.cleanup()
        """
        return dict(self.conn.execute("SELECT task_id, config_hash FROM tasks"))

    def put(self, record: Mapping[str, Any]) -> None:
        """Write one finished task (one transaction; replaces a row with the same task_id).

        Parameters
        ----------
        record : dict
            A task's record, as :func:`~selfdistill.experiments.runner.compute_task` returns it:
            ``task_id``, ``dataset``, ``noise``, ``rate``, ``seed``, ``config_hash``, ``config``,
            ``metrics``, ``solver`` (required) and ``seconds``, ``worker``, ``library_version``
            (optional).

        Examples
        --------
        >>> import os, tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> store = ResultStore(os.path.join(tmp.name, "results.db"))
        >>> rec = {"task_id": "b/symmetric/0.3/0", "dataset": "b", "noise": "symmetric", "rate": 0.3, "seed": 0,
        ...        "config_hash": "h1", "config": {"rounds": 0, "reg": 0.001},
        ...        "metrics": [{"model": "round 0", "test_acc": 0.9}], "solver": {}}
        >>> store.put(rec)
        >>> store.put({**rec, "config_hash": "h2"})  # the same task again: the row is replaced
        >>> store.count(), store.done()
        (1, {'b/symmetric/0.3/0': 'h2'})
        >>> store.close()
        >>> tmp.cleanup()
        """
        self.put_many([record])

    def put_many(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Write finished tasks in one transaction, dropping their leases (a stored task needs none).

        All the rows are committed, or none (a killed process leaves no partial group); each
        replaces a row with the same ``task_id``. The driver stores a group of tasks with the same
        noisy labels this way.

        Parameters
        ----------
        records : iterable of dict
            Task records (see :meth:`put`).

        Examples
        --------
        >>> import os, tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> store = ResultStore(os.path.join(tmp.name, "results.db"))
        >>> rec = {"task_id": "b/symmetric/0.3/0", "dataset": "b", "noise": "symmetric", "rate": 0.3, "seed": 0,
        ...        "config_hash": "h1", "config": {"rounds": 0, "reg": 0.001},
        ...        "metrics": [{"model": "round 0", "test_acc": 0.9}], "solver": {}}
        >>> store.claim(rec["task_id"], owner="driver-1", config_hash="h1", lease=60.0)
        'claimed'
        >>> store.put_many([rec, {**rec, "task_id": "b/class_cluster/0.3/0", "noise": "class_cluster"}])
        >>> sorted(store.done())
        ['b/class_cluster/0.3/0', 'b/symmetric/0.3/0']
        >>> store.close()
        >>> tmp.cleanup()
        """
        rows = [(r["task_id"], r["dataset"], r["noise"], float(r["rate"]), int(r["seed"]), r["config_hash"],
                 _dumps(r["config"]), _dumps(r["metrics"]), _dumps(r["solver"]), r.get("seconds"), r.get("worker"),
                 r.get("library_version", __version__), _now()) for r in records]
        with self._tx():
            self.conn.executemany(f"INSERT OR REPLACE INTO tasks ({', '.join(_COLUMNS)}) VALUES "
                                  f"({', '.join('?' * len(_COLUMNS))})", rows)
            self.conn.executemany("DELETE FROM claims WHERE task_id = ?", [(r[0],) for r in rows])

    # -- leases
    def claim(self, task_id: str, owner: str, config_hash: str, lease: float) -> str:
        """Try to take a ``lease``-second lease on ``task_id`` for ``owner``.

        Returns "claimed", "done" (the task is stored with ``config_hash``: nothing to compute) or
        "held" (another owner's lease on it has not run out). One IMMEDIATE transaction, so two
        drivers cannot both claim a task. An expired lease, or ``owner``'s own, is taken (over).

        Parameters
        ----------
        task_id : str
            The task (:attr:`~selfdistill.experiments.config.Task.task_id`).
        owner : str
            The driver (the sweep uses ``host:pid:random``).
        config_hash : str
            The task's current settings hash: a row stored with it means the task is done.
        lease : float
            Seconds until the lease runs out unless renewed (:meth:`renew`).

        Returns
        -------
        str
            ``"claimed"``, ``"done"`` or ``"held"``.

        Examples
        --------
        >>> import os, tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> store = ResultStore(os.path.join(tmp.name, "results.db"))
        >>> store.claim("b/symmetric/0.3/0", "driver-1", "h1", lease=60.0)
        'claimed'
        >>> store.claim("b/symmetric/0.3/0", "driver-2", "h1", lease=60.0)  # driver-1 holds it
        'held'
        >>> store.claim("b/symmetric/0.5/0", "driver-1", "h1", lease=-1.0)  # a lease that has run out ...
        'claimed'
        >>> store.claim("b/symmetric/0.5/0", "driver-2", "h1", lease=60.0)  # ... is taken over
        'claimed'
        >>> store.close()
        >>> tmp.cleanup()
        """
        import time

        now = time.time()
        with self._tx():
            row = self.conn.execute("SELECT config_hash FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
            if row is not None and row[0] == config_hash:
                return "done"
            held = self.conn.execute("SELECT owner, expires FROM claims WHERE task_id = ?", (task_id,)).fetchone()
            if held is not None and held[0] != owner and held[1] > now:
                return "held"
            self.conn.execute("INSERT OR REPLACE INTO claims VALUES (?, ?, ?)", (task_id, owner, now + lease))
        return "claimed"

    def renew(self, owner: str, lease: float) -> None:
        """Extend every lease of ``owner`` to ``lease`` seconds from now.

        A running driver calls it every third of its lease (on its own connection), so its
        leases never run out while it lives; a dead driver's run out and other drivers take its
        tasks over.

        Parameters
        ----------
        owner : str
            The driver whose leases are renewed.
        lease : float
            The new lease length in seconds, from now.

        Examples
        --------
        >>> import os, tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> store = ResultStore(os.path.join(tmp.name, "results.db"))
        >>> store.claim("b/symmetric/0.3/0", "driver-1", "h1", lease=-1.0)  # expired at once
        'claimed'
        >>> store.renew("driver-1", lease=60.0)
        >>> store.claim("b/symmetric/0.3/0", "driver-2", "h1", lease=60.0)
        'held'
        >>> store.close()
        >>> tmp.cleanup()
        """
        import time

        with self._tx():
            self.conn.execute("UPDATE claims SET expires = ? WHERE owner = ?", (time.time() + lease, owner))

    def release(self, owner: str) -> None:
        """Drop every lease of ``owner`` (a driver that stops hands its unfinished tasks on at once).

        Parameters
        ----------
        owner : str
            The driver whose leases are dropped.

        Examples
        --------
        >>> import os, tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> store = ResultStore(os.path.join(tmp.name, "results.db"))
        >>> store.claim("b/symmetric/0.3/0", "driver-1", "h1", lease=60.0)
        'claimed'
        >>> store.release("driver-1")
        >>> store.claim("b/symmetric/0.3/0", "driver-2", "h1", lease=60.0)
        'claimed'
        >>> store.close()
        >>> tmp.cleanup()
        """
        with self._tx():
            self.conn.execute("DELETE FROM claims WHERE owner = ?", (owner,))

    def count(self) -> int:
        """The number of stored tasks.

        Returns
        -------
        int
            Rows of the ``tasks`` table.

        Examples
        --------
        >>> import os, tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> store = ResultStore(os.path.join(tmp.name, "results.db"))
        >>> rec = {"task_id": "b/symmetric/0.3/0", "dataset": "b", "noise": "symmetric", "rate": 0.3, "seed": 0,
        ...        "config_hash": "h1", "config": {"rounds": 0, "reg": 0.001},
        ...        "metrics": [{"model": "round 0", "test_acc": 0.9}], "solver": {}}
        >>> store.put(rec)
        >>> store.count()
        1
        >>> store.close()
        >>> tmp.cleanup()
        """
        return int(self.conn.execute("SELECT COUNT(*) FROM tasks").fetchone()[0])

    def records(self) -> list[dict[str, Any]]:
        """Every task row as a dict (JSON columns decoded), ordered by dataset, noise, rate, seed.

        Returns
        -------
        list of dict
            One record per task, the columns of the ``tasks`` table: ``config`` and ``solver``
            decoded to dicts, ``metrics`` to a list of dicts (one per model).

        Raises
        ------
        StoreError
            When a JSON column of a row is not JSON, or not of its type (naming the task and the
            column).

        Examples
        --------
        >>> import os, tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> store = ResultStore(os.path.join(tmp.name, "results.db"))
        >>> rec = {"task_id": "b/symmetric/0.3/0", "dataset": "b", "noise": "symmetric", "rate": 0.3, "seed": 0,
        ...        "config_hash": "h1", "config": {"rounds": 0, "reg": 0.001},
        ...        "metrics": [{"model": "round 0", "test_acc": 0.9}], "solver": {}}
        >>> store.put(rec)
        >>> r = store.records()[0]
        >>> r["task_id"], r["metrics"], r["finished_at"] is not None
        ('b/symmetric/0.3/0', [{'model': 'round 0', 'test_acc': 0.9}], True)
        >>> store.close()
        >>> tmp.cleanup()
        """
        cur = self.conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM tasks ORDER BY dataset, noise, rate, seed")
        return [self._decode(dict(zip(_COLUMNS, values, strict=True))) for values in cur]

    def _decode(self, rec):
        """The JSON columns of a task row decoded and checked (StoreError naming the row and column)."""
        kinds = {"config": dict, "metrics": list, "solver": dict}
        for k, kind in kinds.items():
            try:
                rec[k] = json.loads(rec[k])
            except (TypeError, ValueError) as exc:
                raise StoreError(f"results database {str(self.path)!r}: task {rec['task_id']!r}, column {k!r}: "
                                 f"not JSON ({exc})") from None
            if not isinstance(rec[k], kind) or (k == "metrics" and not all(isinstance(m, dict) for m in rec[k])):
                raise StoreError(f"results database {str(self.path)!r}: task {rec['task_id']!r}, column {k!r}: "
                                 f"expected a JSON {'array of objects' if kind is list else 'object'}, got "
                                 f"{type(rec[k]).__name__}")
        for m in rec["metrics"]:
            self._check_metric(rec["task_id"], m)
        return rec

    def _check_metric(self, task_id, m):
        """A model's metrics: a string ``model`` and numbers (or null) for the values reports draw."""
        where = f"results database {str(self.path)!r}: task {task_id!r}, column 'metrics'"
        if not isinstance(m.get("model"), str):
            raise StoreError(f"{where}: a model without a string 'model' name ({m.get('model')!r})")
        for key in _NUMERIC_METRICS:
            v = m.get(key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                raise StoreError(f"{where}: model {m['model']!r}, {key!r} must be a number or null, got "
                                 f"{type(v).__name__} {v!r}")

    def rows(self) -> list[dict[str, Any]]:
        """One dict per (task, model): the input of every table, CSV and figure.

        Returns
        -------
        list of dict
            The task's axes (dataset, noise, rate, seed), its settings (rounds, top_k, exact_noise,
            reg_rule: "auto" or "fixed"), its ``config_hash`` (rows of different settings have
            different hashes: reports keep them apart) and the model's metrics, in the order of
            :meth:`records` then of the task's models.

        Examples
        --------
        >>> import os, tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> store = ResultStore(os.path.join(tmp.name, "results.db"))
        >>> rec = {"task_id": "b/symmetric/0.3/0", "dataset": "b", "noise": "symmetric", "rate": 0.3, "seed": 0,
        ...        "config_hash": "h1", "config": {"rounds": 0, "reg": 0.001},
        ...        "metrics": [{"model": "round 0", "test_acc": 0.9}], "solver": {}}
        >>> store.put(rec)
        >>> store.rows()  # doctest: +NORMALIZE_WHITESPACE
        [{'dataset': 'b', 'noise': 'symmetric', 'rate': 0.3, 'seed': 0, 'rounds': 0, 'top_k': None,
          'exact_noise': None, 'reg_rule': 'fixed', 'config_hash': 'h1', 'model': 'round 0', 'test_acc': 0.9}]
        >>> store.close()
        >>> tmp.cleanup()
        """
        rows = []
        for rec in self.records():
            cfg = rec["config"]
            base = {"dataset": rec["dataset"], "noise": rec["noise"], "rate": rec["rate"], "seed": rec["seed"],
                    "rounds": cfg.get("rounds"), "top_k": cfg.get("top_k"), "exact_noise": cfg.get("exact_noise"),
                    "reg_rule": None if "reg" not in cfg else ("auto" if cfg["reg"] == "auto" else "fixed"),
                    "config_hash": rec["config_hash"]}
            for m in rec["metrics"]:
                rows.append({**base, **m})
        return rows

    def config_settings(self) -> dict[str, dict[str, Any]]:
        """``{config_hash: settings}`` of the stored tasks: what each settings hash stands for.

        Returns
        -------
        dict of str to dict
            Per distinct ``config_hash``, in order of :meth:`records`: the ``config`` column of
            its first task without the per-task ``noise_seed``, plus its ``dataset`` and the
            ``selfdistill_version`` that computed it (both part of the hash).

        Examples
        --------
        >>> import os, tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> store = ResultStore(os.path.join(tmp.name, "results.db"))
        >>> rec = {"task_id": "b/symmetric/0.3/0", "dataset": "b", "noise": "symmetric", "rate": 0.3, "seed": 0,
        ...        "config_hash": "h1", "config": {"rounds": 0, "noise_seed": 7},
        ...        "metrics": [{"model": "round 0", "test_acc": 0.9}], "solver": {}, "library_version": "1.0"}
        >>> store.put_many([rec, {**rec, "task_id": "b/symmetric/0.5/0", "rate": 0.5, "config_hash": "h2",
        ...                       "config": {"rounds": 2, "noise_seed": 8}}])
        >>> store.config_settings()  # doctest: +NORMALIZE_WHITESPACE
        {'h1': {'rounds': 0, 'dataset': 'b', 'selfdistill_version': '1.0'},
         'h2': {'rounds': 2, 'dataset': 'b', 'selfdistill_version': '1.0'}}
        >>> store.close()
        >>> tmp.cleanup()
        """
        out: dict[str, dict[str, Any]] = {}
        for rec in self.records():
            if rec["config_hash"] not in out:
                settings = {k: v for k, v in rec["config"].items() if k != "noise_seed"}
                out[rec["config_hash"]] = {**settings, "dataset": rec["dataset"],
                                           "selfdistill_version": rec["library_version"]}
        return out


def read_rows(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The rows of an existing results database (see :meth:`ResultStore.rows`).

    Parameters
    ----------
    path : str or os.PathLike
        A results database written by ``selfdistill run`` or ``sweep``; it is not created.

    Returns
    -------
    list of dict
        One dict per (task, model).

    Raises
    ------
    FileNotFoundError
        When there is no such file.
    StoreError
        When it is not a results database of this schema version.

    Examples
    --------
    >>> import os, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> store = ResultStore(os.path.join(tmp.name, "results.db"))
    >>> rec = {"task_id": "b/symmetric/0.3/0", "dataset": "b", "noise": "symmetric", "rate": 0.3, "seed": 0,
    ...        "config_hash": "h1", "config": {"rounds": 0, "reg": 0.001},
    ...        "metrics": [{"model": "round 0", "test_acc": 0.9}], "solver": {}}
    >>> store.put(rec)
    >>> store.close()
    >>> [(r["model"], r["test_acc"]) for r in read_rows(os.path.join(tmp.name, "results.db"))]
    [('round 0', 0.9)]
    >>> tmp.cleanup()
    """
    with ResultStore(path, create=False) as store:
        return store.rows()


def _dumps(obj) -> str:
    from .._io import to_jsonable

    return json.dumps(to_jsonable(obj), sort_keys=True, allow_nan=False)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
