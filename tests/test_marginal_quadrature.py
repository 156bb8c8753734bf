"""The question-effects study's integrated likelihood (benchmarks/marginal.py) is correct.

Variant C integrates every question effect out by adaptive Gauss-Hermite quadrature inside
the graph; here its log-likelihood is checked against brute-force integration on a fine
grid, question by question, at random parameter points of the tiny case set, and the
split ``HazardModel.build_model`` against the logit likelihood written out in NumPy.
"""

from __future__ import annotations

import numpy as np
import pytest
from pytensor.compile.mode import Mode
from scipy.special import logsumexp
from tests.helpers import load_benchmark

import neutrality_forecast as nf
from neutrality_forecast.model.data import build_model_data
from neutrality_forecast.model.hazard import HazardModel

PY = Mode(linker="py", optimizer="fast_run")


@pytest.fixture(scope="module")
def study():
    """benchmarks/marginal.py as a module."""
    return load_benchmark("marginal")


class _Spy:
    """Keeps the predictors and the prior of the question effects the model was built with."""

    def log_likelihood(self, data, eta, u):
        self.spy = (eta, u)
        return super().log_likelihood(data, eta, u)


def _point(model, rng, scale):
    ip = model.initial_point()
    return {k: ip[k] + rng.normal(size=np.shape(ip[k])) * scale for k in sorted(ip)}


def _evaluate(model, outs, point):
    outs = model.replace_rvs_by_values(outs)  # functions of the point, not random draws
    f = model.compile_fn(outs, inputs=model.value_vars, on_unused_input="ignore", mode=PY)
    return f(point)


@pytest.fixture(scope="module")
def tiny_data():
    from tests.conftest import TINY

    cfg = nf.load_config()
    return build_model_data(nf.load_case_set(TINY), cfg), cfg


@pytest.mark.parametrize("seed", [0, 1])
def test_integrated_likelihood_matches_grid_integration(tiny_data, study, seed):
    data, cfg = tiny_data
    spy = type("Spy", (_Spy, study.MarginalHazardModel), {})(data, cfg)
    model = spy.build_model()
    eta, (loc, scale) = spy.spy
    point = _point(model, np.random.default_rng(seed), 0.7)
    # small and large question scales: the large ones give the skewed integrands
    point["sigma_q_log__"] = np.log([0.3, 1.0, 2.2])
    *etas, loc_v, scale_v, ll = _evaluate(
        model, [eta[o] for o in data.outcomes] + [loc, scale, model["loglik"]], point
    )
    assert sorted(set(np.round(scale_v, 6))) == [0.3, 1.0, 2.2]
    inputs = data.model_inputs(pad_to=spy.pad_to)
    grid = np.linspace(-12.0, 12.0, 24001)  # standardised effect
    total = 0.0
    for q in range(len(data.questions)):
        u = loc_v[q] + scale_v[q] * grid
        lg = -0.5 * grid**2 - 0.5 * np.log(2 * np.pi)
        for k, o in enumerate(data.outcomes):
            sel = inputs[f"q_{o}"] == q
            sel &= inputs[f"trials_{o}"] > 0
            if not sel.any():
                continue
            y, n = inputs[f"y_{o}"][sel], inputs[f"trials_{o}"][sel]
            a = np.exp(etas[k][sel][:, None] + u[None, :])
            lg = lg + (y[:, None] * np.log(-np.expm1(-a)) - (n - y)[:, None] * a).sum(axis=0)
        total += logsumexp(lg) + np.log(grid[1] - grid[0])
    assert ll == pytest.approx(total, abs=2e-3)


def test_split_build_model_is_the_logit_likelihood(tiny_data):
    data, cfg = tiny_data
    spy = type("Spy", (_Spy, HazardModel), {})(data, cfg)
    model = spy.build_model()
    eta, u = spy.spy
    point = _point(model, np.random.default_rng(3), 0.3)
    *etas, u_v, ll = _evaluate(model, [eta[o] for o in data.outcomes] + [u, model["loglik"]], point)
    inputs = data.model_inputs(pad_to=spy.pad_to)
    expected = 0.0
    for k, o in enumerate(data.outcomes):
        e = etas[k] + u_v[inputs[f"q_{o}"]]
        expected += np.sum(inputs[f"y_{o}"] * e - inputs[f"trials_{o}"] * np.logaddexp(0.0, e))
    assert ll == pytest.approx(expected, rel=1e-10)
    assert [v.name for v in model.free_RVs] == [
        "mu_alpha", "alpha", "mu_beta", "w_beta", "z_beta", "w_partner", "z_partner",
        "w_shared", "z_shared", "w_q", "z_q", "rho", "gamma",
    ]  # fmt: skip


def test_float32_likelihood_is_the_float64_one_to_single_precision(tiny_data, study):
    data, cfg = tiny_data
    models = [cls(data, cfg).build_model() for cls in (HazardModel, study.Float32HazardModel)]
    point = _point(models[0], np.random.default_rng(4), 0.3)
    ll64, ll32 = (_evaluate(m, [m["loglik"]], point)[0] for m in models)
    assert ll32.dtype == np.float64
    assert ll32 == pytest.approx(ll64, rel=1e-5)
    assert ll32 != ll64  # evaluated in single precision, not the same graph
