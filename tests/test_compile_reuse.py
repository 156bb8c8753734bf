"""One compiled sampler for every data set of the same shapes (padded rows, hoisted data)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pymc as pm
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.conftest import TINY

import neutrality_forecast as nf
from neutrality_forecast.model.data import ROW_BLOCK, padded_rows
from neutrality_forecast.model.hazard import HazardModel


@given(st.integers(0, 100_000), st.integers(1, 1024))
def test_padded_rows_is_the_next_multiple(n, block):
    m = padded_rows(n, block)
    assert m % block == 0 and m >= max(n, block) and m < max(n, 1) + block


def _model():
    cfg = nf.load_config()
    data = nf.build_model_data(nf.load_case_set(TINY), cfg)
    return data, HazardModel(data, cfg).build_model()


def test_padding_rows_change_nothing():
    """Empty rows add exactly nothing: the log density with and without them agrees."""
    data, model = _model()
    inputs = data.model_inputs()
    point = model.initial_point()
    rng = np.random.default_rng(0)
    point = {k: v + rng.normal(0, 0.7, np.shape(v)) for k, v in point.items()}
    logp = model.compile_logp()
    padded = logp(point)
    for o in data.outcomes:
        z, n, y = (inputs[f"{p}_{o}"] for p in ("design", "trials", "y"))
        assert len(inputs[f"q_{o}"]) == len(z)
        assert (
            len(z)
            == len(n)
            == len(y)
            == padded_rows(int((data.outcome_idx == data.outcomes.index(o)).sum()))
        )
        assert len(z) % ROW_BLOCK == 0
        real = n > 0
        assert not z[~real].any() and not y[~real].any()
    trimmed = {}
    for o in data.outcomes:
        keep = inputs[f"trials_{o}"] > 0
        trimmed.update(
            {f"{p}_{o}": inputs[f"{p}_{o}"][keep] for p in ("design", "q", "trials", "y")}
        )
    coords = {f"obs_{o}": np.arange(int(trimmed[f"trials_{o}"].size)) for o in data.outcomes}
    with model:
        pm.set_data(trimmed, coords=coords)
    unpadded = model.compile_logp()(point)
    np.testing.assert_allclose(padded, unpadded, rtol=1e-12)


def test_sampler_program_depends_on_shapes_not_data():
    """Two data sets of the same shapes lower to the very same XLA program.

    So JAX's persistent compilation cache, keyed by the program, serves both: the data
    are arguments of the program (hoisted constants), not constants baked into it.
    """
    import jax
    from pymc.sampling.jax import get_jaxified_logp

    from neutrality_forecast.numpyro_nuts import _logp

    assert jax.config.values["jax_use_simplified_jaxpr_constants"], (
        "neutrality_forecast must be imported before JAX for the shared compile cache"
    )
    data, model = _model()
    x = [np.asarray(v) + 0.3 for v in model.initial_point().values()]
    first = jax.jit(_logp(model))
    text_a, value_a = first.lower(x).as_text(), float(first(x))
    # the same value as PyMC's own conversion (which bakes the data in)
    np.testing.assert_allclose(value_a, float(get_jaxified_logp(model, negative_logp=False)(x)))
    other = data.model_inputs(y=np.roll(data.y, 3))
    with model:
        pm.set_data(other)
    second = jax.jit(_logp(model))
    text_b, value_b = second.lower(x).as_text(), float(second(x))
    assert value_a != value_b  # other data, other density ...
    assert text_a == text_b  # ... same compiled program


_FIT = """
import json, logging, sys
import neutrality_forecast as nf
import numpy as np
hits = {}
class H(logging.Handler):
    def emit(self, record):
        msg = record.getMessage()
        if "cache hit for '" in msg or "CACHE MISS for '" in msg:
            name = msg.split("for '")[1].split("'")[0]
            hits.setdefault(name, []).append("hit" if "cache hit" in msg else "miss")
