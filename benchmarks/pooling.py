"""Pooled exposure rows (``[likelihood] bin_width``): what they save and what they change.

Run ``python benchmarks/pooling.py [--cases data/cases] [--widths 0.25 0.5] [--draws 1000]
[--out FILE]``.

In ONE run on the current machine the script fits the case set with exactly aggregated
rows (``bin_width = 0``) and with each width in ``--widths`` (same seed, sampler, draws)
and reports, per width:

* ``rows`` and fit ``seconds``, and ``speedup`` = exact seconds / pooled seconds;
* how far the pooled posterior is from the exact one: the log-likelihood difference
  ``log L_pooled - log L_exact`` over the exact fit's draws is the log importance weight
  that turns one posterior into the other; its sd, the Pareto k-hat of those weights and
  their effective sample size (``importance_ess`` of ``n`` draws) say how much the
  posteriors differ (sd << 1, k-hat < 0.5 and ESS near ``n``: indistinguishable);
* ``max_abs_std_mean_diff``: the largest difference of posterior means, in exact-posterior
  sds, per parameter group (Monte Carlo error of two independent fits of ~1,000 ESS is
  ~0.05-0.1 sd);
* the headline 12-month forecasts of ``--case`` from both fits.

Nothing is asserted; timings never go into tests. Run it with the machine otherwise idle.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import arviz as az
import numpy as np

import neutrality_forecast as nf
from neutrality_forecast.model.fitted import posterior_draws
from neutrality_forecast.model.likelihood import log_likelihood

GROUPS = ["mu_alpha", "alpha", "mu_beta", "beta", "sigma_beta", "sigma_partner",
          "partner_effect", "sigma_shared", "sigma_q", "rho", "gamma"]  # fmt: skip


def _headline(fitted, case: str) -> dict[str, float]:
    t = nf.make_forecast(fitted, case).table
    t = t[t["headline"] & (t["horizon_months"] == 12)]
    return {str(q): float(p) for q, p in zip(t["question"], t["p_mean"], strict=True)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=Path, default=nf.default_cases_dir())
    ap.add_argument("--case", default="TKM")
    ap.add_argument("--widths", type=float, nargs="+", default=[0.25, 0.5])
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    cs = nf.load_case_set(args.cases)
    cfg = nf.load_config()
    fits, summary = {}, {"draws": args.draws, "tune": args.draws, "widths": {}}
    for w in [0.0, *args.widths]:
        t = time.perf_counter()
        f = nf.fit(
            cs,
            cfg.with_updates(likelihood={"bin_width": w}),
            draws=args.draws,
            tune=args.draws,
            progressbar=True,
        )
        fits[w] = f
        summary["widths"][str(w)] = {
            "rows": f.data.n_rows, "seconds": time.perf_counter() - t,
            "gate": f.gate.describe(), "headline_12m": _headline(f, args.case),
        }  # fmt: skip
        print(json.dumps({w: summary["widths"][str(w)]}), flush=True)
    exact = fits[0.0]
    draws = posterior_draws(exact.idata.posterior, exact.data)
    ll_exact = log_likelihood(draws, exact.data)
    pe = exact.idata.posterior.stack(s=("chain", "draw"))
    for w in args.widths:
        s = summary["widths"][str(w)]
        s["speedup"] = summary["widths"]["0.0"]["seconds"] / s["seconds"]
        lw = log_likelihood(draws, fits[w].data) - ll_exact
        _, khat = az.psislw(lw - lw.max())
        wt = np.exp(lw - lw.max())
        s["loglik_diff_sd"] = float(lw.std())
        s["importance_khat"] = float(khat)
        s["importance_ess"] = float(wt.sum() ** 2 / (wt**2).sum())
        s["n"] = len(lw)
        pp = fits[w].idata.posterior.stack(s=("chain", "draw"))
        s["max_abs_std_mean_diff"] = {
            v: float(np.abs((pp[v].mean("s") - pe[v].mean("s")) / pe[v].std("s")).max())
            for v in GROUPS
            if v in pe
        }
    text = json.dumps(summary, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
