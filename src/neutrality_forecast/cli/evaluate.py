"""Calibration: ``backtest``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from neutrality_forecast.casesets import CaseSetError, load_case_set
from neutrality_forecast.cli._common import (
    CasesOpt,
    _bad_input,
    _parse_horizons,
    _progress,
    app,
    console,
)
from neutrality_forecast.config import ConfigError, load_config
from neutrality_forecast.paths import default_cases_dir


@app.command()
def backtest(
    cases: CasesOpt = None,
    mode: Annotated[str, typer.Option(help="loco, external or both.")] = "loco",
    holdout_cases: Annotated[
        Path | None,
        typer.Option("--holdout-cases", help="Case set to forecast in external mode."),
    ] = None,
    origin_step_months: Annotated[
        int, typer.Option("--origin-step-months", min=1, help="Months between origins.")
    ] = 6,
    horizons: Annotated[str | None, typer.Option(help="Comma-separated months.")] = None,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("runs/backtest"),
    draws: Annotated[int, typer.Option(help="Draws per chain per fold.")] = 500,
    tune: Annotated[int, typer.Option(help="Tuning steps per chain per fold.")] = 500,
    chains: Annotated[int, typer.Option(help="Chains per fold.")] = 4,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    replay: Annotated[
        str | None,
        typer.Option(help="Also replay this case's forecast history (default TKM if present)."),
    ] = None,
    replay_step_months: Annotated[int, typer.Option(min=1)] = 3,
) -> None:
    """Backtest against the reference class: Brier/log scores, baselines, reliability."""
    from neutrality_forecast.backtest import (
        case_replay,
        run_backtest,
        write_backtest,
        write_replay,
    )

    if mode not in ("loco", "external", "both"):
        raise typer.BadParameter("mode must be loco, external or both", param_hint="--mode")
    hz = _parse_horizons(horizons)
    try:
        cfg = load_config()
        cs = load_case_set(cases or default_cases_dir())
        holdout = load_case_set(holdout_cases) if holdout_cases else None
    except (CaseSetError, ConfigError) as exc:
        raise _bad_input(exc) from None
    if mode in ("external", "both") and holdout is None:
        raise _bad_input(ValueError("--mode external needs --holdout-cases DIR"))
    result = run_backtest(
        cs,
        cfg,
        mode=mode,
        holdout=holdout,
        origin_step_months=origin_step_months,
        horizons=hz,
        draws=draws,
        tune=tune,
        chains=chains,
        seed=seed,
        progressbar=_progress(),
    )
    write_backtest(result, out)
    replay_case = replay or ("TKM" if "TKM" in cs.case_ids else None)
    if replay_case:
        rep = case_replay(
            cs, cfg, case_id=replay_case, step_months=replay_step_months, horizons=hz,
            draws=draws, tune=tune, chains=chains, seed=seed,
        )  # fmt: skip
        write_replay(rep, cs, out, case_id=replay_case)
    s = result.summary
    table = Table(title=f"Backtest ({mode}), {s.get('seconds', 0):.0f} s")
    cols = ("set", "forecasts", "events", "Brier", "base-rate Brier", "skill", "vs no-evidence")
    for col in cols:
        table.add_column(col)
    for tag in ("loco", "external"):
        part = s.get(tag, s if s.get("mode") == tag else None)
        if not part or "brier" not in part:
            continue
        table.add_row(
            tag,
            str(part["n_forecasts"]),
            str(part["n_events"]),
            f"{part['brier']:.4f}",
            f"{part['brier_base_rate']:.4f}",
            f"{part['brier_skill']:+.3f}",
            f"{part['brier_skill_vs_evidence_free']:+.3f}",
        )
    console.print(table)
    console.print(f"fits passing the gate: {s['fits_passed_gate']}/{s['fits_total']}; wrote {out}")
