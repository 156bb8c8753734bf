"""ESS-based stopping at checkpoints, and deterministics computed after sampling."""

from __future__ import annotations

import arviz as az
import numpy as np
import pymc as pm
import pytensor.tensor as pt
import pytest

import neutrality_forecast as nf
from neutrality_forecast.deterministics import Deterministics
from neutrality_forecast.model.fitted import stop_rule
from neutrality_forecast.stopping import StopRule, _next_checkpoint, first_draws

IDX = np.array([0, 1, 2, 1, 0])


def _toy(*, det_reads_data: bool = False) -> pm.Model:
    """A small model with gathered and elementwise deterministics (like ``u``, ``sigma_q``)."""
    with pm.Model(coords={"g": ["a", "b", "c"], "q": list("vwxyz")}) as m:
        obs = pm.Data("obs", np.array([0.5, -1.0, 2.0, 0.3, 1.1]), dims="q")
        w = pm.Normal("w")
        z = pm.Normal("z", dims="g")
        pm.Deterministic("u", w * z[IDX], dims="q")
        pm.Deterministic("s", pt.abs(w))
        if det_reads_data:
            pm.Deterministic("r", obs - w * z[IDX], dims="q")
        pm.Normal("y", mu=w * z[IDX], sigma=1.0, observed=obs, dims="q")
    return m


def test_deterministics_are_the_model_graph_on_every_draw():
    """Computed after sampling, vectorised: exactly the model's formulas, with dims and coords."""
    pytest.importorskip("nutpie")
    from neutrality_forecast.sampling import CompiledModel

    compiled = CompiledModel(_toy(), sampler="nutpie")
    assert compiled._deterministics is not None  # the program holds only the free variables
    post = compiled.sample(draws=60, tune=60, chains=2, seed=3, progressbar=False).posterior
    w, z = post["w"].values, post["z"].values
    np.testing.assert_allclose(post["u"].values, w[..., None] * z[..., IDX], rtol=0, atol=1e-12)
    np.testing.assert_allclose(post["s"].values, np.abs(w), rtol=0, atol=1e-12)
    assert post["u"].dims == ("chain", "draw", "q")
    assert list(post["q"].values) == list("vwxyz")


def test_deterministics_that_read_data_stay_in_the_sampler():
    """Swapped data never reach the PyMC model, so such deterministics are not recomputed."""
    assert Deterministics.for_model(_toy(det_reads_data=True)) is None
    assert Deterministics.for_model(_toy()) is not None
    with pm.Model() as bare:
        pm.Normal("x")
    assert Deterministics.for_model(bare) is None


def test_a_stopped_run_keeps_exactly_the_draws_of_a_shorter_run():
    """The first n draws of a run stopped at checkpoint n are the draws of ``draws=n``.

    That is what makes stopping reproducible: the same seed stops at the same checkpoint
    with the same draws, however fast the threads ran.
    """
    pytest.importorskip("nutpie")
    from neutrality_forecast.sampling import CompiledModel

    compiled = CompiledModel(_toy(), sampler="nutpie")
    seen: list[int] = []

    def check(idata):
        seen.append(idata.posterior.sizes["draw"])
        return "enough" if seen[-1] >= 150 else "more"

    kw = dict(tune=100, chains=2, seed=11, progressbar=False)
    stopped = compiled.sample(draws=5000, stop=StopRule(check=check, every=50), **kw)
    plain = compiled.sample(draws=150, **kw)
    assert seen == [50, 100, 150]
    assert stopped.posterior.sizes["draw"] == 150
    assert stopped.attrs["draws_requested"] == 5000
    for name in ("w", "z", "u", "s"):
        np.testing.assert_array_equal(stopped.posterior[name].values, plain.posterior[name].values)
    np.testing.assert_array_equal(
        stopped.sample_stats["diverging"].values, plain.sample_stats["diverging"].values
    )
    hinted: list[int] = []

    def hint(idata):  # asks for ~1,000 draws after the first checkpoint
        hinted.append(idata.posterior.sizes["draw"])
        return ("more", 1000.0) if len(hinted) == 1 else "enough"

    skipped = compiled.sample(draws=5000, stop=StopRule(check=hint, every=50), **kw)
    assert hinted == [50, 900] and skipped.posterior.sizes["draw"] == 900
    failed = compiled.sample(draws=5000, stop=StopRule(check=lambda _: "failed", every=40), **kw)
    assert failed.posterior.sizes["draw"] == 40
    full = compiled.sample(draws=120, stop=StopRule(check=lambda _: "more", every=50), **kw)
    assert full.posterior.sizes["draw"] == 120  # no checkpoint stopped it: all draws


