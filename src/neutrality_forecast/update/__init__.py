"""Instant posterior updates (Pareto-smoothed importance sampling)."""

from neutrality_forecast.update.psis import (
    PsisOptions,
    PsisResult,
    log_likelihood,
    psis_reweight,
    resample_idata,
    systematic_resample,
    theta_draws,
)

__all__ = [
    "PsisOptions",
    "PsisResult",
    "log_likelihood",
    "psis_reweight",
    "resample_idata",
    "systematic_resample",
    "theta_draws",
]
