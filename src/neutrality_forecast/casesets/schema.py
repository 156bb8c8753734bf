"""The data contract: file names, columns, enumerations and pandera schemas.

Everything here mirrors ``shared/specs/data-contract.md``. The contract only ever grows by
optional columns, so the schemas are *non-strict*: unknown columns are accepted and kept.

Validation runs on the raw text of each file (every cell a ``str``) so that a malformed cell
is reported with its file, row and column instead of surfacing as a conversion error; typed
frames are built only after the text has passed.
"""

from __future__ import annotations

import datetime as dt
import re

import pandera.pandas as pa

__all__ = [
    "CASES_FILE",
    "CONTRACT_VERSION",
    "OPTIONAL_COLUMNS",
    "RECURRENT_OUTCOMES",
    "CONTEXTS",
    "DATE_PRECISIONS",
    "EVENT_TYPES",
    "EVENTS_FILE",
    "INFO_CREDIBILITY",
    "NEUTRALITY_STATUSES",
    "OUTCOMES",
    "OUTCOMES_FILE",
    "REQUIRED_COLUMNS",
    "SOURCE_RELIABILITY",
    "is_iso_date",
    "schema_for",
]

#: version of ``shared/specs/data-contract.md`` implemented here. Version 2 (2026-11-28) adds
#: several partners per family, recurrent accords and basing agreements (several occurrence
#: rows per question), the optional events column ``outcome_step`` and the optional cases
#: column ``cluster``; every version 1 file stays valid unchanged.
CONTRACT_VERSION = 2

CASES_FILE = "cases.csv"
OUTCOMES_FILE = "outcomes.csv"
EVENTS_FILE = "events.csv"

NEUTRALITY_STATUSES = ("constitutional", "declared", "non_aligned", "military_neutrality", "none")
OUTCOMES = ("neutrality_revision", "security_accord", "foreign_basing")
EVENT_TYPES = (
    "AGREE", "CONSULT", "SUPPORT", "CONCEDE", "COOPERATE", "AID", "RETREAT", "REQUEST",
    "ACCUSE", "REJECT", "THREATEN", "PROTEST", "SANCTION", "MOBILIZE", "COERCE", "ASSAULT",
)  # fmt: skip
CONTEXTS = (
    "military", "legislative", "executive", "political_institutions", "diplomatic",
    "territory", "economic", "natural_resource", "terrorism", "border", "intelligence",
    "cyber", "humanitarian",
)  # fmt: skip
#: families that can occur again (one outcomes.csv row per occurrence); a neutrality
#: revision is a one-time event
RECURRENT_OUTCOMES = ("security_accord", "foreign_basing")
DATE_PRECISIONS = ("day", "month", "year")
SOURCE_RELIABILITY = ("A", "B", "C", "D", "E", "F")
INFO_CREDIBILITY = ("1", "2", "3", "4", "5", "6")
BOOLEANS = ("true", "false")

REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    CASES_FILE: (
        "case_id", "country", "label", "window_start", "window_end", "neutrality_status",
    ),
    OUTCOMES_FILE: (
        "case_id", "outcome", "partner", "occurred", "occurred_on", "resolution_note", "source",
    ),
    EVENTS_FILE: (
        "event_id", "case_id", "date", "date_precision", "actor", "recipient", "event_type",
        "contexts", "source", "source_reliability", "info_credibility", "summary",
    ),
}  # fmt: skip

#: optional columns with rules of their own (any other extra column is kept as text)
OPTIONAL_COLUMNS: dict[str, tuple[str, ...]] = {
    CASES_FILE: ("cluster",),
    OUTCOMES_FILE: (),
    EVENTS_FILE: ("outcome_step",),
}

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ISO3 = re.compile(r"^[A-Z]{3}$")


def is_iso_date(text: str) -> bool:
    """Return True when ``text`` is a real calendar date written ``YYYY-MM-DD``."""
    if not _ISO_DATE.match(text):
        return False
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _contexts_ok(text: str) -> bool:
    if text.strip() == "":
        return True
    return all(part.strip() in CONTEXTS for part in text.split(";"))


