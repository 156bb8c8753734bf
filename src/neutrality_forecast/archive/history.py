"""The forecast history: an append-only DuckDB table in ``ARCHIVE/history.duckdb``.

One row per published run x case x outcome x horizon. Rows are only ever inserted (one
transaction per run, so a run's rows appear all at once or not at all); nothing in this
module updates or deletes. The primary key ``(run_id, case_id, outcome, horizon_months)``
makes a repeated insert of the same run impossible, and :func:`append_run` skips a run that
is already recorded, so recovery after a crash can call it again safely.

Writers hold the archive lock (:class:`~neutrality_forecast.archive.lock.ArchiveLock`) and
keep the database open only for the insert. Readers (:func:`read_history`) open it
read-only and retry briefly if a writer has it open at that moment.
"""

from __future__ import annotations

import time
from pathlib import Path

import duckdb
import pandas as pd

__all__ = ["COLUMNS", "HISTORY_NAME", "append_run", "export_history", "read_history", "run_ids"]

HISTORY_NAME = "history.duckdb"
TABLE = "forecast_history"

COLUMNS: dict[str, str] = {
    "run_id": "VARCHAR NOT NULL",
    "created_utc": "TIMESTAMPTZ NOT NULL",
    "case_id": "VARCHAR NOT NULL",
    "outcome": "VARCHAR NOT NULL",
    "partner": "VARCHAR",
    "as_of": "DATE NOT NULL",
    "horizon_months": "INTEGER NOT NULL",
    "target_date": "DATE NOT NULL",
    "p_mean": "DOUBLE",
    "p_median": "DOUBLE",
    "p_q05": "DOUBLE",
    "p_q95": "DOUBLE",
    "status": "VARCHAR NOT NULL",
    "model_version": "VARCHAR NOT NULL",
    "data_sha256": "VARCHAR NOT NULL",
    "config_sha256": "VARCHAR NOT NULL",
    "package_version": "VARCHAR NOT NULL",
    "update_path": "VARCHAR NOT NULL",
    "base_run_id": "VARCHAR",
}
_DDL = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} ("
    + ", ".join(f"{name} {kind}" for name, kind in COLUMNS.items())
    + ", PRIMARY KEY (run_id, case_id, outcome, horizon_months))"
)


def _connect(path: Path, *, read_only: bool, retries: float = 10.0) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + retries
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:  # another process has the file open for writing
            if "lock" not in str(exc).lower() or time.monotonic() >= deadline:
                raise
            time.sleep(0.2)


def history_rows(table: pd.DataFrame, meta: dict) -> pd.DataFrame:
    """History rows from a run's ``forecast.csv`` table plus run-level ``meta``.

    ``meta`` holds ``run_id``, ``created_utc`` and the provenance columns of
    :data:`COLUMNS` that are not in the forecast table.
    """
    out = pd.DataFrame(
        {
            "run_id": meta["run_id"],
            "created_utc": pd.Timestamp(meta["created_utc"]),
            "case_id": table["case_id"].astype(str),
            "outcome": table["outcome"].astype(str),
            "partner": table["partner"].fillna("").astype(str),
            "as_of": pd.to_datetime(table["as_of"]).dt.date,
            "horizon_months": table["horizon_months"].astype(int),
            "target_date": pd.to_datetime(table["target_date"]).dt.date,
            "p_mean": table["p_mean"].astype(float),
            "p_median": table["p_median"].astype(float),
            "p_q05": table["p_q05"].astype(float),
            "p_q95": table["p_q95"].astype(float),
            "status": table["status"].astype(str),
        }
    )
    for key in (
        "model_version",
        "data_sha256",
        "config_sha256",
        "package_version",
        "update_path",
        "base_run_id",
    ):
        out[key] = meta.get(key)
    return out[list(COLUMNS)]


def run_ids(path: str | Path) -> set[str]:
    """Run ids already recorded (empty when the database does not exist yet)."""
    path = Path(path)
    if not path.exists():
        return set()
    con = _connect(path, read_only=True)
    try:
        exists = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [TABLE]
        ).fetchall()[0][0]
        if not exists:
            return set()
        return {r[0] for r in con.execute(f"SELECT DISTINCT run_id FROM {TABLE}").fetchall()}
    finally:
        con.close()


def append_run(path: str | Path, rows: pd.DataFrame) -> int:
    """Insert one run's rows in a single transaction; return the number inserted.

    A run already present (same ``run_id``) is skipped and 0 is returned: the call is
    idempotent, which crash recovery relies on.
    """
    path = Path(path)
    ids = rows["run_id"].unique().tolist()
    if len(ids) != 1:
        raise ValueError(f"append_run takes the rows of exactly one run, got {ids}")
    con = _connect(path, read_only=False)
    try:
        con.execute(_DDL)
        con.execute("BEGIN TRANSACTION")
        try:
            query = f"SELECT count(*) FROM {TABLE} WHERE run_id = ?"
            seen = con.execute(query, ids).fetchall()[0][0]
            if seen:
                con.execute("ROLLBACK")
                return 0
            con.register("new_rows", rows)
            cols = ", ".join(COLUMNS)
            con.execute(f"INSERT INTO {TABLE} ({cols}) SELECT {cols} FROM new_rows")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("CHECKPOINT")
        return len(rows)
    finally:
        con.close()


def read_history(path: str | Path) -> pd.DataFrame:
    """The whole history, oldest run first (empty frame with the columns if none)."""
    path = Path(path)
    empty = pd.DataFrame(columns=list(COLUMNS))
    if not path.exists():
        return empty
    con = _connect(path, read_only=True)
    try:
        exists = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [TABLE]
        ).fetchall()[0][0]
        if not exists:
            return empty
        return con.execute(
            f"SELECT * FROM {TABLE} ORDER BY created_utc, run_id, case_id, outcome, horizon_months"
        ).df()
    finally:
        con.close()


def export_history(path: str | Path, dest: str | Path, *, fmt: str = "csv") -> Path:
    """Write the history to ``dest`` as ``csv`` or ``parquet``; return ``dest``."""
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"format must be csv or parquet, got {fmt!r}")
    frame = read_history(path)
    dest = Path(dest)
    if fmt == "csv":
        frame.to_csv(dest, index=False, lineterminator="\n")
    else:
        con = duckdb.connect()
        try:
            con.register("history", frame)
            target = dest.as_posix().replace("'", "''")
            con.execute(f"COPY history TO '{target}' (FORMAT parquet)")
        finally:
            con.close()
    return dest
