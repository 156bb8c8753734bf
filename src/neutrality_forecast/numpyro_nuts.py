"""NumPyro's NUTS on a PyMC model, without the per-fit overhead of ``pm.sample``.

``pm.sample(nuts_sampler="numpyro")`` spends 5-9 s of a 20-26 s default fit outside the
sampler (profiled on the project machine, ``docs/performance.md``): it converts the model's
log density to JAX twice (once for the start-point check, once for the sampler), compiles
a PyTensor gradient it never uses (``assign_step_methods``), checks the jittered start
points op by op (about 100 small XLA compilations) and converts the deterministics through
a second JAX graph. :func:`sample_numpyro` does the same sampling with one JAX conversion:

* start points: PyMC's jittered points (uniform +-1 around the initial point, one per
  chain, up to 10 retries), drawn with PyMC's seeds and checked with one jitted log
  density;
* sampler: :class:`numpyro.infer.NUTS` (diagonal mass matrix, step-size and mass-matrix
  adaptation, ``target_accept_prob``) run by :class:`numpyro.infer.MCMC` with one chain
  per (virtual) CPU device, the JAX key derived from the seed as PyMC derives it;
* deterministics: one JAX conversion of their graph, vectorised over chains and draws,
  as ``pm.sample``'s JAX backend computes them;
* sample statistics under PyMC's names (``lp``, ``step_size``, ``n_steps``,
  ``acceptance_rate``, ``diverging``, ``energy``, ``tree_depth``).

Same seed, same draws as ``pm.sample(nuts_sampler="numpyro")`` with the same settings
(tested in ``tests/test_warm_start.py``). Only for models whose free variables are
untransformed (:class:`~neutrality_forecast.model.hazard.HazardModel`: all of them are);
other models go through ``pm.sample``.
"""

from __future__ import annotations

import time

import arviz as az
import numpy as np
import pymc as pm

__all__ = ["jittered_starts", "sample_numpyro", "supports"]

#: NumPyro statistics kept per draw, renamed as PyMC names them
_STATS = {
    "num_steps": "n_steps",
    "potential_energy": "lp",
    "energy": "energy",
    "adapt_state.step_size": "step_size",
    "accept_prob": "acceptance_rate",
    "diverging": "diverging",
}

#: PyMC's ``jitter_max_retries`` + 1
_JITTER_TRIES = 11


def supports(model: pm.Model) -> bool:
    """Whether :func:`sample_numpyro` handles ``model`` (no transformed free variables)."""
    return not any(model.rvs_to_transforms.get(rv) is not None for rv in model.free_RVs)


def _logp(model: pm.Model):
    """The model's negative log density as a JAX function of the list of value variables.

    The data containers (shared variables) are *inputs* of the converted graph, bound to
    JAX arrays at call time, not constants folded into it: with JAX's hoisting of
    closed-over arrays into program arguments (turned on when :mod:`neutrality_forecast`
    is imported before JAX, see its ``__init__``) the compiled sampler then depends on the
    data's shapes only, so JAX's persistent cache
    serves every data set of the same shapes (new events, backtest folds), across
    processes. PyMC's ``get_jaxified_logp`` instead bakes the data into the program.
    """
    # imported here: pymc.sampling.jax asks XLA for one CPU device per chain (it sets
    # XLA_FLAGS before JAX starts its backend), so chains run in parallel
    import jax.numpy as jnp
    from pymc.sampling.jax import get_jaxified_graph
    from pytensor.compile import SharedVariable
    from pytensor.graph.replace import clone_replace
    from pytensor.graph.traversal import graph_inputs

    potential = -model.logp()
    shared = [v for v in graph_inputs([potential]) if isinstance(v, SharedVariable)]
    slots = [v.type() for v in shared]
    potential = clone_replace(potential, replace=dict(zip(shared, slots, strict=True)))
    fn = get_jaxified_graph(inputs=[*model.value_vars, *slots], outputs=[potential])
    data = [jnp.asarray(v.get_value(borrow=True)) for v in shared]

    def potential_fn(x):
        return fn(*x, *data)[0]

    return potential_fn


def _chain_seeds(seed: int, chains: int) -> list[int]:
    """One start-point seed per chain, derived from ``seed`` as PyMC derives them."""
    if chains == 1:
        return [int(seed)]
    draw = np.random.default_rng(seed).integers
    seeds: list[int] = []
    while len(set(seeds)) != chains:
        seeds = [int(x) for x in draw(2**30, dtype=np.int64, size=chains)]
    return seeds


