"""Shared fixtures for the archive tests: mock fits, an event to add, the CLI runner."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pymc as pm
from tests.helpers import mock_with_stats
from typer.testing import CliRunner

from neutrality_forecast.cli import app

runner = CliRunner()
# prior draws: 2 x 1500 independent draws pass the gate (ESS >= 400; R-hat of ~60
# quantities below 1.01 by a margin)
FAST = ["--case", "XTC", "--sampler", "pymc", "--draws", "1500", "--chains", "2"]
NEW_EVENT = (
    "XTC-E900,XTC,2018-03-05,day,XTC,CHN,COOPERATE,military,Test fixture,A,1,"
    "Fictional: new defence talks.,meet,tests\n"
)
OTHER_CASE_EVENT = (
    "XTA-E900,XTA,2016-03-05,day,XTA,USA,CONSULT,diplomatic,Test fixture,B,2,"
    "Fictional: more talks.,meet,tests\n"
)


def fast_mocks(setattr_) -> None:
    """Prior draws instead of NUTS; skip the slow HTML report (not under test here)."""
    setattr_(pm, "sample", mock_with_stats)
    try:
        import neutrality_forecast.report.html as html
    except ImportError:  # pragma: no cover - report module not present
        return
    if hasattr(html, "write_report"):
        setattr_(html, "write_report", lambda *a, **k: None)


def invoke(cases: Path, archive: Path, *extra: str):
    args = ["reforecast", "--cases", str(cases), "--archive", str(archive), *FAST, *extra]
    return runner.invoke(app, args)


def add_event(cases: Path, line: str = NEW_EVENT) -> None:
    with open(cases / "events.csv", "a", encoding="utf-8") as fh:
        fh.write(line)


def runs(archive: Path) -> list[str]:
    return sorted(p.name for p in (archive / "runs").iterdir())


def latest(archive: Path) -> str | None:
    link = archive / "latest"
    return Path(link.readlink()).name if link.is_symlink() else None


def history(archive: Path) -> pd.DataFrame:
    from neutrality_forecast.archive import read_history

    return read_history(archive / "history.duckdb")


def payload(run: Path) -> dict:
    return json.loads((run / "forecast.json").read_text())
