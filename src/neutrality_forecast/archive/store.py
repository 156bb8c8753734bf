"""The archive on disk: run folders, the ``latest`` switch, failed runs and recovery.

Layout::

    ARCHIVE/
      .lock                      flock target (see archive.lock)
      .staging/                  runs being built (never read; cleared by recovery)
      runs/<UTC stamp>-<hash>/   published runs, immutable once renamed here
      failed/<UTC stamp>-<hash>/ runs that failed the diagnostics gate, or were interrupted
      latest -> runs/<id>        relative symlink to the last published run
      history.duckdb             append-only forecast history (archive.history)

Publishing is a sequence of atomic steps, and the ``latest`` switch is the commit point:

1. the run is built in ``.staging/<id>/``, every file and the folder are fsynced;
2. ``.staging/<id>`` is renamed to ``runs/<id>`` (same file system: atomic);
3. ``latest`` is switched: a new symlink is created under a temporary name and renamed
   over ``latest`` with :func:`os.replace` (atomic on POSIX), then the folder is fsynced;
4. the run's rows are appended to the history in one DuckDB transaction.

A crash anywhere leaves a consistent archive after :meth:`Archive.recover`, which every run
calls under the lock before doing anything else: staging leftovers are deleted; a run in
``runs/`` that is newer than ``latest`` (crash between 2 and 3) was never published and is
moved to ``failed/`` with a note; published runs missing from the history (crash between
3 and 4, or a deleted database) are appended from their own ``forecast.csv`` and
``state.json``. The history is thus an index that can always be rebuilt from ``runs/``.

Each run folder holds ``state.json``: the idempotency key of its inputs (data hash, config
hash, package version, case), the update path, the *base* run whose MCMC draws it uses, and
one content hash per event (to tell new, edited and removed events apart next time), plus
``inputs/`` with a copy of the three case-set files it was computed from.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path

import pandas as pd

from neutrality_forecast import __version__
from neutrality_forecast.archive import history
from neutrality_forecast.casesets import CaseSet, load_case_set
from neutrality_forecast.config import Config
from neutrality_forecast.export.run import fsync_tree, write_json

__all__ = ["Archive", "ArchiveWriteError", "event_hashes", "input_state", "same_inputs"]

STATE_NAME = "state.json"
KEY_FIELDS = ("case_id", "data_sha256", "config_sha256", "package_version")


class ArchiveWriteError(OSError):
    """The archive could not be written (read-only, full disk...); nothing was published."""


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def event_hashes(case_set: CaseSet) -> dict[str, str]:
    """``event_id -> SHA-256`` of the event's canonical contract text (all columns)."""
    text = case_set.to_frames_text()["events.csv"]
    cols = list(text.columns)
    return {
        str(row[cols.index("event_id")]): _sha("\x1f".join(map(str, row)))
        for row in text.itertuples(index=False, name=None)
    }


def input_state(case_set: CaseSet, config: Config, case_id: str) -> dict:
    """The idempotency key of a re-forecast plus per-event hashes.

    Two runs with equal ``case_id``, ``data_sha256``, ``config_sha256`` and
    ``package_version`` (see :data:`KEY_FIELDS`) would compute the same forecast.
    """
    frames = case_set.to_frames_text()
    return {
        "case_id": case_id,
        "data_sha256": case_set.data_hash(),
        "config_sha256": config.config_hash(),
        "package_version": __version__,
        "model_version": config.model.model_version,
        "frames_sha256": {
            name: _sha(frame.to_csv(index=False, lineterminator="\n"))
            for name, frame in frames.items()
            if name != "events.csv"
        },
        "events": event_hashes(case_set),
    }