def test_stop_rule_needs_a_positive_spacing():
    with pytest.raises(ValueError, match="every"):
        StopRule(check=lambda _: "more", every=0)


def _fake(n_draws: int, *, divergent: int = 0, seed: int = 0) -> az.InferenceData:
    rng = np.random.default_rng(seed)
    div = np.zeros((4, n_draws), dtype=bool)
    div.flat[:divergent] = True
    return az.from_dict(
        posterior={"mu_alpha": rng.normal(size=(4, n_draws)),
                   "sigma_q": np.abs(rng.normal(size=(4, n_draws, 3)))},
        sample_stats={"diverging": div, "energy": rng.normal(size=(4, n_draws))},
    )  # fmt: skip


def test_stop_rule_verdicts_follow_the_gate():
    """Enough at the raised ESS threshold, more below it, failed once a divergence is kept."""
    cfg = nf.load_config()
    assert stop_rule(cfg.with_updates(sampling={"ess_target": 0})) is None
    rule = stop_rule(cfg.with_updates(sampling={"ess_target": 600, "check_every": 100}))
    assert rule.every == 100
    assert rule.check(_fake(500)) == "enough"  # 2,000 independent draws: ESS ~2,000
    verdict, needed = rule.check(_fake(100))  # ESS ~400 < 600: about 150 draws needed
    assert verdict == "more" and 110 < needed < 220
    assert rule.check(_fake(500, divergent=1)) == "failed"
    strict = stop_rule(cfg.with_updates(sampling={"ess_target": 50_000}))
    verdict, needed = strict.check(_fake(500))
    assert verdict == "more" and 8_000 < needed < 16_000
    verdict, again = strict.check(_fake(500, seed=1))  # the quick check on the worst quantity
    assert verdict == "more" and 8_000 < again < 16_000


def test_checkpoints_skip_to_where_the_draws_should_be_enough():
    assert _next_checkpoint(250, None, 250) == 500
    assert _next_checkpoint(250, 1700.0, 250) == 1750  # 0.9 x 1700 = 1530 -> grid 1750
    assert _next_checkpoint(1500, 1510.0, 250) == 1750  # never the same checkpoint twice
    assert _next_checkpoint(250, float("nan"), 250) == 500


def test_first_draws_trims_posterior_and_stats_only():
    idata = _fake(30)
    idata.add_groups(warmup_posterior=idata.posterior.copy())
    cut = first_draws(idata, 10)
    assert cut.posterior.sizes["draw"] == cut.sample_stats.sizes["draw"] == 10
    assert cut.warmup_posterior.sizes["draw"] == 30
    assert idata.posterior.sizes["draw"] == 30  # the input is left alone


def test_the_gate_reuses_the_stop_checks_statistics_exactly():
    """``judge`` with other thresholds equals ``check_gate`` recomputed with them."""
    from neutrality_forecast.config import GateSettings
    from neutrality_forecast.diagnostics import check_gate, judge

    idata = _fake(200, divergent=1)
    loose, strict = GateSettings(max_divergences=1), GateSettings(ess_bulk_min=5_000)
    first = check_gate(idata, thresholds=loose)
    assert first.passed
    again = judge(first, strict)
    assert again.to_dict() == check_gate(idata, thresholds=strict).to_dict()
    assert not again.passed and again.failed == ["ess_bulk", "divergences"]


