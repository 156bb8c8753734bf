"""The diagnostics gate: no fit is published unless its posterior diagnostics pass.

Thresholds (defaults; set in ``models/model.toml`` under ``[diagnostics]``):

=====================  =========  ==================================================
check                  threshold  reference
=====================  =========  ==================================================
rank-normalised R-hat  <= 1.01    Vehtari, Gelman, Simpson, Carpenter, Bürkner (2021)
bulk ESS               >= 400     same (100 per chain for 4 chains)
tail ESS               >= 400     same
divergences            == 0       Betancourt (2017): any divergence biases the fit
E-BFMI (each chain)    >= 0.3     Betancourt (2016)
tree-depth saturation  share 0    draws hitting the sampler's maximum tree depth
=====================  =========  ==================================================

All statistics are computed with ArviZ over the model's free parameters and the
deterministic parameters derived from them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import arviz as az
import numpy as np

from neutrality_forecast.config import GateSettings

__all__ = ["GateResult", "check_gate", "judge"]

_ADVICE = {
    "rhat": "run longer chains (--draws/--tune) or more chains; check for multimodality",
    "ess_bulk": "increase --draws or --tune",
    "ess_tail": "increase --draws; tails need more draws than the bulk",
    "divergences": "raise target_accept (model.toml [sampling]) or tighten priors",
    "bfmi": "the energy distribution is poorly explored: reparameterise or tune longer",
    "treedepth": "the sampler needs very long trajectories: check priors/scales",
}


@dataclass
class GateResult:
    """Outcome of the gate: ``passed`` plus every statistic and the failed checks."""

    passed: bool
    thresholds: dict
    rhat_max: float
    ess_bulk_min: float
    ess_tail_min: float
    divergences: int
    bfmi_min: float
    treedepth_share: float
    n_draws: int
    n_chains: int
    failed: list[str] = field(default_factory=list)
    advice: list[str] = field(default_factory=list)
    worst: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready dictionary (what ``diagnostics.json`` holds)."""
        return {k: (float(v) if isinstance(v, np.floating) else v) for k, v in asdict(self).items()}

    def describe(self) -> str:
        """One line per failed check with what to try."""
        if self.passed:
            return "diagnostics gate passed"
        return "\n".join(f"FAILED {f}: {a}" for f, a in zip(self.failed, self.advice, strict=True))


#: maximum tree depth of PyMC, nutpie and NumPyro NUTS (their common default)
MAX_TREEDEPTH = 10


def _treedepth_share(stats) -> float:
    for name in ("reached_max_treedepth", "maxdepth_reached"):
        if name in stats:
            return float(stats[name].mean())
    if "tree_depth" in stats:  # NumPyro reports depths only
        return float((stats["tree_depth"] >= MAX_TREEDEPTH).mean())
    return 0.0


def check_gate(
    idata: az.InferenceData,
    *,
    thresholds: GateSettings | None = None,
    var_names: list[str] | None = None,
) -> GateResult:
    """Compute the diagnostics of a fit and compare them with the thresholds.

    Parameters
    ----------
    idata : InferenceData
        With ``posterior`` and ``sample_stats`` groups.
    thresholds : GateSettings, optional
        Defaults to the documented values above.
    var_names : list of str, optional
        Variables to check; default all posterior variables.

    """
    t = thresholds or GateSettings()
    post = idata.posterior if var_names is None else idata.posterior[var_names]
    rhat = az.rhat(post, method="rank")
    ess_b = az.ess(post, method="bulk")
    ess_t = az.ess(post, method="tail")

    def extreme(ds, fn) -> tuple[float, str]:
        vals = {k: float(fn(v.values)) for k, v in ds.data_vars.items() if v.size}
        key = (max if fn is np.nanmax else min)(vals, key=vals.get)
        return vals[key], key

    rhat_max, rhat_var = extreme(rhat, np.nanmax)
    bulk_min, bulk_var = extreme(ess_b, np.nanmin)
    tail_min, tail_var = extreme(ess_t, np.nanmin)
    stats = idata.sample_stats
    divergences = int(stats["diverging"].sum()) if "diverging" in stats else 0
    try:
        bfmi_min = float(np.min(az.bfmi(idata)))
    except (KeyError, AttributeError, ValueError):
        bfmi_min = float("nan")
    depth_share = _treedepth_share(stats)
    measured = GateResult(
        passed=False,
        thresholds={},
        rhat_max=rhat_max,
        ess_bulk_min=bulk_min,
        ess_tail_min=tail_min,
        divergences=divergences,
        bfmi_min=bfmi_min,
        treedepth_share=depth_share,
        n_draws=int(post.sizes["draw"]),
        n_chains=int(post.sizes["chain"]),
        worst={"rhat": rhat_var, "ess_bulk": bulk_var, "ess_tail": tail_var},
    )
    return judge(measured, t)


def judge(result: GateResult, thresholds: GateSettings) -> GateResult:
    """``result``'s statistics compared with other ``thresholds`` (nothing recomputed).

    The gate of a fit that stopped at a checkpoint re-uses the statistics its stop rule
    computed on exactly the kept draws (:func:`~neutrality_forecast.model.fitted.stop_rule`).
    """
    t, r = thresholds, result
    checks = {
        "rhat": r.rhat_max <= t.rhat_max,
        "ess_bulk": r.ess_bulk_min >= t.ess_bulk_min,
        "ess_tail": r.ess_tail_min >= t.ess_tail_min,
        "divergences": r.divergences <= t.max_divergences,
        "bfmi": r.bfmi_min >= t.bfmi_min,
        "treedepth": r.treedepth_share <= t.max_treedepth_share,
    }
    failed = [name for name, ok in checks.items() if not ok]
    return replace(
        r, passed=not failed, thresholds=t.model_dump(), failed=failed,
        advice=[_ADVICE[f] for f in failed],
    )  # fmt: skip
