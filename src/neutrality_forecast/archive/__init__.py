"""The forecast archive: published runs, the ``latest`` switch, lock, history, re-forecasts."""

from neutrality_forecast.archive.history import export_history, read_history
from neutrality_forecast.archive.lock import ArchiveLock, ArchiveLocked
from neutrality_forecast.archive.reforecast import (
    ReforecastGateFailed,
    ReforecastResult,
    reforecast,
)
from neutrality_forecast.archive.store import Archive, ArchiveWriteError

__all__ = [
    "Archive",
    "ArchiveLock",
    "ArchiveLocked",
    "ArchiveWriteError",
    "ReforecastGateFailed",
    "ReforecastResult",
    "export_history",
    "read_history",
    "reforecast",
]
