"""Model validation: prior predictive, SBC, recovery, sensitivity.

Fast smoke variants run in CI; the full runs are marked slow (``pytest -m slow``).
"""

from __future__ import annotations

import numpy as np
import pytest
from tests.conftest import TINY

import neutrality_forecast as nf
from neutrality_forecast.validation import (
    draws_from,
    parameter_recovery,
    pointwise_loglik,
    power_scaling_sensitivity,
    prior_base_rates,
    sbc,
    simulate_counts,
)


@pytest.fixture(scope="module")
def tiny():
    return nf.load_case_set(TINY)


def test_prior_predictive_base_rates_plausible(tiny):
    rates = prior_base_rates(tiny, nf.load_config(), draws=2000)
    assert (rates["p_year_median"].between(0.01, 0.15)).all()
    assert (rates["p_year_q05"] < 0.01).all()  # a stable state is possible a priori
    assert (rates["p_year_q95"] < 0.9).all()  # certainty within a year is not


def test_draws_and_simulation_consistent(tiny):
    from neutrality_forecast.validation import _prior

    cfg = nf.load_config()
    data = nf.build_model_data(tiny, cfg)
    prior = _prior(nf.HazardModel(data, cfg).build_model(), draws=3, random_seed=1)
    draws = draws_from(prior.prior, data)
    assert draws["u"].shape == (3, len(data.questions))
    y = simulate_counts(data, draws, 0, np.random.default_rng(0))
    assert y.shape == data.y.shape and (y <= np.ceil(data.trials)).all() and (y >= 0).all()


def test_sbc_smoke(tiny):
    ranks, tests = sbc(tiny, nf.load_config(), n_sims=3, draws=100, tune=100, chains=1, thin_to=19)
    assert set(ranks["sim"]) == {0, 1, 2}
    assert ranks["rank"].between(0, 19).all()
    assert {"mu_alpha", "sigma_beta", "gamma[0]", "rho[0]", "sigma_partner"} <= set(tests["param"])


@pytest.mark.slow
def test_sbc_ranks_uniform(tiny):
    ranks, tests = sbc(tiny, nf.load_config(), n_sims=100, draws=400, tune=400, chains=2)
    # Bonferroni over parameters at the 1 % level
    assert (tests["chi2_pvalue"] > 0.01 / len(tests)).all(), tests


@pytest.mark.slow
def test_parameter_recovery_nominal_coverage():
    cs = nf.load_case_set(nf.default_cases_dir())
    rec = parameter_recovery(cs, nf.load_config(), n_sims=10, draws=500, tune=500)
    assert 0.8 <= rec["covered"].mean() <= 0.98, rec.groupby("param")["covered"].mean()


@pytest.mark.slow
def test_power_scaling_sensitivity_reported():
    cs = nf.load_case_set(nf.default_cases_dir())
    fitted = nf.fit(cs, nf.load_config(), progressbar=False)
    sens = power_scaling_sensitivity(fitted)
    assert len(sens) >= 10
    assert sens[["prior", "likelihood"]].ge(0).all().all()


def test_pointwise_loglik_matches_model(tiny, monkeypatch):
    from tests.helpers import mock_fit

    fitted = mock_fit(tiny, monkeypatch=monkeypatch, draws=5)
    ll = pointwise_loglik(fitted)
    assert ll.shape == (2, 5, fitted.data.n_rows)
    assert (ll.values <= 1e-9).all()  # log probabilities of counts
