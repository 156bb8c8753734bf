"""Replay a case's forecast history at rolling origins, as the deployed procedure would have.

Two modes:

* default (hindsight reference class): at each origin the case is forecast from the
  leave-cluster-out posterior that knows every other cluster in full and the case's own
  cluster up to the origin (:mod:`neutrality_forecast.backtest.folds`);
* ``real_time=True``: what an analyst had at the time. Every case is cut at the origin
  (later events dropped, later occurrences reopened, cases not yet started left out) and
  the model is refitted at each origin; the case is then forecast from that fit.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from neutrality_forecast.backtest.runner import (
    BacktestSettings,
    _rows,
    _Runner,
    origins_for,
    run_folds,
    score_truth,
)
from neutrality_forecast.backtest.scoring import brier
from neutrality_forecast.casesets import CaseSet
from neutrality_forecast.config import Config
from neutrality_forecast.model.data import questions_at
from neutrality_forecast.report.plots import probability_over_time

__all__ = ["case_replay", "write_replay"]


def _real_time(runner: _Runner, case_id: str, origins: list[pd.Timestamp]) -> list[dict]:
    cs, s = runner.case_set, runner.s
    cluster = cs.clusters[case_id]
    rows = []
    for i, origin in enumerate(origins):
        started = [c for c in cs.case_ids if cs.case(c)["window_start"] <= origin]
        later = tuple(c for c in cs.case_ids if c not in started)
        cut = cs
        for c in started:
            if origin < cut.case(c)["window_end"]:
                cut = cut.truncate(c, origin)
        fm, data = runner.fit(cut, evidence=True, seed=s.seed + i, tag=f"real-time {origin.date()}",
                              exclude=later)  # fmt: skip
        qs = questions_at(cut, case_id, origin, runner.config, runner.data)
        res = runner.forecast(qs, fm.draws(), evidence=True, origin=origin, seed=s.seed + i)
        rows += [{**r, "gate_passed": fm.gate.passed} for r in _rows(res, case_id, cluster, origin)]
    return rows


def case_replay(
    case_set: CaseSet,
    config: Config,
    *,
    case_id: str = "TKM",
    step_months: int = 3,
    horizons: list[int] | None = None,
    settings: BacktestSettings | None = None,
    real_time: bool = False,
) -> pd.DataFrame:
    """Forecast history of ``case_id`` from its window start to its end.

    Rows: ``as_of, outcome, partner, horizon_months, p_mean, p_q05, p_q95, status`` and,
    where the period ``(as_of, as_of + h]`` lies inside the window, ``occurred`` and
    ``brier``.
    """
    s = settings or BacktestSettings(horizons=tuple(config.model.forecast.horizons))
    s = replace(s, origin_step_months=step_months, horizons=tuple(sorted(horizons or s.horizons)))
    runner = _Runner(case_set, config, s)
    origins = origins_for(case_set.case(case_id), step_months)
    if real_time:
        rows = _real_time(runner, case_id, origins)
    else:
        fm, _ = runner.fit(case_set, evidence=True, seed=s.seed, tag="full")
        cluster = case_set.clusters[case_id]
        members = [c for c, k in case_set.clusters.items() if k == cluster]
        rows, _ = run_folds(
            runner, fm.draws(), evidence=True, source=case_set, jobs=[(cluster, members)]
        )
        rows = [r for r in rows if r["case_id"] == case_id]
    fc = pd.DataFrame(rows)
    fc["status"] = "forecast"
    scored = score_truth(case_set, fc.copy())
    keys = ["outcome", "partner", "origin", "horizon"]
    fc = fc.merge(scored[[*keys, "occurred"]], on=keys, how="left")
    fc["brier"] = np.where(
        fc["occurred"].notna(), brier(fc["p_mean"], fc["occurred"].fillna(0)), np.nan
    )
    fc = fc.rename(columns={"origin": "as_of", "horizon": "horizon_months"})
    fc.attrs["gate_passed"] = all(f["passed"] for f in runner.fits)
    fc.attrs["real_time"] = real_time
    return fc


def write_replay(
    replay: pd.DataFrame, case_set: CaseSet, folder: str | Path, *, case_id: str = "TKM"
) -> list[Path]:
    """``replay_<case>.csv`` and one plot per horizon with the case's events marked."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"replay_{case_id}.csv"
    replay.to_csv(path, index=False)
    out = [path]
    mode = "real time" if replay.attrs.get("real_time") else "leave-cluster-out"
    for h in sorted(replay["horizon_months"].unique()):
        png = folder / f"replay_{case_id}_h{h}.png"
        probability_over_time(
            replay.assign(case_id=case_id),
            case_set.events_of(case_id),
            png,
            horizon=int(h),
            title=f"{case_id}: replayed {h}-month forecasts ({mode})",
            occurrences=case_set.outcomes_of(case_id),
        )
        out.append(png)
    return out
