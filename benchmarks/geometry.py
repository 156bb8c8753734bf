"""Why NUTS takes long trajectories: the posterior geometry of a saved fit.

Run ``python benchmarks/geometry.py FIT.nc [--top 15]`` on a fit saved by
:meth:`neutrality_forecast.FittedModel.save` (e.g. ``neutrality-forecast forecast`` writes
one). Prints, as JSON: leapfrog steps per draw and step sizes; the bulk ESS of every free
(sampled) variable; the strongest posterior correlations between sampled coordinates
(within-chain centred, so the mirror modes of the signed scale factors do not show up as
correlation); and the condition number of the posterior correlation matrix. A diagonal
mass matrix removes differences of scale, not correlation: with condition number
:math:`\\kappa` the step size shrinks and trajectories lengthen roughly as
:math:`\\sqrt{\\kappa}`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import arviz as az
import numpy as np

from neutrality_forecast.model.fitted import FREE_VARS


def geometry(idata: az.InferenceData, *, top: int = 15) -> dict:
    """Steps, step sizes, ESS of the sampled variables, top correlations, condition number."""
    post, stats = idata.posterior, idata.sample_stats
    chains, draws = post.sizes["chain"], post.sizes["draw"]
    cols, names, ess = [], [], {}
    for v in FREE_VARS:
        if v not in post:
            continue
        ess[v] = float(az.ess(post[v], method="bulk")[v].min())
        a = post[v].values.reshape(chains, draws, -1)
        dims = [d for d in post[v].dims if d not in ("chain", "draw")]
        labels = post[v].coords[dims[0]].values if len(dims) == 1 else range(a.shape[2])
        for j, label in enumerate(labels):
            cols.append(a[:, :, j])
            names.append(f"{v}[{label}]" if a.shape[2] > 1 else v)
    x = np.stack(cols, axis=-1)
    x = (x - x.mean(axis=1, keepdims=True)).reshape(chains * draws, -1)
    corr = np.corrcoef(x.T)
    eig = np.linalg.eigvalsh(corr)
    off = np.triu(np.abs(corr), 1)
    flat = np.argsort(-off.ravel())[:top]
    pairs = [
        f"{names[i]} ~ {names[j]}: {corr[i, j]:+.3f}"
        for i, j in zip(*np.unravel_index(flat, off.shape), strict=True)
    ]
    return {
        "draws": chains * draws,
        "leapfrog_steps_per_draw": float(stats["n_steps"].mean()),
        "step_size_per_chain": [round(float(s), 4) for s in stats["step_size"].mean("draw")],
        "min_bulk_ess_per_variable": {
            k: round(v) for k, v in sorted(ess.items(), key=lambda t: t[1])
        },
        "top_correlations": pairs,
        "correlation_condition_number": float(eig.max() / eig.min()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("fit", type=Path)
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args()
    idata = az.from_netcdf(args.fit)
    print(json.dumps(geometry(idata, top=args.top), indent=2))


if __name__ == "__main__":
    main()
