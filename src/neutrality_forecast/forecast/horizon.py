"""Horizon probabilities, the joint distribution of outcomes and the conditional table.

For one case at an as-of date, every posterior draw gives monthly hazards for each open
question over the forecast months. Outcomes are linked through neutrality: while a neutral
state's neutrality stands, linked families carry the penalty ``gamma``; once the
``neutrality_revision`` question resolves (in the simulation), the penalty is lifted from
the next month on. The joint distribution over the 2^n combinations of outcomes is computed
*exactly* per draw by a forward pass of the 2^n-state Markov chain (no Monte-Carlo noise).

Future evidence (``[forecast] future_evidence`` in ``model.toml``):

* ``recent_rate`` (default): events keep arriving at the case's average weighted monthly
  rate over the last ``recent_months`` before the as-of date, in expectation, and decay as
  usual;
* ``none``: no new events; the existing evidence stock decays.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from neutrality_forecast.config import Config
from neutrality_forecast.evidence import month_index, stock_from_inflow
from neutrality_forecast.model.data import Question
from neutrality_forecast.model.fitted import FittedModel

__all__ = [
    "as_of_month",
    "future_covariates",
    "horizon_probabilities",
    "question_hazards",
    "question_probabilities",
    "simulate_joint",
]


def future_covariates(
    q: Question,
    *,
    as_of_month: int,
    n_months: int,
    half_life: float,
    lag: int,
    mode: str,
    recent_months: int,
    extra_inflow: np.ndarray | None = None,
) -> np.ndarray:
    """Covariates ``x`` (n_months x categories) for the months after ``as_of_month``."""
    upto = as_of_month - q.first_month + 1
    past = q.evidence.inflow[: max(upto, 0)]
    n_cat = q.evidence.inflow.shape[1]
    if mode == "recent_rate" and len(past):
        rate = past[-recent_months:].sum(axis=0) / min(recent_months, len(past))
    else:
        rate = np.zeros(n_cat)
    inflow = np.vstack([past, np.tile(rate, (n_months, 1))])
    if extra_inflow is not None:
        inflow = inflow + extra_inflow[: len(inflow)]
    stock = stock_from_inflow(inflow, half_life=half_life, lag=lag)
    return np.log1p(stock[len(past) :])


def question_hazards(
    q: Question, x: np.ndarray, draws: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Monthly hazards per draw without and with the standing-neutrality penalty.

    Returns two arrays of shape (draws, months): ``h_free`` (neutrality revised or not
    applicable) and ``h_standing`` (penalty ``gamma_k`` applied).
    """
    k, c = q.outcome_idx, q.case_idx
    eta = draws["alpha"][:, k, None] + draws["u"][:, c, k, None] + draws["beta"][:, k, :] @ x.T
    h_free = 1.0 / (1.0 + np.exp(-eta))
    h_stand = 1.0 / (1.0 + np.exp(-(eta - draws["gamma"][:, k, None])))
    return h_free, h_stand


def simulate_joint(
    hazards: list[tuple[np.ndarray, np.ndarray]],
    *,
    resolved: list[bool],
    linked: list[bool],
    revision: int | None,
    neutral_standing: bool,
) -> np.ndarray:
    """Exact joint probabilities of the outcomes by month, per draw.

    Parameters
    ----------
    hazards : list of (h_free, h_standing)
        Per outcome, arrays (draws, months).
    resolved : list of bool
        Outcomes already occurred at the as-of date (their bit starts at 1).
    linked : list of bool
        Outcomes whose hazard carries the standing-neutrality penalty.
    revision : int or None
        Position of ``neutrality_revision`` among the outcomes, if present.
    neutral_standing : bool
        Whether neutrality stands at the as-of date (neutral state, not yet revised).

    Returns
    -------
    ndarray, shape (draws, months, 2**n)
        ``P[s, t, b]`` = probability that exactly the outcomes in bit pattern ``b``
        (bit i = outcome i) have occurred by the end of forecast month ``t``.

    """
    n = len(hazards)
    n_draws, n_months = hazards[0][0].shape
    states = list(itertools.product([0, 1], repeat=n))  # tuple bits, index = sum(bit_i << i)

    def index(bits: tuple[int, ...]) -> int:
        return sum(b << i for i, b in enumerate(bits))

    prob = np.zeros((n_draws, 2**n))
    prob[:, index(tuple(int(r) for r in resolved))] = 1.0
    out = np.empty((n_draws, n_months, 2**n))
    for t in range(n_months):
        new = np.zeros_like(prob)
        for bits in states:
            a = index(bits)
            if not prob[:, a].any():
                continue
            standing = neutral_standing and not (revision is not None and bits[revision])
            h = [
                hazards[i][1][:, t] if (standing and linked[i]) else hazards[i][0][:, t]
                for i in range(n)
            ]
            open_ = [i for i in range(n) if not bits[i]]
            for flips in itertools.product([0, 1], repeat=len(open_)):
                p = prob[:, a].copy()
                target = list(bits)
                for i, f in zip(open_, flips, strict=True):
                    p *= h[i] if f else 1.0 - h[i]
                    target[i] = target[i] or f
                new[:, index(tuple(target))] += p
        prob = new
        out[:, t, :] = prob
    return out


