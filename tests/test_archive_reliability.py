"""Reliability of scheduled re-forecasts: kill -9, concurrency, full disk, bad input."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from tests.archive_helpers import (
    FAST,
    add_event,
    fast_mocks,
    history,
    invoke,
    latest,
    runs,
)
from tests.conftest import TESTS, snapshot

from neutrality_forecast.archive import Archive, ArchiveLock, ArchiveLocked
from neutrality_forecast.archive.history import append_run, history_rows, run_ids

DRIVER = TESTS / "reforecast_driver.py"


def spawn(cases: Path, archive: Path, tmp_path: Path, hang: str, sleep: float = 120.0):
    marker = tmp_path / f"marker-{hang}"
    env = {**os.environ, "NF_TEST_HANG": hang, "NF_TEST_MARKER": str(marker),
           "NF_TEST_SLEEP": str(sleep), "NF_NO_PROGRESS": "1"}  # fmt: skip
    args = [sys.executable, str(DRIVER), "reforecast", "--cases", str(cases),
            "--archive", str(archive), *FAST]  # fmt: skip
    if hang == "fit":  # kill during a full fit, not an instant (PSIS) update
        args += ["--update", "refit"]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(proc.stdout.read().decode())
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("driver never reached the hang point")
        time.sleep(0.1)
    return proc


def kill9(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.parametrize("hang", ["fit", "publish"])
def test_kill_9_leaves_latest_and_history_intact(published, tmp_path, hang):
    cases, archive = published
    before_latest, before_hist = latest(archive), history(archive)
    add_event(cases)
    proc = spawn(cases, archive, tmp_path, hang)
    kill9(proc)
    assert latest(archive) == before_latest
    pd.testing.assert_frame_equal(history(archive), before_hist)
    if hang == "publish":  # the new run was renamed into runs/ but never switched to
        assert len(runs(archive)) == 2
    # the next run recovers: stale lock cleared, orphan moved away, then publishes
    result = invoke(cases, archive)
    assert result.exit_code == 0, result.output
    assert "ended without releasing the lock" in result.output
    if hang == "publish":
        assert "moved unpublished run" in result.output
        (orphan,) = [p for p in (archive / "failed").iterdir()]
        assert (orphan / "INTERRUPTED.txt").is_file()
    assert len(runs(archive)) == 2 and latest(archive) == runs(archive)[-1]
    assert not list((archive / ".staging").iterdir())
    h = history(archive)
    assert h["run_id"].nunique() == 2
    pd.testing.assert_frame_equal(h.iloc[: len(before_hist)].reset_index(drop=True), before_hist)


def test_concurrent_run_exits_4_then_waits(published, tmp_path):
    cases, archive = published
    add_event(cases)
    proc = spawn(cases, archive, tmp_path, "fit", sleep=8.0)
    try:
        result = invoke(cases, archive, "--lock-timeout", "0")
        assert result.exit_code == 4, result.output
        assert f"pid {proc.pid}" in result.output and "locked" in result.output
        assert len(runs(archive)) == 1
        # a bounded wait outlasts the holder; its inputs are then already published
        result = invoke(cases, archive, "--lock-timeout", "120")
        assert result.exit_code == 0, result.output
        assert "unchanged" in result.output
    except BaseException:
        proc.kill()
        raise
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == 0, proc.stdout.read().decode()
    assert len(runs(archive)) == 2 and history(archive)["run_id"].nunique() == 2


def test_lock_is_exclusive_and_released(tmp_path):
    with ArchiveLock(tmp_path) as held:
        assert held.previous == {}
        with pytest.raises(ArchiveLocked, match=f"pid {os.getpid()}"):
            ArchiveLock(tmp_path, timeout=0.3, poll=0.05).acquire()
    with ArchiveLock(tmp_path) as again:  # released on exit: free again, no stale record
        assert again.previous == {}


@pytest.mark.parametrize("target", ["write_json", "fsync_tree"])
def test_disk_full_leaves_no_partial_state(published, monkeypatch, target):
    cases, archive = published
    add_event(cases)
    before = snapshot(archive / "runs")
    before_latest, before_hist = latest(archive), history(archive)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    module = (
        "neutrality_forecast.export.run"
        if target == "write_json"
        else ("neutrality_forecast.archive.store")
    )
    monkeypatch.setattr(f"{module}.{target}", full)
    result = invoke(cases, archive)
    assert result.exit_code == 1, result.output
    assert "disk full" in result.output and "nothing was published" in result.output
    assert snapshot(archive / "runs") == before
    assert latest(archive) == before_latest
    pd.testing.assert_frame_equal(history(archive), before_hist)
    assert not list((archive / ".staging").iterdir())
    monkeypatch.undo()
    fast_mocks(monkeypatch.setattr)
    assert invoke(cases, archive).exit_code == 0  # space back: the run goes through


def test_unwritable_archive_is_a_clear_error(tiny_copy, tmp_path, mock_sampling):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = invoke(tiny_copy, blocker / "archive")
    assert result.exit_code == 1
    assert "cannot create archive" in result.output


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_archive(published):  # pragma: no cover - not run as root
    cases, archive = published
    add_event(cases)
    os.chmod(archive / "runs", 0o500)
    try:
        result = invoke(cases, archive)
    finally:
        os.chmod(archive / "runs", 0o700)
    assert result.exit_code == 1
    assert len(runs(archive)) == 1


def test_bad_event_file_leaves_everything_untouched(published):
    cases, archive = published
    before = snapshot(archive)
    with open(cases / "events.csv", "a", encoding="utf-8") as fh:
        fh.write("XTC-E901,XTC,2018-13-45,day,XTC,CHN,NOT_A_TYPE,military,x,Z,9,bad,x,tests\n")
    result = invoke(cases, archive)
    assert result.exit_code == 2, result.output
    assert "events.csv" in result.output
    assert snapshot(archive) == before


def test_recover_rebuilds_missing_history(published):
    _, archive = published
    (run_id,) = runs(archive)
    (archive / "history.duckdb").unlink()
    notes = Archive(archive).recover()
    assert any("history" in n for n in notes)
    assert run_ids(archive / "history.duckdb") == {run_id}
    assert Archive(archive).recover() == []  # idempotent


def test_history_append_is_idempotent(published):
    _, archive = published
    (run_id,) = runs(archive)
    arch = Archive(archive)
    table = pd.read_csv(archive / "runs" / run_id / "forecast.csv", keep_default_na=False)
    rows = history_rows(table, {**arch.state(run_id), "run_id": run_id})
    assert append_run(arch.history, rows) == 0
    assert len(history(archive)) == 12


def test_recover_restores_a_deleted_latest_without_moving_published_runs(published):
    _, archive = published
    (run_id,) = runs(archive)
    (archive / "latest").unlink()
    notes = Archive(archive).recover()
    assert any("restored" in n for n in notes)
    assert latest(archive) == run_id and runs(archive) == [run_id]
