"""benchmarks/gate_cost.py: the first passing prefix per gate definition and its seconds."""

from __future__ import annotations

import arviz as az
import numpy as np
import pytest
from tests.helpers import load_benchmark

from neutrality_forecast.diagnostics import check_gate
from neutrality_forecast.model.fitted import GATE_VARS
from neutrality_forecast.stopping import first_draws

CHAINS, DRAWS, WARM = 4, 600, 100


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("gate_cost")


def _idata(*, stuck: str | None = None) -> az.InferenceData:
    """Independent draws of every gate quantity; ``stuck`` gets a different mean per chain."""
    rng = np.random.default_rng(7)
    post = {v: rng.normal(size=(CHAINS, DRAWS)) for v in GATE_VARS}
    if stuck:
        post[stuck] = post[stuck] + 3.0 * np.arange(CHAINS)[:, None]
    stats = {
        "n_steps": np.full((CHAINS, DRAWS), 10),
        "diverging": np.zeros((CHAINS, DRAWS), dtype=bool),
        "energy": rng.normal(size=(CHAINS, DRAWS)),
    }
    warm = {"n_steps": np.full((CHAINS, WARM), 20)}
    return az.from_dict(
        posterior=post, sample_stats=stats, warmup_sample_stats=warm, save_warmup=True
    )


def test_seconds_are_apportioned_by_leapfrog_steps(bench):
    out = bench.gate_cost(_idata(), 10.0, cores=2, grid=50)
    steps = CHAINS * WARM * 20 + CHAINS * DRAWS * 10
    ms = 1e3 * 10.0 * 2 / steps
    assert out["ms_per_step"] == pytest.approx(ms, abs=1e-3)
    assert out["warmup_share_of_steps"] == pytest.approx(CHAINS * WARM * 20 / steps, abs=1e-3)
    for name in ("all", "no_sigma_q", "no_scales"):
        n = out[name]["draws_per_chain"]
        assert n % 50 == 0 and 50 <= n <= DRAWS
        assert out[name]["sampling_seconds"] == pytest.approx(
            (CHAINS * WARM * 20 + CHAINS * n * 10) * ms / 1e3 / 2, abs=0.06
        )
        # one chain per core: the slowest chain's steps at the same step cost
        assert out[name]["projection_4_cores_seconds"] == pytest.approx(
            (WARM * 20 + n * 10) * ms / 1e3, abs=0.06
        )
    # fewer quantities can only pass sooner
    assert out["no_scales"]["draws_per_chain"] <= out["all"]["draws_per_chain"]


def test_first_passing_prefix_is_the_first_on_the_grid(bench):
    idata = _idata()
    n = bench.gate_cost(idata, 10.0, grid=50)["all"]["draws_per_chain"]
    assert check_gate(first_draws(idata, n), var_names=GATE_VARS).passed
    if n > 50:
        assert not check_gate(first_draws(idata, n - 50), var_names=GATE_VARS).passed


def test_a_stuck_scale_blocks_only_the_gates_that_hold_it(bench):
    out = bench.gate_cost(_idata(stuck="sigma_q"), 10.0, grid=100)
    assert out["all"]["passed_within_run"] is False
    assert "rhat" in out["all"]["failed"] and out["all"]["failed"][-1]["rhat"] == "sigma_q"
    assert out["no_sigma_q"]["draws_per_chain"] <= DRAWS
    assert list(out["bulk_ess_per_draw"])[0] == "sigma_q"
