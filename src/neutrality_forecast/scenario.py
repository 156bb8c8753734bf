"""What-if scenarios: the forecast with hypothetical events added, from the same posterior.

A scenario is a set of *hypothetical* events written exactly like real ones (the events
file of the data contract, see ``docs/data-contract.md``). Each hypothetical event enters
the forecast exactly as a coded event would:

* it is mapped to evidence categories per outcome question by the rules in
  ``models/evidence.toml`` (:func:`~neutrality_forecast.evidence.category_matrix`);
* it is weighted by its Admiralty grades
  (:func:`~neutrality_forecast.evidence.admiralty_weight`), counts in the case's coding
  volume (the causal intensity factor of *later* months, as for a coded event) and, with
  an ``outcome_step`` value, as a precursor step;
* it becomes known at the end of its date's period, decays with the configured half-lives
  and informs only later months (the configured lag).

The scenario forecast is computed with :func:`~neutrality_forecast.make_forecast` and the
``extra`` argument, with the *same posterior draws* as the baseline: the difference
between scenario and baseline is therefore computed draw by draw, and its interval reflects
only parameter uncertainty about the effect of the added evidence (no Monte-Carlo noise).

Hypothetical events may be dated from the case's window start up to the as-of date plus
the longest horizon. Events after the as-of date are added *on top of* the simulated future
evidence (``[forecast] future_evidence``, the same simulated arrivals in baseline and
scenario); events before it are treated as if they had been coded.

Use ``nf.what_if(fitted, events="scenario.csv", case_id="TKM")`` and read ``.table``
(baseline, scenario, difference per outcome and horizon) or draw ``.plot()``; the command
line is ``neutrality-forecast what-if --add-events scenario.csv``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from neutrality_forecast.casesets import CaseSet, CaseSetError, Violation
from neutrality_forecast.casesets import schema as S
from neutrality_forecast.casesets.loader import validate_frames
from neutrality_forecast.casesets.reader import read_raw
from neutrality_forecast.evidence import QuestionEvidence, month_index, question_evidence
from neutrality_forecast.forecast import Forecast, make_forecast
from neutrality_forecast.model.fitted import FittedModel

__all__ = [
    "WhatIfResult",
    "read_scenario_events",
    "scenario_evidence",
    "what_if",
]

QUANTILES = (0.05, 0.95)


@dataclass
class WhatIfResult:
    """Baseline and scenario forecasts of one case from the same posterior draws.

    Attributes
    ----------
    case_id : str
        The case.
    as_of : Timestamp
        The as-of date of both forecasts.
    table : DataFrame
        One row per question x horizon: ``case_id, question, outcome, partner, as_of,
        horizon_months, target_date, status``, the baseline probability ``baseline_mean,
        baseline_q05, baseline_q95``, the scenario probability ``scenario_mean, scenario_q05,
        scenario_q95``, the per-draw difference ``diff_mean, diff_q05, diff_q95`` and
        ``p_increase`` (the share of draws in which the scenario probability is higher).
    events : DataFrame
        The validated hypothetical events (typed: ``date`` is a timestamp).
    contributions : DataFrame
        What each hypothetical event adds to each question's evidence: ``event_id,
        known_month, question, outcome, partner, category, weight`` (non-zero entries;
        ``category`` may be ``precursor step``).
    baseline, scenario : Forecast
        The two forecasts (``draws['p']`` share the draw dimension).

    """

    case_id: str
    as_of: pd.Timestamp
    table: pd.DataFrame
    events: pd.DataFrame
    contributions: pd.DataFrame
    baseline: Forecast
    scenario: Forecast

    def plot(self, path: str | Path | None = None, *, title: str = ""):
        """Baseline vs scenario chart (:func:`~neutrality_forecast.report.plots.what_if_chart`)."""
        from neutrality_forecast.report.plots import what_if_chart

        return what_if_chart(self.table, path, title=title)

    def to_csv(self, path: str | Path) -> Path:
        """Write :attr:`table` as CSV and return the path."""
        path = Path(path)
        self.table.to_csv(path, index=False, lineterminator="\n")
        return path


# ---------------------------------------------------------------------------- validation
def _raw_from_frame(frame: pd.DataFrame, violations: list[Violation]) -> pd.DataFrame | None:
    """Contract text from an in-memory frame (rows numbered 1.. like the reader does)."""
    name = S.EVENTS_FILE
    for col in S.REQUIRED_COLUMNS[name]:
        if col not in frame.columns:
            violations.append(Violation(name, 0, col, "required column missing"))
    if frame.empty:
        violations.append(Violation(name, None, "-", "no events given"))
        return None
    text = frame.copy().reset_index(drop=True)
    for col in text.columns:
        if pd.api.types.is_datetime64_any_dtype(text[col]):
            text[col] = text[col].dt.strftime("%Y-%m-%d")
    text = text.astype(object).where(text.notna(), "").astype(str)
    text = text.apply(lambda s: s.str.strip())
    text.index = pd.RangeIndex(1, len(text) + 1, name="row")
    return text


def read_scenario_events(
    events: pd.DataFrame | str | Path,
    case_set: CaseSet,
    *,
    case_id: str | None = None,
    as_of: pd.Timestamp | str | None = None,
    horizons: list[int] | None = None,
    max_horizon: int | None = None,
) -> tuple[pd.DataFrame, str, pd.Timestamp]:
    """Validate hypothetical events against the events contract and the case.

    The rules of ``events.csv`` apply unchanged (required columns, enumerations, dates,
    unique ``event_id``, date precision), plus: every event belongs to the scenario's case,
    its id is not already used in the case set, and it is dated between the case's window
    start and ``as_of`` plus the longest horizon.

    Parameters
    ----------
    events : DataFrame, str or Path
        A CSV file following the events contract, or a frame with the same columns.
    case_set : CaseSet
        The case set the fit was made on.
    case_id : str, optional
        The case; by default the single ``case_id`` used in ``events``.
    as_of : Timestamp or str, optional
        Forecast date (default: the case's window end; it may not be later).
    horizons : list of int, optional
        Forecast horizons in months; ``max_horizon`` defaults to their maximum.
    max_horizon : int, optional
        Latest allowed event month, counted from ``as_of``.

    Returns
    -------
    events : DataFrame
        Typed events (``date`` as timestamps, Admiralty grades as text).
    case_id : str
        The case the scenario applies to.
    as_of : Timestamp
        The as-of date.

    Raises
    ------
    CaseSetError
        Listing every problem as ``file:row:column: message``.
    ValueError
        ``as_of`` is outside the case window.

    """
    violations: list[Violation] = []
    if isinstance(events, pd.DataFrame):
        label = "<DataFrame>"
        raw = _raw_from_frame(events, violations)
    else:
        path = Path(events)
        label = path.name
        raw = read_raw(path, S.REQUIRED_COLUMNS[S.EVENTS_FILE], violations)
    if raw is not None:
        validate_frames({S.CASES_FILE: None, S.OUTCOMES_FILE: None, S.EVENTS_FILE: raw}, violations)
    if raw is not None and case_id is None and "case_id" in raw.columns:
        ids = sorted(set(raw["case_id"]) - {""})
        if len(ids) == 1:
            case_id = ids[0]
        elif not violations:
            violations.append(
                Violation(
                    S.EVENTS_FILE,
                    None,
                    "case_id",
                    f"events name several cases {ids}: pass the case to use",
                )
            )
    if violations or raw is None:
        raise CaseSetError(_relabel(violations, label), root=label)
    assert case_id is not None
    if case_id not in case_set.case_ids:
        raise CaseSetError(
            [
                Violation(
                    label, None, "case_id", f"unknown case {case_id!r} (have: {case_set.case_ids})"
                )
            ],
            root=label,
        )
    case = case_set.case(case_id)
    when = pd.Timestamp(as_of) if as_of is not None else pd.Timestamp(case["window_end"])
    if not case["window_start"] <= when <= case["window_end"]:
        raise ValueError(
            f"as_of {when.date()} is outside the window {case['window_start'].date()}.."
            f"{case['window_end'].date()} of case {case_id!r}"
        )
    h_max = max_horizon or max(horizons or [24])
    latest = when + pd.DateOffset(months=h_max)
    known = set(case_set.events["event_id"].astype(str))
    for row, rec in raw.iterrows():
        if rec["case_id"] != case_id:
            violations.append(
                Violation(
                    S.EVENTS_FILE,
                    row,
                    "case_id",
                    f"the scenario is for case {case_id!r}, got {rec['case_id']!r}",
                )
            )
        if rec["event_id"] in known:
            violations.append(
                Violation(
                    S.EVENTS_FILE,
                    row,
                    "event_id",
                    f"event id {rec['event_id']!r} is already in the case set",
                )
            )
        date = pd.Timestamp(rec["date"])
        if not case["window_start"] <= date <= latest:
            violations.append(
                Violation(
                    S.EVENTS_FILE,
                    row,
                    "date",
                    f"{rec['date']} is outside the scenario period "
                    f"{case['window_start'].date()}..{latest.date()} (window start to as-of "
                    f"{when.date()} + {h_max} months)",
                )
            )
    if violations:
        raise CaseSetError(_relabel(violations, label), root=label)
    typed = raw.copy()
    typed["date"] = pd.to_datetime(typed["date"], format="%Y-%m-%d")
    return typed.reset_index(drop=True), case_id, when


def _relabel(violations: list[Violation], label: str) -> list[Violation]:
    """Name the user's file instead of ``events.csv`` in messages."""
    return [
        Violation(label if v.file == S.EVENTS_FILE else v.file, v.row, v.column, v.message)
        for v in violations
    ]


# ---------------------------------------------------------------------------- evidence
def scenario_evidence(
    fitted: FittedModel,
    events: pd.DataFrame,
    case_id: str,
    *,
    as_of: pd.Timestamp,
    max_horizon: int,
) -> dict[str, QuestionEvidence]:
    """The hypothetical events' evidence per question of ``case_id``.

    The ``extra`` argument of :func:`~neutrality_forecast.make_forecast`.

    Computed exactly like real events (category rules, Admiralty weights, end-of-period
    knowledge dates, precursor steps), from the case's first month to the month of
    ``as_of`` plus ``max_horizon``. The events also count in the case's coding volume, so
    the causal intensity factor of later months sees them as it would see coded events.
    """
    cfg = fitted.config.evidence
    country = str(fitted.case_set.case(case_id)["country"])
    m_end = int(month_index(pd.Timestamp(as_of))) + max_horizon
    return {
        q.label: question_evidence(
            events,
            country=country,
            outcome=q.outcome,
            partner=q.partner,
            first_month=q.first_month,
            last_month=m_end,
            cfg=cfg,
        )  # fmt: skip
        for q in fitted.questions_at(case_id, as_of)
    }


def _contributions_table(
    fitted: FittedModel, extra: dict[str, QuestionEvidence], case_id: str, as_of
) -> pd.DataFrame:
    qs = {q.label: q for q in fitted.questions_at(case_id, as_of)}
    rows = []
    for label, ev in extra.items():
        q = qs[label]
        for i, eid in enumerate(ev.event_ids):
            cells = [(c, ev.contributions[i, j]) for j, c in enumerate(fitted.data.categories)]
            if ev.step_contributions[i]:
                cells.append(("precursor step", ev.step_contributions[i]))
            for cat, w in cells:
                if w != 0:
                    rows.append(
                        {"event_id": eid, "known_month": int(ev.event_months[i]),
                         "question": label, "outcome": q.outcome, "partner": q.partner or "",
                         "category": cat, "weight": float(w)}
                    )  # fmt: skip
    cols = ["event_id", "known_month", "question", "outcome", "partner", "category", "weight"]
    return pd.DataFrame(rows, columns=cols)


# ---------------------------------------------------------------------------- API
def what_if(
    fitted: FittedModel,
    events: pd.DataFrame | str | Path,
    *,
    case_id: str | None = None,
    as_of: pd.Timestamp | str | None = None,
    horizons: list[int] | None = None,
) -> WhatIfResult:
    """Forecast ``case_id`` with and without hypothetical ``events``, from the same draws.

    Parameters
    ----------
    fitted : FittedModel
        A fit (see :func:`neutrality_forecast.fit` or :func:`neutrality_forecast.load_fitted`).
    events : DataFrame, str or Path
        Hypothetical events following the events contract (validated like ``events.csv``).
    case_id : str, optional
        The case; by default the single case named in ``events``.
    as_of : Timestamp or str, optional
        Forecast date; default the case's window end in the fitted case set.
    horizons : list of int, optional
        Months ahead; default ``[forecast] horizons`` of the configuration.

    Returns
    -------
    WhatIfResult
        ``table`` (baseline, scenario and difference per outcome and horizon),
        ``contributions``, both :class:`~neutrality_forecast.Forecast` objects and ``plot()``.

    Raises
    ------
    CaseSetError
        The events break the contract or fall outside the scenario period.

    Examples
    --------
    >>> res = nf.what_if(fitted, events="hypothetical.csv", case_id="TKM")  # doctest: +SKIP
    >>> res.plot("what_if.png")  # doctest: +SKIP

    """
    horizons = sorted(set(horizons or fitted.config.model.forecast.horizons))
    typed, case_id, when = read_scenario_events(
        events, fitted.case_set, case_id=case_id, as_of=as_of, horizons=horizons
    )
    extra = scenario_evidence(fitted, typed, case_id, as_of=when, max_horizon=max(horizons))
    baseline = make_forecast(fitted, case_id, as_of=when, horizons=horizons)
    scenario = make_forecast(fitted, case_id, as_of=when, horizons=horizons, extra=extra)
    table = compare_forecasts(baseline, scenario)
    return WhatIfResult(
        case_id=case_id,
        as_of=when,
        table=table,
        events=typed,
        contributions=_contributions_table(fitted, extra, case_id, when),
        baseline=baseline,
        scenario=scenario,
    )


def compare_forecasts(baseline: Forecast, scenario: Forecast) -> pd.DataFrame:
    """Per question and horizon: baseline, scenario and their per-draw difference.

    Both forecasts must come from the same posterior draws (same ``draw`` dimension) and
    the same simulated future evidence (same seed): the difference is then the effect of
    the hypothetical events alone.
    """
    pb = baseline.draws["p"]
    ps = scenario.draws["p"]
    if pb.sizes != ps.sizes:
        raise ValueError("baseline and scenario must share draws, horizons and questions")
    diff = (ps - pb).values
    base = baseline.table.set_index(["question", "horizon_months"])
    rows = []
    for h_i, h in enumerate(pb["horizon"].values):
        for o_i, label in enumerate(pb["question"].values):
            b, s, d = pb.values[:, h_i, o_i], ps.values[:, h_i, o_i], diff[:, h_i, o_i]
            meta = base.loc[(str(label), int(h))]
            bq, sq, dq = (np.quantile(v, QUANTILES) for v in (b, s, d))
            rows.append(
                {
                    "case_id": baseline.case_id,
                    "question": str(label),
                    "outcome": meta["outcome"],
                    "partner": meta["partner"],
                    "as_of": meta["as_of"],
                    "horizon_months": int(h),
                    "target_date": meta["target_date"],
                    "status": meta["status"],
                    "baseline_mean": float(b.mean()),
                    "baseline_q05": float(bq[0]),
                    "baseline_q95": float(bq[1]),
                    "scenario_mean": float(s.mean()),
                    "scenario_q05": float(sq[0]),
                    "scenario_q95": float(sq[1]),
                    "diff_mean": float(d.mean()),
                    "diff_q05": float(dq[0]),
                    "diff_q95": float(dq[1]),
                    "p_increase": float((d > 0).mean()),
                }
            )
    order = {o: i for i, o in enumerate(baseline.table["question"].unique())}
    frame = pd.DataFrame(rows)
    frame["_o"] = frame["question"].map(order)
    return frame.sort_values(["_o", "horizon_months"]).drop(columns="_o").reset_index(drop=True)
