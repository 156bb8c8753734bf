"""Sampler choice, seeding and compile reuse.

``sampler="auto"`` picks by the size of the model, from measurements on the project's
2-core machine (``docs/performance.md``):

* models with at least :data:`NUTPIE_MIN_PARAMETERS` free parameters (the 48-case
  reference population: 425) go to **nutpie** (its numba backend, :data:`NUTPIE_BACKEND`).
  There
  (``benchmarks/mass_matrix.py``, one run, same model, seed, draws and ``target_accept``)
  nutpie's diagonal adaptation needs 18 leapfrog steps per draw where NumPyro's needs 63,
  and gives 2.2x the minimum bulk ESS per gradient evaluation and 2.4x per second;
* smaller models go to **NumPyro's NUTS**, which was faster on the old 16-case set (86
  parameters, ``benchmarks/run.py``) and on the sparse test fixture (4 x 1000 draws: 74 s
  against nutpie's 146 s, nutpie diverging 108 times at ``target_accept`` 0.8).

nutpie's **numba** backend compiles the log density and its gradient to machine code that
nutpie's threads call without Python: on the shipped population (pooled rows, 4 chains x
(1000 + 3000), same seed) it sampled in 42 s plus 14 s of compilation, against 77 s (+2 s)
for the JAX backend with one thread per chain and 89 s with two threads, whose every
gradient call takes Python's global interpreter lock (``docs/performance.md``, "Sampler
backend and the forecast outside the sampler"). Without JAX, NumPyro is unavailable and
``auto`` falls back to nutpie, else PyMC's own NUTS. NumPyro runs through
:mod:`neutrality_forecast.numpyro_nuts` (same draws as ``pm.sample(nuts_sampler="numpyro")``,
without its per-fit overhead) for models it supports, else through ``pm.sample``.
Every sampler is seeded, so the same data, configuration and seed give identical draws.

With nutpie's numba backend the compiled program holds only the free variables; the
deterministics are computed afterwards for all draws at once
(:mod:`neutrality_forecast.deterministics`: about 15 s less compilation per process on
the shipped data), and a run may stop at a checkpoint once the draws are enough
(:mod:`neutrality_forecast.stopping`).
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

from neutrality_forecast import numpyro_nuts
from neutrality_forecast.deterministics import Deterministics
from neutrality_forecast.nutpie_numba import compile_nutpie_numba
from neutrality_forecast.stopping import StopRule, sample_until

__all__ = [
    "NUTPIE_BACKEND",
    "NUTPIE_MIN_PARAMETERS",
    "SAMPLERS",
    "CompiledModel",
    "available_samplers",
    "resolve_sampler",
    "run_sampler",
]

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


#: ``auto`` uses nutpie for models with at least this many free parameters (see above:
#: measured faster at 425, slower at 86 and on the test fixture; the crossover between is
#: not measured)
NUTPIE_MIN_PARAMETERS = 200

#: nutpie's default backend (module docstring): ``"numba"`` (no Python per gradient; data
#: swapped with ``with_data``, no recompilation) or ``"jax"`` (compiles in ~2 s but every
#: gradient call holds the interpreter lock, and new data mean a recompilation)
NUTPIE_BACKEND: Literal["numba", "jax"] = "numba"


def resolve_sampler(name: SamplerName, model: pm.Model | None = None) -> str:
    """Turn ``"auto"`` into a concrete sampler; refuse unavailable ones.

    ``model`` lets ``"auto"`` choose by size (module docstring); without it ``"auto"``
    means NumPyro when JAX is installed.
    """
    avail = available_samplers()
    if name == "auto":
        order = ["numpyro", "nutpie"]
        if model is not None and importlib.util.find_spec("jax"):
            size = sum(int(np.prod(np.shape(v))) for v in model.initial_point().values())
            if size >= NUTPIE_MIN_PARAMETERS:
                order = ["nutpie", "numpyro"]
        for preferred in order:
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
    if not jax.config.values.get("jax_use_simplified_jaxpr_constants", True):
        logging.getLogger(__name__).info(
            "JAX was imported before neutrality_forecast: compiled samplers embed the data, "
            "so the compilation cache serves only identical inputs (docs/performance.md)"
        )
    return folder


class CompiledModel:
    """Compile a model once and sample it on many data sets of the same structure.

    The data containers (``pm.Data``) may change length between calls (e.g. the rows of a
    left-out case removed in a backtest fold); parameters must keep their shapes. With
    nutpie's numba backend (the default) the compiled model is re-used through
    ``with_data``; its JAX backend (``nutpie_backend="jax"``) folds the data into the
    program, so new data are set with ``pm.set_data`` and compiled again (seconds); with
    PyMC the data are swapped with ``pm.set_data`` and PyTensor's on-disk cache avoids
    most of the C compilation; with NumPyro the data are arguments of the compiled
    sampler, which JAX's persistent cache keeps per data *shape* (see
    :func:`enable_jax_cache` and :mod:`neutrality_forecast.numpyro_nuts`).
    """

    def __init__(
        self,
        model: pm.Model,
        *,
        sampler: SamplerName = "auto",
        nutpie_backend: Literal["numba", "jax"] | None = None,
    ) -> None:
        self.model = model
        self.sampler = resolve_sampler(sampler, model)
        self.nutpie_backend = nutpie_backend or NUTPIE_BACKEND
        if self.nutpie_backend not in ("numba", "jax"):
            raise ValueError(f"nutpie_backend must be 'numba' or 'jax', not {nutpie_backend!r}")
        self._compiled = None
        if self.sampler == "numpyro":
            enable_jax_cache()
        self._deterministics = None
        if self.sampler == "nutpie" and not self._data_folded:
            self._deterministics = Deterministics.for_model(model)
        if self.sampler == "nutpie":
            self._compiled = self._compile_nutpie()

    @property
    def _data_folded(self) -> bool:
        """Whether new data need a recompilation (nutpie's JAX backend)."""
        return self.sampler == "nutpie" and self.nutpie_backend == "jax"

    def _compile_nutpie(self):
        """Compile the model for nutpie with :attr:`nutpie_backend`.

        numba (the default) compiles the log density and its gradient only (the
        deterministics are computed after sampling when :class:`Deterministics` can; 25 s
        instead of 40 s for the shipped model in a fresh process on the 2-core machine)
        and then takes new data through ``with_data`` without compiling again. Its two C
        wrappers are cached on disk per model structure
        (:func:`~neutrality_forecast.nutpie_numba.compile_nutpie_numba`). The JAX backend
        compiles in about 2 s but folds the data into the program: new data mean a
        recompilation (:meth:`sample`).
        """
        import nutpie

        if self._data_folded:
            return nutpie.compile_pymc_model(self.model, backend="jax", gradient_backend="jax")
        if self._deterministics is not None:  # only the free variables in the program
            return compile_nutpie_numba(
                self.model, var_names=[rv.name for rv in self.model.free_RVs]
            )
        return compile_nutpie_numba(self.model)

    def _expand(self, idata: az.InferenceData) -> az.InferenceData:
        """Add the deterministics the compiled program left out (see ``deterministics``)."""
        if self._deterministics is not None:
            idata.posterior = self._deterministics.add_to(idata.posterior)
        return idata

    def _set_data(self, data: dict) -> None:
        dims = self.model.named_vars_to_dims
        coords = {
            dims[name][0]: np.arange(len(value)) for name, value in data.items() if dims.get(name)
        }
        with self.model:
            pm.set_data(data, coords=coords)

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
        stop: StopRule | None = None,
    ) -> az.InferenceData:
        """Sample with ``data`` (name -> array) swapped into the model's data containers.

        ``initvals`` (a starting point) is honoured by the PyMC and NumPyro samplers.
        ``stop`` (nutpie only; :mod:`neutrality_forecast.stopping`) may end the run at a
        checkpoint before ``draws``: ``draws`` is then the maximum per chain.
        """
        logging.getLogger("pymc").setLevel(logging.ERROR)
        if self._compiled is not None:
            import nutpie

            compiled = self._compiled
            if data and not self._data_folded:  # numba backend: data are arguments
                compiled = compiled.with_data(**data)
            elif data:  # JAX backend: data are folded into the program
                self._set_data(data)
                compiled = self._compiled = self._compile_nutpie()
            kw = dict(
                draws=draws, tune=tune, chains=chains,
                # one thread per chain: with the JAX backend a thread waiting for the
                # interpreter lock leaves its core to the others (77 s instead of 89 s on
                # 2 cores, docs/performance.md); no cost with numba
                cores=chains,
                seed=seed, target_accept=target_accept, progress_bar=progressbar,
            )  # fmt: skip
            if stop is None:
                idata = self._expand(nutpie.sample(compiled, **kw))
            else:
                idata = sample_until(
                    lambda: nutpie.sample(compiled, blocking=False, **kw),
                    stop=stop, draws=draws, tune=tune, expand=self._expand,
                )  # fmt: skip
                idata.attrs["draws_requested"] = draws
        else:
            if data:
                self._set_data(data)
            kw = dict(
                draws=draws, tune=tune, chains=chains, seed=seed, target_accept=target_accept,
                progressbar=progressbar, initvals=initvals,
            )  # fmt: skip
            if self.sampler == "numpyro" and numpyro_nuts.supports(self.model):
                idata = numpyro_nuts.sample_numpyro(self.model, **kw)
            else:
                idata = self._pm_sample(**kw)
        if self.sampler == "numpyro":
            # every fit builds new NumPyro functions, hence new in-memory executables (and
            # models on the pm.sample path embed their data); without this, loops of fits
            # (SBC, recovery, backtests) keep them all and a process hits the kernel's
            # memory-map limit after ~80 fits (measured: +764 maps per fit). The on-disk
            # cache is kept: the next fit of the same shapes reloads the executable.
            import jax

            jax.clear_caches()
        idata.attrs["sampler"] = self.sampler
        return idata

    def _pm_sample(self, *, chains: int, seed: int, **kwargs) -> az.InferenceData:
        extra = {}
        if self.sampler == "pymc" and "jax" in sys.modules and chains > 1:
            # forking a process that has loaded (multithreaded) JAX can deadlock
            extra["mp_ctx"] = "spawn"
        with self.model:
            return pm.sample(
                chains=chains,
                cores=min(chains, 2),
                random_seed=seed,
                nuts_sampler=self.sampler,
                compute_convergence_checks=False,
                **kwargs,
                **extra,
            )
