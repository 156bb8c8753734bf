"""Run the full model validation and write its numbers (for docs/validation.md).

``python benchmarks/validate.py [--out runs/validation] [--sbc-sims 100] [--recovery-sims 10]``

* prior predictive base rates (shipped data);
* simulation-based calibration on the tiny fixture's design (reduced configuration);
* parameter recovery on the design of the first ``--recovery-cases`` shipped cases (12 by
  default: a full-population fit takes minutes, ten of them would take an hour);
* power-scaling prior/likelihood sensitivity of the default fit on the shipped data.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import neutrality_forecast as nf  # noqa: E402
from neutrality_forecast.validation import (  # noqa: E402
    parameter_recovery,
    power_scaling_sensitivity,
    prior_base_rates,
    sbc,
)

TINY = Path(__file__).resolve().parent.parent / "tests" / "data" / "tiny"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=Path("runs/validation"))
    ap.add_argument("--sbc-sims", type=int, default=100)
    ap.add_argument("--recovery-sims", type=int, default=10)
    ap.add_argument("--recovery-cases", type=int, default=12)
    ap.add_argument("--skip", default="", help="comma list of: prior,sbc,recovery,sensitivity")
    args = ap.parse_args()
    skip = set(args.skip.split(","))
    args.out.mkdir(parents=True, exist_ok=True)
    cfg = nf.load_config()
    shipped = nf.load_case_set(nf.default_cases_dir())
    summary: dict = {}
    if "prior" not in skip:
        rates = prior_base_rates(shipped, cfg)
        rates.to_csv(args.out / "prior_base_rates.csv", index=False)
        summary["prior_base_rates"] = rates.to_dict("records")
    if "sbc" not in skip:
        t = time.perf_counter()
        ranks, tests = sbc(nf.load_case_set(TINY), cfg, n_sims=args.sbc_sims, draws=400, tune=400)
        ranks.to_csv(args.out / "sbc_ranks.csv", index=False)
        tests.to_csv(args.out / "sbc_tests.csv", index=False)
        params = sorted(ranks["param"].unique())
        fig, axes = plt.subplots(4, (len(params) + 3) // 4, figsize=(14, 9), sharex=True)
        for ax, name in zip(axes.ravel(), params, strict=False):
            ax.hist(ranks.loc[ranks["param"] == name, "rank"], bins=10, range=(0, 100))
            ax.axhline(len(ranks[ranks["param"] == name]) / 10, color="k", lw=0.8)
            ax.set_title(name, fontsize=8)
        fig.suptitle("SBC rank histograms (uniform if inference is calibrated)")
        fig.tight_layout()
        fig.savefig(args.out / "sbc_ranks.png", dpi=90)
        summary["sbc"] = {
            "n_sims": args.sbc_sims, "seconds": round(time.perf_counter() - t, 1),
            "min_pvalue": float(tests["chi2_pvalue"].min()),
            "n_params": len(tests),
            "n_below_0.01_bonferroni": int((tests["chi2_pvalue"] < 0.01 / len(tests)).sum()),
            "n_below_0.05": int((tests["chi2_pvalue"] < 0.05).sum()),
        }  # fmt: skip
    if "recovery" not in skip:
        t = time.perf_counter()
        design = shipped.subset(shipped.case_ids[: args.recovery_cases])
        rec = parameter_recovery(design, cfg, n_sims=args.recovery_sims, draws=500, tune=500)
        rec.to_csv(args.out / "recovery.csv", index=False)
        summary["recovery"] = {
            "n_sims": args.recovery_sims, "seconds": round(time.perf_counter() - t, 1),
            "design_cases": design.case_ids,
            "coverage_90": float(rec["covered"].mean()),
            "by_param": rec.groupby(rec["param"].str.split("[").str[0])["covered"].mean().round(3).to_dict(),
        }  # fmt: skip
    if "sensitivity" not in skip:
        fitted = nf.fit(shipped, cfg, progressbar=False)
        sens = power_scaling_sensitivity(fitted)
        sens.to_csv(args.out / "sensitivity.csv", index=False)
        summary["sensitivity"] = {
            "gate_passed": fitted.gate.passed,
            "rows": sens.round(4).to_dict("records"),
        }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print(json.dumps(summary, indent=2, default=str)[:4000])


if __name__ == "__main__":
    main()
