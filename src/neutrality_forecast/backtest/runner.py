"""Leave-cluster-out and external backtests of the deployed procedure, with two baselines.

What is evaluated is what produces the live forecast: at every origin ``d`` a case is
forecast from a posterior that knows all *other* clusters and its own cluster's history up
to ``d`` (:mod:`neutrality_forecast.backtest.folds`: importance sampling from one
full-population fit, with an automatic refit of the fold where the weights are unreliable).
Cases sharing a cluster (``cases.csv`` column ``cluster``, default the country) are left
out together. Each forecast covers ``(d, d + h months]`` and is scored only when that
period lies inside the case's window (fully observed).

Two baselines are scored on exactly the same forecasts:

* ``base_rate``: the monthly frequency of the family (occurrences per question-month) in
  the *other* clusters, turned into ``1 - (1 - rate) ** h``;
* ``evidence_free``: the same hierarchical model with every evidence covariate set to zero
  (same priors, link, recurrence term, sampler and seed), evaluated the same way.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from neutrality_forecast.backtest.scoring import brier, log_score
from neutrality_forecast.backtest.summary import summarise
from neutrality_forecast.casesets import CaseSet
from neutrality_forecast.config import Config
from neutrality_forecast.model.data import (
    ModelData,
    build_model_data,
    padded_rows,
    questions_at,
)
from neutrality_forecast.model.fitted import FittedModel, fit_compiled
from neutrality_forecast.model.hazard import HazardModel
from neutrality_forecast.sampling import CompiledModel

__all__ = [
    "BacktestResult",
    "HoldoutOverlapError",
    "BacktestSettings",
    "origins_for",
    "run_backtest",
    "score_truth",
]

MODELS = ("hazard", "base_rate", "evidence_free")


@dataclass(frozen=True)
class BacktestSettings:
    """Settings of one backtest (every fold and refit uses them).

    ``n_effects`` fresh question effects per posterior draw and ``n_out`` resampled draws
    per fold (importance sampling); a fold is refitted when ``khat > max_khat`` or the
    weights' ESS is below ``min_ess``; ``max_refits`` caps refits (``None``: no cap; folds
    over the cap are dropped and counted).
    """

    origin_step_months: int = 6
    horizons: tuple[int, ...] = (3, 6, 12, 24)
    draws: int = 500
    tune: int = 500
    chains: int = 4
    seed: int = 0
    sampler: str | None = None
    n_effects: int = 128
    n_out: int = 1000
    max_khat: float = 0.7
    min_ess: float = 200.0
    max_refits: int | None = None


@dataclass
class BacktestResult:
    """Scores (one row per forecast, models side by side), summary, fits and folds."""

    scores: pd.DataFrame
    summary: dict
    fits: list[dict] = field(default_factory=list)
    folds: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def scores_long(self) -> pd.DataFrame:
        """One row per forecast and model (``model`` column), for plotting."""
        keys = ["case_id", "cluster", "outcome", "partner", "origin", "horizon", "occurred"]
        frames = []
        for model in MODELS:
            sfx = "" if model == "hazard" else f"_{model}"
            part = self.scores[keys].copy()
            part["model"] = model
            for col in ("p_mean", "brier", "log_score"):
                part[col] = self.scores[f"{col}{sfx}"]
            frames.append(part)
        return pd.concat(frames, ignore_index=True)


def origins_for(case: pd.Series, step_months: int, min_horizon: int = 0) -> list[pd.Timestamp]:
    """Origins ``window_start + k * step`` (k >= 1) whose shortest horizon fits the window."""
    start, end = pd.Timestamp(case["window_start"]), pd.Timestamp(case["window_end"])
    out, k = [], 1
    while (when := start + pd.DateOffset(months=k * step_months)) + pd.DateOffset(
        months=min_horizon
    ) <= end:
        out.append(pd.Timestamp(when))
        k += 1
    return out


def score_truth(case_set: CaseSet, frame: pd.DataFrame) -> pd.DataFrame:
    """Add ``occurred`` (0/1) and keep only forecasts whose period was fully observed.

    A forecast at origin ``d`` for ``h`` months covers ``(d, d + h months]``; it is kept
    when ``d + h months`` is on or before the case's window end (whether or not the event
    happened: keeping short windows only when the event happened would bias toward hits).
    Recurrent questions score a *new* occurrence in the period.
    """
    if frame.empty:
        return frame.assign(occurred=pd.Series(dtype=int))
    ends = case_set.cases.set_index("case_id")["window_end"]
    occ = case_set.outcomes[case_set.outcomes["occurred"]]
    dates: dict[tuple[str, str, str], list[pd.Timestamp]] = {}
    for r in occ.itertuples(index=False):
        key = (str(r.case_id), str(r.outcome), "" if pd.isna(r.partner) else str(r.partner))
        dates.setdefault(key, []).append(pd.Timestamp(r.occurred_on))
    hit, keep = [], []
    for r in frame.itertuples(index=False):
        d = pd.Timestamp(r.origin)
        target = d + pd.DateOffset(months=int(r.horizon))
        ds = dates.get((r.case_id, r.outcome, r.partner), [])
        hit.append(int(any(d < x <= target for x in ds)))
        keep.append(target <= ends[r.case_id])
    out = frame.assign(occurred=hit)
    return out[np.array(keep, dtype=bool)].reset_index(drop=True)


def _rows(res: dict, case_id: str, cluster: str, origin: pd.Timestamp) -> list[dict]:
    rows = []
    for i, q in enumerate(res["questions"]):
        if res["resolved"][i]:
            continue
        for h_i, h in enumerate(res["horizons"]):
            p = np.clip(res["marginal"][:, h_i, i], 0.0, 1.0)
            rows.append(
                {
                    "case_id": case_id, "cluster": cluster, "outcome": q.outcome,
                    "partner": q.partner or "", "origin": origin.date().isoformat(),
                    "horizon": h, "p_mean": float(p.mean()),
                    "p_q05": float(np.quantile(p, 0.05)), "p_q95": float(np.quantile(p, 0.95)),
                }
            )  # fmt: skip
    return rows


def family_rates(data: ModelData, exclude: list[str]) -> np.ndarray:
    """Occurrences per question-month of each family, without the ``exclude`` cases."""
    keep = ~data.rows_of(exclude)
    y, n, k = data.y[keep], data.trials[keep], data.outcome_idx[keep]
    overall = y.sum() / max(n.sum(), 1e-12)
    rates = np.full(len(data.outcomes), overall, dtype=float)
    for i in range(len(data.outcomes)):
        if n[k == i].sum() > 0:
            rates[i] = y[k == i].sum() / n[k == i].sum()
    return rates


def base_rate_probabilities(
    frame: pd.DataFrame,
    data: ModelData,
    jobs: list[tuple[str, list[str]]],
    exclude: tuple[str, ...] | list[str] = (),
) -> list[float]:
    """The base-rate baseline of every forecast row: ``1 - (1 - rate) ** h``.

    ``rate`` is the family's monthly rate without the row's cluster (``jobs``: cluster ->
    cases) and without ``exclude`` (external holdout cases).
    """
    fam = {o: i for i, o in enumerate(data.outcomes)}
    rates = {cl: family_rates(data, [*cases, *exclude]) for cl, cases in jobs}
    return [1 - (1 - rates[r.cluster][fam[r.outcome]]) ** r.horizon for r in frame.itertuples()]


def fit_record(tag: str, evidence: bool, gate, seconds: float) -> dict:
    """One row of ``fits.csv``: a fit's tag, evidence flag, diagnostics and duration."""
    return {
        "fit": tag, "evidence": evidence, "passed": gate.passed, "failed": gate.failed,
        "rhat_max": gate.rhat_max, "ess_bulk_min": gate.ess_bulk_min,
        "ess_tail_min": gate.ess_tail_min, "divergences": gate.divergences,
        "seconds": round(seconds, 1),
    }  # fmt: skip


