"""Backtests, scoring rules and the calibration decomposition.

The tests named ``test_fault<N>_...`` pin the ten faults of the backtest review (issue 14):
each fails on the behaviour before the fix and passes now.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from tests.conftest import TINY
from typer.testing import CliRunner

import neutrality_forecast as nf
from neutrality_forecast.backtest import (
    BacktestSettings,
    brier,
    log_score,
    murphy,
    origins_for,
    permute_dates,
    run_backtest,
    score_truth,
)
from neutrality_forecast.backtest.runner import _cluster_cases, family_rates, holdout_overlaps
from neutrality_forecast.backtest.summary import cluster_bootstrap
from neutrality_forecast.cli import app
from neutrality_forecast.forecast.horizon import question_probabilities


def _draws(data, n=200, *, alpha=-4.0, beta=0.0, seed=0):
    rng = np.random.default_rng(seed)
    k, f, q, p = len(data.outcomes), len(data.features), len(data.questions), len(data.partners)
    return {
        "alpha": np.full((n, k), alpha),
        "beta": np.full((n, k, f), beta),
        "u": np.zeros((n, q)),
        "partner": np.zeros((n, k, p)),
        "rho": np.zeros((n, k)),
        "gamma": np.zeros((n, k)),
        "sigma_q": np.abs(rng.normal(size=(n, k))),
        "sigma_shared": np.abs(rng.normal(size=n)) * 0.5,
    }


@pytest.fixture
def tiny():
    cs = nf.load_case_set(TINY)
    cfg = nf.load_config()
    return cs, cfg, nf.build_model_data(cs, cfg)


# ----------------------------------------------------------------------------- scores
def test_scores_known_values():
    p = np.array([0.0, 0.25, 1.0, 0.5])
    y = np.array([0, 1, 1, 0])
    np.testing.assert_allclose(brier(p, y), [0.0, 0.5625, 0.0, 0.25])
    np.testing.assert_allclose(log_score(p, y)[1:], [-np.log(0.25), 0.0, -np.log(0.5)], atol=1e-3)
    assert np.isfinite(log_score(np.array([0.0]), np.array([1]))).all()  # clipped, not inf


def test_murphy_identity_and_calibration():
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, 4000)
    y = rng.binomial(1, p)
    m = murphy(p, y)
    assert m["score"] == pytest.approx(m["mcb"] - m["dsc"] + m["unc"])
    assert m["mcb"] < 0.01  # calibrated by construction
    bad = murphy(np.clip(p + 0.3, 0, 1), y)
    assert bad["mcb"] > 5 * m["mcb"]


def test_fault7_corp_pools_tied_forecasts():
    # two forecast values; the lower one has the HIGHER event rate, so PAV pools both:
    # the forecasts discriminate nothing. Unpooled, PAV sorted outcomes within the ties.
    p = np.array([0.1] * 6 + [0.2] * 4)
    y = np.array([1, 1, 0, 0, 0, 0] + [1, 0, 0, 0])
    m = murphy(p, y)
    assert m["dsc"] == pytest.approx(0.0, abs=1e-12)
    assert m["score"] == pytest.approx(m["mcb"] - m["dsc"] + m["unc"])
    # untied forecasts with informative order keep their discrimination
    assert murphy(np.array([0.1, 0.2, 0.3, 0.4]), np.array([0, 0, 1, 1]))["dsc"] > 0


# ----------------------------------------------------------------------------- origins, truth
def test_origins():
    case = pd.Series(
        {"window_start": pd.Timestamp("2010-01-01"), "window_end": pd.Timestamp("2011-12-31")}
    )
    assert [o.date().isoformat() for o in origins_for(case, 6)] == [
        "2010-07-01", "2011-01-01", "2011-07-01",
    ]  # fmt: skip
    assert [o.date().isoformat() for o in origins_for(case, 6, min_horizon=6)] == [
        "2010-07-01", "2011-01-01",
    ]  # fmt: skip


def _frame(case_id, outcome, partner, origin, horizons):
    return pd.DataFrame(
        [{"case_id": case_id, "outcome": outcome, "partner": partner, "origin": origin,
          "horizon": h, "p_mean": 0.1} for h in horizons]
    )  # fmt: skip


def test_fault1_outcome_in_origin_month_is_a_hit(tiny):
    cs, _, _ = tiny
    # XTA's revision is on 2014-06-15; an origin on 2014-06-01 must score it at every horizon
    got = score_truth(cs, _frame("XTA", "neutrality_revision", "", "2014-06-01", [1, 3]))
    assert got["occurred"].tolist() == [1, 1]
    # the day after the outcome it is no longer in the period
    got = score_truth(cs, _frame("XTA", "neutrality_revision", "", "2014-06-15", [3]))
    assert got["occurred"].tolist() == [0]


def test_fault6_only_fully_observed_periods_are_scored(tiny):
    cs, _, _ = tiny
    # XTC's window ends 2018-06-30: a 12-month forecast from 2018-01-01 runs past it and is
    # dropped whatever happened; a 3-month one is kept
    got = score_truth(cs, _frame("XTC", "security_accord", "RUS", "2018-01-01", [3, 12]))
    assert got["horizon"].tolist() == [3]
    # XTA's accord happened (2015-03-01) but a forecast running past the window end is
    # still dropped: keeping it only when the event happened would bias toward hits
    got = score_truth(cs, _frame("XTA", "security_accord", "USA", "2016-06-01", [24]))
    assert got.empty


def test_recurrent_questions_score_a_new_occurrence():
    from tests.test_recurrent import two_occurrence_set

    cs = two_occurrence_set()
    got = score_truth(cs, _frame("RCA", "security_accord", "RUS", "2012-06-01", [3, 12, 24]))
    # occurrences on 2012-07-10 and 2013-11-02
    assert got["occurred"].tolist() == [1, 1, 1]
    got = score_truth(cs, _frame("RCA", "security_accord", "RUS", "2012-08-01", [3, 12]))
    assert got["occurred"].tolist() == [0, 0]


def test_fault1_forecast_covers_rest_of_as_of_month(tiny):
    cs, cfg, data = tiny
    cfg = cfg.with_updates(forecast={"future_evidence": "none"})
    draws = _draws(data, alpha=-3.0)
    qs = nf.model.data.questions_at(cs, "XTC", pd.Timestamp("2015-03-18"), cfg, data)
    res = question_probabilities(
        qs, draws, config=cfg, link_outcomes=[], as_of=pd.Timestamp("2015-03-18"),
        horizons=[1, 6, 12], evidence=False,
    )  # fmt: skip
    h = 1 / (1 + np.exp(3.0))
    for i, months in enumerate([1, 6, 12]):
        # exposure (1 - 18/31) + (months - 1) full months + 18/31 = exactly `months` months
        expected = 1 - (1 - h) ** months
        np.testing.assert_allclose(res["marginal"][:, i, 0], expected, rtol=1e-10)


def test_fault1_target_date_is_as_of_plus_horizon(monkeypatch):
    from tests.helpers import mock_fit

    cs = nf.load_case_set(TINY)
    fitted = mock_fit(cs, monkeypatch=monkeypatch)
    fc = nf.make_forecast(fitted, "XTC", as_of="2015-03-18", horizons=[3])
    assert set(fc.table["target_date"]) == {"2015-06-18"}


# ----------------------------------------------------------------------------- timing
def test_fault2_month_and_year_precision_known_at_end_of_period(tiny):
    cs, cfg, _ = tiny
    ev = cs.events.copy()
    i = ev.index[ev["event_id"] == "XTA-E001"][0]
    ev.loc[i, "date"] = pd.Timestamp("2012-01-01")
    ev["date_precision"] = (
        ev["date_precision"].cat.add_categories([]) if False else ev["date_precision"]
    )
    ev.loc[i, "date_precision"] = "month"
    cs2 = nf.CaseSet(cs.cases, cs.outcomes, ev)
    # an origin on the first of the month does not know a month-precision event of that month
    assert "XTA-E001" not in set(cs2.truncate("XTA", "2012-01-01").events["event_id"])
    assert "XTA-E001" in set(cs2.truncate("XTA", "2012-01-31").events["event_id"])
    # a year-precision event becomes known on 31 December: it enters the inflow in December
    ev.loc[i, "date_precision"] = "year"
    cs3 = nf.CaseSet(cs.cases, cs.outcomes, ev)
    assert "XTA-E001" not in set(cs3.truncate("XTA", "2012-06-30").events["event_id"])
    q = nf.build_model_data(cs3, cfg).question("XTA", "security_accord", "USA")
    pos = q.evidence.event_ids.index("XTA-E001")
    assert q.evidence.event_months[pos] == 2012 * 12 + 11


def test_fault3_features_are_causal_and_identical_in_training_and_forecasting(tiny):
    cs, cfg, data = tiny
    q = data.question("XTA", "security_accord", "USA")
    rows = nf.model.data.question_rows(q, data.link_outcomes, cfg, data.partners)
    xcols = [c for c in rows.columns if c.startswith("x:")]
    for as_of in ("2012-04-30", "2013-09-30", "2014-12-31"):
        t = pd.Timestamp(as_of)
        m = t.year * 12 + t.month - 1
        cut = nf.model.data.questions_at(cs, "XTA", t, cfg, data)
        qc = next(x for x in cut if x.label == q.label)
        rows_cut = nf.model.data.question_rows(qc, data.link_outcomes, cfg, data.partners)
        # the covariates of every month up to the cut are the same with or without the
        # later events: nothing after a month informs it (intensity factor included)
        full = rows[rows["month"] <= m][xcols].to_numpy()
        np.testing.assert_allclose(rows_cut[xcols].to_numpy(), full, atol=1e-12)


# ----------------------------------------------------------------------------- history
def test_fault4_case_history_informs_its_forecast(tiny):
    """Fold draws weight fresh case effects by the case's pre-origin likelihood."""
    from neutrality_forecast.backtest.folds import cluster_state, fold_draws

    cs, cfg, data = tiny
    draws = _draws(data, n=400, alpha=-5.0)
    draws["sigma_q"][:] = 1.5
    draws["sigma_shared"][:] = 0.0
    rng = np.random.default_rng(1)
    state = cluster_state(draws, data, ["XTB"], evidence=True, n_effects=64, rng=rng,
                          remove=False)  # fmt: skip
    q = data.question("XTB", "foreign_basing", "RUS")
    early = nf.model.data.questions_at(cs, "XTB", pd.Timestamp("2010-02-01"), cfg, data)
    late = nf.model.data.questions_at(cs, "XTB", pd.Timestamp("2014-01-01"), cfg, data)
    d_early, _ = fold_draws(draws, state, early, data, evidence=True, n_out=2000, rng=rng,
                            min_ess=10)  # fmt: skip
    d_late, _ = fold_draws(draws, state, late, data, evidence=True, n_out=2000, rng=rng,
                           min_ess=10)  # fmt: skip
    # before anything happened the effect is near its prior; after a basing occurrence at a
    # low base rate the case's own history pulls its effect up (the prior-only backtest
    # ignored this)
    assert abs(d_early["u"][:, q.q_idx].mean()) < 0.3
    assert d_late["u"][:, q.q_idx].mean() > d_early["u"][:, q.q_idx].mean() + 0.5


