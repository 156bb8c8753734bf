"""Every notebook runs top to bottom with NF_FAST=1 (small sampling, relaxed gate)."""

from __future__ import annotations

import importlib.util
import os

import nbformat
import pytest
from nbclient import NotebookClient
from tests.conftest import REPO

NOTEBOOKS = REPO / "notebooks"
TIMEOUT = 1200  # per cell, seconds (the backtest cell is the slowest)


def _has_backtest() -> bool:
    try:
        return importlib.util.find_spec("neutrality_forecast.backtest") is not None
    except ImportError:
        return False


PARAMS = [
    "01_turkmenistan_forecast.ipynb",
    pytest.param(
        "02_backtest_and_calibration.ipynb",
        marks=pytest.mark.skipif(
            not _has_backtest(), reason="neutrality_forecast.backtest not available yet"
        ),
    ),
    "03_what_if.ipynb",
    "04_adding_evidence.ipynb",
]


def test_every_notebook_is_tested():
    names = {p if isinstance(p, str) else p.values[0] for p in PARAMS}
    assert names == {p.name for p in NOTEBOOKS.glob("*.ipynb")}


def test_outputs_are_stripped_in_git():
    for path in NOTEBOOKS.glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, path.name


@pytest.mark.parametrize("name", PARAMS)
def test_notebook_executes_in_fast_mode(name, monkeypatch, tmp_path):
    monkeypatch.setenv("NF_FAST", "1")
    monkeypatch.setenv("NF_NO_PROGRESS", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(
        nb,
        timeout=TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},  # run outside the repository
    )
    client.execute()
    text = "\n".join(
        out.get("text", "")
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.get("output_type") == "stream"
    )
    assert "FAST MODE" in text
    assert os.environ["NF_FAST"] == "1"


def _source(name: str) -> str:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    return "\n".join(c.source for c in nb.cells)


def test_fast_mode_is_declared_and_real_settings_are_default():
    for path in NOTEBOOKS.glob("*.ipynb"):
        src = _source(path.name)
        assert 'os.environ.get("NF_FAST", "") == "1"' in src, path.name
        assert "relaxed" in src.lower() or "RELAXED" in src, path.name
