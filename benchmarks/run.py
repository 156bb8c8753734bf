"""Benchmark suite: samplers on the shipped data, re-forecast latency, ingestion.

Run ``python benchmarks/run.py [--out DIR] [--population]`` (``--population`` adds the
synthetic-population benchmark of ``benchmarks/population.py`` and its keys). Everything is measured in ONE run on the
current machine; the numbers that matter are the ratios printed at the end
(``speedup_vs_pymc_nuts``: the library's default fit vs PyMC's default NUTS, in minimum
ESS per second of wall time, compile included). Nothing here is asserted: timings live in
``DIR/summary.json`` and ``docs/performance.md``, never in tests.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd

import neutrality_forecast as nf
from neutrality_forecast.forecast.horizon import question_probabilities
from neutrality_forecast.model.fitted import GATE_VARS
from neutrality_forecast.model.hazard import HazardModel
from neutrality_forecast.model.reference import ReferenceHazardModel

#: identified quantities, the same for every parameterisation (the gate's variables)
ESS_VARS = list(GATE_VARS)


def _min_ess(idata, fitted_like) -> tuple[float, float]:
    post = idata.posterior[[v for v in ESS_VARS if v in idata.posterior]]
    bulk = float(az.ess(post, method="bulk").to_array().min())
    tail = float(az.ess(post, method="tail").to_array().min())
    # forecast probabilities: P(within 12 months) of each open TKM question
    if fitted_like is not None:
        p = _tkm_probabilities(fitted_like)
        shaped = p.reshape(post.sizes["chain"], post.sizes["draw"], -1)
        ds = az.convert_to_dataset({"p12": shaped})
        bulk = min(bulk, float(az.ess(ds, method="bulk").to_array().min()))
        tail = min(tail, float(az.ess(ds, method="tail").to_array().min()))
    return bulk, tail


def _tkm_probabilities(fitted) -> np.ndarray:
    qs = fitted.data.questions_of("TKM")
    res = question_probabilities(
        qs, fitted.draws(), config=fitted.config, link_outcomes=fitted.data.link_outcomes,
        as_of=qs[0].window_end, horizons=[12],
    )  # fmt: skip
    open_ = [i for i, r in enumerate(res["resolved"]) if not r]
    return res["marginal"][:, 0, open_]


def _grad_evals(idata) -> int:
    total = int(idata.sample_stats["n_steps"].sum()) if "n_steps" in idata.sample_stats else 0
    if "warmup_sample_stats" in idata.groups() and "n_steps" in idata.warmup_sample_stats:
        total += int(idata.warmup_sample_stats["n_steps"].sum())
    return total


def _wrap(idata, case_set, config, data):
    gate = nf.check_gate(idata, thresholds=config.model.diagnostics,
                         var_names=[v for v in ESS_VARS if v in idata.posterior])  # fmt: skip
    return nf.FittedModel(case_set, config, data, idata, gate, seed=0, sampler="bench")


def _row(name, idata, case_set, config, data, compile_s, sample_s, grad_evals=None):
    fitted = _wrap(idata, case_set, config, data)
    bulk, tail = _min_ess(idata, fitted)
    wall = compile_s + sample_s
    return {
        "config": name, "compile_s": round(compile_s, 2), "sample_s": round(sample_s, 2),
        "wall_s": round(wall, 2), "min_ess_bulk": round(bulk), "min_ess_tail": round(tail),
        "ess_per_s": round(min(bulk, tail) / wall, 2),
        "ess_per_s_sampling": round(min(bulk, tail) / sample_s, 2),
        "divergences": int(idata.sample_stats["diverging"].sum()),
        "grad_evals": grad_evals if grad_evals is not None else _grad_evals(idata),
        "gate_passed": fitted.gate.passed,
    }  # fmt: skip


def bench_sampler(name, case_set, config, data, *, seed):
    """Compile + sample one configuration; returns a result row.

    ``pymc`` is PyMC's default NUTS exactly as ``pm.sample()`` runs it (1000 tune, 1000
    draws, ``target_accept=0.8``, 4 chains on 2 cores) on the library's model graph;
    ``pymc-reference`` is the same on :class:`ReferenceHazardModel`, the same statistical
    model written the textbook way (indexed ``pm.Binomial``, ``log sigma`` scales). Every
    other configuration uses the library's settings (``models/model.toml``: tune, draws,
    target_accept). ``default`` is
    the library's own :func:`neutrality_forecast.fit` as a user calls it, in a fresh
    process with an empty compilation cache (:func:`_cold_default_fit`);
    ``default-new-data`` the same in a fresh process whose cache holds only the sampler
    compiled by an earlier process for other data of the same shapes;
    ``default-warm-cache`` times the second of two identical fits in this process, with
    the compiled sampler taken from JAX's persistent cache as a scheduled re-forecast on
    unchanged inputs finds it.
    """
    import pymc as pm

    smp = config.model.sampling
    if name in ("default", "default-new-data"):
        idata, wall, attempts, same = _cold_default_fit(
            seed, warm_with_other_data=name == "default-new-data"
        )
        sample_s = min(float(idata.posterior.attrs.get("sampling_time", wall)), wall)
        row = _row(name, idata, case_set, config, data, wall - sample_s, sample_s)
        row["attempts"] = attempts
        if same is not None:
            row["cache_from_same_shapes"] = same
        return row
    if name.startswith("default"):  # default-warm-cache: the second of two identical fits
        nf.fit(case_set, config, seed=seed, progressbar=False)
        t0 = time.perf_counter()
        fitted = nf.fit(case_set, config, seed=seed, progressbar=False)
        wall = time.perf_counter() - t0
        idata = fitted.idata
        sample_s = min(float(idata.posterior.attrs.get("sampling_time", wall)), wall)
        row = _row(name, idata, case_set, config, data, wall - sample_s, sample_s)
        row["attempts"] = fitted.attempts  # step-size retries, if any (see fit_compiled)
        return row
    builder = ReferenceHazardModel if name == "pymc-reference" else HazardModel
    model = builder(data, config).build_model()
    t0 = time.perf_counter()
    if name.startswith("nutpie"):
        import nutpie

        compiled = nutpie.compile_pymc_model(model)
        t1 = time.perf_counter()
        idata = nutpie.sample(
            compiled, draws=smp.draws, tune=smp.tune, chains=4, seed=seed, progress_bar=False,
            target_accept=smp.target_accept,
            low_rank_modified_mass_matrix=name == "nutpie-lowrank",
        )  # fmt: skip
        return _row(name, idata, case_set, config, data, t1 - t0, time.perf_counter() - t1)
    if name in ("pymc", "pymc-reference"):
        with model:  # PyMC defaults: 1000 draws, 1000 tune, target_accept 0.8
            idata = pm.sample(chains=4, cores=2, random_seed=seed, progressbar=False,
                              compute_convergence_checks=False)  # fmt: skip
    else:  # numpyro, numpyro-dense through pm.sample (PyMC's JAX backend)
        nuts = {"dense_mass": True} if name == "numpyro-dense" else {}
        with model:
            idata = pm.sample(draws=smp.draws, tune=smp.tune, chains=4, random_seed=seed,
                              target_accept=smp.target_accept, nuts_sampler="numpyro",
                              nuts_sampler_kwargs={"nuts_kwargs": nuts}, progressbar=False,
                              compute_convergence_checks=False)  # fmt: skip
    total = time.perf_counter() - t0
    sample_s = min(float(idata.posterior.attrs.get("sampling_time", total)), total)
    return _row(name, idata, case_set, config, data, total - sample_s, sample_s)


_COLD_FIT = """
import json, sys, time
import neutrality_forecast as nf  # first: it sets JAX's constant hoisting before JAX starts
import jax, numpyro, pymc.sampling.jax  # noqa: F401  (imports are not part of the fit)
cases, seed, out, added = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
case_set, config = nf.load_case_set(cases), nf.load_config()
if added:  # other data of the same shapes: copies of real TKM events (see _added_events)
    pick = case_set.events_of("TKM").sample(n=added, random_state=seed).copy()
    pick["event_id"] = [f"BENCH-{seed}-{i:03d}" for i in range(added)]
    case_set = case_set.with_events(pick)
