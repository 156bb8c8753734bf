"""Independent forecasts for many case sets, run in parallel on a Dask cluster.

Each case set is one task calling :func:`neutrality_forecast.workflow.run_forecast` with the
same settings and seed it would get when run on its own, writing its run folder to
``OUT/<case set name>/``. A fit depends only on its case set, configuration and seed, so
the numbers are identical to sequential runs whatever the cluster, worker count or order.

The cluster is a :class:`distributed.LocalCluster` by default (one single-threaded worker
process per core: PyMC/nutpie fits are CPU-bound and each already runs its chains), or an
existing Dask cluster when a scheduler address is given (the workers need this package
installed and must see the case set folders and ``OUT`` at the same paths).
Dask is an optional dependency: ``pip install "neutrality-forecast[scale]"``.
"""

from __future__ import annotations

import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from neutrality_forecast.casesets import CaseSetError, load_case_set
from neutrality_forecast.config import Config, load_config

__all__ = [
    "BatchItem",
    "BatchResult",
    "default_case",
    "plan_batch",
    "results_frame",
    "run_batch",
    "run_one",
]


@dataclass(frozen=True)
class BatchItem:
    """One task: a case set folder, the case to forecast and where its run goes."""

    name: str
    cases: str
    case_id: str
    out: str


@dataclass
class BatchResult:
    """The outcome of one task.

    Attributes
    ----------
    name, cases, case_id : str
        The case set name (output sub-folder), its folder and the forecast case.
    status : str
        ``ok``, ``gate_failed``, ``bad_input`` or ``error``.
    run_id, path : str or None
        The published run (``ok`` only).
    message : str
        Error text for a failed task.
    seconds : float
        Task wall time on its worker.
    table : list of dict
        The forecast rows (``ok`` only), for comparison and summaries.

    """

    name: str
    cases: str
    case_id: str
    status: str
    run_id: str | None = None
    path: str | None = None
    message: str = ""
    seconds: float = 0.0
    table: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the run was published."""
        return self.status == "ok"


def default_case(cases: str | Path) -> str:
    """The case forecast when none is named: the one whose window ends last (the live case).

    Ties go to the first such case in ``cases.csv``.
    """
    cs = load_case_set(cases)
    frame = cs.cases.reset_index(drop=True)
    return str(frame.loc[frame["window_end"].idxmax(), "case_id"])


def plan_batch(
    case_sets: list[str | Path], *, out: str | Path, case_id: str | None = None
) -> list[BatchItem]:
    """One :class:`BatchItem` per case set; output folders named after the case set folders.

    Two case sets with the same folder name get ``-2``, ``-3``... suffixes (in the given
    order). With ``case_id`` None each case set's :func:`default_case` is used.

    Raises
    ------
    CaseSetError
        A case set is invalid.
    KeyError
        ``case_id`` is not in a case set.

    """
    items: list[BatchItem] = []
    seen: dict[str, int] = {}
    for folder in case_sets:
        path = Path(folder).resolve()
        base = path.name or "cases"
        seen[base] = seen.get(base, 0) + 1
        name = base if seen[base] == 1 else f"{base}-{seen[base]}"
        cid = case_id
        if cid is None:
            cid = default_case(path)
        else:
            load_case_set(path).case(cid)
        items.append(BatchItem(name, str(path), cid, str(Path(out).resolve() / name)))
    return items


def run_one(item: BatchItem, config: Config, options: dict) -> BatchResult:
    """Run one forecast (the Dask task); never raises, failures become a status.

    Parameters
    ----------
    item : BatchItem
        What to run.
    config : Config
        The full configuration (identical for every task).
    options : dict
        Keyword arguments of :func:`~neutrality_forecast.workflow.run_forecast` (seed,
        draws, tune, chains, sampler, horizons, as_of).

    """
    from neutrality_forecast.workflow import GateFailed, run_forecast

    started = time.perf_counter()
    res = BatchResult(item.name, item.cases, item.case_id, status="error")
    try:
        run = run_forecast(
            item.cases,
            case_id=item.case_id,
            config=config,
            out=item.out,
            progressbar=False,
            **options,
        )
    except GateFailed as exc:
        res.status, res.message = "gate_failed", str(exc)
    except (CaseSetError, KeyError, ValueError) as exc:
        res.status, res.message = "bad_input", str(exc)
    except Exception:  # noqa: BLE001 - one failing task must not sink the batch
        res.message = traceback.format_exc()
    else:
        res.status, res.run_id = "ok", run.run_id
        res.path = str(run.path) if run.path is not None else None
        res.table = run.table.to_dict("records")
    res.seconds = round(time.perf_counter() - started, 3)
    return res


def run_batch(
    case_sets: list[str | Path],
    *,
    out: str | Path,
    case_id: str | None = None,
    config: Config | None = None,
    scheduler: str | None = None,
    client: object | None = None,
    n_workers: int | None = None,
    processes: bool = True,
    seed: int | None = None,
    draws: int | None = None,
    tune: int | None = None,
    chains: int | None = None,
    sampler: str | None = None,
    horizons: list[int] | None = None,
    as_of: str | None = None,
) -> list[BatchResult]:
    """Forecast many case sets in parallel with Dask; results in the order given.

    Parameters
    ----------
    case_sets : list of str or Path
        Case set folders.
    out : str or Path
        Parent folder; each run goes to ``OUT/<case set name>/``.
    case_id : str, optional
        Case to forecast in every case set (default: each set's :func:`default_case`).
    config : Config, optional
        Configuration (default: :func:`~neutrality_forecast.config.load_config`).
    scheduler : str, optional
        Address of an existing Dask scheduler, e.g. ``tcp://10.0.0.5:8786``.
    client : distributed.Client, optional
        An existing client (takes precedence over ``scheduler``); left open.
    n_workers : int, optional
        Workers of the default LocalCluster (default: ``min(cores, case sets)``).
    processes : bool
        LocalCluster workers as processes (default) or threads of this process.
    seed, draws, tune, chains, sampler, horizons, as_of
        Passed to :func:`~neutrality_forecast.workflow.run_forecast` for every case set;
        the seed defaults to the configuration's, so every task uses the same seed.

    Returns
    -------
    list of BatchResult

    Raises
    ------
    CaseSetError, KeyError
        A case set is invalid or lacks ``case_id`` (checked before anything runs).
    ImportError
        Dask is not installed.

    """
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            'batch forecasts need Dask: pip install "neutrality-forecast[scale]"'
        ) from exc
    config = config or load_config()
    items = plan_batch(case_sets, out=out, case_id=case_id)
    Path(out).mkdir(parents=True, exist_ok=True)
    options = {
        "seed": seed if seed is not None else config.model.sampling.seed,
        "draws": draws,
        "tune": tune,
        "chains": chains,
        "sampler": sampler,
        "horizons": horizons,
        "as_of": as_of,
    }
    if not items:
        return []
    owned: list = []
    try:
        if client is None:
            if scheduler:
                client = Client(scheduler)
            else:
                workers = n_workers or max(1, min(os.cpu_count() or 1, len(items)))
                cluster = LocalCluster(
                    n_workers=workers,
                    threads_per_worker=1,
                    processes=processes,
                    dashboard_address=None,
                )
                owned.append(cluster)
                client = Client(cluster)
            owned.insert(0, client)
        futures = [
            client.submit(
                run_one, item, config, options, key=f"forecast-{i}-{item.name}", pure=False
            )
            for i, item in enumerate(items)
        ]
        return list(client.gather(futures))
    finally:
        for obj in owned:
            obj.close()


def results_frame(results: list[BatchResult]) -> pd.DataFrame:
    """One row per task: name, case, status, run id, seconds, path."""
    return pd.DataFrame(
        [
            {
                "name": r.name,
                "case_id": r.case_id,
                "status": r.status,
                "run_id": r.run_id,
                "seconds": r.seconds,
                "path": r.path,
            }
            for r in results
        ]
    )
