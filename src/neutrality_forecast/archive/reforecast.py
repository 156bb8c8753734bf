"""Scheduled re-forecasts: idempotent, locked, archived, explained, and fast when possible.

:func:`reforecast` is what ``neutrality-forecast reforecast`` runs:

1. **validate** the case set, configuration and case *before* touching the archive
   (invalid input raises and leaves the archive exactly as it was);
2. take the archive **lock** (:class:`~neutrality_forecast.archive.lock.ArchiveLock`),
   then **recover** from any earlier crash (:meth:`Archive.recover`);
3. **idempotency**: if the last published run has the same case, data hash, configuration
   hash and package version, return ``unchanged`` without fitting (``force=True`` re-runs);
4. **update**: if only events changed since the last full fit (same cases, outcomes,
   configuration and package version; at most ``PsisOptions.max_events`` events), reweight
   that fit's draws by PSIS (:mod:`neutrality_forecast.update.psis`); if k-hat or the
   weights' ESS fail their thresholds, or the change is not of that kind, **refit** with
   NUTS and apply the diagnostics gate (a failed gate is kept under ``failed/``);
5. **forecast** and **attribute** the change since the previous run
   (:mod:`neutrality_forecast.attribution`);
6. **publish** atomically (:meth:`Archive.publish`) and append to the **history**.
"""

from __future__ import annotations

import errno
import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from neutrality_forecast.archive.lock import ArchiveLock
from neutrality_forecast.archive.store import (
    Archive,
    ArchiveWriteError,
    input_state,
    same_inputs,
)
from neutrality_forecast.attribution import attribute_changes, diff_events
from neutrality_forecast.casesets import CaseSet, load_case_set
from neutrality_forecast.config import Config, load_config
from neutrality_forecast.export.run import utc_now, write_diagnostics, write_json, write_run
from neutrality_forecast.forecast import make_forecast
from neutrality_forecast.model import fitted as fitted_mod
from neutrality_forecast.model.data import build_model_data
from neutrality_forecast.model.fitted import FittedModel, ModelIOError
from neutrality_forecast.update.psis import (
    PsisOptions,
    changed_cases,
    psis_reweight,
    resample_idata,
    update_log_ratios,
)

__all__ = ["ReforecastGateFailed", "ReforecastResult", "reforecast"]

log = logging.getLogger(__name__)

PSIS_GROUPS = ("posterior", "sample_stats")


class ReforecastGateFailed(RuntimeError):
    """The refit failed the diagnostics gate; the run was kept under ``failed/``."""

    def __init__(self, message: str, folder: Path | None) -> None:
        self.folder = folder
        super().__init__(message)


@dataclass
class ReforecastResult:
    """What a re-forecast did.

    Attributes
    ----------
    status : {"published", "unchanged"}
        ``unchanged``: inputs equal those of the last published run; nothing was written.
    run_id, path : str, Path or None
        The new run (``published``) or the last published one (``unchanged``).
    update_path : {"psis", "refit"} or None
        How the posterior was obtained (``None`` when unchanged).
    update : dict
        The update decision (path, reason, k-hat, ESS, thresholds, timings).
    table, changes : DataFrame or None
        The forecast and the attribution table of a published run.
    notes : list of str
        Recovery actions and warnings.

    """

    status: Literal["published", "unchanged"]
    run_id: str | None
    path: Path | None
    update_path: str | None = None
    update: dict = field(default_factory=dict)
    table: pd.DataFrame | None = None
    changes: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)


def _validated_inputs(
    cases: str | Path | CaseSet, config: Config | None, case_id: str, overrides: dict
) -> tuple[CaseSet, Config, pd.Timestamp]:
    case_set = cases if isinstance(cases, CaseSet) else load_case_set(cases)
    config = config or load_config()
    sampling = {k: v for k, v in overrides.items() if v is not None}
    if sampling:
        # overrides are part of the configuration, hence of the idempotency key
        config = config.with_updates(sampling=sampling)
    try:
        case = case_set.case(case_id)
    except KeyError as exc:
        raise ValueError(str(exc).strip("'\"")) from None
    if not case_set.outcomes_of(case_id).shape[0]:
        raise ValueError(f"case {case_id!r} has no outcome questions to forecast")
    return case_set, config, pd.Timestamp(case["window_end"])


