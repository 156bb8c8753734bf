"""Mass matrix against the posterior's correlations: diagonal, dense and low-rank NUTS.

Run ``python benchmarks/mass_matrix.py [--cases data/cases] [--draws 1000] [--tune 1000]
[--chains 2] [--variants numpyro_diag,numpyro_dense,...] [--out FILE]``.

``benchmarks/geometry.py`` found the shipped posterior's correlation matrix badly
conditioned (condition number ~500, the question-effect scale factors ``w_q`` against the
effects of questions with several occurrences): a diagonal mass matrix cannot undo that,
so NUTS takes long trajectories (~50-60 leapfrog steps per draw). This script samples the
default model on the shipped data, in ONE run, with the same seed, draws and
``target_accept`` under each variant:

* ``numpyro_diag``: the library's default (NumPyro NUTS, diagonal mass matrix);
* ``numpyro_dense``: NumPyro NUTS with a dense mass matrix adapted in warm-up;
* ``nutpie_diag`` / ``nutpie_lowrank``: nutpie (JAX backend, the same graph) with its
  diagonal mass matrix, and with its low-rank modified mass matrix
  (``low_rank_modified_mass_matrix=True``);
* ``nutpie_numba``: nutpie's diagonal mass matrix with its numba backend (the gradient
  compiled to machine code, called from nutpie's threads without Python);
* ``pymc_nuts``: PyMC's own NUTS (C backend, one process per chain) on the same graph.

For each it prints leapfrog steps per draw, divergences, the gate's statistics (max
R-hat, min bulk and tail ESS over the gated variables) and **min bulk ESS per 1000
gradient evaluations** (the kept draws' leapfrog steps), which does not depend on how busy the machine is, plus wall time
and the ratios to ``numpyro_diag``. Nothing is asserted; nothing is adopted here.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import neutrality_forecast as nf  # sets JAX's program-argument hoisting before JAX starts

VARIANTS = (
    "numpyro_diag",
    "numpyro_dense",
    "nutpie_diag",
    "nutpie_lowrank",
    "nutpie_numba",
    "pymc_nuts",
)


def _sample(model, variant: str, *, draws: int, tune: int, chains: int, seed: int, target: float):
    from neutrality_forecast.numpyro_nuts import sample_numpyro

    if variant.startswith("numpyro"):
        return sample_numpyro(
            model, draws=draws, tune=tune, chains=chains, seed=seed, target_accept=target,
            progressbar=False, dense_mass=variant == "numpyro_dense",
        )  # fmt: skip
    if variant == "pymc_nuts":
        import pymc as pm

        with model:
            return pm.sample(
                draws=draws, tune=tune, chains=chains, cores=min(chains, 2), random_seed=seed,
                target_accept=target, progressbar=False, compute_convergence_checks=False,
                mp_ctx="spawn",
            )  # fmt: skip
    import nutpie

    if variant == "nutpie_numba":
        compiled = nutpie.compile_pymc_model(model)  # numba backend: no Python per gradient
    else:
        compiled = nutpie.compile_pymc_model(model, backend="jax", gradient_backend="jax")
    return nutpie.sample(
        compiled, draws=draws, tune=tune, chains=chains, seed=seed, target_accept=target,
        progress_bar=False, low_rank_modified_mass_matrix=variant == "nutpie_lowrank",
    )  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=Path, default=Path("data/cases"))
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--seed", type=int, default=20160609)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    from neutrality_forecast.diagnostics import check_gate
    from neutrality_forecast.model.data import build_model_data
    from neutrality_forecast.model.fitted import GATE_VARS
    from neutrality_forecast.model.hazard import HazardModel

    cfg = nf.load_config()
    data = build_model_data(nf.load_case_set(args.cases), cfg)
    target = cfg.model.sampling.target_accept
    rows = {}
    for variant in args.variants.split(","):
        model = HazardModel(data, cfg).build_model()
        t0 = time.perf_counter()
        idata = _sample(
            model, variant, draws=args.draws, tune=args.tune, chains=args.chains,
            seed=args.seed, target=target,
        )  # fmt: skip
        seconds = time.perf_counter() - t0
        gate = check_gate(idata, var_names=[v for v in GATE_VARS if v in idata.posterior])
        steps = np.asarray(idata.sample_stats["n_steps"])  # both samplers' name
        grads = float(steps.sum())
        rows[variant] = {
            "seconds": round(seconds, 1),
            "leapfrog_steps_per_draw": round(float(steps.mean()), 1),
            "divergences": int(np.asarray(idata.sample_stats["diverging"]).sum()),
            "rhat_max": round(gate.rhat_max, 4),
            "ess_bulk_min": round(gate.ess_bulk_min),
            "ess_tail_min": round(gate.ess_tail_min),
            "worst": gate.worst,
            "ess_bulk_min_per_1000_gradients": round(gate.ess_bulk_min / grads * 1e3, 3),
            "ess_bulk_min_per_second": round(gate.ess_bulk_min / seconds, 2),
        }
        print(variant, json.dumps(rows[variant]), flush=True)
    if "numpyro_diag" in rows:
        base = rows["numpyro_diag"]
        for r in rows.values():
            r["ratio_ess_per_gradient_vs_numpyro_diag"] = round(
                r["ess_bulk_min_per_1000_gradients"] / base["ess_bulk_min_per_1000_gradients"], 2
            )
            r["ratio_ess_per_second_vs_numpyro_diag"] = round(
                r["ess_bulk_min_per_second"] / base["ess_bulk_min_per_second"], 2
            )
    out = {
        "cases": str(args.cases),
        "draws": args.draws,
        "tune": args.tune,
        "chains": args.chains,
        "seed": args.seed,
        "target_accept": target,
        "model_version": cfg.model.model_version,
        "variants": rows,
    }
    text = json.dumps(out, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
