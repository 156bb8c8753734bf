"""Backtest summaries: scores, skills, CORP decompositions and cluster-bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd

from neutrality_forecast.backtest.scoring import murphy

__all__ = ["cluster_bootstrap", "paired_skill", "skill_block", "summarise"]

_SFX = {"hazard": "", "base_rate": "_base_rate", "evidence_free": "_evidence_free"}


def _skill(b: float, ref: float) -> float:
    return float(1 - b / ref) if ref > 0 else float("nan")


def skill_block(df: pd.DataFrame) -> dict:
    """Mean scores of the three models on ``df`` and the model's Brier skills."""
    b, b0, b1 = (df[f"brier{s}"].mean() for s in ("", "_base_rate", "_evidence_free"))
    return {
        "n_forecasts": int(len(df)),
        "n_events": int(df["occurred"].sum()),
        "brier": float(b),
        "log_score": float(df["log_score"].mean()),
        "brier_base_rate": float(b0),
        "log_score_base_rate": float(df["log_score_base_rate"].mean()),
        "brier_evidence_free": float(b1),
        "log_score_evidence_free": float(df["log_score_evidence_free"].mean()),
        "brier_skill": _skill(b, b0),
        "brier_skill_vs_evidence_free": _skill(b, b1),
        "log_skill_vs_evidence_free": float(
            df["log_score_evidence_free"].mean() - df["log_score"].mean()
        ),
        "mean_p": float(df["p_mean"].mean()),
        "mean_p_non_events": float(df.loc[df["occurred"] == 0, "p_mean"].mean()),
    }


def cluster_bootstrap(
    scores: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0, column: str = "brier"
) -> dict:
    """90 % intervals of the Brier skills by resampling whole clusters.

    Forecasts within a cluster (origins, horizons, questions, cases of one country) are
    strongly dependent, so clusters are the resampling unit.
    """
    key = "cluster" if "cluster" in scores.columns else "case_id"
    sums = scores.groupby(key)[[column, f"{column}_base_rate", f"{column}_evidence_free"]].sum()
    arr = sums.to_numpy(float)
    if not len(arr):
        return {"vs_base_rate": [np.nan, np.nan], "vs_evidence_free": [np.nan, np.nan]}
    vs0, vs1 = _bootstrap_skills(arr, n_boot=n_boot, seed=seed)
    return {"vs_base_rate": vs0, "vs_evidence_free": vs1, "unit": key, "n_units": int(len(arr))}


def _bootstrap_skills(sums: np.ndarray, *, n_boot: int, seed: int) -> list[list[float]]:
    """90 % intervals of ``1 - S_0 / S_j`` (j >= 1) over resampled rows of ``sums``.

    ``sums`` holds per-unit (cluster) score sums, model first; the ratio of the resampled
    sums is the ratio of the means, as both are over the same forecasts.
    """
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(sums), size=(n_boot, len(sums)))
    tot = sums[idx].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        skills = 1 - tot[:, :1] / tot[:, 1:]
    return [[float(v) for v in np.nanquantile(col, [0.05, 0.95])] for col in skills.T]


def summarise(scores: pd.DataFrame, *, folds: pd.DataFrame | None = None) -> dict:
    """The backtest's ``summary.json`` content (see ``docs/validation.md``)."""
    if scores.empty:
        return {"n_forecasts": 0}
    out = skill_block(scores)
    out["brier_skill_ci90"] = cluster_bootstrap(scores)
    out["per_outcome"] = {str(k): skill_block(g) for k, g in scores.groupby("outcome")}
    out["per_horizon"] = {str(k): skill_block(g) for k, g in scores.groupby("horizon")}
    out["n_events_per_family"] = {
        str(k): int(g["occurred"].sum()) for k, g in scores.groupby("outcome")
    }
    out["n_forecasts_per_family"] = {str(k): int(len(g)) for k, g in scores.groupby("outcome")}
    out["murphy"] = {
        m: murphy(scores[f"p_mean{s}"].to_numpy(), scores["occurred"].to_numpy())
        for m, s in _SFX.items()
    }
    out["n_clusters"] = int(scores["cluster"].nunique()) if "cluster" in scores else None
    if folds is not None and len(folds):
        meth = folds["method"].value_counts()
        out["folds"] = {
            "n": int(len(folds)),
            "psis": int(meth.get("psis", 0)),
            "refit": int(meth.get("refit", 0)),
            "dropped": int(meth.get("dropped", 0)),
            "refit_share": float(meth.get("refit", 0) / len(folds)),
            "khat_median": float(np.nanmedian(folds["khat"].replace(np.inf, np.nan))),
            "khat_max": float(folds["khat"].max()),
        }
    return out


KEYS = ["case_id", "outcome", "partner", "origin", "horizon"]


def paired_skill(
    scores: pd.DataFrame, reference: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0
) -> dict:
    """Brier skill of ``scores`` against ``reference`` on the forecasts both scored.

    Two backtests (e.g. the direct-horizon model and the monthly hazard) rarely score
    exactly the same forecasts (dropped folds differ); they are matched on
    ``case_id, outcome, partner, origin, horizon`` and must agree on ``occurred``. The
    90 % interval resamples clusters (1,000 resamples), as :func:`cluster_bootstrap`.

    Returns
    -------
    dict
        ``n_forecasts, n_events, brier, brier_reference, skill, skill_ci90``.

    """
    a = scores.assign(partner=scores["partner"].fillna("").astype(str),
                      origin=scores["origin"].astype(str))  # fmt: skip
    b = reference.assign(partner=reference["partner"].fillna("").astype(str),
                         origin=reference["origin"].astype(str))  # fmt: skip
    m = a[[*KEYS, "cluster", "occurred", "brier"]].merge(
        b[[*KEYS, "occurred", "brier"]], on=KEYS, suffixes=("", "_ref")
    )
    if (m["occurred"] != m["occurred_ref"]).any():
        bad = m.loc[m["occurred"] != m["occurred_ref"], KEYS].head(3).to_dict("records")
        raise ValueError(f"the two backtests disagree on what occurred, e.g. {bad}")
    if m.empty:
        return {"n_forecasts": 0}
    sums = m.groupby("cluster")[["brier", "brier_ref"]].sum().to_numpy(float)
    (ci,) = _bootstrap_skills(sums, n_boot=n_boot, seed=seed)
    return {
        "n_forecasts": int(len(m)),
        "n_events": int(m["occurred"].sum()),
        "brier": float(m["brier"].mean()),
        "brier_reference": float(m["brier_ref"].mean()),
        "skill": _skill(m["brier"].mean(), m["brier_ref"].mean()),
        "skill_ci90": ci,
    }
