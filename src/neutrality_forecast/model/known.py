"""A case's questions as known on any date, cut from one build of the full questions.

:func:`~neutrality_forecast.model.data.questions_at` answers "which questions, with which
evidence and occurrences, did we know on ``as_of``?". The backtest asks it for every case
at every origin (thousands of dates), and the report's replays for 48 dates per case.
Truncating the case set and rebuilding the questions with pandas each time cost ~80 ms
per (case, date) on the synthetic population; :class:`CaseHistory` builds the case's
questions once and cuts them with array operations:

* events not yet *known* on ``as_of`` (known at the end of their date's period) leave the
  evidence arrays; the monthly inflow, steps and volume are summed again over the kept
  events in the same order (:func:`numpy.add.at`), so the values are bit-identical to a
  rebuild;
* occurrences after ``as_of`` are dropped, the neutrality revision date with them when it
  is later; the window (``last_month``, ``window_end``) ends at ``as_of``;
* questions keep the order a rebuild from the truncated outcomes table would give them.

``tests/test_known.py`` checks the result field by field against the rebuild on the
shipped data and on a synthetic population, at every origin.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from neutrality_forecast.casesets import CaseSet
from neutrality_forecast.config import Config
from neutrality_forecast.evidence import QuestionEvidence, month_index
from neutrality_forecast.evidence.covariates import known_dates, monthly_evidence

__all__ = ["CaseHistory"]

Key = tuple[str, str | None]


class CaseHistory:
    """The questions of ``case_id`` in ``case_set``, ready to be cut at any date.

    Parameters
    ----------
    case_set : CaseSet
        The case set the questions come from.
    case_id : str
        The case.
    config : Config
        Evidence settings (features, categories) as for the fitted model.
    data : ModelData
        The fitted model's data: question and case indices are taken from it, so the
        fitted effects apply (a question it does not have raises ``KeyError``).

    """

    def __init__(self, case_set: CaseSet, case_id: str, config: Config, data) -> None:
        from neutrality_forecast.model.data import build_questions

        self.case_id = case_id
        case = case_set.case(case_id)
        self.window_start = pd.Timestamp(case["window_start"])
        self.window_end = pd.Timestamp(case["window_end"])
        sub = case_set.subset([case_id])
        labels = {lbl: i for i, lbl in enumerate(data.question_labels)}
        c_idx = data.case_ids.index(case_id) if case_id in data.case_ids else -1
        self.questions = []
        for q in build_questions(sub, config, data.partners):
            if q.label not in labels:
                raise KeyError(f"question {q.label!r} is not in the fitted model")
            self.questions.append(replace(q, q_idx=labels[q.label], case_idx=c_idx))
        self._by_key = {(q.outcome, q.partner): q for q in self.questions}
        # the events in the order of every question's evidence arrays (by date, stable)
        ev = sub.events.sort_values("date", kind="stable")
        self._known = np.asarray(known_dates(ev["date"], ev["date_precision"]), "datetime64[ns]")
        outs = sub.outcomes
        partner = outs["partner"].where(outs["partner"].notna(), None)
        self._keys: list[Key] = [
            (str(o), None if p is None or pd.isna(p) else str(p))
            for o, p in zip(outs["outcome"].astype(str), partner, strict=True)
        ]
        self._occurred = outs["occurred"].to_numpy(bool)
        self._on = pd.to_datetime(outs["occurred_on"]).to_numpy("datetime64[ns]")

    def _order(self, as_of: np.datetime64) -> list[Key]:
        """Question keys in the order the truncated outcomes table lists them.

        A rebuild groups the rows that remain (occurrences after ``as_of`` removed) by
        first appearance; a question whose rows were all later keeps one reopened row at the
        place of its first late row.
        """
        late = self._occurred & (self._on > as_of)
        remaining = {k for k, gone in zip(self._keys, late, strict=True) if not gone}
        order: list[Key] = []
        for k, gone in zip(self._keys, late, strict=True):
            if (not gone or k not in remaining) and k not in order:
                order.append(k)
        return order

    def at(self, as_of) -> list:
        """The questions as known on ``as_of`` (the full questions from the window end on)."""
        as_of = pd.Timestamp(as_of)
        if not as_of < self.window_end:
            return list(self.questions)
        if not self.window_start <= as_of:
            raise ValueError(f"as_of {as_of.date()} is before the window of case {self.case_id!r}")
        t = np.datetime64(as_of, "ns")
        keep = self._known <= t
        last = int(month_index(as_of))
        out = []
        for key in self._order(t):
            q = self._by_key[key]
            occ = tuple(d for d in q.occurrences if d <= as_of)
            rev = q.revision_date
            if rev is not None and rev > as_of:
                rev = None
            out.append(
                replace(
                    q, occurrences=occ, revision_date=rev, last_month=last,
                    window_end=as_of, evidence=_cut_evidence(q.evidence, keep, last),
                )
            )  # fmt: skip
        return out


def _cut_evidence(ev: QuestionEvidence, keep: np.ndarray, last_month: int) -> QuestionEvidence:
    """``ev`` with only the events in ``keep``, its months ending at ``last_month``.

    The same sums as :func:`~neutrality_forecast.evidence.question_evidence` on the kept
    events (same order, same function), hence the same values.
    """
    idx = np.flatnonzero(keep)  # keep: the case's events, in the order of ev's arrays
    return monthly_evidence(
        ev.first_month, max(last_month - ev.first_month + 1, 0),
        tuple(ev.event_ids[i] for i in idx), ev.event_months[idx], ev.contributions[idx],
        ev.step_contributions[idx], ev.weights[idx],
    )  # fmt: skip
