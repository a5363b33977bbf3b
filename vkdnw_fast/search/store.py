"""The durable record of a search: one SQLite file, ``search.sqlite``, in the search directory.

Tables
------
``meta(key, value)``: ``config`` (the run configuration, JSON), ``schema``, ``finished``, ``best``.

``candidates``: one row per draw from the mutation operator, in draw order (``seq``), whatever
became of it. ``status`` is

* ``rejected``: infeasible (``reason`` says which constraint), never scored, not an iteration;
* ``duplicate``: an architecture already proposed (``reason`` names the slot), not an iteration;
* ``proposed``: sent to a worker, no result yet (a run that stopped here re-proposes and re-scores
  it on resume);
* ``evaluated``: scored (``values_json``: every column the scorer returned);
* ``failed``: could not be built or scored (``reason``: the exception).

Proposed, evaluated and failed rows carry ``slot``, the candidate's position in the sequence of
scored candidates, which is the order results are integrated in. Every row keeps the RNG state
after its draw (``rng_state``); integrated rows keep the population bookkeeping (``integrated``,
``iteration``, ``in_population``, ``population_size`` and the best member right after it:
``best_slot``, ``best_aggregate``, ``best_normalised``).

``baseline``: the random-search baseline of NB201 runs (architecture, status, values).

Durability: WAL journal, a commit after every batch of arrivals (at most one integration's worth of
work is lost to a crash), and the run directory's lock (``runs.DirectoryLock``) so two processes never
drive one directory.
"""
from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from ..runs import DirectoryLock, check_saved_config

if TYPE_CHECKING:
    from .config import SearchConfig

SCHEMA = 1
DB_NAME = "search.sqlite"

_TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS candidates (
    seq INTEGER PRIMARY KEY,
    slot INTEGER UNIQUE,
    arch TEXT NOT NULL,
    parent_slot INTEGER,
    status TEXT NOT NULL,
    reason TEXT,
    flops REAL, params REAL, layers REAL,
    rng_state TEXT NOT NULL,
    values_json TEXT,
    elapsed REAL,
    worker TEXT,
    attempts INTEGER,
    proposed_at REAL,
    finished_at REAL,
    integrated INTEGER NOT NULL DEFAULT 0,
    iteration INTEGER,
    in_population INTEGER NOT NULL DEFAULT 0,
    population_size INTEGER,
    best_slot INTEGER,
    best_aggregate REAL,
    best_normalised REAL
);
CREATE TABLE IF NOT EXISTS baseline (
    idx INTEGER PRIMARY KEY,
    arch TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    values_json TEXT
);
"""


class SearchError(RuntimeError):
    """A search cannot start or go on (configuration clash, busy directory, diverging record)."""


def dumps(values: dict[str, float]) -> str:
    # ±inf is a legal proxy value (AZ-NAS trainability); Python's json round-trips it.
    return json.dumps(values, sort_keys=True, allow_nan=True)


class Store:
    """The SQLite record of the search in ``directory`` (created if missing), locked for this
    process until ``close``."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self._lock = DirectoryLock(self.directory, "search", SearchError)
        self.db = sqlite3.connect(self.directory / DB_NAME)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        # In WAL mode NORMAL keeps the database consistent across a crash of this process; only a
        # power loss may drop the last commits, which a resume re-does.
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_TABLES)
        self.db.commit()

    def close(self) -> None:
        self.db.commit()
        self.db.close()
        self._lock.release()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ meta
    def get_meta(self, key: str) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row["value"])

    def set_meta(self, key: str, value: Any) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value, sort_keys=True)))

    def start_or_resume(self, config: "SearchConfig") -> bool:
        """Record ``config`` for a new run, or check it against the stored one; True if the
        directory already held this run. The stored configuration is read back into a
        ``SearchConfig`` first, so a field the record predates compares as its default; a
        SearchError names every differing field."""
        stored = self.get_meta("config")
        if stored is None:
            self.set_meta("schema", SCHEMA)
            self.set_meta("config", config.to_dict())
            self.db.commit()
            return False
        if self.get_meta("schema") != SCHEMA:
            raise SearchError(f"{self.directory} holds a search record of schema {self.get_meta('schema')}, "
                              f"this code reads schema {SCHEMA}")
        check_saved_config(self.directory, config.from_dict(stored).to_dict(), config.to_dict(), error=SearchError)
        return True

    # ------------------------------------------------------------------ candidates
    def draws(self) -> dict[int, sqlite3.Row]:
        """Every stored row by ``seq`` (what a resumed run replays against)."""
        return {row["seq"]: row for row in self.db.execute("SELECT * FROM candidates")}

    def add_draw(self, seq: int, arch: str, status: str, rng_state: str, *, slot: int | None = None,
                 parent_slot: int | None = None, reason: str | None = None,
                 cost: dict[str, float] | None = None) -> None:
        cost = cost or {}
        self.db.execute(
            "INSERT OR IGNORE INTO candidates (seq, slot, arch, parent_slot, status, reason, flops, params, "
            "layers, rng_state, proposed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (seq, slot, arch, parent_slot, status, reason, cost.get("flops"), cost.get("params"),
             cost.get("layers"), rng_state, time.time()))

    def record_outcome(self, slot: int, outcome: dict[str, Any]) -> None:
        """The worker's result for ``slot``, stored as soon as it arrives (before integration)."""
        ok = outcome["ok"]
        self.db.execute(
            "UPDATE candidates SET status = ?, reason = ?, values_json = ?, elapsed = ?, worker = ?, attempts = ?, "
            "finished_at = ? WHERE slot = ?",
            ("evaluated" if ok else "failed", outcome.get("reason"), dumps(outcome["values"]) if ok else None,
             outcome.get("elapsed"), outcome.get("worker"), outcome.get("attempts"), time.time(), slot))

    def record_integration(self, slot: int, *, iteration: int | None, added: bool, dropped: int | None,
                           population_size: int, best_slot: int | None, best_aggregate: float | None,
                           best_normalised: float | None) -> None:
        self.db.execute(
            "UPDATE candidates SET integrated = 1, iteration = ?, in_population = ?, population_size = ?, "
            "best_slot = ?, best_aggregate = ?, best_normalised = ? WHERE slot = ?",
            (iteration, int(added), population_size, best_slot, best_aggregate, best_normalised, slot))
        if dropped is not None:
            self.db.execute("UPDATE candidates SET in_population = 0 WHERE slot = ?", (dropped,))

    def commit(self) -> None:
        self.db.commit()

    def rows(self, where: str = "", order: str = "seq") -> Iterator[sqlite3.Row]:
        return self.db.execute(f"SELECT * FROM candidates {('WHERE ' + where) if where else ''} ORDER BY {order}")

    def counts(self) -> dict[str, int]:
        return {row[0]: row[1] for row in self.db.execute("SELECT status, COUNT(*) FROM candidates GROUP BY status")}

    def values_by_arch(self) -> dict[str, dict[str, float]]:
        return {row["arch"]: json.loads(row["values_json"]) for row in self.rows("status = 'evaluated'")}

    # ------------------------------------------------------------------ random-search baseline
    def baseline(self) -> dict[int, sqlite3.Row]:
        return {row["idx"]: row for row in self.db.execute("SELECT * FROM baseline")}

    def add_baseline(self, idx: int, arch: str, outcome: dict[str, Any]) -> None:
        self.db.execute("INSERT OR REPLACE INTO baseline VALUES (?, ?, ?, ?, ?)",
                        (idx, arch, "evaluated" if outcome["ok"] else "failed", outcome.get("reason"),
                         dumps(outcome["values"]) if outcome["ok"] else None))

