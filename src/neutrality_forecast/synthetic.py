"""Synthetic case populations with known parameters (benchmarks and recovery tests).

:func:`synthetic_population` writes ordinary contract files (cases, outcomes, events), so
everything downstream runs through the same code paths as real data. Events are drawn
first (a Poisson number per case-year, each with a random counterpart among the case's
partners, rivals and armed groups, a PLOVER type, contexts and Admiralty grades); outcomes
are then simulated month by month from the hazard model itself with known parameters, using
the covariates the library computes from those events
(:func:`~neutrality_forecast.evidence.features.features`) and updating the recurrence term
after each occurrence. The true parameters are returned with the case set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from neutrality_forecast.casesets import CaseSet, load_case_set
from neutrality_forecast.casesets.schema import OUTCOMES
from neutrality_forecast.config import Config, load_config
from neutrality_forecast.model.data import build_questions, month_fraction

__all__ = ["SyntheticTruth", "synthetic_population"]

_TYPES = {
    "AGREE": ["military", "diplomatic", "economic"],
    "CONSULT": ["diplomatic", "military", "economic"],
    "COOPERATE": ["military", "economic", "border"],
    "AID": ["military", "humanitarian"],
    "ACCUSE": ["diplomatic"],
    "REJECT": ["diplomatic", "military"],
    "THREATEN": ["military", "border"],
    "ASSAULT": ["military", "terrorism"],
}


@dataclass
class SyntheticTruth:
    """The parameters the outcomes were simulated from (per family index)."""

    alpha: np.ndarray
    beta: np.ndarray
    rho: np.ndarray
    gamma: np.ndarray
    u: dict[str, float] = field(default_factory=dict)
    partner: dict[tuple[str, str], float] = field(default_factory=dict)


def _events(rng, case_id, country, partners, start, end, rate_range):
    rows = []
    years = range(start.year, end.year + 1)
    others = [*partners, "NATO", "INSURGENTS", "EU"]
    for year in years:
        n = rng.poisson(rng.uniform(*rate_range))
        for _ in range(n):
            day = pd.Timestamp(year=year, month=1, day=1) + pd.Timedelta(
                days=int(rng.integers(0, 365))
            )
            if not start <= day <= end:
                continue
            etype = rng.choice(list(_TYPES))
            other = str(rng.choice(others))
            actor, recipient = (country, other) if rng.uniform() < 0.5 else (other, country)
            if etype in ("THREATEN", "ASSAULT"):
                actor, recipient = other, country
            rows.append(
                {"case_id": case_id, "date": day, "date_precision": "day", "actor": actor,
                 "recipient": recipient, "event_type": etype,
                 "contexts": str(rng.choice(_TYPES[etype])),
                 "source_reliability": str(rng.choice(list("ABC"))),
                 "info_credibility": str(rng.choice(list("123"))), "source": "synthetic",
                 "summary": "synthetic event", "outcome_step": ""}
            )  # fmt: skip
    return rows


def synthetic_population(
    *,
    n_cases: int = 60,
    months: int = 180,
    partners: tuple[str, ...] = ("RUS", "CHN", "USA"),
    events_per_year: tuple[float, float] = (3.0, 6.0),
    neutral_share: float = 0.4,
    cluster_pairs: float = 0.3,
    alpha: tuple[float, float, float] = (-6.5, -5.5, -6.5),
    beta_scale: float = 0.3,
    rho: tuple[float, float] = (0.3, 0.2),
    gamma: tuple[float, float] = (0.5, 2.0),
    sigma_u: float = 0.5,
    seed: int = 0,
    config: Config | None = None,
    folder: str | Path | None = None,
) -> tuple[CaseSet, SyntheticTruth]:
    """A seeded synthetic population: ``(case set, true parameters)``.

    Parameters
    ----------
    n_cases, months : int
        Cases and months per case (windows start on 1 January 2010 + a random offset).
    partners : tuple of str
        Partners of every case's accord and basing questions.
    events_per_year : (low, high)
        Each case's Poisson rate of events per year, uniform in this range.
    neutral_share : float
        Share of cases with a neutrality status (these get a revision question).
    cluster_pairs : float
        Share of cases paired with the previous case in one cluster.
    alpha, rho, gamma : tuples
        Family intercepts (revision, accord, basing), recurrence effects (accord, basing)
        and neutrality penalties (accord, basing).
    beta_scale : float
        Sd of the true evidence effects (family x feature).
    sigma_u : float
        Sd of the true question effects.
    seed : int
        Everything is drawn from this seed.
    config : Config, optional
        The configuration whose features the outcomes are simulated from.
    folder : str or Path, optional
        Write the three files there (and read them back, validated).

    """
    rng = np.random.default_rng(seed)
    config = config or load_config()
    cases, events, outcomes = [], [], []
    cluster = None
    for c in range(n_cases):
        cid = f"S{c:03d}"
        start = pd.Timestamp("2010-01-01") + pd.DateOffset(months=int(rng.integers(0, 60)))
        end = start + pd.DateOffset(months=months) - pd.Timedelta(days=1)
        neutral = rng.uniform() < neutral_share
        if c == 0 or rng.uniform() >= cluster_pairs:
            cluster = cid
        cases.append(
            {"case_id": cid, "country": f"Q{c // 26 % 26 + 65:c}{c % 26 + 65:c}"[:3],
             "label": f"Synthetic {c}", "window_start": start, "window_end": end,
             "neutrality_status": "declared" if neutral else "none", "cluster": cluster}
        )  # fmt: skip
        events += _events(rng, cid, cases[-1]["country"], partners, start, end, events_per_year)
        for p in partners:
            for o in ("security_accord", "foreign_basing"):
                outcomes.append({"case_id": cid, "outcome": o, "partner": p})
        if neutral:
            outcomes.append({"case_id": cid, "outcome": "neutrality_revision", "partner": None})
    ev = pd.DataFrame(events).sort_values(["case_id", "date"], kind="stable")
    ev["event_id"] = [f"{r.case_id}-E{i:04d}" for i, r in enumerate(ev.itertuples())]
    cases = pd.DataFrame(cases)
    draft = _case_set(cases, pd.DataFrame(outcomes).assign(occurred=False, occurred_on=pd.NaT), ev)
    rows, truth = _simulate(draft, config, rng, alpha, beta_scale, rho, gamma, sigma_u, partners)
    cs = _case_set(cases, pd.DataFrame(rows), ev)
    if folder is not None:
        cs.write(folder)
        cs = load_case_set(folder)
    return cs, truth


def _case_set(cases: pd.DataFrame, outcomes: pd.DataFrame, events: pd.DataFrame) -> CaseSet:
    outcomes = outcomes.assign(resolution_note="synthetic", source="synthetic")
    raw = {
        "cases": cases.assign(window_start=cases["window_start"].dt.strftime("%Y-%m-%d"),
                              window_end=cases["window_end"].dt.strftime("%Y-%m-%d")),
        "outcomes": outcomes.assign(
            occurred=outcomes["occurred"].map({True: "true", False: "false"}),
            occurred_on=pd.to_datetime(outcomes["occurred_on"]).dt.strftime("%Y-%m-%d"),
        ),
        "events": events.assign(date=events["date"].dt.strftime("%Y-%m-%d")),
    }  # fmt: skip
    raw = {k: v.astype(object).where(v.notna(), "").astype(str) for k, v in raw.items()}
    return CaseSet.from_raw(raw["cases"], raw["outcomes"], raw["events"])


def _simulate(cs, config, rng, alpha, beta_scale, rho, gamma, sigma_u, partners):
    from neutrality_forecast.evidence.features import features

    names = config.evidence.feature_names
    k_n = len(OUTCOMES)
    truth = SyntheticTruth(
        alpha=np.array(alpha, float),
        beta=rng.normal(0.0, beta_scale, size=(k_n, len(names))),
        rho=np.array([0.0, *rho]),
        gamma=np.array([0.0, *gamma]),
    )
    for p in partners:
        for o in ("security_accord", "foreign_basing"):
            truth.partner[(o, p)] = float(rng.normal(0.0, 0.3))
    qs = build_questions(cs, config, sorted(partners))
    rows = []
    by_case: dict[str, list] = {}
    for q in qs:
        by_case.setdefault(q.case_id, []).append(q)
    for case_qs in by_case.values():
        # the revision first: its month lifts the neutrality penalty of the others after it
        case_qs = sorted(case_qs, key=lambda q: q.outcome != "neutrality_revision")
        rev_month = None
        for q in case_qs:
            k = q.outcome_idx
            u = float(rng.normal(0.0, sigma_u))
            truth.u[q.label] = u
            n = q.last_month - q.first_month + 1
            ev = q.evidence
            x = features(ev.inflow[:n], ev.steps[:n], ev.volume[:n], cfg=config.evidence)
            eta0 = (truth.alpha[k] + u + x @ truth.beta[k]
                    + truth.partner.get((q.outcome, q.partner), 0.0))  # fmt: skip
            count, occ = 0, []
            for t in range(n):
                month = q.first_month + t
                standing = (q.neutral and q.outcome != "neutrality_revision"
                            and (rev_month is None or month <= rev_month))  # fmt: skip
                eta = eta0[t] + truth.rho[k] * np.log1p(count) - truth.gamma[k] * standing
                expo = month_fraction(q.window_end) if t == n - 1 else 1.0
                if rng.uniform() < 1 - (1 - 1 / (1 + np.exp(-eta))) ** expo:
                    day = pd.Timestamp(year=month // 12, month=month % 12 + 1, day=15)
                    occ.append(min(day, q.window_end))
                    count += 1
                    if not q.recurrent:
                        rev_month = month
                        break
            base = {"case_id": q.case_id, "outcome": q.outcome, "partner": q.partner}
            if occ:
                rows += [{**base, "occurred": True, "occurred_on": d} for d in occ]
            else:
                rows.append({**base, "occurred": False, "occurred_on": pd.NaT})
    return rows, truth
