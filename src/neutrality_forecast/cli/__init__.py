"""Command-line interface (Typer). Thin: every command calls into the library.

Exit codes: 0 success (or unchanged), 1 archive not writable, 2 bad input, 3 diagnostics
gate failed, 4 archive locked. Each feature's commands live in their own module; importing
this package registers them all on :data:`app`.
"""

import importlib

from neutrality_forecast.cli._common import app

# registration order = order in ``--help``
for _module in ("core", "evaluate", "scenarios", "archive", "scale"):
    importlib.import_module(f"{__name__}.{_module}")

__all__ = ["app", "main"]


def main() -> None:  # pragma: no cover
    """Entry point for ``python -m neutrality_forecast``."""
    app()
