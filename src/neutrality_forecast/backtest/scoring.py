"""Proper scores, the CORP Murphy decomposition and reliability diagrams.

Scores come from :mod:`scoringrules` (Brier score and logarithmic score for binary events,
both negatively oriented: lower is better). The decomposition follows Dimitriadis, Gneiting
and Jordan (2021), "Stable reliability diagrams for probabilistic classifiers" (CORP): the
forecasts are recalibrated by isotonic regression (pool-adjacent-violators,
:func:`scipy.optimize.isotonic_regression`), and

``mean score = MCB - DSC + UNC``

with miscalibration ``MCB = S(p) - S(p_recal)``, discrimination ``DSC = S(base) - S(p_recal)``
and uncertainty ``UNC = S(base)`` where ``base`` is the observed frequency.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import scoringrules as sr  # noqa: E402
from scipy.optimize import isotonic_regression  # noqa: E402

__all__ = ["brier", "corp_recalibrate", "log_score", "murphy", "reliability_diagram"]

#: probabilities are clipped to [EPS, 1 - EPS] before the log score (a forecast of exactly
#: 0 for an event that happens would otherwise score infinity)
EPS = 1e-4


def brier(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Brier score per forecast: ``(p - y)**2``."""
    return np.asarray(sr.brier_score(np.asarray(y, float), np.asarray(p, float)))


def log_score(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Logarithmic score per forecast: ``-log(p)`` if the event happened else ``-log(1-p)``."""
    q = np.clip(np.asarray(p, float), EPS, 1 - EPS)
    return np.asarray(sr.log_score(np.asarray(y, float), q))


def corp_recalibrate(p: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Isotonic (PAV) recalibration: returns sorted ``p`` and the recalibrated values.

    Tied forecasts are pooled first (CORP, Dimitriadis et al. 2021): equal forecast values
    get one recalibrated value, the mean outcome of their block merged by PAV. Without
    pooling, PAV could order the outcomes *within* a tie and invent discrimination the
    forecasts do not have.
    """
    p, y = np.asarray(p, float), np.asarray(y, float)
    order = np.argsort(p, kind="stable")
    ps, ys = p[order], y[order]
    values, start, counts = np.unique(ps, return_index=True, return_counts=True)
    means = np.add.reduceat(ys, start) / counts if len(ps) else np.zeros(0)
    fitted_blocks = isotonic_regression(means, weights=counts.astype(float), increasing=True).x
    return ps, np.repeat(fitted_blocks, counts)


def murphy(p: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """CORP decomposition of the mean Brier score: ``score = MCB - DSC + UNC``."""
    p, y = np.asarray(p, float), np.asarray(y, float)
    if len(p) == 0:
        return {
            "score": float("nan"),
            "mcb": float("nan"),
            "dsc": float("nan"),
            "unc": float("nan"),
        }
    order = np.argsort(p, kind="stable")
    _, recal = corp_recalibrate(p, y)
    y_sorted = y[order]
    score = float(brier(p, y).mean())
    score_recal = float(((recal - y_sorted) ** 2).mean())
    base = y.mean()
    unc = float(((base - y) ** 2).mean())
    return {
        "score": score,
        "mcb": score - score_recal,
        "dsc": unc - score_recal,
        "unc": unc,
    }


def reliability_diagram(
    curves: dict[str, tuple[np.ndarray, np.ndarray]],
    path: str | Path | None = None,
    *,
    n_boot: int = 200,
    seed: int = 0,
    title: str = "Reliability (CORP, isotonic) with 90% bootstrap bands",
) -> plt.Figure:
    """CORP reliability curves (recalibrated vs forecast probability) per model.

    Bands: 5-95 % of the CORP curve over ``n_boot`` bootstrap resamples of the forecasts
    (evaluated on a grid), a consistency-style check of sampling variability.
    """
    rng = np.random.default_rng(seed)
    fig, (ax, axh) = plt.subplots(
        2, 1, figsize=(6.5, 7), dpi=110, gridspec_kw={"height_ratios": [3, 1]}, sharex=True
    )
    grid = np.linspace(0, 1, 101)
    for (name, (p, y)), color in zip(curves.items(), ["C0", "C1", "C2", "C3"], strict=False):
        p, y = np.asarray(p, float), np.asarray(y, float)
        if len(p) == 0:
            continue
        xs, recal = corp_recalibrate(p, y)
        boots = []
        for _ in range(n_boot):
            idx = rng.integers(0, len(p), len(p))
            bx, br = corp_recalibrate(p[idx], y[idx])
            boots.append(np.interp(grid, bx, br))
        lo, hi = np.quantile(np.array(boots), [0.05, 0.95], axis=0)
        in_range = (grid >= xs.min()) & (grid <= xs.max())
        ax.fill_between(grid[in_range], lo[in_range], hi[in_range], color=color, alpha=0.15)
        ax.step(xs, recal, where="post", color=color, label=f"{name} (n={len(p)})")
        axh.hist(p, bins=20, range=(0, 1), color=color, alpha=0.5)
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=0.8)
    ax.set_ylabel("observed frequency (recalibrated)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper left")
    axh.set_xlabel("forecast probability")
    axh.set_ylabel("forecasts")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path)
        plt.close(fig)
    return fig
