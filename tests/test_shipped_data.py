"""The shipped reference population (data/cases) and its coding log (data/coverage.csv)."""

from __future__ import annotations

import pandas as pd
import pytest

import neutrality_forecast as nf
from neutrality_forecast.casesets.audit import coverage_gaps, run_up_ratios
from neutrality_forecast.paths import default_cases_dir

ORIGINAL = {
    "TKM", "FIN-2022", "SWE-2022", "UKR-2014", "MDA", "MNG", "SRB", "AUT", "CHE", "KGZ-2001",
    "UZB-2001", "KGZ-2003", "DJI-2015", "KHM-2017", "TJK-2016", "SLB-2022",
}  # fmt: skip
NEW = {
    "IRL", "CRI", "AZE-2021", "VNM", "IND-2016", "IDN", "LAO", "CAF-2018", "MLI-2019",
    "SDN-2020", "SYR-2015", "ARM-2010", "KGZ-2012", "NIC", "EGY-2017", "NER-2024", "MOZ-2019",
    "VEN", "KAZ", "NAM-2015", "MMR", "KIR", "FJI", "PNG-2023", "MDV", "SYC-2015", "MUS-2015",
    "PHL-2014", "POL-2020", "ROU-2011", "QAT-2014", "SOM-2017",
}  # fmt: skip
REGIONAL = {"AZE-2021": "TUR", "FJI": "AUS", "PNG-2023": "AUS", "MDV": "IND", "SYC-2015": "IND",
            "MUS-2015": "IND", "QAT-2014": "TUR", "SOM-2017": "TUR", "SLB-2022": "AUS"}  # fmt: skip


@pytest.fixture(scope="module")
def cs():
    return nf.load_case_set(default_cases_dir())


def test_exactly_the_48_cases(cs):
    assert set(cs.case_ids) == ORIGINAL | NEW
    assert len(cs.case_ids) == 48


def test_questions_follow_the_rule(cs):
    for case in cs.cases.itertuples(index=False):
        outs = cs.outcomes_of(case.case_id)
        partners = {"RUS", "CHN", "USA"} | (
            {REGIONAL[case.case_id]} if case.case_id in REGIONAL else set()
        )
        for family in ("security_accord", "foreign_basing"):
            got = set(outs.loc[outs["outcome"] == family, "partner"])
            assert got == partners, (case.case_id, family, got)
        has_rev = (outs["outcome"] == "neutrality_revision").any()
        assert has_rev == (str(case.neutrality_status) != "none"), case.case_id


def test_every_case_year_has_every_pass(cs):
    cov = pd.read_csv(default_cases_dir().parent / "coverage.csv")
    gaps = coverage_gaps(cs, cov)
    assert gaps.empty, gaps.head()
    assert (cov["events_found"] >= 0).all()
    # events_found of the event passes adds up to no more than the protocol events coded
    coded = cs.events[cs.events["coder"] == "protocol-v2"]
    assert cov[cov["pass"].str.match(r"^(P|Q)")]["events_found"].sum() <= len(coded) + 20


def test_coder_names_the_pass_and_resolutions_cite_sources(cs):
    assert set(cs.events["coder"]) == {"protocol-v2", "v1"}
    assert (cs.outcomes["source"].str.strip() != "").all()
    assert (cs.outcomes["resolution_note"].str.strip() != "").all()
    assert (cs.events["source"].str.strip() != "").all()
    steps = cs.events["outcome_step"].replace("", None).dropna()
    assert len(steps) >= 20 and set(steps) <= set(nf.casesets.schema.OUTCOMES)


def test_clusters_group_overlapping_windows(cs):
    cl = cs.clusters
    assert cl["FIN-2022"] == cl["SWE-2022"]
    assert cl["KGZ-2001"] == cl["KGZ-2003"] == cl["KGZ-2012"] == cl["UZB-2001"]
    assert cl["TKM"] == "TKM"


def test_known_caveats_fixed(cs):
    ev = cs.events.set_index("event_id")
    assert ev.loc["TKM-E048", "date"] == pd.Timestamp("2018-09-10")
    assert ev.loc["DJI-2015-E007", "date"] == pd.Timestamp("2016-01-21")
    assert ev.loc["DJI-2015-E007", "date_precision"] == "day"
    tkm = cs.outcomes_of("TKM")
    acc = tkm[(tkm["outcome"] == "security_accord") & (tkm["partner"] == "RUS")]
    assert "2017-10-02" in set(acc["occurred_on"].dt.strftime("%Y-%m-%d"))
    notes = " ".join(tkm["resolution_note"])
    assert "2022" in notes and "2025" in notes  # the 2022 declaration and 2025 programme judged


def test_mission_questions_and_seed_events(cs):
    tkm = cs.outcomes_of("TKM")
    assert {
        ("neutrality_revision", None),
        ("security_accord", "RUS"),
        ("foreign_basing", "CHN"),
    } <= {
        (o, None if pd.isna(p) else p) for o, p in zip(tkm["outcome"], tkm["partner"], strict=True)
    }
    ev = cs.events_of("TKM")
    assert len(ev) >= 60
    assert ev["summary"].str.contains("Shoigu").any()
    assert ev["summary"].str.contains("Gazprom").any()


def test_run_up_ratio_reported(cs):
    r = run_up_ratios(cs)
    assert len(r) >= 30 and r["ratio"].notna().sum() >= 30
    assert 0.5 < r["ratio"].mean() < 1.5  # reported in data/README.md
