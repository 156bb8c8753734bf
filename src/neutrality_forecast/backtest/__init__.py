"""Calibration: leave-cluster-out and external backtests, baselines, scores, replay."""

from neutrality_forecast.backtest.outputs import write_backtest
from neutrality_forecast.backtest.placebo import permute_dates
from neutrality_forecast.backtest.replay import case_replay, write_replay
from neutrality_forecast.backtest.runner import (
    BacktestResult,
    BacktestSettings,
    HoldoutOverlapError,
    origins_for,
    run_backtest,
    score_truth,
)
from neutrality_forecast.backtest.scoring import brier, log_score, murphy, reliability_diagram

__all__ = [
    "BacktestResult",
    "BacktestSettings",
    "HoldoutOverlapError",
    "brier",
    "case_replay",
    "log_score",
    "murphy",
    "origins_for",
    "permute_dates",
    "reliability_diagram",
    "run_backtest",
    "score_truth",
    "tkm_replay",
    "write_backtest",
    "write_replay",
]


def tkm_replay(case_set, config, *, step_months: int = 3, **kwargs):
    """The Turkmenistan replay (:func:`case_replay` with ``case_id="TKM"``)."""
    return case_replay(case_set, config, case_id="TKM", step_months=step_months, **kwargs)
