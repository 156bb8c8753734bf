"""Sampler choice, seeding and compile reuse.

``sampler="auto"`` picks NumPyro's NUTS (through PyMC's JAX backend) when JAX and NumPyro
are installed, else nutpie, else PyMC's own NUTS. The order was chosen by measurement on the
project's 2-core machine (``benchmarks/run.py``; numbers in ``docs/performance.md``):
minimum ESS per second of wall time, compile included, on the shipped data, NumPyro beat
nutpie (diagonal and low-rank mass matrix) and PyMC's default NUTS (which also diverges at
its default ``target_accept=0.8`` and fails the gate) in every run.
Every sampler is seeded, so the same data, configuration and seed give identical draws.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from pathlib import Path
from typing import Literal

import arviz as az
import numpy as np
import pymc as pm

__all__ = ["SAMPLERS", "CompiledModel", "available_samplers", "resolve_sampler", "run_sampler"]

SAMPLERS = ("nutpie", "pymc", "numpyro")
SamplerName = Literal["auto", "nutpie", "pymc", "numpyro"]


def available_samplers() -> list[str]:
    """Samplers whose packages import on this machine."""
    out = []
    if importlib.util.find_spec("nutpie"):
        out.append("nutpie")
    out.append("pymc")
    if importlib.util.find_spec("numpyro") and importlib.util.find_spec("jax"):
        out.append("numpyro")
    return out


def resolve_sampler(name: SamplerName) -> str:
    """Turn ``"auto"`` into a concrete sampler; refuse unavailable ones."""
    avail = available_samplers()
    if name == "auto":
        for preferred in ("numpyro", "nutpie"):
            if preferred in avail:
                return preferred
        return "pymc"
    if name not in avail:
        raise ValueError(f"sampler {name!r} is not installed here (available: {avail})")
    return name


def run_sampler(
    model: pm.Model,
    *,
    sampler: SamplerName = "auto",
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    seed: int = 0,
    target_accept: float = 0.9,
    progressbar: bool = True,
    initvals: dict | None = None,
) -> az.InferenceData:
    """Sample ``model`` and return InferenceData with ``sample_stats``.

    Parameters
    ----------
    model : pymc.Model
        The model to sample.
    sampler : {"auto", "nutpie", "pymc", "numpyro"}
        Which NUTS implementation to use.
    draws, tune, chains : int
        Kept draws per chain, tuning steps per chain, number of chains.
    seed : int
        Seed for every random choice of the sampler.
    target_accept : float
        Target acceptance rate for step-size adaptation.
    progressbar : bool
        Show the sampler's progress bar.
    initvals : dict, optional
        Starting point for warm starts (PyMC and NumPyro samplers; nutpie ignores it).

    """
    compiled = CompiledModel(model, sampler=sampler)
    return compiled.sample(
        draws=draws,
        tune=tune,
        chains=chains,
        seed=seed,
        target_accept=target_accept,
        progressbar=progressbar,
        initvals=initvals,
    )


def enable_jax_cache(cache_dir: str | os.PathLike | None = None) -> Path | None:
    """Turn on JAX's persistent compilation cache so later processes reuse compiled code.

    The folder is ``cache_dir``, else ``$NF_CACHE_DIR/jax``, else
    ``~/.cache/neutrality-forecast/jax``. Returns the folder, or ``None`` without JAX.
    """
    if importlib.util.find_spec("jax") is None:
        return None
    import jax

    root = cache_dir or os.environ.get("NF_CACHE_DIR")
    folder = Path(root) / "jax" if root else Path.home() / ".cache" / "neutrality-forecast" / "jax"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", str(folder))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    except OSError:
        return None
    return folder


def _transformed_free_rvs(model: pm.Model) -> bool:
    return any(model.rvs_to_transforms.get(rv) is not None for rv in model.free_RVs)


def _jittered_starts(
    model: pm.Model, chains: int, seed: int, initvals: dict | None
) -> list[dict[str, np.ndarray]]:
    """PyMC's jittered starting points, checked with ONE compiled JAX log density.

    Uniform +-1 jitter around the initial point, one point per chain, as PyMC draws them.

    PyMC checks its jittered starts with the JAX log density evaluated op by op, which
    compiles every primitive separately (about 100 small XLA compilations, ~5 s of a cold
    30-36 s fit, profiled). Here the same check uses one jitted log density (one
    compilation, persistently cached). The points are the ones PyMC would draw (same
    seeds), so the draws are unchanged. Only for models whose free variables are
    untransformed (``HazardModel``: all are), so that the points can be handed back to
    PyMC as ``initvals`` with its own jitter switched off.
    """
    import jax
    from pymc.initial_point import make_initial_point_fns_per_chain
    from pymc.sampling.jax import get_jaxified_logp

    logp = jax.jit(get_jaxified_logp(model, negative_logp=False))
    fns = make_initial_point_fns_per_chain(
        model=model, overrides=initvals, jitter_rvs=set(model.free_RVs), chains=chains
    )
    rng = np.random.default_rng(seed)
    starts = []
    for fn in fns:
        for _ in range(11):  # PyMC's jitter_max_retries + 1
            point = fn(int(rng.integers(2**30)))
            if np.isfinite(float(logp([point[v.name] for v in model.value_vars]))):
                break
        starts.append(point)
    return starts


class CompiledModel:
    """Compile a model once and sample it on many data sets of the same structure.

    The data containers (``pm.Data``) may change length between calls (e.g. the rows of a
    left-out case removed in a backtest fold); parameters must keep their shapes. With
    nutpie the compiled model is re-used through ``with_data`` (no recompilation); with
    PyMC the data are swapped with ``pm.set_data`` and PyTensor's on-disk cache avoids
    most of the C compilation.
    """

    def __init__(self, model: pm.Model, *, sampler: SamplerName = "auto") -> None:
        self.model = model
        self.sampler = resolve_sampler(sampler)
        self._compiled = None
        if self.sampler == "numpyro":
            enable_jax_cache()
        if self.sampler == "nutpie":
            import nutpie

            self._compiled = nutpie.compile_pymc_model(model)

    def sample(
        self,
        data: dict | None = None,
        *,
        draws: int = 1000,
        tune: int = 1000,
        chains: int = 4,
        seed: int = 0,
        target_accept: float = 0.9,
        progressbar: bool = True,
        initvals: dict | None = None,
    ) -> az.InferenceData:
        """Sample with ``data`` (name -> array) swapped into the model's data containers.

        ``initvals`` (a starting point) is honoured by the PyMC and NumPyro samplers.
        """
        logging.getLogger("pymc").setLevel(logging.ERROR)
        if self._compiled is not None:
            import nutpie

            compiled = self._compiled.with_data(**data) if data else self._compiled
            idata = nutpie.sample(
                compiled,
                draws=draws,
                tune=tune,
                chains=chains,
                seed=seed,
                target_accept=target_accept,
                progress_bar=progressbar,
            )
        else:
            if data:
                dims = self.model.named_vars_to_dims
                coords = {
                    dims[name][0]: np.arange(len(value))
                    for name, value in data.items()
                    if dims.get(name)
                }
                with self.model:
                    pm.set_data(data, coords=coords)
            extra = {}
            if self.sampler == "numpyro" and not _transformed_free_rvs(self.model):
                initvals = _jittered_starts(self.model, chains, seed, initvals)
                extra["nuts_sampler_kwargs"] = {"jitter": False}
            if self.sampler == "pymc" and "jax" in sys.modules and chains > 1:
                # forking a process that has loaded (multithreaded) JAX can deadlock
                extra["mp_ctx"] = "spawn"
            with self.model:
                idata = pm.sample(
                    draws=draws,
                    tune=tune,
                    chains=chains,
                    cores=min(chains, 2),
                    random_seed=seed,
                    target_accept=target_accept,
                    progressbar=progressbar,
                    nuts_sampler=self.sampler,
                    initvals=initvals,
                    compute_convergence_checks=False,
                    **extra,
                )
        if self.sampler == "numpyro":
            # PyMC's JAX backend embeds the data in the compiled program, so every new data
            # set is a new executable; without this, loops of fits (SBC, recovery,
            # backtests) keep them all and a process hits the kernel's memory-map limit
            # after ~80 fits (measured: +764 maps per fit). The on-disk cache is kept.
            import jax

            jax.clear_caches()
        idata.attrs["sampler"] = self.sampler
        return idata
