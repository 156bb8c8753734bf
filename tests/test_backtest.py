"""Backtests, scoring rules and the calibration decomposition."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pymc as pm
import pytest
from tests.conftest import TINY
from tests.helpers import mock_with_stats
from typer.testing import CliRunner

import neutrality_forecast as nf
from neutrality_forecast.backtest import brier, log_score, murphy, origins_for, run_backtest
from neutrality_forecast.backtest.runner import _family_rates
from neutrality_forecast.cli import app


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


def test_origins():
    case = pd.Series(
        {"window_start": pd.Timestamp("2010-01-01"), "window_end": pd.Timestamp("2011-12-31")}
    )
    assert [o.date().isoformat() for o in origins_for(case, 6)] == [
        "2010-07-01", "2011-01-01", "2011-07-01",
    ]  # fmt: skip


def test_base_rate_excludes_evaluated_case():
    cs = nf.load_case_set(TINY)
    data = nf.build_model_data(cs, nf.load_config())
    with_all = _family_rates(data, [])
    without_b = _family_rates(data, ["XTB"])
    k = data.outcomes.index("foreign_basing")
    assert with_all[k] > 0  # XTB's basing occurred
    assert without_b[k] == 0  # ...and is not counted when XTB is evaluated


@pytest.fixture
def mocked(monkeypatch):
    monkeypatch.setattr(pm, "sample", mock_with_stats)


def test_run_backtest_loco_structure(mocked):
    cs = nf.load_case_set(TINY)
    res = run_backtest(cs, nf.load_config(), draws=40, chains=2, sampler="pymc", progressbar=False)
    s = res.scores
    for col in ("case_id", "outcome", "origin", "horizon", "p_mean", "occurred", "brier",
                "log_score", "p_mean_base_rate", "p_mean_evidence_free", "brier_base_rate",
                "brier_evidence_free"):  # fmt: skip
        assert col in s.columns, col
    assert set(s["case_id"]) == {"XTA", "XTB", "XTC"}
    assert s["occurred"].isin([0, 1]).all()
    summ = res.summary
    for key in ("brier", "log_score", "brier_base_rate", "brier_skill", "n_forecasts",
                "per_outcome", "per_horizon", "murphy"):  # fmt: skip
        assert key in summ, key
    assert summ["brier_skill"] == pytest.approx(1 - summ["brier"] / summ["brier_base_rate"])
    assert summ["n_forecasts"] == len(s)
    assert summ["fits_total"] == 2 * 3  # model + evidence-free per fold
    # origins only up to the case window and scored only when observable
    assert (pd.to_datetime(s["origin"]) <= pd.Timestamp("2018-06-30")).all()
    assert len(res.scores_long) == 3 * len(s)


def test_external_mode(mocked, tiny_copy):
    cs = nf.load_case_set(TINY)
    holdout = nf.load_case_set(tiny_copy).subset(["XTA"])
    res = run_backtest(cs.subset(["XTB", "XTC"]), nf.load_config(), mode="external",
                       holdout=holdout, draws=40, chains=2, sampler="pymc", progressbar=False)  # fmt: skip
    assert set(res.scores["case_id"]) == {"XTA"}
    assert res.summary["fits_total"] == 2  # one fit (plus evidence-free) for all holdout cases


def test_backtest_cli_writes_outputs(mocked, tmp_path, monkeypatch):
    from neutrality_forecast.backtest import runner

    monkeypatch.setattr(runner, "CompiledModel", _PymcCompiled)
    from neutrality_forecast.backtest import replay

    monkeypatch.setattr(replay, "CompiledModel", _PymcCompiled)
    out = tmp_path / "bt"
    result = CliRunner().invoke(
        app, ["backtest", "--cases", str(TINY), "--draws", "40", "--out", str(out), "--replay", "XTC",
              "--horizons", "6,12"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    for name in ("scores.csv", "summary.json", "fits.csv", "reliability.png", "replay_XTC.csv",
                 "replay_XTC_h6.png"):  # fmt: skip
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["horizons"] == [6, 12]
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


class _PymcCompiled:
    """CompiledModel forced onto the (mocked) PyMC sampler."""

    def __new__(cls, model, sampler="auto"):
        from neutrality_forecast.sampling import CompiledModel

        return CompiledModel(model, sampler="pymc")