def _psis_eligible(
    arch: Archive, base_id: str | None, state: dict, options: PsisOptions
) -> tuple[bool, str, dict | None]:
    base = arch.state(base_id) if base_id else None
    if base is None:
        return False, "no previous full fit in the archive", None
    for key, label in (
        ("config_sha256", "configuration"),
        ("package_version", "package version"),
        ("model_version", "model version"),
        ("frames_sha256", "cases or outcomes"),
    ):
        if base.get(key) != state.get(key):
            return False, f"{label} changed since the last full fit ({base_id})", base
    changed = {
        e
        for e in set(base["events"]) | set(state["events"])
        if base["events"].get(e) != state["events"].get(e)
    }
    if not changed:
        return False, "no event changed since the last full fit", base
    if len(changed) > options.max_events:
        return (
            False,
            f"{len(changed)} events changed since the last full fit "
            f"(more than max_events={options.max_events})",
            base,
        )
    if not (arch.runs / base_id / "posterior.nc").is_file():
        return False, f"run {base_id} has no posterior.nc", base
    return True, f"{len(changed)} event(s) changed since the last full fit {base_id}", base


def psis_update(
    base_idata_path: Path,
    base_cases: CaseSet,
    case_set: CaseSet,
    config: Config,
    *,
    options: PsisOptions,
    seed: int,
) -> tuple[FittedModel | None, dict]:
    """Reweight a saved full fit to ``case_set`` by PSIS.

    Returns the updated (equally weighted, resampled) fit, or ``None`` when k-hat or the
    weights' ESS fail the thresholds, and the decision record.
    """
    start = time.perf_counter()
    new_data = build_model_data(case_set, config)
    # only the posterior and its sampler statistics are needed; the ratios are computed on
    # the changed cases' rows only (update_log_ratios)
    base = fitted_mod.load_fitted(base_idata_path, base_cases, config, groups=PSIS_GROUPS)
    changed = changed_cases(base_cases, case_set)
    log_ratio = update_log_ratios(base.draws(), base.data, new_data, changed)
    result = psis_reweight(log_ratio, options=options)
    info = result.to_dict()
    info["changed_cases"] = changed
    if not result.accepted:
        info["seconds"] = round(time.perf_counter() - start, 3)
        return None, info
    ss = np.random.SeedSequence([seed, int(case_set.data_hash()[:12], 16)])
    idata, _ = resample_idata(base.idata, result.weights, seed=ss)
    idata.attrs.update({"update_path": "psis", "psis_khat": result.khat, "psis_ess": result.ess})
    seconds = time.perf_counter() - start
    info["seconds"] = round(seconds, 3)
    fitted = FittedModel(
        case_set=case_set,
        config=config,
        data=new_data,
        idata=idata,
        gate=base.gate,
        seed=seed,
        sampler=f"psis({base.sampler})",
        fit_seconds=seconds,
        extra={"psis": info},
    )
    return fitted, info


def _fail(arch: Archive, fitted: FittedModel, state: dict, run_id: str, update: dict) -> Path:
    staged = arch.staging_dir(run_id)
    write_diagnostics(fitted, staged)
    write_json(
        staged / "state.json",
        {**state, "run_id": run_id, "status": "gate_failed", "update": update},
    )
    return arch.keep_failed(staged, run_id)


