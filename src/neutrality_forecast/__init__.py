"""neutrality-forecast: Bayesian forecasts of neutrality revision, security accords and basing.

Typical use::

    import neutrality_forecast as nf

    cases = nf.load_case_set(nf.default_cases_dir())
    fitted = nf.fit(cases, nf.load_config())
    fc = nf.make_forecast(fitted, "TKM")
    fc.table
"""

import os as _os
import sys as _sys
from importlib.metadata import PackageNotFoundError, version

# JAX then passes closed-over arrays (the model's data) to compiled programs as arguments
# instead of embedding them, so its persistent compilation cache serves every data set of
# the same shapes: new events and backtest folds reuse the compiled sampler
# (docs/performance.md). JAX reads this once, when it is first imported: import this
# package before JAX, or set the variable yourself.
if "jax" not in _sys.modules:
    _os.environ.setdefault("JAX_USE_SIMPLIFIED_JAXPR_CONSTANTS", "true")

try:
    __version__ = version("neutrality-forecast")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+src"

from neutrality_forecast.casesets import CaseSet, CaseSetError, Violation, load_case_set  # noqa: E402
from neutrality_forecast.config import Config, ConfigError, load_config  # noqa: E402
from neutrality_forecast.diagnostics import GateResult, check_gate  # noqa: E402
from neutrality_forecast.forecast import Forecast, make_forecast  # noqa: E402
from neutrality_forecast.model import (  # noqa: E402
    FittedModel,
    HazardModel,
    ModelIOError,
    build_model_data,
    fit,
    load_fitted,
)
from neutrality_forecast.paths import default_cases_dir, default_config_dir  # noqa: E402
from neutrality_forecast.scenario import WhatIfResult, what_if  # noqa: E402

__all__ = [
    "CaseSet",
    "CaseSetError",
    "Config",
    "ConfigError",
    "FittedModel",
    "Forecast",
    "GateResult",
    "HazardModel",
    "ModelIOError",
    "Violation",
    "WhatIfResult",
    "__version__",
    "build_model_data",
    "check_gate",
    "default_cases_dir",
    "default_config_dir",
    "fit",
    "load_case_set",
    "load_config",
    "load_fitted",
    "make_forecast",
    "what_if",
]
