"""Model validation: prior predictive, SBC, parameter recovery, prior sensitivity.

* **Prior predictive** (:func:`prior_base_rates`): the yearly probability of each outcome
  family implied by the priors alone, for a state with no evidence.
* **SBC** (:func:`sbc`, Talts et al. 2018): draw parameters from the prior, simulate outcomes
  from the model's own likelihood (binomial counts on the real at-risk design, which is held
  fixed), refit, and record the rank of each true value among thinned posterior draws. If
  inference is correct the ranks are uniform; uniformity is tested with a chi-square test
  per parameter. An honest equivalent of ``simuk``, which needs an observed random variable
  while this model uses a potential for speed.
* **Recovery** (:func:`parameter_recovery`): fixed known parameters, simulated data, the
  share of true values inside their 90 % posterior intervals (nominal 0.9).
* **Sensitivity** (:func:`power_scaling_sensitivity`): ArviZ's ``psens`` (Kallioinen et al.
  2023) on the prior and on the likelihood; a parameter with both values above 0.05 signals
  prior-data conflict, one with likelihood sensitivity below 0.05 is informed by the prior
  only.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pymc as pm
import xarray as xr
from scipy import stats

from neutrality_forecast.casesets import CaseSet
from neutrality_forecast.config import Config
from neutrality_forecast.model.data import ModelData, build_model_data
from neutrality_forecast.model.fitted import FittedModel, posterior_draws
from neutrality_forecast.model.hazard import HazardModel
from neutrality_forecast.model.likelihood import linear_predictor, pointwise_log_likelihood
from neutrality_forecast.sampling import CompiledModel

__all__ = [
    "SBC_PARAMS",
    "parameter_recovery",
    "pointwise_loglik",
    "power_scaling_sensitivity",
    "prior_base_rates",
    "sbc",
    "simulate_counts",
    "draws_from",
]

#: scalar summaries of the posterior tracked by SBC and recovery
SBC_PARAMS = (
    "mu_alpha", "sigma_beta", "alpha", "gamma", "mu_beta", "sigma_q", "sigma_partner", "rho",
)  # fmt: skip


def draws_from(ds: xr.Dataset, data: ModelData) -> dict[str, np.ndarray]:
    """Forecast-parameter draws of a posterior or prior group.

    See :func:`~neutrality_forecast.model.fitted.posterior_draws` (sample dimensions
    ``chain``/``draw``).
    """
    return posterior_draws(ds, data)


def pointwise_loglik(fitted: FittedModel, data: ModelData | None = None) -> xr.DataArray:
    """Log-likelihood of every data row for every posterior draw (chain, draw, obs).

    Rows with whole months get the binomial constant ``log C(n, y)``, so values are proper
    log probabilities; a partly observed month is ``(1 - h) ** f``, already a probability.
    """
    data = data or fitted.data
    post = fitted.idata.posterior
    ll = pointwise_log_likelihood(posterior_draws(post, data), data)
    whole = np.isclose(data.trials, np.round(data.trials))
    const = np.where(
        whole,
        stats.binom.logpmf(data.y, np.round(data.trials), 0.5)
        - np.round(data.trials) * np.log(0.5),
        0.0,
    )
    return xr.DataArray(
        (ll + const).reshape(post.sizes["chain"], post.sizes["draw"], -1),
        dims=("chain", "draw", "obs"),
    )


def simulate_counts(
    data: ModelData, draws: dict[str, np.ndarray], i: int, rng: np.random.Generator
) -> np.ndarray:
    """Counts per row simulated from draw ``i``.

    Binomial over the whole months of the row, plus a Bernoulli ``1 - (1 - h) ** f`` for a
    fractional month ``f``.
    """
    one = {k: v[i : i + 1] for k, v in draws.items()}
    eta = linear_predictor(
        one, outcome_idx=data.outcome_idx, partner_idx=data.partner_idx, x=data.x,
        recurrence=data.recurrence, standing=data.standing, q_idx=data.q_idx,
    )[0]  # fmt: skip
    h = 1.0 / (1.0 + np.exp(-eta))
    whole = np.floor(data.trials + 1e-9)
    frac = np.clip(data.trials - whole, 0.0, 1.0)
    return rng.binomial(whole.astype(int), h) + rng.binomial(1, 1.0 - (1.0 - h) ** frac)


def prior_base_rates(
    case_set: CaseSet, config: Config, *, draws: int = 4000, seed: int = 0
) -> pd.DataFrame:
    """Prior predictive yearly probability of each family for a state with no evidence."""
    data = build_model_data(case_set, config)
    model = HazardModel(data, config).build_model()
    prior = _prior(model, draws=draws, random_seed=seed, var_names=["alpha", "u"])
    alpha = prior.prior["alpha"].values.reshape(draws, -1)
    u = prior.prior["u"].values.reshape(draws, -1)
    first = [next(i for i, q in enumerate(data.questions) if q.outcome_idx == k)
             for k in range(len(data.outcomes))]  # fmt: skip
    monthly = 1.0 / (1.0 + np.exp(-(alpha + u[:, first])))
    yearly = 1.0 - (1.0 - monthly) ** 12
    rows = []
    for k, name in enumerate(data.outcomes):
        q = np.quantile(yearly[:, k], [0.05, 0.5, 0.95])
        rows.append(
            {"outcome": name, "p_year_q05": q[0], "p_year_median": q[1], "p_year_q95": q[2]}
        )
    return pd.DataFrame(rows)


def _prior(model: pm.Model, **kwargs):
    """Prior draws; the only potential is the likelihood, which the prior rightly ignores."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The effect of Potentials")
        with model:
            return pm.sample_prior_predictive(**kwargs)


