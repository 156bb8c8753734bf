"""Direct-horizon model (model-study V7): units, design, held-out masking, backtest."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tests.conftest import TINY

import neutrality_forecast as nf
from neutrality_forecast.backtest import BacktestSettings
from neutrality_forecast.backtest.direct import direct_units, run_direct_backtest
from neutrality_forecast.backtest.summary import paired_skill
from neutrality_forecast.evidence.covariates import month_index
from neutrality_forecast.model.data import build_model_data
from neutrality_forecast.model.direct import DirectModel, direct_design
from neutrality_forecast.sampling import CompiledModel


@pytest.fixture(scope="module")
def tiny():
    cs = nf.load_case_set(TINY)
    cfg = nf.load_config()
    data = build_model_data(cs, cfg)
    units = direct_units(cs, data, step_months=6, horizons=[3, 12])
    return cs, cfg, data, units


def _design(data, units):
    return direct_design(
        units, outcomes=data.outcomes, horizons=[3, 12], partners=data.partners,
        recurrent=data.recurrent_outcomes, linked=data.link_outcomes, features=data.features,
    )  # fmt: skip


def test_units_use_only_what_was_known_at_the_origin(tiny):
    """The predictors of a unit equal those computed from the case cut at its origin."""
    cs, cfg, data, units = tiny
    assert len(units) and set(units["horizon"]) == {3, 12}
    xcols = [c for c in units.columns if c.startswith("x:")]
    checked = 0
    for (case_id, origin), grp in units.groupby(["case_id", "origin"]):
        d = pd.Timestamp(origin)
        cut = cs.subset([case_id]).truncate(case_id, d)
        cut_rows = build_model_data(cut, cfg, partners=data.partners).month_rows([case_id])
        at = cut_rows[cut_rows["month"] == month_index(d)]
        for _, r in grp[grp["horizon"] == 3].iterrows():
            q = data.question(case_id, r["outcome"], r["partner"] or None)
            row = at[(at["outcome_idx"] == q.outcome_idx) & (at["partner_idx"] == q.partner_idx)]
            if row.empty:  # the cut case ends at the origin month: nothing later to compare
                continue
            got = r[xcols].astype(float).to_numpy()
            np.testing.assert_allclose(got, row[xcols].to_numpy(float)[0], atol=1e-9)
            assert r["recurrence"] == pytest.approx(float(row["recurrence"].iloc[0]))
            checked += 1
    assert checked > 5


def test_units_skip_resolved_questions_and_unobserved_periods(tiny):
    cs, _, data, units = tiny
    ends = cs.cases.set_index("case_id")["window_end"]
    for r in units.itertuples(index=False):
        d = pd.Timestamp(r.origin)
        assert d + pd.DateOffset(months=int(r.horizon)) <= ends[r.case_id]
        q = data.question(r.case_id, r.outcome, r.partner or None)
        if not q.recurrent:
            assert not any(x <= d for x in q.occurrences)
        hit = any(d < x <= d + pd.DateOffset(months=int(r.horizon)) for x in q.occurrences)
        assert r.occurred == int(hit)


def test_design_blocks_and_twin(tiny):
    _, _, data, units = tiny
    des = _design(data, units)
    assert des.z.shape[0] == len(units)
    np.testing.assert_array_equal(des.z[:, des.blocks["alpha"]].sum(axis=1), 1.0)
    assert des.blocks["beta"].stop - des.blocks["beta"].start == 3 * len(data.features)
    free = des.without_evidence()
    assert np.all(free[:, des.evidence_cols] == 0)
    other = np.ones(des.z.shape[1], bool)
    other[des.evidence_cols] = False
    np.testing.assert_array_equal(free[:, other], des.z[:, other])
    assert np.any(des.z[:, des.evidence_cols] != 0)


def test_held_out_outcomes_do_not_reach_the_fit(tiny):
    """Units with weight 0 do not change the posterior: same seed, other y -> same draws."""
    _, _, data, units = tiny
    des = _design(data, units)
    compiled = CompiledModel(DirectModel(des).build_model(), sampler="numpyro")
    held = (units["cluster"] == units["cluster"].iloc[0]).to_numpy()
    w = (~held).astype(float)
    y2 = des.y.copy()
    y2[held] = 1 - y2[held]
    kw = dict(draws=50, tune=50, chains=1, seed=4, progressbar=False)
    a = compiled.sample({"z": des.z, "y": des.y, "w": w}, **kw).posterior["theta"].values
    b = compiled.sample({"z": des.z, "y": y2, "w": w}, **kw).posterior["theta"].values
    np.testing.assert_allclose(a, b)
    w[:] = 1.0  # control: with the held-out units in the fit, their y matters
    c = compiled.sample({"z": des.z, "y": des.y, "w": w}, **kw).posterior["theta"].values
    d = compiled.sample({"z": des.z, "y": y2, "w": w}, **kw).posterior["theta"].values
    assert not np.allclose(c, d)


def test_direct_backtest_end_to_end(tiny):
    cs, cfg, _, units = tiny
    s = BacktestSettings(horizons=(3, 12), draws=100, tune=100, chains=2, seed=1)
    res = run_direct_backtest(cs, cfg, settings=s, progressbar=False)
    sc = res.scores
    assert res.summary["procedure"] == "direct"
    assert len(sc) == len(units)
    n_clusters = cs.cases["country"].nunique()
    assert len(res.folds) == 2 * n_clusters
    assert res.summary["fits_total"] == 2 + (res.folds["method"] == "refit").sum()
    for col in ("p_mean", "p_mean_evidence_free", "p_mean_base_rate"):
        assert sc[col].between(0, 1).all() and sc[col].notna().all()
    assert (sc["p_q05"] <= sc["p_mean"]).all() and (sc["p_mean"] <= sc["p_q95"]).all()
    assert np.isfinite(res.summary["brier_skill_vs_evidence_free"])
    # the twin differs from the model only through the evidence
    assert not np.allclose(sc["p_mean"], sc["p_mean_evidence_free"])


def test_paired_skill_matches_hand_computation():
    keys = dict(outcome="security_accord", partner="RUS", horizon=12)
    a = pd.DataFrame([{"case_id": c, "cluster": c, "origin": "2010-01-01", "occurred": y,
                       "brier": b, **keys} for c, y, b in [("A", 1, 0.25), ("B", 0, 0.01)]])  # fmt: skip
    b = a.assign(brier=[0.36, 0.04])
    out = paired_skill(a, b, n_boot=200)
    assert out["n_forecasts"] == 2
    assert out["skill"] == pytest.approx(1 - 0.26 / 0.40)
    lo, hi = out["skill_ci90"]
    assert lo <= out["skill"] <= hi
    with pytest.raises(ValueError, match="disagree"):
        paired_skill(a, b.assign(occurred=[0, 0]))


@pytest.mark.slow
def test_importance_folds_agree_with_refits():
    """Folds by importance sampling from the all-unit fit == fits without the cluster.

    On a synthetic population (12 cases, 10 years): every fold whose weights pass the
    thresholds gives the forecasts of a fit without the cluster, within Monte Carlo error.
    """
    from neutrality_forecast.synthetic import synthetic_population

    cfg = nf.load_config()
    cs, _ = synthetic_population(n_cases=12, months=120, seed=5, config=cfg,
                                 alpha=(-5.0, -4.5, -5.0))  # fmt: skip
    base = dict(horizons=(3, 12), draws=500, tune=500, chains=2, seed=2)
    by_is = run_direct_backtest(cs, cfg, settings=BacktestSettings(**base), progressbar=False)
    by_fit = run_direct_backtest(
        cs, cfg, settings=BacktestSettings(**base, min_ess=np.inf), progressbar=False
    )
    assert set(by_fit.folds["method"]) == {"refit"}
    ok = by_is.folds.loc[by_is.folds["method"] == "psis", "cluster"].unique()
    assert len(ok) >= 3, by_is.folds
    keys = ["case_id", "outcome", "partner", "origin", "horizon"]
    m = by_is.scores.merge(by_fit.scores, on=keys, suffixes=("", "_fit"))
    m = m[m["cluster"].isin(ok)]
    assert len(m) > 50
    for col in ("p_mean", "p_mean_evidence_free"):
        np.testing.assert_allclose(m[col], m[f"{col}_fit"], atol=0.01, rtol=0.1)
