r"""What changed between two published forecasts, and why.

For every forecast probability :math:`p` (case x outcome x horizon, posterior mean) the
change since the previous published run, :math:`\Delta = p_{\text{now}} - p_{\text{prev}}`,
is split into

* one share per **new, edited or removed event** of the forecast case, and
* a residual share for the **passage of time and the model update** (refit or PSIS
  reweighting: what the posterior learned from all changed data, the as-of date moving,
  coding-intensity renormalisation, configuration changes, Monte-Carlo noise).

Method (*same draws, with and without the event*): with the current run's posterior draws,
the forecast is recomputed from the case's evidence with the event taken out (an added
event), put back (a removed event), or replaced by its previous version (an edited event),
with the same simulated future evidence for every other event (per-event random streams,
:func:`~neutrality_forecast.forecast.horizon.simulate_arrivals`). The event's share is

.. math::

    \delta_e = p(\text{current evidence}) - p(\text{evidence without } e
    \text{, or with } e \text{'s previous version}),

and the residual is :math:`\Delta - \sum_e \delta_e`, so the shares add up to the total
exactly. The counterfactual changes the evidence only: the event's influence on the fitted
parameters (it is also a data point of the fit) is in the residual. Events are removed one
at a time, so interactions between events are in the residual too. The event also leaves
the case's coding volume (causal intensity factor) and the pool of recent events that
future evidence is simulated from, exactly as in the forecast itself.

Events of other cases (the reference class) reach the forecast only through the posterior;
they are listed with ``channel = "posterior_only"`` and share 0, their effect being part of
the residual.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from neutrality_forecast.casesets import CaseSet
from neutrality_forecast.forecast.horizon import horizon_probabilities, question_probabilities
from neutrality_forecast.model.data import questions_at
from neutrality_forecast.model.fitted import FittedModel

__all__ = ["METHOD", "EventChange", "attribute_changes", "diff_events"]

METHOD = (
    "same posterior draws (current run) with and without each changed event's "
    "contribution to the evidence inflow; residual = passage of time and model update"
)
CHANGE_COLUMNS = [
    "case_id", "outcome", "partner", "horizon_months", "p_previous", "p_current",
    "total_change", "component", "event_id", "event_case_id", "change_kind", "channel",
    "contribution",
]  # fmt: skip


@dataclass(frozen=True)
class EventChange:
    """One event that differs between the previous and the current case set.

    ``old`` / ``new`` are the typed one-row frames of the event's previous and current
    version (``None`` when it did not exist; ``old`` is also ``None`` if the previous
    version is unknown).
    """

    event_id: str
    case_id: str
    kind: Literal["added", "edited", "removed"]
    old: pd.DataFrame | None
    new: pd.DataFrame | None


def diff_events(
    previous_hashes: dict[str, str],
    current_hashes: dict[str, str],
    *,
    current: CaseSet,
    previous: CaseSet | None = None,
) -> list[EventChange]:
    """Added, edited and removed events, from per-event content hashes.

    Parameters
    ----------
    previous_hashes, current_hashes : dict
        ``event_id -> content hash`` of both case sets (see
        :func:`neutrality_forecast.archive.store.event_hashes`).
    current : CaseSet
        The current case set (for the new versions).
    previous : CaseSet, optional
        The previous case set (for the old versions of edited and removed events).

    """

    def row(cs: CaseSet | None, event_id: str) -> pd.DataFrame | None:
        if cs is None:
            return None
        hit = cs.events[cs.events["event_id"].astype(str) == event_id]
        return hit if len(hit) else None

    out = []
    for eid in sorted(set(previous_hashes) | set(current_hashes)):
        old_h, new_h = previous_hashes.get(eid), current_hashes.get(eid)
        if old_h == new_h:
            continue
        kind = "added" if old_h is None else "removed" if new_h is None else "edited"
        new = row(current, eid)
        old = row(previous, eid)
        src = new if new is not None else old
        case_id = str(src["case_id"].iloc[0]) if src is not None else eid.split("-")[0]
        out.append(EventChange(eid, case_id, kind, old, new))
    return out


def _without(fitted: FittedModel, case_id: str, change: EventChange, as_of) -> list | None:
    """The case's questions as if ``change`` had not happened (``None``: nothing to undo)."""
    cs = fitted.case_set
    events = cs.events[cs.events["event_id"].astype(str) != change.event_id]
    if change.old is not None and len(change.old):
        old = change.old[[c for c in change.old.columns if c in events.columns]]
        events = pd.concat([events, old], ignore_index=True)
    if len(events) == len(cs.events) and change.old is None and change.new is None:
        return None
    events = events.astype({c: cs.events[c].dtype for c in events.columns if c in cs.events})
    cf = dataclasses.replace(cs, events=events.reset_index(drop=True), _hash=None)
    return questions_at(cf, case_id, pd.Timestamp(as_of), fitted.config, fitted.data)


