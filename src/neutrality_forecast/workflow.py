"""The main job as one function: validate -> fit -> gate -> forecast -> export.

Used by the ``forecast`` command, the scheduled ``reforecast`` and the notebooks.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from neutrality_forecast.casesets import CaseSet, load_case_set
from neutrality_forecast.config import Config, load_config
from neutrality_forecast.export.run import new_run_id, utc_now, write_diagnostics, write_run
from neutrality_forecast.forecast import Forecast, make_forecast
from neutrality_forecast.model.fitted import FittedModel, fit

__all__ = ["GateFailed", "RunResult", "prepare", "run_forecast"]


class GateFailed(RuntimeError):
    """The diagnostics gate failed: the run is not published."""

    def __init__(self, fitted: FittedModel, folder: Path | None) -> None:
        self.fitted = fitted
        self.folder = folder
        where = f" (diagnostics kept in {folder})" if folder else ""
        super().__init__(f"diagnostics gate failed{where}:\n{fitted.gate.describe()}")


@dataclass
class RunResult:
    """A published run."""

    run_id: str
    path: Path | None
    fitted: FittedModel
    forecasts: list[Forecast]

    @property
    def table(self) -> pd.DataFrame:
        """All forecast rows of the run."""
        return pd.concat([f.table for f in self.forecasts], ignore_index=True)


def prepare(
    cases: str | Path | CaseSet,
    case_id: str,
    as_of: str | pd.Timestamp | None,
    *,
    real_time: bool = False,
) -> tuple[CaseSet, pd.Timestamp]:
    """Load and validate the case set and cut the forecast case at ``as_of``.

    The target case keeps only what was known on ``as_of`` (events not yet known are
    dropped and later occurrences reopened), so the fit never sees the future of the case
    it forecasts. The reference cases stay whole (documented default: the reference class
    with hindsight); ``real_time=True`` cuts *every* case at ``as_of`` (cases starting
    later are left out): what an analyst had on that day.
    """
    case_set = cases if isinstance(cases, CaseSet) else load_case_set(cases)
    case = case_set.case(case_id)
    when = pd.Timestamp(as_of) if as_of is not None else pd.Timestamp(case["window_end"])
    if when < case["window_start"]:
        raise ValueError(f"--as-of {when.date()} is before the window of case {case_id!r}")
    if real_time:
        return case_set.as_known_on(when), when
    if when < case["window_end"]:
        case_set = case_set.truncate(case_id, when)
    return case_set, when


def run_forecast(
    cases: str | Path | CaseSet,
    *,
    case_id: str = "TKM",
    as_of: str | pd.Timestamp | None = None,
    config: Config | None = None,
    horizons: list[int] | None = None,
    out: str | Path | None = None,
    seed: int | None = None,
    draws: int | None = None,
    tune: int | None = None,
    chains: int | None = None,
    sampler: str | None = None,
    progressbar: bool = True,
    real_time: bool = False,
) -> RunResult:
    """Fit on the whole case set and forecast ``case_id``; write the run folder to ``out``.

    ``real_time=True`` cuts every case at ``as_of`` (see :func:`prepare`).

    Raises
    ------
    CaseSetError
        Invalid input (nothing written).
    GateFailed
        Diagnostics failed; only ``<out>.failed/`` with the diagnostics is written.

    """
    started = utc_now()
    config = config or load_config()
    if horizons:
        config = config.with_updates(forecast={"horizons": sorted(set(horizons))})
    case_set, when = prepare(cases, case_id, as_of, real_time=real_time)
    fitted = fit(
        case_set,
        config,
        sampler=sampler,
        draws=draws,
        tune=tune,
        chains=chains,
        seed=seed,
        progressbar=progressbar,
    )
    run_id = new_run_id(fitted, started)
    if not fitted.gate.passed:
        failed = None
        if out is not None:
            failed = Path(str(out).rstrip("/") + ".failed")
            write_diagnostics(fitted, failed)
        raise GateFailed(fitted, failed)
    forecasts = [make_forecast(fitted, case_id, as_of=when)]
    path = None
    if out is not None:
        path = write_run(fitted, forecasts, out, run_id=run_id, started=started)
    return RunResult(run_id=run_id, path=path, fitted=fitted, forecasts=forecasts)


def default_out(run_id_hint: str | None = None) -> Path:
    """``runs/forecast-<UTC timestamp>`` under the current directory."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path("runs") / f"forecast-{run_id_hint or stamp}"