def same_inputs(a: dict | None, b: dict | None) -> bool:
    """Whether two states have the same idempotency key."""
    return a is not None and b is not None and all(a.get(k) == b.get(k) for k in KEY_FIELDS)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Archive:
    """A forecast archive folder (see the module docstring for the layout).

    Parameters
    ----------
    root : str or Path
        The archive folder; created (with its sub-folders) by :meth:`ensure`.

    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.runs = self.root / "runs"
        self.failed = self.root / "failed"
        self.staging = self.root / ".staging"
        self.latest = self.root / "latest"
        self.history = self.root / history.HISTORY_NAME

    # ------------------------------------------------------------------ reading
    def ensure(self) -> Archive:
        """Create the archive folders if needed (raises :class:`ArchiveWriteError`)."""
        try:
            for folder in (self.root, self.runs, self.failed, self.staging):
                folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ArchiveWriteError(exc.errno, f"cannot create archive {self.root}: {exc}") from exc
        return self

    def latest_id(self) -> str | None:
        """Run id ``latest`` points to, or ``None`` before the first publication."""
        if not self.latest.is_symlink():
            return None
        target = Path(os.readlink(self.latest))
        return target.name if (self.runs / target.name).is_dir() else None

    def latest_run(self) -> Path | None:
        """Folder of the last published run."""
        run_id = self.latest_id()
        return None if run_id is None else self.runs / run_id

    def state(self, run_id: str) -> dict | None:
        """The ``state.json`` of a published run (``None`` if absent or unreadable)."""
        path = self.runs / run_id / STATE_NAME
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def latest_state(self) -> dict | None:
        """State of the last published run."""
        run_id = self.latest_id()
        return None if run_id is None else self.state(run_id)

    def inputs(self, run_id: str) -> CaseSet | None:
        """The case set a published run was computed from (its ``inputs/`` copy)."""
        folder = self.runs / run_id / "inputs"
        if not (folder / "events.csv").is_file():
            return None
        return load_case_set(folder)

    def published(self) -> list[str]:
        """Ids of the folders in ``runs/``, oldest first."""
        if not self.runs.is_dir():
            return []
        return sorted(p.name for p in self.runs.iterdir() if p.is_dir())

    def failed_runs(self) -> list[str]:
        """Ids of the folders in ``failed/``, oldest first."""
        if not self.failed.is_dir():
            return []
        return sorted(p.name for p in self.failed.iterdir() if p.is_dir())

    def new_run_id(self, state: dict, when: dt.datetime) -> str:
        """``<UTC timestamp>-<short hash of the inputs>``, unique within the archive."""
        key = "|".join(str(state.get(k)) for k in KEY_FIELDS)
        short = _sha(key)[:8]
        while True:
            run_id = f"{when.strftime('%Y%m%dT%H%M%SZ')}-{short}"
            taken = [self.runs / run_id, self.failed / run_id, self.staging / run_id]
            if not any(p.exists() for p in taken):
                return run_id
            when += dt.timedelta(seconds=1)

    # ------------------------------------------------------------------ writing
    def staging_dir(self, run_id: str) -> Path:
        """A fresh, empty staging folder for ``run_id``."""
        path = self.staging / run_id
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path

    def write_extras(self, folder: Path, *, state: dict, case_set: CaseSet) -> None:
        """Write ``state.json`` and the ``inputs/`` copy of the case set into ``folder``."""
        case_set.write(folder / "inputs")
        write_json(folder / STATE_NAME, state)

    def publish(self, staged: Path, run_id: str) -> Path:
        """Fsync ``staged``, rename it to ``runs/<run_id>`` and switch ``latest`` to it."""
        dest = self.runs / run_id
        fsync_tree(staged)
        if dest.exists():
            raise FileExistsError(f"run {dest} already exists")
        os.rename(staged, dest)
        _fsync_dir(self.runs)
        self.switch_latest(run_id)
        return dest

    def switch_latest(self, run_id: str) -> None:
        """Point ``latest`` at ``runs/<run_id>`` atomically (temporary symlink + replace)."""
        tmp = self.root / f".latest.tmp-{uuid.uuid4().hex[:8]}"
        os.symlink(Path("runs") / run_id, tmp)
        try:
            os.replace(tmp, self.latest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(self.root)

    def keep_failed(self, staged: Path, run_id: str) -> Path:
        """Move a staged (failed) run to ``failed/<run_id>``."""
        dest = self.failed / run_id
        fsync_tree(staged)
        os.rename(staged, dest)
        _fsync_dir(self.failed)
        return dest

    def record_history(self, run_id: str) -> int:
        """Append a published run's rows to the history (idempotent)."""
        state = self.state(run_id)
        if state is None:
            raise FileNotFoundError(f"run {run_id} has no readable {STATE_NAME}")
        table = pd.read_csv(
            self.runs / run_id / "forecast.csv", keep_default_na=False, na_values=[""]
        )
        table["partner"] = table["partner"].fillna("")
        rows = history.history_rows(table, {**state, "run_id": run_id})
        return history.append_run(self.history, rows)

    def recover(self) -> list[str]:
        """Bring the archive back to a consistent state after a crash (hold the lock!).

        Returns one message per repair (empty when there was nothing to do).
        """
        notes: list[str] = []
        if self.staging.is_dir():
            for leftover in self.staging.iterdir():
                if leftover.is_dir():
                    shutil.rmtree(leftover, ignore_errors=True)
                else:
                    leftover.unlink(missing_ok=True)
                notes.append(f"removed unfinished run {leftover.name} from .staging/")
        for tmp in self.root.glob(".latest.tmp-*"):
            tmp.unlink(missing_ok=True)
        latest = self.latest_id()
        recorded = history.run_ids(self.history)
        if latest is None and recorded & set(self.published()):
            # `latest` was deleted by hand: point it back at the newest recorded run
            latest = max(recorded & set(self.published()))
            self.switch_latest(latest)
            notes.append(f"'latest' was missing; restored it to {latest}")
        for run_id in self.published():
            if run_id not in recorded and (latest is None or run_id > latest):
                dest = self.failed / run_id
                os.rename(self.runs / run_id, dest)
                (dest / "INTERRUPTED.txt").write_text(
                    "This run was interrupted before `latest` was switched to it; it was "
                    "never published.\n",
                    encoding="utf-8",
                )
                notes.append(f"moved unpublished run {run_id} to failed/ (interrupted)")
            elif run_id not in recorded and self.state(run_id) is not None:
                if self.record_history(run_id):
                    notes.append(f"added missing history rows of run {run_id}")
        return notes