def attribute_changes(
    fitted: FittedModel,
    case_id: str,
    *,
    as_of: pd.Timestamp,
    horizons: list[int],
    previous_table: pd.DataFrame | None,
    changes: list[EventChange],
) -> tuple[pd.DataFrame, dict]:
    """The ``changes.csv`` table and the JSON summary of what moved the forecast.

    Parameters
    ----------
    fitted : FittedModel
        The current run's fit (its draws are used for every counterfactual).
    case_id : str
        The forecast case.
    as_of : Timestamp
        The current forecast's as-of date.
    horizons : list of int
        The current forecast's horizons.
    previous_table : DataFrame or None
        ``forecast.csv`` of the previous published run (``None`` for the first run).
    changes : list of EventChange
        Changed events (:func:`diff_events`).

    Returns
    -------
    table : DataFrame
        Columns :data:`CHANGE_COLUMNS`; per probability one row per changed event
        (``component = "event"``) and one ``time_and_refit`` row; the ``contribution``
        column sums to ``total_change``.
    summary : dict
        Method, previous run, the changed events and per-probability totals.

    """
    res = horizon_probabilities(fitted, case_id, as_of=as_of, horizons=horizons)
    p_now = res["marginal"].mean(axis=0)  # (horizons, questions)
    effects: dict[str, np.ndarray] = {}
    channel: dict[str, str] = {}
    for ch in changes:
        qs = _without(fitted, case_id, ch, as_of) if ch.case_id == case_id else None
        if qs is None:
            effects[ch.event_id] = np.zeros_like(p_now)
            channel[ch.event_id] = "evidence" if ch.case_id == case_id else "posterior_only"
            continue
        alt = question_probabilities(
            qs, fitted.draws(), config=fitted.config, link_outcomes=fitted.data.link_outcomes,
            as_of=as_of, horizons=horizons, seed=fitted.seed,
        )  # fmt: skip
        order = [alt["labels"].index(lbl) for lbl in res["labels"]]
        effects[ch.event_id] = p_now - alt["marginal"].mean(axis=0)[:, order]
        channel[ch.event_id] = "evidence"
    prev = {}
    if previous_table is not None and len(previous_table):
        for r in previous_table.itertuples(index=False):
            partner = "" if pd.isna(r.partner) else str(r.partner)
            prev[(str(r.outcome), partner, int(r.horizon_months))] = float(r.p_mean)
    rows = []
    for o_i, q in enumerate(res["questions"]):
        outcome, partner = q.outcome, q.partner or ""
        for h_i, h in enumerate(horizons):
            base = {
                "case_id": case_id,
                "outcome": outcome,
                "partner": partner,
                "horizon_months": h,
                "p_previous": prev.get((outcome, partner, h), np.nan),
                "p_current": float(p_now[h_i, o_i]),
            }
            base["total_change"] = base["p_current"] - base["p_previous"]
            if previous_table is None:
                rows.append({**base, "component": "no_previous_run", "contribution": np.nan})
                continue
            used = 0.0
            for ch in changes:
                eff = float(effects[ch.event_id][h_i, o_i])
                used += eff
                rows.append(
                    {
                        **base,
                        "component": "event",
                        "event_id": ch.event_id,
                        "event_case_id": ch.case_id,
                        "change_kind": ch.kind,
                        "channel": channel[ch.event_id],
                        "contribution": eff,
                    }
                )
            rows.append(
                {**base, "component": "time_and_refit", "contribution": base["total_change"] - used}
            )
    table = pd.DataFrame(rows).reindex(columns=CHANGE_COLUMNS)
    for col in ("event_id", "event_case_id", "change_kind", "channel"):
        table[col] = table[col].fillna("")
    summary = {
        "method": METHOD,
        "events": [
            {
                "event_id": ch.event_id,
                "case_id": ch.case_id,
                "kind": ch.kind,
                "channel": channel[ch.event_id],
                "max_abs_contribution": float(np.abs(effects[ch.event_id]).max()),
            }
            for ch in changes
        ],
        "by_probability": [
            {
                k: (None if isinstance(v, float) and np.isnan(v) else v)
                for k, v in r.items()
                if k in ("outcome", "horizon_months", "component", "event_id", "contribution")
                or k in ("p_previous", "p_current", "total_change")
            }
            for r in table.to_dict("records")
        ],
    }
    return table, summary
