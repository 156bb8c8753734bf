"""Core commands: ``validate`` and ``forecast``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from neutrality_forecast.casesets import CaseSetError, load_case_set
from neutrality_forecast.cli._common import (
    EXIT_GATE,
    CasesOpt,
    ChainsOpt,
    ConfigOpt,
    DrawsOpt,
    HorizonsOpt,
    SamplerOpt,
    SeedOpt,
    TuneOpt,
    _bad_input,
    _parse_horizons,
    _progress,
    app,
    console,
    err,
)
from neutrality_forecast.config import ConfigError, load_config
from neutrality_forecast.paths import default_cases_dir


@app.command()
def validate(
    directory: Annotated[
        Path | None, typer.Argument(help="Case set folder (default: shipped data/cases).")
    ] = None,
) -> None:
    """Validate a case set against the data contract; print a summary. Writes nothing."""
    folder = directory or default_cases_dir()
    try:
        cs = load_case_set(folder)
    except CaseSetError as exc:
        raise _bad_input(exc) from None
    table = Table(title=f"Case set {folder} is valid")
    for col in ("case", "country", "window", "outcomes (occurred)", "events", "event dates"):
        table.add_column(col)
    for row in cs.summary().itertuples(index=False):
        dates = f"{row.first_event.date()} .. {row.last_event.date()}" if row.events else "-"
        table.add_row(
            row.case_id,
            row.country,
            f"{row.window_start.date()} .. {row.window_end.date()}",
            f"{row.outcomes} ({row.occurred})",
            str(row.events),
            dates,
        )
    console.print(table)
    console.print(
        f"{len(cs.cases)} cases, {len(cs.outcomes)} outcome questions, {len(cs.events)} events; "
        f"data sha256 {cs.data_hash()[:16]}..."
    )


def _status(r) -> str:
    if r.status != "forecast":
        return f"resolved {r.occurred_on}"
    last = getattr(r, "last_occurred_on", "")
    return f"new one? last {last}" if isinstance(last, str) and last else "forecast"


def print_forecast_table(table, title: str, *, headline_only: bool = True) -> None:
    """Rich table of the headline probabilities (then a line on the other questions).

    For accords and basing (recurrent) ``P`` is the chance of a *new* occurrence by the
    target date; the status column then shows the last occurrence.
    """
    t = Table(title=title)
    for col in ("outcome", "partner", "horizon", "target date", "P mean", "90% interval", "status"):
        t.add_column(col)
    shown = table
    if headline_only and "headline" in table.columns and table["headline"].any():
        shown = table[table["headline"].astype(bool)]
    for r in shown.itertuples(index=False):
        t.add_row(
            r.outcome,
            r.partner or "-",
            f"{r.horizon_months} m",
            r.target_date,
            f"{r.p_mean:.3f}",
            f"{r.p_q05:.3f} - {r.p_q95:.3f}",
            _status(r),
        )
    console.print(t)
    rest = table.drop(shown.index)
    if len(rest):
        longest = rest[rest["horizon_months"] == rest["horizon_months"].max()]
        parts = [
            f"{r.outcome} {r.partner or ''} {r.p_mean:.3f}".replace("  ", " ")
            for r in longest.itertuples(index=False)
        ]
        console.print(
            f"other questions at {int(longest['horizon_months'].iloc[0])} months: "
            + "; ".join(parts)
            + " (all in forecast.csv)"
        )


@app.command()
def forecast(
    cases: CasesOpt = None,
    case: Annotated[str, typer.Option("--case", help="Case to forecast.")] = "TKM",
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="As-of date YYYY-MM-DD (default: window end).")
    ] = None,
    horizons: HorizonsOpt = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Run folder (default: runs/forecast-<UTC>).")
    ] = None,
    seed: SeedOpt = None,
    draws: DrawsOpt = None,
    tune: TuneOpt = None,
    chains: ChainsOpt = None,
    sampler: SamplerOpt = None,
    config: ConfigOpt = None,
    real_time: Annotated[
        bool,
        typer.Option(
            "--real-time",
            help="With --as-of: cut every reference case at the as-of date too (what an "
            "analyst had then). Default: reference cases with their full known history.",
        ),
    ] = False,
) -> None:
    """Fit the model on the case set and forecast one case; write every export."""
    from neutrality_forecast.workflow import GateFailed, default_out, run_forecast

    hz = _parse_horizons(horizons)
    if sampler is not None and sampler not in ("nutpie", "pymc", "numpyro", "auto"):
        raise typer.BadParameter("sampler must be nutpie, pymc or numpyro", param_hint="--sampler")
    try:
        cfg = load_config(model_file=config) if config else load_config()
        cs = load_case_set(cases or default_cases_dir())
        cs.case(case)
    except (CaseSetError, ConfigError) as exc:
        raise _bad_input(exc) from None
    except KeyError as exc:
        raise _bad_input(exc) from None
    dest = out or default_out()
    try:
        result = run_forecast(
            cs,
            case_id=case,
            as_of=as_of,
            config=cfg,
            horizons=hz,
            out=dest,
            seed=seed,
            draws=draws,
            tune=tune,
            chains=chains,
            sampler=sampler,
            progressbar=_progress(),
            real_time=real_time,
        )
    except GateFailed as exc:
        err.print(str(exc), style="bold red", markup=False, highlight=False)
        err.print("The run was NOT published as a forecast.")
        raise typer.Exit(EXIT_GATE) from None
    except ValueError as exc:
        raise _bad_input(exc) from None
    g = result.fitted.gate
    print_forecast_table(result.table, f"{case} forecast, run {result.run_id}")
    console.print(
        f"diagnostics: passed (max R-hat {g.rhat_max:.3f}, min bulk ESS {g.ess_bulk_min:.0f}, "
        f"min tail ESS {g.ess_tail_min:.0f}, {g.divergences} divergences); "
        f"sampler {result.fitted.sampler}, {result.fitted.fit_seconds:.0f} s"
    )
    tries = result.fitted.attempts
    if len(tries) > 1:
        earlier = ", ".join(
            f"{a['divergences']} divergences at target_accept {a['target_accept']}"
            for a in tries[:-1]
        )
        console.print(
            f"sampled again at target_accept {tries[-1]['target_accept']} after {earlier}"
        )
    console.print(f"wrote {result.path}")
