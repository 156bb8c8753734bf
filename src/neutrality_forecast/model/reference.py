"""The textbook PyMC form of the hazard model: the benchmark baseline and a test oracle."""

from __future__ import annotations

import numpy as np
import pymc as pm

from neutrality_forecast.config import Config
from neutrality_forecast.model.data import ModelData
from neutrality_forecast.model.hazard import link_penalty

__all__ = ["ReferenceHazardModel"]


class ReferenceHazardModel:
    r"""The library's hazard model written the way a PyMC user would write it.

    Same statistical model, same priors (see ``HazardModel`` for the maths and the reasons),
    same data rows, in the common non-centred form:

    .. math::

        \sigma_\beta \sim \mathcal N^+(0.3), \quad \sigma_{u,k} \sim \mathcal N^+(1)
        \quad (\text{sampled as } \log\sigma), \qquad
        \beta_{kj} = \mu_{\beta,j} + \sigma_\beta z^\beta_{kj}, \quad
        u_{ck} = \sigma_{u,k} z^u_{ck},

    and the likelihood as an observed ``pm.Binomial`` with the linear predictor gathered
    by index, :math:`\eta_r = \alpha_{k_r} + u_{c_r k_r} + x_r^\top \beta_{k_r}
    - \gamma_{k_r} s_r`.

    It is not used to forecast. It exists so that (a) ``benchmarks/run.py`` can measure the
    library's default fit against PyMC's default NUTS on the model as commonly written
    (the library's own graph is measured too), and (b) tests can check that the library's
    faster parameterisation defines the same posterior (its log density differs only by
    the Jacobian of the change of variables and the binomial constants).
    """

    def __init__(self, data: ModelData, config: Config) -> None:
        self.data = data
        self.config = config

    @property
    def coords(self) -> dict[str, list[str]]:
        """Named dimensions of the parameters."""
        d = self.data
        return {
            "outcome": d.outcomes,
            "category": d.categories,
            "case": d.case_ids,
            "link_outcome": d.link_outcomes,
            "obs": np.arange(d.n_rows),
        }

    def build_model(self) -> pm.Model:
        """The PyMC model."""
        d, p = self.data, self.config.model.priors
        with pm.Model(coords=self.coords) as model:
            x = pm.Data("x", d.x, dims=("obs", "category"))
            c_idx = pm.Data("case_idx", d.case_idx, dims="obs")
            k_idx = pm.Data("outcome_idx", d.outcome_idx, dims="obs")
            standing = pm.Data("standing", d.standing, dims="obs")
            trials = pm.Data("trials", d.trials, dims="obs")

            mu_alpha = pm.Normal("mu_alpha", p.alpha_mu_loc, p.alpha_mu_scale)
            z_alpha = pm.Normal("z_alpha", 0.0, 1.0, dims="outcome")
            alpha = pm.Deterministic(
                "alpha", mu_alpha + p.alpha_sigma_scale * z_alpha, dims="outcome"
            )
            mu_beta = pm.Normal("mu_beta", 0.0, p.beta_mu_scale, dims="category")
            sigma_beta = pm.HalfNormal("sigma_beta", p.beta_sigma_scale)
            z_beta = pm.Normal("z_beta", 0.0, 1.0, dims=("outcome", "category"))
            beta = pm.Deterministic(
                "beta", mu_beta + sigma_beta * z_beta, dims=("outcome", "category")
            )
            sigma_case = pm.HalfNormal("sigma_case", p.case_sigma_scale, dims="outcome")
            z_case = pm.Normal("z_case", 0.0, 1.0, dims=("case", "outcome"))
            u = pm.Deterministic("u", sigma_case * z_case, dims=("case", "outcome"))

            gamma_k = link_penalty(d, p)

            eta = (
                alpha[k_idx]
                + u[c_idx, k_idx]
                + (x * beta[k_idx]).sum(axis=-1)
                - gamma_k[k_idx] * standing
            )
            pm.Binomial("y", n=trials, logit_p=eta, observed=d.y, dims="obs")
        return model
