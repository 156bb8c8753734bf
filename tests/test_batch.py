"""Batch forecasts on a Dask LocalCluster equal sequential runs (mocked, fast fit)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pymc as pm
import pytest
from tests.conftest import TINY
from tests.helpers import mock_with_stats
from typer.testing import CliRunner

import neutrality_forecast as nf
from neutrality_forecast.batch import default_case, plan_batch, run_batch
from neutrality_forecast.cli import app
from neutrality_forecast.workflow import run_forecast

distributed = pytest.importorskip("distributed")

OPTIONS = {"seed": 11, "draws": 40, "chains": 2, "sampler": "pymc", "horizons": [3, 12]}


@pytest.fixture
def relaxed_config():
    """Prior draws never pass the real gate: relax it (the gate is tested elsewhere)."""
    return nf.load_config().with_updates(
        diagnostics={
            "rhat_max": 1e9,
            "ess_bulk_min": 0,
            "ess_tail_min": 0,
            "max_divergences": 10**9,
            "bfmi_min": 0.0,
            "max_treedepth_share": 1.0,
        }
    )


@pytest.fixture
def case_sets(tmp_path: Path) -> list[Path]:
    a = tmp_path / "in" / "alpha"
    b = tmp_path / "in" / "beta"
    shutil.copytree(TINY, a)
    shutil.copytree(TINY, b)
    ev = pd.read_csv(b / "events.csv", dtype=str, keep_default_na=False)
    ev.iloc[: len(ev) // 2].to_csv(b / "events.csv", index=False)  # a different case set
    return [a, b]


@pytest.fixture
def threads_client():
    cluster = distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
    )
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def _table(path: Path) -> pd.DataFrame:
    return pd.read_csv(path / "forecast.csv").drop(columns="run_id")


def test_plan_names_and_default_case(case_sets, tmp_path):
    items = plan_batch([*case_sets, case_sets[0]], out=tmp_path / "out")
    assert [i.name for i in items] == ["alpha", "beta", "alpha-2"]
    assert default_case(case_sets[0]) == "XTC"  # latest window end
    assert {i.case_id for i in items} == {"XTC"}
    with pytest.raises(KeyError):
        plan_batch(case_sets, out=tmp_path / "out", case_id="NOPE")


def test_batch_equals_sequential(case_sets, relaxed_config, threads_client, tmp_path, monkeypatch):
    monkeypatch.setattr(pm, "sample", mock_with_stats)
    out = tmp_path / "batch"
    results = run_batch(
        case_sets, out=out, case_id="XTC", config=relaxed_config, client=threads_client, **OPTIONS
    )
    assert [r.status for r in results] == ["ok", "ok"], [r.message for r in results]
    for cases, res in zip(case_sets, results, strict=True):
        assert Path(res.path) == out / cases.name
        assert (out / cases.name / "forecast.json").is_file()
        seq = run_forecast(
            cases, case_id="XTC", config=relaxed_config, out=tmp_path / "seq" / cases.name,
            progressbar=False, **OPTIONS,
        )  # fmt: skip
        pd.testing.assert_frame_equal(_table(Path(res.path)), _table(seq.path))
        got = pd.DataFrame(res.table).drop(columns="run_id")
        pd.testing.assert_frame_equal(got, seq.table.drop(columns="run_id"), check_dtype=False)
    # the two case sets differ, so their forecasts must too (the tasks are independent)
    assert not _table(out / "alpha").equals(_table(out / "beta"))


def test_batch_failure_is_reported_not_raised(case_sets, threads_client, tmp_path, monkeypatch):
    monkeypatch.setattr(pm, "sample", mock_with_stats)
    strict = nf.load_config()  # prior draws fail the real gate
    results = run_batch(
        case_sets[:1], out=tmp_path / "b", case_id="XTA", config=strict, client=threads_client,
        **OPTIONS,
    )  # fmt: skip
    assert results[0].status == "gate_failed"
    assert not (tmp_path / "b" / "alpha" / "forecast.csv").exists()


def test_cli_batch_bad_input(tmp_path):
    result = CliRunner().invoke(
        app, ["batch", "--cases", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2