def test_a_fit_stops_at_a_checkpoint_and_its_gate_is_the_full_gate():
    """End to end with nutpie: draws come from the configuration (a maximum), every attempt
    keeps a whole number of checkpoints, and the published gate equals the gate recomputed
    from scratch on the kept draws."""
    pytest.importorskip("nutpie")
    from tests.conftest import TINY

    from neutrality_forecast.diagnostics import check_gate
    from neutrality_forecast.model.fitted import gate_vars_of

    cfg = nf.load_config().with_updates(
        sampling={"draws": 3000, "tune": 300, "chains": 2, "ess_target": 200, "check_every": 100}
    )
    fitted = nf.fit(nf.load_case_set(TINY), cfg, sampler="nutpie", seed=3, progressbar=False)
    import json

    attempts = json.loads(fitted.idata.attrs["attempts"])
    assert all(a["draws"] % 100 == 0 and a["draws"] <= 3000 for a in attempts)
    kept = fitted.idata.posterior.sizes["draw"]
    assert kept == attempts[-1]["draws"] and fitted.gate.n_draws == kept
    assert kept < 3000 or fitted.gate.ess_bulk_min < 200  # stopped early unless never enough
    fresh = check_gate(fitted.idata, thresholds=cfg.model.diagnostics,
                       var_names=gate_vars_of(fitted.idata))  # fmt: skip
    assert fresh.to_dict() == fitted.gate.to_dict()


class _FakeSampler:
    """nutpie's background sampler as far as ``sample_until`` uses it: chains that advance
    ``step`` draws per look (or have finished already)."""

    def __init__(self, full: az.InferenceData, *, step: int, finished: bool = False) -> None:
        self.full, self.step, self.k, self.finished, self.cancelled = full, step, 0, finished, False

    @property
    def is_finished(self) -> bool:
        return self.finished

    def inspect(self) -> az.InferenceData:
        self.k = min(self.k + self.step, self.full.posterior.sizes["draw"])
        return first_draws(self.full, self.k)

    def wait(self) -> az.InferenceData:
        return self.full

    def cancel(self) -> None:
        self.cancelled = True


@pytest.mark.parametrize("finished", [False, True])
def test_a_divergence_ends_the_attempt_at_its_checkpoint_however_fast_the_chains(
    finished, monkeypatch
):
    """A divergence at draw 130 ends the run at checkpoint 150 (spacing 50), although the
    check had asked to skip ahead to 10,000 draws; the same whether the chains were looked
    at while running or had already finished."""
    import neutrality_forecast.stopping as stopping
    from neutrality_forecast.stopping import _diverged_at, sample_until

    monkeypatch.setattr(stopping, "POLL_SECONDS", (0.0, 0.0))
    full = _fake(2000)
    full.sample_stats["diverging"][1, 130] = True
    full.add_groups(warmup_posterior=full.posterior.isel(draw=slice(0, 10)))
    rule = StopRule(check=lambda _: ("more", 10_000.0), every=50, max_divergences=0)
    fake = _FakeSampler(full, step=40, finished=finished)
    kept = sample_until(lambda: fake, stop=rule, draws=2000, tune=10)
    assert kept.posterior.sizes["draw"] == 150
    assert int(kept.sample_stats["diverging"].sum()) == 1
    assert fake.cancelled != finished
    assert _diverged_at(full, 149, rule) is None  # checkpoint 150 not reached by every chain
    assert _diverged_at(full, 2000, StopRule(check=rule.check, every=50)) is None  # no limit
    lenient = StopRule(check=rule.check, every=50, max_divergences=1)
    assert _diverged_at(full, 2000, lenient) is None
