"""Typed configuration read from ``models/evidence.toml`` and ``models/model.toml``.

Configuration is data: it is validated with pydantic (a bad file gives a message naming the
file and the key), serialised into every run's provenance as JSON, and hashed so that a
changed configuration triggers a re-forecast.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from neutrality_forecast.casesets import schema as S
from neutrality_forecast.paths import default_config_dir

__all__ = ["Config", "ConfigError", "load_config"]


class ConfigError(ValueError):
    """A configuration file is missing or invalid."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Timing(_Strict):
    lag_months: int = Field(default=1, ge=1, le=12)


class Intensity(_Strict):
    mode: Literal["causal", "none"] = "causal"
    reference_rate: float = Field(default=0.15, gt=0)
    prior_months: float = Field(default=12.0, ge=0)
    min_factor: float = Field(default=0.1, gt=0)
    max_factor: float = Field(default=4.0, gt=0)


class Composite(_Strict):
    name: str
    description: str = ""
    weights: dict[str, float]


class Features(_Strict):
    blocks: list[Literal["categories", "composites", "steps", "surge", "static"]] = ["categories"]
    half_lives: list[float] = Field(default=[12.0], min_length=1)
    step_half_life_months: float = Field(default=3.0, gt=0)
    surge_months: int = Field(default=6, gt=0)
    composites: list[Composite] = []
    #: static covariates of the case set's optional covariates.csv (block "static")
    static: list[str] = []

    @model_validator(mode="after")
    def _positive(self) -> Features:
        if any(h <= 0 for h in self.half_lives):
            raise ValueError("half_lives must be positive")
        if "composites" in self.blocks and not self.composites:
            raise ValueError("block 'composites' needs [[features.composites]] entries")
        return self


class Admiralty(_Strict):
    reliability: dict[str, float]
    credibility: dict[str, float]

    @model_validator(mode="after")
    def _complete(self) -> Admiralty:
        if set(self.reliability) != set(S.SOURCE_RELIABILITY):
            raise ValueError(f"reliability needs exactly the letters {S.SOURCE_RELIABILITY}")
        if set(self.credibility) != set(S.INFO_CREDIBILITY):
            raise ValueError(f"credibility needs exactly the digits {S.INFO_CREDIBILITY}")
        if any(not 0 <= w <= 1 for w in [*self.reliability.values(), *self.credibility.values()]):
            raise ValueError("Admiralty weights must lie in [0, 1]")
        return self


class Roles(_Strict):
    order: list[str]
    great_powers: list[str]
    proxies: dict[str, str] = {}
    west: list[str] = []
    bloc_leaders: list[str] = ["USA"]
    threats: list[str] = []
    partnerless_partner: list[str] = []


class Category(_Strict):
    name: str
    description: str = ""
    roles: list[str] = []
    quads: list[str] = []
    event_types: list[str] = []
    contexts: list[str] = []
    exclude_contexts: list[str] = []
    actor_is_case: bool = False
    #: the case's own acts do not count (direction: threats *against* the state)
    actor_not_case: bool = False

    @model_validator(mode="after")
    def _known(self) -> Category:
        bad = [t for t in self.event_types if t not in S.EVENT_TYPES]
        bad += [c for c in [*self.contexts, *self.exclude_contexts] if c not in S.CONTEXTS]
        if bad:
            raise ValueError(f"category {self.name!r}: unknown event types/contexts {bad}")
        return self


class EvidenceConfig(_Strict):
    schema_version: int = 2
    timing: Timing = Timing()
    intensity: Intensity = Intensity()
    features: Features = Features()
    admiralty: Admiralty
    quads: dict[str, list[str]]
    roles: Roles
    categories: list[Category] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> EvidenceConfig:
        names = [c.name for c in self.categories]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate category names: {names}")
        for cat in self.categories:
            unknown = [q for q in cat.quads if q not in self.quads]
            unknown += [r for r in cat.roles if r not in self.roles.order]
            if unknown:
                raise ValueError(f"category {cat.name!r}: unknown quads/roles {unknown}")
        for comp in self.features.composites:
            bad = [k for k in comp.weights if k not in names]
            if bad:
                raise ValueError(f"composite {comp.name!r}: unknown categories {bad}")
        return self

    @property
    def category_names(self) -> list[str]:
        return [c.name for c in self.categories]

    @property
    def feature_names(self) -> list[str]:
        """Names of the model's covariates (:func:`~neutrality_forecast.evidence.features`)."""
        from neutrality_forecast.evidence.features import feature_names

        return feature_names(self)


class Priors(_Strict):
    alpha_mu_loc: float
    alpha_mu_scale: float = Field(gt=0)
    alpha_sigma_scale: float = Field(gt=0)
    beta_mu_scale: float = Field(gt=0)
    beta_sigma_scale: float = Field(gt=0)
    case_sigma_scale: float = Field(gt=0)
    partner_sigma_scale: float = Field(default=1.0, gt=0)
    recurrence_scale: float = Field(default=1.0, gt=0)
    #: prior means of the pooled feature effects mu_beta (sign-informed priors), by name
    feature_loc: dict[str, float] = {}
    link_outcomes: list[Literal["foreign_basing", "security_accord"]] = []
    link_loc: dict[str, float] = {}
    link_scale: dict[str, float] = {}


