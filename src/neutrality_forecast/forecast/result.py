"""The forecast of one case at one as-of date: tables, drivers and per-draw arrays."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

from neutrality_forecast.evidence.features import features
from neutrality_forecast.forecast.horizon import horizon_probabilities
from neutrality_forecast.model.fitted import FittedModel

__all__ = ["Forecast", "drivers_table", "make_forecast"]

QUANTILES = (0.05, 0.5, 0.95)
ABBREV = {"neutrality_revision": "N", "security_accord": "A", "foreign_basing": "B"}


@dataclass
class Forecast:
    """Forecast tables plus the per-draw probabilities they summarise.

    Attributes
    ----------
    table : DataFrame
        One row per question x horizon: ``case_id, outcome, partner, question, headline,
        as_of, horizon_months, target_date, p_mean, p_median, p_q05, p_q95, status,
        occurred_on, occurrences, last_occurred_on, run_id``. For a recurrent question
        ``p`` is the chance of at least one *new* occurrence in ``(as_of, target_date]``.
    joint : DataFrame
        One row per horizon x combination of the headline questions (flags 0/1, columns
        named by question label), ``p_mean, p_q05, p_q95``.
    conditional : DataFrame
        ``P(basing | neutrality_revision)`` (and its complement condition) by horizon: the
        predictive ratio ``E[both] / E[revision]``, with the per-draw 90 % interval.
    drivers : DataFrame
        What moves each open question's hazard at the as-of date: per evidence category the
        covariate value and its contribution to the log-odds (posterior mean and 90 % CI),
        plus the intercept, case effect and neutrality penalty.
    draws : xarray.Dataset
        ``p(draw, horizon, question)`` and ``joint(draw, horizon, combo)``.

    """

    case_id: str
    as_of: pd.Timestamp
    horizons: list[int]
    table: pd.DataFrame
    joint: pd.DataFrame
    conditional: pd.DataFrame
    drivers: pd.DataFrame
    draws: xr.Dataset
    meta: dict = field(default_factory=dict)

    def with_run_id(self, run_id: str) -> Forecast:
        """Stamp every table with ``run_id``."""
        for frame in (self.table, self.joint, self.conditional, self.drivers):
            frame["run_id"] = run_id
        return self


def _summ(values: np.ndarray) -> dict[str, float]:
    """Mean, median and 90 % interval, clipped to [0, 1].

    Sums of probabilities can overshoot [0, 1] by round-off.
    """
    values = np.clip(values, 0.0, 1.0)
    q05, q50, q95 = np.quantile(values, QUANTILES)
    return {
        "p_mean": float(values.mean()),
        "p_median": float(q50),
        "p_q05": float(q05),
        "p_q95": float(q95),
    }


def _next_month(a: np.ndarray, upto: int) -> np.ndarray:
    """The first ``upto`` months of ``a`` and one empty month after them."""
    return np.concatenate([a[:upto], np.zeros((1, *a.shape[1:]))])


def drivers_table(fitted: FittedModel, case_id: str, as_of: pd.Timestamp) -> pd.DataFrame:
    """Log-odds contributions to each open question's hazard in the month after ``as_of``.

    Terms: intercept, partner effect, question effect (including the shared case effect),
    earlier occurrences (recurrent questions), each evidence covariate (value ``x`` and
    ``beta * x``) and the standing-neutrality penalty.
    """
    draws = fitted.draws()
    cfg = fitted.config
    rows = []
    as_of = pd.Timestamp(as_of)
    m0 = int(as_of.year * 12 + as_of.month - 1)
    for q in fitted.questions_at(case_id, as_of):
        if not q.recurrent and q.occurrences_before(as_of):
            continue
        upto = m0 - q.first_month + 1
        ev = q.evidence
        x = features(
            *(_next_month(a, upto) for a in (ev.inflow, ev.steps, ev.volume)),
            cfg=cfg.evidence, static=q.static,
        )[-1]  # fmt: skip
        k = q.outcome_idx
        terms = {"intercept (alpha)": draws["alpha"][:, k]}
        if q.partner_idx >= 0:
            terms["partner effect"] = draws["partner"][:, k, q.partner_idx]
        terms["question effect (u)"] = draws["u"][:, q.q_idx]
        if q.recurrent:
            terms["earlier occurrences (rho)"] = draws["rho"][:, k] * np.log1p(
                q.occurrences_before(as_of)
            )
        for j, name in enumerate(fitted.data.features):
            terms[f"evidence: {name}"] = draws["beta"][:, k, j] * x[j]
        if q.neutral and q.outcome in fitted.data.link_outcomes:
            standing = not (q.revision_date is not None and q.revision_date <= as_of)
            terms["standing neutrality (-gamma)"] = -draws["gamma"][:, k] * float(standing)
        for term, vals in terms.items():
            j = term.removeprefix("evidence: ")
            rows.append(
                {
                    "case_id": case_id,
                    "outcome": q.outcome,
                    "partner": q.partner or "",
                    "term": term,
                    "x": float(x[fitted.data.features.index(j)])
                    if term.startswith("evidence")
                    else np.nan,
                    "logodds_mean": float(vals.mean()),
                    "logodds_q05": float(np.quantile(vals, 0.05)),
                    "logodds_q95": float(np.quantile(vals, 0.95)),
                }
            )
    return pd.DataFrame(rows)


def forecast_tables(
    res: dict, case_id: str, *, horizons: list[int]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, xr.Dataset]:
    """``table``, ``joint``, ``conditional`` and per-draw ``draws`` from probabilities.

    ``res`` is :func:`~neutrality_forecast.forecast.horizon.question_probabilities` output.
    """
    as_of = pd.Timestamp(res["as_of"])
    head = {q.label for q in res["headline"]}
    rows = []
    for i, q in enumerate(res["questions"]):
        done = [d for d in q.occurrences if d <= as_of]
        for h_i, h in enumerate(horizons):
            rows.append(
                {
                    "case_id": case_id,
                    "outcome": q.outcome,
                    "partner": q.partner or "",
                    "question": q.label,
                    "headline": q.label in head,
                    "as_of": as_of.date().isoformat(),
                    "horizon_months": h,
                    "target_date": (as_of + pd.DateOffset(months=h)).date().isoformat(),
                    **_summ(res["marginal"][:, h_i, i]),
                    "status": "resolved" if res["resolved"][i] else "forecast",
                    "occurred_on": done[0].date().isoformat() if res["resolved"][i] else "",
                    "occurrences": len(done),
                    "last_occurred_on": done[-1].date().isoformat() if done else "",
                }
            )
    table = pd.DataFrame(rows)
    names = [q.label for q in res["headline"]]
    jrows = []
    for h_i, h in enumerate(horizons):
        for b_i, bits in enumerate(res["bits"]):
            s = _summ(res["joint"][:, h_i, b_i])
            jrows.append(
                {
                    "case_id": case_id,
                    "horizon_months": h,
                    **{name: int(b) for name, b in zip(names, bits, strict=True)},
                    "p_mean": s["p_mean"],
                    "p_q05": s["p_q05"],
                    "p_q95": s["p_q95"],
                }
            )
    joint = pd.DataFrame(jrows)
    conditional = _conditional(res, horizons, case_id)
    draws = xr.Dataset(
        {
            "p": (("draw", "horizon", "question"), np.clip(res["marginal"], 0.0, 1.0)),
            "joint": (("draw", "horizon", "combo"), np.clip(res["joint"], 0.0, 1.0)),
        },
        coords={
            "horizon": horizons,
            "question": [q.label for q in res["questions"]],
            "outcome": ("question", [q.outcome for q in res["questions"]]),
            "partner": ("question", [q.partner or "" for q in res["questions"]]),
            "combo": ["".join(str(b) for b in bits) for bits in res["bits"]],
        },
    )
    return table, joint, conditional, draws


def make_forecast(
    fitted: FittedModel,
    case_id: str,
    *,
    as_of: pd.Timestamp | str | None = None,
    horizons: list[int] | None = None,
    extra: dict | None = None,
    drivers: bool = True,
) -> Forecast:
    """Forecast ``case_id`` from ``fitted`` at ``as_of`` (default: the case's window end).

    Only evidence known by ``as_of`` enters (later events are ignored); a neutrality
    revision on or before ``as_of`` is reported ``resolved``; recurrent questions report
    the chance of a new occurrence and their last one (``last_occurred_on``). ``extra``
    maps question labels to hypothetical evidence (what-if scenarios). ``drivers=False``
    skips the drivers table (left empty), e.g. for replays that need only probabilities.
    """
    case = fitted.case_set.case(case_id)
    as_of = pd.Timestamp(as_of) if as_of is not None else pd.Timestamp(case["window_end"])
    horizons = sorted(horizons or fitted.config.model.forecast.horizons)
    res = horizon_probabilities(fitted, case_id, as_of=as_of, horizons=horizons, extra=extra)
    table, joint, conditional, draws = forecast_tables(res, case_id, horizons=horizons)
    return Forecast(
        case_id=case_id,
        as_of=as_of,
        horizons=horizons,
        table=table,
        joint=joint,
        conditional=conditional,
        drivers=drivers_table(fitted, case_id, as_of) if drivers else pd.DataFrame(),
        draws=draws,
        meta={"future_evidence": fitted.config.model.forecast.future_evidence,
              "headline": [q.label for q in res["headline"]]},
    )  # fmt: skip


def _conditional(res: dict, horizons: list[int], case_id: str) -> pd.DataFrame:
    """P(basing | revision) as the predictive ratio E[both] / E[revision].

    The ratio of the means (consistent with joint.csv), with the 90 % interval of the
    per-draw ratio.
    """
    cols = ["case_id", "horizon_months", "quantity", "p_mean", "p_q05", "p_q95"]
    names = [q.outcome for q in res["headline"]]
    if "foreign_basing" not in names or "neutrality_revision" not in names:
        return pd.DataFrame(columns=cols)
    i_b, i_n = names.index("foreign_basing"), names.index("neutrality_revision")
    basing = res["headline"][i_b].label
    rows = []
    for h_i, h in enumerate(horizons):
        joint = res["joint"][:, h_i, :]
        bits = res["bits"]
        both = sum(joint[:, j] for j, b in enumerate(bits) if b[i_b] and b[i_n])
        rev = sum(joint[:, j] for j, b in enumerate(bits) if b[i_n])
        bas_norev = sum(joint[:, j] for j, b in enumerate(bits) if b[i_b] and not b[i_n])
        quantities = {
            f"P({basing} | neutrality_revision)": (both, rev),
            f"P({basing} | no neutrality_revision)": (bas_norev, 1.0 - rev),
            f"P({basing} and neutrality_revision)": (both, np.ones_like(both)),
        }
        for label, (num, den) in quantities.items():
            if not np.any(den > 0):
                continue
            with np.errstate(invalid="ignore", divide="ignore"):
                per_draw = np.clip((num / den)[den > 0], 0.0, 1.0)
            q05, q95 = np.quantile(per_draw, [0.05, 0.95])
            rows.append(
                {
                    "case_id": case_id,
                    "horizon_months": h,
                    "quantity": label,
                    "p_mean": float(np.clip(num.mean() / den.mean(), 0.0, 1.0)),
                    "p_q05": float(q05),
                    "p_q95": float(q95),
                }
            )
    return pd.DataFrame(rows, columns=cols)