def test_fault5_clusters_left_out_together(tiny_copy):
    text = (tiny_copy / "cases.csv").read_text().splitlines()
    text[0] += ",cluster"
    text[1:] = [
        line + ("," + ("AB" if line.startswith(("XTA", "XTB")) else "")) for line in text[1:]
    ]
    (tiny_copy / "cases.csv").write_text("\n".join(text) + "\n")
    cs = nf.load_case_set(tiny_copy)
    groups = _cluster_cases(cs)
    assert groups == {"AB": ["XTA", "XTB"], "XTC": ["XTC"]}  # empty cell: the country
    # bootstrap resamples clusters, not cases
    scores = pd.DataFrame({"cluster": ["AB", "AB", "XTC"], "brier": [0.1, 0.2, 0.3],
                           "brier_base_rate": [0.2, 0.2, 0.3],
                           "brier_evidence_free": [0.1, 0.3, 0.3]})  # fmt: skip
    assert cluster_bootstrap(scores, n_boot=50)["n_units"] == 2


def test_fault5_cluster_members_starting_later_are_skipped_until_they_start(tiny_copy, mocked):
    # XTA (2010-) and XTC (2012-) in one cluster: XTA's 2011 origin knows nothing of XTC
    text = (tiny_copy / "cases.csv").read_text().splitlines()
    text[0] += ",cluster"
    text[1:] = [
        line + ("," + ("AC" if line.startswith(("XTA", "XTC")) else "")) for line in text[1:]
    ]
    (tiny_copy / "cases.csv").write_text("\n".join(text) + "\n")
    cs = nf.load_case_set(tiny_copy)
    res = run_backtest(cs, nf.load_config(), settings=SMALL, progressbar=False)
    assert "2011-01-01" in set(res.scores.loc[res.scores["case_id"] == "XTA", "origin"])
    assert set(res.scores["cluster"]) == {"AC", "XTB"}


def test_fault5_external_refuses_overlapping_holdout(tiny_copy):
    cs = nf.load_case_set(TINY)
    train = cs.subset(["XTA", "XTB"])
    hold = nf.load_case_set(tiny_copy).subset(["XTC"])
    assert holdout_overlaps(train, hold) == {}
    # same country, overlapping window: refused
    clash = hold.cases.copy()
    clash["country"] = "XTA"
    hold2 = nf.CaseSet(clash, hold.outcomes, hold.events)
    assert holdout_overlaps(train, hold2) == {"XTC": ["XTA"]}
    with pytest.raises(ValueError, match="overlap"):
        run_backtest(train, nf.load_config(), mode="external", holdout=hold2, progressbar=False)


# ----------------------------------------------------------------------------- forecasts
def test_fault8_conditional_is_the_predictive_ratio(monkeypatch):
    from tests.helpers import mock_fit

    cs = nf.load_case_set(TINY)
    fitted = mock_fit(cs, monkeypatch=monkeypatch)
    fc = nf.make_forecast(fitted, "XTC", horizons=[12, 24])
    j = fc.joint
    rev, bas = "XTC|neutrality_revision", "XTC|foreign_basing|CHN"
    for h in (12, 24):
        jh = j[j["horizon_months"] == h]
        both = jh[(jh[rev] == 1) & (jh[bas] == 1)]["p_mean"].sum()
        r = jh[jh[rev] == 1]["p_mean"].sum()
        c = fc.conditional
        got = c[(c["horizon_months"] == h) & c["quantity"].str.contains(r"\| neutrality_revision")]
        assert got["p_mean"].iloc[0] == pytest.approx(both / r, rel=1e-9)


def test_fault9_future_evidence_is_simulated_per_draw(tiny):
    from neutrality_forecast.forecast.horizon import simulate_arrivals

    cs, cfg, data = tiny
    as_of = pd.Timestamp("2016-06-10")
    qs = nf.model.data.questions_at(cs, "XTA", as_of, cfg, data)
    sim = simulate_arrivals(qs, as_of=as_of, n_months=13, n_draws=4000, recent_months=24,
                            seed=3)  # fmt: skip
    counts, recent = sim
    months = qs[0].evidence.event_months[recent]
    m0 = as_of.year * 12 + as_of.month - 1
    # the rate comes from full months before the as-of month (not the nearly empty one)
    assert (months < m0).all() and (months >= m0 - 24).all()
    rate = len(recent) / 24
    np.testing.assert_allclose(counts[:, 1:].sum(-1).mean(), rate, rtol=0.1)
    assert counts[:, 0].sum(-1).mean() < rate  # only the rest of the as-of month
    # per-draw evidence differs, so forecasts carry the uncertainty of future evidence
    draws = _draws(data, n=4000, beta=0.8)
    res = question_probabilities(qs, draws, config=cfg, link_outcomes=[], as_of=as_of,
                                 horizons=[12], seed=3)  # fmt: skip
    cfg_none = cfg.with_updates(forecast={"future_evidence": "none"})
    none = question_probabilities(qs, draws, config=cfg_none, link_outcomes=[], as_of=as_of,
                                  horizons=[12], seed=3)  # fmt: skip
    i = res["labels"].index("XTA|security_accord|USA")
    assert res["marginal"][:, 0, i].std() > 1e-4
    assert none["marginal"][:, 0, i].std() < 1e-12
    assert res["marginal"][:, 0, i].mean() > none["marginal"][:, 0, i].mean()


