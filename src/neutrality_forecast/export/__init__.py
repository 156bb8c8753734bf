"""Run folders, provenance and atomic writes."""

from neutrality_forecast.export.run import (
    atomic_replace_dir,
    new_run_id,
    provenance,
    write_diagnostics,
    write_json,
    write_run,
)

__all__ = [
    "atomic_replace_dir",
    "new_run_id",
    "provenance",
    "write_diagnostics",
    "write_json",
    "write_run",
]