t = time.perf_counter()
fitted = nf.fit(case_set, config, seed=seed, progressbar=False)
wall = time.perf_counter() - t
fitted.save(out)
shapes = {k: list(v.shape) for k, v in fitted.data.model_inputs().items()}
print(json.dumps({"wall": wall, "attempts": fitted.attempts, "shapes": shapes}))
"""


def _fresh_process_fit(seed: int, cache: str, added: int = 0) -> tuple:
    """``nf.fit`` in a fresh process (imports excluded) with JAX's cache in ``cache``.

    ``added`` > 0 fits other data (the shipped data plus ``added`` copied events).
    Returns the InferenceData, the wall time of ``nf.fit``, its attempts and the shapes
    of the model's data arrays.
    """
    with tempfile.TemporaryDirectory(prefix="nf-bench-fit-") as tmp:
        out = Path(tmp) / "posterior.nc"
        proc = subprocess.run(
            [sys.executable, "-c", _COLD_FIT, str(nf.default_cases_dir()), str(seed), str(out),
             str(added)],
            env={**os.environ, "NF_CACHE_DIR": cache}, capture_output=True, text=True,
            check=True,
        )  # fmt: skip
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        idata = az.from_netcdf(out)
        idata.load()
    return idata, res["wall"], res["attempts"], res["shapes"]


def _cold_default_fit(seed: int, *, warm_with_other_data: bool = False):
    """The library's default fit in a fresh process.

    ``warm_with_other_data=False``: an empty compilation cache, what the very first fit
    on a machine costs (nothing compiled earlier in this benchmark can help it).
    ``True``: the cache holds only what an earlier process compiled for *other* data of
    the same shapes (the shipped data plus 5 events), the situation of a scheduled
    re-forecast on new events, of a backtest fold, or of any fit after the first on a
    machine; PyMC's own default NUTS is measured the same way (its C cache in
    ``~/.pytensor`` is warm and data-independent). Returns the InferenceData, the wall time
    of ``nf.fit``, its attempts and whether the other data had the same array shapes.
    """
    with tempfile.TemporaryDirectory(prefix="nf-bench-cache-") as cache:
        same = None
        if warm_with_other_data:
            *_, other_shapes = _fresh_process_fit(seed, cache, added=5)
        idata, wall, attempts, shapes = _fresh_process_fit(seed, cache)
        if warm_with_other_data:
            same = other_shapes == shapes
    return idata, wall, attempts, same


def numpyro_phases(data, config, *, seed) -> dict:
    """NumPyro with the library's settings, driven directly to count EVERY gradient.

    PyMC reports NumPyro's leapfrog steps for the kept draws only; here warm-up and
    sampling are run as separate phases (same potential, same settings) so the total
    number of gradient evaluations and the time of each phase are measured.
    """
    import jax
    import pymc.sampling.jax as pmjax
    from numpyro.infer import MCMC, NUTS

    smp = config.model.sampling
    model = HazardModel(data, config).build_model()
    t0 = time.perf_counter()
    potential = pmjax.get_jaxified_logp(model, negative_logp=False)
    point = model.initial_point()
    rng = np.random.default_rng(seed)
    init = [
        jax.numpy.asarray(point[v.name] + rng.uniform(-1, 1, (4, *np.shape(point[v.name]))))
        for v in model.value_vars
    ]
    mcmc = MCMC(NUTS(potential_fn=potential, target_accept_prob=smp.target_accept),
                num_warmup=smp.tune, num_samples=smp.draws, num_chains=4,
                chain_method="parallel", progress_bar=False)  # fmt: skip
    mcmc.warmup(jax.random.PRNGKey(seed), init_params=init, extra_fields=("num_steps",),
                collect_warmup=True)  # fmt: skip
    jax.block_until_ready(mcmc.post_warmup_state)
    t1 = time.perf_counter()
    warm_steps = int(np.sum(mcmc.get_extra_fields()["num_steps"]))
    mcmc.run(mcmc.post_warmup_state.rng_key, extra_fields=("num_steps",))
    jax.block_until_ready(mcmc.get_samples())
    t2 = time.perf_counter()
    steps = int(np.sum(mcmc.get_extra_fields()["num_steps"]))
    return {"warmup_s_incl_compile": round(t1 - t0, 2), "sample_s": round(t2 - t1, 2),
            "warmup_grad_evals": warm_steps, "sample_grad_evals": steps,
            "grad_evals": warm_steps + steps}  # fmt: skip


def gradient_cost(case_set, config, data) -> dict[str, float]:
    """Seconds per log-density + gradient evaluation: PyTensor C, Numba and JAX backends."""
    model = HazardModel(data, config).build_model()
    point = model.initial_point()
    x0 = np.concatenate([np.ravel(v) for v in point.values()])
    out = {}
    n = 3000
    for mode in ("FAST_RUN", "NUMBA"):
        try:
            f = model.logp_dlogp_function(ravel_inputs=True, mode=mode)
        except Exception as exc:  # noqa: BLE001 - report, do not fail the benchmark
            out[mode] = float("nan")
            print(f"gradient cost {mode}: {exc}", file=sys.stderr)
            continue
        f.set_extra_values({})
        f(x0)
        t = time.perf_counter()
        for _ in range(n):
            f(x0)
        out[mode] = (time.perf_counter() - t) / n
    try:
        import jax
        import pymc.sampling.jax as pmjax

        logp = pmjax.get_jaxified_logp(model, negative_logp=False)
        vals = [jax.numpy.asarray(point[v.name]) for v in model.value_vars]
        g = jax.jit(jax.value_and_grad(logp))
        jax.block_until_ready(g(vals))
        t = time.perf_counter()
        for _ in range(n):
            res = g(vals)
        jax.block_until_ready(res)
        out["JAX"] = (time.perf_counter() - t) / n
        out["JAX_in_loop"] = _jax_in_loop_cost(logp, vals, n)
    except Exception as exc:  # noqa: BLE001
        out["JAX"] = float("nan")
        print(f"gradient cost JAX: {exc}", file=sys.stderr)
    return out


def _jax_in_loop_cost(logp, vals, n: int) -> float:
    """Seconds per value+gradient evaluation inside one compiled loop (no Python dispatch).

    This is what a JAX sampler pays per leapfrog step for the model itself; the point is
    perturbed every iteration and the whole gradient is consumed so nothing is hoisted.
    """
    import jax

    vg = jax.value_and_grad(logp)

    @jax.jit
    def run(x):
        def body(i, acc):
            v, g = vg([a + 1e-9 * acc for a in x])
            return acc + 1e-12 * (v + sum(b.sum() for b in g))

        return jax.lax.fori_loop(0, n, body, 0.0)

    jax.block_until_ready(run(vals))
    t = time.perf_counter()
    jax.block_until_ready(run(vals))
    return (time.perf_counter() - t) / n


def _added_events(case_set, n: int, seed: int) -> pd.DataFrame:
    """``n`` synthetic TKM events for timing only: copies of random real TKM events with
    new ids (same dates and grades), never written anywhere."""
    tkm = case_set.events_of("TKM")
    pick = tkm.sample(n=n, random_state=seed, replace=n > len(tkm)).copy()
    pick["event_id"] = [f"BENCH-{seed}-{i:03d}" for i in range(n)]
    return pick


def reforecast_latency(case_set, config, *, seed: int, tmp: Path) -> dict:
    """PSIS update, warm refit (model object reused) and cold refit for added events.

    The cold refit builds a new model with :func:`neutrality_forecast.fit`; the warm refit
    swaps the new inputs into the already built model. Both find the sampler in JAX's
    persistent cache when the new data have the base data's padded shapes
    (``same_shapes``), else they compile. ``*_attempts`` counts step-size retries
    (normally 1).
    """
    from neutrality_forecast.archive.reforecast import psis_update
    from neutrality_forecast.model.fitted import fit_compiled
    from neutrality_forecast.sampling import CompiledModel
    from neutrality_forecast.update.psis import PsisOptions

    data = nf.build_model_data(case_set, config)
    compiled = CompiledModel(HazardModel(data, config).build_model(), sampler="auto")
    base = fit_compiled(compiled, case_set, config, data, seed=seed, progressbar=False)
    base_path = base.save(tmp / "base_posterior.nc")
    base_shapes = {k: v.shape for k, v in data.model_inputs().items()}
    out: dict = {"reforecast": []}
    for n in (1, 5, 20):
        new_cases = case_set.with_events(_added_events(case_set, n, seed))
        t = time.perf_counter()
        updated, info = psis_update(
            base_path, case_set, new_cases, config, options=PsisOptions(), seed=seed
        )
        psis_s = time.perf_counter() - t
        new_data = nf.build_model_data(new_cases, config)
        row = {"events_added": n, "psis_seconds": round(psis_s, 3), "psis_accepted": updated is not None,
               "khat": info.get("khat"), "weights_ess": info.get("ess"),
               "same_shapes": {k: v.shape for k, v in new_data.model_inputs().items()}
               == base_shapes}  # fmt: skip
        if n == 1:  # a cold refit costs the same whatever the number of events
            # new model object (these inputs were never sampled)
            t = time.perf_counter()
            cold = nf.fit(new_cases, config, seed=seed, progressbar=False)
            row["cold_refit_seconds"] = round(time.perf_counter() - t, 1)
            row["cold_refit_attempts"] = len(cold.attempts)
        # model object reused; for n = 1 the compiled program comes from the cache
        t = time.perf_counter()
        warm = fit_compiled(compiled, new_cases, config, new_data,
                            inputs=new_data.model_inputs(), seed=seed, progressbar=False)  # fmt: skip
        row["warm_refit_seconds"] = round(time.perf_counter() - t, 1)
        row["warm_refit_attempts"] = len(warm.attempts)
        out["reforecast"].append(row)
        print(f"reforecast n={n}: {row}", file=sys.stderr, flush=True)
    first = out["reforecast"][0]
    out["psis_update_seconds"] = max(r["psis_seconds"] for r in out["reforecast"])
    out["warm_refit_seconds"] = first["warm_refit_seconds"]
    out["cold_refit_seconds"] = first["cold_refit_seconds"]
    return out


def ingest_rate(tmp: Path, rows: int) -> dict:
    """Rows per second of POLECAT ingestion (benchmarks/ingest.py in a subprocess)."""
    script = Path(__file__).with_name("ingest.py")
    if not script.is_file():
        return {"available": False}
    result = tmp / "ingest.json"
    res = subprocess.run(
        [sys.executable, str(script), "--rows", str(rows), "--dir", str(tmp), "--out", str(result)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    try:
        return json.loads(result.read_text())
    except (OSError, json.JSONDecodeError):
        return {"available": False, "stderr": res.stderr[-2000:]}


def population_benchmark(out: Path) -> dict:
    """Run ``benchmarks/population.py`` in its own process; its keys for ``summary.json``.

    ``population_fit_seconds``, ``population_speedup_vs_pymc_nuts``,
    ``population_speedup_vs_textbook``, ``loco_population_seconds``, ``loco_refit_share``
    and the population's peak RSS (``population_peak_rss_gb``); its full summary stays in
    ``out/summary.json``.
    """
    script = Path(__file__).with_name("population.py")
    subprocess.run([sys.executable, str(script), "--out", str(out)], check=True)
    pop = json.loads((out / "summary.json").read_text())
    keys = ["population_fit_seconds", "population_speedup_vs_pymc_nuts",
            "population_speedup_vs_textbook", "loco_population_seconds", "loco_refit_share"]  # fmt: skip
    merged = {k: pop.get(k) for k in keys}
    merged["population_peak_rss_gb"] = pop.get("peak_rss_gb")
    return merged


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="runs/benchmark", type=Path)
    ap.add_argument("--seed", default=1, type=int)
    ap.add_argument(
        "--samplers",
        default="pymc-reference,pymc,nutpie,nutpie-lowrank,numpyro,numpyro-dense,default,"
        "default-new-data,default-warm-cache",
    )
    ap.add_argument("--ingest-rows", default=1_000_000, type=int)
    ap.add_argument("--skip-reforecast", action="store_true")
    ap.add_argument(
        "--population",
        action="store_true",
        help="also run benchmarks/population.py (synthetic 60-case population: default fits, "
        "PyMC-NUTS and textbook baselines, leave-cluster-out; about an hour on 2 cores) and "
        "merge its population_* / loco_* keys into summary.json",
    )
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("NF_NO_PROGRESS", "1")
    # a fresh JAX compilation cache: the first default fit pays compilation in full
    cache = tempfile.mkdtemp(prefix="nf-bench-cache-")
    os.environ["NF_CACHE_DIR"] = cache
    case_set = nf.load_case_set(nf.default_cases_dir())
    config = nf.load_config()
    data = nf.build_model_data(case_set, config)
    available = nf.sampling.available_samplers()
    default = nf.sampling.resolve_sampler(config.model.sampling.sampler)
    rows = []
    for name in args.samplers.split(","):
        base = default if name.startswith("default") else name.split("-")[0]
        if base not in available:
            print(f"skip {name}: not installed", file=sys.stderr)
            continue
        print(f"benchmarking {name} ...", file=sys.stderr, flush=True)
        rows.append(bench_sampler(name, case_set, config, data, seed=args.seed))
    table = pd.DataFrame(rows)
    grad = gradient_cost(case_set, config, data)
    cheapest = min(v for v in grad.values() if np.isfinite(v))
    phases = numpyro_phases(data, config, seed=args.seed) if "numpyro" in available else {}
    table["grad_cost_us"] = (
        table["sample_s"] / table["grad_evals"].replace(0, np.nan) * 1e6
    ).round(1)
    by = table.set_index("config")

    def ratio(a: str, b: str) -> float | None:
        ok = {a, b} <= set(by.index)
        return float(by.loc[a, "ess_per_s"] / by.loc[b, "ess_per_s"]) if ok else None

    # the baseline: PyMC's default NUTS on the model as commonly written (same statistical
    # model, same data); the library's own graph under PyMC's default NUTS is reported too
    baseline = "pymc-reference" if "pymc-reference" in by.index else "pymc"

    floor = phases["grad_evals"] * cheapest if phases else None
    summary = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "default_sampler": default,
        "settings": config.model.sampling.model_dump(),
        "samplers": rows,
        "gradient_seconds": grad,
        "cheapest_gradient_seconds": cheapest,
        "baseline": baseline,
        # the default fit as it runs routinely: a fresh process, data it never fitted, the
        # compile cache holding what earlier processes compiled for other data (PyMC's
        # baseline likewise runs with its warm, data-independent C cache in ~/.pytensor)
        "speedup_vs_pymc_nuts": ratio("default-new-data", baseline),
        # the very first fit on a machine: empty compile cache, everything compiled
        "speedup_vs_pymc_nuts_first_fit": ratio("default", baseline),
        "speedup_vs_pymc_nuts_warm_cache": ratio("default-warm-cache", baseline),
        "speedup_vs_pymc_nuts_same_graph": ratio("default", "pymc"),
        "speedup_vs_pymc_nuts_same_graph_warm_cache": ratio("default-warm-cache", "pymc"),
        "numpyro_phases": phases,
        "gradient_floor_seconds": floor,
        "default_vs_gradient_floor": (
            float((phases["warmup_s_incl_compile"] + phases["sample_s"]) / floor) if floor else None
        ),
        "default_fit_seconds": float(by.loc["default-new-data", "wall_s"])
        if "default-new-data" in by.index
        else None,
        "first_fit_seconds": float(by.loc["default", "wall_s"]) if "default" in by.index else None,
        "fastest_config": str(table.loc[table["ess_per_s"].idxmax(), "config"])
        if len(table)
        else None,
    }
    if not args.skip_reforecast:
        summary.update(reforecast_latency(case_set, config, seed=args.seed, tmp=args.out))
    if args.population:
        summary.update(population_benchmark(args.out / "population"))
    ingest = ingest_rate(args.out, args.ingest_rows)
    summary["ingest"] = ingest
    summary["ingest_rows_per_second"] = ingest.get("ingest_rows_per_second")
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print(table.to_string(index=False))
    print(
        json.dumps(
            {k: v for k, v in summary.items() if k not in ("samplers", "ingest")},
            indent=2,
            default=str,
        )
    )
    shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
