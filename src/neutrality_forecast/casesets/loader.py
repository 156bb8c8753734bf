"""Load and validate a case set folder (``cases.csv``, ``outcomes.csv``, ``events.csv``).

Validation has three layers, all of which run before anything is reported so that the user
sees *every* violation at once:

1. reading (:func:`~neutrality_forecast.casesets.reader.read_raw`): missing or empty file,
   wrong encoding, malformed CSV, rows with too many or too few fields, missing columns;
2. per-column rules (pandera schemas in :mod:`~neutrality_forecast.casesets.schema`):
   enumerations, date syntax and calendar validity, unique ids, codes;
3. cross-file rules (here): unknown case ids, event dates and ``occurred_on`` inside the
   case window, ``occurred=true`` without a date, month or year precision dates on the
   first day of the period, ``window_start <= window_end``, and the question rules of
   contract version 2: a question is (case, outcome, partner); ``neutrality_revision`` has
   one row; a recurrent family has one ``occurred=true`` row per occurrence with distinct
   dates, or a single ``occurred=false`` row.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pandera.errors

from neutrality_forecast.casesets import schema as S
from neutrality_forecast.casesets.caseset import COVARIATES_FILE, CaseSet
from neutrality_forecast.casesets.errors import CaseSetError, Violation
from neutrality_forecast.casesets.reader import read_raw

__all__ = ["load_case_set", "validate_frames"]


def load_case_set(path: str | Path) -> CaseSet:
    """Load a case set folder, validate it against the data contract and return it typed.

    Parameters
    ----------
    path : str or Path
        Folder holding ``cases.csv``, ``outcomes.csv`` and ``events.csv``.

    Returns
    -------
    CaseSet
        ``.cases``, ``.outcomes`` and ``.events`` as pandas DataFrames with dates as
        ``datetime64``, enumerations as categoricals and any extra columns kept as text.

    Raises
    ------
    CaseSetError
        Listing every violation as ``file:row:column: message`` (row = 1-based data row,
        header = 0, ``-`` for whole-file problems). Nothing is ever written.

    """
    root = Path(path)
    violations: list[Violation] = []
    if not root.is_dir():
        raise CaseSetError(
            [Violation(root.name or str(root), None, "-", f"case set folder not found: {root}")],
            root=str(root),
        )
    raw = {
        name: read_raw(root / name, S.REQUIRED_COLUMNS[name], violations)
        for name in (S.CASES_FILE, S.OUTCOMES_FILE, S.EVENTS_FILE)
    }
    validate_frames(raw, violations)
    if violations:
        raise CaseSetError(violations, root=str(root))
    cs = CaseSet.from_raw(raw[S.CASES_FILE], raw[S.OUTCOMES_FILE], raw[S.EVENTS_FILE], root=root)
    if (root / COVARIATES_FILE).is_file():
        cs.covariates = _read_covariates(root / COVARIATES_FILE, set(cs.case_ids))
    return cs


def _read_covariates(path: Path, case_ids: set[str]) -> pd.DataFrame:
    """The optional ``covariates.csv`` (case_id, partner, covariate, value; numbers)."""
    violations: list[Violation] = []
    raw = read_raw(path, ("case_id", "partner", "covariate", "value"), violations)
    if raw is not None:
        for row, rec in raw.iterrows():
            if rec.get("case_id") not in case_ids:
                violations.append(
                    Violation(path.name, row, "case_id", f"unknown case {rec.get('case_id')!r}")
                )
            try:
                float(rec.get("value", ""))
            except ValueError:
                violations.append(Violation(path.name, row, "value", "must be a number"))
    if violations or raw is None:
        raise CaseSetError(violations, root=str(path.parent))
    out = raw.reset_index(drop=True)
    out["value"] = out["value"].astype(float)
    return out


def validate_frames(raw: dict[str, pd.DataFrame | None], violations: list[Violation]) -> None:
    """Run the column and cross-file rules on raw text frames, appending violations."""
    bad: dict[str, set[tuple[int, str]]] = {}
    for name, frame in raw.items():
        bad[name] = _schema_violations(name, frame, violations) if frame is not None else set()
    _cross_file(raw, bad, violations)


def _schema_violations(
    name: str, frame: pd.DataFrame, violations: list[Violation]
) -> set[tuple[int, str]]:
    """Validate with pandera (lazily, so all failures are collected); return bad cells."""
    schema = S.schema_for(name)
    present = {c: col for c, col in schema.columns.items() if c in frame.columns}
    bad: set[tuple[int, str]] = set()
    try:
        schema.__class__(present, strict=False, name=name).validate(frame, lazy=True)
    except pandera.errors.SchemaErrors as exc:
        for rec in exc.failure_cases.to_dict("records"):
            column = rec.get("column") or "-"
            row = rec.get("index")
            check = str(rec.get("check"))
            value = rec.get("failure_case")
            if check == "field_uniqueness":
                message = f"duplicate value {value!r} (must be unique)"
            else:
                message = f"{check}; got {value!r}"
            row_n = None if row is None or pd.isna(row) else int(row)
            violations.append(Violation(name, row_n, str(column), message))
            if row_n is not None:
                bad.add((row_n, str(column)))
    return bad


def _ok(bad: set[tuple[int, str]], row: int, *columns: str) -> bool:
    return all((row, c) not in bad for c in columns)


def _cross_file(
    raw: dict[str, pd.DataFrame | None],
    bad: dict[str, set[tuple[int, str]]],
    violations: list[Violation],
) -> None:
    cases, outcomes, events = raw[S.CASES_FILE], raw[S.OUTCOMES_FILE], raw[S.EVENTS_FILE]
    windows: dict[str, tuple[pd.Timestamp, pd.Timestamp]] = {}
    case_ids: set[str] | None = None
    need = ("case_id", "window_start", "window_end")
    if cases is not None and all(c in cases.columns for c in need):
        case_ids = set(cases["case_id"])
        for row, rec in cases.iterrows():
            if not _ok(bad[S.CASES_FILE], row, *need):
                continue
            start, end = pd.Timestamp(rec["window_start"]), pd.Timestamp(rec["window_end"])
            if start > end:
                violations.append(
                    Violation(S.CASES_FILE, row, "window_end", "window_end is before window_start")
                )
                continue
            windows[rec["case_id"]] = (start, end)

    if outcomes is not None and "case_id" in outcomes.columns:
        _outcome_rules(outcomes, bad[S.OUTCOMES_FILE], case_ids, windows, violations)

    if events is not None and "case_id" in events.columns:
        for row, rec in events.iterrows():
            cid = rec["case_id"]
            if case_ids is not None and cid not in case_ids:
                violations.append(Violation(S.EVENTS_FILE, row, "case_id", f"unknown case {cid!r}"))
                continue
            if "date" not in rec or not _ok(bad[S.EVENTS_FILE], row, "date"):
                continue
            if cid in windows:
                _inside(S.EVENTS_FILE, row, "date", rec, windows[cid], violations)
            if "date_precision" in rec and _ok(bad[S.EVENTS_FILE], row, "date_precision"):
                day = rec["date"][8:]
                precision = rec["date_precision"]
                if precision == "month" and day != "01":
                    violations.append(
                        Violation(
                            S.EVENTS_FILE,
                            row,
                            "date",
                            "date_precision is 'month': write the first of the month",
                        )
                    )
                if precision == "year" and rec["date"][5:] != "01-01":
                    violations.append(
                        Violation(
                            S.EVENTS_FILE, row, "date", "date_precision is 'year': write YYYY-01-01"
                        )
                    )


def _outcome_rules(
    outcomes: pd.DataFrame,
    bad: set[tuple[int, str]],
    case_ids: set[str] | None,
    windows: dict[str, tuple[pd.Timestamp, pd.Timestamp]],
    violations: list[Violation],
) -> None:
    """Row rules of outcomes.csv and the version 2 question rules.

    A question is (case_id, outcome, partner). ``neutrality_revision`` has one row;
    a recurrent family (:data:`~neutrality_forecast.casesets.schema.RECURRENT_OUTCOMES`)
    has one row per occurrence, all ``occurred=true`` with distinct ``occurred_on``, or
    exactly one ``occurred=false`` row.
    """
    questions: dict[tuple[str, str, str], list[int]] = {}
    for row, rec in outcomes.iterrows():
        cid = rec["case_id"]
        if case_ids is not None and cid not in case_ids:
            violations.append(Violation(S.OUTCOMES_FILE, row, "case_id", f"unknown case {cid!r}"))
        if "outcome" in rec and _ok(bad, row, "outcome") and _ok(bad, row, "partner"):
            key = (cid, rec["outcome"], rec.get("partner", ""))
            questions.setdefault(key, []).append(row)
        if not {"occurred", "occurred_on"} <= set(rec.index):
            continue
        if not _ok(bad, row, "occurred", "occurred_on"):
            continue
        if rec["occurred"].lower() == "true":
            if rec["occurred_on"] == "":
                violations.append(
                    Violation(S.OUTCOMES_FILE, row, "occurred_on", "required when occurred is true")
                )
            elif cid in windows:
                _inside(S.OUTCOMES_FILE, row, "occurred_on", rec, windows[cid], violations)
    have_flags = {"occurred", "occurred_on"} <= set(outcomes.columns)
    for (cid, outcome, partner), rows in questions.items():
        if len(rows) == 1:
            continue
        name = f"{outcome!r}" + (f" with partner {partner!r}" if partner else "")
        first = rows[0]
        if outcome not in S.RECURRENT_OUTCOMES:
            for row in rows[1:]:
                violations.append(
                    Violation(
                        S.OUTCOMES_FILE, row, "outcome",
                        f"duplicate question {name} for case {cid!r} (first on row {first}); "
                        f"{outcome!r} is a one-time event: one row per case",
                    )
                )  # fmt: skip
            continue
        if not have_flags:
            continue
        dates: dict[str, int] = {}
        for row in rows:
            if not _ok(bad, row, "occurred", "occurred_on"):
                continue
            rec = outcomes.loc[row]
            if rec["occurred"].lower() != "true":
                violations.append(
                    Violation(
                        S.OUTCOMES_FILE, row, "occurred",
                        f"question {name} of case {cid!r} has several rows (first on row "
                        f"{first}): several rows list occurrences, all occurred=true; a "
                        "question with no occurrence has exactly one occurred=false row",
                    )
                )  # fmt: skip
                continue
            when = rec["occurred_on"]
            if when and when in dates:
                violations.append(
                    Violation(
                        S.OUTCOMES_FILE, row, "occurred_on",
                        f"occurrence {when} of question {name} of case {cid!r} is already on "
                        f"row {dates[when]} (occurrence dates must be distinct)",
                    )
                )  # fmt: skip
            dates.setdefault(when, row)


def _inside(
    file: str,
    row: int,
    column: str,
    rec: pd.Series,
    window: tuple[pd.Timestamp, pd.Timestamp],
    violations: list[Violation],
) -> None:
    when = pd.Timestamp(rec[column])
    start, end = window
    if not start <= when <= end:
        violations.append(
            Violation(
                file,
                row,
                column,
                f"{rec[column]} is outside the case window "
                f"{start.date()}..{end.date()} of case {rec['case_id']!r}",
            )
        )
