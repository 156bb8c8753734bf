"""Leave-cluster-out folds: importance sampling vs refit, and refits on a Dask cluster."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tests.conftest import TINY

import neutrality_forecast as nf
from neutrality_forecast.backtest import BacktestSettings
from neutrality_forecast.backtest.folds import cluster_state, fold_draws
from neutrality_forecast.backtest.refits import RefitJob, execute_refits, run_refit
from neutrality_forecast.backtest.runner import _Runner, run_folds
from neutrality_forecast.model.data import questions_at


def test_importance_fold_agrees_with_refit():
    """A fold by importance sampling from the full fit == MCMC on the cut data (MC error).

    The case is XTB at an origin after its basing occurrence: its own history before the
    origin informs its forecast in both (the deployed procedure), its later months in
    neither.
    """
    cs = nf.load_case_set(TINY)
    cfg = nf.load_config()
    s = BacktestSettings(horizons=(12, 24), draws=1000, tune=1000, chains=2, seed=3,
                         n_effects=64, n_out=2000, min_ess=100)  # fmt: skip
    runner = _Runner(cs, cfg, s)
    full, _ = runner.fit(cs, evidence=True, seed=3, tag="full")
    origin = pd.Timestamp("2014-07-01")
    known = questions_at(cs, "XTB", origin, cfg, runner.data)
    rng = np.random.default_rng(0)
    state = cluster_state(full.draws(), runner.data, ["XTB"], evidence=True, n_effects=64, rng=rng)
    draws, fw = fold_draws(full.draws(), state, known, runner.data, evidence=True, n_out=2000,
                           rng=rng, min_ess=100)  # fmt: skip
    assert draws is not None, fw.reason
    is_fc = runner.forecast(known, draws, evidence=True, origin=origin, seed=1)
    rows, fit_rec = run_refit(runner, cs, RefitJob("XTB", ("XTB",), "XTB", origin, True, 5, 1))
    assert fit_rec["passed"]
    refit = pd.DataFrame(rows).set_index(["outcome", "horizon"])["p_mean"]
    for i, q in enumerate(is_fc["questions"]):
        for h_i, h in enumerate(is_fc["horizons"]):
            p = is_fc["marginal"][:, h_i, i]
            se = p.std() / np.sqrt(min(fw.ess, 400))  # conservative Monte-Carlo error
            got = refit[(q.outcome, h)]
            assert abs(p.mean() - got) < 4 * se + 0.01, (q.label, h, p.mean(), got)


def test_refits_on_a_dask_cluster_equal_local_refits(mocked):
    """Folds sent to a Dask LocalCluster give exactly the local rows (same seeds)."""
    distributed = pytest.importorskip("distributed")
    cs = nf.load_case_set(TINY)
    cfg = nf.load_config()
    s = BacktestSettings(origin_step_months=24, horizons=(6,), draws=30, chains=2,
                         sampler="pymc", max_khat=-1.0)  # fmt: skip  # every fold refits
    runner = _Runner(cs, cfg, s)
    jobs = [RefitJob("XTC", ("XTC",), "XTC", pd.Timestamp(o), True, 11 + i, 1)
            for i, o in enumerate(["2014-01-01", "2016-01-01"])]  # fmt: skip
    local, _ = execute_refits(runner, cs, jobs)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False) as cl:
        with distributed.Client(cl) as client:
            remote, fits = execute_refits(runner, cs, jobs, client=client)
    assert len(fits) == 2
    pd.testing.assert_frame_equal(pd.DataFrame(local), pd.DataFrame(remote))


def test_backtest_counts_refits(mocked):
    cs = nf.load_case_set(TINY)
    s = BacktestSettings(
        origin_step_months=24,
        horizons=(6,),
        draws=30,
        chains=2,
        sampler="pymc",
        max_khat=-np.inf,
        min_ess=1e12,
        max_refits=2,
    )  # fmt: skip  (every fold's weights fail the ESS rule)
    runner = _Runner(cs, nf.load_config(), s)
    full, _ = runner.fit(cs, evidence=True, seed=1, tag="full")
    rows, folds = run_folds(runner, full.draws(), evidence=True, source=cs,
                            jobs=[("XTC", ["XTC"]), ("XTA", ["XTA"])])  # fmt: skip
    f = pd.DataFrame(folds)
    assert (f["method"] == "refit").sum() == 2  # the cap
    assert (f["method"] == "dropped").sum() == len(f) - 2
    assert {r["origin"] for r in rows} <= set(f.loc[f["method"] == "refit", "origin"])


def test_cluster_passes_in_worker_processes_equal_one_process(mocked):
    """Spawned workers give the same rows, folds and refit decisions as one process."""
    cs = nf.load_case_set(TINY)
    s = BacktestSettings(origin_step_months=12, horizons=(6, 12), draws=40, chains=2,
                         sampler="pymc", n_effects=8, n_out=200, min_ess=150, max_refits=2)  # fmt: skip
    runner = _Runner(cs, nf.load_config(), s)
    full, _ = runner.fit(cs, evidence=True, seed=1, tag="full")
    jobs = [("XTC", ["XTC"]), ("XTA", ["XTA"]), ("XTB", ["XTB"])]
    timing: dict = {}
    one = run_folds(runner, full.draws(), evidence=True, source=cs, jobs=jobs)
    rss: list = []
    two = run_folds(runner, full.draws(), evidence=True, source=cs, jobs=jobs, workers=2,
                    timing=timing, worker_rss=rss)  # fmt: skip
    f1, f2 = pd.DataFrame(one[1]), pd.DataFrame(two[1])
    pd.testing.assert_frame_equal(f1, f2)
    # every branch: importance sampling, refits within the cap (in cluster order), dropped
    assert set(f1["method"]) == {"psis", "refit", "dropped"} and len(f1) > 10
    assert (f1["method"] == "refit").sum() == 2
    r1, r2 = pd.DataFrame(one[0]), pd.DataFrame(two[0])
    assert len(r1) > 0
    pd.testing.assert_frame_equal(r1, r2)
    assert timing["weights"] > 0 and timing["forecast"] > 0 and len(rss) == len(jobs)


def test_run_passes_rejects_zero_workers():
    from neutrality_forecast.backtest.passes import run_passes

    with pytest.raises(ValueError, match="workers"):
        run_passes(None, [], workers=0)
