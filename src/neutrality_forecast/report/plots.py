"""Figures: fan chart, diagnostics, probability over time, drivers, what-if, reliability."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import arviz as az  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

__all__ = [
    "diagnostic_plots",
    "drivers_chart",
    "fan_chart",
    "history_chart",
    "probability_over_time",
    "reliability_diagram",
    "what_if_chart",
]

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


PARTNER_STYLE = {"RUS": "-", "CHN": "--", "USA": "-.", "": "-"}


def _label(row: pd.Series | dict) -> str:
    partner = row.get("partner") or ""
    partner = "" if pd.isna(partner) else partner
    base = LABELS.get(row["outcome"], row["outcome"])
    return f"{base} ({partner})" if partner else base


def _style(row: pd.Series | dict) -> dict:
    partner = row.get("partner") or ""
    partner = "" if pd.isna(partner) else partner
    return {"color": COLORS.get(row["outcome"]), "ls": PARTNER_STYLE.get(partner, ":")}


def fan_chart(
    table: pd.DataFrame, path: str | Path | None = None, *, title: str = ""
) -> plt.Figure:
    """Probability by horizon with 90 % credible bands, one line per question.

    Only the headline questions when ``table`` has a ``headline`` column (the others are
    in the tables); colour = family, line style = partner.
    """
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    if "headline" in table.columns and table["headline"].any():
        table = table[table["headline"].astype(bool)]
    keys = ["outcome", "partner"] if "partner" in table.columns else ["outcome"]
    for _, grp in table.groupby(keys, sort=False, dropna=False):
        grp = grp.sort_values("horizon_months")
        st = _style(grp.iloc[0])
        label = _label(grp.iloc[0])
        if (grp["status"] == "resolved").all():
            label += f" - resolved {grp.iloc[0].get('occurred_on', '')}"
            ax.plot(grp["horizon_months"], grp["p_mean"], ls=":", color=st["color"], label=label)
            continue
        last = grp.iloc[0].get("last_occurred_on", "")
        if isinstance(last, str) and last:
            label += f" (last {last})"
        ax.fill_between(
            grp["horizon_months"], grp["p_q05"], grp["p_q95"], color=st["color"], alpha=0.15
        )
        ax.plot(grp["horizon_months"], grp["p_mean"], marker="o", label=label, **st)
    ax.set_xlabel("horizon (months after as-of date)")
    ax.set_ylabel("P(occurs, or occurs again, within horizon)")
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
    names = [
        v
        for v in ("mu_alpha", "sigma_beta", "sigma_partner", "sigma_q", "rho", "gamma")
        if v in idata.posterior
    ]
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
    occurrences: pd.DataFrame | None = None,
    questions: list[tuple[str, str]] | None = None,
) -> plt.Figure:
    """Forecast probability at one horizon across as-of dates.

    Coded events are marked as grey lines, occurrences (``occurrences``: outcome rows) as
    coloured triangles on the time axis. ``questions`` limits the lines to these
    (outcome, partner) pairs (default: every question with a non-trivial forecast).
    """
    fig, ax = plt.subplots(figsize=(9, 4.2), dpi=110)
    data = history[history["horizon_months"] == horizon].copy()
    data["as_of"] = pd.to_datetime(data["as_of"])
    data["partner"] = data.get("partner", "").fillna("") if "partner" in data else ""
    for (outcome, partner), grp in data.groupby(["outcome", "partner"], sort=False):
        if questions is not None and (outcome, partner) not in questions:
            continue
        grp = grp.sort_values("as_of")
        st = _style(grp.iloc[0])
        ax.fill_between(grp["as_of"], grp["p_q05"], grp["p_q95"], color=st["color"], alpha=0.12)
        ax.plot(grp["as_of"], grp["p_mean"], label=_label(grp.iloc[0]), **st)
    if events is not None and len(events):
        for when in pd.to_datetime(events["date"]):
            ax.axvline(when, color="grey", alpha=0.25, lw=0.8)
        ax.plot([], [], color="grey", alpha=0.5, lw=0.8, label="coded event")
    if occurrences is not None and len(occurrences):
        occ = occurrences[occurrences["occurred"].astype(bool)]
        for r in occ.itertuples(index=False):
            ax.plot(pd.Timestamp(r.occurred_on), 0.01, marker="^", ms=9, clip_on=False,
                    color=COLORS.get(str(r.outcome), "black"))  # fmt: skip
        if len(occ):
            ax.plot([], [], marker="^", ls="", color="black", label="occurrence")
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


def _finish(fig: plt.Figure, path: str | Path | None) -> plt.Figure:
    fig.tight_layout()
    if path is not None:
        fig.savefig(path)
        plt.close(fig)
    return fig


def history_chart(
    history: pd.DataFrame,
    events: pd.DataFrame | None = None,
    path: str | Path | None = None,
    *,
    horizon: int = 12,
    title: str = "",
    resolved: dict | None = None,
    questions: list[tuple[str, str]] | None = None,
) -> plt.Figure:
    """Probability at one horizon across as-of dates, one panel per question, events marked.

    Parameters
    ----------
    history : DataFrame
        ``as_of, outcome, horizon_months, p_mean, p_q05, p_q95`` (``partner`` optional).
    events : DataFrame, optional
        Coded events (``date``, ``event_type``); drawn as ticks along the bottom of each
        panel, coloured by PLOVER quad (cooperative vs conflictual).
    path : str or Path, optional
        Save the figure here (PNG) and close it.
    horizon : int, keyword-only
        The horizon to show (months).
    title : str, keyword-only
        Figure title.
    resolved : dict, optional
        ``(outcome, partner) -> date or list of dates`` of occurrences (``outcome -> date``
        is accepted too); each is marked with a vertical line.
    questions : list of (outcome, partner), optional
        The panels to draw (default: every question in ``history``).

    """
    data = history[history["horizon_months"] == horizon].copy()
    data["as_of"] = pd.to_datetime(data["as_of"])
    if "partner" not in data:
        data["partner"] = ""
    data["partner"] = data["partner"].fillna("").astype(str)
    keys = list(dict.fromkeys(zip(data["outcome"], data["partner"], strict=True)))
    if questions is not None:
        keys = [k for k in keys if k in questions]
    outcomes = keys
    n = max(len(outcomes), 1)
    fig, axes = plt.subplots(n, 1, figsize=(9, 2.1 * n + 0.8), dpi=110, sharex=True, squeeze=False)
    conflict = {"ACCUSE", "REJECT", "THREATEN", "PROTEST", "SANCTION", "MOBILIZE", "COERCE",
                "ASSAULT"}  # fmt: skip
    for ax, key in zip(axes[:, 0], outcomes, strict=False):
        outcome, partner = key
        grp = data[(data["outcome"] == outcome) & (data["partner"] == partner)].sort_values("as_of")
        color = COLORS.get(outcome)
        ax.fill_between(grp["as_of"], grp["p_q05"], grp["p_q95"], color=color, alpha=0.18)
        ax.plot(grp["as_of"], grp["p_mean"], color=color, marker=".", ms=3)
        top = float(max(grp["p_q95"].max(), 0.05)) if len(grp) else 1.0
        top = min(1.0, top * 1.15)
        ax.set_ylim(0, top)
        if events is not None and len(events):
            when = pd.to_datetime(events["date"])
            kinds = events["event_type"].astype(str).isin(conflict).to_numpy()
            y0 = -0.0 * top
            ax.plot(when[~kinds], np.full((~kinds).sum(), y0 + 0.02 * top), "|", color="#2e7d32",
                    ms=9, alpha=0.6)  # fmt: skip
            ax.plot(when[kinds], np.full(kinds.sum(), y0 + 0.06 * top), "|", color="#b71c1c",
                    ms=9, alpha=0.6)  # fmt: skip
        hits = (resolved or {}).get(key) or (resolved or {}).get(outcome) or []
        for when in [hits] if isinstance(hits, str) else hits:
            ax.axvline(pd.Timestamp(when), color="black", ls="--", lw=1)
            ax.text(pd.Timestamp(when), top * 0.92, " occurred", fontsize=7)
        ax.set_ylabel("P", fontsize=8)
        ax.set_title(_label(grp.iloc[0]) if len(grp) else outcome, fontsize=9, loc="left")
        ax.grid(alpha=0.3)
    if events is not None and len(events):
        handles = [
            plt.Line2D([], [], ls="", marker="|", color="#2e7d32", ms=9, label="cooperative event"),
            plt.Line2D([], [], ls="", marker="|", color="#b71c1c", ms=9, label="conflictual event"),
        ]
        axes[0, 0].legend(handles=handles, fontsize=7, loc="upper left")
    fig.suptitle(title or f"P(within {horizon} months) by as-of date (mean, 90% CI)", fontsize=10)
    fig.autofmt_xdate()
    return _finish(fig, path)


def drivers_chart(
    drivers: pd.DataFrame, path: str | Path | None = None, *, title: str = ""
) -> plt.Figure:
    """Log-odds contributions to each open question's hazard (mean and 90 % CI).

    One panel per outcome, terms grouped by partner (labelled ``PARTNER: term``);
    evidence terms whose covariate is zero are left out.
    """
    data = drivers[~(drivers["term"].str.startswith("evidence") & (drivers["x"].fillna(1) == 0))]
    outcomes = list(dict.fromkeys(data["outcome"]))
    n = max(len(outcomes), 1)
    height = max(2.0, 0.32 * len(data) / n + 1.0)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, height), dpi=110, squeeze=False)
    for ax, outcome in zip(axes[0], outcomes, strict=False):
        grp = data[data["outcome"] == outcome].iloc[::-1]
        y = np.arange(len(grp))
        err = np.vstack(
            [grp["logodds_mean"] - grp["logodds_q05"], grp["logodds_q95"] - grp["logodds_mean"]]
        )
        ax.errorbar(grp["logodds_mean"], y, xerr=err, fmt="o", color=COLORS.get(outcome), ms=4)
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_yticks(y)
        partner = grp.get("partner", pd.Series("", grp.index)).fillna("").astype(str)
        terms = grp["term"].str.removeprefix("evidence: ")
        labels = [f"{p}: {t}" if p else t for p, t in zip(partner, terms, strict=True)]
        ax.set_yticklabels(labels, fontsize=7)
        for k in np.flatnonzero(partner.to_numpy()[1:] != partner.to_numpy()[:-1]):
            ax.axhline(k + 0.5, color="grey", lw=0.5, alpha=0.6)  # partner groups
        ax.set_title(LABELS.get(outcome, outcome), fontsize=9)
        ax.set_xlabel("log-odds contribution", fontsize=8)
        ax.grid(alpha=0.3, axis="x")
    fig.suptitle(title or "What drives each monthly hazard (mean, 90% CI)", fontsize=10)
    return _finish(fig, path)


def what_if_chart(
    table: pd.DataFrame, path: str | Path | None = None, *, title: str = ""
) -> plt.Figure:
    """Baseline vs scenario probability by horizon, and their difference, per outcome.

    ``table`` is :attr:`~neutrality_forecast.scenario.WhatIfResult.table`.
    """
    outcomes = list(dict.fromkeys(table["outcome"]))
    n = max(len(outcomes), 1)
    fig, axes = plt.subplots(2, n, figsize=(3.6 * n, 5.6), dpi=110, squeeze=False)
    for i, outcome in enumerate(outcomes):
        grp = table[table["outcome"] == outcome].sort_values("horizon_months")
        h = grp["horizon_months"].to_numpy()
        ax = axes[0, i]
        color = COLORS.get(outcome)
        ax.fill_between(h, grp["baseline_q05"], grp["baseline_q95"], color="grey", alpha=0.2)
        ax.plot(h, grp["baseline_mean"], "o--", color="grey", label="baseline")
        ax.fill_between(h, grp["scenario_q05"], grp["scenario_q95"], color=color, alpha=0.2)
        ax.plot(h, grp["scenario_mean"], "o-", color=color, label="scenario")
        ax.set_title(_label(grp.iloc[0]), fontsize=9)
        ax.set_xticks(h)
        ax.set_ylim(0, min(1.0, max(grp["scenario_q95"].max(), grp["baseline_q95"].max()) * 1.2))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
        ax2 = axes[1, i]
        err = np.vstack([grp["diff_mean"] - grp["diff_q05"], grp["diff_q95"] - grp["diff_mean"]])
        ax2.errorbar(h, grp["diff_mean"], yerr=err, fmt="o", color=color, capsize=3)
        ax2.axhline(0, color="grey", lw=0.8)
        ax2.set_xticks(h)
        ax2.set_xlabel("horizon (months)", fontsize=8)
        ax2.grid(alpha=0.3)
    axes[0, 0].set_ylabel("P(occurs within horizon)", fontsize=8)
    axes[1, 0].set_ylabel("scenario - baseline", fontsize=8)
    fig.suptitle(title or "What-if: baseline vs scenario (mean, 90% CI, same draws)", fontsize=10)
    return _finish(fig, path)


def reliability_diagram(
    scores: pd.DataFrame,
    path: str | Path | None = None,
    *,
    n_bins: int = 10,
    model_col: str = "model",
    y_col: str | None = None,
    title: str = "",
) -> plt.Figure:
    """Observed frequency against forecast probability, per model, with bin counts.

    Parameters
    ----------
    scores : DataFrame
        One row per scored forecast with ``p_mean`` and a 0/1 column saying whether the
        outcome occurred within the horizon, plus ``model`` when several models are scored.
    path : str or Path, optional
        Save the figure here (PNG) and close it.
    n_bins : int, keyword-only
        Equal-width probability bins.
    model_col : str, keyword-only
        Column naming the model of each row.
    y_col : str, optional
        The 0/1 column; by default the first numeric one of ``y``, ``occurred``,
        ``observed``, ``outcome_value``, ``outcome``.
    title : str, keyword-only
        Figure title.

    """
    if y_col is None:
        candidates = ("y", "occurred", "observed", "outcome_value", "outcome")
        numeric = [
            c
            for c in candidates
            if c in scores.columns
            and pd.to_numeric(scores[c], errors="coerce").notna().mean() > 0.99
        ]
        if not numeric:
            raise ValueError(f"no 0/1 outcome column among {candidates}; pass y_col=")
        y_col = numeric[0]
    data = scores.dropna(subset=["p_mean"]).copy()
    data["_y"] = pd.to_numeric(data[y_col], errors="coerce")
    data = data.dropna(subset=["_y"])
    fig, (ax, axh) = plt.subplots(
        2, 1, figsize=(5.5, 6), dpi=110, gridspec_kw={"height_ratios": [3, 1]}, sharex=True
    )
    ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=1, label="perfect calibration")
    edges = np.linspace(0, 1, n_bins + 1)
    groups = data.groupby(model_col) if model_col in data.columns else [("forecast", data)]
    for name, grp in groups:
        bins = np.clip(np.digitize(grp["p_mean"], edges[1:-1]), 0, n_bins - 1)
        agg = (
            grp.assign(_bin=bins)
            .groupby("_bin")
            .agg(p=("p_mean", "mean"), freq=("_y", "mean"), n=("_y", "size"))
        )
        color = {"hazard": "#1b6ca8", "base_rate": "#7f8c8d", "evidence_free": "#e67e22"}.get(
            str(name)
        )
        ax.plot(agg["p"], agg["freq"], "o-", color=color, label=f"{name} (n={len(grp)})")
        axh.bar(
            edges[agg.index] + (0.5 / n_bins), agg["n"], width=0.9 / n_bins, alpha=0.4, color=color
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("observed frequency")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    ax.set_title(title or "Reliability diagram")
    axh.set_yscale("log")
    axh.set_xlabel("forecast probability")
    axh.set_ylabel("forecasts")
    return _finish(fig, path)
