"""Cheap refits: warm starts from a saved posterior and the JAX compilation cache."""

from __future__ import annotations

import numpy as np
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
    np.testing.assert_allclose(
        point["z_case"], fitted.idata.posterior["z_case"].mean(("chain", "draw")).values
    )
    assert point["z_case"].shape == (3, 3)
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
