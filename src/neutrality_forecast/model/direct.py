"""Direct-horizon model: P(event within h months) from what is known at the origin.

The alternative to the monthly hazard (:class:`~neutrality_forecast.model.hazard.HazardModel`)
tested as variant V7 of the model study (``docs/model-study.md``): instead of a monthly
hazard rolled forward over simulated future evidence, one logistic regression per family
and horizon on *forecast units* (question, origin ``d``, horizon ``h``), whose target is a
(new) occurrence in ``(d, d + h]`` and whose predictors are the covariates of the origin
month (events known before it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
from scipy.special import expit

from neutrality_forecast.model.hazard import zero_sum_basis

__all__ = ["DirectDesign", "DirectModel", "direct_design"]


@dataclass(frozen=True)
class DirectDesign:
    """Dense design of the forecast units and the names of its column blocks.

    ``z`` is (units x columns); ``blocks`` maps a parameter block (``alpha``, ``partner``,
    ``rho``, ``gamma``, ``beta``) to its column slice; ``evidence_cols`` are the columns
    zeroed for the evidence-free twin.
    """

    z: np.ndarray
    y: np.ndarray
    blocks: dict[str, slice]
    outcomes: list[str]
    horizons: list[int]
    partners: list[str]
    recurrent: list[str]
    linked: list[str]
    features: list[str]

    @property
    def evidence_cols(self) -> slice:
        """Columns of the evidence terms (``beta``)."""
        return self.blocks["beta"]

    def without_evidence(self) -> np.ndarray:
        """The design with the evidence columns set to zero (the evidence-free twin)."""
        z = self.z.copy()
        z[:, self.evidence_cols] = 0.0
        return z


def direct_design(
    units: pd.DataFrame,
    *,
    outcomes: list[str],
    horizons: list[int],
    partners: list[str],
    recurrent: list[str],
    linked: list[str],
    features: list[str],
) -> DirectDesign:
    """Build the design of ``units``.

    ``units`` needs ``outcome, horizon, partner_idx, recurrence, standing, occurred`` and
    one ``x:<feature>`` column per feature. Columns: family x horizon one-hot (``alpha``);
    recurrent family x partner one-hot (``partner``); recurrence per recurrent family
    (``rho``); standing per linked family (``gamma``); covariates per family (``beta``).
    """
    n, K, H, P, F = len(units), len(outcomes), len(horizons), len(partners), len(features)
    k = units["outcome"].map({o: i for i, o in enumerate(outcomes)}).to_numpy()
    if np.isnan(k.astype(float)).any():
        raise ValueError(f"units have outcomes outside {outcomes}")
    k = k.astype(int)
    j = units["horizon"].map({h: i for i, h in enumerate(horizons)}).to_numpy().astype(int)
    rows = np.arange(n)
    a = np.zeros((n, K * H))
    a[rows, k * H + j] = 1.0
    rec_of = np.array([recurrent.index(o) if o in recurrent else -1 for o in outcomes])[k]
    pidx = units["partner_idx"].to_numpy().astype(int)
    part = np.zeros((n, max(len(recurrent), 1) * P))
    ok = (rec_of >= 0) & (pidx >= 0)
    part[rows[ok], rec_of[ok] * P + pidx[ok]] = 1.0
    rho = np.zeros((n, len(recurrent)))
    rho[rows[rec_of >= 0], rec_of[rec_of >= 0]] = units["recurrence"].to_numpy()[rec_of >= 0]
    link_of = np.array([linked.index(o) if o in linked else -1 for o in outcomes])[k]
    gam = np.zeros((n, len(linked)))
    gam[rows[link_of >= 0], link_of[link_of >= 0]] = units["standing"].to_numpy()[link_of >= 0]
    x = units[[f"x:{f}" for f in features]].to_numpy(float) if F else np.zeros((n, 0))
    beta = np.zeros((n, K * F))
    for f in range(F):
        beta[rows, k * F + f] = x[:, f]
    parts = {"alpha": a, "partner": part, "rho": rho, "gamma": gam, "beta": beta}
    blocks, start = {}, 0
    for name, arr in parts.items():
        blocks[name] = slice(start, start + arr.shape[1])
        start += arr.shape[1]
    return DirectDesign(
        z=np.hstack(list(parts.values())), y=units["occurred"].to_numpy(float), blocks=blocks,
        outcomes=list(outcomes), horizons=list(horizons), partners=list(partners),
        recurrent=list(recurrent), linked=list(linked), features=list(features),
    )  # fmt: skip


class DirectModel:
    r"""Hierarchical logistic regression of an occurrence within ``h`` months.

    For forecast unit :math:`i` (question :math:`q` of family :math:`k`, origin :math:`d`,
    horizon :math:`h`):

    .. math::

        \operatorname{logit} P(y_i = 1) = \alpha_{kh} + \pi_{k,p(q)} + \rho_k r_{qd}
            + \gamma_k s_{qd} + \beta_k^\top x_{qd}

    with :math:`r_{qd} = \log(1 + \text{occurrences before } d)` (recurrent families),
    :math:`s_{qd}` the neutrality-standing indicator (linked families) and :math:`x_{qd}` the
    evidence covariates of the origin month. Priors (registered in ``docs/model-study.md``
    before the run):

    * :math:`\alpha_{kh} \sim \mathcal N(-3, 1.5)`: about 5 % within a horizon, with room
      from ~0.3 % to ~50 %;
    * partner offsets :math:`\pi_{k\cdot} = \sigma_\pi H z_k`, :math:`\sigma_\pi \sim
      \mathcal N^+(1)`, non-centred and summing to zero over partners (the family-horizon
      intercept carries the mean; as in the hazard model);
    * :math:`\rho_k, \gamma_k \sim \mathcal N(0, 1)`: a factor of e either way;
    * :math:`\beta_{kf} = \mu_f + \tau z_{kf}`, :math:`\mu_f \sim \mathcal N(m_f, 0.5)`
      (``feature_loc``), :math:`\tau \sim \mathcal N^+(0.5)`: effects pooled across the
      families.

    Scales are signed scale factors (:math:`\sigma = s|w|`, :math:`w \sim \mathcal N(0,1)`),
    as in :class:`~neutrality_forecast.model.hazard.HazardModel`. The likelihood is a
    Bernoulli log density weighted by ``w`` (1 = training unit, 0 = held out), so every
    leave-cluster-out fold has the same shapes and reuses one compiled sampler.

    Units overlap in time (a 24-month window holds four 6-month origins), so the posterior
    is narrower than the data warrant; the backtest scores the posterior mean only.
    """

    def __init__(self, design: DirectDesign, *, feature_loc: dict[str, float] | None = None):
        self.design = design
        self.feature_loc = feature_loc or {}

    def build_model(self) -> pm.Model:
        """The PyMC model (math in the class docstring)."""
        d = self.design
        K, H, P, F = len(d.outcomes), len(d.horizons), len(d.partners), len(d.features)
        R = max(len(d.recurrent), 1)
        with pm.Model() as model:
            z = pm.Data("z", d.z)
            y = pm.Data("y", d.y)
            w = pm.Data("w", np.ones_like(d.y))
            alpha = pm.Normal("alpha", -3.0, 1.5, shape=K * H)
            w_p = pm.Normal("w_partner", 0.0, 1.0)
            pm.Deterministic("sigma_partner", pt.abs(w_p))
            if P > 1:
                z_p = pm.Normal("z_partner", 0.0, 1.0, shape=(R, P - 1))
                partner = (w_p * pt.dot(z_p, zero_sum_basis(P).T)).reshape((R * P,))
            else:  # one partner: its offset is the family-horizon intercept
                partner = pt.zeros(R * P)
            rho = pm.Normal("rho", 0.0, 1.0, shape=len(d.recurrent))
            gamma = pm.Normal("gamma", 0.0, 1.0, shape=len(d.linked))
            loc = np.array([self.feature_loc.get(f, 0.0) for f in d.features])
            mu = pm.Normal("mu_beta", loc, 0.5, shape=F)
            w_b = pm.Normal("w_beta", 0.0, 1.0)
            pm.Deterministic("sigma_beta", 0.5 * pt.abs(w_b))
            z_b = pm.Normal("z_beta", 0.0, 1.0, shape=(K, F))
            beta = pm.Deterministic("beta", (mu + 0.5 * w_b * z_b).reshape((K * F,)))
            theta = pm.Deterministic("theta", pt.concatenate([alpha, partner, rho, gamma, beta]))
            eta = pt.dot(z, theta)
            pm.Potential("loglik", pt.sum(w * (y * eta - pt.softplus(eta))))
        return model

    @staticmethod
    def predict(theta: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Probabilities (draws x units) from ``theta`` draws (draws x columns)."""
        return expit(theta @ z.T)
