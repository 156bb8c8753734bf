"""Placebo backtests: the same evaluation with event dates permuted within each case.

Permuting the dates of a case's events (each event keeps its type, parties, contexts and
grades; the multiset of dates is the case's own) keeps every case's coding *level* and
mix and destroys their *timing*. Skill that survives in the placebo runs comes from
coding levels (which cases are coded densely, with which partners); only the real
data's excess over the placebo distribution is evidence of timing signal: events that
precede outcomes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from neutrality_forecast.backtest.scoring import brier
from neutrality_forecast.casesets import CaseSet

__all__ = ["permute_dates", "placebo_skills"]


def permute_dates(case_set: CaseSet, rng: np.random.Generator) -> CaseSet:
    """A copy of ``case_set`` with (date, date_precision) pairs shuffled within each case."""
    ev = case_set.events.copy()
    for _, idx in ev.groupby("case_id", observed=True).indices.items():
        perm = rng.permutation(idx)
        ev.loc[ev.index[idx], ["date", "date_precision"]] = ev.loc[
            ev.index[perm], ["date", "date_precision"]
        ].to_numpy()
    ev["date"] = pd.to_datetime(ev["date"]).astype("datetime64[ns]")
    ev["date_precision"] = pd.Categorical(
        ev["date_precision"].astype(str),
        categories=case_set.events["date_precision"].cat.categories,
    )
    return CaseSet(case_set.cases.copy(), case_set.outcomes.copy(), ev, root=case_set.root)


def placebo_skills(
    runner, scores: pd.DataFrame, *, n: int, jobs, progressbar: bool, exclude=()
) -> dict:
    """Skills of ``n`` placebo runs on the rows of ``scores``; the real skill's percentile.

    Each run refits the model (not the evidence-free twin or the base rate, which do not
    use the events) on permuted data and evaluates the same forecasts.
    """
    from neutrality_forecast.backtest.runner import run_folds

    keys = ["case_id", "cluster", "outcome", "partner", "origin", "horizon"]
    s = runner.s
    b_real = scores["brier"].mean()
    vs_free, vs_base = [], []
    for i in range(n):
        rng = np.random.default_rng([s.seed, 104729, i])
        perm = permute_dates(runner.case_set, rng)
        fm, _ = runner.fit(
            perm, evidence=True, seed=s.seed + 1 + i, tag=f"placebo {i}", exclude=tuple(exclude)
        )
        rows, _ = run_folds(
            runner, fm.draws(), evidence=True, source=perm, jobs=jobs,
            remove=not exclude, exclude=tuple(exclude),
        )  # fmt: skip
        got = pd.DataFrame(rows)[[*keys, "p_mean"]].rename(columns={"p_mean": "p_placebo"})
        m = scores.merge(got, on=keys, how="inner")
        b = brier(m["p_placebo"].to_numpy(), m["occurred"].to_numpy()).mean()
        vs_free.append(float(1 - b / m["brier_evidence_free"].mean()))
        vs_base.append(float(1 - b / m["brier_base_rate"].mean()))
    real_free = float(1 - b_real / scores["brier_evidence_free"].mean())
    real_base = float(1 - b_real / scores["brier_base_rate"].mean())
    return {
        "n": n,
        "skill_vs_evidence_free": vs_free,
        "skill_vs_base_rate": vs_base,
        "real_skill_vs_evidence_free": real_free,
        "real_skill_vs_base_rate": real_base,
        "percentile_vs_evidence_free": float(np.mean(np.array(vs_free) < real_free) * 100),
        "percentile_vs_base_rate": float(np.mean(np.array(vs_base) < real_base) * 100),
    }
