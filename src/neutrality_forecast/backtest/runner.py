"""Leave-one-case-out and external backtests with two baselines, and the TKM replay.

For every evaluated case the model is fitted **without** that case (leave-one-case-out) or
on a separate case set (external). The evaluated case is then forecast from rolling as-of
origins (every ``origin_step_months``), each time using only its evidence dated up to the
origin; its case effects are drawn from their fitted prior (a new case). Each forecast is
scored once its horizon has been observed (or the outcome occurred within it).

Two baselines are scored on exactly the same forecasts:

* ``base_rate``: the reference-class monthly frequency of the outcome family, computed from
  the training cases only, turned into ``1 - (1 - rate)**h``;
* ``evidence_free``: the same hierarchical model refitted with every evidence covariate set
  to zero (same priors, same link between outcomes, same sampler and seed).

Within one backtest the model is compiled once; folds swap data into the compiled model.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from rich.progress import Progress

from neutrality_forecast.backtest.scoring import brier, log_score, murphy
from neutrality_forecast.casesets import CaseSet
from neutrality_forecast.config import Config
from neutrality_forecast.evidence import month_index
from neutrality_forecast.forecast.horizon import question_probabilities
from neutrality_forecast.model.data import ModelData, build_model_data
from neutrality_forecast.model.fitted import FittedModel, fit_compiled
from neutrality_forecast.model.hazard import HazardModel
from neutrality_forecast.sampling import CompiledModel

__all__ = ["BacktestResult", "case_forecasts", "origins_for", "run_backtest"]

MODELS = ("hazard", "base_rate", "evidence_free")


@dataclass
class BacktestResult:
    """Scores (one row per forecast, all models side by side) and their summary."""

    scores: pd.DataFrame
    summary: dict
    fits: list[dict] = field(default_factory=list)

    @property
    def scores_long(self) -> pd.DataFrame:
        """One row per forecast and model (``model`` column), for plotting."""
        keys = ["case_id", "outcome", "partner", "origin", "horizon", "occurred"]
        frames = []
        for model in MODELS:
            suffix = "" if model == "hazard" else f"_{model}"
            part = self.scores[keys].copy()
            part["model"] = model
            part["p_mean"] = self.scores[f"p_mean{suffix}"]
            part["brier"] = self.scores[f"brier{suffix}"]
            part["log_score"] = self.scores[f"log_score{suffix}"]
            frames.append(part)
        return pd.concat(frames, ignore_index=True)


def origins_for(case: pd.Series, step_months: int) -> list[pd.Timestamp]:
    """As-of origins ``window_start + k * step`` (k >= 1) up to the window end."""
    start, end = pd.Timestamp(case["window_start"]), pd.Timestamp(case["window_end"])
    out = []
    k = 1
    while (when := start + pd.DateOffset(months=k * step_months)) <= end:
        out.append(pd.Timestamp(when))
        k += 1
    return out


def _new_case_draws(fitted: FittedModel, seed: int) -> dict[str, np.ndarray]:
    """Posterior draws with the case effect of a *new* case drawn from its prior."""
    draws = dict(fitted.draws())
    sigma = fitted.idata.posterior["sigma_case"].stack(s=("chain", "draw")).transpose("s", ...)
    rng = np.random.default_rng(seed)
    sig = sigma.values  # (S, K)
    draws["u"] = (sig * rng.standard_normal(sig.shape))[:, None, :]
    return draws


def _truncated_questions(case_set: CaseSet, case_id: str, origin: pd.Timestamp, config: Config):
    """The case's questions as known at ``origin`` (case index 0, for new-case draws)."""
    cut = case_set.subset([case_id]).truncate(case_id, origin)
    data = build_model_data(cut, config)
    return [dataclasses.replace(q, case_idx=0) for q in data.questions]


def _family_rates(data: ModelData, exclude: list[str]) -> np.ndarray:
    """Monthly reference-class frequency per outcome family, without ``exclude`` cases."""
    keep = ~np.isin(data.case_idx, [data.case_ids.index(c) for c in exclude if c in data.case_ids])
    y, n, k = data.y[keep], data.trials[keep], data.outcome_idx[keep]
    overall = y.sum() / max(n.sum(), 1)
    rates = np.full(len(data.outcomes), overall, dtype=float)
    for i in range(len(data.outcomes)):
        if n[k == i].sum() > 0:
            rates[i] = y[k == i].sum() / n[k == i].sum()
    return rates


