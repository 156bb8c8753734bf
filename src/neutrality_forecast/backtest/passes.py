"""One pass of a backtest's folds over its clusters: in this process or in worker processes.

A *cluster pass* takes the full-population posterior and one left-out cluster: the cluster's
states and importance weights at each origin, the folds' forecasts by importance sampling,
and the folds whose weights are unreliable (to be refitted). Every random number of a pass
comes from a generator seeded by ``(seed, cluster index, evidence)``, so a pass gives the
same rows wherever it runs. :func:`run_passes` runs the passes of all clusters one after
another, or spread over ``workers`` local processes (``concurrent.futures``, *spawn*
start: each worker imports the library and receives the posterior once); the results are
collected in cluster order, so rows, fold records and the refit decisions made from them
are identical to a run in one process.

On a machine with few cores the workers share the compiled weight loop's threads (each
worker gets ``cores // workers`` numba threads); the rest of a pass (Pareto smoothing,
forecasts, questions as known at each origin) is single-threaded, which is what the
workers parallelise.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from neutrality_forecast.backtest.folds import cluster_state, fold_draws, origin_rows
from neutrality_forecast.casesets import CaseSet
from neutrality_forecast.config import Config
from neutrality_forecast.forecast.horizon import question_probabilities
from neutrality_forecast.model.data import ModelData, Question
from neutrality_forecast.model.known import CaseHistory

__all__ = ["ClusterPass", "FoldPass", "cluster_pass", "deployed_forecast", "run_passes"]


def deployed_forecast(
    config: Config, data: ModelData, horizons, qs: list[Question], draws, *, evidence: bool,
    origin, seed: int,
) -> dict:  # fmt: skip
    """The deployed forecast of ``qs`` at ``origin`` from ``draws`` (folds and refits)."""
    return question_probabilities(
        qs, draws, config=config, link_outcomes=data.link_outcomes, as_of=origin,
        horizons=list(horizons), evidence=evidence, seed=seed,
    )  # fmt: skip


@dataclass
class FoldPass:
    """What every cluster pass of one backtest pass reads (model or evidence-free twin).

    ``remove``: the cluster's data are in the fit and are removed by the weights
    (leave-cluster-out); ``False`` when the fit never saw them (external holdout).
    ``exclude``: cases left out of every refit (external holdout cases).
    """

    config: Config
    settings: object  # BacktestSettings (not imported: runner imports this module)
    data: ModelData
    source: CaseSet
    draws: dict[str, np.ndarray]
    evidence: bool
    remove: bool = True
    exclude: tuple[str, ...] = ()

    def forecast(self, qs: list[Question], draws, *, origin, seed: int) -> dict:
        """The deployed forecast of ``qs`` at ``origin`` from ``draws``."""
        return deployed_forecast(self.config, self.data, self.settings.horizons, qs, draws,
                                 evidence=self.evidence, origin=origin, seed=seed)  # fmt: skip


@dataclass
class ClusterPass:
    """Rows and fold records of one cluster; ``pending``: (fold index, refit job) in order."""

    rows: list[dict] = field(default_factory=list)
    folds: list[dict] = field(default_factory=list)
    pending: list[tuple[int, object]] = field(default_factory=list)
    clock: dict[str, float] = field(default_factory=dict)
    peak_rss_gb: float = 0.0


def cluster_pass(
    p: FoldPass, j: int, cluster: str, cases: list[str], *, cache: dict, progress=None
) -> ClusterPass:
    """The folds of cluster ``j`` (every origin of each of its ``cases``).

    ``cache`` keeps each case's :class:`~neutrality_forecast.model.known.CaseHistory`, its
    questions as known at each origin and the origin-month rows (they do not depend on the
    draws: another pass over the same source reuses them). ``progress`` is called once per
    fold forecast by importance sampling (refitted folds advance it when refitted).
    """
    from neutrality_forecast.backtest.refits import RefitJob
    from neutrality_forecast.backtest.runner import _rows, origins_for

    s, data, out = p.settings, p.data, ClusterPass()
    clock = out.clock

    def timed(part: str, fn, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            clock[part] = clock.get(part, 0.0) + time.perf_counter() - t0

    def known_at(case_id: str, origin) -> list[Question]:
        key = (case_id, pd.Timestamp(origin))
        if key not in cache:
            if case_id not in cache:  # the case's questions, built once and cut per origin
                cache[case_id] = timed("questions", CaseHistory, p.source, case_id,
                                       p.config, data)  # fmt: skip
            cache[key] = timed("questions", cache[case_id].at, origin)
        return cache[key]

    rng = np.random.default_rng([s.seed, j, int(p.evidence)])
    state = timed(
        "weights", cluster_state, p.draws, data, cases, evidence=p.evidence,
        n_effects=s.n_effects, rng=rng, remove=p.remove,
    )  # fmt: skip
    min_h = min(s.horizons)
    for case_id in cases:
        for o_i, origin in enumerate(origins_for(p.source.case(case_id), s.origin_step_months,
                                                 min_h)):  # fmt: skip
            started = [c for c in cases if p.source.case(c)["window_start"] <= origin]
            known = [q for c in started for q in known_at(c, origin)]
            key = ("rows", tuple(started), pd.Timestamp(origin))
            if key not in cache:  # shared with the twin's pass
                cache[key] = timed("questions", origin_rows, known, data)
            draws, fw = timed(
                "weights", fold_draws, p.draws, state, known, data, evidence=p.evidence,
                n_out=s.n_out, rng=rng, max_khat=s.max_khat, min_ess=s.min_ess,
                rows=cache[key],
            )  # fmt: skip
            rec = {
                "cluster": cluster, "case_id": case_id, "origin": origin.date().isoformat(),
                "evidence": p.evidence, "khat": fw.khat, "ess": fw.ess, "reason": fw.reason,
                "method": "psis" if draws is not None else "refit",
            }  # fmt: skip
            out.folds.append(rec)
            if draws is None:
                job = RefitJob(cluster, tuple(cases), case_id, origin, p.evidence,
                               seed=s.seed + 7919 * (j + 1) + o_i, forecast_seed=s.seed + o_i,
                               exclude=tuple(p.exclude))  # fmt: skip
                out.pending.append((len(out.folds) - 1, job))
                continue
            qs = known_at(case_id, origin)
            res = timed("forecast", p.forecast, qs, draws, origin=origin, seed=s.seed + o_i)
            out.rows += _rows(res, case_id, cluster, origin)
            if progress is not None:
                progress()
    return out


# ---- worker processes -------------------------------------------------------------------

_WORKER: dict = {}


def _init_worker(p: FoldPass, threads: int) -> None:
    import numba

    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    _WORKER.clear()
    _WORKER.update(p=p, cache={})


def _worker_pass(j: int, cluster: str, cases: list[str]) -> ClusterPass:
    out = cluster_pass(_WORKER["p"], j, cluster, cases, cache=_WORKER["cache"])
    out.peak_rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    return out


def run_passes(
    p: FoldPass,
    jobs: list[tuple[str, list[str]]],
    *,
    workers: int = 1,
    cache: dict | None = None,
    progress=None,
) -> list[ClusterPass]:
    """The cluster passes of ``jobs`` (``[(cluster, cases)]``), in the order of ``jobs``.

    Parameters
    ----------
    p : FoldPass
        The pass (posterior draws, data, settings).
    jobs : list of (str, list of str)
        Clusters and their cases; cluster ``j`` seeds its random numbers with ``j``.
    workers : int
        ``1``: in this process (``cache`` is used and filled). More: that many spawned
        worker processes, each with its own cache; same results.
    cache : dict, optional
        In-process cache of questions and origin rows (see :func:`cluster_pass`).
    progress : callable, optional
        Called once per fold forecast by importance sampling (in workers: when the
        cluster's pass is collected).

    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, not {workers}")
    if workers == 1 or len(jobs) <= 1:
        cache = {} if cache is None else cache
        return [
            cluster_pass(p, j, cluster, cases, cache=cache, progress=progress)
            for j, (cluster, cases) in enumerate(jobs)
        ]
    threads = max(1, (os.cpu_count() or 1) // workers)
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=min(workers, len(jobs)), mp_context=ctx, initializer=_init_worker,
        initargs=(p, threads),
    ) as pool:  # fmt: skip
        futures = [
            pool.submit(_worker_pass, j, cluster, cases) for j, (cluster, cases) in enumerate(jobs)
        ]
        results = []
        for fut in futures:  # in order: identical to the in-process run
            results.append(fut.result())
            if progress is not None:
                for _ in range(len(results[-1].folds) - len(results[-1].pending)):
                    progress()
    return results
