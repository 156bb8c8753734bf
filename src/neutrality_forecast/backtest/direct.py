"""Leave-cluster-out backtest of the direct-horizon model (model-study variant V7).

The units are the forecasts the hazard backtest scores (:mod:`.runner`): every question
known at each origin (every ``origin_step_months`` from the window start; a one-time
question not yet resolved), every horizon, only fully observed periods, target a (new)
occurrence in ``(d, d + h]``. Predictors are read from the model-data row of the origin
month, so only events known before the origin enter. Each cluster is forecast from a fit on
the units of every *other* cluster (the specification registered in
``docs/model-study.md``). That posterior is reached as in the hazard backtest
(:mod:`.folds`): Pareto-smoothed importance sampling from one fit on all units, with the
cluster's units' log-likelihood removed by the weights, and a refit without the cluster
wherever the weights are unreliable (k-hat above ``max_khat`` or ESS below ``min_ess``;
no cap, no fold is dropped). The evidence-free twin is the same model with the evidence
columns zeroed, and the base rate is the hazard backtest's.
"""

from __future__ import annotations

import time
from dataclasses import asdict

import numpy as np
import pandas as pd

from neutrality_forecast.backtest.folds import importance_fold
from neutrality_forecast.backtest.runner import (
    BacktestResult,
    BacktestSettings,
    _cluster_cases,
    _score_all,
    base_rate_probabilities,
    fit_record,
    origins_for,
    score_truth,
)
from neutrality_forecast.backtest.summary import summarise
from neutrality_forecast.casesets import CaseSet
from neutrality_forecast.config import Config
from neutrality_forecast.diagnostics import check_gate
from neutrality_forecast.evidence.covariates import month_index
from neutrality_forecast.model.data import ModelData, build_model_data
from neutrality_forecast.model.direct import DirectModel, direct_design
from neutrality_forecast.sampling import CompiledModel
from neutrality_forecast.update.psis import systematic_resample

__all__ = ["direct_units", "run_direct_backtest"]

_PARAMS = ["alpha", "sigma_partner", "rho", "gamma", "mu_beta", "sigma_beta", "beta"]


def direct_units(
    case_set: CaseSet, data: ModelData, *, step_months: int, horizons: list[int]
) -> pd.DataFrame:
    """One row per (question, origin, horizon) with the origin month's predictors.

    Columns: ``case_id, cluster, outcome, partner, partner_idx, origin, horizon,
    recurrence, standing, x:<feature>..., occurred``.
    """
    rows = data.month_rows(case_set.case_ids)
    if rows.empty:
        return pd.DataFrame()
    rows = rows.set_index(["q_idx", "month"])
    xcols = [c for c in rows.columns if c.startswith("x:")]
    out = []
    min_h = min(horizons)
    for case_id in case_set.case_ids:
        case = case_set.case(case_id)
        qs = data.questions_of(case_id)
        for d in origins_for(case, step_months, min_h):
            m = int(month_index(d))
            for q in qs:
                if m < q.first_month or (not q.recurrent and any(x <= d for x in q.occurrences)):
                    continue
                if (q.q_idx, m) not in rows.index:
                    continue
                r = rows.loc[(q.q_idx, m)]
                base = {
                    "case_id": case_id, "cluster": q.cluster, "outcome": q.outcome,
                    "partner": q.partner or "", "partner_idx": q.partner_idx,
                    "origin": d.date().isoformat(), "recurrence": float(r["recurrence"]),
                    "standing": float(r["standing"]), **{c: float(r[c]) for c in xcols},
                }  # fmt: skip
                out += [{**base, "horizon": h} for h in horizons]
    frame = pd.DataFrame(out)
    return score_truth(case_set, frame) if len(frame) else frame


