"""A fit that diverges is sampled again with smaller steps, and every attempt is recorded."""

from __future__ import annotations

import json

import numpy as np
import pymc as pm
import pytest
from pydantic import ValidationError
from pymc.testing import mock_sample
from tests.conftest import TINY

import neutrality_forecast as nf
from neutrality_forecast.export.run import write_diagnostics


def _diverging_below(threshold: float, n_divergent: int, calls: list):
    """A mock ``pm.sample`` whose draws diverge while target_accept < threshold."""

    def sample(*args, target_accept=0.8, random_seed=None, **kwargs):
        calls.append((target_accept, random_seed))
        k = n_divergent if target_accept < threshold else 0

        def diverging(size):
            flags = np.zeros(size, dtype=bool)
            flags.flat[:k] = True
            return flags

        stats = {
            "diverging": diverging,
            "energy": lambda size: np.random.default_rng(0).normal(size=size),
            "tree_depth": lambda size: np.full(size, 3),
        }
        return mock_sample(*args, sample_stats=stats, random_seed=random_seed, **kwargs)

    return sample


#: the shipped policy: first target_accept, then the retries (models/model.toml)
_S = nf.load_config().model.sampling
FIRST, RETRY = _S.target_accept, _S.retry_target_accept


def test_shipped_policy_starts_at_the_studied_target():
    """0.9, then 0.95 and 0.99: the initial step-size study (docs/performance.md)."""
    assert (FIRST, RETRY) == (0.9, [0.95, 0.99])


def test_divergent_fit_is_sampled_again_at_the_next_target(monkeypatch, tmp_path):
    calls: list = []
    monkeypatch.setattr(pm, "sample", _diverging_below(RETRY[0], 3, calls))
    cs = nf.load_case_set(TINY)
    fitted = nf.fit(cs, nf.load_config(), sampler="pymc", draws=40, chains=2, seed=11)
    assert [c[0] for c in calls] == [FIRST, RETRY[0]]
    assert {c[1] for c in calls} == {11}  # same seed for every attempt
    attempts = fitted.attempts
    assert [(a["target_accept"], a["divergences"]) for a in attempts] == [(FIRST, 3), (RETRY[0], 0)]
    assert all(a["seconds"] >= 0 for a in attempts)
    assert fitted.gate.divergences == 0  # the gate judges the kept attempt
    write_diagnostics(fitted, tmp_path)
    diag = json.loads((tmp_path / "diagnostics.json").read_text())
    assert diag["attempts"] == attempts
    # the attempts survive save/load with the posterior
    again = nf.load_fitted(fitted.save(tmp_path / "post.nc"), cs)
    assert again.attempts == attempts


def test_a_fit_that_never_stops_diverging_fails_the_gate(monkeypatch):
    calls: list = []
    monkeypatch.setattr(pm, "sample", _diverging_below(1.0, 2, calls))
    cs = nf.load_case_set(TINY)
    fitted = nf.fit(cs, nf.load_config(), sampler="pymc", draws=40, chains=2)
    assert [c[0] for c in calls] == [FIRST, *RETRY]
    assert [a["divergences"] for a in fitted.attempts] == [2, 2, 2]
    assert not fitted.gate.passed and "divergences" in fitted.gate.failed


def test_a_clean_first_attempt_is_kept(monkeypatch):
    calls: list = []
    monkeypatch.setattr(pm, "sample", _diverging_below(0.5, 5, calls))
    fitted = nf.fit(nf.load_case_set(TINY), nf.load_config(), sampler="pymc", draws=40, chains=2)
    assert [c[0] for c in calls] == [FIRST]
    assert fitted.attempts == [{"target_accept": FIRST, "divergences": 0, "draws": 40,
                                "seconds": fitted.attempts[0]["seconds"]}]  # fmt: skip


@pytest.mark.parametrize("retries", [[0.7], [0.95, 0.9], [0.95, 1.0]])
def test_retry_targets_must_increase_below_one(retries):
    with pytest.raises(ValidationError, match="retry_target_accept"):
        nf.load_config().with_updates(sampling={"retry_target_accept": retries})