def jittered_starts(
    model: pm.Model, chains: int, seed: int, initvals: dict | None, *, logp=None
) -> list[dict[str, np.ndarray]]:
    """PyMC's jittered starting points, checked with ONE compiled JAX log density.

    Uniform +-1 jitter around the initial point (or ``initvals``), one point per chain, as
    PyMC draws them (same seeds: ``pm.sample`` would start from the very same points). A
    point is redrawn while its log density is not finite.
    """
    import jax
    from pymc.initial_point import make_initial_point_fns_per_chain

    neg_logp = jax.jit(logp or _logp(model))
    fns = make_initial_point_fns_per_chain(
        model=model, overrides=initvals, jitter_rvs=set(model.free_RVs), chains=chains
    )
    starts = []
    for fn, chain_seed in zip(fns, _chain_seeds(seed, chains), strict=True):
        retry = np.random.default_rng(chain_seed)
        for _ in range(_JITTER_TRIES):
            point = fn(chain_seed)
            if np.isfinite(float(neg_logp([point[v.name] for v in model.value_vars]))):
                break
            chain_seed = int(retry.integers(2**30, dtype=np.int64))
        starts.append(point)
    return starts


def sample_numpyro(
    model: pm.Model,
    *,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    seed: int = 0,
    target_accept: float = 0.8,
    progressbar: bool = True,
    initvals: dict | None = None,
    dense_mass: bool = False,
) -> az.InferenceData:
    """Sample ``model`` with NumPyro's NUTS; return InferenceData as ``pm.sample`` would.

    Parameters
    ----------
    model : pymc.Model
        A model whose free variables are untransformed (see :func:`supports`).
    draws, tune, chains : int
        Kept draws per chain, warm-up steps per chain, number of chains.
    seed : int
        Seed of the start points and of the sampler.
    target_accept : float
        Target acceptance probability of step-size adaptation.
    progressbar : bool
        Show NumPyro's progress bar.
    initvals : dict, optional
        Centre of the jittered start points (a warm start); default the model's
        initial point.
    dense_mass : bool
        Adapt a dense mass matrix (one covariance over all free coordinates) instead of a
        diagonal one; measured in ``benchmarks/mass_matrix.py``.

    Returns
    -------
    arviz.InferenceData
        ``posterior`` (free variables and deterministics, with the model's coordinates)
        and ``sample_stats``; ``attrs["sampling_time"]`` is the sampler's wall time.

    """
    import jax
    from numpyro.infer import MCMC, NUTS

    if not supports(model):
        raise ValueError("sample_numpyro needs a model without transformed free variables")
    logp = _logp(model)
    starts = jittered_starts(model, chains, seed, initvals, logp=logp)
    names = [v.name for v in model.value_vars]
    init = [np.stack([s[name] for s in starts]) for name in names]
    key = jax.random.PRNGKey(seed)
    if chains > 1:
        key = jax.random.split(key, chains)
    else:
        init = [x[0] for x in init]
    mcmc = MCMC(
        NUTS(
            potential_fn=logp,
            target_accept_prob=target_accept,
            adapt_step_size=True,
            adapt_mass_matrix=True,
            dense_mass=dense_mass,
        ),
        num_warmup=tune,
        num_samples=draws,
        num_chains=chains,
        chain_method="parallel",
        progress_bar=progressbar,
    )
    started = time.perf_counter()
    mcmc.run(key, init_params=init, extra_fields=tuple(_STATS))
    raw = mcmc.get_samples(group_by_chain=True)
    free = {name: np.asarray(x) for name, x in zip(names, raw, strict=True)}
    seconds = time.perf_counter() - started
    stats = {
        _STATS[field]: np.asarray(value)
        for field, value in mcmc.get_extra_fields(group_by_chain=True).items()
    }
    stats["tree_depth"] = np.log2(stats["n_steps"]).astype(int) + 1
    return _to_inference_data(model, free, stats, seconds=seconds, tune=tune)


def _deterministics(model: pm.Model, free: dict) -> dict[str, np.ndarray]:
    """Every deterministic at every draw, as ``pm.sample``'s JAX backend computes them.

    One JAX conversion of the deterministics' graph, vectorised over chains and draws and
    compiled once (the program depends on shapes only, so JAX's persistent cache serves
    it to later fits). Faster than :func:`pymc.compute_deterministics`, which compiles a
    PyTensor function and calls it once per draw.
    """
    import jax
    from pymc.sampling.jax import get_jaxified_graph

    if not model.deterministics:
        return {}
    outputs = model.replace_rvs_by_values(model.deterministics)
    fn = get_jaxified_graph(inputs=model.value_vars, outputs=outputs)
    values = [free[v.name] for v in model.value_vars]
    out = jax.jit(jax.vmap(jax.vmap(fn)))(*values)
    return {d.name: np.asarray(x) for d, x in zip(model.deterministics, out, strict=True)}


def _to_inference_data(
    model: pm.Model, free: dict, stats: dict, *, seconds: float, tune: int
) -> az.InferenceData:
    from pymc.backends.arviz import coords_and_dims_for_inferencedata

    coords, dims = coords_and_dims_for_inferencedata(model)
    attrs = {"sampling_time": seconds, "tuning_steps": tune}
    posterior = {**free, **_deterministics(model, free)}
    idata = az.from_dict(
        posterior=posterior, sample_stats=stats, coords=coords, dims=dims, attrs=attrs
    )
    idata.posterior.attrs.update(attrs)  # where PyMC puts them
    return idata
