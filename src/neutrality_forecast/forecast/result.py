"""The forecast of one case at one as-of date: tables, drivers and per-draw arrays."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

from neutrality_forecast.evidence import stock_from_inflow
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
        One row per outcome x horizon: ``case_id, outcome, partner, as_of, horizon_months,
        target_date, p_mean, p_median, p_q05, p_q95, status, occurred_on, run_id``.
    joint : DataFrame
        One row per horizon x combination of outcomes (flags 0/1), ``p_mean, p_q05, p_q95``.
    conditional : DataFrame
        ``P(foreign_basing | neutrality_revision)`` (and its complement condition) by horizon.
    drivers : DataFrame
        What moves each open question's hazard at the as-of date: per evidence category the
        covariate value and its contribution to the log-odds (posterior mean and 90 % CI),
        plus the intercept, case effect and neutrality penalty.
    draws : xarray.Dataset
        ``p(draw, outcome, horizon)`` and ``joint(draw, horizon, combo)``.

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
    q05, q50, q95 = np.quantile(values, QUANTILES)
    return {
        "p_mean": float(values.mean()),
        "p_median": float(q50),
        "p_q05": float(q05),
        "p_q95": float(q95),
    }


def drivers_table(fitted: FittedModel, case_id: str, as_of: pd.Timestamp) -> pd.DataFrame:
    """Log-odds contributions to each open question's hazard in the month after ``as_of``."""
    draws = fitted.draws()
    dec = fitted.config.evidence.decay
    rows = []
    m0 = int(as_of.year * 12 + as_of.month - 1)
    for q in fitted.data.questions:
        if q.case_id != case_id:
            continue
        upto = m0 - q.first_month + 1
        inflow = np.vstack(
            [q.evidence.inflow[: max(upto, 0)], np.zeros((1, len(fitted.data.categories)))]
        )
        x = np.log1p(
            stock_from_inflow(inflow, half_life=dec.half_life_months, lag=dec.lag_months)[-1]
        )
        k, c = q.outcome_idx, q.case_idx
        terms = {"intercept (alpha)": draws["alpha"][:, k], "case effect (u)": draws["u"][:, c, k]}
        for j, name in enumerate(fitted.data.categories):
            terms[f"evidence: {name}"] = draws["beta"][:, k, j] * x[j]
        if q.neutral and q.outcome in fitted.data.link_outcomes:
            standing = not (q.revision_month is not None and q.revision_month <= m0)
            terms["standing neutrality (-gamma)"] = -draws["gamma"][:, k] * float(standing)
        for term, vals in terms.items():
            j = term.removeprefix("evidence: ")
            rows.append(
                {
                    "case_id": case_id,
                    "outcome": q.outcome,
                    "term": term,
                    "x": float(x[fitted.data.categories.index(j)])
                    if term.startswith("evidence")
                    else np.nan,
                    "logodds_mean": float(vals.mean()),
                    "logodds_q05": float(np.quantile(vals, 0.05)),
                    "logodds_q95": float(np.quantile(vals, 0.95)),
                }
            )
    return pd.DataFrame(rows)


