"""The hierarchical discrete-time hazard model (PyMC)."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from neutrality_forecast.config import Config, Priors
from neutrality_forecast.model.data import ModelData, padded_rows

__all__ = ["HazardModel", "link_penalty", "recurrence_effect", "zero_sum_basis"]


def zero_sum_basis(n: int) -> np.ndarray:
    """``n x (n - 1)`` orthonormal columns orthogonal to the ones vector (Helmert).

    ``H @ z`` with ``z ~ N(0, I)`` is a zero-sum vector whose elements each have variance
    ``(n - 1) / n`` (as :class:`pymc.ZeroSumNormal`, but without a transformed variable).
    """
    if n <= 1:
        return np.zeros((n, 0))
    h = np.zeros((n, n - 1))
    for j in range(1, n):
        h[:j, j - 1] = 1.0 / np.sqrt(j * (j + 1))
        h[j, j - 1] = -j / np.sqrt(j * (j + 1))
    return h


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


def recurrence_effect(data: ModelData, priors: Priors) -> pt.TensorVariable:
    """Per-family effect ``rho_k`` of earlier occurrences (0 for one-time families)."""
    rho_k = pt.zeros(len(data.outcomes))
    rec = data.recurrent_outcomes
    if rec:
        idx = np.array([data.outcomes.index(o) for o in rec], dtype=int)
        rho = pm.Normal("rho", 0.0, priors.recurrence_scale, dims="recurrent_outcome")
        rho_k = pt.set_subtensor(rho_k[idx], rho)
    return rho_k


class HazardModel:
    r"""Hierarchical monthly hazard model for neutrality revision, accords and basing.

    A question :math:`q` is a (case :math:`c`, family :math:`k`, partner :math:`p`). In
    month :math:`t` while it is at risk, the probability of an occurrence is

    .. math::

        \operatorname{logit} h_{qt} = \alpha_k + \pi_{kp} + v_c + u_q
            + \sum_f \beta_{kf}\, x_{qft} + \rho_k\, r_{qt} - \gamma_k\, s_{qt}

    with the likelihood :math:`y_{qt} \sim \mathrm{Bernoulli}(h_{qt})` over every at-risk
    month (a counting process for the recurrent families: after an occurrence the question
    is at risk for the next one), evaluated in the aggregated form
    :math:`\sum_r Y_r \eta_r - n_r \log(1 + e^{\eta_r})` over groups of months
    (:math:`n_r` may be fractional for a partly observed last month: :math:`(1-h)^{f}` is
    the chance of no occurrence in a fraction :math:`f` of it). Groups of months with
    identical covariates give exactly the monthly Bernoulli likelihood; with ``[likelihood]
    bin_width`` > 0 months without an occurrence are pooled within covariate bins at their
    mean covariates (exact event term, second-order exposure term:
    :func:`~neutrality_forecast.model.data.collapse_rows`).

    * :math:`x_{qft}`: evidence covariates from events known before month :math:`t`
      (:mod:`neutrality_forecast.evidence.features`: category stocks, composites,
      precursor steps; which ones is set in ``models/evidence.toml``).
    * :math:`r_{qt} = \log(1 + \text{earlier occurrences})` for recurrent families;
      :math:`\rho_k` is its effect (0 for the one-time neutrality revision).
    * :math:`s_{qt} = 1` while a state with a neutrality status has not revised it, for the
      linked families; :math:`\gamma_k` is the log-odds penalty standing neutrality puts on
      them. Learned, not a hard rule.
    * :math:`\pi_{kp}`: partner effects of the recurrent families (accords with the United
      States are more frequent than with China); :math:`v_c` a case effect shared by all of
      a case's questions (pooling across outcomes within a case); :math:`u_q` the
      question's own effect.

    Priors (values in ``models/model.toml``; non-centred except the family intercepts,
    which the reference population identifies well: non-centred, ``mu_alpha`` and the
    intercepts' offsets form a ridge the sampler walks slowly):

    .. math::

        \mu_\alpha &\sim \mathcal N(-5.5, 1.5^2), \quad
        \alpha_k \sim \mathcal N(\mu_\alpha, 0.75^2) \ \text{(centred)} \\
        \mu_{\beta,f} &\sim \mathcal N(m_f, 0.5^2), \quad
        \sigma_{\beta} \sim \mathcal N^+(0.3), \quad
        \beta_{kf} = \mu_{\beta,f} + \sigma_{\beta} z^{\beta}_{kf} \\
        \sigma_\pi &\sim \mathcal N^+(1), \quad \pi_{k\cdot} = \sigma_\pi H z^\pi_{k},
        \ \textstyle\sum_p \pi_{kp} = 0, \qquad
        \sigma_v \sim \mathcal N^+(0.5), \quad v_c = \sigma_v z^v_c \\
        \sigma_{u,k} &\sim \mathcal N^+(1), \quad u_q = \sigma_{u,k_q} z^u_q, \qquad
        \rho_k \sim \mathcal N(0, 1) \\
        \gamma_{\text{basing}} &\sim \mathcal N(2, 1), \quad
        \gamma_{\text{accord}} \sim \mathcal N(0.5, 1), \quad z \sim \mathcal N(0, 1)

    Scales are sampled as *signed scale factors*: :math:`\sigma = s\,|w|` with
    :math:`w \sim \mathcal N(0, 1)` and effects :math:`s\,w\,z`. This is the same model
    (:math:`|w| \sim \mathcal N^+(1)`, and the density of :math:`(w, z)` is unchanged by
    :math:`(w, z) \mapsto (-w, -z)`), but the sampler sees a near-Gaussian target instead
    of the skewed :math:`\log\sigma` (about twice the min-ESS per second,
    ``docs/performance.md``). Only :math:`\sigma = s|w|` and the effects are identified;
    only those enter the diagnostics gate and the forecasts.

    Why these priors:

    * ``mu_alpha``: :math:`\operatorname{logit}^{-1}(-5.5) \approx 0.4\%` per month, about
      5 % a year, for a major realignment step of a state under strain; the sd of 1.5 covers
      ~0.02 % to ~7 % a month. Family intercepts are pooled toward it with a fixed scale
      0.75 (three families cannot identify a learned scale).
    * ``beta``: one unit of :math:`x` is roughly 1.7 well-sourced events still in memory; an
      effect of 0.5 on the log odds (~1.6x the odds) is large for diplomatic signals, so
      effects are shrunk toward a mean shared by the families. ``m_f`` (``feature_loc``)
      is 0 unless theory gives a sign: e.g. the composite *alignment with the partner*
      (security and political cooperation minus friction and bloc rejection) is expected to
      raise accord and basing hazards (``m = 0.3``: the prior still gives ~27 % to a
      negative effect).
    * ``pi``: accord rates with different great powers differ by a factor of a few (e^1).
      They sum to zero over partners (:func:`zero_sum_basis`: orthonormal contrasts, each
      effect with variance ``sigma^2 (P-1)/P``), because every accord or basing row has a
      partner: free partner effects would be confounded with the family intercept and give
      the sampler a long ridge to walk.
    * ``v`` and ``u``: case and question effects up to ~e either way after the evidence;
      the shared case scale is half the question scale (most variation is between
      questions: who a state signs with).
    * ``rho``: an earlier accord with the same partner may make the next more likely
      (framework agreements are followed by protocols) or less (the need is met); centred
      on 0 with sd 1 (a factor e either way per log-unit of earlier occurrences).
    * ``gamma``: the seed document argues that a Chinese base "necessarily requires" a
      rethinking of neutrality: standing neutrality should divide the odds of basing by
      about :math:`e^2 \approx 7` (sd 1: ~2.7x to ~20x); for accords the effect is weaker
      (neutral states do sign cooperation treaties), centred at 0.5.

    Implementation: per family, :math:`\eta = Z_k\theta_k + u_{q}` with the dense design
    :math:`Z_k` of the family's population terms (intercept, partner, covariates,
    recurrence, standing; :meth:`ModelData.family_design`: its width does not depend on
    the number of cases) and the question effects *gathered* by index. The cost of a
    gradient grows with rows x (partners + covariates), not with cases x rows as a design
    with one column per case would, and splitting by family removes the structural zeros of
    one shared design (gradients ~3x cheaper than gathering every term by index, measured
    in ``benchmarks/run.py``). Rows are padded with empty rows
    (``n = y = 0``) to a multiple of :data:`~neutrality_forecast.model.data.ROW_BLOCK`:
    they add exactly 0 to the likelihood and its gradient, and let data sets that differ by
    a few rows share one compiled sampler.
    """

    def __init__(
        self, data: ModelData, config: Config, *, pad_to: dict[str, int] | None = None
    ) -> None:
        self.data = data
        self.config = config
        self.pad_to = pad_to or {
            o: padded_rows(int((data.outcome_idx == k).sum())) for k, o in enumerate(data.outcomes)
        }

    @property
    def coords(self) -> dict[str, list]:
        """Named dimensions of the parameters."""
        d = self.data
        return {
            "outcome": d.outcomes,
            "feature": d.features,
            "case": d.case_ids,
            "question": d.question_labels,
            "partner": d.partners,
            "contrast": np.arange(max(len(d.partners) - 1, 0)),
            "recurrent_outcome": d.recurrent_outcomes,
            "link_outcome": d.link_outcomes,
            **{f"obs_{o}": np.arange(self.pad_to[o]) for o in d.outcomes},
            **{f"column_{o}": d.family_columns(k) for k, o in enumerate(d.outcomes)},
        }

    def build_model(self) -> pm.Model:
        """The PyMC model (short on purpose: the math is in the class docstring)."""
        d = self.data
        inputs = d.model_inputs(pad_to=self.pad_to)
        with pm.Model(coords=self.coords) as model:
            data = {}
            for name, value in inputs.items():
                o = name.split("_", 1)[1]
                dims = (f"obs_{o}", f"column_{o}") if name.startswith("design_") else f"obs_{o}"
                data[name] = pm.Data(name, value, dims=dims)
            alpha, beta, partner, v = self.population_effects()
            u = self.question_effects(v)
            rho_k = recurrence_effect(d, self.config.model.priors)
            gamma_k = link_penalty(d, self.config.model.priors)
            eta = self.family_predictors(data, alpha, beta, partner, rho_k, gamma_k)
            pm.Potential("loglik", self.log_likelihood(data, eta, u))
        return model

    def population_effects(self) -> tuple[pt.TensorVariable, ...]:
        """Family intercepts, covariate effects, partner effects and case effects ``v``.

        Adds their free variables to the model in context (priors: the class docstring).
        """
        d, p = self.data, self.config.model.priors
        mu_alpha = pm.Normal("mu_alpha", p.alpha_mu_loc, p.alpha_mu_scale)
        alpha = pm.Normal("alpha", mu_alpha, p.alpha_sigma_scale, dims="outcome")

        loc = [p.feature_loc.get(f, 0.0) for f in d.features]
        mu_beta = pm.Normal("mu_beta", loc, p.beta_mu_scale, dims="feature")
        # signed scale factors: sigma = s |w|, effects s w z (see the class docstring)
        w_beta = pm.Normal("w_beta", 0.0, 1.0)
        pm.Deterministic("sigma_beta", p.beta_sigma_scale * pt.abs(w_beta))
        z_beta = pm.Normal("z_beta", 0.0, 1.0, dims=("outcome", "feature"))
        beta = pm.Deterministic(
            "beta", mu_beta + p.beta_sigma_scale * w_beta * z_beta, dims=("outcome", "feature")
        )

        w_partner = pm.Normal("w_partner", 0.0, 1.0)
        pm.Deterministic("sigma_partner", p.partner_sigma_scale * pt.abs(w_partner))
        # sum-to-zero across partners (orthonormal contrasts): the family intercept
        # carries the mean, so alpha and the partner effects are not confounded
        z_partner = pm.Normal("z_partner", 0.0, 1.0, dims=("recurrent_outcome", "contrast"))
        partner = pm.Deterministic(
            "partner_effect",
            p.partner_sigma_scale
            * w_partner
            * pt.dot(z_partner, zero_sum_basis(len(d.partners)).T),
            dims=("recurrent_outcome", "partner"),
        )

        w_shared = pm.Normal("w_shared", 0.0, 1.0)
        pm.Deterministic("sigma_shared", 0.5 * p.case_sigma_scale * pt.abs(w_shared))
        z_shared = pm.Normal("z_shared", 0.0, 1.0, dims="case")
        v = pm.Deterministic("v", 0.5 * p.case_sigma_scale * w_shared * z_shared, dims="case")
        return alpha, beta, partner, v

    def question_effects(self, v: pt.TensorVariable) -> pt.TensorVariable:
        """Question effects ``u_q = v_c + sigma_k z_q`` (signed scale factors, non-centred)."""
        d, p = self.data, self.config.model.priors
        q_outcome, q_case = d.question_outcome_idx, d.question_case_idx
        w_q = pm.Normal("w_q", 0.0, 1.0, dims="outcome")
        pm.Deterministic("sigma_q", p.case_sigma_scale * pt.abs(w_q), dims="outcome")
        z_q = pm.Normal("z_q", 0.0, 1.0, dims="question")
        return pm.Deterministic(
            "u", v[q_case] + p.case_sigma_scale * w_q[q_outcome] * z_q, dims="question"
        )

    def family_predictors(
        self, data: dict, alpha, beta, partner, rho_k, gamma_k
    ) -> dict[str, pt.TensorVariable]:
        """Per family, ``Z_k theta_k``: the linear predictor of its rows without ``u``."""
        thetas = self.family_parameters(alpha, beta, partner, rho_k, gamma_k)
        return {o: pt.dot(data[f"design_{o}"], thetas[o]) for o in self.data.outcomes}

    def family_parameters(self, alpha, beta, partner, rho_k, gamma_k) -> dict:
        """Per family, ``theta_k`` matching the columns of :meth:`ModelData.family_design`."""
        d = self.data
        out = {}
        for k, o in enumerate(d.outcomes):
            parts = [alpha[k : k + 1]]
            if o in d.recurrent_outcomes:
                parts.append(partner[d.recurrent_outcomes.index(o)])
            parts.append(beta[k])
            if o in d.recurrent_outcomes:
                parts.append(rho_k[k : k + 1])
            if o in d.link_outcomes:
                parts.append(-gamma_k[k : k + 1])
            out[o] = pt.concatenate(parts)
        return out

    def log_likelihood(self, data: dict, eta: dict, u: pt.TensorVariable) -> pt.TensorVariable:
        """Binomial log-likelihood (logit link, without ``log C(n, y)``) of every family's rows.

        The question effects are gathered by index: ``eta_r = Z_r theta_k + u[q_r]``.
        """
        loglik = 0.0
        for o in self.data.outcomes:
            e = eta[o] + u[data[f"q_{o}"]]
            loglik = loglik + pt.sum(data[f"y_{o}"] * e - data[f"trials_{o}"] * pt.softplus(e))
        return loglik
