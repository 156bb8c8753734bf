"""What-if scenarios: hypothetical events enter exactly like real ones, same draws."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests.conftest import TINY, snapshot
from tests.helpers import mock_fit
from typer.testing import CliRunner

import neutrality_forecast as nf
from neutrality_forecast.casesets import CaseSetError
from neutrality_forecast.cli import app
from neutrality_forecast.model import build_model_data
from neutrality_forecast.scenario import read_scenario_events, scenario_evidence

COLS = ["event_id", "case_id", "date", "date_precision", "actor", "recipient", "event_type",
        "contexts", "source", "source_reliability", "info_credibility", "summary"]  # fmt: skip


def event(event_id="HYP-1", date="2018-09-15", **kw) -> dict:
    base = dict(event_id=event_id, case_id="XTC", date=date, date_precision="day", actor="XTC",
                recipient="CHN", event_type="AGREE", contexts="military", source="Hypothetical",
                source_reliability="B", info_credibility="2", summary="Hypothetical accord.")  # fmt: skip
    return {**base, **kw}


def frame(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=COLS)


@pytest.fixture(scope="module")
def cases():
    return nf.load_case_set(TINY)


@pytest.fixture(scope="module")
def fitted(cases):
    with pytest.MonkeyPatch.context() as mp:
        return mock_fit(cases, draws=60, chains=2, monkeypatch=mp)


def test_table_is_baseline_scenario_and_per_draw_difference(fitted):
    res = nf.what_if(fitted, frame(event()), case_id="XTC")
    need = {"question", "outcome", "partner", "horizon_months", "baseline_mean", "baseline_q05",
            "baseline_q95", "scenario_mean", "scenario_q05", "scenario_q95", "diff_mean",
            "diff_q05", "diff_q95", "p_increase"}  # fmt: skip
    assert need <= set(res.table.columns)
    assert len(res.table) == 3 * 4
    base = nf.make_forecast(fitted, "XTC")
    pd.testing.assert_series_equal(
        res.table["baseline_mean"], base.table["p_mean"], check_names=False
    )
    d = (res.scenario.draws["p"] - res.baseline.draws["p"]).values
    assert res.baseline.draws["p"].sizes == res.scenario.draws["p"].sizes
    row = res.table.query("outcome == 'foreign_basing' and horizon_months == 24").iloc[0]
    j = list(res.baseline.draws["question"].values).index("XTC|foreign_basing|CHN")
    h = list(res.baseline.draws["horizon"].values).index(24)
    assert row["diff_mean"] == pytest.approx(d[:, h, j].mean())
    assert row["diff_q05"] == pytest.approx(np.quantile(d[:, h, j], 0.05))
    assert row["diff_q95"] == pytest.approx(np.quantile(d[:, h, j], 0.95))
    # a cooperative military accord with China feeds partner_security for the basing question
    assert set(res.contributions["category"]) >= {"partner_security"}
    # event dated 2018-09 with a one-month lag cannot move the 3-month forecast (to 30 Sep)
    assert res.table.query("horizon_months == 3")["diff_mean"].abs().max() == 0.0


def test_extra_evidence_matches_a_real_event_exactly(fitted, cases):
    real = cases.events[cases.events["event_id"] == "XTC-E006"].copy()
    hyp = real.assign(event_id="HYP-COPY")
    hyp["date"] = hyp["date"].dt.strftime("%Y-%m-%d")
    typed, case_id, when = read_scenario_events(hyp, cases, horizons=[3, 12])
    extra = scenario_evidence(fitted, typed, case_id, as_of=when, max_horizon=12)
    for q in fitted.data.questions_of("XTC"):
        ev = extra[q.label]
        m_end = when.year * 12 + when.month - 1 + 12
        assert ev.inflow.shape == (m_end - q.first_month + 1, len(fitted.data.categories))
        i = q.evidence.event_ids.index("XTC-E006")
        m = q.evidence.event_months[i] - q.first_month
        np.testing.assert_allclose(ev.inflow[m], q.evidence.contributions[i])
        np.testing.assert_allclose(ev.volume[m], q.evidence.weights[i])
        assert np.count_nonzero(ev.inflow.sum(axis=1)) <= 1


def test_past_hypothetical_event_equals_coding_it(cases, monkeypatch):
    """Adding an old event as a scenario == the forecast with the event coded (same draws)."""
    cfg = nf.load_config()
    fitted = mock_fit(cases, cfg, draws=40, chains=2, monkeypatch=monkeypatch)
    ev = frame(event(date="2014-05-20", event_type="COOPERATE", contexts="military"))
    res = nf.what_if(fitted, ev, case_id="XTC")  # older than the 24-month recent window
    typed = res.events.copy()
    for col in ("source_reliability", "info_credibility", "date_precision", "event_type"):
        typed[col] = typed[col].astype(str)
    coded = fitted.case_set.with_events(typed)
    refit = dataclasses.replace(fitted, case_set=coded, data=build_model_data(coded, cfg),
                                extra={})  # fmt: skip
    direct = nf.make_forecast(refit, "XTC")
    np.testing.assert_allclose(res.table["scenario_mean"], direct.table["p_mean"], rtol=1e-10)
    assert (res.table["diff_mean"].abs() > 0).any()  # it moves the forecast


@pytest.mark.parametrize(
    ("rows", "needle"),
    [
        ([event(event_type="HUG")], "events.csv:1:event_type: must be one of"),
        ([event(date="2018-02-30")], ":1:date: not a valid date"),
        ([event(), event()], "duplicate value 'HYP-1'"),
        ([event(date="2011-12-31")], ":1:date: 2011-12-31 is outside the scenario period"),
        ([event(date="2020-07-01")], "outside the scenario period 2012-01-01..2020-06-30"),
        ([event(event_id="XTC-E001")], ":1:event_id: event id 'XTC-E001' is already in"),
        ([event(), event("HYP-2", case_id="XTA")], "events name several cases"),
        ([event(date_precision="month")], "date_precision is 'month'"),
    ],
)
def test_bad_events_name_file_row_column(tmp_path, cases, rows, needle):
    path = tmp_path / "events.csv"
    frame(*rows).to_csv(path, index=False)
    with pytest.raises(CaseSetError) as info:
        read_scenario_events(path, cases, horizons=[3, 24])
    assert needle in str(info.value)


def test_missing_column_and_wrong_case(tmp_path, cases):
    path = tmp_path / "hyp.csv"
    frame(event()).drop(columns="event_type").to_csv(path, index=False)
    with pytest.raises(CaseSetError, match="hyp.csv:0:event_type: required column missing"):
        read_scenario_events(path, cases)
    with pytest.raises(CaseSetError, match="scenario is for case 'XTA'"):
        read_scenario_events(frame(event()), cases, case_id="XTA")
    with pytest.raises(CaseSetError, match="unknown case 'NOPE'"):
        read_scenario_events(frame(event(case_id="NOPE")), cases)


def test_latest_allowed_date_is_as_of_plus_max_horizon(cases):
    typed, _, when = read_scenario_events(frame(event(date="2019-06-30")), cases, horizons=[12])
    assert when == pd.Timestamp("2018-06-30") and len(typed) == 1
    with pytest.raises(CaseSetError):
        read_scenario_events(frame(event(date="2019-07-01")), cases, horizons=[12])
    with pytest.raises(ValueError, match="outside the window"):
        read_scenario_events(frame(event()), cases, as_of="2019-01-01")


def test_as_of_and_horizons_and_plot(fitted, tmp_path):
    res = nf.what_if(fitted, frame(event(date="2016-01-10")), as_of="2016-06-30", horizons=[6])
    assert list(res.table["horizon_months"].unique()) == [6]
    assert set(res.table["as_of"]) == {"2016-06-30"}
    fig = res.plot(tmp_path / "w.png")
    assert (tmp_path / "w.png").stat().st_size > 1000 and fig is not None
    assert res.to_csv(tmp_path / "w.csv").is_file()


# ------------------------------------------------------------------------------ CLI
runner = CliRunner()


def _relaxed_config(tmp_path: Path) -> Path:
    text = (nf.default_config_dir() / "model.toml").read_text()
    for key, value in {"rhat_max": "10.0", "ess_bulk_min": "1", "ess_tail_min": "1",
                       "bfmi_min": "0.0"}.items():  # fmt: skip
        text = "\n".join(
            f"{key} = {value}" if line.startswith(f"{key} =") else line
            for line in text.splitlines()
        )
    path = tmp_path / "model.toml"
    path.write_text(text)
    return path


def test_cli_what_if_fits_and_writes(tmp_path, monkeypatch):
    import pymc as pm
    from tests.helpers import mock_with_stats

    monkeypatch.setattr(pm, "sample", mock_with_stats)
    events = tmp_path / "hyp.csv"
    frame(event(), event("HYP-2", date="2019-01-01", date_precision="month")).to_csv(
        events, index=False
    )
    out = tmp_path / "wi"
    args = ["what-if", "--cases", str(TINY), "--add-events", str(events), "--out", str(out),
            "--sampler", "pymc", "--draws", "30", "--chains", "2", "--tune", "0",
            "--config", str(_relaxed_config(tmp_path))]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "XTC what-if as of 2018-06-30" in result.output
    for name in ("what_if.csv", "what_if.png", "contributions.csv", "scenario_events.csv",
                 "what_if.json"):  # fmt: skip
        assert (out / name).is_file(), name
    table = pd.read_csv(out / "what_if.csv")
    assert len(table) == 12 and {"baseline_mean", "scenario_mean", "diff_q95"} <= set(table)


def test_cli_what_if_bad_events_exit_2_nothing_written(tmp_path):
    events = tmp_path / "hyp.csv"
    frame(event(source_reliability="Z"), event(date="2030-01-01")).to_csv(events, index=False)
    before = snapshot(tmp_path)
    out = tmp_path / "wi"
    result = runner.invoke(
        app, ["what-if", "--cases", str(TINY), "--add-events", str(events), "--out", str(out)]
    )
    assert result.exit_code == 2, result.output
    assert "hyp.csv:1:source_reliability" in result.output
    assert not out.exists() and snapshot(tmp_path) == before
