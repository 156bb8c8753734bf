"""Horizon probabilities, the joint distribution of outcomes and the conditional table.

What a forecast covers. A forecast made on the as-of day ``d`` for horizon ``h`` is the
probability of (at least one new) occurrence in ``(d, d + h months]``: the rest of ``d``'s
month (exposure ``1 - f`` with ``f`` the share of the month observed by the end of day
``d``), the ``h - 1`` following months in full, and the first ``f`` of month ``m0 + h``;
the target date is ``d + h months``. A monthly hazard ``h_t`` applied to a fraction ``e``
of a month gives ``1 - (1 - h_t) ** e`` (the same exposure rule as training, see
:mod:`neutrality_forecast.model.data`).

Recurrent questions (accords, basing) report P(at least one *new* occurrence within h);
their earlier occurrences enter through the recurrence term and are reported as
``last_occurred_on``. A neutrality revision that has happened is ``resolved``.

Linked outcomes: while a neutral state's neutrality stands, linked families carry the
penalty ``gamma``; once the revision happens (in the simulation) the penalty is lifted from
the next month on. The joint distribution of the headline questions (``[forecast]
headline``) is computed *exactly* per draw by a forward pass of the 2^n-state Markov chain;
every other question's marginal by the 4-state chain it forms with the revision.

Future evidence (``[forecast] future_evidence``):

* ``simulate`` (default): per posterior draw, events keep arriving as a Poisson process at
  the case's rate over the ``recent_months`` full months before the as-of month (the as-of
  month itself, only partly observed, is left out of the rate); each arrival is a copy of
  one of those events, so its categories, partner and grade mix are kept, and the
  forecast's interval includes the uncertainty of what will be reported;
* ``none``: no new events; the existing stock only decays.
"""

from __future__ import annotations

import itertools
import zlib

import numpy as np
import pandas as pd

from neutrality_forecast.config import Config
from neutrality_forecast.evidence import month_index
from neutrality_forecast.evidence.features import features, features_ahead
from neutrality_forecast.model.data import Question, month_fraction

__all__ = [
    "chain_probabilities",
    "chain_step",
    "headline_questions",
    "horizon_probabilities",
    "question_hazards",
    "question_probabilities",
    "simulate_arrivals",
]


def headline_questions(qs: list[Question], spec: list[str]) -> list[Question]:
    """The questions named by ``spec`` (``outcome`` or ``outcome:PARTNER``) that exist."""
    out = []
    for item in spec:
        outcome, _, partner = item.partition(":")
        for q in qs:
            if q.outcome == outcome and (not partner or q.partner == partner) and q not in out:
                out.append(q)
                break
    return out


