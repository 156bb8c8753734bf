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

__all__ = ["feature_names", "features", "features_ahead", "intensity_factors"]


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
    if cfg.intensity.mode == "none":
        return np.ones_like(volume, dtype=float)
    cum, known = _volume_sums(volume, lag=cfg.timing.lag_months)
    return _factor(cum[..., known], np.arange(volume.shape[-1]), cfg=cfg)


def _volume_sums(volume: np.ndarray, *, lag: int) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative volume and, per month, the index of the volume known then.

    ``cum[..., k]`` sums months ``< k`` (a leading 0); at month ``t`` the events of months
    ``< t - lag + 1`` are known.
    """
    n = volume.shape[-1]
    cum = np.concatenate([np.zeros((*volume.shape[:-1], 1)), np.cumsum(volume, axis=-1)], -1)
    return cum, np.clip(np.arange(n) - lag + 1, 0, n)


def _factor(seen: np.ndarray, months: np.ndarray, *, cfg: EvidenceConfig) -> np.ndarray:
    """``clip(r0 / rate_t)`` from the volume ``seen`` by each month (module docstring)."""
    opt = cfg.intensity
    months_seen = np.clip(months - cfg.timing.lag_months + 1, 0, None)
    rate = (seen + opt.reference_rate * opt.prior_months) / (months_seen + opt.prior_months)
    return np.clip(opt.reference_rate / rate, opt.min_factor, opt.max_factor)


def _aggregates(
    inflow: np.ndarray, steps: np.ndarray, volume: np.ndarray, *, cfg: EvidenceConfig
) -> dict[str, np.ndarray]:
    """The linear, causal, shift-invariant summaries of the inflow that the covariates need.

    Every entry is linear in (``inflow``, ``steps``, ``volume``) and at month ``t`` uses only
    months ``<= t`` of them, counted from the first month of the arrays (zero before): the
    decayed category stocks per half-life, the decayed step stock, the volume known by
    ``t`` (``seen``), the volume of the ``surge_months`` months informing ``t``
    (``recent``) and the volume before those (``earlier``). So the summaries of a sum of
    arrays are the sums of their summaries, and those of an array that is zero before some
    month may be computed from that month on (:func:`features_ahead`).
    """
    f, lag = cfg.features, cfg.timing.lag_months
    out: dict[str, np.ndarray] = {}
    for i, h in enumerate(f.half_lives):
        out[f"stock{i}"] = stock_from_inflow(inflow, half_life=h, lag=lag)
    if "steps" in f.blocks:
        out["steps"] = stock_from_inflow(
            steps[..., None], half_life=f.step_half_life_months, lag=lag
        )[..., 0]
    if cfg.intensity.mode != "none" or "surge" in f.blocks:
        cum, known = _volume_sums(volume, lag=lag)
        out["seen"] = cum[..., known]
        if "surge" in f.blocks:
            lo = np.clip(known - f.surge_months, 0, None)
            out["recent"] = out["seen"] - cum[..., lo]
            out["earlier"] = cum[..., lo]
    return out


def _transform(
    agg: dict[str, np.ndarray],
    months: np.ndarray,
    *,
    cfg: EvidenceConfig,
    static: np.ndarray | None,
) -> np.ndarray:
    """Covariates ``(..., len(months), F)`` from the summaries of :func:`_aggregates`.

    ``months`` are the months' positions from the window start (they set the intensity's
    and the surge's month counts); every operation is elementwise in the month.
    """
    f, lag, opt = cfg.features, cfg.timing.lag_months, cfg.intensity
    lead = agg["stock0"].shape[:-1]  # (..., months)
    if opt.mode == "none":
        factor = np.ones((*lead, 1))
    else:
        factor = _factor(agg["seen"], months, cfg=cfg)[..., None]
    cat_x = [np.log1p(factor * agg[f"stock{i}"]) for i in range(len(f.half_lives))]
    blocks: list[np.ndarray] = []
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
            blocks.append(np.log1p(agg["steps"])[..., None])
        elif block == "surge":
            hi = np.clip(months - lag + 1, 0, None)
            lo = np.clip(hi - f.surge_months, 0, None)
            r0 = opt.reference_rate
            earlier_rate = (agg["earlier"] + r0 * opt.prior_months) / (lo + opt.prior_months)
            surge = np.log1p(agg["recent"]) - np.log1p(earlier_rate * (hi - lo))
            blocks.append(surge[..., None])
        elif block == "static":
            vals = np.zeros(len(f.static)) if static is None else np.asarray(static, float)
            blocks.append(np.broadcast_to(vals, (*lead, len(vals))))
    if not blocks:
        return np.zeros((*lead, 0))
    return np.concatenate(blocks, axis=-1)


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
    agg = _aggregates(inflow, steps, volume, cfg=cfg)
    return _transform(agg, np.arange(inflow.shape[-2]), cfg=cfg, static=static)


def features_ahead(
    base: tuple[np.ndarray, np.ndarray, np.ndarray],
    added: tuple[np.ndarray, np.ndarray, np.ndarray],
    *,
    cfg: EvidenceConfig,
    static: np.ndarray | None = None,
) -> np.ndarray:
    """Covariates of the last months of a history common to every draw plus per-draw arrivals.

    ``base = (inflow, steps, volume)`` covers the ``T`` months from the window start
    (shapes as in :func:`features`, no draw axis); ``added`` holds what each draw adds to
    the last ``n`` of them, with a leading draw axis (``(D, n, categories)``, ``(D, n)``,
    ``(D, n)``). Returns ``(D, n, F)``, equal to ``features(base + added)[:, -n:]`` with
    ``added`` padded by zeros in front, but the history's summaries are computed once
    instead of once per draw (the summaries are linear, causal and shift-invariant:
    :func:`_aggregates`); a forecast with 12,000 draws and 25 future months of a 20-year
    window does ~10x less work.
    """
    n_total = base[0].shape[-2]
    n = added[0].shape[-2]
    hist = _aggregates(*base, cfg=cfg)
    new = _aggregates(*added, cfg=cfg)
    # the history has no draw axis: months are its first axis in every summary
    agg = {key: hist[key][-n:] + a for key, a in new.items()}
    months = np.arange(n_total - n, n_total)
    return _transform(agg, months, cfg=cfg, static=static)
