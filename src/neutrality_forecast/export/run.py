"""Run folders: every export of a forecast, with provenance, written atomically.

A run folder holds::

    forecast.csv      one row per case x outcome x horizon
    joint.csv         joint distribution of the outcomes per horizon (sums to 1)
    conditional.csv   P(foreign_basing | neutrality_revision) and related quantities
    drivers.csv       what moves each hazard (log-odds contributions)
    forecast.json     the same numbers plus provenance
    diagnostics.json  the gate (``passed`` plus every statistic)
    posterior.nc      ArviZ InferenceData (``arviz.from_netcdf`` loads it)
    fan_chart.png, rank.png, energy.png
    report.html       self-contained HTML report (neutrality_forecast.report.html)

The folder is built under a temporary name next to the destination, every file is fsynced,
and the folder is renamed into place: readers never see a half-written run.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sys
import uuid
from pathlib import Path

import numpy as np

from neutrality_forecast import __version__
from neutrality_forecast.forecast import Forecast
from neutrality_forecast.model.fitted import FittedModel
from neutrality_forecast.report.plots import diagnostic_plots, fan_chart

__all__ = ["atomic_replace_dir", "fsync_tree", "new_run_id", "provenance", "write_run"]


def utc_now() -> dt.datetime:
    """Current UTC time (timezone aware)."""
    return dt.datetime.now(dt.UTC)


def new_run_id(fitted: FittedModel, when: dt.datetime | None = None) -> str:
    """``<UTC timestamp>-<short hash>`` with the hash of data, config and seed."""
    when = when or utc_now()
    return f"{when.strftime('%Y%m%dT%H%M%SZ')}-{fitted.id[:8]}"


def provenance(fitted: FittedModel, *, run_id: str, started: dt.datetime) -> dict:
    """Who, what and how: everything needed to reproduce or audit a run."""
    s = fitted.idata.posterior.sizes
    return {
        "run_id": run_id,
        "package_version": __version__,
        "model_version": fitted.model_version,
        "model_id": fitted.id,
        "data_sha256": fitted.data_hash,
        "data_source": str(fitted.case_set.root) if fitted.case_set.root else None,
        "config_sha256": fitted.config.config_hash(),
        "config": json.loads(fitted.config.to_json()),
        "seed": fitted.seed,
        "sampler": fitted.sampler,
        "chains": int(s["chain"]),
        "draws": int(s["draw"]),
        "fit_seconds": round(fitted.fit_seconds, 2),
        "sampling_attempts": fitted.attempts,
        "started_utc": started.isoformat(),
        "finished_utc": utc_now().isoformat(),
        "python": sys.version.split()[0],
        "future_evidence": fitted.config.model.forecast.future_evidence,
        "n_cases": len(fitted.case_set.cases),
        "n_events": len(fitted.case_set.events),
    }


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path | dt.date | dt.datetime):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj)}")


def write_json(path: Path, payload: dict) -> None:
    """Write JSON (NaN as null)."""
    text = json.dumps(payload, indent=2, default=_json_default, allow_nan=True)
    path.write_text(text.replace("NaN", "null"), encoding="utf-8")


def fsync_tree(folder: Path) -> None:
    """Fsync every file in ``folder`` and the folder itself."""
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_replace_dir(tmp: Path, dest: Path) -> None:
    """Move the finished folder ``tmp`` to ``dest`` (replacing an old ``dest``)."""
    fsync_tree(tmp)
    old = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(dest, old)
    os.replace(tmp, dest)
    fd = os.open(dest.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_diagnostics(fitted: FittedModel, folder: Path) -> None:
    """``diagnostics.json`` plus rank and energy plots."""
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "diagnostics.json", {**fitted.gate.to_dict(), "attempts": fitted.attempts})
    diagnostic_plots(fitted.idata, folder)


def write_run(
    fitted: FittedModel,
    forecasts: list[Forecast],
    dest: str | Path,
    *,
    run_id: str,
    started: dt.datetime,
    extra: dict | None = None,
) -> Path:
    """Write every export for ``forecasts`` into ``dest`` atomically and return it."""
    import pandas as pd

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        for fc in forecasts:
            fc.with_run_id(run_id)
        tables = {
            "forecast": pd.concat([f.table for f in forecasts], ignore_index=True),
            "joint": pd.concat([f.joint for f in forecasts], ignore_index=True),
            "conditional": pd.concat([f.conditional for f in forecasts], ignore_index=True),
            "drivers": pd.concat([f.drivers for f in forecasts], ignore_index=True),
        }
        for name, frame in tables.items():
            frame.to_csv(tmp / f"{name}.csv", index=False, lineterminator="\n")
        gate = fitted.gate.to_dict()
        payload = {
            "provenance": provenance(fitted, run_id=run_id, started=started),
            "diagnostics": {
                "passed": gate["passed"],
                "failed": gate["failed"],
                "rhat_max": gate["rhat_max"],
                "ess_bulk_min": gate["ess_bulk_min"],
                "ess_tail_min": gate["ess_tail_min"],
                "divergences": gate["divergences"],
                "bfmi_min": gate["bfmi_min"],
            },
            "forecast": tables["forecast"].to_dict("records"),
            "joint": tables["joint"].to_dict("records"),
            "conditional": tables["conditional"].to_dict("records"),
            **(extra or {}),
        }
        write_json(tmp / "forecast.json", payload)
        write_diagnostics(fitted, tmp)
        fitted.save(tmp / "posterior.nc")
        for fc in forecasts:
            name = "fan_chart.png" if len(forecasts) == 1 else f"fan_chart_{fc.case_id}.png"
            fan_chart(fc.table, tmp / name)
        from neutrality_forecast.report.html import write_report  # report.html (issue 6)

        write_report(tmp, fitted=fitted)
        atomic_replace_dir(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest
