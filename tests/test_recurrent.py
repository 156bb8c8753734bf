"""Contract version 2 and recurrent questions: validation, counting process, forecasts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import neutrality_forecast as nf
from neutrality_forecast.casesets import CaseSet
from neutrality_forecast.cli import app
from neutrality_forecast.forecast.horizon import question_probabilities
from neutrality_forecast.model.data import question_rows

CASES = """case_id,country,label,window_start,window_end,neutrality_status,cluster
RCA,XRA,"Recurrent A",2010-01-01,2016-12-31,declared,
RCB,XRB,"Recurrent B",2011-01-01,2017-06-30,none,RC
RCC,XRC,"Recurrent C",2012-01-01,2017-06-30,none,RC
"""
OUTCOMES = """case_id,outcome,partner,occurred,occurred_on,resolution_note,source
RCA,neutrality_revision,,false,,none,test
RCA,security_accord,RUS,true,2012-07-10,first treaty,test
RCA,security_accord,RUS,true,2013-11-02,second treaty,test
RCA,security_accord,CHN,false,,none,test
RCA,foreign_basing,RUS,true,2014-05-20,lease,test
RCB,security_accord,USA,false,,none,test
RCB,foreign_basing,USA,true,2013-03-01,access,test
RCB,foreign_basing,USA,true,2016-09-09,extension,test
RCC,security_accord,RUS,false,,none,test
"""
EVENTS = """event_id,case_id,date,date_precision,actor,recipient,event_type,contexts,source,source_reliability,info_credibility,summary,outcome_step
RCA-E1,RCA,2012-03-01,month,XRA,RUS,CONSULT,diplomatic;military,test,A,1,talks,security_accord
RCA-E2,RCA,2013-05-05,day,RUS,XRA,AGREE,military,test,A,1,deal,
RCB-E1,RCB,2012-01-01,year,USA,XRB,COOPERATE,military,test,B,2,exercise,
RCB-E2,RCB,2016-08-01,day,XRB,USA,CONSULT,military,test,A,1,site survey,foreign_basing
RCC-E1,RCC,2015-02-02,day,RUS,XRC,CONSULT,military,test,A,1,visit,
"""


def write_set(folder, cases=CASES, outcomes=OUTCOMES, events=EVENTS):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cases.csv").write_text(cases)
    (folder / "outcomes.csv").write_text(outcomes)
    (folder / "events.csv").write_text(events)
    return folder


def two_occurrence_set() -> CaseSet:
    """A small version 2 case set with recurrent accords and basing (in memory)."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        return nf.load_case_set(write_set(Path(tmp) / "rc"))


# ----------------------------------------------------------------------------- contract
def test_v2_set_validates_and_v1_reads_unchanged(tmp_path, tiny_dir):
    cs = nf.load_case_set(write_set(tmp_path / "rc"))
    assert len(cs.outcomes) == 9
    assert cs.clusters == {"RCA": "XRA", "RCB": "RC", "RCC": "RC"}
    assert list(cs.events["outcome_step"]) == ["security_accord", "", "", "foreign_basing", ""]
    old = nf.load_case_set(tiny_dir)  # version 1 files: no cluster, no outcome_step
    assert old.clusters == {"XTA": "XTA", "XTB": "XTB", "XTC": "XTC"}


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        # a second revision row: one-time family
        ("RCA,neutrality_revision,,false,,none,test\n",
         "RCA,neutrality_revision,,false,,none,test\nRCA,neutrality_revision,,false,,again,test\n",
         "outcomes.csv:2:outcome"),
        # true and false rows mixed for one question
        ("RCA,security_accord,CHN,false,,none,test\n",
         "RCA,security_accord,CHN,false,,none,test\nRCA,security_accord,CHN,true,2014-01-01,x,test\n",
         "outcomes.csv:4:occurred"),
        # the same occurrence date twice
        ("RCA,security_accord,RUS,true,2013-11-02,second treaty,test\n",
         "RCA,security_accord,RUS,true,2012-07-10,second treaty,test\n",
         "outcomes.csv:3:occurred_on"),
        # an occurrence outside the window
        ("RCB,foreign_basing,USA,true,2016-09-09,extension,test\n",
         "RCB,foreign_basing,USA,true,2018-09-09,extension,test\n",
         "outcomes.csv:8:occurred_on"),
    ],
)  # fmt: skip
def test_v2_outcome_rules(tmp_path, old, new, where):
    folder = write_set(tmp_path / "rc", outcomes=OUTCOMES.replace(old, new))
    with pytest.raises(nf.CaseSetError) as info:
        nf.load_case_set(folder)
    assert where in str(info.value), str(info.value)


def test_v2_unknown_outcome_step_and_bad_cluster(tmp_path):
    folder = write_set(tmp_path / "rc", events=EVENTS.replace("site survey,foreign_basing",
                                                              "site survey,military_base"))  # fmt: skip
    with pytest.raises(nf.CaseSetError, match=r"events.csv:4:outcome_step"):
        nf.load_case_set(folder)
    folder = write_set(tmp_path / "rc2", cases=CASES.replace("none,RC\nRCC", "none,R C\nRCC"))
    with pytest.raises(nf.CaseSetError, match=r"cases.csv:2:cluster"):
        nf.load_case_set(folder)


def test_v2_same_family_several_partners_is_not_a_duplicate(tmp_path):
    cs = nf.load_case_set(write_set(tmp_path / "rc"))
    qs = nf.build_model_data(cs, nf.load_config()).questions_of("RCA")
    assert sorted(q.label for q in qs) == [
        "RCA|foreign_basing|RUS", "RCA|neutrality_revision", "RCA|security_accord|CHN",
        "RCA|security_accord|RUS",
    ]  # fmt: skip


def test_validate_cli_accepts_v2(tmp_path):
    result = CliRunner().invoke(app, ["validate", str(write_set(tmp_path / "rc"))])
    assert result.exit_code == 0, result.output


# ----------------------------------------------------------------------------- counting process
def test_counting_process_rows():
    cs = two_occurrence_set()
    cfg = nf.load_config()
    data = nf.build_model_data(cs, cfg)
    q = data.question("RCA", "security_accord", "RUS")
    rows = question_rows(q, data.link_outcomes, cfg, data.partners)
    # at risk over the whole window (after each occurrence, for the next one)
    assert len(rows) == 7 * 12
    occ = rows[rows["y"] == 1]["month"].tolist()
    assert occ == [2012 * 12 + 6, 2013 * 12 + 10]
    # log1p(earlier occurrences): 0 up to the first, log 2 after it, log 3 after the second
    rec = rows.set_index("month")["recurrence"]
    assert rec[2012 * 12 + 6] == 0.0
    assert rec[2012 * 12 + 7] == pytest.approx(np.log(2))
    assert rec[2013 * 12 + 11] == pytest.approx(np.log(3))
    assert data.y.sum() == 5  # every occurrence counts once
    # partial last month: RCB's window ends on 30 June (a whole month), RCA's on 31 Dec
    assert rows["trials"].max() == 1.0


def test_precursor_steps_reach_the_question():
    cs = two_occurrence_set()
    data = nf.build_model_data(cs, nf.load_config())
    acc = data.question("RCA", "security_accord", "RUS")
    other = data.question("RCA", "security_accord", "CHN")
    assert acc.evidence.steps.sum() > 0  # step toward an accord, with RUS as recipient
    assert other.evidence.steps.sum() == 0  # not a step toward an accord with China


def test_recurrent_forecast_reports_new_occurrence_and_last(monkeypatch):
    from tests.helpers import mock_fit

    cs = two_occurrence_set()
    fitted = mock_fit(cs, monkeypatch=monkeypatch)
    fc = nf.make_forecast(fitted, "RCA", horizons=[6, 12])
    t = fc.table.set_index(["question", "horizon_months"])
    row = t.loc[("RCA|security_accord|RUS", 12)]
    assert row["status"] == "forecast"
    assert row["last_occurred_on"] == "2013-11-02"
    assert row["occurrences"] == 2
    assert 0 < row["p_mean"] < 1
    assert (fc.table[["p_mean", "p_q05", "p_q95"]].to_numpy() <= 1.0).all()
    assert (fc.table[["p_mean", "p_q05", "p_q95"]].to_numpy() >= 0.0).all()
    # the joint table uses the same event definition (a new occurrence)
    j = fc.joint[fc.joint["horizon_months"] == 12]
    assert j["p_mean"].sum() == pytest.approx(1.0)
    marg = j[j["RCA|security_accord|RUS"] == 1]["p_mean"].sum()
    assert marg == pytest.approx(row["p_mean"], rel=1e-9)


def test_probabilities_stay_in_unit_interval_when_resolved(monkeypatch):
    from tests.helpers import mock_fit

    cs = nf.load_case_set(nf.default_cases_dir())
    sub = cs.subset([c for c in cs.case_ids if c in ("TKM", "FIN-2022", "SWE-2022")])
    fitted = mock_fit(sub, monkeypatch=monkeypatch)
    fc = nf.make_forecast(fitted, "FIN-2022", horizons=[12])
    vals = fc.table[["p_mean", "p_median", "p_q05", "p_q95"]].to_numpy()
    assert (vals >= 0).all() and (vals <= 1).all()
    rev = fc.table[fc.table["outcome"] == "neutrality_revision"]
    assert (rev["status"] == "resolved").all() and (rev["p_q95"] == 1.0).all()


def test_recurrence_lowers_or_raises_hazard_by_rho():
    cs = two_occurrence_set()
    cfg = nf.load_config()
    data = nf.build_model_data(cs, cfg)
    n, k = 100, len(data.outcomes)
    draws = {"alpha": np.full((n, k), -4.0), "beta": np.zeros((n, k, len(data.features))),
             "u": np.zeros((n, len(data.questions))), "partner": np.zeros((n, k, len(data.partners))),
             "rho": np.zeros((n, k)), "gamma": np.zeros((n, k))}  # fmt: skip
    qs = data.questions_of("RCA")
    base = question_probabilities(qs, draws, config=cfg, link_outcomes=[], as_of=pd.Timestamp("2016-12-31"),
                                  horizons=[12], evidence=False)  # fmt: skip
    draws["rho"][:, data.outcomes.index("security_accord")] = 1.0
    up = question_probabilities(qs, draws, config=cfg, link_outcomes=[], as_of=pd.Timestamp("2016-12-31"),
                                horizons=[12], evidence=False)  # fmt: skip
    i = base["labels"].index("RCA|security_accord|RUS")
    j = base["labels"].index("RCA|security_accord|CHN")
    assert up["marginal"][0, 0, i] > base["marginal"][0, 0, i]  # two earlier treaties
    assert up["marginal"][0, 0, j] == pytest.approx(base["marginal"][0, 0, j])  # none earlier


# ----------------------------------------------------------------------------- recovery
def _coverage(n_sims: int, draws: int, seed: int) -> tuple[int, int]:
    from neutrality_forecast.synthetic import synthetic_population

    cfg = nf.load_config().with_updates(features={"blocks": []})
    hits = total = 0
    for i in range(n_sims):
        cs, truth = synthetic_population(n_cases=12, months=120, seed=seed + i, config=cfg,
                                         alpha=(-5.5, -4.2, -5.0), rho=(0.4, 0.3))  # fmt: skip
        fitted = nf.fit(cs, cfg, draws=draws, tune=draws, chains=2, seed=seed + i,
                        progressbar=False)  # fmt: skip
        post = fitted.idata.posterior
        checks = [(post["alpha"].values[..., k], truth.alpha[k]) for k in range(3)]
        checks += [(post["rho"].values[..., r], truth.rho[r + 1]) for r in range(2)]
        for values, true in checks:
            lo, hi = np.quantile(values, [0.05, 0.95])
            hits += int(lo <= true <= hi)
            total += 1
    return hits, total


def test_counting_process_recovers_known_hazards():
    """Data simulated from known hazards (several occurrences per question) are recovered:
    family intercepts and recurrence effects inside their 90 % intervals."""
    hits, total = _coverage(n_sims=2, draws=300, seed=11)
    assert hits >= total - 2, (hits, total)  # 10 intervals at 90 %: >= 8 covered w.p. 0.93


@pytest.mark.slow
def test_counting_process_recovery_nominal_rate():
    hits, total = _coverage(n_sims=20, draws=500, seed=100)
    assert 0.8 <= hits / total <= 0.98, (hits, total)