# Each check carries an ``error`` string: it becomes the message shown to the user.
def _one_of(values: tuple[str, ...]) -> pa.Check:
    return pa.Check.isin(list(values), error=f"must be one of {', '.join(values)}")


_NONEMPTY = pa.Check(lambda s: s.str.strip() != "", element_wise=False, error="must not be empty")
_DATE = pa.Check(is_iso_date, element_wise=True, error="not a valid date (YYYY-MM-DD)")
_OPT_DATE = pa.Check(
    lambda v: v == "" or is_iso_date(v), element_wise=True, error="not a valid date (YYYY-MM-DD)"
)
_ISO3_CHECK = pa.Check(
    lambda v: bool(_ISO3.match(v)), element_wise=True, error="must be an ISO 3166-1 alpha-3 code"
)
_OPT_ISO3 = pa.Check(
    lambda v: v == "" or bool(_ISO3.match(v)),
    element_wise=True,
    error="must be an ISO 3166-1 alpha-3 code or empty",
)
_CODE = pa.Check(
    lambda v: bool(re.match(r"^[A-Za-z0-9_.\-]+$", v)),
    element_wise=True,
    error="must be a code such as TKM, NATO or TALIBAN (letters, digits, _ . -)",
)
_CONTEXTS = pa.Check(
    _contexts_ok, element_wise=True, error=f"unknown context (allowed: {', '.join(CONTEXTS)})"
)
_BOOL = pa.Check(lambda v: v.lower() in BOOLEANS, element_wise=True, error="must be true or false")


def _col(*checks: pa.Check, unique: bool = False, required: bool = True) -> pa.Column:
    return pa.Column(str, checks=list(checks), unique=unique, nullable=False, required=required)


_OPT_OUTCOME = pa.Check(
    lambda v: v == "" or v in OUTCOMES,
    element_wise=True,
    error=f"must be empty or one of {', '.join(OUTCOMES)}",
)
_OPT_CODE = pa.Check(
    lambda v: v == "" or bool(re.match(r"^[A-Za-z0-9_.\-]+$", v)),
    element_wise=True,
    error="must be empty or a code (letters, digits, _ . -)",
)


_SCHEMAS: dict[str, pa.DataFrameSchema] = {
    CASES_FILE: pa.DataFrameSchema(
        {
            "case_id": _col(_NONEMPTY, _CODE, unique=True),
            "country": _col(_ISO3_CHECK),
            "label": _col(_NONEMPTY),
            "window_start": _col(_DATE),
            "window_end": _col(_DATE),
            "neutrality_status": _col(_one_of(NEUTRALITY_STATUSES)),
            "cluster": _col(_OPT_CODE, required=False),
        },
        strict=False,
        name=CASES_FILE,
    ),
    OUTCOMES_FILE: pa.DataFrameSchema(
        {
            "case_id": _col(_NONEMPTY),
            "outcome": _col(_one_of(OUTCOMES)),
            "partner": _col(_OPT_ISO3),
            "occurred": _col(_BOOL),
            "occurred_on": _col(_OPT_DATE),
            "resolution_note": _col(),
            "source": _col(),
        },
        strict=False,
        name=OUTCOMES_FILE,
    ),
    EVENTS_FILE: pa.DataFrameSchema(
        {
            "event_id": _col(_NONEMPTY, unique=True),
            "case_id": _col(_NONEMPTY),
            "date": _col(_DATE),
            "date_precision": _col(_one_of(DATE_PRECISIONS)),
            "actor": _col(_CODE),
            "recipient": _col(_CODE),
            "event_type": _col(_one_of(EVENT_TYPES)),
            "contexts": _col(_CONTEXTS),
            "source": _col(_NONEMPTY),
            "source_reliability": _col(_one_of(SOURCE_RELIABILITY)),
            "info_credibility": _col(_one_of(INFO_CREDIBILITY)),
            "summary": _col(),
            "outcome_step": _col(_OPT_OUTCOME, required=False),
        },
        strict=False,
        name=EVENTS_FILE,
    ),
}


def schema_for(file_name: str) -> pa.DataFrameSchema:
    """Return the pandera schema that validates the raw text of ``file_name``."""
    return _SCHEMAS[file_name]
