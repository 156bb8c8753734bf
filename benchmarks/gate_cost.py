"""What the diagnostics gate costs: draws and seconds a population fit needs per gate definition.

One long fit per data set (the shipped ``HazardModel``, nutpie numba, 4 chains, the
library's sampler settings), then for every prefix of ``n`` draws per chain the gate
(:func:`~neutrality_forecast.diagnostics.check_gate`, the library's thresholds: R-hat <=
1.01, bulk and tail ESS >= 400, no divergences) is evaluated on three sets of quantities:

* ``all``: the library's gate (:data:`~neutrality_forecast.model.fitted.GATE_VARS`);
* ``no_sigma_q``: the gate without the three question scales ``sigma_q``;
* ``no_scales``: the gate without any hierarchical scale (``sigma_q``, ``sigma_shared``,
  ``sigma_beta``, ``sigma_partner``).

For each, the first ``n`` at which the gate passes (and the checks that failed one grid
step earlier, with the worst quantities), and the sampling seconds that prefix cost,
apportioned from the run's measured sampling time by leapfrog steps (warm-up included).
A *projection* for one chain per core (4 cores) divides the steps of the slowest chain
instead of all steps by the cores; it is arithmetic on the measured step cost, not a
measurement. Also per quantity the bulk ESS per draw, lowest first.

The question it answers (issue 18): would relaxing the gate on the hierarchical scales, or
more cores, bring a routine population fit to 15 s? ::

    python benchmarks/gate_cost.py --out docs/bench/gate-cost.jsonl
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import arviz as az
import numpy as np
from _studies import add_fit_options, study_case_set

import neutrality_forecast as nf
from neutrality_forecast.diagnostics import check_gate
from neutrality_forecast.model.fitted import GATE_VARS
from neutrality_forecast.model.hazard import HazardModel
from neutrality_forecast.sampling import CompiledModel
from neutrality_forecast.stopping import first_draws

SCALES = ["sigma_q", "sigma_shared", "sigma_beta", "sigma_partner"]
GATES = {
    "all": GATE_VARS,
    "no_sigma_q": [v for v in GATE_VARS if v != "sigma_q"],
    "no_scales": [v for v in GATE_VARS if v not in SCALES],
}


def _steps(idata, group: str) -> np.ndarray:
    """Leapfrog steps per (chain, draw) of a sample-stats group."""
    return np.asarray(idata[group]["n_steps"].values, dtype=float)


def gate_cost(idata, seconds: float, *, cores: int = 2, grid: int = 50) -> dict:
    """First passing prefix and its sampling seconds for each gate definition.

    Parameters
    ----------
    idata : InferenceData
        A fit with ``posterior``, ``sample_stats`` and ``warmup_sample_stats``.
    seconds : float
        Measured wall seconds of the whole sampling run.
    cores : int, keyword-only
        Cores the run used (the step cost is ``seconds * cores / steps``).
    grid : int, keyword-only
        Prefix lengths tried, in draws per chain.

    """
    warm, post = _steps(idata, "warmup_sample_stats"), _steps(idata, "sample_stats")
    ms_per_step = 1e3 * seconds * cores / (warm.sum() + post.sum())
    n_draws = post.shape[1]
    out: dict = {"ms_per_step": round(ms_per_step, 3), "draws_run": int(n_draws)}
    for name, names in GATES.items():
        hit, failed = None, []
        for n in range(grid, n_draws + 1, grid):
            gate = check_gate(first_draws(idata, n), var_names=names)
            if gate.passed:
                hit = n
                break
            failed = [*gate.failed, gate.worst]
        if hit is None:
            out[name] = {"passed_within_run": False, "failed": failed}
            continue
        steps_n = warm.sum() + post[:, :hit].sum()
        slowest_chain = (warm.sum(axis=1) + post[:, :hit].sum(axis=1)).max()
        out[name] = {
            "draws_per_chain": hit,
            "sampling_seconds": round(steps_n * ms_per_step / 1e3 / cores, 1),
            "projection_4_cores_seconds": round(slowest_chain * ms_per_step / 1e3, 1),
            "failed_one_step_earlier": failed,
        }
    ess = az.ess(idata.posterior[GATE_VARS], method="bulk")
    per_draw = {v: float(ess[v].min()) / post.size for v in GATE_VARS}
    out["bulk_ess_per_draw"] = {
        v: round(per_draw[v], 3) for v in sorted(per_draw, key=per_draw.get)[:8]
    }
    out["warmup_share_of_steps"] = round(float(warm.sum() / (warm.sum() + post.sum())), 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("runs/gate-cost.jsonl"), help="appended")
    add_fit_options(ap, draws=1500)
    args = ap.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cfg = nf.load_config()
    for name in args.data:
        cs = study_case_set(name)
        data = nf.build_model_data(cs, cfg)
        compiled = CompiledModel(HazardModel(data, cfg).build_model(), sampler="nutpie")
        t0 = time.perf_counter()
        idata = compiled.sample(
            draws=args.draws, tune=args.tune, chains=4, seed=args.seed,
            target_accept=0.9, progressbar=False,
        )  # fmt: skip
        seconds = time.perf_counter() - t0
        rec = {"data": name, "sampling_seconds": round(seconds, 1),
               **gate_cost(idata, seconds)}  # fmt: skip
        print(json.dumps(rec), flush=True)
        with args.out.open("a") as f:
            f.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