def simulate_arrivals(
    q_case: list[Question],
    *,
    as_of: pd.Timestamp,
    n_months: int,
    n_draws: int,
    recent_months: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Poisson counts of resampled recent events per draw and future month.

    Returns ``(counts, recent)``: ``counts (draws, n_months, E)`` over the ``E`` events of
    the case known in the ``recent_months`` full months before the as-of month, and their
    positions ``recent`` in the case's event arrays (``None`` if there are none). Month 0
    is the rest of the as-of month (rate scaled by its unobserved share). Each event has
    its own random stream (seeded by ``seed`` and its id), so adding or removing one event
    leaves the simulated arrivals of the others unchanged (what-if and attribution compare
    forecasts without Monte-Carlo noise from the simulation).
    """
    q = q_case[0]
    m0 = int(month_index(pd.Timestamp(as_of)))
    months = q.evidence.event_months
    recent = np.flatnonzero((months >= m0 - recent_months) & (months < m0))
    if len(recent) == 0 or n_months <= 0:
        return None
    span = min(recent_months, m0 - q.first_month)
    exposure = np.ones(n_months)
    exposure[0] = 1.0 - month_fraction(as_of)
    lam = exposure / max(span, 1)  # each recent event recurs at rate 1/span per month
    counts = np.empty((n_draws, n_months, len(recent)), dtype=np.int64)
    for i, e in enumerate(recent):
        key = zlib.crc32(q.evidence.event_ids[e].encode())
        counts[:, :, i] = np.random.default_rng([seed, key]).poisson(lam, size=(n_draws, n_months))
    return counts, recent


def _future_inflow(
    q: Question, sim, *, as_of: pd.Timestamp, n_future: int, extra=None
) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...] | None]:
    """Inflow, steps and volume from the window start to ``m0 + n_future - 1``.

    Returns ``(base, added)``: ``base`` the known history (and, with ``extra``, a
    :class:`~neutrality_forecast.evidence.QuestionEvidence` over the same first month,
    hypothetical events for what-if scenarios and attribution), common to every draw;
    ``added`` (with ``sim``, else ``None``) each draw's simulated arrivals over the last
    ``n_future`` months, with a leading draw axis (see
    :func:`~neutrality_forecast.evidence.features_ahead`).
    """
    m0 = int(month_index(pd.Timestamp(as_of)))
    upto = m0 - q.first_month  # months strictly before the as-of month
    total = upto + n_future
    ev = q.evidence

    def take(a: np.ndarray) -> np.ndarray:
        out = np.zeros((total, *a.shape[1:]))
        n = min(len(a), upto + 1)
        out[:n] = a[:n]
        return out

    inflow, steps, volume = take(ev.inflow), take(ev.steps), take(ev.volume)
    if extra is not None:
        for name, arr in (("inflow", inflow), ("steps", steps), ("volume", volume)):
            add = getattr(extra, name)[:total]
            arr[: len(add)] += add
    if sim is None:
        return (inflow, steps, volume), None
    counts, recent = sim
    c = counts.astype(float)
    added = (
        c @ ev.contributions[recent],
        c @ ev.step_contributions[recent],
        c @ ev.weights[recent],
    )
    return (inflow, steps, volume), added


def question_hazards(
    q: Question, x: np.ndarray, draws: dict[str, np.ndarray], *, recurrence: float
) -> tuple[np.ndarray, np.ndarray]:
    """Monthly hazards per draw without and with the standing-neutrality penalty.

    ``x`` has shape (months, F) or (draws, months, F). Returns ``h_free`` and
    ``h_standing``, each (draws, months).
    """
    k = q.outcome_idx
    eta = draws["alpha"][:, k, None] + draws["u"][:, q.q_idx, None]
    if q.partner_idx >= 0:
        eta = eta + draws["partner"][:, k, q.partner_idx, None]
    eta = eta + draws["rho"][:, k, None] * recurrence
    beta = draws["beta"][:, k, :]
    eta = eta + (x @ beta.T).T if x.ndim == 2 else eta + np.einsum("smf,sf->sm", x, beta)
    h_free = 1.0 / (1.0 + np.exp(-eta))
    h_stand = 1.0 / (1.0 + np.exp(-(eta - draws["gamma"][:, k, None])))
    return h_free, h_stand


def chain_probabilities(
    hazards: list[tuple[np.ndarray, np.ndarray]],
    exposures: np.ndarray,
    *,
    start: tuple[int, ...],
    linked: list[bool],
    revision: int | None,
    neutral_standing: bool,
) -> np.ndarray:
    """Exact probabilities of the 2^n outcome combinations after each segment, per draw.

    Parameters
    ----------
    hazards : list of (h_free, h_standing)
        Per question, monthly hazards (draws, segments).
    exposures : ndarray, shape (segments,)
        Share of each segment's month at risk.
    start : tuple of int
        Bits at the start (1: already resolved).
    linked, revision, neutral_standing
        Which questions carry the penalty, the position of the revision, and whether
        neutrality stands at the start.

    Returns
    -------
    ndarray, shape (draws, segments, 2**n)
        ``P[s, t, b]``: the questions in bit pattern ``b`` (bit i = question i) have
        occurred by the end of segment ``t``, the others not.

    """
    n_draws, n_seg = hazards[0][0].shape
    prob = _start_state(n_draws, start)
    out = np.empty((n_draws, n_seg, 2 ** len(hazards)))
    # each question's occurrence probability per segment, once (not once per state)
    occ = [
        tuple(np.stack([1.0 - (1.0 - h[:, t]) ** exposures[t] for t in range(n_seg)])
              for h in pair)
        for pair in hazards
    ]  # fmt: skip
    for t in range(n_seg):
        prob = chain_step(prob, hazards, t, exposures[t], linked=linked, revision=revision,
                          neutral_standing=neutral_standing,
                          occ=[(free[t], stand[t]) for free, stand in occ])  # fmt: skip
        out[:, t, :] = prob
    return out


def _start_state(n_draws: int, start: tuple[int, ...]) -> np.ndarray:
    """State probabilities (draws, 2**n) with all mass on the bit pattern ``start``."""
    prob = np.zeros((n_draws, 2 ** len(start)))
    prob[:, sum(b << i for i, b in enumerate(start))] = 1.0
    return prob


def chain_step(
    prob: np.ndarray,
    hazards: list[tuple[np.ndarray, np.ndarray]],
    t: int,
    exposure: float,
    *,
    linked: list[bool],
    revision: int | None,
    neutral_standing: bool,
    occ: list[tuple[np.ndarray, np.ndarray]] | None = None,
) -> np.ndarray:
    """One segment of :func:`chain_probabilities`: state probabilities after segment ``t``.

    ``prob`` (draws, 2**n) holds the state probabilities before the segment; ``exposure``
    is the share of segment ``t``'s month at risk. ``occ``: each question's occurrence
    probabilities in the segment, ``1 - (1 - h_t) ** exposure`` (free, standing), if
    already computed.
    """
    n = len(hazards)
    if occ is None:
        occ = [(1.0 - (1.0 - hf[:, t]) ** exposure, 1.0 - (1.0 - hs[:, t]) ** exposure)
               for hf, hs in hazards]  # fmt: skip
    new = np.zeros_like(prob)
    for a in range(2**n):
        if not prob[:, a].any():
            continue
        bits = [(a >> i) & 1 for i in range(n)]
        standing = neutral_standing and not (revision is not None and bits[revision])
        p_occ = [occ[i][1 if standing and linked[i] else 0] for i in range(n)]
        open_ = [i for i in range(n) if not bits[i]]
        for flips in itertools.product([0, 1], repeat=len(open_)):
            p = prob[:, a].copy()
            target = a
            for i, f in zip(open_, flips, strict=True):
                p *= p_occ[i] if f else 1.0 - p_occ[i]
                target |= f << i
            new[:, target] += p
    return new


def _by_horizon(hazards, exposures_full, horizons, f_obs, **chain):
    """States at each horizon: full segments to ``m0 + h - 1`` then ``f`` of ``m0 + h``.

    The full segments are walked once for all horizons; each horizon's states equal
    :func:`chain_probabilities` with the exposures cut at ``h`` and ``f_obs`` last.
    """
    start = _start_state(hazards[0][0].shape[0], chain["start"])
    step = {k: v for k, v in chain.items() if k != "start"}
    h_max = max(horizons)
    full = None
    if h_max > 0:
        cut = [(a[:, :h_max], b[:, :h_max]) for a, b in hazards]
        full = chain_probabilities(cut, exposures_full[:h_max], **chain)
    res = [
        chain_step(start if h == 0 else full[:, h - 1, :], hazards, h, f_obs, **step)
        for h in horizons
    ]
    return np.stack(res, axis=1)  # (draws, horizons, states)


def question_probabilities(
    qs: list[Question],
    draws: dict[str, np.ndarray],
    *,
    config: Config,
    link_outcomes: list[str],
    as_of: pd.Timestamp,
    horizons: list[int],
    extra: dict[str, object] | None = None,
    evidence: bool = True,
    seed: int = 0,
) -> dict:
    """Per-draw marginal and joint probabilities for the questions of one case.

    ``qs`` must be built from the case as known at ``as_of`` (events known by then,
    occurrences up to then). ``extra`` maps question labels to hypothetical evidence
    (:class:`~neutrality_forecast.evidence.QuestionEvidence`); ``evidence=False`` zeroes
    the covariates (the evidence-free twin).
    """
    fc = config.model.forecast
    as_of = pd.Timestamp(as_of)
    f_obs = month_fraction(as_of)
    qs = sorted(qs, key=lambda q: (q.outcome_idx, q.partner or ""))
    horizons = sorted(horizons)
    n_fut = max(horizons) + 1  # months m0 .. m0 + H
    n_draws = draws["alpha"].shape[0]
    sim = None
    if evidence and fc.future_evidence == "simulate" and qs:
        sim = simulate_arrivals(
            qs, as_of=as_of, n_months=n_fut, n_draws=n_draws,
            recent_months=fc.recent_months, seed=seed,
        )  # fmt: skip
    m0 = int(month_index(as_of))
    hazards, resolved, linked = [], [], []
    for q in qs:
        base, added = _future_inflow(
            q, sim, as_of=as_of, n_future=n_fut, extra=(extra or {}).get(q.label)
        )
        if added is None:
            x = features(*base, cfg=config.evidence, static=q.static)[-n_fut:]
        else:
            x = features_ahead(base, added, cfg=config.evidence, static=q.static)
        if not evidence:
            x = np.zeros_like(x)
        rec = np.log1p(q.occurrences_before(as_of)) if q.recurrent else 0.0
        hazards.append(question_hazards(q, x, draws, recurrence=rec))
        resolved.append(not q.recurrent and q.occurrences_before(as_of) > 0)
        linked.append(q.outcome in link_outcomes)
    rev = next((i for i, q in enumerate(qs) if q.outcome == "neutrality_revision"), None)
    rev_date = qs[0].revision_date if qs else None
    standing = bool(qs) and qs[0].neutral and not (rev_date is not None and rev_date <= as_of)
    exposures = np.ones(n_fut)
    exposures[0] = 1.0 - f_obs

    def run(idx: list[int]):
        return _by_horizon(
            [hazards[i] for i in idx], exposures, horizons, f_obs,
            start=tuple(int(resolved[i]) for i in idx), linked=[linked[i] for i in idx],
            revision=next((j for j, i in enumerate(idx) if i == rev), None),
            neutral_standing=standing,
        )  # fmt: skip

    marginal = np.empty((n_draws, len(horizons), len(qs)))
    for i in range(len(qs)):
        idx = [i] if rev is None or i == rev else [rev, i]
        states = run(idx)
        pos = idx.index(i)
        marginal[:, :, i] = states[:, :, [b for b in range(2 ** len(idx)) if (b >> pos) & 1]].sum(
            -1
        )
    head = headline_questions(qs, fc.headline)
    head_idx = [qs.index(q) for q in head]
    joint = run(head_idx) if head_idx else np.zeros((n_draws, len(horizons), 1))
    bits = [tuple((b >> i) & 1 for i in range(len(head_idx))) for b in range(2 ** len(head_idx))]
    return {
        "questions": qs,
        "labels": [q.label for q in qs],
        "resolved": resolved,
        "marginal": marginal,
        "headline": head,
        "joint": joint,
        "bits": bits,
        "as_of": as_of,
        "as_of_month": m0,
        "horizons": horizons,
    }


def horizon_probabilities(
    fitted,
    case_id: str,
    *,
    as_of: pd.Timestamp,
    horizons: list[int],
    extra: dict[str, object] | None = None,
    seed: int | None = None,
) -> dict:
    """:func:`question_probabilities` for one case of a fitted model at ``as_of``.

    The case's questions are rebuilt as known at ``as_of`` (events known by then,
    occurrences up to then) when ``as_of`` is before the case's window end.
    """
    qs = fitted.questions_at(case_id, as_of)
    if not qs:
        raise KeyError(f"case {case_id!r} has no outcome questions in the fitted data")
    return question_probabilities(
        qs,
        fitted.draws(),
        config=fitted.config,
        link_outcomes=fitted.data.link_outcomes,
        as_of=as_of,
        horizons=horizons,
        extra=extra,
        seed=fitted.seed if seed is None else seed,
    )
