"""Figures: fan chart, diagnostics (rank and energy), probability over time."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import arviz as az  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

__all__ = ["diagnostic_plots", "fan_chart", "probability_over_time"]

COLORS = {
    "neutrality_revision": "#1b6ca8",
    "security_accord": "#c0392b",
    "foreign_basing": "#7d3c98",
}
LABELS = {
    "neutrality_revision": "Neutrality revision",
    "security_accord": "Security accord",
    "foreign_basing": "Foreign basing",
}


def _label(row: pd.Series | dict) -> str:
    partner = row.get("partner") or ""
    base = LABELS.get(row["outcome"], row["outcome"])
    return f"{base} ({partner})" if partner else base


def fan_chart(
    table: pd.DataFrame, path: str | Path | None = None, *, title: str = ""
) -> plt.Figure:
    """Probability by horizon with 90 % credible bands, one line per outcome."""
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for outcome, grp in table.groupby("outcome", sort=False):
        grp = grp.sort_values("horizon_months")
        color = COLORS.get(outcome, None)
        label = _label(grp.iloc[0])
        if (grp["status"] == "resolved").all():
            label += f" - resolved {grp.iloc[0].get('occurred_on', '')}"
            ax.plot(grp["horizon_months"], grp["p_mean"], ls=":", color=color, label=label)
            continue
        ax.fill_between(grp["horizon_months"], grp["p_q05"], grp["p_q95"], color=color, alpha=0.2)
        ax.plot(grp["horizon_months"], grp["p_mean"], marker="o", color=color, label=label)
    ax.set_xlabel("horizon (months after as-of date)")
    ax.set_ylabel("P(occurs within horizon)")
    ax.set_ylim(0, 1.02)
    ax.set_xticks(sorted(table["horizon_months"].unique()))
    as_of = table["as_of"].iloc[0] if len(table) else ""
    ax.set_title(title or f"{table['case_id'].iloc[0]} forecast as of {as_of} (mean, 90% CI)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path)
        plt.close(fig)
    return fig


def diagnostic_plots(idata: az.InferenceData, folder: str | Path) -> list[Path]:
    """Rank plots of the hyperparameters and the energy plot, saved as PNGs."""
    folder = Path(folder)
    out = []
    names = [v for v in ("mu_alpha", "sigma_beta", "gamma", "sigma_case") if v in idata.posterior]
    axes = az.plot_rank(idata, var_names=names, kind="vlines", figsize=(10, 2 * len(names) + 2))
    fig = axes.ravel()[0].figure
    fig.suptitle("Rank plots (uniform across chains when mixing is good)")
    fig.tight_layout()
    path = folder / "rank.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    out.append(path)
    if "energy" in idata.sample_stats:
        ax = az.plot_energy(idata, figsize=(6, 4))
        fig = ax.figure
        path = folder / "energy.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        out.append(path)
    return out


def probability_over_time(
    history: pd.DataFrame,
    events: pd.DataFrame | None = None,
    path: str | Path | None = None,
    *,
    horizon: int = 12,
    title: str = "",
) -> plt.Figure:
    """Forecast probability at one horizon across as-of dates, with coded events marked."""
    fig, ax = plt.subplots(figsize=(9, 4.2), dpi=110)
    data = history[history["horizon_months"] == horizon].copy()
    data["as_of"] = pd.to_datetime(data["as_of"])
    for outcome, grp in data.groupby("outcome", sort=False):
        grp = grp.sort_values("as_of")
        color = COLORS.get(outcome)
        ax.fill_between(grp["as_of"], grp["p_q05"], grp["p_q95"], color=color, alpha=0.15)
        ax.plot(grp["as_of"], grp["p_mean"], color=color, label=_label(grp.iloc[0]))
    if events is not None and len(events):
        for when in pd.to_datetime(events["date"]):
            ax.axvline(when, color="grey", alpha=0.25, lw=0.8)
        ax.plot([], [], color="grey", alpha=0.5, lw=0.8, label="coded event")
    ax.set_ylim(0, 1)
    ax.set_ylabel(f"P(within {horizon} months)")
    ax.set_title(title or f"Forecast over time ({horizon}-month horizon)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.autofmt_xdate()
    fig.tight_layout()
    if path is not None:
        fig.savefig(path)
        plt.close(fig)
    return fig
