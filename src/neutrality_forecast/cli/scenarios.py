"""Reports and scenarios: ``report`` and ``what-if``."""

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


# --------------------------------------------------------------------------------------
# Issue 6: HTML report and what-if scenarios (library code: report/html.py, scenario.py).
# --------------------------------------------------------------------------------------
@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run folder written by `forecast`.")],
    cases: Annotated[
        Path | None,
        typer.Option("--cases", help="Case set (default: data_source in forecast.json)."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="HTML file (default: RUN_DIR/report.html).")
    ] = None,
    replay: Annotated[
        bool,
        typer.Option("--replay/--no-replay", help="In-sample replays when there is no history."),
    ] = True,
) -> None:
    """Write a self-contained HTML report of a run folder (RUN_DIR/report.html)."""
    from neutrality_forecast.report.html import load_run_fit, read_run_folder, write_report

    try:
        read_run_folder(run_dir)
    except FileNotFoundError as exc:
        raise _bad_input(exc) from None
    fitted = None
    if replay:
        try:
            fitted = load_run_fit(run_dir, cases=cases)
        except Exception as exc:  # noqa: BLE001 - the report is still written without the fit
            err.print(f"note: no in-sample replays, the fit could not be loaded: {exc}")
    path = write_report(run_dir, fitted=fitted, replay=replay and fitted is not None, out=out)
    console.print(f"wrote {path}")


def _print_what_if(table, title: str) -> None:
    t = Table(title=title)
    for col in ("outcome", "partner", "horizon", "baseline (90% CI)", "scenario (90% CI)",
                "difference (90% CI)", "P(higher)"):  # fmt: skip
        t.add_column(col)
    for r in table.itertuples(index=False):
        t.add_row(
            r.outcome,
            r.partner or "-",
            f"{r.horizon_months} m",
            f"{r.baseline_mean:.3f} ({r.baseline_q05:.3f}-{r.baseline_q95:.3f})",
            f"{r.scenario_mean:.3f} ({r.scenario_q05:.3f}-{r.scenario_q95:.3f})",
            f"{r.diff_mean:+.3f} ({r.diff_q05:+.3f} to {r.diff_q95:+.3f})",
            "resolved"
            if r.status != "forecast"
            else ("no change" if r.diff_q05 == r.diff_q95 == 0 else f"{r.p_increase:.2f}"),
        )
    console.print(t)


@app.command("what-if")
def what_if_command(
    add_events: Annotated[
        Path,
        typer.Option("--add-events", help="Hypothetical events (events.csv contract)."),
    ],
    cases: CasesOpt = None,
    case: Annotated[
        str | None, typer.Option("--case", help="Case (default: the one named in the file).")
    ] = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="As-of date YYYY-MM-DD (default: window end).")
    ] = None,
    horizons: HorizonsOpt = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Output folder (default: runs/what-if-<UTC>).")
    ] = None,
    run: Annotated[
        Path | None,
        typer.Option("--run", help="Reuse the fit of this run folder instead of fitting."),
    ] = None,
    seed: SeedOpt = None,
    draws: DrawsOpt = None,
    tune: TuneOpt = None,
    chains: ChainsOpt = None,
    sampler: SamplerOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Baseline vs scenario forecast with hypothetical events, from the same posterior draws.

    Fits the model like `forecast` (same sampling options), or with --run reuses a saved
    run's fit (its case set and as-of date). Writes what_if.csv, what_if.png,
    contributions.csv and scenario_events.csv into --out.
    """
    import datetime as dt
    import shutil
    import uuid

    from neutrality_forecast.export.run import atomic_replace_dir, write_json
    from neutrality_forecast.model import ModelIOError, fit
    from neutrality_forecast.report.html import load_run_fit, read_run_folder
    from neutrality_forecast.scenario import read_scenario_events, what_if
    from neutrality_forecast.workflow import prepare

    hz = _parse_horizons(horizons)
    try:
        cfg = load_config(model_file=config) if config else load_config()
        if hz:
            cfg = cfg.with_updates(forecast={"horizons": hz})
        if run is not None:
            fitted = load_run_fit(run, cases=cases)
            if hz:
                fitted.config = fitted.config.with_updates(forecast={"horizons": hz})
            cs = fitted.case_set
            if as_of is None:
                frame = read_run_folder(run).forecast
                if case is not None:
                    frame = frame[frame["case_id"] == case]
                as_of = str(frame["as_of"].iloc[0]) if len(frame) else None
        else:
            fitted = None
            cs = load_case_set(cases or default_cases_dir())
        events, case_id, when = read_scenario_events(
            add_events, cs, case_id=case, as_of=as_of, horizons=hz or cfg.model.forecast.horizons
        )
    except (CaseSetError, ConfigError, ModelIOError, FileNotFoundError, KeyError) as exc:
        raise _bad_input(exc) from None
    except ValueError as exc:
        raise _bad_input(exc) from None
    if fitted is None:
        cut, when = prepare(cs, case_id, when)
        fitted = fit(cut, cfg, sampler=sampler, draws=draws, tune=tune, chains=chains,
                     seed=seed, progressbar=_progress())  # fmt: skip
        if not fitted.gate.passed:
            err.print(fitted.gate.describe(), style="bold red", markup=False, highlight=False)
            err.print("diagnostics gate failed: no scenario written.")
            raise typer.Exit(EXIT_GATE)
    result = what_if(fitted, events, case_id=case_id, as_of=when, horizons=hz)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    dest = out or Path("runs") / f"what-if-{stamp}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        result.to_csv(tmp / "what_if.csv")
        result.plot(tmp / "what_if.png", title=f"{case_id} what-if as of {when.date()}")
        result.contributions.to_csv(tmp / "contributions.csv", index=False, lineterminator="\n")
        shutil.copyfile(add_events, tmp / "scenario_events.csv")
        write_json(
            tmp / "what_if.json",
            {
                "case_id": case_id,
                "as_of": when.date().isoformat(),
                "events_file": str(add_events),
                "run": str(run) if run else None,
                "model_id": fitted.id,
                "data_sha256": fitted.data_hash,
                "seed": fitted.seed,
                "gate_passed": fitted.gate.passed,
                "rows": result.table.to_dict("records"),
            },
        )
        atomic_replace_dir(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _print_what_if(result.table, f"{case_id} what-if as of {when.date()} ({len(events)} events)")
    console.print(f"wrote {dest}")
