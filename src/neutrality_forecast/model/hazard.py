"""The hierarchical discrete-time hazard model (PyMC)."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from neutrality_forecast.config import Config, Priors
from neutrality_forecast.model.data import ModelData, padded_rows

__all__ = ["HazardModel", "link_penalty"]


def link_penalty(data: ModelData, priors: Priors) -> pt.TensorVariable:
    """Per-family neutrality penalty ``gamma_k`` (0 for families without a link).

    Adds the free variable ``gamma`` (dims ``link_outcome``; priors ``link_loc`` /
    ``link_scale`` of ``models/model.toml``) to the model in context, if any family is linked.
    """
    gamma_k = pt.zeros(len(data.outcomes))
    if data.link_outcomes:
        link_k = np.array([data.outcomes.index(o) for o in data.link_outcomes], dtype=int)
        gamma = pm.Normal(
            "gamma",
            [priors.link_loc.get(o, 0.0) for o in data.link_outcomes],
            [priors.link_scale.get(o, 1.0) for o in data.link_outcomes],
            dims="link_outcome",
        )
        gamma_k = pt.set_subtensor(gamma_k[link_k], gamma)
    return gamma_k


class HazardModel:
    r"""Hierarchical monthly hazard model for neutrality revision, accords and basing.

    For case :math:`c`, outcome family :math:`k` and month :math:`t` while the outcome has
    not yet occurred, the probability that it occurs in month :math:`t` is

    .. math::

        \operatorname{logit} h_{ckt} = \alpha_k + u_{ck}
            + \sum_j \beta_{kj}\, x_{ckjt} - \gamma_k\, s_{ckt}

    and the likelihood is :math:`y_{ckt} \sim \mathrm{Bernoulli}(h_{ckt})` over every
    at-risk month, evaluated in the exactly equivalent aggregated form
    :math:`Y_r \sim \mathrm{Binomial}(n_r, h_r)` over groups of months with identical
    covariates, written as the potential
    :math:`\sum_r Y_r \eta_r - n_r \log(1 + e^{\eta_r})` (the binomial log-likelihood
    without its constant :math:`\log\binom{n_r}{Y_r}`, which costs a third of a gradient
    evaluation and carries no information).

    * :math:`x_{ckjt} = \log(1 + \text{stock})` is the Admiralty-weighted, exponentially
      decayed count of events of evidence category :math:`j` dated before month :math:`t`
      (see :mod:`neutrality_forecast.evidence`); categories depend on the outcome's partner.
    * :math:`s_{ckt} = 1` while a state with a neutrality status (anything but ``none``) has
      not yet revised it, for the linked families (``foreign_basing``, ``security_accord``
      by default); :math:`\gamma_k` is the log-odds penalty that standing neutrality puts
      on them. It is learned, not a hard rule.

    Priors (non-centred throughout; values in ``models/model.toml``):

    .. math::

        \mu_\alpha &\sim \mathcal N(-5.5, 1.5^2), \quad
        \alpha_k = \mu_\alpha + 0.75\, z^{\alpha}_k \\
        \mu_{\beta,j} &\sim \mathcal N(0, 0.5^2), \quad
        \sigma_{\beta} \sim \mathcal N^+(0.3), \quad
        \beta_{kj} = \mu_{\beta,j} + \sigma_{\beta} z^{\beta}_{kj} \\
        \sigma_{u,k} &\sim \mathcal N^+(1), \quad u_{ck} = \sigma_{u,k} z^u_{ck} \\
        \gamma_{\text{basing}} &\sim \mathcal N(2, 1), \quad
        \gamma_{\text{accord}} \sim \mathcal N(0.5, 1), \quad z \sim \mathcal N(0, 1)

    Sampled coordinates of the scales (*signed scale factors*). A half-normal scale is
    sampled as :math:`\sigma = s\,|w|` with :math:`w \sim \mathcal N(0, 1)` and the effects
    as :math:`s\,w\,z`:

    .. math::

        \sigma_\beta = 0.3\,|w_\beta|, \quad \beta_{kj} = \mu_{\beta,j} + 0.3\, w_\beta\,
        z^{\beta}_{kj}, \qquad \sigma_{u,k} = |w_{u,k}|, \quad u_{ck} = w_{u,k}\, z^u_{ck}.

    This is the *same* model: :math:`|w| \sim \mathcal N^+(1)`, and because the density of
    :math:`(w, z)` is unchanged by :math:`(w, z) \mapsto (-w, -z)`, the effects
    :math:`w z = |w|\,(\operatorname{sign}(w) z)` have exactly the law of
    :math:`\sigma z` above. (:class:`~neutrality_forecast.model.reference.ReferenceHazardModel`
    is the textbook form; ``tests/test_model.py`` checks that both define the same
    posterior up to the Jacobian of the change of variables.) Why: the data say little about
    these scales, so their posteriors stay close to the half-normal priors, and the usual
    coordinate :math:`\log\sigma` then has a long exponential left tail and a steep right
    side (measured: skewness -1.4 to -1.8, excess kurtosis 3 to 6; the four lowest ESS of the
    fit). NUTS must take small steps for the steep side and long trajectories for the tail.
    In :math:`w` the same prior is a standard normal, so the sampler sees a near-Gaussian
    target: about twice the min-ESS per second (``docs/performance.md``). The sign of
    :math:`w` and of its :math:`z` are not identified (mirror modes of equal mass); only
    :math:`\sigma = s|w|` and the effects are, and only those enter the diagnostics gate
    and every forecast.

    Why these priors:

    * ``mu_alpha``: :math:`\operatorname{logit}^{-1}(-5.5) \approx 0.4\%` per month, about
      5 % a year, is a plausible rate for a major realignment of a state already under
      strain; the sd of 1.5 lets the reference class move it from ~0.02 % to ~7 % a month.
      The three family intercepts :math:`\alpha_k` are pooled toward it with a *fixed*
      scale of 0.75 (``alpha_sigma_scale``): family rates within a factor ~4.5 of the common
      rate at +-2 sd. With three families a learned scale is not identified; in trials it
      was the one parameter that failed R-hat and ESS.
    * ``beta``: one unit of :math:`x` is roughly 1.7 well-sourced events still in memory; an
      effect of 0.5 on the log odds per unit (~1.6x the odds) is large for diplomatic
      signals, so effects are shrunk toward a category mean shared by the three families
      (partial pooling) with one learned spread ``sigma_beta`` (prior scale 0.3) common to
      all categories (21 family x category effects inform it; one scale per category, with
      three effects each, sampled with divergences).
    * ``sigma_u``: case effects up to ~e (2.7x odds) either way are plausible between,
      say, Finland and Turkmenistan, after the evidence is accounted for.
    * ``gamma``: the seed document argues that a Chinese base "necessarily requires" a
      rethinking of neutrality: standing neutrality should divide the odds of basing by
      about :math:`e^2 \approx 7`, with room (sd 1) from ~2.7x to ~20x. For accords the
      effect is weaker (neutral states do sign cooperation treaties), centred at 0.5.

    Implementation: the linear predictor of family :math:`k` is one dense product
    :math:`\eta_k = Z_k\theta_k` with :math:`\theta_k = (\alpha_k, u_{\cdot k}, \beta_k,
    -\gamma_k)` and the compact family design :math:`Z_k = [1, \text{case one-hot}, x, s]`
    of :meth:`ModelData.block_design`. This is the same function as the indexed form above,
    with a gradient made of small matrix-vector products instead of scatter/gather
    operations; splitting by family removes the structural zeros of one full design matrix
    (3.3x cheaper gradients than the full design, measured in ``benchmarks/run.py``).
    Each family's rows are padded with empty rows (``n = y = 0``, zero design) to a
    multiple of :data:`~neutrality_forecast.model.data.ROW_BLOCK`: they add exactly 0 to
    the likelihood and its gradient, and let data sets that differ by a few rows share one
    compiled sampler.

    Case effects are independent across outcomes: most cases carry one to three outcome
    rows, too few to learn a correlation matrix (an LKJ version sampled with divergences
    in trials).
    """

    def __init__(self, data: ModelData, config: Config) -> None:
        self.data = data
        self.config = config

    @property
    def coords(self) -> dict[str, list[str]]:
        """Named dimensions of the parameters."""
        return {
            "outcome": self.data.outcomes,
            "category": self.data.categories,
            "case": self.data.case_ids,
            "link_outcome": self.data.link_outcomes,
            **{
                f"obs_{o}": np.arange(padded_rows(int((self.data.outcome_idx == k).sum())))
                for k, o in enumerate(self.data.outcomes)
            },
            "column": np.arange(2 + len(self.data.case_ids) + self.data.x.shape[1]),
        }

    def build_model(self) -> pm.Model:
        """The PyMC model (short on purpose: the math is in the class docstring)."""
        d, p = self.data, self.config.model.priors
        inputs = d.model_inputs()
        with pm.Model(coords=self.coords) as model:
            mu_alpha = pm.Normal("mu_alpha", p.alpha_mu_loc, p.alpha_mu_scale)
            z_alpha = pm.Normal("z_alpha", 0.0, 1.0, dims="outcome")
            alpha = pm.Deterministic(
                "alpha", mu_alpha + p.alpha_sigma_scale * z_alpha, dims="outcome"
            )

            mu_beta = pm.Normal("mu_beta", 0.0, p.beta_mu_scale, dims="category")
            # signed scale factors: sigma = s |w|, effects s w z (see the class docstring)
            w_beta = pm.Normal("w_beta", 0.0, 1.0)
            pm.Deterministic("sigma_beta", p.beta_sigma_scale * pt.abs(w_beta))
            z_beta = pm.Normal("z_beta", 0.0, 1.0, dims=("outcome", "category"))
            beta = pm.Deterministic(
                "beta",
                mu_beta + p.beta_sigma_scale * w_beta * z_beta,
                dims=("outcome", "category"),
            )

            w_case = pm.Normal("w_case", 0.0, 1.0, dims="outcome")
            pm.Deterministic("sigma_case", p.case_sigma_scale * pt.abs(w_case), dims="outcome")
            z_case = pm.Normal("z_case", 0.0, 1.0, dims=("case", "outcome"))
            u = pm.Deterministic(
                "u", p.case_sigma_scale * w_case * z_case, dims=("case", "outcome")
            )

            gamma_k = link_penalty(d, p)

            # theta[k] = (alpha_k, u[:, k], beta_k, -gamma_k); eta_k = Z_k @ theta[k]
            theta = pt.concatenate([alpha[:, None], u.T, beta, -gamma_k[:, None]], axis=1)
            loglik = 0.0
            for k, o in enumerate(d.outcomes):
                z = pm.Data(f"design_{o}", inputs[f"design_{o}"], dims=(f"obs_{o}", "column"))
                n = pm.Data(f"trials_{o}", inputs[f"trials_{o}"], dims=f"obs_{o}")
                y = pm.Data(f"y_{o}", inputs[f"y_{o}"], dims=f"obs_{o}")
                eta = pt.dot(z, theta[k])
                # binomial log-likelihood without its constant log C(n, y)
                loglik = loglik + pt.sum(y * eta - n * pt.softplus(eta))
            pm.Potential("loglik", loglik)
        return model
