"""Replay a case's forecast history: rolling as-of origins from a fit that excludes it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from neutrality_forecast.backtest.runner import _truth, case_forecasts, origins_for
from neutrality_forecast.backtest.scoring import brier
from neutrality_forecast.casesets import CaseSet
from neutrality_forecast.config import Config
from neutrality_forecast.model.data import build_model_data
from neutrality_forecast.model.fitted import FittedModel, fit_compiled
from neutrality_forecast.model.hazard import HazardModel
from neutrality_forecast.report.plots import probability_over_time
from neutrality_forecast.sampling import CompiledModel

__all__ = ["case_replay", "write_replay"]


def case_replay(
    case_set: CaseSet,
    config: Config,
    *,
    case_id: str = "TKM",
    step_months: int = 3,
    horizons: list[int] | None = None,
    draws: int = 500,
    tune: int = 500,
    chains: int = 2,
    seed: int | None = None,
    sampler: str | None = None,
    fitted: FittedModel | None = None,
) -> pd.DataFrame:
    """Forecast history of ``case_id`` from its window start to its end.

    The model is fitted on every *other* case (so the case's own outcomes never inform its
    past forecasts); at each origin only the case's evidence dated up to the origin is
    used. Rows: ``as_of, outcome, partner, horizon_months, p_mean, p_q05, p_q95, status``
    and, where the outcome has been observed over the horizon, ``occurred`` and ``brier``.
    """
    horizons = sorted(horizons or config.model.forecast.horizons)
    seed = config.model.sampling.seed if seed is None else seed
    if fitted is None:
        data = build_model_data(case_set, config)
        compiled = CompiledModel(
            HazardModel(data, config).build_model(),
            sampler=sampler or config.model.sampling.sampler,
        )
        fitted = fit_compiled(
            compiled, case_set, config, data,
            inputs=data.model_inputs(exclude_cases=[case_id]),
            draws=draws, tune=tune, chains=chains, seed=seed, progressbar=False,
        )  # fmt: skip
    origins = origins_for(case_set.case(case_id), step_months)
    fc = case_forecasts(case_set, case_id, fitted, horizons=horizons, origins=origins, seed=seed)
    fc["status"] = np.where(fc["resolved_at_origin"], "resolved", "forecast")
    scored = _truth(case_set, fc.copy())
    fc = fc.merge(
        scored[["outcome", "origin", "horizon", "occurred"]],
        on=["outcome", "origin", "horizon"],
        how="left",
    )
    fc["brier"] = np.where(
        fc["occurred"].notna(), brier(fc["p_mean"], fc["occurred"].fillna(0)), np.nan
    )
    fc = fc.rename(columns={"origin": "as_of", "horizon": "horizon_months"})
    fc.attrs["gate_passed"] = fitted.gate.passed
    return fc.drop(columns="resolved_at_origin")


def write_replay(
    replay: pd.DataFrame, case_set: CaseSet, folder: str | Path, *, case_id: str = "TKM"
) -> list[Path]:
    """``replay_<case>.csv`` and one plot per horizon with the case's events marked."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"replay_{case_id}.csv"
    replay.to_csv(path, index=False)
    out = [path]
    shown = replay[replay["status"] == "forecast"]
    for h in sorted(replay["horizon_months"].unique()):
        png = folder / f"replay_{case_id}_h{h}.png"
        probability_over_time(
            shown.assign(case_id=case_id),
            case_set.events_of(case_id),
            png,
            horizon=int(h),
            title=f"{case_id}: replayed {h}-month forecasts (fit without {case_id})",
        )
        out.append(png)
    return out
