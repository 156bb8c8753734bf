"""The hierarchical hazard model: data arrays, PyMC model, fitting and save/load."""

from neutrality_forecast.model.data import ModelData, build_model_data
from neutrality_forecast.model.fitted import FittedModel, ModelIOError, fit, load_fitted
from neutrality_forecast.model.hazard import HazardModel
from neutrality_forecast.model.reference import ReferenceHazardModel

__all__ = [
    "FittedModel",
    "HazardModel",
    "ModelData",
    "ModelIOError",
    "ReferenceHazardModel",
    "build_model_data",
    "fit",
    "load_fitted",
]
