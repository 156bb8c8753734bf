"""Figures and reports."""

from neutrality_forecast.report.plots import diagnostic_plots, fan_chart, probability_over_time

__all__ = ["diagnostic_plots", "fan_chart", "probability_over_time"]