def reforecast(
    cases: str | Path | CaseSet,
    *,
    archive: str | Path,
    case_id: str = "TKM",
    config: Config | None = None,
    force: bool = False,
    lock_timeout: float = 0.0,
    update: Literal["auto", "refit"] = "auto",
    psis: PsisOptions | None = None,
    draws: int | None = None,
    tune: int | None = None,
    chains: int | None = None,
    sampler: str | None = None,
    seed: int | None = None,
    progressbar: bool = True,
) -> ReforecastResult:
    """Re-forecast ``case_id`` into ``archive`` if (and only if) the inputs changed.

    Parameters
    ----------
    cases : str, Path or CaseSet
        The case set (validated before the archive is touched).
    archive : str or Path
        The archive folder (created if missing).
    case_id : str
        The case to forecast, at the end of its window.
    config : Config, optional
        Defaults to the shipped ``models/``.
    force : bool
        Run even when the inputs are unchanged (and retry a configuration whose last
        attempt failed the gate).
    lock_timeout : float
        Seconds to wait for a concurrent re-forecast before giving up (default 0).
    update : {"auto", "refit"}
        ``auto`` tries the PSIS instant update when eligible; ``refit`` always refits.
    psis : PsisOptions, optional
        Thresholds of the instant update.
    draws, tune, chains, sampler, seed : optional
        Sampling overrides; they become part of the configuration (and of its hash).
    progressbar : bool
        Show the sampler's progress bar.

    Returns
    -------
    ReforecastResult

    Raises
    ------
    CaseSetError, ConfigError, ValueError
        Bad input; the archive is untouched.
    ArchiveLocked
        Another re-forecast holds the lock after ``lock_timeout`` seconds.
    ReforecastGateFailed
        The refit failed the diagnostics gate (kept under ``failed/``; nothing published).
    ArchiveWriteError
        The archive could not be written; no partial run remains and ``latest`` and the
        history are unchanged.

    """
    options = psis or PsisOptions()
    overrides = {"draws": draws, "tune": tune, "chains": chains, "sampler": sampler, "seed": seed}
    case_set, config, as_of = _validated_inputs(cases, config, case_id, overrides)
    if update not in ("auto", "refit"):
        raise ValueError(f"update must be 'auto' or 'refit', got {update!r}")
    state = input_state(case_set, config, case_id)
    arch = Archive(archive).ensure()
    try:
        lock = ArchiveLock(arch.root, timeout=lock_timeout).acquire()
    except OSError as exc:
        raise ArchiveWriteError(exc.errno, f"cannot lock archive {arch.root}: {exc}") from exc
    try:
        notes = []
        if lock.previous:
            notes.append(
                f"previous run (pid {lock.previous.get('pid')}, started "
                f"{lock.previous.get('started_utc')}) ended without releasing the lock; "
                "its lock was cleared"
            )
        notes += arch.recover()
        return _locked_run(
            arch, case_set, config, case_id, as_of, state,
            force=force, update=update, options=options, progressbar=progressbar, notes=notes,
        )  # fmt: skip
    finally:
        lock.release()


