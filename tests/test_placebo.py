"""Placebo runs: the paired comparison and the ``placebo`` command."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from tests.conftest import TINY, snapshot
from tests.test_backtest import SMALL
from typer.testing import CliRunner

import neutrality_forecast as nf
from neutrality_forecast.backtest import placebo as placebo_mod
from neutrality_forecast.backtest import run_backtest
from neutrality_forecast.backtest.runner import _cluster_cases, _Runner
from neutrality_forecast.cli import app


def test_placebo_compares_on_the_rows_each_run_scored(mocked, monkeypatch):
    """A run that drops folds is compared with the real skill on the rows it kept."""
    cs = nf.load_case_set(TINY)
    res = run_backtest(cs, nf.load_config(), settings=SMALL, progressbar=False)
    scores = res.scores
    real = scores.copy()
    keep = scores["case_id"] != "XTC"  # the placebo run "drops" XTC's folds

    def fake_folds(runner, draws, *, evidence, source, jobs, refit_budget, **kw):
        assert evidence and refit_budget == [0]
        rows = scores.loc[keep, ["case_id", "cluster", "outcome", "partner", "origin",
                                 "horizon"]].to_dict("records")  # fmt: skip
        for r in rows:
            r["p_mean"] = 0.5
        return rows, [{"method": "psis"}, {"method": "dropped"}]

    monkeypatch.setattr("neutrality_forecast.backtest.runner.run_folds", fake_folds)
    runner = _Runner(cs, nf.load_config(), SMALL)
    out = placebo_mod.placebo_skills(runner, real, n=2, jobs=list(_cluster_cases(cs).items()),
                                     progressbar=False)  # fmt: skip
    sub = scores[keep]
    b_free = sub["brier_evidence_free"].mean()
    assert out["n_forecasts"] == [int(keep.sum())] * 2
    assert out["folds_dropped"] == [1, 1]
    assert out["real_skill_vs_evidence_free_paired"][0] == pytest.approx(
        1 - sub["brier"].mean() / b_free
    )
    b_half = ((0.5 - sub["occurred"]) ** 2).mean()
    assert out["skill_vs_evidence_free"][0] == pytest.approx(1 - b_half / b_free)
    assert out["real_skill_vs_evidence_free"] == pytest.approx(
        1 - scores["brier"].mean() / scores["brier_evidence_free"].mean()
    )
    # p = 0.5 everywhere is far worse than any fitted model: the real data beat both runs
    assert out["percentile_vs_evidence_free"] == 100.0


def test_placebo_command_reads_a_finished_backtest(mocked, tmp_path):
    bt = tmp_path / "bt"
    r = CliRunner().invoke(app, ["backtest", "--cases", str(TINY), "--draws", "40", "--chains",
                                 "2", "--out", str(bt), "--replay", "none", "--horizons", "6,12",
                                 "--origin-step-months", "12", "--sampler", "pymc"])  # fmt: skip
    assert r.exit_code == 0, r.output
    summary = json.loads((bt / "summary.json").read_text())
    assert summary["model_version"] == nf.load_config().model.model_version
    r = CliRunner().invoke(app, ["placebo", str(bt), "--cases", str(TINY), "--runs", "2"])
    assert r.exit_code == 0, r.output
    got = json.loads((bt / "placebo" / "placebo.json").read_text())
    assert got["n"] == 2 and got["sampler"] == "pymc" and got["max_refits_per_run"] == 0
    assert len(got["skill_vs_evidence_free"]) == 2
    assert got["percentile_vs_evidence_free"] in (0.0, 50.0, 100.0)
    assert got["real_skill_vs_evidence_free"] == pytest.approx(
        summary["brier_skill_vs_evidence_free"]
    )
    runs = pd.read_csv(bt / "placebo" / "placebo_runs.csv")
    assert len(runs) == 2 and (runs["n_forecasts"] > 0).all()
    assert (runs["n_forecasts"] <= summary["n_forecasts"]).all()
    fits = pd.read_csv(bt / "placebo" / "placebo_fits.csv")
    assert list(fits["fit"]) == ["placebo 0", "placebo 1"]
    assert (bt / "placebo" / "placebo.png").stat().st_size > 0


def test_placebo_command_bad_input_writes_nothing(tmp_path):
    (tmp_path / "bt").mkdir()
    (tmp_path / "bt" / "summary.json").write_text('{"mode": "loco", "settings": {}}')
    (tmp_path / "bt" / "scores.csv").write_text("case_id,origin\nXTA,2015-01-01\n")
    before = snapshot(tmp_path)
    r = CliRunner().invoke(app, ["placebo", str(tmp_path / "bt"), "--cases", str(TINY)])
    assert r.exit_code == 2
    assert "scores.csv" in r.output and "missing columns" in r.output
    assert snapshot(tmp_path) == before
    r = CliRunner().invoke(app, ["placebo", str(tmp_path / "nope"), "--cases", str(TINY)])
    assert r.exit_code == 2 and "not a backtest output folder" in r.output
