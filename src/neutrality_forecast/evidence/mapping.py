"""Event -> evidence category mapping (declarative rules from ``models/evidence.toml``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from neutrality_forecast.config import EvidenceConfig

__all__ = [
    "EventArrays",
    "admiralty_weight",
    "category_matrix",
    "counterpart_role",
    "step_matrix",
]


def admiralty_weight(events: pd.DataFrame, cfg: EvidenceConfig) -> np.ndarray:
    """Weight of each event: ``reliability[letter] * credibility[digit]``."""
    rel, cred = cfg.admiralty.reliability, cfg.admiralty.credibility
    letters = events["source_reliability"].astype(str).tolist()
    digits = events["info_credibility"].astype(str).tolist()
    return np.array(
        [rel.get(a, np.nan) * cred.get(b, np.nan) for a, b in zip(letters, digits, strict=True)],
        dtype=float,
    )


def _power_of(code: str, cfg: EvidenceConfig) -> str:
    return cfg.roles.proxies.get(code, code)


def counterpart_role(
    actor: str, recipient: str, country: str, partner: str | None, cfg: EvidenceConfig
) -> str:
    """Role of an event's counterpart relative to one outcome question.

    The counterpart is the recipient when the case's ``country`` acts, the actor when it
    receives, and the actor for third-party events. Roles are tried in ``roles.order``:
    ``domestic`` (the state acting on itself), ``partner`` (the outcome's partner or one of
    its proxies; when the partner leads the western bloc (``roles.bloc_leaders``), any western
    state or organisation; for partner-less outcomes any of ``roles.partnerless_partner``),
    ``threat``, ``west`` (the West/NATO unless the partner leads it), ``rival`` (another
    great power) and ``other``.
    """
    if actor == country and recipient == country:
        return "domestic"
    counterpart = recipient if actor == country else actor
    power = _power_of(counterpart, cfg)
    r = cfg.roles
    tests = {
        "domestic": False,
        "partner": (
            (
                power == partner
                or (partner in r.bloc_leaders and partner in r.west and counterpart in r.west)
            )
            if partner
            else (counterpart in r.partnerless_partner or power in r.partnerless_partner)
        ),
        "threat": counterpart in r.threats,
        "west": counterpart in r.west and not (partner in r.west and partner in r.bloc_leaders),
        "rival": power in r.great_powers and power != partner,
        "other": True,
    }
    for role in r.order:
        if tests.get(role, False):
            return role
    return "other"


@dataclass(frozen=True)
class EventArrays:
    """One case's events as plain arrays: converted from the table once, used per question.

    Attributes
    ----------
    event_ids : tuple of str
    dates : ndarray of datetime64
    known : ndarray of datetime64
        The day each event becomes known (end of its date's period,
        :func:`~neutrality_forecast.evidence.covariates.known_dates`).
    weight : ndarray
        Admiralty weight of each event (:func:`admiralty_weight`).
    actor, recipient, event_type, quad : ndarray of object
    contexts : tuple of frozenset
    outcome_step : ndarray of object
        The outcome family an event is a formal step toward (``""`` if none).

    """

    event_ids: tuple[str, ...]
    dates: np.ndarray
    known: np.ndarray
    weight: np.ndarray
    actor: np.ndarray
    recipient: np.ndarray
    event_type: np.ndarray
    quad: np.ndarray
    contexts: tuple[frozenset[str], ...]
    outcome_step: np.ndarray

    def __len__(self) -> int:
        return len(self.event_ids)

    def take(self, index: np.ndarray) -> EventArrays:
        """The events at positions ``index`` (in that order)."""
        index = np.asarray(index, dtype=int)
        return EventArrays(
            event_ids=tuple(self.event_ids[i] for i in index),
            dates=self.dates[index],
            known=self.known[index],
            weight=self.weight[index],
            actor=self.actor[index],
            recipient=self.recipient[index],
            event_type=self.event_type[index],
            quad=self.quad[index],
            contexts=tuple(self.contexts[i] for i in index),
            outcome_step=self.outcome_step[index],
        )

    @classmethod
    def from_frame(cls, events: pd.DataFrame, cfg: EvidenceConfig) -> EventArrays:
        """Convert an events table (data-contract columns) once."""
        from neutrality_forecast.evidence.covariates import known_dates

        quad_of = {t: q for q, types in cfg.quads.items() for t in types}
        etype = np.array(events["event_type"].astype(str).tolist(), dtype=object)
        return cls(
            event_ids=tuple(events["event_id"].astype(str).tolist()),
            dates=events["date"].to_numpy(),
            known=known_dates(events["date"], events["date_precision"]),
            weight=admiralty_weight(events, cfg),
            actor=np.array(events["actor"].astype(str).tolist(), dtype=object),
            recipient=np.array(events["recipient"].astype(str).tolist(), dtype=object),
            event_type=etype,
            quad=np.array([quad_of.get(t) for t in etype], dtype=object),
            contexts=tuple(
                frozenset(c.strip() for c in str(v).split(";") if c.strip())
                for v in events["contexts"].tolist()
            ),
            outcome_step=np.array(
                events["outcome_step"].fillna("").astype(str).tolist()
                if "outcome_step" in events.columns
                else [""] * len(events),
                dtype=object,
            ),
        )


def category_matrix(
    events: pd.DataFrame | EventArrays, country: str, partner: str | None, cfg: EvidenceConfig
) -> np.ndarray:
    """0/1 matrix (events x categories): which categories each event counts in.

    Vectorised over events: each rule of a category is one boolean mask; the counterpart
    role is computed once per distinct (actor, recipient) pair.
    """
    ev = events if isinstance(events, EventArrays) else EventArrays.from_frame(events, cfg)
    n = len(ev)
    out = np.zeros((n, len(cfg.categories)))
    if n == 0:
        return out
    pair_role: dict[tuple[str, str], str] = {}
    for a, r in zip(ev.actor, ev.recipient, strict=True):
        if (a, r) not in pair_role:
            pair_role[(a, r)] = counterpart_role(a, r, country, partner, cfg)
    role = np.array(
        [pair_role[(a, r)] for a, r in zip(ev.actor, ev.recipient, strict=True)], dtype=object
    )
    for j, cat in enumerate(cfg.categories):
        keep = np.ones(n, dtype=bool)
        if cat.roles:
            keep &= np.isin(role, list(cat.roles))
        if cat.quads:
            keep &= np.isin(ev.quad, list(cat.quads))
        if cat.event_types:
            keep &= np.isin(ev.event_type, list(cat.event_types))
        if cat.contexts:
            want = set(cat.contexts)
            keep &= np.array([bool(c & want) for c in ev.contexts])
        if cat.exclude_contexts:
            drop = set(cat.exclude_contexts)
            keep &= ~np.array([bool(c & drop) for c in ev.contexts])
        if cat.actor_is_case:
            keep &= ev.actor == country
        if cat.actor_not_case:
            keep &= ev.actor != country
        out[keep, j] = 1.0
    return out


def step_matrix(
    events: EventArrays, outcome: str, partner: str | None, cfg: EvidenceConfig
) -> np.ndarray:
    """0/1 per event: a formal step toward this question (``outcome_step``).

    The event's ``outcome_step`` must name the question's family; for a question with a
    partner, the partner (or one of its proxies) must also be the event's actor or
    recipient (the contract's convention for steps that concern a partner).
    """
    hit = events.outcome_step == outcome
    if partner and hit.any():
        actor = np.array([_power_of(a, cfg) for a in events.actor], dtype=object)
        recip = np.array([_power_of(r, cfg) for r in events.recipient], dtype=object)
        hit &= (actor == partner) | (recip == partner)
    return hit.astype(float)
