"""Cheap refits: warm starts from a saved posterior and the JAX compilation cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tests.conftest import TINY
from tests.helpers import mock_fit

import neutrality_forecast as nf
from neutrality_forecast.model.fitted import FREE_VARS, warm_start_point
from neutrality_forecast.sampling import enable_jax_cache


def test_warm_start_point_means_and_shapes(tmp_path, monkeypatch):
    cs = nf.load_case_set(TINY)
    fitted = mock_fit(cs, monkeypatch=monkeypatch, draws=20)
    path = fitted.save(tmp_path / "post.nc")
    point = warm_start_point(path, cs)
    assert set(point) == set(FREE_VARS)
    post = fitted.idata.posterior
    sign = np.sign(post["w_shared"])
    np.testing.assert_allclose(
        point["z_shared"], (post["z_shared"] * sign).mean(("chain", "draw")).values
    )
    np.testing.assert_allclose(point["w_shared"], abs(post["w_shared"]).mean(("chain", "draw")))
    assert point["w_shared"] > 0 and point["w_beta"] > 0 and (point["w_q"] > 0).all()
    # per-question effects flip with their family's scale factor
    fam = [str(q).split("|")[1] for q in post["question"].values]
    s_q = np.sign(post["w_q"].sel(outcome=fam).values)
    np.testing.assert_allclose(point["z_q"], (post["z_q"].values * s_q).mean((0, 1)))
    assert point["z_shared"].shape == (3,) and point["z_q"].shape == (7,)
    # a different case list would not fit the parameter shapes: no warm start
    assert warm_start_point(path, cs.subset(["XTA", "XTB"])) is None
    assert warm_start_point(tmp_path / "missing.nc", cs) is None


def test_warm_started_fit_runs(tmp_path, monkeypatch):
    cs = nf.load_case_set(TINY)
    fitted = mock_fit(cs, monkeypatch=monkeypatch, draws=20)
    point = warm_start_point(fitted.save(tmp_path / "post.nc"), cs)
    again = nf.fit(cs, nf.load_config(), sampler="pymc", draws=20, chains=2, initvals=point)
    assert again.idata.posterior.sizes["draw"] == 20


def test_jax_cache_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("NF_CACHE_DIR", str(tmp_path))
    folder = enable_jax_cache()
    assert folder == tmp_path / "jax" and folder.is_dir()
    monkeypatch.delenv("NF_CACHE_DIR")
    enable_jax_cache()  # back to the default folder for later tests


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux /proc")
def test_numpyro_refits_on_new_data_do_not_accumulate_executables():
    """Loops of fits (SBC, recovery, backtests) must not leak one JAX executable per fit.

    Each data set compiles a new program (PyMC embeds the data); before the fix every fit
    added ~760 memory maps and a 100-simulation SBC crashed at the kernel's map limit.
    """
    from neutrality_forecast.model.hazard import HazardModel
    from neutrality_forecast.sampling import CompiledModel

    cs = nf.load_case_set(TINY)
    cfg = nf.load_config()
    data = nf.build_model_data(cs, cfg)
    compiled = CompiledModel(HazardModel(data, cfg).build_model(), sampler="numpyro")
    rng = np.random.default_rng(0)
    counts = []
    for i in range(3):
        y = rng.binomial(1, 0.02, size=data.n_rows).astype(data.y.dtype)
        idata = compiled.sample(
            data.model_inputs(y=y), draws=20, tune=20, chains=2, seed=i, progressbar=False
        )
        assert idata.posterior.sizes["draw"] == 20
        counts.append(len(Path("/proc/self/maps").read_text().splitlines()))
    # the first fit loads libraries; later fits must not grow the process's mappings
    assert counts[2] - counts[1] < 200, counts


def test_lean_numpyro_driver_equals_pm_sample():
    """``sample_numpyro`` gives exactly ``pm.sample(nuts_sampler="numpyro")``'s fit.

    Same seed, same settings: same jittered start points, same draws of every free and
    deterministic variable, same coordinates and the same sample statistics.
    """
    import pymc as pm

    from neutrality_forecast.model.hazard import HazardModel
    from neutrality_forecast.numpyro_nuts import jittered_starts, sample_numpyro

    cs = nf.load_case_set(TINY)
    cfg = nf.load_config()
    model = HazardModel(nf.build_model_data(cs, cfg), cfg).build_model()
    for chains in (2, 1):
        kw = dict(draws=20, tune=20, chains=chains, target_accept=0.85, progressbar=False)
        ours = sample_numpyro(model, seed=5, **kw)
        with model:
            theirs = pm.sample(
                nuts_sampler="numpyro", random_seed=5, compute_convergence_checks=False, **kw
            )
        assert set(ours.posterior.data_vars) == set(theirs.posterior.data_vars)
        assert ours.posterior.sizes["chain"] == chains
        for name, theirs_var in theirs.posterior.data_vars.items():
            assert ours.posterior[name].dims == theirs_var.dims, name
            np.testing.assert_array_equal(ours.posterior[name].values, theirs_var.values)
        for name, theirs_stat in theirs.sample_stats.data_vars.items():
            np.testing.assert_array_equal(ours.sample_stats[name].values, theirs_stat.values)
    starts = jittered_starts(model, 2, 5, None)
    assert len(starts) == 2 and not np.allclose(starts[0]["z_q"], starts[1]["z_q"])
    # warm start: the jitter is centred on the given point
    centre = {name: np.asarray(v) + 0.5 for name, v in model.initial_point().items()}
    moved = jittered_starts(model, 2, 5, centre)
    for name, value in centre.items():
        assert np.all(np.abs(moved[0][name] - value) <= 1.0), name
