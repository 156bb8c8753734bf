"""Coded events -> evidence covariates (mapping in ``models/evidence.toml``)."""

from neutrality_forecast.evidence.covariates import (
    QuestionEvidence,
    intensity_factor,
    month_index,
    question_evidence,
    stock_from_inflow,
)
from neutrality_forecast.evidence.mapping import (
    EventArrays,
    admiralty_weight,
    category_matrix,
    counterpart_role,
)

__all__ = [
    "EventArrays",
    "QuestionEvidence",
    "admiralty_weight",
    "category_matrix",
    "counterpart_role",
    "intensity_factor",
    "month_index",
    "question_evidence",
    "stock_from_inflow",
]
