r"""Instant updates: reweight a previous posterior to new data by PSIS.

When the data change only a little (a few coded events added, edited or removed), the
posterior given the new data is close to the previous one and can be obtained without MCMC:
for each previous draw :math:`\theta_s` the importance ratio is the likelihood ratio

.. math::

    \log r_s = \ell_{\text{new}}(\theta_s) - \ell_{\text{old}}(\theta_s), \qquad
    \ell(\theta) = \sum_r y_r \eta_r - n_r \log(1 + e^{\eta_r}),

with the linear predictor :math:`\eta` of :class:`HazardModel`
(:func:`~neutrality_forecast.model.likelihood.linear_predictor`; the priors cancel: they do
not depend on the data). The ratios are Pareto-smoothed with
:func:`arviz.psislw` (Vehtari, Simpson, Gelman, Yao, Gabry 2024). The update is accepted
only when

* the Pareto shape :math:`\hat k \le 0.7` (``max_khat``): above it the importance-sampling
  estimate is unreliable, and
* the effective sample size of the weights :math:`1 / \sum_s w_s^2 \ge 400`
  (``min_ess``, the gate's bulk-ESS minimum, so an updated posterior never rests on
  fewer effective draws than a published MCMC fit must have).

Otherwise the caller refits. Accepted weights are turned into an equally weighted
posterior of the same size by seeded *systematic resampling* (randomly permuted so the
chains stay exchangeable), so all forecast code runs unchanged on the result.

The previous posterior used is always that of the last *full fit* (the "base" run), never a
resampled one, so repeated instant updates do not lose draws: the ratios compare the
current data with the base fit's data.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from neutrality_forecast.casesets import CaseSet
from neutrality_forecast.model.data import ModelData
from neutrality_forecast.model.likelihood import log_likelihood

__all__ = [
    "PsisOptions",
    "PsisResult",
    "changed_cases",
    "log_likelihood",
    "psis_reweight",
    "resample_idata",
    "smooth_weights",
    "systematic_resample",
    "update_log_ratios",
]


@dataclass(frozen=True)
class PsisOptions:
    """When an instant update is tried and accepted.

    Attributes
    ----------
    max_khat : float
        Largest accepted Pareto shape of the smoothed weights (0.7).
    min_ess : float
        Smallest accepted effective sample size of the weights (400).
    max_events : int
        Most changed events (added + edited + removed, any case) for which an update is
        attempted at all (25); larger changes go straight to a refit.

    """

    max_khat: float = 0.7
    min_ess: float = 400.0
    max_events: int = 25


@dataclass
class PsisResult:
    """Smoothed log weights and the acceptance decision."""

    log_weights: np.ndarray
    khat: float
    ess: float
    n_draws: int
    accepted: bool
    reason: str
    options: PsisOptions
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def weights(self) -> np.ndarray:
        """Normalised weights (sum to 1)."""
        w = np.exp(self.log_weights - self.log_weights.max())
        return w / w.sum()

    def to_dict(self) -> dict:
        """JSON-ready summary (no per-draw arrays)."""
        return {
            "khat": float(self.khat),
            "ess": float(self.ess),
            "ess_fraction": float(self.ess / self.n_draws) if self.n_draws else 0.0,
            "n_draws": int(self.n_draws),
            "accepted": bool(self.accepted),
            "reason": self.reason,
            "thresholds": {"max_khat": self.options.max_khat, "min_ess": self.options.min_ess},
            "seconds": round(self.seconds, 3),
            **self.extra,
        }


def changed_cases(old: CaseSet, new: CaseSet) -> list[str]:
    """Cases of ``new`` whose events differ from those in ``old`` (added, edited, removed).

    Raises ``ValueError`` when the case lists differ (parameter shapes would not match).
    """
    if old.case_ids != new.case_ids:
        raise ValueError("the case list changed: an instant update needs the same cases")
    cols = [c for c in new.events.columns if c in old.events.columns]

    def per_case(cs: CaseSet) -> dict[str, int]:
        ev = cs.events[cols].sort_values("event_id", kind="stable")
        h = pd.util.hash_pandas_object(ev.astype(str), index=False).to_numpy()
        keys = ev["case_id"].astype(str).to_numpy()
        out: dict[str, int] = {}
        for case in np.unique(keys):
            out[case] = hash(h[keys == case].tobytes())
        return out

    a, b = per_case(old), per_case(new)
    return [c for c in new.case_ids if a.get(c) != b.get(c)]


def update_log_ratios(
    draws: dict[str, np.ndarray], old: ModelData, new: ModelData, changed: list[str]
) -> np.ndarray:
    """Log importance ratios ``l_new - l_old`` of every draw, from the changed cases' rows.

    The log-likelihood is a sum over cases, and the rows of a case depend only on that
    case's own events, outcomes and window (and the configuration, which an instant update
    requires unchanged). So the rows of unchanged cases cancel exactly and only the rows of
    ``changed`` (:func:`changed_cases`) are evaluated, for the old and the new data.
    """
    if old.case_ids != new.case_ids:
        raise ValueError("the case list changed: an instant update needs the same cases")
    if old.question_labels != new.question_labels:
        raise ValueError("the questions changed: an instant update needs the same questions")
    return log_likelihood(draws, new, rows=new.rows_of(changed)) - log_likelihood(
        draws, old, rows=old.rows_of(changed)
    )


def psis_reweight(log_ratios: np.ndarray, *, options: PsisOptions | None = None) -> PsisResult:
    """Pareto-smooth ``log_ratios`` and decide whether the update is reliable."""
    options = options or PsisOptions()
    start = time.perf_counter()
    log_ratios = np.asarray(log_ratios, dtype=float)
    n = log_ratios.size
    if not np.all(np.isfinite(log_ratios)):
        return PsisResult(
            np.full(n, -np.log(n)), np.inf, 0.0, n, False, "non-finite likelihood ratios", options
        )
    lw, khat, _, ess = smooth_weights(log_ratios)
    if not khat <= options.max_khat:
        accepted, reason = False, f"k-hat {khat:.2f} > {options.max_khat}"
    elif ess < options.min_ess:
        accepted, reason = False, f"weights ESS {ess:.0f} < {options.min_ess:g}"
    else:
        accepted = True
        reason = (
            f"k-hat {khat:.2f} <= {options.max_khat} and weights ESS {ess:.0f} >= "
            f"{options.min_ess:g}"
        )
    return PsisResult(
        lw, khat, ess, n, accepted, reason, options, seconds=time.perf_counter() - start
    )


def smooth_weights(log_w: np.ndarray) -> tuple[np.ndarray, float, np.ndarray, float]:
    """Pareto-smoothed log weights, k-hat, normalised weights and their ESS.

    ``log_w`` (finite, any shape: flattened) goes through :func:`arviz.psislw`, which returns
    the smoothed log weights normalised, so the weights are their exponentials over their
    sum (one pass, no log-sum-exp). Weights that are all equal (the likelihood did not
    change) are uniform with k-hat 0: the Pareto fit is degenerate there (k-hat = inf).
    The ESS is ``1 / sum(w**2)``.
    """
    flat = np.asarray(log_w, dtype=float).ravel()
    if np.ptp(flat) < 1e-12:
        lw, khat = np.full(flat.size, -np.log(flat.size)), 0.0
    else:
        with np.errstate(over="ignore"):  # ArviZ's Pareto fit: exp overflow -> weight 0
            lw, khat = az.psislw(flat - flat.max())
        lw, khat = np.asarray(lw, dtype=float), float(np.asarray(khat))
    w = np.exp(lw)
    w /= w.sum()
    return lw, khat, w, float(1.0 / np.dot(w, w))


def systematic_resample(weights: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``n`` draws by systematic resampling (lowest-variance unbiased scheme)."""
    w = np.asarray(weights, dtype=float)
    cdf = np.cumsum(w / w.sum())
    cdf[-1] = 1.0
    points = (rng.uniform() + np.arange(n)) / n
    return np.searchsorted(cdf, points, side="right").clip(0, len(w) - 1)


