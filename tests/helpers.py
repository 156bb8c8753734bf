"""Test helpers: fast fits with pymc.testing.mock_sample (prior draws, no MCMC); benchmark scripts
loaded as modules."""

from __future__ import annotations

import importlib.util
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pymc as pm
import pytest
from pymc.testing import mock_sample

import neutrality_forecast as nf

mock_with_stats = partial(
    mock_sample,
    sample_stats={
        "diverging": lambda size: np.zeros(size, dtype=bool),
        "energy": lambda size: np.random.default_rng(0).normal(size=size),
        "tree_depth": lambda size: np.full(size, 3),
    },
)


def mock_fit(case_set, config=None, *, draws=50, chains=2, monkeypatch: pytest.MonkeyPatch):
    """A FittedModel whose 'posterior' is prior draws (fast, for unit tests)."""
    monkeypatch.setattr(pm, "sample", mock_with_stats)
    config = config or nf.load_config()
    return nf.fit(case_set, config, sampler="pymc", draws=draws, chains=chains, seed=1)


def load_benchmark(name: str):
    """``benchmarks/<name>.py`` as a module (benchmarks are scripts, not a package; they
    import their shared ``_studies`` from their folder, as when run as scripts)."""
    folder = Path(__file__).resolve().parent.parent / "benchmarks"
    if str(folder) not in sys.path:
        sys.path.append(str(folder))
    path = folder / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
