"""Audits of a case set's coding: search-pass coverage and the coding run-up.

* :func:`coverage_gaps` checks ``data/coverage.csv`` (the log of the coding protocol's
  search passes, ``data/PROTOCOL.md``): every case-year must have every pass, zeros
  included.
* :func:`run_up_ratios`: events per month in the 12 months before a case's first
  occurrence over the case's other months. A ratio well above 1 can be real signal (things
  happen before an outcome) or coders' hindsight (more searching where they know something
  happened); the protocol is what separates the two, the ratio only reports.
"""

from __future__ import annotations

import pandas as pd

from neutrality_forecast.casesets.caseset import CaseSet

__all__ = ["REQUIRED_PASSES", "coverage_gaps", "run_up_ratios"]

#: passes every case-year must have (``P1-contacts-<PARTNER>`` for every question partner
#: and one ``O-resolution-<family>`` row per family asked are checked too)
REQUIRED_PASSES = ("P2-agreements", "P3-arms", "P4-status", "P5-threats", "P6-steps")


def coverage_gaps(case_set: CaseSet, coverage: pd.DataFrame) -> pd.DataFrame:
    """Missing (case, year, pass) rows of ``coverage``; empty when the log is complete."""
    cov = coverage.astype({"year": int})
    have = set(zip(cov["case_id"].astype(str), cov["year"], cov["pass"].astype(str), strict=True))
    missing = []
    for case in case_set.cases.itertuples(index=False):
        outs = case_set.outcomes_of(case.case_id)
        partners = sorted({str(p) for p in outs["partner"].dropna()})
        families = sorted({str(o) for o in outs["outcome"]})
        need = [f"P1-contacts-{p}" for p in partners] + list(REQUIRED_PASSES)
        need += [f"O-resolution-{f}" for f in families]
        for year in range(case.window_start.year, case.window_end.year + 1):
            missing += [
                {"case_id": case.case_id, "year": year, "pass": p}
                for p in need
                if (case.case_id, year, p) not in have
            ]
    return pd.DataFrame(missing, columns=["case_id", "year", "pass"])


def run_up_ratios(
    case_set: CaseSet,
    *,
    months: int = 12,
    reference: dict[str, pd.Timestamp] | None = None,
    coder: str | None = None,
) -> pd.DataFrame:
    """Run-up ratio of every case with an occurrence (or a ``reference`` date).

    Parameters
    ----------
    case_set : CaseSet
        The case set.
    months : int, keyword-only
        Length of the run-up period before the first occurrence.
    reference : dict, optional
        ``case_id -> date`` to use instead of each case's first occurrence (to compare two
        codings of the same cases at the same dates).
    coder : str, optional
        Count only events with this ``coder`` value (e.g. ``protocol-v2``).

    Returns
    -------
    DataFrame
        ``case_id, first_outcome, events_run_up, events_other, months_run_up,
        months_other, rate_run_up, rate_other, ratio`` (``ratio`` = rate before the
        outcome over the rate in the case's other months; NaN when undefined).

    """
    ev = case_set.events
    if coder is not None and "coder" in ev.columns:
        ev = ev[ev["coder"].astype(str) == coder]
    occ = case_set.outcomes[case_set.outcomes["occurred"]]
    first = occ.groupby("case_id")["occurred_on"].min().to_dict()
    if reference is not None:
        first = {k: pd.Timestamp(v) for k, v in reference.items() if k in case_set.case_ids}
    rows = []
    for case in case_set.cases.itertuples(index=False):
        if case.case_id not in first:
            continue
        t1 = pd.Timestamp(first[case.case_id])
        t0 = max(t1 - pd.DateOffset(months=months), case.window_start)
        dates = ev.loc[ev["case_id"] == case.case_id, "date"]
        run_up = int(((dates >= t0) & (dates < t1)).sum())
        other = len(dates) - run_up
        m_run = (t1 - t0).days / 30.4375
        m_all = (case.window_end - case.window_start).days / 30.4375
        m_other = max(m_all - m_run, 1e-9)
        r_run, r_other = run_up / max(m_run, 1e-9), other / m_other
        rows.append(
            {"case_id": case.case_id, "first_outcome": t1.date().isoformat(),
             "events_run_up": run_up, "events_other": other, "months_run_up": round(m_run, 1),
             "months_other": round(m_other, 1), "rate_run_up": r_run, "rate_other": r_other,
             "ratio": r_run / r_other if r_other > 0 else float("nan")}
        )  # fmt: skip
    return pd.DataFrame(rows)
