"""nutpie's numba program with its C wrappers cached on disk, per model structure.

:func:`nutpie.compile_pymc_model` (numba backend) compiles two things in every process:
PyTensor's numba functions of the log density, its gradient and the kept variables (which
PyTensor already caches on disk, keyed by the graph), and two ``numba.cfunc`` wrappers that
nutpie's Rust sampler calls (log density and gradient; the kept variables). The wrappers
are not cached: they close over objects made at run time (a fresh dispatcher each
process), and they bake the model's data arrays into the program as typing examples (over
1 MB they become run-time addresses, which numba refuses to cache). On the 2-core machine
the log-density wrapper alone took ~13 s of the ~21-25 s nutpie spends per process on the
shipped model (``docs/performance.md``).

:func:`compile_nutpie_numba` builds the same :class:`nutpie.compile_pymc.CompiledPyMCModel`
as ``compile_pymc_model(model, var_names=...)`` with two differences that leave the
compiled arithmetic unchanged:

* the wrappers are defined from source text without closures (their run-time objects are
  module globals of the generated function), and registered under a key in PyTensor's numba
  cache (``pytensor.link.numba.cache``), so numba stores them on disk and a later process
  loads them instead of compiling;
* the data arrays given to nutpie's extraction helper are one-element placeholders of the
  same dtype and rank: the helper uses them only to type a tuple whose every element it
  replaces by the array read from ``user_data`` (the data reach the program through
  ``user_data``, as ``with_data`` relies on).

The cache key is PyTensor's own key of the wrapped graph (it covers the operations, their
order and every constant) together with everything else the wrappers bake in: the number
of parameters and kept values, the names, ranks and dtypes of the data, the layout of
``user_data``, and the numba, nutpie and wrapper versions. When PyTensor cannot key a
graph (an operation without a cache key, or ``numba__cache`` off), the wrappers are
compiled as nutpie does, uncached.

This follows nutpie's private helpers of the 0.16 series (``_make_functions``,
``make_extraction_fn``, ``make_user_data``, ``_prepare_dims_and_coords``); any other nutpie
version, or a missing helper, falls back to :func:`nutpie.compile_pymc_model`.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from typing import Any

import numpy as np

__all__ = ["WRAPPER_VERSION", "compile_nutpie_numba", "wrapper_key"]

_log = logging.getLogger(__name__)

#: bump when the generated wrapper source below changes (part of the cache key)
WRAPPER_VERSION = 1
#: nutpie versions whose private helpers this module follows
NUTPIE_SERIES = ("0.16.",)
#: the private parts of ``nutpie.compile_pymc`` used here
_HELPERS = ("_make_functions", "make_extraction_fn", "make_user_data",
            "_prepare_dims_and_coords", "_wrap_with_lock", "CompiledPyMCModel")  # fmt: skip

_LOGP_SRC = """
def nf_nutpie_logp(dim, x_, out_, logp_, user_data_):
    if dim != N_DIM:
        return -1
    try:
        x = numba.carray(x_, (N_DIM,))
        out = numba.carray(out_, (N_DIM,))
        logp = numba.carray(logp_, ())
        logp_val, grad = extract(x, user_data_)
        logp[()] = logp_val
        out[...] = grad
        if not np.all(np.isfinite(out)):
            return 3
        if not np.isfinite(logp_val):
            return 4
    except Exception:
        return 1
    return 0
"""

_EXPAND_SRC = """
def nf_nutpie_expand(dim, expanded, x_, out_, user_data_):
    if dim != N_DIM:
        return -1
    if expanded != N_EXPANDED:
        return -1
    try:
        x = numba.carray(x_, (N_DIM,))
        out = numba.carray(out_, (N_EXPANDED,))
        (values,) = extract(x, user_data_)
        out[...] = values
    except Exception:
        return -2
    return 0
"""


def wrapper_key(
    graph_key: str,
    *,
    kind: str,
    n_dim: int,
    n_expanded: int,
    shared: dict[str, np.ndarray],
    user_dtype: np.dtype,
) -> str:
    """Cache key of one wrapper: everything its compiled code depends on.

    ``graph_key`` is PyTensor's key of the wrapped function's graph; ``shared`` the data
    arrays it reads (only their names, order, ranks and dtypes enter the code).
    """
    import numba
    import nutpie

    parts = (
        "neutrality-forecast nutpie wrapper", WRAPPER_VERSION, kind, graph_key, int(n_dim),
        int(n_expanded), [(k, v.ndim, v.dtype.str) for k, v in shared.items()],
        str(user_dtype.descr), numba.__version__, nutpie.__version__,
    )  # fmt: skip
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def _graph_key(pt_function) -> str | None:
    """PyTensor's cache key of a compiled numba function, or None when it has none."""
    from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS

    py_func = getattr(pt_function.vm.jit_fn, "py_func", None)
    return None if py_func is None else CACHED_SRC_FUNCTIONS.get(py_func)


