"""Forecasts by horizon, joint and conditional tables, drivers."""

from neutrality_forecast.forecast.horizon import horizon_probabilities, simulate_joint
from neutrality_forecast.forecast.result import Forecast, drivers_table, make_forecast

__all__ = ["Forecast", "drivers_table", "horizon_probabilities", "make_forecast", "simulate_joint"]
