"""Scheduled re-forecasts: ``reforecast`` and ``history``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from neutrality_forecast.casesets import CaseSetError, load_case_set
from neutrality_forecast.cli._common import (
    EXIT_GATE,
    EXIT_LOCKED,
    CasesOpt,
    ChainsOpt,
    ConfigOpt,
    DrawsOpt,
    SamplerOpt,
    SeedOpt,
    TuneOpt,
    _bad_input,
    _progress,
    app,
    console,
    err,
)
from neutrality_forecast.cli.core import print_forecast_table
from neutrality_forecast.config import ConfigError, load_config
from neutrality_forecast.paths import default_cases_dir

# --------------------------------------------------------------------------------------
# Scheduled re-forecasts: `reforecast` and `history` (library code in
# neutrality_forecast.archive; exit codes 0 published/unchanged, 1 archive not writable,
# 2 bad input, 3 gate failed, 4 locked). See docs/scheduling.md.
# --------------------------------------------------------------------------------------

EXIT_IO = 1

ArchiveOpt = Annotated[
    Path,
    typer.Option("--archive", help="Archive folder (runs/, latest, failed/, history.duckdb)."),
]


@app.command()
def reforecast(
    cases: CasesOpt = None,
    case: Annotated[str, typer.Option("--case", help="Case to forecast.")] = "TKM",
    archive: ArchiveOpt = Path("archive"),
    config: ConfigOpt = None,
    force: Annotated[
        bool, typer.Option("--force", help="Run even if data, config and version are unchanged.")
    ] = False,
    lock_timeout: Annotated[
        float,
        typer.Option(
            "--lock-timeout",
            min=0,
            help="Seconds to wait for a concurrent re-forecast before exiting 4 (default 0).",
        ),
    ] = 0.0,
    update: Annotated[
        str,
        typer.Option(
            "--update", help="auto: PSIS instant update when eligible, else refit; refit: always."
        ),
    ] = "auto",
    seed: SeedOpt = None,
    draws: DrawsOpt = None,
    tune: TuneOpt = None,
    chains: ChainsOpt = None,
    sampler: SamplerOpt = None,
) -> None:
    """Re-forecast into an archive if the inputs changed (idempotent, locked, atomic)."""
    from neutrality_forecast.archive import (
        ArchiveLocked,
        ArchiveWriteError,
        ReforecastGateFailed,
    )
    from neutrality_forecast.archive import reforecast as run_reforecast

    if update not in ("auto", "refit"):
        raise typer.BadParameter("must be auto or refit", param_hint="--update")
    if sampler is not None and sampler not in ("nutpie", "pymc", "numpyro", "auto"):
        raise typer.BadParameter("sampler must be nutpie, pymc or numpyro", param_hint="--sampler")
    try:
        cfg = load_config(model_file=config) if config else load_config()
        cs = load_case_set(cases or default_cases_dir())
        cs.case(case)
    except (CaseSetError, ConfigError, KeyError) as exc:
        raise _bad_input(exc) from None
    try:
        result = run_reforecast(
            cs,
            archive=archive,
            case_id=case,
            config=cfg,
            force=force,
            lock_timeout=lock_timeout,
            update=update,  # type: ignore[arg-type]
            seed=seed,
            draws=draws,
            tune=tune,
            chains=chains,
            sampler=sampler,
            progressbar=_progress(),
        )
    except ArchiveLocked as exc:
        err.print(f"[bold red]locked[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_LOCKED) from None
    except ReforecastGateFailed as exc:
        err.print(str(exc), style="bold red", markup=False, highlight=False)
        err.print("The run was NOT published; 'latest' and the history are unchanged.")
        raise typer.Exit(EXIT_GATE) from None
    except ArchiveWriteError as exc:
        err.print(
            f"[bold red]archive error[/] {exc.strerror or exc}", highlight=False, soft_wrap=True
        )
        raise typer.Exit(EXIT_IO) from None
    except (CaseSetError, ConfigError, ValueError) as exc:
        raise _bad_input(exc) from None
    for note in result.notes:
        err.print(f"note: {note}", highlight=False, soft_wrap=True)
    if result.status == "unchanged":
        console.print(
            f"unchanged: data, configuration and package version equal those of run "
            f"{result.run_id}; nothing to do (use --force to re-run)"
        )
        return
    print_forecast_table(result.table, f"{case} re-forecast, run {result.run_id}")
    up = result.update
    detail = up.get("reason", "")
    if "psis" in up and "khat" in up["psis"]:
        detail += f"; k-hat {up['psis']['khat']:.2f}, weights ESS {up['psis']['ess']:.0f}"
    console.print(f"update path: {result.update_path} ({detail})", highlight=False, markup=False)
    events = result.changes[result.changes["component"] == "event"]["event_id"].unique()
    if len(events):
        console.print(f"changed events: {', '.join(events)} (see changes.csv)", highlight=False)
    console.print(f"published {result.path} (latest -> runs/{result.run_id})", highlight=False)


@app.command()
def history(
    archive: ArchiveOpt = Path("archive"),
    fmt: Annotated[str, typer.Option("--format", help="csv or parquet.")] = "csv",
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Output file (default: CSV to stdout; required for parquet)."),
    ] = None,
) -> None:
    """Export the archive's forecast history (one row per run x case x outcome x horizon)."""
    import sys

    from neutrality_forecast.archive import export_history, read_history
    from neutrality_forecast.archive.history import HISTORY_NAME

    if fmt not in ("csv", "parquet"):
        raise typer.BadParameter("must be csv or parquet", param_hint="--format")
    db = archive / HISTORY_NAME
    if not db.is_file():
        raise _bad_input(FileNotFoundError(f"{db}: no forecast history (run reforecast first)"))
    if out is None:
        if fmt == "parquet":
            raise typer.BadParameter("parquet needs --out FILE", param_hint="--out")
        read_history(db).to_csv(sys.stdout, index=False, lineterminator="\n")
        return
    export_history(db, out, fmt=fmt)
    err.print(f"wrote {out}")