def test_fault10_own_threats_are_not_threats_against_the_state():
    from neutrality_forecast.evidence import EventArrays, category_matrix

    cfg = nf.load_config().evidence
    ev = pd.DataFrame(
        {"event_id": ["a", "b"], "date": pd.to_datetime(["2015-01-01"] * 2),
         "date_precision": ["day", "day"], "actor": ["TKM", "AFG"], "recipient": ["AFG", "TKM"],
         "event_type": ["THREATEN", "THREATEN"], "contexts": ["military", "military"],
         "source_reliability": ["A", "A"], "info_credibility": ["1", "1"]}
    )  # fmt: skip
    j = cfg.category_names.index("security_threat")
    m = category_matrix(EventArrays.from_frame(ev, cfg), "TKM", "RUS", cfg)
    assert m[:, j].tolist() == [0.0, 1.0]


# ----------------------------------------------------------------------------- runs
def test_base_rate_excludes_evaluated_cluster(tiny):
    _, _, data = tiny
    k = data.outcomes.index("foreign_basing")
    assert family_rates(data, [])[k] > 0  # XTB's basing occurred
    assert family_rates(data, ["XTB"])[k] == 0  # ...and is not counted when XTB is evaluated


def test_permute_dates_keeps_counts_and_mix(tiny):
    cs, _, _ = tiny
    perm = permute_dates(cs, np.random.default_rng(0))
    for case in cs.case_ids:
        a, b = cs.events_of(case), perm.events_of(case)
        assert sorted(a["date"]) == sorted(b["date"])
        assert sorted(a["event_type"].astype(str)) == sorted(b["event_type"].astype(str))
    assert not (cs.events["date"].to_numpy() == perm.events["date"].to_numpy()).all()


SMALL = BacktestSettings(origin_step_months=12, horizons=(6, 12), draws=40, chains=2,
                         sampler="pymc", n_effects=8, n_out=100, min_ess=20)  # fmt: skip


def test_run_backtest_loco_structure(mocked):
    cs = nf.load_case_set(TINY)
    res = run_backtest(cs, nf.load_config(), settings=SMALL, progressbar=False)
    s = res.scores
    for col in ("case_id", "cluster", "outcome", "partner", "origin", "horizon", "p_mean",
                "occurred", "brier", "log_score", "p_mean_base_rate", "p_mean_evidence_free",
                "brier_base_rate", "brier_evidence_free"):  # fmt: skip
        assert col in s.columns, col
    assert set(s["case_id"]) == {"XTA", "XTB", "XTC"}
    assert s["occurred"].isin([0, 1]).all()
    summ = res.summary
    for key in ("brier", "log_score", "brier_base_rate", "brier_skill", "n_forecasts",
                "per_outcome", "per_horizon", "murphy", "brier_skill_ci90",
                "n_events_per_family", "folds"):  # fmt: skip
        assert key in summ, key
    assert summ["brier_skill"] == pytest.approx(1 - summ["brier"] / summ["brier_base_rate"])
    assert summ["n_forecasts"] == len(s)
    assert summ["folds"]["n"] == len(res.folds)
    parts = summ["seconds_by_part"]  # where the run's time went
    assert {"full_fits", "weights", "questions", "forecast", "refits"} <= set(parts)
    assert (
        all(v >= 0 for v in parts.values()) and sum(parts.values()) <= summ["seconds"] + 0.3
    )  # rounding
    ends = {"XTA": "2016-12-31", "XTB": "2016-12-31", "XTC": "2018-06-30"}
    target = pd.to_datetime(s["origin"]) + s["horizon"].map(lambda h: pd.DateOffset(months=h))
    assert (target <= s["case_id"].map(lambda c: pd.Timestamp(ends[c]))).all()
    assert len(res.scores_long) == 3 * len(s)


