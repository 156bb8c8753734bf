"""Run folders as inputs of reports: reading the files, reloading the fit, replays."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from neutrality_forecast.casesets import CaseSet, load_case_set
from neutrality_forecast.forecast import make_forecast
from neutrality_forecast.model.fitted import FittedModel, load_fitted

__all__ = ["RunFolder", "load_run_fit", "read_run_folder", "replay_forecasts"]

log = logging.getLogger(__name__)

REPORT_NAME = "report.html"
HISTORY_NAME = "history.csv"
CHANGES_NAME = "changes.csv"


@dataclass
class RunFolder:
    """The files of a run folder, read leniently (absent optional files are ``None``)."""

    path: Path
    forecast: pd.DataFrame
    joint: pd.DataFrame | None = None
    conditional: pd.DataFrame | None = None
    drivers: pd.DataFrame | None = None
    meta: dict = field(default_factory=dict)
    diagnostics: dict | None = None
    changes: pd.DataFrame | None = None
    history: pd.DataFrame | None = None

    @property
    def provenance(self) -> dict:
        """``forecast.json`` provenance (empty when absent)."""
        return self.meta.get("provenance", {}) or {}

    @property
    def case_ids(self) -> list[str]:
        """Cases forecast in the run, in file order."""
        return list(dict.fromkeys(self.forecast["case_id"].astype(str)))


def _csv(path: Path) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    try:
        return pd.read_csv(path, keep_default_na=False, na_values=[""])
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        log.warning("cannot read %s: %s", path, exc)
        return None


def _json(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        log.warning("cannot read %s: %s", path, exc)
        return None


def read_run_folder(path: str | Path) -> RunFolder:
    """Read a run folder; only ``forecast.csv`` is required.

    Raises
    ------
    FileNotFoundError
        ``path`` is not a folder or has no ``forecast.csv``.

    """
    path = Path(path)
    forecast = _csv(path / "forecast.csv")
    if forecast is None:
        raise FileNotFoundError(f"{path} is not a run folder (no readable forecast.csv)")
    forecast["partner"] = forecast.get("partner", pd.Series("", index=forecast.index)).fillna("")
    forecast["case_id"] = forecast["case_id"].astype(str)
    return RunFolder(
        path=path,
        forecast=forecast,
        joint=_csv(path / "joint.csv"),
        conditional=_csv(path / "conditional.csv"),
        drivers=_csv(path / "drivers.csv"),
        meta=_json(path / "forecast.json") or {},
        diagnostics=_json(path / "diagnostics.json"),
        changes=_csv(path / CHANGES_NAME),
        history=_csv(path / HISTORY_NAME),
    )


def load_run_fit(run_dir: str | Path, *, cases: str | Path | CaseSet | None = None) -> FittedModel:
    """Load the fit of a run folder (``posterior.nc``) with the case set it was made on.

    The case set is ``cases`` or the ``data_source`` recorded in ``forecast.json``. A run
    forecast at an as-of date before the case's window end was fitted on the case set cut
    at that date; the cut is re-applied when the data hash requires it.

    Raises
    ------
    FileNotFoundError
        No ``posterior.nc``, or no case set given or recorded.
    ModelIOError
        The case set or model version does not match the fit.
    CaseSetError
        The case set is invalid.

    """
    run = read_run_folder(run_dir)
    nc = run.path / "posterior.nc"
    if not nc.is_file():
        raise FileNotFoundError(f"{nc} not found")
    prov = run.provenance
    if cases is None:
        source = prov.get("data_source")
        if not source:
            raise FileNotFoundError(
                f"{run.path}/forecast.json records no data_source: pass the case set (--cases)"
            )
        cases = Path(source)
    case_set = cases if isinstance(cases, CaseSet) else load_case_set(cases)
    want = prov.get("data_sha256")
    if want and case_set.data_hash() != want:
        for case_id in run.case_ids:
            rows = run.forecast[run.forecast["case_id"] == case_id]
            as_of = pd.Timestamp(rows["as_of"].iloc[0])
            if case_id in case_set.case_ids and as_of < case_set.case(case_id)["window_end"]:
                cut = case_set.truncate(case_id, as_of)
                if cut.data_hash() == want:
                    case_set = cut
                    break
    return load_fitted(nc, case_set)


def _as_of_dates(start: pd.Timestamp, end: pd.Timestamp, step: int, max_points: int) -> list:
    span = (end.year - start.year) * 12 + end.month - start.month
    step = max(step, -(-span // max(max_points - 1, 1)))
    dates, k = [], 0
    while True:
        when = end - pd.DateOffset(months=step * k)
        if when < start + pd.DateOffset(months=step):
            break
        dates.append(pd.Timestamp(when))
        k += 1
    return sorted(dates)


def replay_forecasts(
    fitted: FittedModel,
    case_id: str,
    *,
    until: pd.Timestamp | str | None = None,
    step_months: int = 3,
    horizons: list[int] | None = None,
    max_points: int = 60,
) -> pd.DataFrame:
    """In-sample replays: the forecast at past as-of dates from the same posterior.

    Each replay uses only the evidence dated up to its as-of date, but the parameters were
    estimated on everything the fit saw (including, for the reference cases and for
    resolved outcomes, what happened later): replays show how the evidence moved the
    forecast, not how well it would have predicted.

    Parameters
    ----------
    fitted : FittedModel
        The run's fit.
    case_id : str
        The case.
    until : Timestamp or str, optional
        Last as-of date (default: the case's window end in the fitted case set).
    step_months : int, keyword-only
        Months between as-of dates (widened to keep at most ``max_points`` dates).
    horizons : list of int, optional
        Horizons to compute (default ``[12]``).
    max_points : int, keyword-only
        Upper bound on the number of as-of dates.

    Returns
    -------
    DataFrame
        ``case_id, as_of, outcome, partner, horizon_months, p_mean, p_q05, p_q95, status``.

    """
    case = fitted.case_set.case(case_id)
    end = pd.Timestamp(until) if until is not None else pd.Timestamp(case["window_end"])
    dates = _as_of_dates(pd.Timestamp(case["window_start"]), end, step_months, max_points)
    cols = ["case_id", "as_of", "outcome", "partner", "horizon_months", "p_mean", "p_q05",
            "p_q95", "status"]  # fmt: skip
    horizons = horizons or [12]
    frames = [
        make_forecast(fitted, case_id, as_of=when, horizons=horizons, drivers=False).table[cols]
        for when in dates
    ]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)


# ------------------------------------------------------------------------------ helpers