def _scalars(ds: xr.Dataset, params=SBC_PARAMS) -> dict[str, np.ndarray]:
    """Every scalar element of ``params`` as (samples,) arrays, keyed ``name[i]``."""
    dims = [d for d in ("chain", "draw") if d in ds.dims]
    out = {}
    for name in params:
        if name not in ds:
            continue
        arr = ds[name].stack(sample=dims).transpose("sample", ...).values
        arr = arr.reshape(arr.shape[0], -1)
        for i in range(arr.shape[1]):
            out[f"{name}[{i}]" if arr.shape[1] > 1 else name] = arr[:, i]
    return out


def sbc(
    case_set: CaseSet,
    config: Config,
    *,
    n_sims: int = 100,
    draws: int = 500,
    tune: int = 500,
    chains: int = 2,
    thin_to: int = 99,
    seed: int = 0,
    sampler: str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Simulation-based calibration on ``case_set``'s design (compiled once).

    Returns the ranks (one row per simulation and parameter, rank in ``0..thin_to``) and a
    per-parameter uniformity test (chi-square over ``bins`` equal-width rank bins, with the
    p-value and the number of simulations).
    """
    data = build_model_data(case_set, config)
    model = HazardModel(data, config).build_model()
    compiled = CompiledModel(model, sampler=sampler or config.model.sampling.sampler)
    prior = _prior(model, draws=n_sims, random_seed=seed)
    truth = draws_from(prior.prior, data)
    truths = _scalars(prior.prior)
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_sims):
        y = simulate_counts(data, truth, i, rng)
        idata = compiled.sample(
            data.model_inputs(y=y),
            draws=draws, tune=tune, chains=chains, seed=seed + i + 1, progressbar=False,
        )  # fmt: skip
        post = _scalars(idata.posterior)
        for name, values in post.items():
            idx = np.linspace(0, len(values) - 1, thin_to).astype(int)
            rank = int((values[idx] < truths[name][i]).sum())
            rows.append({"sim": i, "param": name, "rank": rank, "events": int(y.sum())})
    ranks = pd.DataFrame(rows)
    bins = max(2, min(10, n_sims // 5))
    tests = []
    for name, grp in ranks.groupby("param"):
        counts, _ = np.histogram(grp["rank"], bins=bins, range=(0, thin_to + 1))
        tests.append(
            {"param": name, "n_sims": len(grp), "bins": bins,
             "chi2_pvalue": float(stats.chisquare(counts).pvalue)}
        )  # fmt: skip
    return ranks, pd.DataFrame(tests)


def parameter_recovery(
    case_set: CaseSet,
    config: Config,
    *,
    n_sims: int = 10,
    draws: int = 500,
    tune: int = 500,
    chains: int = 2,
    seed: int = 1,
    sampler: str | None = None,
) -> pd.DataFrame:
    """Coverage of 90 % intervals for parameters drawn once per simulation from the prior.

    One row per simulation and parameter: true value, posterior mean, 5 % and 95 %
    quantiles, ``covered``.
    """
    data = build_model_data(case_set, config)
    model = HazardModel(data, config).build_model()
    compiled = CompiledModel(model, sampler=sampler or config.model.sampling.sampler)
    prior = _prior(model, draws=n_sims, random_seed=seed + 1000)
    truth = draws_from(prior.prior, data)
    truths = _scalars(prior.prior)
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_sims):
        y = simulate_counts(data, truth, i, rng)
        idata = compiled.sample(
            data.model_inputs(y=y),
            draws=draws, tune=tune, chains=chains, seed=seed + i, progressbar=False,
        )  # fmt: skip
        for name, values in _scalars(idata.posterior).items():
            lo, hi = np.quantile(values, [0.05, 0.95])
            t = truths[name][i]
            rows.append(
                {"sim": i, "param": name, "true": t, "mean": values.mean(), "q05": lo,
                 "q95": hi, "covered": bool(lo <= t <= hi)}
            )  # fmt: skip
    return pd.DataFrame(rows)


def power_scaling_sensitivity(fitted: FittedModel) -> pd.DataFrame:
    """Prior and likelihood power-scaling sensitivity (``arviz.psens``) per parameter."""
    import arviz as az

    idata = fitted.idata.copy()
    model = HazardModel(fitted.data, fitted.config).build_model()
    if "log_prior" not in idata.groups():
        pm.compute_log_prior(idata, model=model, progressbar=False)
    idata.add_groups(
        {"log_likelihood": xr.Dataset({"y": pointwise_loglik(fitted)})}, warn_on_custom_groups=False
    )
    names = [n for n in ("mu_alpha", "alpha", "sigma_beta", "mu_beta", "sigma_q",
                         "sigma_partner", "rho", "gamma")
             if n in idata.posterior]  # fmt: skip
    prior = az.psens(idata, component="prior", var_names=names)
    lik = az.psens(idata, component="likelihood", var_names=names)
    rows = []
    for name in names:
        p, q = np.ravel(prior[name].values), np.ravel(lik[name].values)
        coords = [str(c) for c in np.ravel(idata.posterior[name].isel(chain=0, draw=0).coords.get(
            idata.posterior[name].dims[-1], [""]).values)] if p.size > 1 else [""]  # fmt: skip
        for i in range(p.size):
            label = f"{name}[{coords[i]}]" if p.size > 1 else name
            diag = "-"
            if p[i] >= 0.05 and q[i] >= 0.05:
                diag = "prior-data conflict"
            elif q[i] < 0.05:
                diag = "weak likelihood (prior dominates)"
            rows.append({"param": label, "prior": float(p[i]), "likelihood": float(q[i]),
                         "diagnosis": diag})  # fmt: skip
    return pd.DataFrame(rows)