def _same_failed(arch: Archive, state: dict) -> str | None:
    failed = arch.failed_runs()
    if not failed:
        return None
    try:
        last = json.loads((arch.failed / failed[-1] / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    gate_failed = last.get("status") == "gate_failed"
    return failed[-1] if gate_failed and same_inputs(last, state) else None


def _locked_run(
    arch: Archive,
    case_set: CaseSet,
    config: Config,
    case_id: str,
    as_of: pd.Timestamp,
    state: dict,
    *,
    force: bool,
    update: str,
    options: PsisOptions,
    progressbar: bool,
    notes: list[str],
) -> ReforecastResult:
    prev_id = arch.latest_id()
    prev_state = arch.latest_state()
    if not force and same_inputs(prev_state, state):
        return ReforecastResult(
            "unchanged", prev_id, arch.runs / prev_id if prev_id else None, notes=notes
        )
    failed_id = None if force else _same_failed(arch, state)
    if failed_id is not None:
        raise ReforecastGateFailed(
            f"the last attempt with these exact inputs ({failed_id}) failed the diagnostics "
            "gate; change the data or configuration, or re-run with --force",
            arch.failed / failed_id,
        )
    started = utc_now()
    run_id = arch.new_run_id(state, started)
    seed = config.model.sampling.seed
    base_id = (prev_state or {}).get("base_run_id") or prev_id
    decision: dict = {"path": "refit"}
    fitted = None
    if update == "refit":
        decision["reason"] = "refit requested (--update refit)"
    elif force and same_inputs(prev_state, state):
        decision["reason"] = "forced re-run on unchanged inputs"
    else:
        ok, why, _ = _psis_eligible(arch, base_id, state, options)
        decision["reason"] = why
        if ok:
            try:
                fitted, info = psis_update(
                    arch.runs / base_id / "posterior.nc",
                    arch.inputs(base_id),
                    case_set,
                    config,
                    options=options,
                    seed=seed,
                )
            except (ModelIOError, OSError, ValueError) as exc:
                fitted, info = None, {"error": str(exc)}
            decision["psis"] = info
            if fitted is not None:
                decision.update(path="psis", base_run_id=base_id, reason=f"{why}; {info['reason']}")
            else:
                decision["reason"] = (
                    f"PSIS rejected ({info.get('reason') or info.get('error')}); full refit"
                )
    if fitted is None:
        t0 = time.perf_counter()
        warm = None
        if prev_id is not None:  # warm start from the previous published posterior
            warm = fitted_mod.warm_start_point(arch.runs / prev_id / "posterior.nc", case_set)
        decision["warm_start_from"] = prev_id if warm else None
        fitted = fitted_mod.fit(case_set, config, progressbar=progressbar, initvals=warm)
        decision["fit_seconds"] = round(time.perf_counter() - t0, 2)
        decision["base_run_id"] = run_id
        decision["thresholds"] = {"max_khat": options.max_khat, "min_ess": options.min_ess}
        if not fitted.gate.passed:
            try:
                folder = _fail(arch, fitted, state, run_id, decision)
            except OSError as exc:
                shutil.rmtree(arch.staging / run_id, ignore_errors=True)
                raise ArchiveWriteError(exc.errno, f"cannot write failed run: {exc}") from exc
            raise ReforecastGateFailed(
                f"diagnostics gate failed (kept in {folder}):\n{fitted.gate.describe()}", folder
            )
    forecasts = [make_forecast(fitted, case_id, as_of=as_of)]
    prev_table = prev_cases = None
    if prev_id is not None:
        prev_table = pd.read_csv(arch.runs / prev_id / "forecast.csv", keep_default_na=False)
        try:
            prev_cases = arch.inputs(prev_id)
        except Exception as exc:  # noqa: BLE001 - old versions are only needed for edits
            notes.append(f"previous inputs unreadable ({exc}); edits attributed as additions")
    changes = diff_events(
        (prev_state or {}).get("events", {}), state["events"], current=case_set, previous=prev_cases
    )
    change_table, change_summary = attribute_changes(
        fitted,
        case_id,
        as_of=as_of,
        horizons=forecasts[0].horizons,
        previous_table=prev_table,
        changes=changes,
    )
    change_summary["previous_run_id"] = prev_id
    record = {
        **state,
        "run_id": run_id,
        "created_utc": started.isoformat(),
        "as_of": as_of.date().isoformat(),
        "update_path": decision["path"],
        "base_run_id": decision["base_run_id"],
        "previous_run_id": prev_id,
    }
    extra = {
        "update": decision,
        "changes": change_summary,
        "archive": {k: record[k] for k in record if k != "events"},
    }
    staged = arch.staging / run_id
    try:
        write_run(fitted, forecasts, staged, run_id=run_id, started=started, extra=extra)
        change_table.to_csv(staged / "changes.csv", index=False, lineterminator="\n")
        arch.write_extras(staged, state=record, case_set=case_set)
        path = arch.publish(staged, run_id)
    except OSError as exc:
        shutil.rmtree(staged, ignore_errors=True)
        published = arch.latest_id() == run_id
        if published:  # pragma: no cover - only the fsync of the archive folder remains
            raise
        why = "disk full" if exc.errno == errno.ENOSPC else exc.strerror or str(exc)
        raise ArchiveWriteError(
            exc.errno,
            f"could not write run {run_id} to {arch.root} ({why}); nothing was published, "
            f"'latest' and the history are unchanged",
        ) from exc
    try:
        arch.record_history(run_id)
    except Exception as exc:  # noqa: BLE001 - published; the next run repairs the history
        notes.append(f"run published but history append failed ({exc}); it is retried next run")
    return ReforecastResult(
        "published",
        run_id,
        path,
        update_path=decision["path"],
        update=decision,
        table=forecasts[0].table,
        changes=change_table,
        notes=notes,
    )
