"""Evidence covariates: weighted, decayed event stocks per question and month.

Timing. An event is *known* at the end of its date's period: its day (``date_precision =
day``), the last day of its month (``month``) or of its year (``year``). It enters the
inflow of the month in which it becomes known, and informs the hazard of months after that
(``lag`` months later; lag 1: an event known in month ``m`` informs month ``m + 1`` on), so
a month-precision event dated ``2016-01-01`` is not evidence at an origin of 1 January 2016,
and a year-precision event of 2015 informs 2016 on. The same functions build the training
rows and the forecast covariates, so features are causal and identical in both.

For question ``q`` (a case's outcome with one partner), category ``j`` and month ``t``::

    inflow[q, m, j] = sum_{events e known in month m} w_e * I[e in j]
    stock[q, t, j]  = sum_{m <= t - lag} inflow[q, m, j] * 0.5 ** ((t - lag - m) / half_life)

with Admiralty weights ``w_e`` and the 0/1 category indicator ``I``
(:func:`~neutrality_forecast.evidence.mapping.category_matrix`). The recursion
``stock[t] = d * stock[t-1] + inflow[t-lag]`` is evaluated with
:func:`scipy.signal.lfilter` along the time axis (any leading axes, e.g. posterior draws
of simulated future evidence, are carried along). How stocks become model covariates
(half-lives, coding intensity, composites, precursor steps) is in
:mod:`neutrality_forecast.evidence.features`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from neutrality_forecast.config import EvidenceConfig
from neutrality_forecast.evidence.mapping import EventArrays, category_matrix, step_matrix

__all__ = [
    "QuestionEvidence",
    "known_dates",
    "month_index",
    "monthly_evidence",
    "question_evidence",
    "stock_from_inflow",
]


def month_index(when: pd.Timestamp | pd.Series | np.ndarray) -> np.ndarray | int:
    """Months since year 0: ``year * 12 + month - 1`` (scalar or array)."""
    if isinstance(when, pd.Timestamp):
        return when.year * 12 + when.month - 1
    idx = pd.DatetimeIndex(when)
    return (idx.year * 12 + idx.month - 1).to_numpy()


def known_dates(dates: np.ndarray | pd.Series, precision: np.ndarray | pd.Series) -> np.ndarray:
    """The day each event becomes known: the end of its date's period.

    ``day`` precision: the date itself; ``month``: the last day of the month; ``year``: 31
    December. Returns ``datetime64[ns]`` values.
    """
    d = pd.DatetimeIndex(pd.to_datetime(np.asarray(dates)))
    prec = np.asarray(pd.Series(precision).astype(str).to_numpy())
    out = d.to_numpy().copy()
    month_end = (d + pd.offsets.MonthEnd(0)).to_numpy()
    year_end = pd.DatetimeIndex([pd.Timestamp(year=y, month=12, day=31) for y in d.year])
    out = np.where(prec == "month", month_end, out)
    out = np.where(prec == "year", year_end.to_numpy(), out)
    return out.astype("datetime64[ns]")


#: longest run of months computed with the decay matrix (its cost grows with months^2)
_MATRIX_MONTHS = 64


def stock_from_inflow(inflow: np.ndarray, *, half_life: float, lag: int) -> np.ndarray:
    """Decayed stock from monthly inflow along axis -2 (months), lagged by ``lag`` months.

    ``inflow`` has shape ``(..., months, categories)``; the result has the same shape.
    Short runs with leading (draw) axes, e.g. the simulated future months of a forecast,
    are computed as one product with the lower-triangular decay matrix (same values to
    rounding, several times faster than the recursion along a non-contiguous axis); the
    rest by the recursion ``s_t = d s_{t-1} + x_t``.
    """
    d = 0.5 ** (1.0 / half_life)
    n = inflow.shape[-2]
    shifted = np.zeros_like(inflow, dtype=float)
    if lag < n:
        shifted[..., lag:, :] = inflow[..., : n - lag, :] if lag else inflow
    if inflow.ndim >= 3 and n <= _MATRIX_MONTHS:
        age = np.arange(n)[:, None] - np.arange(n)[None, :]
        return np.matmul(np.tril(d ** np.clip(age, 0, None)), shifted)
    return lfilter([1.0], [1.0, -d], shifted, axis=-2)


@dataclass(frozen=True)
class QuestionEvidence:
    """Monthly evidence for one (case, outcome, partner) question.

    Attributes
    ----------
    first_month : int
        Month index of ``inflow[0]`` (the case's window start month).
    inflow : ndarray, shape (months, categories)
        Admiralty-weighted category counts per month of knowledge.
    steps : ndarray, shape (months,)
        Weighted count of precursor steps toward this question (``outcome_step`` equal to
        its family and, for a partner question, involving that partner).
    volume : ndarray, shape (months,)
        The case's Admiralty-weighted count of all events per month (coding intensity).
    event_ids, event_months, contributions, step_contributions
        Each event's id, month of knowledge and weighted category / step indicators (for
        attribution, what-if analysis and simulated future evidence).

    """

    first_month: int
    inflow: np.ndarray
    steps: np.ndarray
    volume: np.ndarray
    event_ids: tuple[str, ...]
    event_months: np.ndarray
    contributions: np.ndarray
    step_contributions: np.ndarray
    weights: np.ndarray


def question_evidence(
    events: pd.DataFrame | EventArrays,
    *,
    country: str,
    outcome: str,
    partner: str | None,
    first_month: int,
    last_month: int,
    cfg: EvidenceConfig,
) -> QuestionEvidence:
    """Monthly inflow of evidence for one question from its case's events."""
    n_months = max(last_month - first_month + 1, 0)
    if len(events) == 0:
        empty = np.zeros(0)
        none = np.zeros((0, len(cfg.categories)))
        return monthly_evidence(first_month, n_months, (), np.zeros(0, int), none, empty, empty)
    ev = events if isinstance(events, EventArrays) else EventArrays.from_frame(events, cfg)
    contrib = category_matrix(ev, country, partner, cfg) * ev.weight[:, None]
    step = step_matrix(ev, outcome, partner, cfg) * ev.weight
    months = np.asarray(month_index(ev.known), dtype=int)
    return monthly_evidence(first_month, n_months, ev.event_ids, months, contrib, step, ev.weight)


def monthly_evidence(
    first_month: int,
    n_months: int,
    event_ids: tuple[str, ...],
    event_months: np.ndarray,
    contributions: np.ndarray,
    step_contributions: np.ndarray,
    weights: np.ndarray,
) -> QuestionEvidence:
    """Sum weighted events into the ``n_months`` months from ``first_month``.

    Events are added in their order (:func:`numpy.add.at`); those known outside the months
    stay in the per-event arrays. Shared by :func:`question_evidence` and the cut of a
    question at an earlier date (:mod:`neutrality_forecast.model.known`), which therefore
    give the same values.
    """
    inflow = np.zeros((n_months, contributions.shape[1]))
    steps = np.zeros(n_months)
    volume = np.zeros(n_months)
    months = event_months - first_month
    keep = (months >= 0) & (months < n_months)
    np.add.at(inflow, months[keep], contributions[keep])
    np.add.at(steps, months[keep], step_contributions[keep])
    np.add.at(volume, months[keep], weights[keep])
    return QuestionEvidence(
        first_month, inflow, steps, volume, event_ids, event_months, contributions,
        step_contributions, weights,
    )  # fmt: skip
