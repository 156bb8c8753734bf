"""Initial ``target_accept`` study: every variant at every seed, one compilation per data set.

The pre-registration (variants, runs, metric, rule) is in docs/performance.md, section
"Initial step size (2026-11-30, fifth session): pre-registration", written before any run.
Each variant sets ``[sampling] target_accept`` to its value and keeps the retries of the
current policy above it (0.95 then 0.99; 0.95 retries at 0.99 only); everything else is
the shipped default (nutpie numba, ``tune`` 1,000, stopping at ``ess_target`` 600).

Data sets: the shipped case set and the synthetic 60-case population
(:func:`neutrality_forecast.synthetic.synthetic_population`, seed 1, as in
``benchmarks/population.py``). Runs are ordered seed by seed, the variants in turn within a
seed, so slow drift of the machine falls on all variants alike. One JSON line per run:

    python benchmarks/step_size.py --out docs/bench/step-size-study.jsonl
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import arviz as az
from _studies import study_case_set

import neutrality_forecast as nf
from neutrality_forecast.model.data import build_model_data
from neutrality_forecast.model.fitted import GATE_VARS, fit_compiled
from neutrality_forecast.model.hazard import HazardModel
from neutrality_forecast.sampling import CompiledModel

RETRIES = (0.95, 0.99)


def _variant_config(cfg, first: float):
    """``cfg`` starting at ``first``, retrying at the current policy's targets above it."""
    retry = [t for t in RETRIES if t > first]
    return cfg.with_updates(sampling={"target_accept": first, "retry_target_accept": retry})


def _record(fitted, seconds: float) -> dict:
    idata = fitted.idata
    post = idata.posterior[[v for v in GATE_VARS if v in idata.posterior]]
    stats = idata.sample_stats
    steps = float(stats["n_steps"].mean()) if "n_steps" in stats else None
    return {
        "seconds": round(seconds, 1),
        "passed": bool(fitted.gate.passed),
        "draws": int(idata.posterior.sizes["draw"]),
        "attempts": [
            [a["target_accept"], a["divergences"], a["seconds"]]
            for a in json.loads(idata.attrs.get("attempts", "[]"))
        ],
        "steps_per_draw": None if steps is None else round(steps, 1),
        "ess_bulk": round(float(az.ess(post, method="bulk").to_array().min())),
        "ess_tail": round(float(az.ess(post, method="tail").to_array().min())),
        "rhat": round(float(az.rhat(post).to_array().max()), 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variants", default="0.8,0.9,0.95", help="first target_accept values")
    ap.add_argument("--shipped-seeds", default="20160609,1,2,3")
    ap.add_argument("--population-seeds", default="1,2,3")
    ap.add_argument("--out", type=Path, default=Path("runs/step-size-study.jsonl"))
    args = ap.parse_args()
    variants = [float(v) for v in args.variants.split(",")]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    base = nf.load_config()
    sets = [
        ("shipped", study_case_set("shipped"), args.shipped_seeds),
        ("population", study_case_set("population"), args.population_seeds),
    ]
    with args.out.open("a", encoding="utf-8") as out:
        for name, cs, seeds in sets:
            data = build_model_data(cs, base)
            t = time.perf_counter()
            compiled = CompiledModel(HazardModel(data, base).build_model(), sampler="nutpie")
            line = {"data": name, "compile_s": round(time.perf_counter() - t, 1)}
            out.write(json.dumps(line) + "\n")
            out.flush()
            for seed in (int(s) for s in seeds.split(",")):
                for first in variants:
                    cfg = _variant_config(base, first)
                    t = time.perf_counter()
                    fitted = fit_compiled(compiled, cs, cfg, data, seed=seed, progressbar=False)
                    rec = {"data": name, "seed": seed, "first_target_accept": first,
                           **_record(fitted, time.perf_counter() - t)}  # fmt: skip
                    print(json.dumps(rec), flush=True)
                    out.write(json.dumps(rec) + "\n")
                    out.flush()


if __name__ == "__main__":
    main()
