"""nutpie's numba wrappers compiled once per model structure and loaded from disk after."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

nutpie = pytest.importorskip("nutpie")

from neutrality_forecast.nutpie_numba import compile_nutpie_numba, wrapper_key  # noqa: E402

_MODEL = r"""
import numpy as np
import pymc as pm

def small_model(y):
    with pm.Model() as model:
        y_data = pm.Data("y_obs", np.asarray(y, float))
        mu = pm.Normal("mu", 0.0, 2.0)
        sigma = pm.HalfNormal("sigma", 1.0)
        pm.Deterministic("twice_mu", 2 * mu)
        pm.Normal("y", mu, sigma, observed=y_data, shape=y_data.shape)
    return model
"""
_MODEL += r"""
import ctypes

def logp_grad(compiled, x):
    # the compiled log-density wrapper called as nutpie's sampler calls it
    x = np.ascontiguousarray(x, dtype=np.float64)
    grad, logp = np.zeros_like(x), np.zeros(())
    ptr = ctypes.POINTER(ctypes.c_double)
    code = compiled.compiled_logp_func.ctypes(
        len(x), x.ctypes.data_as(ptr), grad.ctypes.data_as(ptr), logp.ctypes.data_as(ptr),
        ctypes.c_void_p(compiled.user_data.ctypes.data),
    )
    assert code == 0
    return float(logp), grad
"""
exec(_MODEL)  # defines small_model and logp_grad, shared with the subprocess below
_logp_grad = logp_grad  # noqa: F821


def _pymc_logp_grad(model, x: np.ndarray) -> tuple[float, np.ndarray]:
    """PyMC's own log density and gradient at the flat point ``x`` (value variables)."""
    point, i = {}, 0
    for v in model.value_vars:
        n = int(np.prod(model.initial_point()[v.name].shape))
        point[v.name] = x[i : i + n].reshape(model.initial_point()[v.name].shape)
        i += n
    return float(model.compile_logp()(point)), model.compile_dlogp()(point)


def test_same_program_as_nutpie():
    """Same log density, gradient and draws as ``nutpie.compile_pymc_model``, any data."""
    rng = np.random.default_rng(3)
    model = small_model(rng.normal(1.0, 0.5, 20))  # noqa: F821 (from _MODEL)
    ours = compile_nutpie_numba(model)
    theirs = nutpie.compile_pymc_model(model)
    assert ours.n_dim == theirs.n_dim == 2
    for x in rng.normal(size=(5, 2)):
        a, b = _logp_grad(ours, x), _logp_grad(theirs, x)
        assert a[0] == b[0] and np.array_equal(a[1], b[1])
        ref = _pymc_logp_grad(model, x)
        assert a[0] == pytest.approx(ref[0], rel=1e-12)
        np.testing.assert_allclose(a[1], ref[1], rtol=1e-12)
    # new data of another length reach both programs through user_data
    y2 = rng.normal(-1.0, 2.0, 7)
    ours2, theirs2 = ours.with_data(y_obs=y2), theirs.with_data(y_obs=y2)
    x = np.array([0.3, -0.2])
    assert _logp_grad(ours2, x)[0] == _logp_grad(theirs2, x)[0] != _logp_grad(ours, x)[0]
    kw = dict(draws=50, tune=50, chains=2, seed=7, progress_bar=False)
    d1, d2 = nutpie.sample(ours2, **kw), nutpie.sample(theirs2, **kw)
    for name in ("mu", "sigma", "twice_mu"):
        assert np.array_equal(d1.posterior[name].values, d2.posterior[name].values)


_CHILD = (
    _MODEL
    + r"""
import json, sys
import numpy as np
from neutrality_forecast.nutpie_numba import compile_nutpie_numba
y = np.linspace(-1.0, 2.0, int(sys.argv[1]))
model = small_model(y)
c = compile_nutpie_numba(model)
x = np.array([0.4, 0.1])
point = {"mu": x[0], "sigma_log__": x[1]}
print(json.dumps({
    "hits": [c.compiled_logp_func.cache_hits, c.compiled_expand_func.cache_hits],
    "pymc": float(model.compile_logp()(point)),
    "ours": float(logp_grad(c, x)[0]),
}))
"""
)


def test_fresh_process_loads_the_wrappers_from_disk():
    """A second process (other data, other length) compiles no wrapper and is still right."""

    def run(n: int) -> dict:
        out = subprocess.run([sys.executable, "-c", _CHILD, str(n)], capture_output=True,
                             text=True, check=True)  # fmt: skip
        return json.loads(out.stdout.strip().splitlines()[-1])

    run(11)  # compiles (or loads, when an earlier run left the wrappers on disk)
    second = run(5)
    assert second["hits"] == [1, 1]
    assert second["ours"] == pytest.approx(second["pymc"], rel=1e-12)


def test_key_covers_what_the_wrapper_bakes_in():
    base = dict(kind="logp", n_dim=3, n_expanded=3, shared={"y": np.zeros(1)},
                user_dtype=np.dtype([("a", np.uintp)]))  # fmt: skip
    key = wrapper_key("g", **base)
    assert key == wrapper_key("g", **base)
    changed = [
        wrapper_key("h", **base),
        wrapper_key("g", **{**base, "kind": "expand"}),
        wrapper_key("g", **{**base, "n_dim": 4}),
        wrapper_key("g", **{**base, "n_expanded": 5}),
        wrapper_key("g", **{**base, "shared": {"y": np.zeros((1, 1))}}),
        wrapper_key("g", **{**base, "shared": {"y": np.zeros(1, np.int64)}}),
        wrapper_key("g", **{**base, "shared": {"z": np.zeros(1)}}),
        wrapper_key("g", **{**base, "user_dtype": np.dtype([("b", np.uintp)])}),
    ]
    assert len({key, *changed}) == len(changed) + 1


def test_other_nutpie_versions_use_nutpie_itself(monkeypatch):
    """The private helpers followed here are nutpie 0.16's: other versions fall back."""
    model = small_model(np.arange(4.0))  # noqa: F821 (from _MODEL)
    monkeypatch.setattr(nutpie, "__version__", "0.17.0")
    compiled = compile_nutpie_numba(model)
    assert compiled.compiled_logp_func.__name__ != "nf_nutpie_logp"
    x = np.array([0.1, 0.2])
    assert _logp_grad(compiled, x)[0] == pytest.approx(_pymc_logp_grad(model, x)[0], rel=1e-12)
