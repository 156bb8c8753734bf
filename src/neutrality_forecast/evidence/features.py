"""From monthly evidence inflow to the model's covariates (``[features]`` of evidence.toml).

One function, :func:`features`, builds the covariates of a question for a run of months
from its inflow (:class:`~neutrality_forecast.evidence.covariates.QuestionEvidence`). It is
used for the training rows *and* for forecasting (where the inflow is extended by simulated
future events, with a leading axis of posterior draws), so the covariates are computed
identically in both and only from events known before each month. Blocks (``blocks``):

``categories``
    ``x[t, j] = log1p(f_t * stock_h[t, j])`` for each evidence category ``j`` and each
    half-life ``h`` in ``half_lives`` (names ``j`` for one half-life, ``j@h`` for several).
``composites``
    Signed sums of the category covariates at the first half-life, e.g. ``alignment =
    partner_security + partner_political - partner_friction - bloc_rejection``
    (``[[features.composites]]``): few, interpretable indices instead of one effect per
    category.
``steps``
    ``log1p`` of the decayed count of formal precursor steps toward the question
    (``outcome_step``), with its own short half-life ``step_half_life_months``; not scaled
    by coding intensity (a formal step is rare and reported whatever the coding density).
``static``
    Case-partner covariates at the window start from the case set's optional
    ``covariates.csv`` (e.g. an alliance with the partner, its troops already present, a
    shared border, democracy), constant over time; 0 where not coded.
``surge``
    ``log1p(recent) - log1p(expected)``: the case's weighted event volume in the
    ``surge_months`` months informing ``t`` against what its earlier average rate would give
    over as many months (a causal "more than usual" signal).

Coding intensity (``[intensity] mode``). ``causal`` multiplies the category stocks of month
``t`` by ``f_t = clip(r0 / rate_t, min_factor, max_factor)`` where ``rate_t`` is the case's
weighted events per month over the months informing ``t`` (events known up to ``t - lag``),
shrunk toward the reference rate ``r0`` with ``prior_months`` pseudo-months:
``rate_t = (V_t + r0 * prior_months) / (n_t + prior_months)``. A densely coded case is then
not forecast higher for having more rows, and the factor at any month uses only earlier
events, in training as in forecasting. ``none`` leaves stocks unscaled.
"""

from __future__ import annotations

import numpy as np

from neutrality_forecast.config import EvidenceConfig
from neutrality_forecast.evidence.covariates import stock_from_inflow

__all__ = ["feature_names", "features", "intensity_factors"]


def _hl_suffix(h: float) -> str:
    return f"@{h:g}"


def feature_names(cfg: EvidenceConfig) -> list[str]:
    """Names of the covariates, in the model's column order."""
    f = cfg.features
    names: list[str] = []
    for block in f.blocks:
        if block == "categories":
            for h in f.half_lives:
                sfx = _hl_suffix(h) if len(f.half_lives) > 1 else ""
                names += [f"{c}{sfx}" for c in cfg.category_names]
        elif block == "composites":
            names += [c.name for c in f.composites]
        elif block == "steps":
            names.append("steps")
        elif block == "surge":
            names.append("surge")
        elif block == "static":
            names += [f"static:{c}" for c in f.static]
    return names


def intensity_factors(volume: np.ndarray, *, cfg: EvidenceConfig) -> np.ndarray:
    """Causal coding-intensity factor of each month, shape of ``volume`` (..., months).

    Month ``t`` uses the volume known up to ``t - lag`` (the months whose events inform it);
    returns ones when ``[intensity] mode = "none"``.
    """
    opt = cfg.intensity
    if opt.mode == "none":
        return np.ones_like(volume, dtype=float)
    lag = cfg.timing.lag_months
    n = volume.shape[-1]
    cum = np.cumsum(volume, axis=-1)
    seen = np.zeros_like(cum, dtype=float)
    if lag < n:
        seen[..., lag:] = cum[..., : n - lag] if lag else cum
    months_seen = np.clip(np.arange(n) - lag + 1, 0, None)
    rate = (seen + opt.reference_rate * opt.prior_months) / (months_seen + opt.prior_months)
    return np.clip(opt.reference_rate / rate, opt.min_factor, opt.max_factor)


def _surge(volume: np.ndarray, *, cfg: EvidenceConfig) -> np.ndarray:
    f, lag = cfg.features, cfg.timing.lag_months
    n, w = volume.shape[-1], f.surge_months
    cum = np.concatenate([np.zeros((*volume.shape[:-1], 1)), np.cumsum(volume, axis=-1)], -1)
    t = np.arange(n)
    hi = np.clip(t - lag + 1, 0, n)  # events of months < hi inform month t
    lo = np.clip(hi - w, 0, n)
    recent = cum[..., hi] - cum[..., lo]
    r0 = cfg.intensity.reference_rate
    earlier_rate = (cum[..., lo] + r0 * cfg.intensity.prior_months) / (
        lo + cfg.intensity.prior_months
    )
    return np.log1p(recent) - np.log1p(earlier_rate * (hi - lo))


def features(
    inflow: np.ndarray,
    steps: np.ndarray,
    volume: np.ndarray,
    *,
    cfg: EvidenceConfig,
    static: np.ndarray | None = None,
) -> np.ndarray:
    """Covariates ``(..., months, F)`` of the months covered by ``inflow``.

    Parameters
    ----------
    inflow : ndarray, shape (..., months, categories)
        Weighted category counts per month of knowledge, from the window start.
    steps : ndarray, shape (..., months)
        Weighted precursor steps toward the question per month.
    volume : ndarray, shape (..., months)
        The case's weighted event count per month (coding intensity).
    cfg : EvidenceConfig
        ``[timing]``, ``[intensity]`` and ``[features]`` settings.
    static : ndarray, optional
        The question's static covariates (block ``static``), constant over months.

    """
    f, lag = cfg.features, cfg.timing.lag_months
    factor = intensity_factors(volume, cfg=cfg)[..., None]
    blocks: list[np.ndarray] = []
    cat_x: list[np.ndarray] = []
    for h in f.half_lives:
        cat_x.append(np.log1p(factor * stock_from_inflow(inflow, half_life=h, lag=lag)))
    for block in f.blocks:
        if block == "categories":
            blocks += cat_x
        elif block == "composites":
            names = cfg.category_names
            for comp in f.composites:
                w = np.zeros(len(names))
                for name, value in comp.weights.items():
                    w[names.index(name)] = value
                blocks.append((cat_x[0] @ w)[..., None])
        elif block == "steps":
            stock = stock_from_inflow(steps[..., None], half_life=f.step_half_life_months, lag=lag)
            blocks.append(np.log1p(stock))
        elif block == "surge":
            blocks.append(_surge(volume, cfg=cfg)[..., None])
        elif block == "static":
            vals = np.zeros(len(f.static)) if static is None else np.asarray(static, float)
            blocks.append(np.broadcast_to(vals, (*inflow.shape[:-1], len(vals))))
    if not blocks:
        return np.zeros((*inflow.shape[:-1], 0))
    return np.concatenate(blocks, axis=-1)