def run_direct_backtest(
    case_set: CaseSet,
    config: Config,
    *,
    settings: BacktestSettings | None = None,
    progressbar: bool = True,
) -> BacktestResult:
    """Leave-cluster-out backtest of :class:`~neutrality_forecast.model.direct.DirectModel`.

    Parameters
    ----------
    case_set : CaseSet
        The reference population; every cluster is left out in turn.
    config : Config
        Its evidence mapping gives the covariates; ``feature_loc`` the prior means.
    settings : BacktestSettings
        Origins, horizons, draws, tune, chains, seed, sampler and the importance-sampling
        thresholds (``max_khat``, ``min_ess``, ``n_out``; ``n_effects`` and
        ``max_refits`` do not apply: the model has no question effects, refits are uncapped).
    progressbar : bool
        Show a progress bar over the fits.

    Returns
    -------
    BacktestResult
        Scores with the same columns as the hazard backtest's (``p_mean`` is the direct
        model), the summary (``procedure: "direct"``), one diagnostics row per fit and
        one fold row per cluster and model.

    """
    from rich.progress import Progress

    s = settings or BacktestSettings(horizons=tuple(config.model.forecast.horizons))
    started = time.perf_counter()
    data = build_model_data(case_set, config)
    units = direct_units(case_set, data, step_months=s.origin_step_months,
                         horizons=list(s.horizons))  # fmt: skip
    if units.empty:
        raise ValueError("no forecast units: windows too short for the origins and horizons")
    design = direct_design(
        units, outcomes=data.outcomes, horizons=list(s.horizons), partners=data.partners,
        recurrent=data.recurrent_outcomes, linked=data.link_outcomes, features=data.features,
    )  # fmt: skip
    model = DirectModel(design, feature_loc=dict(config.model.priors.feature_loc))
    compiled = CompiledModel(
        model.build_model(), sampler=s.sampler or config.model.sampling.sampler
    )
    jobs = list(_cluster_cases(case_set).items())
    pred = {True: np.full(len(units), np.nan), False: np.full(len(units), np.nan)}
    q05, q95 = np.full(len(units), np.nan), np.full(len(units), np.nan)
    fits: list[dict] = []
    folds: list[dict] = []
    clusters = units["cluster"].to_numpy()

    def fit(z: np.ndarray, w: np.ndarray, seed: int, tag: str, evidence: bool) -> np.ndarray:
        t0 = time.perf_counter()
        idata = compiled.sample({"z": z, "y": design.y, "w": w}, draws=s.draws, tune=s.tune,
                                chains=s.chains, seed=seed, progressbar=False)  # fmt: skip
        gate = check_gate(idata, var_names=_PARAMS)
        fits.append(fit_record(tag, evidence, gate, time.perf_counter() - t0))
        return idata.posterior["theta"].values.reshape(-1, z.shape[1])

    with Progress(disable=not progressbar, transient=True) as progress:
        task = progress.add_task("direct-horizon folds", total=2 * (len(jobs) + 1))
        for evidence in (True, False):
            z = design.z if evidence else design.without_evidence()
            theta = fit(z, np.ones_like(design.y), s.seed, "full", evidence)
            progress.advance(task)
            for j, (cluster, _cases) in enumerate(jobs):
                held = clusters == cluster
                if not held.any():
                    progress.advance(task)
                    continue
                zh, yh = z[held], design.y[held]
                # weights that remove the cluster's units from the full posterior
                eta = theta @ zh.T
                fw = importance_fold(-(eta * yh - np.logaddexp(0.0, eta)).sum(axis=1),
                                     max_khat=s.max_khat, min_ess=s.min_ess)  # fmt: skip
                folds.append({"cluster": cluster, "case_id": "", "origin": "",
                              "evidence": evidence, "khat": fw.khat, "ess": fw.ess,
                              "reason": fw.reason,
                              "method": "psis" if fw.accepted else "refit"})  # fmt: skip
                if fw.accepted:
                    w = fw.weights
                    rng = np.random.default_rng([s.seed, j, int(evidence)])
                    draws = theta[systematic_resample(w, s.n_out, rng)]
                else:
                    draws = fit(z, (~held).astype(float), s.seed + 7919 * (j + 1),
                                f"refit {cluster}", evidence)  # fmt: skip
                p = DirectModel.predict(draws, zh)
                pred[evidence][held] = p.mean(axis=0)
                if evidence:
                    q05[held], q95[held] = np.quantile(p, [0.05, 0.95], axis=0)
                progress.advance(task)
    keys = ["case_id", "cluster", "outcome", "partner", "origin", "horizon"]
    frame = units[keys + ["occurred"]].copy()
    frame["p_mean"], frame["p_q05"], frame["p_q95"] = pred[True], q05, q95
    frame["p_mean_evidence_free"] = pred[False]
    frame["p_mean_base_rate"] = base_rate_probabilities(frame, data, jobs)
    frame = _score_all(frame.dropna(subset=["p_mean", "p_mean_evidence_free"]))
    folds_df = pd.DataFrame(folds)
    summary = {"mode": "loco", "procedure": "direct", **summarise(frame, folds=folds_df)}
    summary["settings"] = {**asdict(s), "sampler": compiled.sampler}
    summary["fits_passed_gate"] = int(sum(f["passed"] for f in fits))
    summary["fits_total"] = len(fits)
    summary["seconds"] = round(time.perf_counter() - started, 1)
    return BacktestResult(
        scores=frame.assign(mode="loco"), summary=summary, fits=fits, folds=folds_df
    )