class ForecastSettings(_Strict):
    horizons: list[int] = Field(default=[3, 6, 12, 24], min_length=1)
    future_evidence: Literal["simulate", "none"] = "simulate"
    recent_months: int = Field(default=24, gt=0)
    #: questions of the joint and conditional tables, as ``outcome`` or ``outcome:PARTNER``
    headline: list[str] = ["neutrality_revision", "security_accord:RUS", "foreign_basing:CHN"]


class SamplingSettings(_Strict):
    draws: int = Field(default=1000, gt=0)
    tune: int = Field(default=1000, ge=0)
    chains: int = Field(default=4, gt=0)
    seed: int = 20160609
    target_accept: float = Field(default=0.9, gt=0, lt=1)
    #: targets tried in turn, same seed, while a fit has more divergences than the gate allows
    retry_target_accept: list[float] = [0.95, 0.99]
    sampler: Literal["auto", "nutpie", "pymc", "numpyro"] = "auto"
    #: stop before ``draws`` at the first checkpoint (every ``check_every`` draws per
    #: chain) where the gate passes with bulk and tail ESS >= this (0: always ``draws``);
    #: nutpie only, and only when ``draws`` comes from the configuration
    #: (:mod:`neutrality_forecast.stopping`)
    ess_target: float = Field(default=0.0, ge=0)
    check_every: int = Field(default=250, gt=0)

    @model_validator(mode="after")
    def _retries_increase(self) -> SamplingSettings:
        targets = [self.target_accept, *self.retry_target_accept]
        if any(not 0 < b < 1 or b <= a for a, b in zip(targets[:-1], targets[1:], strict=True)):
            raise ValueError(
                "retry_target_accept must be increasing, above target_accept and below 1, "
                f"got target_accept={self.target_accept}, "
                f"retry_target_accept={self.retry_target_accept}"
            )
        return self


class GateSettings(_Strict):
    rhat_max: float = 1.01
    ess_bulk_min: float = 400
    ess_tail_min: float = 400
    max_divergences: int = 0
    bfmi_min: float = 0.3
    max_treedepth_share: float = 0.0


class LikelihoodSettings(_Strict):
    #: width of the covariate bins that pool months *without* an occurrence into one
    #: binomial row at their exposure-weighted mean covariates (0: pool identical covariates
    #: only, exact); see :func:`neutrality_forecast.model.data.collapse_rows`
    bin_width: float = Field(default=0.0, ge=0)


class ModelConfig(_Strict):
    schema_version: int = 1
    model_version: str
    priors: Priors
    forecast: ForecastSettings = ForecastSettings()
    sampling: SamplingSettings = SamplingSettings()
    likelihood: LikelihoodSettings = LikelihoodSettings()
    diagnostics: GateSettings = GateSettings()


class Config(_Strict):
    """The whole configuration: evidence mapping plus model, forecast, sampling, gate."""

    evidence: EvidenceConfig
    model: ModelConfig

    def to_json(self) -> str:
        """Canonical JSON (sorted keys): stored in provenance and hashed."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True)

    def config_hash(self) -> str:
        """SHA-256 of :meth:`to_json`."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    @classmethod
    def from_json(cls, text: str) -> Config:
        """Inverse of :meth:`to_json`."""
        return cls.model_validate_json(text)

    def with_updates(self, **sections: dict) -> Config:
        """A copy with some settings replaced, e.g. ``sampling={"draws": 200}``."""
        data = self.model_dump()
        for key, values in sections.items():
            target = data["model"] if key in data["model"] else data["evidence"]
            target[key] = {**target[key], **values} if isinstance(values, dict) else values
        return Config.model_validate(data)


def _read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: configuration file not found") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc


def load_config(
    config_dir: str | Path | None = None, *, model_file: str | Path | None = None
) -> Config:
    """Read ``evidence.toml`` and ``model.toml``.

    Parameters
    ----------
    config_dir : str or Path, optional
        Folder with both files; defaults to the shipped ``models/``.
    model_file : str or Path, optional
        A ``model.toml`` to use instead of the one in ``config_dir``; ``evidence.toml``
        is then read from the same folder as ``model_file`` when present there.

    """
    folder = Path(config_dir) if config_dir is not None else default_config_dir()
    mpath = Path(model_file) if model_file is not None else folder / "model.toml"
    epath = mpath.parent / "evidence.toml"
    if model_file is None or not epath.is_file():
        epath = folder / "evidence.toml"
    parts = {}
    for key, path, cls in (("evidence", epath, EvidenceConfig), ("model", mpath, ModelConfig)):
        try:
            parts[key] = cls.model_validate(_read_toml(path))
        except ValidationError as exc:
            lines = [
                f"{path}: {'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
                for err in exc.errors()
            ]
            raise ConfigError("\n".join(lines)) from exc
    return Config(**parts)