logging.getLogger("jax._src.compiler").setLevel(logging.DEBUG)
logging.getLogger("jax._src.compiler").addHandler(H())
cs, cfg = nf.load_case_set(sys.argv[1]), nf.load_config()
data = nf.build_model_data(cs, cfg)
model = nf.HazardModel(data, cfg).build_model()
from neutrality_forecast.sampling import CompiledModel
inputs = data.model_inputs(y=np.roll(data.y, int(sys.argv[2])))
idata = CompiledModel(model, sampler="numpyro").sample(
    inputs, draws=10, tune=10, chains=2, seed=1, progressbar=False)
print(json.dumps({"sampler": hits, "mean": float(idata.posterior["mu_alpha"].mean())}))
"""


def test_new_data_reuse_the_compiled_sampler_across_processes(tmp_path):
    """A fresh process fitting other data of the same shapes compiles no new sampler."""
    pytest.importorskip("numpyro")
    env = {**os.environ, "NF_CACHE_DIR": str(tmp_path)}
    env.pop("JAX_USE_SIMPLIFIED_JAXPR_CONSTANTS", None)  # set by the package itself

    def run(shift: int) -> dict:
        out = subprocess.run(
            [sys.executable, "-c", _FIT, str(TINY), str(shift)],
            env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        return json.loads(out.stdout.strip().splitlines()[-1])

    first, second = run(0), run(2)
    assert first["sampler"]["jit__fun"] == ["miss"]  # NumPyro's NUTS program, compiled
    assert set(second["sampler"]) == set(first["sampler"])
    # the second process compiles nothing: sampler, start-point check, deterministics
    assert all(v == ["hit"] * len(v) for v in second["sampler"].values()), second
    assert first["mean"] != second["mean"]


@pytest.mark.parametrize("backend", ["numba", "jax"])
def test_nutpie_sees_swapped_data_and_is_reproducible(backend):
    """nutpie samples the data it is given, with either backend.

    numba (the default) takes new data as arguments (``with_data``); JAX folds the data
    into the program and compiles again. Either way sampling data B after data A moves
    the posterior (no occurrences at all lowers the base hazard), and going back to A
    gives exactly the first draws again (same seed).
    """
    pytest.importorskip("nutpie")
    from neutrality_forecast.sampling import CompiledModel

    data, model = _model()
    a = data.model_inputs()
    b = {k: (np.zeros_like(v) if k.startswith("y_") else v) for k, v in a.items()}
    compiled = CompiledModel(model, sampler="nutpie", nutpie_backend=backend)
    assert compiled._data_folded == (backend == "jax")
    kw = dict(draws=100, tune=100, chains=2, seed=5, progressbar=False)
    first = compiled.sample(a, **kw)
    none = compiled.sample(b, **kw)
    again = compiled.sample(a, **kw)
    mu = lambda idata: float(idata.posterior["mu_alpha"].mean())  # noqa: E731
    assert np.array_equal(first.posterior["mu_alpha"].values, again.posterior["mu_alpha"].values)
    assert mu(none) < mu(first) - 0.3
    assert first.attrs["sampler"] == "nutpie"


def test_auto_sampler_chooses_by_model_size():
    """``auto``: nutpie for population-size models, NumPyro for small ones (measured)."""
    pytest.importorskip("nutpie")
    pytest.importorskip("numpyro")
    from neutrality_forecast.sampling import NUTPIE_MIN_PARAMETERS, resolve_sampler

    def model(size):
        with pm.Model() as m:
            pm.Normal("x", shape=size)
        return m

    assert resolve_sampler("auto", model(NUTPIE_MIN_PARAMETERS)) == "nutpie"
    assert resolve_sampler("auto", model(NUTPIE_MIN_PARAMETERS - 1)) == "numpyro"
    assert resolve_sampler("auto") == "numpyro"
    assert resolve_sampler("nutpie", model(3)) == "nutpie"  # an explicit choice is kept
    _, tiny = _model()
    assert resolve_sampler("auto", tiny) == "numpyro"
