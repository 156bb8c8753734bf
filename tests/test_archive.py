"""Re-forecast into an archive: idempotency, publication, history, update paths, gate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from tests.archive_helpers import (
    OTHER_CASE_EVENT,
    add_event,
    history,
    invoke,
    latest,
    payload,
    runner,
    runs,
)
from tests.conftest import TINY

import neutrality_forecast as nf
from neutrality_forecast.archive import Archive, read_history, reforecast
from neutrality_forecast.cli import app
from neutrality_forecast.update import PsisOptions

LOOSE = PsisOptions(max_khat=10.0, min_ess=1.0)  # lets PSIS through on prior draws


def test_first_run_publishes_every_export(published):
    cases, archive = published
    (run_id,) = runs(archive)
    assert latest(archive) == run_id
    assert (archive / "latest").is_symlink()
    run = archive / "runs" / run_id
    for name in ("forecast.csv", "joint.csv", "conditional.csv", "drivers.csv", "forecast.json",
                 "diagnostics.json", "posterior.nc", "fan_chart.png", "changes.csv",
                 "state.json", "inputs/events.csv"):  # fmt: skip
        assert (run / name).is_file(), name
    assert not list((archive / ".staging").iterdir())
    p = payload(run)
    assert p["update"]["path"] == "refit" and p["update"]["base_run_id"] == run_id
    assert p["archive"]["previous_run_id"] is None
    state = json.loads((run / "state.json").read_text())
    assert state["data_sha256"] == nf.load_case_set(cases).data_hash()
    assert len(state["events"]) == len(nf.load_case_set(cases).events)
    changes = pd.read_csv(run / "changes.csv")
    assert set(changes["component"]) == {"no_previous_run"}
    h = history(archive)
    assert len(h) == 3 * 4 and set(h["run_id"]) == {run_id}
    assert set(h["update_path"]) == {"refit"}
    for col in ("as_of", "p_mean", "p_median", "p_q05", "p_q95", "status", "model_version",
                "data_sha256", "config_sha256", "package_version", "created_utc"):  # fmt: skip
        assert h[col].notna().all(), col
    # the inputs copy round-trips to the same data hash (PSIS relies on it)
    assert Archive(archive).inputs(run_id).data_hash() == state["data_sha256"]


def test_unchanged_inputs_create_no_new_run(published):
    cases, archive = published
    before = history(archive)
    result = invoke(cases, archive)
    assert result.exit_code == 0, result.output
    assert "unchanged" in result.output
    assert len(runs(archive)) == 1
    pd.testing.assert_frame_equal(history(archive), before)


def test_force_reruns_and_history_is_append_only(published):
    cases, archive = published
    before = history(archive)
    result = invoke(cases, archive, "--force")
    assert result.exit_code == 0, result.output
    assert len(runs(archive)) == 2 and latest(archive) == runs(archive)[-1]
    after = history(archive)
    assert len(after) == 2 * len(before)
    pd.testing.assert_frame_equal(after.iloc[: len(before)].reset_index(drop=True), before)


def test_added_event_creates_second_run_naming_it(published):
    cases, archive = published
    add_event(cases)
    result = invoke(cases, archive)
    assert result.exit_code == 0, result.output
    assert "XTC-E900" in result.output
    first_id, second_id = runs(archive)
    run = archive / "runs" / second_id
    changes = pd.read_csv(run / "changes.csv", keep_default_na=False, na_values=[""])
    ev = changes[changes["component"] == "event"]
    assert set(ev["event_id"]) == {"XTC-E900"} and set(ev["change_kind"]) == {"added"}
    assert (ev["contribution"].abs() > 0).any()
    sums = changes.groupby(["outcome", "horizon_months"]).agg(
        contribution=("contribution", "sum"), total=("total_change", "first")
    )
    np.testing.assert_allclose(sums["contribution"], sums["total"], atol=1e-12)
    p = payload(run)
    assert p["update"]["path"] in ("psis", "refit")
    assert p["update"]["reason"]
    assert "khat" in p["update"]["psis"] and "thresholds" in p["update"]["psis"]
    assert p["changes"]["previous_run_id"] == first_id
    assert p["changes"]["events"][0]["event_id"] == "XTC-E900"
    assert "same posterior draws" in p["changes"]["method"]
    assert set(history(archive)["run_id"]) == {first_id, second_id}


def test_psis_path_reweights_the_last_full_fit(tiny_copy, tmp_path, mock_sampling):
    archive = tmp_path / "archive"
    kw = dict(archive=archive, case_id="XTC", sampler="pymc", draws=1500, chains=2,
              progressbar=False, psis=LOOSE)  # fmt: skip
    r1 = reforecast(tiny_copy, **kw)
    add_event(tiny_copy)
    r2 = reforecast(tiny_copy, **kw)
    assert r2.update_path == "psis", r2.update
    assert r2.update["base_run_id"] == r1.run_id
    info = r2.update["psis"]
    assert info["accepted"] and np.isfinite(info["khat"]) and info["ess"] > 0
    p = payload(r2.path)
    assert p["update"]["path"] == "psis" and p["provenance"]["sampler"].startswith("psis")
    post = nf.load_fitted(r2.path / "posterior.nc", nf.load_case_set(tiny_copy))
    assert post.idata.posterior.sizes["draw"] == 1500
    # a further event: reweights the same full fit (not the resampled posterior)
    add_event(tiny_copy, OTHER_CASE_EVENT)
    r3 = reforecast(tiny_copy, **kw)
    assert r3.update_path == "psis" and r3.update["base_run_id"] == r1.run_id
    ch = r3.changes[r3.changes["component"] == "event"]
    assert set(ch["event_id"]) == {"XTA-E900"}
    assert set(ch["channel"]) == {"posterior_only"} and (ch["contribution"] == 0).all()
    h = history(archive)
    assert list(h.drop_duplicates("run_id")["update_path"]) == ["refit", "psis", "psis"]


def test_psis_rejected_falls_back_to_refit(tiny_copy, tmp_path, mock_sampling):
    archive = tmp_path / "archive"
    kw = dict(archive=archive, case_id="XTC", sampler="pymc", draws=1500, chains=2,
              progressbar=False)  # fmt: skip
    reforecast(tiny_copy, **kw)
    add_event(tiny_copy)
    strict = PsisOptions(max_khat=-1.0)  # no k-hat passes
    r = reforecast(tiny_copy, psis=strict, **kw)
    assert r.update_path == "refit"
    assert "PSIS rejected" in r.update["reason"] and r.update["psis"]["accepted"] is False
    assert r.update["base_run_id"] == r.run_id
    # the refit is warm-started from the previous published run's posterior
    assert r.update["warm_start_from"] is not None


def test_edited_event_is_attributed_as_edit(published):
    cases, archive = published
    ev = pd.read_csv(cases / "events.csv", dtype=str, keep_default_na=False)
    ev.loc[ev["event_id"] == "XTC-E006", "source_reliability"] = "A"
    ev.to_csv(cases / "events.csv", index=False, lineterminator="\n")
    result = invoke(cases, archive, "--update", "refit")
    assert result.exit_code == 0, result.output
    run = archive / "runs" / runs(archive)[-1]
    changes = pd.read_csv(run / "changes.csv", keep_default_na=False, na_values=[""])
    ev = changes[changes["component"] == "event"]
    assert set(ev["event_id"]) == {"XTC-E006"} and set(ev["change_kind"]) == {"edited"}
    assert payload(run)["update"]["reason"] == "refit requested (--update refit)"


def test_config_change_triggers_a_new_run(published):
    cases, archive = published
    result = runner.invoke(
        app,
        ["reforecast", "--cases", str(cases), "--archive", str(archive), "--case", "XTC",
         "--sampler", "pymc", "--draws", "1501", "--chains", "2"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    run = archive / "runs" / runs(archive)[-1]
    assert len(runs(archive)) == 2
    assert "configuration changed" in payload(run)["update"]["reason"]


def test_history_export_csv_and_parquet(published, tmp_path):
    _, archive = published
    out = tmp_path / "h.csv"
    result = runner.invoke(app, ["history", "--archive", str(archive), "--out", str(out)])
    assert result.exit_code == 0, result.output
    csv = pd.read_csv(out)
    assert len(csv) == 12 and "run_id" in csv.columns
    result = runner.invoke(app, ["history", "--archive", str(archive)])
    assert result.exit_code == 0 and result.output.startswith("run_id,")
    pq = tmp_path / "h.parquet"
    result = runner.invoke(
        app, ["history", "--archive", str(archive), "--format", "parquet", "--out", str(pq)]
    )
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(pq)
    assert list(frame.columns) == list(csv.columns) and len(frame) == 12
    missing = runner.invoke(app, ["history", "--archive", str(tmp_path / "nope")])
    assert missing.exit_code == 2


def test_gate_failure_exit_3_kept_in_failed(tiny_copy, tmp_path, mock_sampling):
    cfg_dir = tmp_path / "cfg"
    cfg_dir.mkdir()
    text = (Path(nf.default_config_dir()) / "model.toml").read_text()
    (cfg_dir / "model.toml").write_text(text.replace("ess_bulk_min = 400", "ess_bulk_min = 1e9"))
    archive = tmp_path / "archive"
    args = ("--config", str(cfg_dir / "model.toml"))
    result = invoke(tiny_copy, archive, *args)
    assert result.exit_code == 3, result.output
    assert "NOT published" in result.output
    assert runs(archive) == [] and latest(archive) is None
    (failed,) = list((archive / "failed").iterdir())
    assert json.loads((failed / "diagnostics.json").read_text())["passed"] is False
    assert read_history(archive / "history.duckdb").empty
    again = invoke(tiny_copy, archive, *args)  # same inputs: refuses without refitting
    assert again.exit_code == 3 and "--force" in again.output
    assert len(list((archive / "failed").iterdir())) == 1


def test_bad_case_id_is_bad_input(tiny_copy, tmp_path):
    archive = tmp_path / "archive"
    result = runner.invoke(
        app, ["reforecast", "--cases", str(tiny_copy), "--archive", str(archive), "--case", "NOPE"]
    )
    assert result.exit_code == 2
    assert not archive.exists()


def test_tiny_cases_untouched_by_runs(published):
    assert (TINY / "events.csv").read_text().count("XTC-E900") == 0
