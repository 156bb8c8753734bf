"""End to end with real NUTS sampling on the tiny case set, through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import pytest
from tests.conftest import TINY
from typer.testing import CliRunner

import neutrality_forecast as nf
from neutrality_forecast.cli import app

runner = CliRunner()
# Seed 7: on this 3-case fictional fixture about 1 seed in 12 gives a single divergence
# (weakly identified case scales); the shipped data samples with zero divergences.
ARGS = ["--cases", str(TINY), "--case", "XTC", "--draws", "1000", "--tune", "1000", "--chains", "4"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("e2e") / "run"
    result = runner.invoke(app, ["forecast", *ARGS, "--seed", "7", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "diagnostics: passed" in result.output
    return out


def test_every_export_written(run_dir):
    for name in (
        "forecast.csv", "joint.csv", "conditional.csv", "drivers.csv", "forecast.json",
        "diagnostics.json", "posterior.nc", "fan_chart.png", "rank.png", "energy.png",
    ):  # fmt: skip
        assert (run_dir / name).is_file(), name
    assert not list(run_dir.parent.glob(".run.tmp-*"))


def test_forecast_csv_contract(run_dir):
    t = pd.read_csv(run_dir / "forecast.csv")
    need = ["case_id", "outcome", "partner", "as_of", "horizon_months", "target_date", "p_mean",
            "p_median", "p_q05", "p_q95", "status", "run_id"]  # fmt: skip
    assert set(need) <= set(t.columns)
    assert len(t) == 3 * 4  # XTC asks three questions
    assert t["run_id"].nunique() == 1
    assert t[["p_mean", "p_q05", "p_q95"]].ge(0).all().all()
    assert t[["p_mean", "p_q05", "p_q95"]].le(1).all().all()
    for _, grp in t.groupby("question"):
        assert grp.sort_values("horizon_months")["p_mean"].is_monotonic_increasing
    joint = pd.read_csv(run_dir / "joint.csv")
    np.testing.assert_allclose(joint.groupby("horizon_months")["p_mean"].sum(), 1.0, atol=1e-9)
    assert {"XTC|neutrality_revision", "XTC|security_accord|RUS",
            "XTC|foreign_basing|CHN"} <= set(joint.columns)  # fmt: skip


def test_json_provenance_and_netcdf_roundtrip(run_dir):
    payload = json.loads((run_dir / "forecast.json").read_text())
    prov = payload["provenance"]
    for key in ("package_version", "model_version", "data_sha256", "config", "seed", "sampler",
                "started_utc", "finished_utc", "run_id"):  # fmt: skip
        assert key in prov, key
    assert prov["seed"] == 7
    assert prov["data_sha256"] == nf.load_case_set(TINY).data_hash()
    assert payload["diagnostics"]["passed"] is True
    csv_rows = pd.read_csv(run_dir / "forecast.csv")
    assert [r["p_mean"] for r in payload["forecast"]] == pytest.approx(list(csv_rows["p_mean"]))
    idata = az.from_netcdf(run_dir / "posterior.nc")
    assert "posterior" in idata.groups() and "sample_stats" in idata.groups()
    assert idata.attrs["model_version"] == nf.load_config().model.model_version
    diag = json.loads((run_dir / "diagnostics.json").read_text())
    assert diag["passed"] is True and diag["divergences"] == 0


def test_same_seed_reproduces(run_dir, tmp_path):
    out = tmp_path / "again"
    result = runner.invoke(app, ["forecast", *ARGS, "--seed", "7", "--out", str(out)])
    assert result.exit_code == 0, result.output
    a = pd.read_csv(run_dir / "forecast.csv").drop(columns="run_id")
    b = pd.read_csv(out / "forecast.csv").drop(columns="run_id")
    pd.testing.assert_frame_equal(a, b)


def test_save_load_refuses_mismatch(run_dir, tmp_path):
    cs = nf.load_case_set(TINY)
    fitted = nf.load_fitted(run_dir / "posterior.nc", cs)
    fc = nf.make_forecast(fitted, "XTC")
    ref = pd.read_csv(run_dir / "forecast.csv")
    np.testing.assert_allclose(fc.table["p_mean"], ref["p_mean"])
    other = cs.subset(["XTA", "XTB"])
    with pytest.raises(nf.ModelIOError, match="data"):
        nf.load_fitted(run_dir / "posterior.nc", other)
    cfg = nf.load_config()
    bumped = nf.Config.model_validate(
        {**cfg.model_dump(), "model": {**cfg.model.model_dump(), "model_version": "hazard-9"}}
    )
    with pytest.raises(nf.ModelIOError, match="model version"):
        nf.load_fitted(run_dir / "posterior.nc", cs, bumped)


def test_gate_failure_exit_3_nothing_published(tmp_path):
    cfg_dir = tmp_path / "cfg"
    cfg_dir.mkdir()
    text = (Path(nf.default_config_dir()) / "model.toml").read_text()
    (cfg_dir / "model.toml").write_text(text.replace("ess_bulk_min = 400", "ess_bulk_min = 1e9"))
    out = tmp_path / "run"
    result = runner.invoke(
        app,
        ["forecast", "--cases", str(TINY), "--case", "XTC", "--draws", "100", "--tune", "100",
         "--chains", "2", "--sampler", "pymc", "--config", str(cfg_dir / "model.toml"),
         "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 3, result.output
    assert "ess_bulk" in result.output
    assert not out.exists()
    failed = tmp_path / "run.failed"
    assert json.loads((failed / "diagnostics.json").read_text())["passed"] is False