class _Runner:
    """One backtest: the compiled model, the two full fits and the fold loop."""

    def __init__(self, case_set: CaseSet, config: Config, settings: BacktestSettings) -> None:
        self.case_set, self.config, self.s = case_set, config, settings
        self.data = build_model_data(case_set, config)
        self._compile(self._pads(self.data, slack=1.1))
        self.fits: list[dict] = []

    @staticmethod
    def _pads(data: ModelData, slack: float = 1.0) -> dict[str, int]:
        return {
            o: padded_rows(int((data.outcome_idx == k).sum() * slack) + 1)
            for k, o in enumerate(data.outcomes)
        }

    def _compile(self, pad_to: dict[str, int]) -> None:
        # 10 % spare rows: refits on cut data and placebo data keep the compiled shapes
        self.model = HazardModel(self.data, self.config, pad_to=pad_to)
        self.compiled = CompiledModel(
            self.model.build_model(), sampler=self.s.sampler or self.config.model.sampling.sampler
        )

    def fit(self, case_set: CaseSet, *, evidence: bool, seed: int, tag: str,
            exclude: tuple[str, ...] = ()) -> tuple[FittedModel, ModelData]:  # fmt: skip
        data = (
            self.data
            if case_set is self.case_set
            else build_model_data(case_set, self.config, partners=self.data.partners)
        )
        s = self.s
        need = self._pads(data)
        if any(need[o] > self.model.pad_to[o] for o in need):
            self._compile({o: max(need[o], self.model.pad_to[o]) for o in need})
        fm = fit_compiled(
            self.compiled, case_set, self.config, data,
            inputs=data.model_inputs(exclude_cases=exclude, evidence=evidence,
                                     pad_to=self.model.pad_to),
            draws=s.draws, tune=s.tune, chains=s.chains, seed=seed, progressbar=False,
        )  # fmt: skip
        self.fits.append(fit_record(tag, evidence, fm.gate, fm.fit_seconds))
        return fm, data

    def forecast(self, qs, draws, *, evidence: bool, origin, seed: int) -> dict:
        from neutrality_forecast.backtest.passes import deployed_forecast

        return deployed_forecast(self.config, self.data, self.s.horizons, qs, draws,
                                 evidence=evidence, origin=origin, seed=seed)  # fmt: skip


