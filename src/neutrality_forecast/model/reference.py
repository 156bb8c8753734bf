"""The textbook PyMC form of the hazard model: the benchmark baseline and a test oracle."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from neutrality_forecast.config import Config
from neutrality_forecast.model.data import ModelData
from neutrality_forecast.model.hazard import link_penalty, recurrence_effect, zero_sum_basis

__all__ = ["ReferenceHazardModel"]


class ReferenceHazardModel:
    r"""The library's hazard model written the way a PyMC user would write it.

    Same statistical model, same priors (see ``HazardModel`` for the maths and the reasons),
    same data rows, in the common non-centred form with half-normal scales sampled on the
    log scale (PyMC's default transform):

    .. math::

        \sigma \sim \mathcal N^+(s), \qquad \text{effect} = \sigma z,

    for ``sigma_beta``, ``sigma_partner``, ``sigma_shared`` and ``sigma_q``, and every term
    of the linear predictor gathered by index (no dense design, no row padding):
    :math:`\eta_r = \alpha_{k_r} + \pi_{k_r p_r} + u_{q_r} + x_r^\top\beta_{k_r}
    + \rho_{k_r} r_r - \gamma_{k_r} s_r`. It is not used to forecast. It exists so that
    (a) the benchmarks can measure the library's default fit against PyMC's default NUTS
    on the model as commonly written, and (b) tests can check that the library's
    parameterisation defines the same posterior (the log densities differ only by the
    Jacobian of the change of variables).
    """

    def __init__(self, data: ModelData, config: Config) -> None:
        self.data = data
        self.config = config

    def build_model(self) -> pm.Model:
        """The PyMC model."""
        d, p = self.data, self.config.model.priors
        q_outcome, q_case = d.question_outcome_idx, d.question_case_idx
        coords = {
            "outcome": d.outcomes, "feature": d.features, "case": d.case_ids,
            "question": d.question_labels, "partner": d.partners,
            "recurrent_outcome": d.recurrent_outcomes, "link_outcome": d.link_outcomes,
            "contrast": np.arange(max(len(d.partners) - 1, 0)),
        }  # fmt: skip
        with pm.Model(coords=coords) as model:
            x = pm.Data("x", d.x)
            k = pm.Data("outcome_idx", d.outcome_idx)
            slot = pm.Data("partner_slot", d.partner_slot)
            q = pm.Data("q_idx", d.q_idx)
            rec = pm.Data("recurrence", d.recurrence)
            standing = pm.Data("standing", d.standing)

            mu_alpha = pm.Normal("mu_alpha", p.alpha_mu_loc, p.alpha_mu_scale)
            alpha = pm.Normal("alpha", mu_alpha, p.alpha_sigma_scale, dims="outcome")
            loc = [p.feature_loc.get(f, 0.0) for f in d.features]
            mu_beta = pm.Normal("mu_beta", loc, p.beta_mu_scale, dims="feature")
            sigma_beta = pm.HalfNormal("sigma_beta", p.beta_sigma_scale)
            z_beta = pm.Normal("z_beta", 0.0, 1.0, dims=("outcome", "feature"))
            beta = mu_beta + sigma_beta * z_beta
            sigma_partner = pm.HalfNormal("sigma_partner", p.partner_sigma_scale)
            z_partner = pm.Normal("z_partner", 0.0, 1.0, dims=("recurrent_outcome", "contrast"))
            basis = zero_sum_basis(len(d.partners))
            slots = pt.concatenate(
                [pt.zeros(1), (sigma_partner * pt.dot(z_partner, basis.T)).flatten()]
            )
            sigma_shared = pm.HalfNormal("sigma_shared", 0.5 * p.case_sigma_scale)
            z_shared = pm.Normal("z_shared", 0.0, 1.0, dims="case")
            sigma_q = pm.HalfNormal("sigma_q", p.case_sigma_scale, dims="outcome")
            z_q = pm.Normal("z_q", 0.0, 1.0, dims="question")
            u = sigma_shared * z_shared[q_case] + sigma_q[q_outcome] * z_q
            rho_k = recurrence_effect(d, p)
            gamma_k = link_penalty(d, p)
            eta = (
                alpha[k] + slots[slot] + u[q] + (x * beta[k]).sum(axis=-1)
                + rho_k[k] * rec - gamma_k[k] * standing
            )  # fmt: skip
            y, n = pm.Data("y", d.y), pm.Data("trials", d.trials)
            pm.Potential("loglik", pt.sum(y * eta - n * pt.softplus(eta)))
        return model