def as_of_month(as_of: pd.Timestamp) -> int:
    """Month index of the as-of date (the last observed month)."""
    return int(month_index(pd.Timestamp(as_of)))


def question_probabilities(
    qs: list[Question],
    draws: dict[str, np.ndarray],
    *,
    config: Config,
    link_outcomes: list[str],
    as_of_month: int,
    horizons: list[int],
    extra_inflow: dict[str, np.ndarray] | None = None,
    evidence: bool = True,
) -> dict:
    """Per-draw marginal and joint probabilities for the questions of one case.

    The core of :func:`horizon_probabilities`, usable with questions and draws that do not
    come from one fitted model (backtests forecast a left-out case whose case effects are
    drawn from their prior). ``evidence=False`` zeroes the covariates (the evidence-free
    baseline).
    """
    dec = config.evidence.decay
    fc = config.model.forecast
    m0 = as_of_month
    qs = sorted(qs, key=lambda q: q.outcome_idx)
    n_months = max(horizons)
    hazards, resolved, linked = [], [], []
    for q in qs:
        x = future_covariates(
            q,
            as_of_month=m0,
            n_months=n_months,
            half_life=dec.half_life_months,
            lag=dec.lag_months,
            mode=fc.future_evidence,
            recent_months=fc.recent_months,
            extra_inflow=None if extra_inflow is None else extra_inflow.get(q.outcome),
        )
        if not evidence:
            x = np.zeros_like(x)
        hazards.append(question_hazards(q, x, draws))
        resolved.append(q.occurred and q.occurred_month is not None and q.occurred_month <= m0)
        linked.append(q.outcome in link_outcomes)
    names = [q.outcome for q in qs]
    revision = names.index("neutrality_revision") if "neutrality_revision" in names else None
    rev_month = qs[0].revision_month
    standing = qs[0].neutral and not (rev_month is not None and rev_month <= m0)
    joint = simulate_joint(
        hazards, resolved=resolved, linked=linked, revision=revision, neutral_standing=standing
    )
    idx = np.array(horizons) - 1
    joint_h = joint[:, idx, :]
    bits = list(itertools.product([0, 1], repeat=len(qs)))
    order = [sum(b << i for i, b in enumerate(bt)) for bt in bits]
    joint_h = joint_h[:, :, order]
    marginal = np.stack(
        [joint_h[:, :, [j for j, bt in enumerate(bits) if bt[i]]].sum(-1) for i in range(len(qs))],
        axis=-1,
    )
    return {
        "outcomes": names,
        "questions": qs,
        "resolved": resolved,
        "marginal": marginal,
        "joint": joint_h,
        "bits": bits,
        "as_of_month": m0,
    }


def horizon_probabilities(
    fitted: FittedModel,
    case_id: str,
    *,
    as_of: pd.Timestamp,
    horizons: list[int],
    extra_inflow: dict[str, np.ndarray] | None = None,
) -> dict:
    """Per-draw marginal, joint and conditional probabilities at each horizon.

    Returns a dict with ``outcomes`` (list), ``questions``, ``resolved`` (bool list),
    ``marginal`` (draws, horizons, outcomes), ``joint`` (draws, horizons, 2**n) and
    ``bits`` (list of tuples).
    """
    qs = [q for q in fitted.data.questions if q.case_id == case_id]
    if not qs:
        raise KeyError(f"case {case_id!r} has no outcome questions in the fitted data")
    return question_probabilities(
        qs,
        fitted.draws(),
        config=fitted.config,
        link_outcomes=fitted.data.link_outcomes,
        as_of_month=as_of_month(as_of),
        horizons=horizons,
        extra_inflow=extra_inflow,
    )
