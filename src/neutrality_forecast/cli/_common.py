"""Shared pieces of the command-line interface: the Typer app, consoles, exit codes.

Exit codes: 0 success (or unchanged), 2 bad input, 3 diagnostics gate failed, 4 archive locked.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(
    name="neutrality-forecast",
    help=(
        "Bayesian forecasts of neutrality revision, security accords and foreign basing "
        "from coded evidence. Exit codes: 0 ok, 2 bad input, 3 diagnostics failed, 4 locked."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=False, width=None if os.isatty(1) else 120)
err = Console(stderr=True)

EXIT_BAD_INPUT = 2
EXIT_GATE = 3
EXIT_LOCKED = 4

# Sampling options shared by every command that fits the model.
SeedOpt = Annotated[int | None, typer.Option(help="Random seed (default from model.toml).")]
DrawsOpt = Annotated[
    int | None,
    typer.Option(
        help="Draws per chain, exact. Default: the configuration's maximum, stopped early "
        "once the gate passes at [sampling] ess_target (nutpie)."
    ),
]
TuneOpt = Annotated[int | None, typer.Option(help="Tuning steps per chain.")]
ChainsOpt = Annotated[int | None, typer.Option(help="Number of chains.")]
SamplerOpt = Annotated[
    str | None, typer.Option(help="nutpie, pymc or numpyro (default: auto = fastest installed).")
]

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="A model.toml to use instead of models/.")
]
HorizonsOpt = Annotated[
    str | None, typer.Option("--horizons", help="Comma-separated months, e.g. 3,6,12,24.")
]

CasesOpt = Annotated[
    Path | None,
    typer.Option("--cases", help="Case set folder (default: the shipped data/cases)."),
]


def _bad_input(exc: Exception) -> typer.Exit:
    err.print(f"[bold red]bad input[/]\n{exc}", highlight=False, soft_wrap=True)
    return typer.Exit(EXIT_BAD_INPUT)


def _parse_horizons(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        values = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError as exc:
        raise typer.BadParameter(f"horizons must be integers like 3,6,12,24: {text!r}") from exc
    if not values or min(values) < 1:
        raise typer.BadParameter("horizons must be positive month counts")
    return values


def _progress() -> bool:
    return os.environ.get("NF_NO_PROGRESS", "") == ""