def _wrapper(src: str, name: str, env: dict, key: str | None, c_sig):
    """Compile the wrapper ``name`` defined in ``src``: cached under ``key`` when given."""
    import numba
    from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS, compile_numba_function_src

    # __name__: a program loaded from disk rebuilds its environment from this module
    env = {"__name__": __name__, "numba": numba, "np": np, **env}
    fn = compile_numba_function_src(src, name, global_env=env)
    if key is None:
        return numba.cfunc(c_sig)(fn)
    CACHED_SRC_FUNCTIONS[fn] = key
    try:
        with warnings.catch_warnings():  # an uncachable program (numba says why) still runs
            warnings.filterwarnings("ignore", message="Cannot cache compiled function")
            return numba.cfunc(c_sig, cache=True)(fn)
    except Exception as exc:  # noqa: BLE001 - a broken cache entry must not stop a fit
        _log.warning("nutpie wrapper %s not loaded from the cache (%s): compiling it", name, exc)
        return numba.cfunc(c_sig)(fn)  # without cache=True numba does not look it up


def compile_nutpie_numba(model, *, var_names: list[str] | None = None) -> Any:
    """Compile ``model`` for nutpie's numba backend, re-using wrappers compiled before.

    Parameters
    ----------
    model : pymc.Model
        The model.
    var_names : list of str, optional
        Variables nutpie keeps (its ``var_names``); default all.

    Returns
    -------
    nutpie.compile_pymc.CompiledPyMCModel
        As :func:`nutpie.compile_pymc_model` ``(model, var_names=var_names)`` returns it;
        ``cache_hits`` of its ``compiled_logp_func`` says whether the log-density wrapper
        was loaded from disk.

    """
    import nutpie
    from nutpie import compile_pymc as cp

    if not nutpie.__version__.startswith(NUTPIE_SERIES) or not all(
        hasattr(cp, name) for name in _HELPERS
    ):
        _log.info("nutpie %s: its own compilation (wrappers not cached)", nutpie.__version__)
        return nutpie.compile_pymc_model(model, var_names=var_names)
    return _compile(model, var_names, cp)


def _compile(model, var_names, cp) -> Any:
    """``nutpie.compile_pymc._compile_pymc_model_numba`` with cached wrappers."""
    import numba
    from pymc.initial_point import make_initial_point_fn

    init = make_initial_point_fn(
        model=model, default_strategy="support_point", jitter_rvs=set(model.free_RVs),
        return_transformed=True,
    )  # fmt: skip
    n_dim, n_expanded, logp_pt, expand_pt, initial_point_fn, shape_info = cp._make_functions(
        model, mode="NUMBA", compute_grad=True, join_expanded=True,
        pymc_initial_point_fn=cp._wrap_with_lock(init), var_names=var_names,
    )  # fmt: skip
    shared_data, seen = {}, {}
    for val in [*logp_pt.get_shared(), *expand_pt.get_shared()]:
        if val.name in seen and seen[val.name] is not val:
            raise ValueError(f"Shared variables must have unique names: {val.name}")
        shared_data[val.name] = np.array(val.get_value(), order="C", copy=True)
        seen[val.name] = val
    for arr in shared_data.values():
        arr.flags.writeable = False
    user_data = cp.make_user_data(seen, shared_data)
    # typing examples only: every element is replaced by the array read from user_data
    placeholders = {k: np.zeros((1,) * v.ndim, v.dtype) for k, v in shared_data.items()}

    def wrapper(kind, pt_function, src, name, c_sig, **consts):
        names = [v.name for v in pt_function.get_shared()]
        own = {k: placeholders[k] for k in names}
        extract = cp.make_extraction_fn(pt_function.vm.jit_fn, own, names, user_data.dtype)
        graph = _graph_key(pt_function)
        key = None if graph is None else wrapper_key(
            graph, kind=kind, n_dim=n_dim, n_expanded=n_expanded, shared=own,
            user_dtype=user_data.dtype,
        )  # fmt: skip
        return _wrapper(src, name, {"extract": extract, **consts}, key, c_sig)

    t = numba.types
    logp_sig = t.int64(t.uint64, t.CPointer(t.double), t.CPointer(t.double),
                       t.CPointer(t.double), t.voidptr)  # fmt: skip
    expand_sig = t.int64(t.uint64, t.uint64, t.CPointer(t.double), t.CPointer(t.double),
                         t.voidptr)  # fmt: skip
    logp_c = wrapper("logp", logp_pt, _LOGP_SRC, "nf_nutpie_logp", logp_sig, N_DIM=n_dim)
    expand_c = wrapper("expand", expand_pt, _EXPAND_SRC, "nf_nutpie_expand", expand_sig,
                       N_DIM=n_dim, N_EXPANDED=n_expanded)  # fmt: skip
    dims, coords = cp._prepare_dims_and_coords(model, shape_info)
    return cp.CompiledPyMCModel(
        _n_dim=n_dim, dims=dims, _coords=coords,
        _shapes={name: tuple(shape) for name, _, shape in zip(*shape_info, strict=True)},
        compiled_logp_func=logp_c, compiled_expand_func=expand_c,
        initial_point_func=initial_point_fn, shared_data=shared_data, user_data=user_data,
        n_expanded=n_expanded, shape_info=shape_info, logp_func=logp_pt, expand_func=expand_pt,
    )  # fmt: skip