def _cluster_cases(case_set: CaseSet) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for case, cl in case_set.clusters.items():
        out.setdefault(cl, []).append(case)
    return out


def run_folds(
    runner: _Runner,
    fitted_draws: dict[str, np.ndarray],
    *,
    evidence: bool,
    source: CaseSet,
    jobs: list[tuple[str, list[str]]],
    progress=None,
    refit_budget: list[int] | None = None,
    remove: bool = True,
    exclude: tuple[str, ...] = (),
    scheduler: str | None = None,
    client=None,
    known_cache: dict | None = None,
    timing: dict[str, float] | None = None,
    workers: int = 1,
    worker_rss: list[float] | None = None,
) -> tuple[list[dict], list[dict]]:
    """Forecast rows and fold records for ``jobs`` = [(cluster, cases)] of ``source``.

    ``remove``: the cluster's data are in the fit and are removed by the weights
    (leave-cluster-out); ``False`` when the fit never saw them (external holdout).
    ``exclude``: cases left out of every refit (external holdout cases). The clusters'
    passes run here or on ``workers`` local processes
    (:func:`~neutrality_forecast.backtest.passes.run_passes`: same results). Folds that
    need a refit are collected in cluster order, capped by ``refit_budget`` (folds over
    it are dropped) and run at the end, locally or on the Dask cluster at ``scheduler``
    (:mod:`neutrality_forecast.backtest.refits`). ``known_cache`` (a dict) keeps each
    case's :class:`~neutrality_forecast.model.known.CaseHistory`, its questions as known at
    each origin and the clusters' origin-month rows for another pass over the same
    ``source`` (the evidence-free twin's; in this process only). ``timing`` (a dict)
    accumulates seconds by part: ``weights`` (cluster states and importance weights),
    ``questions`` (questions as known at each origin and their origin-month rows),
    ``forecast`` (with workers: summed over the worker processes) and ``refits``;
    ``worker_rss`` (a list) receives each worker pass's peak resident set (GB).
    """
    from neutrality_forecast.backtest.passes import FoldPass, run_passes
    from neutrality_forecast.backtest.refits import execute_refits

    s = runner.s
    clock = {} if timing is None else timing
    if refit_budget is None and s.max_refits is not None:
        refit_budget = [s.max_refits]
    p = FoldPass(runner.config, s, runner.data, source, fitted_draws, evidence, remove,
                 tuple(exclude))  # fmt: skip
    passes = run_passes(p, jobs, workers=workers, cache=known_cache, progress=progress)
    rows, folds, refits = [], [], []
    for cp in passes:  # cluster order: the budget goes to the same folds as in one process
        for part, sec in cp.clock.items():
            clock[part] = clock.get(part, 0.0) + sec
        if worker_rss is not None and cp.peak_rss_gb:
            worker_rss.append(cp.peak_rss_gb)
        for idx, job in cp.pending:
            if refit_budget is not None and refit_budget[0] <= 0:
                cp.folds[idx]["method"] = "dropped"
                continue
            if refit_budget is not None:
                refit_budget[0] -= 1
            refits.append(job)
        rows += cp.rows
        folds += cp.folds
    t0 = time.perf_counter()
    more, _ = execute_refits(runner, source, refits, scheduler=scheduler, client=client,
                             progress=progress)  # fmt: skip
    clock["refits"] = clock.get("refits", 0.0) + time.perf_counter() - t0
    return rows + more, folds