def test_external_mode(mocked, tiny_copy):
    cs = nf.load_case_set(TINY)
    holdout = nf.load_case_set(tiny_copy).subset(["XTA"])
    res = run_backtest(cs.subset(["XTB", "XTC"]), nf.load_config(), mode="external",
                       holdout=holdout, settings=SMALL, progressbar=False)  # fmt: skip
    assert set(res.scores["case_id"]) == {"XTA"}
    assert res.summary["n_forecasts"] == len(res.scores)


def test_backtest_cli_writes_outputs(mocked, tmp_path):
    out = tmp_path / "bt"
    result = CliRunner().invoke(
        app, ["backtest", "--cases", str(TINY), "--draws", "40", "--chains", "2", "--out",
              str(out), "--replay", "XTC", "--horizons", "6,12", "--origin-step-months", "12",
              "--sampler", "pymc", "--placebo", "1"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    for name in ("scores.csv", "summary.json", "fits.csv", "folds.csv", "reliability.png",
                 "replay_XTC.csv", "replay_XTC_h6.png"):  # fmt: skip
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["horizons"] == [6, 12]
    assert summary["placebo"]["n"] == 1
    assert 0 <= summary["placebo"]["percentile_vs_evidence_free"] <= 100
    replay_rows = pd.read_csv(out / "replay_XTC.csv")
    assert {"as_of", "outcome", "horizon_months", "p_mean", "p_q05", "p_q95"} <= set(
        replay_rows.columns
    )


def test_backtest_cli_bad_input(tiny_copy, tmp_path):
    (tiny_copy / "events.csv").write_text("nonsense\n")
    result = CliRunner().invoke(
        app, ["backtest", "--cases", str(tiny_copy), "--out", str(tmp_path / "x")]
    )
    assert result.exit_code == 2
    assert not (tmp_path / "x").exists()


def test_real_time_replay_cuts_every_case_at_each_origin(mocked, monkeypatch):
    """``--real-time``: each origin refits on what was known then (every case cut there)."""
    from neutrality_forecast.backtest import replay as replay_mod

    seen = []
    original = replay_mod._Runner.fit

    def spy(self, cs, *, evidence, seed, tag, exclude=()):
        seen.append((tag, cs, tuple(exclude)))
        return original(self, cs, evidence=evidence, seed=seed, tag=tag, exclude=exclude)

    monkeypatch.setattr(replay_mod._Runner, "fit", spy)
    cs = nf.load_case_set(TINY)
    out = replay_mod.case_replay(cs, nf.load_config(), case_id="XTC", step_months=12,
                                 horizons=[6], settings=SMALL, real_time=True)  # fmt: skip
    origins = sorted(pd.to_datetime(out["as_of"]).unique())
    assert len(seen) == len(origins) >= 2  # one fit per origin
    assert out.attrs["real_time"]
    for origin, (tag, cut, exclude) in zip(origins, seen, strict=True):
        assert str(origin.date()) in tag
        kept = cut.events[~cut.events["case_id"].isin(exclude)]
        assert (kept["date"] < origin).all()  # later events dropped, every case
        occ = cut.outcomes[cut.outcomes["occurred"].astype(bool)]
        assert (pd.to_datetime(occ["occurred_on"]) < origin).all()  # later outcomes reopened
    # the full-hindsight replay differs from the real-time one
    hind = replay_mod.case_replay(cs, nf.load_config(), case_id="XTC", step_months=12,
                                  horizons=[6], settings=SMALL)  # fmt: skip
    assert not hind.attrs["real_time"]
