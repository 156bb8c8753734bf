"""Scale: ``ingest-polecat`` and ``batch``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from neutrality_forecast.casesets import CaseSetError
from neutrality_forecast.cli._common import (
    EXIT_BAD_INPUT,
    EXIT_GATE,
    ChainsOpt,
    ConfigOpt,
    DrawsOpt,
    HorizonsOpt,
    SamplerOpt,
    SeedOpt,
    TuneOpt,
    _bad_input,
    _parse_horizons,
    app,
    console,
    err,
)
from neutrality_forecast.config import ConfigError, load_config


# --------------------------------------------------------------------------------------
# Issue 7, scale: POLECAT ingestion and Dask batch forecasts
# (library code: ingest/, batch.py).
# --------------------------------------------------------------------------------------
@app.command("ingest-polecat")
def ingest_polecat_command(
    files: Annotated[list[Path], typer.Argument(help="POLECAT tab-separated event files.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for events.csv (created).")],
    mapping: Annotated[
        Path | None,
        typer.Option("--mapping", help="Mapping file (default: models/polecat.toml)."),
    ] = None,
    cases: Annotated[
        Path | None,
        typer.Option(
            "--cases",
            help="Case set folder or cases.csv: its cases and windows replace the mapping's; "
            "cases.csv and outcomes.csv are copied to --out and the result is validated.",
        ),
    ] = None,
    case: Annotated[
        str | None, typer.Option("--case", help="Assign events to this case only.")
    ] = None,
    memory_limit: Annotated[
        str, typer.Option("--memory-limit", help="DuckDB memory limit (spills beyond it).")
    ] = "1GB",
    threads: Annotated[int | None, typer.Option(help="DuckDB threads (default: all).")] = None,
    report_json: Annotated[
        Path | None, typer.Option("--report", help="Also write the report as JSON here.")
    ] = None,
) -> None:
    """Convert POLECAT event files into the data contract's events.csv (streamed by DuckDB).

    Malformed lines are skipped and counted; rows the mapping cannot use are counted per
    reason. Exit 2 on unusable input or when the written case set does not validate.
    """
    from neutrality_forecast.ingest import IngestError, MappingError, ingest_polecat

    try:
        rep = ingest_polecat(
            files,
            out=out,
            mapping=mapping,
            cases=cases,
            case_id=case,
            memory_limit=memory_limit,
            threads=threads,
        )
    except (IngestError, MappingError) as exc:
        raise _bad_input(exc) from None
    t = Table(title=f"POLECAT ingestion -> {rep.events_csv}")
    t.add_column("count")
    t.add_column("rows", justify="right")
    t.add_row("rows read", f"{rep.rows_read:,}")
    t.add_row("rows written", f"{rep.rows_written:,}")
    t.add_row("malformed lines skipped", f"{rep.malformed:,}")
    for reason, n in sorted(rep.dropped.items()):
        t.add_row(f"dropped: {reason}", f"{n:,}")
    t.add_row("dropped: duplicate Event ID", f"{rep.duplicates:,}")
    console.print(t)
    console.print(f"{rep.seconds:.1f} s, {rep.rows_per_second:,.0f} rows/s")
    if report_json is not None:
        report_json.parent.mkdir(parents=True, exist_ok=True)
        report_json.write_text(rep.to_json() + "\n", encoding="utf-8")
    if rep.validated is False:
        err.print("[bold red]the output case set does not validate[/]", highlight=False)
        err.print(rep.validation_error or "", markup=False, highlight=False)
        raise typer.Exit(EXIT_BAD_INPUT)
    if rep.validated:
        console.print(f"{out} validates against the data contract")


@app.command("batch")
def batch_command(
    cases: Annotated[
        list[Path], typer.Option("--cases", help="A case set folder; repeat for several.")
    ],
    case: Annotated[
        str | None,
        typer.Option("--case", help="Case to forecast in every set (default: latest window)."),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option("--scheduler", help="Existing Dask scheduler address (default: local)."),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="LocalCluster workers (default: cores, at most sets).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Parent folder (default: runs/batch-<UTC>).")
    ] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="As-of date YYYY-MM-DD.")] = None,
    horizons: HorizonsOpt = None,
    seed: SeedOpt = None,
    draws: DrawsOpt = None,
    tune: TuneOpt = None,
    chains: ChainsOpt = None,
    sampler: SamplerOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Forecast many case sets in parallel on Dask; each run goes to OUT/<case set name>/.

    Results equal sequential `forecast` runs with the same seed. Exit 0 when every run was
    published, 3 when a diagnostics gate failed, 2 on bad input, 1 on another failure.
    """
    import datetime as dt

    from neutrality_forecast.batch import results_frame, run_batch

    hz = _parse_horizons(horizons)
    if sampler is not None and sampler not in ("nutpie", "pymc", "numpyro", "auto"):
        raise typer.BadParameter("sampler must be nutpie, pymc or numpyro", param_hint="--sampler")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    dest = out or Path("runs") / f"batch-{stamp}"
    try:
        cfg = load_config(model_file=config) if config else load_config()
        results = run_batch(
            cases,
            out=dest,
            case_id=case,
            config=cfg,
            scheduler=scheduler,
            n_workers=workers,
            seed=seed,
            draws=draws,
            tune=tune,
            chains=chains,
            sampler=sampler,
            horizons=hz,
            as_of=as_of,
        )
    except (CaseSetError, ConfigError, KeyError) as exc:
        raise _bad_input(exc) from None
    t = Table(title=f"Batch of {len(results)} forecasts -> {dest}")
    for col in ("case set", "case", "status", "run id", "seconds"):
        t.add_column(col)
    for r in results_frame(results).itertuples(index=False):
        t.add_row(r.name, r.case_id, r.status, r.run_id or "-", f"{r.seconds:.0f}")
    console.print(t)
    for r in results:
        if not r.ok:
            err.print(f"{r.name}: {r.status}\n{r.message}", markup=False, highlight=False)
    statuses = {r.status for r in results}
    if statuses <= {"ok"}:
        return
    if "error" in statuses:
        raise typer.Exit(1)
    raise typer.Exit(EXIT_GATE if "gate_failed" in statuses else EXIT_BAD_INPUT)
