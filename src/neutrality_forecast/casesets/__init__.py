"""The data contract: schema, loader and :class:`CaseSetError` naming file:row:column."""

from neutrality_forecast.casesets.caseset import CaseSet
from neutrality_forecast.casesets.errors import CaseSetError, Violation
from neutrality_forecast.casesets.loader import load_case_set

__all__ = ["CaseSet", "CaseSetError", "Violation", "load_case_set"]