def _known(case_set: CaseSet, case_id: str, origin, config: Config, data: ModelData):
    return questions_at(case_set, case_id, pd.Timestamp(origin), config, data)


def _score_all(frame: pd.DataFrame) -> pd.DataFrame:
    y = frame["occurred"].to_numpy()
    for sfx in ("", "_base_rate", "_evidence_free"):
        p = frame[f"p_mean{sfx}"].to_numpy()
        frame[f"brier{sfx}"] = brier(p, y)
        frame[f"log_score{sfx}"] = log_score(p, y)
    return frame


def _combine(train: CaseSet, holdout: CaseSet) -> CaseSet:
    clash = set(train.case_ids) & set(holdout.case_ids)
    if clash:
        raise ValueError(f"holdout case ids also in the training set: {sorted(clash)}")
    cat = lambda a, b: pd.concat([a, b], ignore_index=True)  # noqa: E731
    events = cat(train.events, holdout.events)
    for col in ("date_precision", "event_type", "source_reliability", "info_credibility"):
        events[col] = pd.Categorical(
            events[col].astype(str), categories=train.events[col].cat.categories,
            ordered=train.events[col].cat.ordered,
        )  # fmt: skip
    outcomes = cat(train.outcomes, holdout.outcomes)
    outcomes["outcome"] = pd.Categorical(
        outcomes["outcome"].astype(str), categories=train.outcomes["outcome"].cat.categories
    )
    cases = cat(train.cases, holdout.cases)
    cases["neutrality_status"] = pd.Categorical(
        cases["neutrality_status"].astype(str),
        categories=train.cases["neutrality_status"].cat.categories,
    )
    return CaseSet(cases, outcomes, events, root=train.root)


class HoldoutOverlapError(ValueError):
    """External mode: holdout cases overlap training cases (same country and window)."""


def holdout_overlaps(train: CaseSet, holdout: CaseSet) -> dict[str, list[str]]:
    """Holdout cases whose country and window overlap a training case's."""
    out: dict[str, list[str]] = {}
    for h in holdout.cases.itertuples(index=False):
        for t in train.cases.itertuples(index=False):
            same = h.country == t.country
            if same and h.window_start <= t.window_end and t.window_start <= h.window_end:
                out.setdefault(h.case_id, []).append(t.case_id)
    return out


