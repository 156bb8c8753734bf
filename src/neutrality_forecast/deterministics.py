"""Deterministic quantities computed from the draws after sampling, for all draws at once.

nutpie compiles a second program besides the log density: one that turns each draw into
every traced quantity, deterministics included. With the numba backend compiling that
program costs about as much as the log density itself (40 s in all against 25 s without
it for the shipped model, measured in one fresh process, ``docs/performance.md``) and is
paid again in every process. :class:`Deterministics` computes the model's deterministics
instead from the sampled free variables in one vectorised PyTensor function over all draws
(``pytensor.graph.replace.vectorize_graph``; C backend, so its compilation lands in
PyTensor's on-disk cache and a later process loads it in under a second; 0.4 s for 12,000
draws of the shipped model). The values are the model's own graph, evaluated on the same
draws: identical to what nutpie's program gives (``tests/test_stopping.py``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import xarray as xr
from pytensor.graph.replace import vectorize_graph
from pytensor.graph.traversal import ancestors

__all__ = ["Deterministics"]


class Deterministics:
    """A model's deterministics as one function of the free variables, batched over draws.

    Build with :meth:`for_model`, which declines models where this is not safe.
    """

    def __init__(self, model: pm.Model, inputs: list, outputs: list) -> None:
        self.model = model
        self._inputs = inputs
        self._outputs = outputs
        self._fn: Callable | None = None

    @classmethod
    def for_model(cls, model: pm.Model) -> Deterministics | None:
        """The helper for ``model``, or ``None`` if the deterministics should stay in the sampler.

        ``None`` when the model has no deterministics, when one of them reads a data
        container (the sampler may run on swapped data the PyMC model does not hold) or
        when PyTensor cannot batch their graph.
        """
        if not model.deterministics:
            return None
        data = set(model.data_vars)
        if any(v in data for v in ancestors(model.deterministics)):
            return None
        # one leading draw dimension on every free variable
        inputs = [
            pt.tensor(name=rv.name, shape=(None, *rv.type.shape), dtype=rv.dtype)
            for rv in model.free_RVs
        ]
        try:
            outputs = vectorize_graph(
                list(model.deterministics), replace=dict(zip(model.free_RVs, inputs, strict=True))
            )
        except NotImplementedError:
            return None
        return cls(model, inputs, outputs)

    @property
    def fn(self) -> Callable:
        """The compiled function (compiled on first use)."""
        if self._fn is None:
            with warnings.catch_warnings():  # PyTensor's note on pip-installed BLAS
                warnings.simplefilter("ignore", UserWarning)
                self._fn = pytensor.function(self._inputs, self._outputs, on_unused_input="ignore")
        return self._fn

    def add_to(self, posterior: xr.Dataset) -> xr.Dataset:
        """``posterior`` (dims ``chain``, ``draw``, ...) with the deterministics added."""
        n_chain, n_draw = posterior.sizes["chain"], posterior.sizes["draw"]
        flat = [
            posterior[rv.name].values.reshape(n_chain * n_draw, *posterior[rv.name].shape[2:])
            for rv in self.model.free_RVs
        ]
        dims_of = self.model.named_vars_to_dims
        new, coords = {}, {}
        for det, value in zip(self.model.deterministics, self.fn(*flat), strict=True):
            value = np.asarray(value).reshape(n_chain, n_draw, *np.shape(value)[1:])
            dims = dims_of.get(det.name) or [f"{det.name}_dim_{i}" for i in range(value.ndim - 2)]
            new[det.name] = (("chain", "draw", *dims), value)
            coords.update(
                {d: (d, list(self.model.coords[d])) for d in dims
                 if d not in posterior.coords and self.model.coords.get(d) is not None}
            )  # fmt: skip
        return posterior.assign_coords(coords).assign(new)
