"""Fold refits: locally with the backtest's compiled model, or on a Dask cluster.

A fold whose importance weights are unreliable is refitted: MCMC on the case set with the
left-out cluster cut at the origin. A refit depends only on (case set, configuration,
settings, fold), and every seed is derived from the fold, so a refit on a Dask worker gives
the same draws, hence the same forecast rows, as the same refit run locally. Workers build
the backtest's model once per process (same data, same padded shapes: the compiled sampler
comes from the on-disk cache after the first).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from neutrality_forecast.casesets import CaseSet
from neutrality_forecast.config import Config

__all__ = ["RefitJob", "execute_refits", "run_refit"]

_RUNNERS: dict = {}


@dataclass(frozen=True)
class RefitJob:
    """One fold to refit: the cluster cut at ``origin``, forecast of ``case_id``."""

    cluster: str
    cases: tuple[str, ...]
    case_id: str
    origin: pd.Timestamp
    evidence: bool
    seed: int
    forecast_seed: int
    exclude: tuple[str, ...] = ()


def run_refit(runner, source: CaseSet, job: RefitJob) -> tuple[list[dict], dict]:
    """Refit one fold and forecast its case: ``(rows, fit record)``."""
    from neutrality_forecast.backtest.runner import _known, _rows
    from neutrality_forecast.model.fitted import posterior_draws

    cut = source
    later = []  # cluster members whose window starts after the origin: nothing known yet
    for c in job.cases:
        if job.origin < cut.case(c)["window_start"]:
            later.append(c)
        elif job.origin < cut.case(c)["window_end"]:
            cut = cut.truncate(c, job.origin)
    others = tuple(c for c in job.exclude if c not in job.cases) + tuple(later)
    fm, dcut = runner.fit(
        cut, evidence=job.evidence, seed=job.seed,
        tag=f"refit {job.cluster} {job.origin.date()}", exclude=others,
    )  # fmt: skip
    draws = posterior_draws(fm.idata.posterior, dcut)
    qs = _known(source, job.case_id, job.origin, runner.config, runner.data)
    res = runner.forecast(
        qs, draws, evidence=job.evidence, origin=job.origin, seed=job.forecast_seed
    )
    return _rows(res, job.case_id, job.cluster, job.origin), runner.fits[-1]


def _remote(model_set: CaseSet, config: Config, settings, source: CaseSet, job: RefitJob):
    from neutrality_forecast.backtest.runner import _Runner

    key = (model_set.data_hash(), config.config_hash(), settings)
    if key not in _RUNNERS:
        _RUNNERS.clear()
        _RUNNERS[key] = _Runner(model_set, config, settings)
    return run_refit(_RUNNERS[key], source, job)


def execute_refits(
    runner, source: CaseSet, jobs: list[RefitJob], *, scheduler: str | None = None,
    client=None, progress=None,
) -> tuple[list[dict], list[dict]]:  # fmt: skip
    """Run ``jobs`` locally (default) or on a Dask cluster; rows and fit records in order."""
    if not jobs:
        return [], []
    if scheduler is None and client is None:
        rows, fits = [], []
        for job in jobs:
            r, f = run_refit(runner, source, job)
            rows += r
            fits.append(f)
            if progress is not None:
                progress()
        return rows, fits
    from distributed import Client

    own = client is None
    client = client or Client(scheduler)
    try:
        futures = client.map(
            _remote, [runner.case_set] * len(jobs), [runner.config] * len(jobs),
            [runner.s] * len(jobs), [source] * len(jobs), jobs, pure=False,
        )  # fmt: skip
        results = client.gather(futures)
    finally:
        if own:
            client.close()
    rows, fits = [], []
    for r, f in results:
        rows += r
        fits.append(f)
        runner.fits.append(f)
    return rows, fits