def _evaluate(
    model_set: CaseSet,
    config: Config,
    s: BacktestSettings,
    *,
    jobs: list[tuple[str, list[str]]],
    exclude: tuple[str, ...],
    placebo: int,
    progressbar: bool,
    scheduler: str | None = None,
    client=None,
    workers: int = 1,
) -> tuple[pd.DataFrame, pd.DataFrame, dict, _Runner]:
    from rich.progress import Progress

    runner = _Runner(model_set, config, s)
    remove = not exclude  # loco: remove the cluster from the full fit; external: not in it
    budget = None if s.max_refits is None else [s.max_refits]
    n_total = sum(
        len(origins_for(model_set.case(c), s.origin_step_months, min(s.horizons)))
        for _, cs in jobs for c in cs
    )  # fmt: skip
    out: dict[bool, list[dict]] = {}
    folds: list[dict] = []
    known: dict = {}  # questions as known at each origin: the same for model and twin
    timing: dict[str, float] = {"full_fits": 0.0}
    worker_rss: list[float] = []
    with Progress(disable=not progressbar, transient=True) as progress:
        for evidence in (True, False):
            t0 = time.perf_counter()
            fm, _ = runner.fit(model_set, evidence=evidence, seed=s.seed, tag="full",
                               exclude=exclude)  # fmt: skip
            timing["full_fits"] += time.perf_counter() - t0
            task = progress.add_task(
                f"folds ({'model' if evidence else 'evidence-free twin'})", total=n_total
            )
            rows, f = run_folds(
                runner, fm.draws(), evidence=evidence, source=model_set, jobs=jobs,
                progress=lambda t=task: progress.advance(t), refit_budget=budget,
                remove=remove, exclude=exclude, scheduler=scheduler, client=client,
                known_cache=known, timing=timing, workers=workers, worker_rss=worker_rss,
            )  # fmt: skip
            out[evidence], folds = rows, folds + f
    keys = ["case_id", "cluster", "outcome", "partner", "origin", "horizon"]
    model = pd.DataFrame(out[True])
    free = pd.DataFrame(out[False])[[*keys, "p_mean"]].rename(
        columns={"p_mean": "p_mean_evidence_free"}
    )
    frame = model.merge(free, on=keys, how="inner")
    frame["p_mean_base_rate"] = base_rate_probabilities(frame, runner.data, jobs, exclude)
    scores = _score_all(score_truth(model_set, frame))
    # seconds by part (model and twin together; refits include their forecasts)
    extra: dict = {"seconds_by_part": {k: round(v, 1) for k, v in timing.items()}}
    if workers > 1:
        extra["workers"] = workers
        extra["worker_peak_rss_gb"] = round(max(worker_rss, default=0.0), 3)
    if placebo and not scores.empty:
        from neutrality_forecast.backtest.placebo import placebo_skills

        extra["placebo"] = placebo_skills(
            runner, scores, n=placebo, jobs=jobs, progressbar=progressbar, exclude=exclude
        )
    return scores, pd.DataFrame(folds), extra, runner