def resample_idata(
    idata: az.InferenceData, weights: np.ndarray, *, seed: int | np.random.SeedSequence
) -> tuple[az.InferenceData, np.ndarray]:
    """An equally weighted posterior with the shape of ``idata``'s, drawn by ``weights``.

    ``weights`` are over the stacked ``(chain, draw)`` samples in C order. Systematic
    resampling is followed by a random permutation so no chain holds a sorted block.
    ``sample_stats`` (the MCMC diagnostics of the draws being reweighted) are kept.
    Returns the new InferenceData and the source index of every resampled draw.
    """
    post = idata.posterior
    n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
    total = n_chain * n_draw
    rng = np.random.default_rng(seed)
    idx = systematic_resample(weights, total, rng)
    idx = idx[rng.permutation(total)]
    data_vars = {}
    for name, var in post.data_vars.items():
        var = var.transpose("chain", "draw", ...)
        flat = var.values.reshape(total, *var.shape[2:])[idx]
        data_vars[name] = (var.dims, flat.reshape(var.shape), var.attrs)
    new_post = xr.Dataset(data_vars, coords=post.coords, attrs=dict(post.attrs))
    groups = {"posterior": new_post}
    if "sample_stats" in idata.groups():
        groups["sample_stats"] = idata.sample_stats
    out = az.InferenceData(**groups)
    out.attrs.update(idata.attrs)
    return out, idx