def case_forecasts(
    case_set: CaseSet,
    case_id: str,
    fitted: FittedModel,
    *,
    horizons: list[int],
    origins: list[pd.Timestamp],
    evidence: bool = True,
    seed: int = 0,
) -> pd.DataFrame:
    """Forecasts of one (new) case at each origin: p_mean and 90% interval per horizon."""
    draws = _new_case_draws(fitted, seed)
    rows = []
    for origin in origins:
        qs = _truncated_questions(case_set, case_id, origin, fitted.config)
        if not qs:
            continue
        res = question_probabilities(
            qs,
            draws,
            config=fitted.config,
            link_outcomes=fitted.data.link_outcomes,
            as_of_month=int(month_index(origin)),
            horizons=horizons,
            evidence=evidence,
        )
        for i, q in enumerate(res["questions"]):
            for h_i, h in enumerate(horizons):
                p = res["marginal"][:, h_i, i]
                rows.append(
                    {
                        "case_id": case_id,
                        "outcome": q.outcome,
                        "partner": q.partner or "",
                        "origin": origin.date().isoformat(),
                        "horizon": h,
                        "resolved_at_origin": res["resolved"][i],
                        "p_mean": float(p.mean()),
                        "p_q05": float(np.quantile(p, 0.05)),
                        "p_q95": float(np.quantile(p, 0.95)),
                    }
                )
    return pd.DataFrame(rows)


def _truth(case_set: CaseSet, frame: pd.DataFrame) -> pd.DataFrame:
    """Add ``occurred`` (0/1) and drop forecasts that cannot be scored yet."""
    out = case_set.outcomes.set_index(["case_id", "outcome"])
    end = case_set.cases.set_index("case_id")["window_end"]
    occ, keep = [], []
    for r in frame.itertuples(index=False):
        m0 = int(month_index(pd.Timestamp(r.origin)))
        row = out.loc[(r.case_id, r.outcome)]
        occ_m = int(month_index(row["occurred_on"])) if row["occurred"] else None
        hit = occ_m is not None and m0 < occ_m <= m0 + r.horizon
        observed = hit or (m0 + r.horizon <= int(month_index(end[r.case_id])))
        keep.append(observed and not r.resolved_at_origin)
        occ.append(int(hit))
    frame = frame.assign(occurred=occ)
    return frame[np.array(keep, dtype=bool)].reset_index(drop=True)


def _summarise(scores: pd.DataFrame) -> dict:
    def block(df: pd.DataFrame) -> dict:
        b, b0, b1 = (
            df["brier"].mean(),
            df["brier_base_rate"].mean(),
            df["brier_evidence_free"].mean(),
        )
        return {
            "n_forecasts": int(len(df)),
            "n_events": int(df["occurred"].sum()),
            "brier": float(b),
            "log_score": float(df["log_score"].mean()),
            "brier_base_rate": float(b0),
            "log_score_base_rate": float(df["log_score_base_rate"].mean()),
            "brier_evidence_free": float(b1),
            "log_score_evidence_free": float(df["log_score_evidence_free"].mean()),
            "brier_skill": float(1 - b / b0) if b0 > 0 else float("nan"),
            "brier_skill_vs_evidence_free": float(1 - b / b1) if b1 > 0 else float("nan"),
        }

    if scores.empty:
        return {"n_forecasts": 0}
    out = block(scores)
    out["per_outcome"] = {k: block(g) for k, g in scores.groupby("outcome")}
    out["per_horizon"] = {str(k): block(g) for k, g in scores.groupby("horizon")}
    out["murphy"] = {
        model: murphy(scores[f"p_mean{sfx}"].to_numpy(), scores["occurred"].to_numpy())
        for model, sfx in (
            ("hazard", ""),
            ("base_rate", "_base_rate"),
            ("evidence_free", "_evidence_free"),
        )
    }
    out["brier_skill_ci90"] = _case_bootstrap(scores)
    return out


