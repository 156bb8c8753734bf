"""Evidence covariates: weighted, decayed event stocks per question and month.

For question ``q`` (a case's outcome), category ``j`` and month ``t``::

    inflow[q, m, j] = sum_{events e in month m} w_e * I[e in j]
    stock[q, t, j]  = sum_{m <= t - lag} inflow[q, m, j] * 0.5 ** ((t - lag - m) / half_life)
    x[q, t, j]      = log1p(stock[q, t, j])

with Admiralty weights ``w_e`` and the 0/1 category indicator ``I``. The recursion
``stock[t] = d * stock[t-1] + inflow[t-lag]`` is evaluated with :func:`scipy.signal.lfilter`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from neutrality_forecast.config import EvidenceConfig
from neutrality_forecast.evidence.mapping import EventArrays, admiralty_weight, category_matrix

__all__ = [
    "QuestionEvidence",
    "intensity_factor",
    "month_index",
    "question_evidence",
    "stock_from_inflow",
]


def intensity_factor(
    events: pd.DataFrame | EventArrays, n_months: int, cfg: EvidenceConfig
) -> float:
    """Coding-intensity factor ``reference_rate / rate_c`` of a case (clipped).

    ``rate_c`` is the case's Admiralty-weighted events per month over ``n_months`` observed
    months. Returns 1 when normalisation is switched off.
    """
    opt = cfg.intensity
    if not opt.normalise or n_months <= 0:
        return 1.0
    weight = events.weight if isinstance(events, EventArrays) else admiralty_weight(events, cfg)
    rate = float(weight.sum()) / n_months if len(events) else 0.0
    if rate <= 0:
        return opt.max_factor
    return float(np.clip(opt.reference_rate / rate, opt.min_factor, opt.max_factor))


def month_index(when: pd.Timestamp | pd.Series | np.ndarray) -> np.ndarray | int:
    """Months since year 0: ``year * 12 + month - 1`` (scalar or array)."""
    if isinstance(when, pd.Timestamp):
        return when.year * 12 + when.month - 1
    idx = pd.DatetimeIndex(when)
    return (idx.year * 12 + idx.month - 1).to_numpy()


def stock_from_inflow(inflow: np.ndarray, *, half_life: float, lag: int) -> np.ndarray:
    """Decayed stock (months x categories) from monthly inflow, lagged by ``lag`` months."""
    d = 0.5 ** (1.0 / half_life)
    shifted = np.zeros_like(inflow)
    if lag < inflow.shape[0]:
        shifted[lag:] = inflow[: inflow.shape[0] - lag] if lag else inflow
    return lfilter([1.0], [1.0, -d], shifted, axis=0)


@dataclass(frozen=True)
class QuestionEvidence:
    """Monthly evidence for one (case, outcome) question.

    Attributes
    ----------
    first_month : int
        Month index of ``inflow[0]`` (the case's window start month).
    inflow : ndarray, shape (months, categories)
        Weighted event counts per month.
    contributions : ndarray, shape (events, categories)
        Each event's weighted indicator, rows aligned with ``event_ids`` and
        ``event_months`` (used for attribution and what-if analysis).

    """

    first_month: int
    inflow: np.ndarray
    event_ids: tuple[str, ...]
    event_months: np.ndarray
    contributions: np.ndarray


def question_evidence(
    events: pd.DataFrame | EventArrays,
    *,
    country: str,
    partner: str | None,
    first_month: int,
    last_month: int,
    cfg: EvidenceConfig,
    scale: float = 1.0,
) -> QuestionEvidence:
    """Monthly inflow of evidence for one question from the case's events.

    ``scale`` multiplies every event's weight (the case's coding-intensity factor, see
    :func:`intensity_factor`).
    """
    n_months = last_month - first_month + 1
    n_cat = len(cfg.categories)
    inflow = np.zeros((max(n_months, 0), n_cat))
    if len(events) == 0:
        return QuestionEvidence(first_month, inflow, (), np.zeros(0, int), np.zeros((0, n_cat)))
    ev = events if isinstance(events, EventArrays) else EventArrays.from_frame(events, cfg)
    weight = ev.weight * scale
    contrib = category_matrix(ev, country, partner, cfg) * weight[:, None]
    months = np.asarray(month_index(ev.dates), dtype=int) - first_month
    keep = (months >= 0) & (months < n_months)
    np.add.at(inflow, months[keep], contrib[keep])
    return QuestionEvidence(
        first_month,
        inflow,
        ev.event_ids,
        months + first_month,
        contrib,
    )
