"""Instant posterior updates (Pareto-smoothed importance sampling)."""

from neutrality_forecast.update.psis import (
    PsisOptions,
    PsisResult,
    changed_cases,
    log_likelihood,
    psis_reweight,
    resample_idata,
    systematic_resample,
    update_log_ratios,
)

__all__ = [
    "PsisOptions",
    "PsisResult",
    "changed_cases",
    "log_likelihood",
    "psis_reweight",
    "resample_idata",
    "systematic_resample",
    "update_log_ratios",
]
