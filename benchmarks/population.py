"""Population-scale benchmarks on a seeded synthetic population (issue: population scale).

Run ``python benchmarks/population.py [--cases 60] [--out runs/bench-population]``.
Everything is measured in ONE run on the current machine and reported as seconds and as
ratios against baselines measured in the same run; nothing is asserted (timings never go
into tests). Writes ``summary.json`` (keys below) and prints it.

* ``population_fit_seconds``: the library's default fit (:class:`HazardModel` with the
  default settings: ``sampler = "auto"``, i.e. nutpie for population-size models, see
  ``docs/performance.md``), ``first`` (empty compile cache, fresh process) and ``routine``
  (fresh process, cache warmed by the first fit: the same cases and questions with other
  data, every event's date shuffled within its case, as a re-forecast brings new events
  to the same questions), with min bulk and tail ESS of the gate's quantities. Until
  2026-11-30 "routine" fitted a second synthetic population (seed 2), whose question count
  differs (375 against 383): another model, compiled again, not a routine fit;
* ``population_speedup_vs_pymc_nuts``: min-ESS per second of the routine fit over PyMC's
  default NUTS on the same graph (shorter chains for the baseline; ESS/s normalises);
* ``population_speedup_vs_textbook``: the same over PyMC's NUTS on the textbook model
  (:class:`ReferenceHazardModel`: every term gathered by index, log-scale scales) fitted to
  the exactly aggregated rows (``[likelihood] bin_width = 0``: no pooling of quiet months
  within covariate bins);
* ``loco_population_seconds`` and ``loco_refit_share``: the leave-cluster-out backtest
  (model + evidence-free twin, every cluster);
* ``peak_rss_gb``: the largest resident set of the processes above; with
  ``--loco-workers N`` also ``loco_peak_rss_gb_all_processes`` (this process's peak plus N
  times the largest worker's: an upper bound on what the run held at once).

The synthetic population comes from :func:`neutrality_forecast.synthetic.synthetic_population`
(60 cases x 180 months, 3-6 events per case-year, clusters of 1-2 cases by default).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import arviz as az
import numpy as np

import neutrality_forecast as nf
from neutrality_forecast.model.fitted import GATE_VARS


def _min_ess(idata) -> tuple[float, float]:
    post = idata.posterior[[v for v in GATE_VARS if v in idata.posterior]]
    return (
        float(az.ess(post, method="bulk").to_array().min()),
        float(az.ess(post, method="tail").to_array().min()),
    )


CHILD = r"""
import json, sys, time, resource
import neutrality_forecast as nf
from neutrality_forecast.model.fitted import GATE_VARS
import arviz as az
cs = nf.load_case_set(sys.argv[1])
t = time.perf_counter()
f = nf.fit(cs, nf.load_config(), progressbar=False, seed=int(sys.argv[2]))
s = time.perf_counter() - t
post = f.idata.posterior[[v for v in GATE_VARS if v in f.idata.posterior]]
print(json.dumps({"seconds": s, "ess_bulk": float(az.ess(post, method="bulk").to_array().min()),
                  "ess_tail": float(az.ess(post, method="tail").to_array().min()),
                  "passed": f.gate.passed, "draws": f.gate.n_draws,
                  "attempts": json.loads(f.idata.attrs.get("attempts", "[]")),
                  "rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}))
"""


def _fresh_fit(folder: Path, seed: int, cache: str) -> dict:
    # PyTensor's compile directory under ``cache`` too: it holds the compiled nutpie program
    # (src/neutrality_forecast/nutpie_numba.py), so "first" really starts empty
    env = {"NF_CACHE_DIR": cache, "PATH": "/usr/bin:/bin", "HOME": str(Path.home()),
           "PYTENSOR_FLAGS": f"base_compiledir={cache}/pytensor"}  # fmt: skip
    out = subprocess.run([sys.executable, "-c", CHILD, str(folder), str(seed)], env=env,
                         capture_output=True, text=True, check=True)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def _exact_rows(cfg):
    """``cfg`` with ``[likelihood] bin_width = 0``: only identical covariates pooled."""
    return cfg.with_updates(likelihood={"bin_width": 0.0})


def _pymc_fit(model_cls, cs, draws: int, cfg) -> dict:
    data = nf.build_model_data(cs, cfg)
    model = model_cls(data, cfg).build_model()
    import pymc as pm

    t = time.perf_counter()
    with model:
        idata = pm.sample(draws=draws, tune=draws, chains=4, cores=2, random_seed=1,
                          progressbar=False, compute_convergence_checks=False)  # fmt: skip
    s = time.perf_counter() - t
    bulk, tail = _min_ess(idata)
    return {"seconds": s, "ess_bulk": bulk, "ess_tail": tail, "draws": draws, "rows": data.n_rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=int, default=60)
    ap.add_argument("--months", type=int, default=180)
    ap.add_argument("--out", type=Path, default=Path("runs/bench-population"))
    ap.add_argument("--baseline-draws", type=int, default=300)
    ap.add_argument("--skip-baselines", action="store_true")
    ap.add_argument("--skip-loco", action="store_true")
    ap.add_argument(
        "--skip-fits",
        action="store_true",
        help="only the leave-cluster-out part (no default fits, no baselines)",
    )
    ap.add_argument(
        "--loco-max-refits",
        type=int,
        default=8,
        help="refit cap of the leave-cluster-out run (as in docs/model-study.md)",
    )
    ap.add_argument(
        "--loco-workers",
        type=int,
        default=1,
        help="local processes for the clusters' importance-sampling passes (same results)",
    )
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp())
    from neutrality_forecast.backtest.placebo import permute_dates
    from neutrality_forecast.synthetic import synthetic_population

    folders = [tmp / "pop1", tmp / "pop1-new-data"]
    synthetic_population(n_cases=args.cases, months=args.months, seed=1, folder=folders[0])
    cs = nf.load_case_set(folders[0])
    # routine: same questions (same compiled program), other data
    permute_dates(cs, np.random.default_rng(2)).write(folders[1])
    data = nf.build_model_data(cs, nf.load_config())
    summary: dict = {"cases": args.cases, "questions": len(data.questions), "rows": data.n_rows,
                     "rows_exact": nf.build_model_data(cs, _exact_rows(nf.load_config())).n_rows,
                     "month_rows": data.meta["month_rows"],
                     "bin_width": nf.load_config().model.likelihood.bin_width,
                     "occurrences": float(data.y.sum())}  # fmt: skip

    def save() -> None:  # after every part: a long run stopped early keeps what it measured
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
        summary["peak_rss_gb"] = max([*rss, own])
        (args.out / "summary.json").write_text(json.dumps(summary, indent=2))

    rss: list[float] = []
    if not args.skip_fits:
        cache = str(tmp / "cache")
        first = _fresh_fit(folders[0], 1, cache)  # empty cache: compiles
        routine = _fresh_fit(folders[1], 2, cache)  # other data, same questions: cache hit
        summary["population_fit_seconds"] = {"first": first, "routine": routine}
        rss += [first["rss_gb"], routine["rss_gb"]]
        save()
        ess_s = min(routine["ess_bulk"], routine["ess_tail"]) / routine["seconds"]
    if not (args.skip_baselines or args.skip_fits):
        from neutrality_forecast.model.hazard import HazardModel
        from neutrality_forecast.model.reference import ReferenceHazardModel

        cfg = nf.load_config()
        for key, name, cls, base_cfg in (
            ("population_speedup_vs_pymc_nuts", "pymc_nuts_same_graph", HazardModel, cfg),
            # the textbook model on the exactly aggregated rows: what a direct
            # implementation fits (no binned pooling of quiet months)
            ("population_speedup_vs_textbook", "pymc_nuts_textbook", ReferenceHazardModel,
             _exact_rows(cfg)),
        ):  # fmt: skip
            base = summary[name] = _pymc_fit(cls, cs, args.baseline_draws, base_cfg)
            summary[key] = ess_s / (min(base["ess_bulk"], base["ess_tail"]) / base["seconds"])
            save()
    if not args.skip_loco:
        from neutrality_forecast.backtest import BacktestSettings, run_backtest

        t = time.perf_counter()
        settings = BacktestSettings(seed=1, max_refits=args.loco_max_refits)
        res = run_backtest(cs, nf.load_config(), settings=settings, progressbar=False,
                           workers=args.loco_workers)  # fmt: skip
        summary["loco_population_seconds"] = time.perf_counter() - t
        summary["loco_workers"] = args.loco_workers
        if args.loco_workers > 1:  # the workers hold memory at the same time as this process
            worker = res.summary.get("worker_peak_rss_gb") or 0.0
            own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
            summary["loco_worker_peak_rss_gb"] = worker
            summary["loco_peak_rss_gb_all_processes"] = own + args.loco_workers * worker
        summary["loco_refit_share"] = res.summary["folds"]["refit_share"]
        summary["loco_folds"] = res.summary["folds"]
        summary["loco_seconds_by_part"] = res.summary.get("seconds_by_part")
        summary["loco_fits"] = res.fits
    save()
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