def run_backtest(
    case_set: CaseSet,
    config: Config,
    *,
    mode: str = "loco",
    holdout: CaseSet | None = None,
    settings: BacktestSettings | None = None,
    placebo: int = 0,
    allow_overlap: bool = False,
    progressbar: bool = True,
    scheduler: str | None = None,
    client=None,
    workers: int = 1,
) -> BacktestResult:
    """Backtest the model and its two baselines.

    Parameters
    ----------
    case_set : CaseSet
        The reference population (in ``loco`` mode every cluster is left out in turn).
    config : Config
        Model configuration.
    mode : {"loco", "external", "both"}
        Leave-cluster-out over ``case_set``; forecasting every case of ``holdout`` from a
        fit on ``case_set`` (its own history before each origin included, as for a live
        case); or both (rows tagged in the ``mode`` column).
    holdout : CaseSet, optional
        Required for ``external``.
    settings : BacktestSettings
        Origins, horizons, sampling and importance-sampling settings.
    placebo : int
        Also run the model on ``placebo`` copies of the data with event dates permuted
        within each case (:func:`~neutrality_forecast.backtest.placebo.permute_dates`) and
        report where the real skill falls among them.
    allow_overlap : bool
        External mode refuses holdout cases whose country and window overlap a training
        case (they share events and outcomes: not independent). With ``True`` they are
        kept and flagged (``overlap`` column, excluded from the headline summary).
    progressbar : bool
        Show progress bars.
    scheduler, client : optional
        Send the folds that need a refit to this Dask scheduler (address) or client; the
        results are identical to a local run with the same seeds.
    workers : int
        Run the clusters' importance-sampling passes on this many local processes
        (:mod:`neutrality_forecast.backtest.passes`); the results are identical to one
        process. Each worker holds the posterior and one cluster's states (about 0.5-1 GB
        for a 60-case population).

    """
    if mode not in ("loco", "external", "both"):
        raise ValueError(f"mode must be loco, external or both, not {mode!r}")
    if mode in ("external", "both") and holdout is None:
        raise ValueError("external mode needs a holdout case set")
    s = settings or BacktestSettings(horizons=tuple(config.model.forecast.horizons))
    started = time.perf_counter()
    parts, fold_parts, summary, fits = [], [], {"mode": mode}, []
    sampler = None
    if mode in ("loco", "both"):
        jobs = list(_cluster_cases(case_set).items())
        sc, fo, extra, runner = _evaluate(
            case_set, config, s, jobs=jobs, exclude=(), placebo=placebo,
            progressbar=progressbar, scheduler=scheduler, client=client, workers=workers,
        )  # fmt: skip
        parts.append(sc.assign(mode="loco"))
        fold_parts.append(fo.assign(mode="loco"))
        summary["loco"] = {**summarise(sc, folds=fo), **extra}
        fits += [{**f, "mode": "loco"} for f in runner.fits]
        sampler = runner.compiled.sampler
    if mode in ("external", "both"):
        overlaps = holdout_overlaps(case_set, holdout)
        if overlaps and not allow_overlap:
            raise HoldoutOverlapError(
                "holdout cases overlap training cases (same country, overlapping window): "
                + "; ".join(f"{h} ~ {', '.join(t)}" for h, t in overlaps.items())
                + ". Remove them, or pass allow_overlap=True (--allow-overlap) to flag them."
            )
        combined = _combine(case_set, holdout)
        clusters = {c: combined.clusters[c] for c in holdout.case_ids}
        jobs = [
            (cl, [c for c, k in clusters.items() if k == cl])
            for cl in dict.fromkeys(clusters.values())
        ]
        sc, fo, extra, runner = _evaluate(
            combined, config, s, jobs=jobs, exclude=tuple(holdout.case_ids), placebo=placebo,
            progressbar=progressbar, scheduler=scheduler, client=client, workers=workers,
        )  # fmt: skip
        sc["overlap"] = sc["case_id"].isin(list(overlaps))
        parts.append(sc.assign(mode="external"))
        fold_parts.append(fo.assign(mode="external"))
        clean = sc[~sc["overlap"]]
        summary["external"] = {**summarise(clean, folds=fo), **extra}
        summary["external"]["overlapping_cases"] = overlaps
        fits += [{**f, "mode": "external"} for f in runner.fits]
        sampler = runner.compiled.sampler
    scores = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    folds = pd.concat(fold_parts, ignore_index=True) if fold_parts else pd.DataFrame()
    if mode != "both":
        summary.update(summary.pop(mode))
    summary["settings"] = {**asdict(s), "sampler": sampler}
    summary["model_version"] = config.model.model_version
    summary["fits_passed_gate"] = int(sum(f["passed"] for f in fits))
    summary["fits_total"] = len(fits)
    summary["seconds"] = round(time.perf_counter() - started, 1)
    return BacktestResult(scores=scores, summary=summary, fits=fits, folds=folds)
