"""The data contract: every bad-input class, extra columns, shipped data, typed frames."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from tests.conftest import snapshot
from typer.testing import CliRunner

import neutrality_forecast as nf
from neutrality_forecast.cli import app

runner = CliRunner()


def _edit(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"fixture text {old!r} not in {path.name}"
    path.write_text(text.replace(old, new, count), encoding="utf-8")


def _drop_column(path: Path, column: str) -> None:
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    df.drop(columns=[column]).to_csv(path, index=False)


# Each case: (description, mutate(folder), expected "file:row:column" prefix)
BAD_INPUTS = {
    "missing file": (lambda d: (d / "events.csv").unlink(), "events.csv:-:-"),
    "missing column": (lambda d: _drop_column(d / "events.csv", "source"), "events.csv:0:source"),
    "unknown event type": (
        lambda d: _edit(d / "events.csv", "RUS,XTA,THREATEN", "RUS,XTA,THREATENS"),
        "events.csv:2:event_type",
    ),
    "unknown context": (
        lambda d: _edit(d / "events.csv", "military;border", "military;space"),
        "events.csv:2:contexts",
    ),
    "unknown reliability letter": (
        lambda d: _edit(
            d / "events.csv",
            "Test fixture,A,1,Fictional: border post",
            "Test fixture,G,1,Fictional: border post",
        ),
        "events.csv:3:source_reliability",
    ),
    "unknown credibility digit": (
        lambda d: _edit(
            d / "events.csv",
            "Test fixture,A,1,Fictional: border post",
            "Test fixture,A,7,Fictional: border post",
        ),
        "events.csv:3:info_credibility",
    ),
    "unknown outcome": (
        lambda d: _edit(d / "outcomes.csv", "XTB,foreign_basing", "XTB,military_base"),
        "outcomes.csv:3:outcome",
    ),
    "unknown neutrality status": (
        lambda d: _edit(d / "cases.csv", "2016-12-31,none", "2016-12-31,neutralish"),
        "cases.csv:2:neutrality_status",
    ),
    "unparseable date": (
        lambda d: _edit(d / "events.csv", "XTA-E001,XTA,2011-03-10", "XTA-E001,XTA,10/03/2011"),
        "events.csv:1:date",
    ),
    "impossible date": (
        lambda d: _edit(d / "events.csv", "XTA-E003,XTA,2013-09-20", "XTA-E003,XTA,2013-02-30"),
        "events.csv:3:date",
    ),
    "impossible window date": (
        lambda d: _edit(
            d / "cases.csv", "2010-01-01,2016-12-31,none", "2010-01-01,2016-13-31,none"
        ),
        "cases.csv:2:window_end",
    ),
    "event outside window": (
        lambda d: _edit(d / "events.csv", "XTB-E002,XTB,2011-02-14", "XTB-E002,XTB,2009-02-14"),
        "events.csv:10:date",
    ),
    "duplicate event_id": (
        lambda d: _edit(d / "events.csv", "XTC-E006,", "XTC-E005,"),
        "events.csv:20:event_id",
    ),
    "duplicate case_id": (
        lambda d: _edit(d / "cases.csv", "XTB,XTB,", "XTA,XTB,"),
        "cases.csv:2:case_id",
    ),
    "event with unknown case": (
        lambda d: _edit(d / "events.csv", "XTC-E007,XTC,", "XTC-E007,XTQ,"),
        "events.csv:21:case_id",
    ),
    "outcome with unknown case": (
        lambda d: _edit(d / "outcomes.csv", "XTC,security_accord", "XTQ,security_accord"),
        "outcomes.csv:6:case_id",
    ),
    "occurred without occurred_on": (
        lambda d: _edit(d / "outcomes.csv", "RUS,true,2013-10-01", "RUS,true,"),
        "outcomes.csv:3:occurred_on",
    ),
    "occurred_on outside window": (
        lambda d: _edit(d / "outcomes.csv", "RUS,true,2013-10-01", "RUS,true,2019-10-01"),
        "outcomes.csv:3:occurred_on",
    ),
    "empty file": (lambda d: (d / "outcomes.csv").write_bytes(b""), "outcomes.csv:-:-"),
    "header only": (
        lambda d: (d / "cases.csv").write_text(
            "case_id,country,label,window_start,window_end,neutrality_status\n"
        ),
        "cases.csv:-:-",
    ),
    "wrong encoding": (
        lambda d: (d / "events.csv").write_bytes(
            (d / "events.csv")
            .read_bytes()
            .replace(b"Fictional: gas deal", b"Fictional: g\xe4s deal")
        ),
        "events.csv:16:-",
    ),
    "too many fields": (
        lambda d: _edit(
            d / "events.csv",
            "border post attacked.,attack,tests",
            "border post attacked.,attack,tests,extra",
        ),
        "events.csv:3:",
    ),
    "too few fields": (
        lambda d: _edit(
            d / "events.csv", "border post attacked.,attack,tests", "border post attacked."
        ),
        "events.csv:3:",
    ),
    "bad occurred flag": (
        lambda d: _edit(d / "outcomes.csv", "RUS,true,2013-10-01", "RUS,yes,2013-10-01"),
        "outcomes.csv:3:occurred",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_cli_exit_2_names_location_writes_nothing(name, tiny_copy, tmp_path, monkeypatch):
    mutate, where = BAD_INPUTS[name]
    mutate(tiny_copy)
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    result = runner.invoke(app, ["validate", str(tiny_copy)])
    assert result.exit_code == 2, result.output
    assert where in result.output, result.output
    assert snapshot(tmp_path) == before
    # forecast refuses the same input before fitting and writes no run folder
    result = runner.invoke(
        app, ["forecast", "--cases", str(tiny_copy), "--case", "XTA", "--out", "run"]
    )
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "run").exists()
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_raises_case_set_error_with_location(name, tiny_copy):
    mutate, where = BAD_INPUTS[name]
    mutate(tiny_copy)
    with pytest.raises(nf.CaseSetError) as info:
        nf.load_case_set(tiny_copy)
    assert where in str(info.value)
    for v in info.value.violations:
        assert re.match(r"^\S+\.csv:(\d+|-):\S+: .+", str(v)), str(v)


def test_all_violations_collected(tiny_copy):
    for name in ("unknown event type", "duplicate case_id", "occurred without occurred_on"):
        BAD_INPUTS[name][0](tiny_copy)
    with pytest.raises(nf.CaseSetError) as info:
        nf.load_case_set(tiny_copy)
    text = str(info.value)
    for name in ("unknown event type", "duplicate case_id", "occurred without occurred_on"):
        assert BAD_INPUTS[name][1] in text


def test_month_precision_must_be_first_of_month(tiny_copy):
    _edit(tiny_copy / "events.csv", "2012-05-01,month", "2012-05-17,month")
    with pytest.raises(nf.CaseSetError, match=r"events.csv:2:date: date_precision is 'month'"):
        nf.load_case_set(tiny_copy)


def test_missing_folder():
    with pytest.raises(nf.CaseSetError, match="not found"):
        nf.load_case_set("/nonexistent/case/set")


def test_typed_frames_and_extra_columns_kept(tiny_copy):
    events = pd.read_csv(tiny_copy / "events.csv", dtype=str, keep_default_na=False)
    events["analyst_comment"] = "checked"
    events = events[list(reversed(events.columns))]  # column order must not matter
    events.to_csv(tiny_copy / "events.csv", index=False)
    cs = nf.load_case_set(tiny_copy)
    assert "analyst_comment" in cs.events.columns
    assert (cs.events["analyst_comment"] == "checked").all()
    assert "mode" in cs.events.columns  # optional contract column kept
    assert str(cs.events["date"].dtype) == "datetime64[ns]"
    assert str(cs.cases["window_start"].dtype) == "datetime64[ns]"
    assert isinstance(cs.events["event_type"].dtype, pd.CategoricalDtype)
    assert isinstance(cs.cases["neutrality_status"].dtype, pd.CategoricalDtype)
    assert cs.events["source_reliability"].cat.ordered
    assert cs.outcomes["occurred"].dtype == bool
    assert cs.outcomes["occurred_on"].isna().sum() == 4


def test_bom_and_crlf_accepted(tiny_copy):
    path = tiny_copy / "cases.csv"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(b"\n", b"\r\n"))
    assert len(nf.load_case_set(tiny_copy).cases) == 3


def test_validate_cli_ok(tiny_dir):
    result = runner.invoke(app, ["validate", str(tiny_dir)])
    assert result.exit_code == 0, result.output
    assert "XTA" in result.output and "valid" in result.output


def test_roundtrip_write_then_load(tiny_dir, tmp_path):
    cs = nf.load_case_set(tiny_dir)
    cs.write(tmp_path / "copy")
    again = nf.load_case_set(tmp_path / "copy")
    assert again.data_hash() == cs.data_hash()


def test_optional_covariates_file(tiny_copy):
    path = tiny_copy / "covariates.csv"
    path.write_text(
        "case_id,partner,covariate,value,source\nXTA,USA,alliance,1,test\n"
        "XTA,RUS,alliance,0,test\nXTA,,democracy,1,t\n"
    )
    cs = nf.load_case_set(tiny_copy)
    assert cs.static("XTA", "USA", "alliance") == 1.0
    assert cs.static("XTA", "RUS", "democracy") == 1.0  # case-level value for every partner
    with pytest.warns(UserWarning, match="no 'alliance' value for case 'XTB'"):
        assert cs.static("XTB", "RUS", "alliance") == 0.5  # not coded: mean of coded cases
    assert cs.static("XTB", "RUS", "presence") == 0.0  # coded for no case: constant 0
    assert cs.static("XTA", None, "alliance") == 0.0  # partner covariate, question without one
    with pytest.warns(UserWarning, match="'democracy' value for case 'XTB'"):
        assert cs.static("XTB", None, "democracy") == 1.0  # case level: mean of coded cases
    assert "source" in cs.covariates.columns  # extra columns kept
    before = cs.data_hash()
    path.write_text("case_id,partner,covariate,value\nXTA,USA,alliance,yes\nXTQ,,democracy,1\n")
    with pytest.raises(nf.CaseSetError) as info:
        nf.load_case_set(tiny_copy)
    assert "covariates.csv:1:value" in str(info.value) and "covariates.csv:2:case_id" in str(
        info.value
    )
    path.unlink()
    assert nf.load_case_set(tiny_copy).data_hash() != before
