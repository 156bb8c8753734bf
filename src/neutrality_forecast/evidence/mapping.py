"""Event -> evidence category mapping (declarative rules from ``models/evidence.toml``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from neutrality_forecast.config import EvidenceConfig

__all__ = ["admiralty_weight", "category_matrix", "counterpart_role"]


def admiralty_weight(events: pd.DataFrame, cfg: EvidenceConfig) -> np.ndarray:
    """Weight of each event: ``reliability[letter] * credibility[digit]``."""
    rel = events["source_reliability"].astype(str).map(cfg.admiralty.reliability)
    cred = events["info_credibility"].astype(str).map(cfg.admiralty.credibility)
    return (rel * cred).to_numpy(dtype=float)


def _power_of(code: str, cfg: EvidenceConfig) -> str:
    return cfg.roles.proxies.get(code, code)


def counterpart_role(
    actor: str, recipient: str, country: str, partner: str | None, cfg: EvidenceConfig
) -> str:
    """Role of an event's counterpart relative to one outcome question.

    The counterpart is the recipient when the case's ``country`` acts, the actor when it
    receives, and the actor for third-party events. Roles are tried in ``roles.order``:
    ``domestic`` (the state acting on itself), ``partner`` (the outcome's partner or one of
    its proxies; when the partner is itself western, any western state or organisation, i.e.
    the partner's bloc; for partner-less outcomes any of ``roles.partnerless_partner``),
    ``threat``, ``west`` (the West/NATO when the partner is not western), ``rival`` (another
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
            (power == partner or (partner in r.west and counterpart in r.west))
            if partner
            else (counterpart in r.partnerless_partner or power in r.partnerless_partner)
        ),
        "threat": counterpart in r.threats,
        "west": counterpart in r.west and partner not in r.west,
        "rival": power in r.great_powers and power != partner,
        "other": True,
    }
    for role in r.order:
        if tests.get(role, False):
            return role
    return "other"


def category_matrix(
    events: pd.DataFrame, country: str, partner: str | None, cfg: EvidenceConfig
) -> np.ndarray:
    """0/1 matrix (events x categories): which categories each event counts in."""
    quad_of = {t: q for q, types in cfg.quads.items() for t in types}
    out = np.zeros((len(events), len(cfg.categories)))
    for i, ev in enumerate(events.itertuples(index=False)):
        role = counterpart_role(ev.actor, ev.recipient, country, partner, cfg)
        etype = str(ev.event_type)
        ctx = {c.strip() for c in str(ev.contexts).split(";") if c.strip()}
        for j, cat in enumerate(cfg.categories):
            if cat.roles and role not in cat.roles:
                continue
            if cat.quads and quad_of.get(etype) not in cat.quads:
                continue
            if cat.event_types and etype not in cat.event_types:
                continue
            if cat.contexts and not ctx & set(cat.contexts):
                continue
            if cat.exclude_contexts and ctx & set(cat.exclude_contexts):
                continue
            if cat.actor_is_case and ev.actor != country:
                continue
            out[i, j] = 1.0
    return out