def make_forecast(
    fitted: FittedModel,
    case_id: str,
    *,
    as_of: pd.Timestamp | str | None = None,
    horizons: list[int] | None = None,
    extra_inflow: dict[str, np.ndarray] | None = None,
) -> Forecast:
    """Forecast ``case_id`` from ``fitted`` at ``as_of`` (default: the case's window end).

    Only evidence dated up to ``as_of`` enters (later events are ignored); outcomes that
    occurred on or before ``as_of`` are reported with status ``resolved``.
    """
    case = fitted.case_set.case(case_id)
    as_of = pd.Timestamp(as_of) if as_of is not None else pd.Timestamp(case["window_end"])
    horizons = sorted(horizons or fitted.config.model.forecast.horizons)
    res = horizon_probabilities(
        fitted, case_id, as_of=as_of, horizons=horizons, extra_inflow=extra_inflow
    )
    rows = []
    for i, q in enumerate(res["questions"]):
        for h_i, h in enumerate(horizons):
            p = res["marginal"][:, h_i, i]
            occurred_on = (
                fitted.case_set.outcomes_of(case_id)
                .set_index("outcome")["occurred_on"]
                .get(q.outcome)
            )
            rows.append(
                {
                    "case_id": case_id,
                    "outcome": q.outcome,
                    "partner": q.partner or "",
                    "as_of": as_of.date().isoformat(),
                    "horizon_months": h,
                    "target_date": (as_of + pd.DateOffset(months=h)).date().isoformat(),
                    **_summ(p),
                    "status": "resolved" if res["resolved"][i] else "forecast",
                    "occurred_on": (
                        pd.Timestamp(occurred_on).date().isoformat()
                        if res["resolved"][i] and pd.notna(occurred_on)
                        else ""
                    ),
                }
            )
    table = pd.DataFrame(rows)
    jrows = []
    for h_i, h in enumerate(horizons):
        for b_i, bits in enumerate(res["bits"]):
            vals = res["joint"][:, h_i, b_i]
            s = _summ(vals)
            jrows.append(
                {
                    "case_id": case_id,
                    "horizon_months": h,
                    **{name: int(b) for name, b in zip(res["outcomes"], bits, strict=True)},
                    "p_mean": s["p_mean"],
                    "p_q05": s["p_q05"],
                    "p_q95": s["p_q95"],
                }
            )
    joint = pd.DataFrame(jrows)
    conditional = _conditional(res, horizons, case_id)
    draws = xr.Dataset(
        {
            "p": (("draw", "horizon", "outcome"), res["marginal"]),
            "joint": (("draw", "horizon", "combo"), res["joint"]),
        },
        coords={
            "horizon": horizons,
            "outcome": res["outcomes"],
            "combo": ["".join(str(b) for b in bits) for bits in res["bits"]],
        },
    )
    return Forecast(
        case_id=case_id,
        as_of=as_of,
        horizons=horizons,
        table=table,
        joint=joint,
        conditional=conditional,
        drivers=drivers_table(fitted, case_id, as_of),
        draws=draws,
        meta={"future_evidence": fitted.config.model.forecast.future_evidence},
    )


def _conditional(res: dict, horizons: list[int], case_id: str) -> pd.DataFrame:
    names = res["outcomes"]
    if "foreign_basing" not in names or "neutrality_revision" not in names:
        return pd.DataFrame(
            columns=["case_id", "horizon_months", "quantity", "p_mean", "p_q05", "p_q95"]
        )
    i_b, i_n = names.index("foreign_basing"), names.index("neutrality_revision")
    rows = []
    for h_i, h in enumerate(horizons):
        joint = res["joint"][:, h_i, :]
        both = sum(joint[:, j] for j, b in enumerate(res["bits"]) if b[i_b] and b[i_n])
        rev = sum(joint[:, j] for j, b in enumerate(res["bits"]) if b[i_n])
        bas_norev = sum(joint[:, j] for j, b in enumerate(res["bits"]) if b[i_b] and not b[i_n])
        with np.errstate(invalid="ignore", divide="ignore"):
            quantities = {
                "P(foreign_basing | neutrality_revision)": both / rev,
                "P(foreign_basing | no neutrality_revision)": bas_norev / (1.0 - rev),
                "P(foreign_basing and neutrality_revision)": both,
            }
        for label, vals in quantities.items():
            vals = vals[np.isfinite(vals)]
            if not len(vals):
                continue
            s = _summ(vals)
            rows.append(
                {
                    "case_id": case_id,
                    "horizon_months": h,
                    "quantity": label,
                    "p_mean": s["p_mean"],
                    "p_q05": s["p_q05"],
                    "p_q95": s["p_q95"],
                }
            )
    return pd.DataFrame(rows)
