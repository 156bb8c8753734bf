"""Where a gradient's time goes: the library's JAX potential against hand-written floors.

Run ``python benchmarks/gradient.py [--cases data/cases] [--repeats 300] [--out FILE]``.

One NUTS leapfrog step costs one gradient of the log density; a population fit takes
hundreds of thousands of them (``docs/performance.md``). This script measures, in ONE run
on the current machine, the milliseconds per ``value_and_grad`` call of:

* ``library``: the potential NumPyro samples (:func:`neutrality_forecast.numpyro_nuts._logp`
  of :class:`~neutrality_forecast.model.hazard.HazardModel`, double precision);
* ``library_single_likelihood``: the same graph with the per-row likelihood (design,
  counts, linear predictor, softplus) in single precision and the data passed as float32
  (the sum accumulated in double) — an option measured here, not used by the library;
* ``floor_double`` / ``floor_single``: only the per-family likelihood
  ``sum(y * eta - n * softplus(eta))``, ``eta = Z theta + u[q]``, written directly in JAX
  on the same padded arrays (no priors, no bookkeeping);
* ``floor_no_softplus``, ``floor_no_gather``: the double floor without the softplus,
  and without the gathered question effects (what each costs).

It prints a JSON summary with the ratios to ``library``; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import neutrality_forecast as nf  # noqa: F401  (sets JAX's program-argument hoisting first)


def _time(fn, args, repeats: int) -> float:
    import jax

    g = jax.jit(jax.value_and_grad(fn))
    g(*args)[0].block_until_ready()
    best = np.inf
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(repeats):
            out = g(*args)
        out[0].block_until_ready()
        best = min(best, (time.perf_counter() - t) / repeats * 1e3)
    return float(best)


def _single_likelihood_potential(data, cfg):
    """Potential of the library graph with the per-row likelihood and data in float32."""
    import inspect

    import jax.numpy as jnp
    import pytensor.tensor as pt
    from pymc.sampling.jax import get_jaxified_graph
    from pytensor.compile import SharedVariable
    from pytensor.graph.replace import clone_replace
    from pytensor.graph.traversal import graph_inputs

    from neutrality_forecast.model import hazard

    src = inspect.getsource(hazard)
    edits = {
        "data[name] = pm.Data(name, value, dims=dims)": (
            "data[name] = pm.Data(name, value, dims=dims)\n"
            "                if value.dtype.kind == 'f':\n"
            "                    data[name] = pt.cast(data[name], 'float32')"
        ),
        'pt.dot(data[f"design_{o}"], pt.concatenate(parts)) + u[data[f"q_{o}"]]': (
            'pt.dot(data[f"design_{o}"], pt.cast(pt.concatenate(parts), "float32"))'
            ' + pt.cast(u, "float32")[data[f"q_{o}"]]'
        ),
        'data[f"trials_{o}"] * pt.softplus(eta)\n                )': (
            'data[f"trials_{o}"] * pt.softplus(eta), dtype="float64"\n                )'
        ),
    }
    for old, new in edits.items():
        if old not in src:
            raise RuntimeError(f"benchmark out of date with HazardModel: {old!r} not found")
        src = src.replace(old, new)
    ns: dict = {}
    exec(compile(src, hazard.__file__, "exec"), ns)  # noqa: S102 (benchmark-only variant)
    model = ns["HazardModel"](data, cfg).build_model()
    potential = -model.logp()
    shared = [v for v in graph_inputs([potential]) if isinstance(v, SharedVariable)]
    slots, repl, values = [], {}, []
    for v in shared:
        val = v.get_value(borrow=True)
        if val.dtype == np.float64 and v.name.split("_")[0] in ("design", "y", "trials"):
            s = pt.TensorType("float32", shape=v.type.shape)()
            repl[v] = pt.cast(s, "float64")
            values.append(jnp.asarray(val, dtype=jnp.float32))
        else:
            s = v.type()
            repl[v] = s
            values.append(jnp.asarray(val))
        slots.append(s)
    potential = clone_replace(potential, replace=repl)
    fn = get_jaxified_graph(inputs=[*model.value_vars, *slots], outputs=[potential])
    return lambda x: fn(*x, *values)[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=Path, default=Path("data/cases"))
    ap.add_argument("--repeats", type=int, default=300)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    import jax
    import jax.numpy as jnp

    from neutrality_forecast.model.data import build_model_data
    from neutrality_forecast.model.hazard import HazardModel
    from neutrality_forecast.numpyro_nuts import _logp

    cfg = nf.load_config()
    data = build_model_data(nf.load_case_set(args.cases), cfg)
    model = HazardModel(data, cfg).build_model()
    point = model.initial_point()
    x = [jnp.asarray(point[v.name]) for v in model.value_vars]
    library = _logp(model)
    single = _single_likelihood_potential(data, cfg)
    ms = {
        "library": _time(library, (x,), args.repeats),
        "library_single_likelihood": _time(single, (x,), args.repeats),
    }
    single_error = abs(float(library(x)) - float(single(x)))

    inp = data.model_inputs()
    fams = [k.split("_", 1)[1] for k in inp if k.startswith("design_")]
    arr = {k: jnp.asarray(v) for k, v in inp.items()}
    theta = {o: jnp.zeros(inp[f"design_{o}"].shape[1]) for o in fams}
    u = jnp.zeros(len(data.questions))

    def floor(dtype, softplus=True, gather=True):
        """The bare likelihood with the data already in ``dtype`` (as passed to a sampler)."""
        d = {k: v if k.startswith("q_") else v.astype(dtype) for k, v in arr.items()}

        def f(theta, u):
            total = 0.0
            for o in fams:
                eta = d[f"design_{o}"] @ theta[o].astype(dtype)
                if gather:
                    eta = eta + u.astype(dtype)[d[f"q_{o}"]]
                sp = jax.nn.softplus(eta) if softplus else eta**2
                ll = d[f"y_{o}"] * eta - d[f"trials_{o}"] * sp
                total = total + jnp.sum(ll).astype(jnp.float64)
            return total + (0.0 if gather else jnp.sum(u))

        return f

    ms["floor_double"] = _time(floor(jnp.float64), (theta, u), args.repeats)
    ms["floor_single"] = _time(floor(jnp.float32), (theta, u), args.repeats)
    ms["floor_no_softplus"] = _time(floor(jnp.float64, softplus=False), (theta, u), args.repeats)
    ms["floor_no_gather"] = _time(floor(jnp.float64, gather=False), (theta, u), args.repeats)
    summary = {
        "rows": int(data.n_rows),
        "padded_rows": int(sum(inp[f"y_{o}"].shape[0] for o in fams)),
        "questions": len(data.questions),
        "free_parameters": int(sum(np.size(v) for v in point.values())),
        "ms_per_gradient": {k: round(v, 4) for k, v in ms.items()},
        "speedup_vs_library": {k: round(ms["library"] / v, 2) for k, v in ms.items()},
        "single_likelihood_abs_error_at_start": single_error,
    }
    text = json.dumps(summary, indent=2)
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
