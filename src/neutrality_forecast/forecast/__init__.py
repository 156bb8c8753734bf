"""Forecasts by horizon, joint and conditional tables, drivers."""

from neutrality_forecast.forecast.horizon import (
    chain_probabilities,
    horizon_probabilities,
    question_probabilities,
)
from neutrality_forecast.forecast.result import (
    Forecast,
    drivers_table,
    forecast_tables,
    make_forecast,
)

__all__ = [
    "Forecast",
    "chain_probabilities",
    "drivers_table",
    "forecast_tables",
    "horizon_probabilities",
    "make_forecast",
    "question_probabilities",
]