def _case_bootstrap(scores: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> dict:
    """90% interval of Brier skill by resampling whole cases.

    Forecasts within a case are strongly dependent, so cases are the resampling unit.
    """
    rng = np.random.default_rng(seed)
    groups = [g for _, g in scores.groupby("case_id")]
    skills, skills_ef = [], []
    for _ in range(n_boot):
        pick = pd.concat([groups[i] for i in rng.integers(0, len(groups), len(groups))])
        b, b0, b1 = (
            pick["brier"].mean(),
            pick["brier_base_rate"].mean(),
            pick["brier_evidence_free"].mean(),
        )
        skills.append(1 - b / b0 if b0 > 0 else np.nan)
        skills_ef.append(1 - b / b1 if b1 > 0 else np.nan)
    q = [0.05, 0.95]
    return {
        "vs_base_rate": [float(v) for v in np.nanquantile(skills, q)],
        "vs_evidence_free": [float(v) for v in np.nanquantile(skills_ef, q)],
    }


def _score_all(frame: pd.DataFrame) -> pd.DataFrame:
    y = frame["occurred"].to_numpy()
    for sfx in ("", "_base_rate", "_evidence_free"):
        p = frame[f"p_mean{sfx}"].to_numpy()
        frame[f"brier{sfx}"] = brier(p, y)
        frame[f"log_score{sfx}"] = log_score(p, y)
    return frame


def run_backtest(
    case_set: CaseSet,
    config: Config,
    *,
    mode: str = "loco",
    holdout: CaseSet | None = None,
    origin_step_months: int = 6,
    horizons: list[int] | None = None,
    draws: int = 500,
    tune: int = 500,
    chains: int = 4,
    seed: int | None = None,
    sampler: str | None = None,
    progressbar: bool = True,
) -> BacktestResult:
    """Backtest the model and its two baselines.

    Parameters
    ----------
    case_set : CaseSet
        Training cases (and, in ``loco`` mode, the evaluated cases).
    config : Config
        Model configuration.
    mode : {"loco", "external", "both"}
        Leave-one-case-out over ``case_set``; forecasting every case of ``holdout`` from a
        fit on ``case_set``; or both (rows tagged in the ``mode`` column).
    holdout : CaseSet, optional
        Required for ``external``.
    origin_step_months : int
        Months between as-of origins.
    horizons : list of int
        Forecast horizons in months (default from the configuration).
    draws, tune, chains : int
        Sampling settings per fold (smaller than a publication fit; each fold's diagnostics
        are recorded in ``fits``).
    seed : int, optional
        Base seed (fold ``i`` uses ``seed + i``); default from the configuration.
    sampler : str, optional
        Sampler override (default from the configuration).
    progressbar : bool
        Show a progress bar over fits.

    """
    if mode not in ("loco", "external", "both"):
        raise ValueError(f"mode must be loco, external or both, not {mode!r}")
    if mode in ("external", "both") and holdout is None:
        raise ValueError("external mode needs a holdout case set")
    horizons = sorted(horizons or config.model.forecast.horizons)
    seed = config.model.sampling.seed if seed is None else seed
    data = build_model_data(case_set, config)
    compiled = CompiledModel(
        HazardModel(data, config).build_model(), sampler=sampler or config.model.sampling.sampler
    )
    jobs: list[tuple[str, CaseSet, str, list[str]]] = []
    if mode in ("loco", "both"):
        jobs += [("loco", case_set, c, [c]) for c in case_set.case_ids]
    if mode in ("external", "both"):
        jobs += [("external", holdout, c, []) for c in holdout.case_ids]
    frames, fits = [], []
    cache: dict[tuple[str, ...], tuple[FittedModel, FittedModel]] = {}
    started = time.perf_counter()
    with Progress(disable=not progressbar, transient=True) as progress:
        task = progress.add_task("backtest fits", total=len({tuple(j[3]) for j in jobs}))
        for fold, (tag, source, case_id, exclude) in enumerate(jobs):
            key = tuple(exclude)
            if key not in cache:
                pair = []
                for evidence in (True, False):
                    fm = fit_compiled(
                        compiled, case_set, config, data,
                        inputs=data.model_inputs(exclude_cases=exclude, evidence=evidence),
                        draws=draws, tune=tune, chains=chains, seed=seed + fold,
                        progressbar=False,
                    )  # fmt: skip
                    g = fm.gate
                    fits.append(
                        {
                            "mode": tag, "excluded": list(exclude), "evidence": evidence,
                            "passed": g.passed, "failed": g.failed, "rhat_max": g.rhat_max,
                            "ess_bulk_min": g.ess_bulk_min, "ess_tail_min": g.ess_tail_min,
                            "divergences": g.divergences, "seconds": round(fm.fit_seconds, 1),
                        }
                    )  # fmt: skip
                    pair.append(fm)
                cache[key] = (pair[0], pair[1])
                progress.advance(task)
            fitted, free = cache[key]
            origins = origins_for(source.case(case_id), origin_step_months)
            model_fc = case_forecasts(
                source, case_id, fitted, horizons=horizons, origins=origins, seed=seed
            )
            if model_fc.empty:
                continue
            free_fc = case_forecasts(
                source, case_id, free, horizons=horizons, origins=origins, evidence=False, seed=seed
            )
            model_fc["p_mean_evidence_free"] = free_fc["p_mean"].to_numpy()
            rates = _family_rates(data, exclude)
            fam = model_fc["outcome"].map({o: i for i, o in enumerate(data.outcomes)}).to_numpy()
            model_fc["p_mean_base_rate"] = 1 - (1 - rates[fam]) ** model_fc["horizon"].to_numpy()
            model_fc["mode"] = tag
            frames.append(_truth(source, model_fc))
    scores = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if not scores.empty:
        scores = _score_all(scores.drop(columns="resolved_at_origin"))
    summary = {"mode": mode}
    for tag in ("loco", "external"):
        part = scores[scores["mode"] == tag] if not scores.empty else scores
        if len(part):
            summary[tag] = _summarise(part)
    if mode != "both" and mode in summary:
        summary.update(summary.pop(mode))
    summary["settings"] = {
        "origin_step_months": origin_step_months, "horizons": horizons, "draws": draws,
        "tune": tune, "chains": chains, "seed": seed, "sampler": compiled.sampler,
    }  # fmt: skip
    summary["fits_passed_gate"] = int(sum(f["passed"] for f in fits))
    summary["fits_total"] = len(fits)
    summary["seconds"] = round(time.perf_counter() - started, 1)
    return BacktestResult(scores=scores, summary=summary, fits=fits)
