"""Fitting, the fitted-model object, and save/load with version and data-hash checks.

Save/load follows pymc-marketing's ``ModelIO``: the InferenceData is written to NetCDF with
the model version, a model id, the SHA-256 of the input data and the full configuration
(as JSON) in its attributes; loading refuses a file whose model version or data hash does
not match what the caller supplies.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import arviz as az
import numpy as np

from neutrality_forecast import __version__
from neutrality_forecast.casesets import CaseSet
from neutrality_forecast.config import Config
from neutrality_forecast.diagnostics import GateResult, check_gate, judge
from neutrality_forecast.model.data import ModelData, build_model_data
from neutrality_forecast.model.hazard import HazardModel
from neutrality_forecast.sampling import CompiledModel
from neutrality_forecast.stopping import Judgement, StopRule

__all__ = [
    "FittedModel",
    "ModelIOError",
    "fit",
    "fit_compiled",
    "load_fitted",
    "read_idata",
    "warm_start_point",
]

_log = logging.getLogger(__name__)

PARAMS = ("alpha", "beta", "u", "partner_effect", "rho", "gamma")
#: identified quantities checked by the gate (the signs of ``w_*`` and their ``z_*`` are
#: not identified by design, see :class:`HazardModel`; ``sigma_*`` and the effects are)
GATE_VARS = [
    "mu_alpha", "alpha", "mu_beta", "sigma_beta", "beta", "sigma_partner",
    "partner_effect", "sigma_shared", "v", "sigma_q", "u", "rho", "gamma",
]  # fmt: skip


class ModelIOError(ValueError):
    """A saved fit does not match the model version or data it is loaded against."""


def model_id(data_hash: str, config: Config, seed: int) -> str:
    """Short id of a fit: hash of data, configuration and seed."""
    text = f"{data_hash}|{config.config_hash()}|{seed}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class FittedModel:
    """A fitted hazard model: posterior, diagnostics and everything needed to forecast."""

    case_set: CaseSet
    config: Config
    data: ModelData
    idata: az.InferenceData
    gate: GateResult
    seed: int
    sampler: str
    fit_seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def model_version(self) -> str:
        """Version of the model definition (``model.toml``)."""
        return self.config.model.model_version

    @property
    def data_hash(self) -> str:
        """SHA-256 of the case set the model was fitted on."""
        return self.case_set.data_hash()

    @property
    def id(self) -> str:
        """Model id: hash of data, configuration and seed."""
        return model_id(self.data_hash, self.config, self.seed)

    @property
    def attempts(self) -> list[dict]:
        """Sampling attempts of the fit: target_accept, divergences, seconds (kept last).

        See :func:`fit_compiled`; empty for fits made before attempts were recorded.
        """
        return json.loads(self.idata.attrs.get("attempts", "[]"))

    def questions_at(self, case_id: str, as_of=None) -> list:
        """The case's questions as known on ``as_of`` (default: its window end).

        The case's :class:`~neutrality_forecast.model.known.CaseHistory` is built on the
        first call and kept, so later dates (the report's replays) cost array cuts only.
        """
        import pandas as pd

        from neutrality_forecast.model.known import CaseHistory

        end = pd.Timestamp(self.case_set.case(case_id)["window_end"])
        if as_of is None or pd.Timestamp(as_of) >= end:
            return self.data.questions_of(case_id)
        histories = self.extra.setdefault("_histories", {})
        key = (case_id, id(self.case_set), id(self.config), id(self.data))  # if reassigned
        if key not in histories:
            histories[key] = CaseHistory(self.case_set, case_id, self.config, self.data)
        return histories[key].at(pd.Timestamp(as_of))

    def draws(self) -> dict[str, np.ndarray]:
        """Posterior draws of the forecast parameters, chains stacked first.

        See :func:`posterior_draws`.
        """
        if "_draws" not in self.extra:
            self.extra["_draws"] = posterior_draws(self.idata.posterior, self.data)
        return self.extra["_draws"]

    def save(self, path: str | Path) -> Path:
        """Write the InferenceData with provenance attributes to NetCDF."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        idata = self.idata.copy()
        idata.attrs.update(
            {
                "model_id": self.id,
                "model_version": self.model_version,
                "package_version": __version__,
                "data_hash": self.data_hash,
                "config_json": self.config.to_json(),
                "seed": int(self.seed),
                "sampler": self.sampler,
                "gate_passed": int(self.gate.passed),
                "gate_json": json.dumps(self.gate.to_dict()),
            }
        )
        idata.to_netcdf(str(path), engine="h5netcdf")
        return path


def posterior_draws(post, data: ModelData) -> dict[str, np.ndarray]:
    """Forecast parameters of every draw (chains stacked first), keyed by family index.

    Returns ``alpha (S, K)``, ``beta (S, K, F)``, ``u (S, Q)``, ``partner (S, K, P)``
    (zero for one-time families), ``rho (S, K)`` and ``gamma (S, K)`` (zero where the
    family has no such term), ``sigma_q (S, K)`` and ``sigma_shared (S,)`` (to draw the
    effects of a question the fit has not seen).
    """

    def flat(name: str) -> np.ndarray:
        return post[name].stack(sample=("chain", "draw")).transpose("sample", ...).values

    out = {name: flat(name) for name in ("alpha", "beta", "u", "sigma_q")}
    n, k_n = out["alpha"].shape
    out["sigma_shared"] = flat("sigma_shared") if "sigma_shared" in post else np.zeros(n)
    out["partner"] = np.zeros((n, k_n, len(data.partners)))
    out["rho"] = np.zeros((n, k_n))
    out["gamma"] = np.zeros((n, k_n))
    rec = data.recurrent_outcomes
    if "partner_effect" in post:
        pe = flat("partner_effect")
        for i, name in enumerate(rec):
            out["partner"][:, data.outcomes.index(name)] = pe[:, i]
    if "rho" in post:
        r = flat("rho")
        for i, name in enumerate(rec):
            out["rho"][:, data.outcomes.index(name)] = r[:, i]
    if "gamma" in post:
        g = flat("gamma")
        for i, name in enumerate(data.link_outcomes):
            out["gamma"][:, data.outcomes.index(name)] = g[:, i]
    return out


def fit(
    case_set: CaseSet,
    config: Config,
    *,
    sampler: str | None = None,
    draws: int | None = None,
    tune: int | None = None,
    chains: int | None = None,
    seed: int | None = None,
    progressbar: bool = True,
    initvals: dict | None = None,
) -> FittedModel:
    """Fit the hazard model on every case of ``case_set`` and run the diagnostics gate.

    Options left as ``None`` come from ``config.model.sampling``. ``initvals`` warm-starts
    the chains (see :func:`warm_start_point`). The result always carries its
    :class:`GateResult`; callers must not publish a fit whose ``gate.passed`` is False.
    """
    data = build_model_data(case_set, config)
    start = time.perf_counter()
    compiled = CompiledModel(
        HazardModel(data, config).build_model(), sampler=sampler or config.model.sampling.sampler
    )
    return fit_compiled(
        compiled,
        case_set,
        config,
        data,
        draws=draws,
        tune=tune,
        chains=chains,
        seed=seed,
        progressbar=progressbar,
        started=start,
        initvals=initvals,
    )


def stop_rule(config: Config) -> StopRule | None:
    """When a fit may stop before its configured draws (``[sampling] ess_target``).

    The check is a :class:`GateCheck`; ``None`` when ``ess_target`` is 0.
    """
    s = config.model.sampling
    if s.ess_target <= 0:
        return None
    return StopRule(
        check=GateCheck(config),
        every=s.check_every,
        max_divergences=config.model.diagnostics.max_divergences,
    )


class GateCheck:
    """The diagnostics gate with bulk and tail ESS raised to ``[sampling] ess_target``.

    At each checkpoint the first draws of every chain go through
    :func:`~neutrality_forecast.diagnostics.check_gate` (the gate's quantities) with the
    raised thresholds: "enough" when that passes, "failed" as soon as the kept draws hold
    more divergences than the gate allows (the step-size retry can start at once),
    otherwise "more" with the draws the ESS extrapolates to (ESS grows about in proportion
    to the draws; the sampler skips the checkpoints before). A subset's min ESS is >= the
    full set's and its max R-hat <=, so while the quantities that were worst at the last
    full check still fail, the verdict is "more" without the full check (same verdict,
    ~20x cheaper). :attr:`last` keeps the last full check, which the fit's gate re-uses
    when it was made on the kept draws (:func:`~neutrality_forecast.diagnostics.judge`).
    """

    def __init__(self, config: Config) -> None:
        s, self.gate = config.model.sampling, config.model.diagnostics
        self.raised = self.gate.model_copy(
            update={"ess_bulk_min": max(self.gate.ess_bulk_min, s.ess_target),
                    "ess_tail_min": max(self.gate.ess_tail_min, s.ess_target)}
        )  # fmt: skip
        self.watch: list[str] = []
        self.last: GateResult | None = None

    def _more(self, result: GateResult, n: int) -> Judgement:
        ratio = min(result.ess_bulk_min / self.raised.ess_bulk_min,
                    result.ess_tail_min / self.raised.ess_tail_min)  # fmt: skip
        return ("more", n / ratio) if 0 < ratio < 1 else "more"

    def __call__(self, idata) -> Judgement:
        stats = idata.sample_stats
        if "diverging" in stats and int(stats["diverging"].sum()) > self.gate.max_divergences:
            return "failed"
        n = idata.posterior.sizes["draw"]
        if self.watch:
            quick = check_gate(idata, thresholds=self.raised, var_names=self.watch)
            if not quick.passed:
                return self._more(quick, n)
        self.last = check_gate(idata, thresholds=self.raised, var_names=gate_vars_of(idata))
        self.watch = sorted(set(self.last.worst.values()))
        return "enough" if self.last.passed else self._more(self.last, n)


def gate_vars_of(idata) -> list[str]:
    """The gate's quantities (:data:`GATE_VARS`) present in ``idata``'s posterior."""
    return [v for v in GATE_VARS if v in idata.posterior]


def fit_compiled(
    compiled: CompiledModel,
    case_set: CaseSet,
    config: Config,
    data: ModelData,
    *,
    inputs: dict | None = None,
    draws: int | None = None,
    tune: int | None = None,
    chains: int | None = None,
    seed: int | None = None,
    progressbar: bool = True,
    started: float | None = None,
    initvals: dict | None = None,
) -> FittedModel:
    """Sample an already compiled model (optionally with swapped ``inputs``) and gate it.

    ``inputs`` are the model's data containers (see :meth:`ModelData.model_inputs`);
    ``None`` uses ``data`` as compiled.

    Step size: the first attempt uses ``target_accept`` of ``config.model.sampling``. If
    it has more divergences than the gate allows (``[diagnostics] max_divergences``), the
    fit is re-run with the same seed at each ``retry_target_accept`` in turn (smaller
    steps), and the first attempt within the limit is kept. Every attempt (target,
    divergences, seconds) is recorded in ``idata.attrs["attempts"]`` and in the run's
    ``diagnostics.json``; the gate judges the kept attempt on every check as usual.
    """
    s = config.model.sampling
    seed = s.seed if seed is None else seed
    start = time.perf_counter() if started is None else started
    targets = [s.target_accept, *s.retry_target_accept]
    attempts = []
    for i, target in enumerate(targets):
        t0 = time.perf_counter()
        stop = stop_rule(config) if draws is None and compiled.sampler == "nutpie" else None
        idata = compiled.sample(
            inputs,
            draws=draws or s.draws,
            tune=s.tune if tune is None else tune,
            chains=chains or s.chains,
            seed=seed,
            target_accept=target,
            progressbar=progressbar,
            initvals=initvals,
            stop=stop,
        )
        stats = idata.sample_stats
        divergences = int(stats["diverging"].sum()) if "diverging" in stats else 0
        attempts.append(
            {"target_accept": target, "divergences": divergences,
             "draws": int(idata.posterior.sizes["draw"]),
             "seconds": round(time.perf_counter() - t0, 2)}
        )  # fmt: skip
        if divergences <= config.model.diagnostics.max_divergences or i == len(targets) - 1:
            break
        _log.warning(
            "%d divergences at target_accept %.3g: sampling again at %.3g (same seed)",
            divergences, target, targets[i + 1],
        )  # fmt: skip
    idata.attrs["attempts"] = json.dumps(attempts)
    seconds = time.perf_counter() - start
    last = stop.check.last if stop is not None else None
    if last is not None and last.n_draws == idata.posterior.sizes["draw"] and last.passed:
        # the stop rule's check of exactly these draws: same statistics, the gate's thresholds
        gate = judge(last, config.model.diagnostics)
    else:
        gate = check_gate(idata, thresholds=config.model.diagnostics, var_names=gate_vars_of(idata))
    return FittedModel(
        case_set=case_set,
        config=config,
        data=data,
        idata=idata,
        gate=gate,
        seed=seed,
        sampler=idata.attrs.get("sampler", compiled.sampler),
        fit_seconds=seconds,
    )


FREE_VARS = (
    "mu_alpha", "alpha", "mu_beta", "w_beta", "z_beta", "w_partner", "z_partner",
    "w_shared", "z_shared", "w_q", "z_q", "rho", "gamma",
)  # fmt: skip
#: signed scale factor -> the effects it multiplies (mirror pairs (w, z) ~ (-w, -z))
_SIGNED = {"w_beta": "z_beta", "w_partner": "z_partner", "w_shared": "z_shared"}


def _sign_aligned(post) -> dict:
    """Draws with every signed scale factor made positive (and its effects flipped with it)."""
    out = {name: post[name] for name in FREE_VARS if name in post}
    for w, z in _SIGNED.items():
        if w in out and z in out:
            sign = np.sign(out[w]).where(out[w] != 0, 1.0)
            out[w], out[z] = abs(out[w]), out[z] * sign
    if "w_q" in out and "z_q" in out:  # one factor per family, effects per question
        fam = [str(lbl).split("|")[1] for lbl in post["question"].values]
        sign = np.sign(out["w_q"]).where(out["w_q"] != 0, 1.0)
        per_q = sign.sel(outcome=fam).rename(outcome="question")
        per_q = per_q.assign_coords(question=post["question"].values)
        out["w_q"], out["z_q"] = abs(out["w_q"]), out["z_q"] * per_q
    return out


def warm_start_point(path: str | Path, case_set: CaseSet) -> dict[str, np.ndarray] | None:
    """Posterior means of the free parameters of a saved fit, as a warm start.

    Returns ``None`` when the file cannot be read or its case list differs from
    ``case_set``'s (parameter shapes would not match). Only the posterior group is read.
    """
    import xarray as xr

    try:
        post = xr.open_dataset(str(path), group="posterior", engine=_read_engine())
    except (OSError, ValueError):
        return None
    with post:
        if "case" in post.coords and list(post["case"].values) != case_set.case_ids:
            return None
        if "question" not in post.coords:
            return None
        # mirror draws (-w, -z) are the same model point: align signs before averaging
        return {
            name: draws.mean(("chain", "draw")).values
            for name, draws in _sign_aligned(post).items()
        }


def _read_engine() -> str:
    # netCDF4 opens the posterior's many variables 2-3x faster than h5netcdf (measured,
    # docs/performance.md); files are written with h5netcdf and readable by both
    return "netcdf4" if importlib.util.find_spec("netCDF4") else "h5netcdf"


def read_idata(path: str | Path, groups: tuple[str, ...] | None = None) -> az.InferenceData:
    """Read a saved InferenceData; with ``groups``, only those groups (and the attributes).

    Reading only ``posterior`` and ``sample_stats`` skips warm-up draws and other groups,
    which is most of the file for some samplers (the instant update needs no more).
    """
    engine = _read_engine()
    if groups is None:
        return az.from_netcdf(str(path), engine=engine)
    import h5py
    import xarray as xr

    with h5py.File(str(path), mode="r") as handle:
        present = [k for k in handle if isinstance(handle[k], h5py.Group)]
    data = {g: xr.load_dataset(str(path), group=g, engine=engine) for g in groups if g in present}
    with xr.open_dataset(str(path), engine=engine) as root:
        attrs = dict(root.attrs)
    return az.InferenceData(attrs=attrs, **data)


def load_fitted(
    path: str | Path,
    case_set: CaseSet,
    config: Config | None = None,
    *,
    recheck: bool = False,
    groups: tuple[str, ...] | None = None,
) -> FittedModel:
    """Load a fit saved by :meth:`FittedModel.save`, refusing mismatches.

    The diagnostics stored with the fit are reused; ``recheck=True`` recomputes them.
    ``groups`` reads only those InferenceData groups (see :func:`read_idata`).

    Raises
    ------
    ModelIOError
        When the file's model version differs from ``config``'s (or the stored config's),
        or its data hash differs from ``case_set.data_hash()``.

    """
    idata = read_idata(path, groups)
    attrs = idata.attrs
    for key in ("model_version", "data_hash", "config_json"):
        if key not in attrs:
            raise ModelIOError(f"{path}: not a neutrality-forecast fit (no {key!r} attribute)")
    stored = Config.from_json(attrs["config_json"])
    config = config or stored
    if attrs["model_version"] != config.model.model_version:
        raise ModelIOError(
            f"{path}: model version {attrs['model_version']!r} does not match "
            f"{config.model.model_version!r}; refit the model"
        )
    if attrs["data_hash"] != case_set.data_hash():
        raise ModelIOError(
            f"{path}: fitted on data {attrs['data_hash'][:12]}..., but this case set is "
            f"{case_set.data_hash()[:12]}...; refit on the new data"
        )
    data = build_model_data(case_set, config)
    if "gate_json" in attrs and not recheck:
        gate = GateResult(**json.loads(attrs["gate_json"]))
    else:
        gate = check_gate(idata, thresholds=config.model.diagnostics, var_names=gate_vars_of(idata))
    return FittedModel(
        case_set=case_set,
        config=config,
        data=data,
        idata=idata,
        gate=gate,
        seed=int(attrs.get("seed", 0)),
        sampler=str(attrs.get("sampler", "unknown")),
    )
