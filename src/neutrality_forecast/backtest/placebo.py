"""Placebo backtests: the same evaluation with event dates permuted within each case.

Permuting the dates of a case's events (each event keeps its type, parties, contexts and
grades; the multiset of dates is the case's own) keeps every case's coding *level* and
mix and destroys their *timing*. Skill that survives in the placebo runs comes from
coding levels (which cases are coded densely, with which partners); only the real
data's excess over the placebo distribution is evidence of timing signal: events that
precede outcomes.

Each placebo run refits the model on permuted data and forecasts every fold by importance
sampling from that fit. Folds whose weights fail (k-hat or ESS, as in the backtest) are
refitted up to ``max_refits`` times per run (default 0: dropped). A run is compared with
the real backtest **on the forecasts that run scored** (paired): the real model's skill
and the placebo's skill against the same evidence-free twin rows. The percentile is the
share of runs whose placebo skill lies below the real skill on the same rows.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from neutrality_forecast.backtest.scoring import brier
from neutrality_forecast.backtest.summary import _skill
from neutrality_forecast.casesets import CaseSet

__all__ = ["permute_dates", "placebo_skills", "run_placebo", "write_placebo"]

KEYS = ["case_id", "cluster", "outcome", "partner", "origin", "horizon"]
SCORE_COLUMNS = {*KEYS, "occurred", "brier", "brier_evidence_free", "brier_base_rate"}


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


def _summary(runs: list[dict], scores: pd.DataFrame, n: int, max_refits) -> dict:
    col = {k: [r[k] for r in runs] for k in (runs[0] if runs else {})}
    below_free = [r["skill_vs_evidence_free"] < r["real_skill_vs_evidence_free_paired"]
                  for r in runs]  # fmt: skip
    below_base = [r["skill_vs_base_rate"] < r["real_skill_vs_base_rate_paired"] for r in runs]
    return {
        "n": len(runs),
        "n_planned": n,
        "max_refits_per_run": max_refits,
        **col,
        "real_skill_vs_evidence_free": _skill(scores["brier"].mean(),
                                              scores["brier_evidence_free"].mean()),
        "real_skill_vs_base_rate": _skill(scores["brier"].mean(),
                                          scores["brier_base_rate"].mean()),
        "percentile_vs_evidence_free": float(np.mean(below_free) * 100) if runs else float("nan"),
        "percentile_vs_base_rate": float(np.mean(below_base) * 100) if runs else float("nan"),
    }  # fmt: skip


def placebo_skills(
    runner, scores: pd.DataFrame, *, n: int, jobs, progressbar: bool, exclude=(),
    max_refits: int | None = 0, on_run: Callable[[dict], None] | None = None,
) -> dict:  # fmt: skip
    """Skills of ``n`` placebo runs on the rows of ``scores``; the real skill's percentile.

    Each run refits the model (not the evidence-free twin or the base rate, which do not
    use the events) on permuted data and evaluates the same forecasts; ``max_refits``
    caps the fold refits per run (``None``: no cap). ``on_run`` is called with the
    summary so far after every run (long jobs write partial results).

    Returns
    -------
    dict
        ``n`` (runs made) and ``n_planned``; per run: ``skill_vs_evidence_free``,
        ``skill_vs_base_rate``, ``real_skill_vs_evidence_free_paired`` (the real model on
        the same rows), ``n_forecasts`` and ``folds_dropped``; the real skills on all of
        ``scores``; ``percentile_vs_evidence_free`` and ``percentile_vs_base_rate``
        (paired).

    """
    from neutrality_forecast.backtest.runner import run_folds

    s = runner.s
    scores = scores.assign(partner=scores["partner"].fillna("").astype(str),
                           origin=scores["origin"].astype(str))  # fmt: skip
    budget = 10**9 if max_refits is None else int(max_refits)
    runs: list[dict] = []
    for i in range(n):
        rng = np.random.default_rng([s.seed, 104729, i])
        perm = permute_dates(runner.case_set, rng)
        fm, _ = runner.fit(
            perm, evidence=True, seed=s.seed + 1 + i, tag=f"placebo {i}", exclude=tuple(exclude)
        )
        rows, folds = run_folds(
            runner, fm.draws(), evidence=True, source=perm, jobs=jobs, refit_budget=[budget],
            remove=not exclude, exclude=tuple(exclude),
        )  # fmt: skip
        got = pd.DataFrame(rows)[[*KEYS, "p_mean"]].rename(columns={"p_mean": "p_placebo"})
        m = scores.merge(got, on=KEYS, how="inner")
        b = brier(m["p_placebo"].to_numpy(), m["occurred"].to_numpy()).mean()
        b_real, b_free, b_base = (m[c].mean() for c in ("brier", "brier_evidence_free",
                                                          "brier_base_rate"))  # fmt: skip
        runs.append({
            "skill_vs_evidence_free": _skill(b, b_free),
            "skill_vs_base_rate": _skill(b, b_base),
            "real_skill_vs_evidence_free_paired": _skill(b_real, b_free),
            "real_skill_vs_base_rate_paired": _skill(b_real, b_base),
            "n_forecasts": int(len(m)),
            "folds_dropped": int(sum(f["method"] == "dropped" for f in folds)),
        })  # fmt: skip
        if on_run is not None:
            on_run(_summary(runs, scores, n, max_refits))
    return _summary(runs, scores, n, max_refits)


def run_placebo(
    case_set: CaseSet,
    config,
    scores: pd.DataFrame,
    *,
    n: int,
    settings=None,
    max_refits: int | None = 0,
    progressbar: bool = True,
    on_run: Callable[[dict, list[dict]], None] | None = None,
) -> tuple[dict, list[dict]]:
    """Placebo runs for a finished leave-cluster-out backtest, from its ``scores.csv``.

    The backtest is not repeated: ``scores`` (its real-model, twin and base-rate scores)
    are read and only the ``n`` placebo runs are made, with ``settings`` (use the
    backtest's own, from its ``summary.json``) so the seeds, origins and sampler match.

    Parameters
    ----------
    case_set, config : CaseSet, Config
        The reference population and the model configuration the backtest used.
    scores : DataFrame
        The backtest's ``scores.csv`` (rows of ``mode == "loco"`` are used when the column
        exists).
    n : int
        Placebo runs.
    settings : BacktestSettings, optional
        The backtest's settings (default: the defaults with the config's horizons).
    max_refits : int or None
        Refits per placebo run (default 0: importance sampling only).
    progressbar : bool
        Accepted for symmetry with :func:`run_backtest` (the runs print nothing).
    on_run : callable, optional
        Called with the summary so far and the fit records after every run.

    Returns
    -------
    (dict, list of dict)
        The :func:`placebo_skills` summary and the fit records (diagnostics per fit).

    """
    from neutrality_forecast.backtest.runner import BacktestSettings, _cluster_cases, _Runner

    if missing := sorted(SCORE_COLUMNS - set(scores.columns)):
        raise ValueError(f"not a backtest scores table (missing columns {missing})")
    if "mode" in scores.columns:
        scores = scores[scores["mode"].astype(str) == "loco"]
    if unknown := sorted(set(scores["case_id"].astype(str)) - set(case_set.case_ids)):
        raise ValueError(f"scores name cases not in the case set: {unknown[:5]}")
    s = settings or BacktestSettings(horizons=tuple(config.model.forecast.horizons))
    runner = _Runner(case_set, config, s)
    jobs = list(_cluster_cases(case_set).items())
    sampler = runner.compiled.sampler
    hook = None if on_run is None else (lambda d: on_run({**d, "sampler": sampler}, runner.fits))
    out = placebo_skills(runner, scores, n=n, jobs=jobs, progressbar=progressbar,
                         max_refits=max_refits, on_run=hook)  # fmt: skip
    out["sampler"] = sampler
    return out, runner.fits


def write_placebo(summary: dict, fits: list[dict], out: Path) -> None:
    """``placebo.json``, ``placebo_runs.csv``, ``placebo_fits.csv`` and ``placebo.png``."""
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    (out / "placebo.json").write_text(json.dumps(summary, indent=1, default=str))
    per_run = ["skill_vs_evidence_free", "real_skill_vs_evidence_free_paired",
               "skill_vs_base_rate", "real_skill_vs_base_rate_paired", "n_forecasts",
               "folds_dropped"]  # fmt: skip
    pd.DataFrame({k: summary.get(k, []) for k in per_run}).rename_axis("run").to_csv(
        out / "placebo_runs.csv"
    )
    pd.DataFrame(fits).to_csv(out / "placebo_fits.csv", index=False)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    runs = np.arange(summary["n"])
    ax.scatter(summary.get("skill_vs_evidence_free", []), runs, label="placebo (dates permuted)")
    ax.scatter(summary.get("real_skill_vs_evidence_free_paired", []), runs, marker="x",
               label="real data, same forecasts")  # fmt: skip
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_xlabel("Brier skill vs the evidence-free twin")
    ax.set_ylabel("placebo run")
    planned = summary.get("n_planned", summary["n"])
    done = "" if summary["n"] >= planned else f" ({planned} planned)"
    ax.set_title(f"Real skill above {summary['percentile_vs_evidence_free']:.0f}% "
                 f"of {summary['n']} placebo runs{done}")  # fmt: skip
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(out / "placebo.png", dpi=120)
    plt.close(fig)
