"""Coded events -> evidence covariates (mapping in ``models/evidence.toml``)."""

from neutrality_forecast.evidence.covariates import (
    QuestionEvidence,
    known_dates,
    month_index,
    question_evidence,
    stock_from_inflow,
)
from neutrality_forecast.evidence.features import (
    feature_names,
    features,
    features_ahead,
    intensity_factors,
)
from neutrality_forecast.evidence.mapping import (
    EventArrays,
    admiralty_weight,
    category_matrix,
    counterpart_role,
    step_matrix,
)

__all__ = [
    "EventArrays",
    "QuestionEvidence",
    "admiralty_weight",
    "category_matrix",
    "counterpart_role",
    "feature_names",
    "features",
    "features_ahead",
    "intensity_factors",
    "known_dates",
    "month_index",
    "question_evidence",
    "step_matrix",
    "stock_from_inflow",
]
