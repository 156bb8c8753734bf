"""An exclusive, crash-safe lock on a forecast archive.

The lock is an advisory ``fcntl.flock`` on ``ARCHIVE/.lock``. The kernel releases a flock
when the process holding it exits for any reason, including ``kill -9`` or a power loss of
the process (not of a network file system: keep archives on a local disk). A *stale* lock
therefore cannot block later runs: the file may still exist and still name the dead
holder, but nobody holds the flock and the next run acquires it at once. The file is
never deleted (deleting a lock file races with a process that has just opened it); its
content, the holder's ``pid``, ``host``, ``started_utc`` and ``command``, is informational
and is used only for messages.

A run that finds the previous holder's record still in the file (the previous holder did
not release cleanly, e.g. it was killed) says so; it then recovers the archive (see
:meth:`neutrality_forecast.archive.store.Archive.recover`).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path
from types import TracebackType

__all__ = ["ArchiveLock", "ArchiveLocked"]

LOCK_NAME = ".lock"


class ArchiveLocked(RuntimeError):
    """Another process holds the archive lock (after waiting ``timeout`` seconds)."""

    def __init__(self, path: Path, holder: dict, timeout: float) -> None:
        self.path = path
        self.holder = holder
        self.timeout = timeout
        who = (
            f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('started_utc')}"
            if holder
            else "another process"
        )
        super().__init__(
            f"archive {path.parent} is locked by {who} (waited {timeout:g} s). "
            "Another re-forecast is running; try again later or raise --lock-timeout."
        )


def _read_holder(fh) -> dict:
    try:
        fh.seek(0)
        text = fh.read()
        return json.loads(text) if text.strip() else {}
    except (OSError, ValueError):
        return {}


class ArchiveLock:
    """Context manager holding the exclusive lock of ``archive`` for one run.

    Parameters
    ----------
    archive : str or Path
        The archive folder (must exist).
    timeout : float
        Seconds to wait for a concurrent holder to finish; ``0`` fails at once.
    poll : float
        Seconds between attempts while waiting.

    Attributes
    ----------
    previous : dict
        The record a previous holder left behind when it did not release cleanly
        (empty after a clean release): ``pid``, ``host``, ``started_utc``, ``command``.

    Raises
    ------
    ArchiveLocked
        When the lock is still held after ``timeout`` seconds.

    Examples
    --------
    >>> with ArchiveLock("archive", timeout=30) as lock:  # doctest: +SKIP
    ...     ...  # exclusive access to the archive

    """

    def __init__(self, archive: str | Path, *, timeout: float = 0.0, poll: float = 0.2) -> None:
        self.path = Path(archive) / LOCK_NAME
        self.timeout = max(float(timeout), 0.0)
        self.poll = poll
        self.previous: dict = {}
        self._fh = None

    def acquire(self) -> ArchiveLock:
        """Take the lock, waiting at most ``timeout`` seconds."""
        fh = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held until release
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _read_holder(fh)
                    fh.close()
                    raise ArchiveLocked(self.path, holder, self.timeout) from None
                time.sleep(self.poll)
            except BaseException:
                fh.close()
                raise
        self.previous = _read_holder(fh)
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "command": " ".join(sys.argv[:6]),
        }
        try:
            fh.seek(0)
            fh.truncate()
            fh.write(json.dumps(record))
            fh.flush()
        except OSError:
            pass  # the record is informational; the flock is what excludes others
        self._fh = fh
        return self

    def release(self) -> None:
        """Clear the holder record and release the lock (idempotent)."""
        fh, self._fh = self._fh, None
        if fh is None:
            return
        try:
            fh.seek(0)
            fh.truncate()
            fh.flush()
        except OSError:
            pass
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            fh.close()

    @property
    def stale_holder(self) -> dict:
        """The previous holder's record if it did not release cleanly, else ``{}``."""
        return self.previous

    def __enter__(self) -> ArchiveLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
