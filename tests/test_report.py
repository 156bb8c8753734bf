"""The self-contained HTML report: written by `forecast`, rebuilt by `report RUN_DIR`."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from tests.conftest import TINY
from tests.helpers import mock_fit
from typer.testing import CliRunner

import neutrality_forecast as nf
from neutrality_forecast.cli import app
from neutrality_forecast.export.run import new_run_id, utc_now, write_run
from neutrality_forecast.report.html import load_run_fit, read_run_folder, write_report

runner = CliRunner()
ARGS = ["--cases", str(TINY), "--case", "XTC", "--draws", "1000", "--tune", "1000", "--chains", "4"]
SECTIONS = ("Headline probabilities", "Fan chart", "Probability over time",
            "Attribution of the latest changes", "What drives each probability",
            "Joint and conditional probabilities", "Diagnostics", "Provenance")  # fmt: skip


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A real (tiny) forecast run, ~20 s."""
    out = tmp_path_factory.mktemp("report") / "run"
    result = runner.invoke(app, ["forecast", *ARGS, "--seed", "7", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def assert_self_contained(text: str) -> None:
    assert text.startswith("<!DOCTYPE html>")
    assert not re.search(r"<script|<link|<iframe|@import", text, re.I)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text, re.I)
    for src in re.findall(r'src="([^"]+)"', text):
        assert src.startswith("data:image/png;base64,")


def test_forecast_writes_a_self_contained_report(run_dir):
    text = (run_dir / "report.html").read_text(encoding="utf-8")
    assert_self_contained(text)
    for title in SECTIONS:
        assert title in text, title
    assert text.count("data:image/png;base64,") >= 5  # fan, over time, drivers, rank, energy
    assert "In-sample replays" in text
    assert "No previous run" in text
    assert "Diagnostics gate <b>passed</b>" in text
    assert json.loads((run_dir / "forecast.json").read_text())["provenance"]["run_id"] in text
    # headline numbers are the forecast.csv numbers
    t = pd.read_csv(run_dir / "forecast.csv")
    assert f"<b>{t['p_mean'].iloc[0]:.3f}</b>" in text


def test_report_command_rebuilds(run_dir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    (copy / "report.html").unlink()
    result = runner.invoke(app, ["report", str(copy)])
    assert result.exit_code == 0, result.output
    assert (copy / "report.html").is_file()
    assert "In-sample replays" in (copy / "report.html").read_text()
    out = tmp_path / "elsewhere.html"
    result = runner.invoke(app, ["report", str(copy), "--cases", str(TINY), "--out", str(out)])
    assert result.exit_code == 0 and out.is_file()


def test_changes_and_history_are_used_when_present(run_dir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    pd.DataFrame(
        {"case_id": ["XTC"], "outcome": ["foreign_basing"], "horizon_months": [12],
         "p_before": [0.02], "p_after": [0.03], "cause": ["new event XTC-E099"]}
    ).to_csv(copy / "changes.csv", index=False)  # fmt: skip
    hist = pd.read_csv(copy / "forecast.csv")
    hist = pd.concat([hist.assign(as_of="2018-03-31"), hist], ignore_index=True)
    hist.to_csv(copy / "history.csv", index=False)
    text = write_report(copy).read_text()
    assert "new event XTC-E099" in text and "No previous run" not in text
    assert "Archived forecasts" in text and "In-sample replays" not in text


def test_missing_optional_inputs_degrade_to_notices(run_dir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    for name in ("joint.csv", "conditional.csv", "drivers.csv", "diagnostics.json",
                 "posterior.nc", "rank.png", "energy.png", "report.html"):  # fmt: skip
        (copy / name).unlink()
    result = runner.invoke(app, ["report", str(copy)])
    assert result.exit_code == 0, result.output
    text = (copy / "report.html").read_text()
    assert_self_contained(text)
    assert "joint.csv missing" in text and "No drivers table" in text
    assert "Probability over time unavailable" in text
    assert "Diagnostics gate <b>passed</b>" in text  # falls back to forecast.json


def test_not_a_run_folder_exit_2(tmp_path):
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2
    assert "not a run folder" in result.output


def test_what_if_reuses_a_run(run_dir, tmp_path):
    events = tmp_path / "hyp.csv"
    events.write_text(
        "event_id,case_id,date,date_precision,actor,recipient,event_type,contexts,source,"
        "source_reliability,info_credibility,summary\n"
        "HYP-1,XTC,2018-09-15,day,XTC,CHN,AGREE,military,Hypothetical,B,2,Hypothetical.\n"
    )
    out = tmp_path / "wi"
    result = runner.invoke(
        app, ["what-if", "--run", str(run_dir), "--add-events", str(events), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "baseline" in result.output and "foreign_basing" in result.output
    table = pd.read_csv(out / "what_if.csv")
    base = pd.read_csv(run_dir / "forecast.csv")
    pd.testing.assert_series_equal(
        table["baseline_mean"], base["p_mean"], check_names=False, rtol=1e-9
    )


# ---------------------------------------------------------------- fast unit tests (mock fit)
def _mock_run(case_set, dest, monkeypatch, **kw):
    fitted = mock_fit(case_set, draws=40, chains=2, monkeypatch=monkeypatch)
    fc = nf.make_forecast(fitted, "XTC", **kw)
    return write_run(fitted, [fc], dest, run_id=new_run_id(fitted), started=utc_now()), fitted


def test_failed_gate_is_flagged(tmp_path, monkeypatch):
    path, fitted = _mock_run(nf.load_case_set(TINY), tmp_path / "r", monkeypatch)
    assert not fitted.gate.passed  # prior draws, 80 in all: ESS below the thresholds
    text = (path / "report.html").read_text()
    assert "do not use these numbers" in text and "FAIL" in text
    assert_self_contained(text)


def test_load_run_fit_recuts_an_as_of_run(tmp_path, monkeypatch):
    cs = nf.load_case_set(TINY)
    cut = cs.truncate("XTC", "2016-12-31")
    path, fitted = _mock_run(cut, tmp_path / "r", monkeypatch, as_of="2016-12-31")
    assert read_run_folder(path).provenance["data_source"] == str(TINY)
    again = load_run_fit(path)
    assert again.data_hash == fitted.data_hash
    assert again.case_set.case("XTC")["window_end"] == pd.Timestamp("2016-12-31")
