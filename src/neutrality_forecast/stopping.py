"""Stop drawing once the draws are enough: ESS-based stopping at fixed checkpoints.

A fit's configured ``draws`` were chosen for the hardest data the project had seen
(``models/model.toml``): on easier data they give several times the effective sample size
the diagnostics gate asks for, and an attempt with a divergence keeps sampling to the end
only to be discarded by the step-size retry. :func:`sample_until` runs nutpie in the
background and looks at the chains at fixed checkpoints, every ``every`` draws per chain
(``every``, ``2 every``, ...; a check may skip the checkpoints before the draws it expects
to need). At checkpoint ``n``, once *every* chain has ``n`` draws, the first ``n`` draws of
each chain are judged by :attr:`StopRule.check`:

* ``"enough"``: sampling stops and exactly these ``n`` draws per chain are kept;
* ``"failed"``: sampling stops as well (a check that more draws cannot repair failed,
  e.g. a divergence among the kept draws: the retry at a smaller step size starts sooner);
* ``"more"``: go on to the next checkpoint; after the last one all ``draws`` are kept.

With :attr:`StopRule.max_divergences` set, divergences are also looked for at every look at
the chains: the run ends ("failed") at the first checkpoint whose draws hold too many, once
every chain has reached it, even where the check skipped that checkpoint.

Why this is reproducible: nutpie's chains are seeded independently and their draws do not
depend on how many draws were requested or on thread timing, so the first ``n`` draws of
a run are the draws a run with ``draws=n`` gives (``tests/test_stopping.py``). Draws a
faster chain made beyond ``n`` are discarded; the decision uses only the first ``n`` draws
of each chain, so the same data, configuration and seed always stop at the same
checkpoint with the same draws. This is a fixed-width stopping rule in the sense of Vats,
Flegal & Jones (2019, *Biometrika* 106: 321-337): sampling stops when the Monte Carlo
error (through the ESS) is small enough, with a minimum of ``every`` draws per chain.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import arviz as az
import numpy as np

__all__ = ["Judgement", "StopRule", "Verdict", "first_draws", "sample_until"]

Verdict = Literal["enough", "failed", "more"]
#: a verdict, or ``("more", needed)`` with the draws per chain the check expects to need
Judgement = Verdict | tuple[Literal["more"], float]

#: bounds of the pause between two looks at the running chains, seconds: each look
#: copies the trace so far (about 0.7 s for 4 x 1,000 draws of the shipped model)
POLL_SECONDS = (0.25, 10.0)


@dataclass(frozen=True, kw_only=True)
class StopRule:
    """When to stop drawing before the configured ``draws``.

    Parameters
    ----------
    check : callable
        Takes the :class:`~arviz.InferenceData` of the first ``n`` draws of every chain
        (posterior with deterministics, sample stats) and returns a :data:`Verdict`, or
        ``("more", needed)`` to skip the checkpoints before about ``needed`` draws per
        chain (:func:`_next_checkpoint`).
    every : int
        Checkpoint spacing in draws per chain (also the fewest draws ever kept).
    max_divergences : int, optional
        If set, the run also ends ("failed") at the first checkpoint whose draws hold more
        divergences than this, as soon as every chain has reached it, even where
        ``check`` skipped that checkpoint (the attempt is lost anyway; the retry starts
        sooner). Divergences are looked for at every look at the chains.

    """

    check: Callable[[az.InferenceData], Judgement]
    every: int = 250
    max_divergences: int | None = None

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError(f"every must be >= 1, got {self.every}")


def first_draws(idata: az.InferenceData, n: int) -> az.InferenceData:
    """The first ``n`` post-warmup draws of every chain (warmup groups unchanged)."""
    groups = [g for g in ("posterior", "sample_stats") if g in idata.groups()]
    return idata.isel(draw=slice(0, n), groups=groups, inplace=False)


def _progress(trace: az.InferenceData, tune: int) -> tuple[int, int]:
    """(post-warmup draws, total iterations) of the slowest chain in a partial trace."""

    def done(group: str) -> np.ndarray:
        if group not in trace.groups() or trace[group].sizes.get("draw", 0) == 0:
            return np.zeros(1, dtype=int)
        first = next(iter(trace[group].data_vars.values()))
        finite = np.isfinite(first.values.reshape(first.shape[0], first.shape[1], -1)[..., 0])
        return finite.sum(axis=1)

    draws = int(done("posterior").min())
    warm = int(done("warmup_posterior").min()) if draws == 0 else tune
    return draws, warm + draws


def _finished(sampler) -> bool:
    try:
        return bool(sampler.is_finished)
    except TimeoutError:  # nutpie 0.16 raises this while the chains still run
        return False


def sample_until(
    start: Callable[[], object],
    *,
    stop: StopRule,
    draws: int,
    tune: int,
    expand: Callable[[az.InferenceData], az.InferenceData] = lambda x: x,
) -> az.InferenceData:
    """Run a background nutpie sampler and stop it by ``stop`` (module docstring).

    Parameters
    ----------
    start : callable
        Starts the sampler: returns nutpie's background sampler (``blocking=False``).
    stop : StopRule
        Checkpoint spacing and the verdict at each checkpoint.
    draws, tune : int
        Draws and warmup iterations per chain the sampler was started with.
    expand : callable
        Adds the deterministics to a trace before it is judged or returned.

    Returns
    -------
    InferenceData
        The kept draws (all ``draws`` if no checkpoint stopped the run).

    """
    sampler = start()
    done = None  # the whole trace, once the sampler has finished
    seen = [(time.perf_counter(), 0)]  # (time, iterations of the slowest chain)
    n = stop.every
    while True:
        n = min(n, draws)  # the last "checkpoint" is the end of the run: no check there
        while done is None:
            if _finished(sampler):
                done = sampler.wait()  # the checkpoints left are judged on it alike
                break
            with warnings.catch_warnings():  # ArviZ on chains still in warmup (0 draws)
                warnings.simplefilter("ignore", UserWarning)
                trace = sampler.inspect()
            have, iterations = _progress(trace, tune)
            m = _diverged_at(trace, have, stop)
            if m is not None and m < n:
                sampler.cancel()
                return expand(first_draws(trace, m))
            if have >= n:
                break
            seen.append((time.perf_counter(), iterations))
            time.sleep(_pause(seen, tune + n))
        if done is not None:  # the same rule on a finished run
            m = _diverged_at(done, draws, stop)
            if m is not None and m < n:
                return expand(first_draws(done, m))
        if n >= draws:
            return expand(done if done is not None else sampler.wait())
        kept = expand(first_draws(done if done is not None else trace, n))
        verdict = stop.check(kept)
        needed = None
        if isinstance(verdict, tuple):
            verdict, needed = verdict
        if verdict != "more":
            if done is None:
                sampler.cancel()
            return kept
        n = _next_checkpoint(n, needed, stop.every)


def _diverged_at(trace: az.InferenceData, have: int, stop: StopRule) -> int | None:
    """The first checkpoint whose draws hold more than ``stop.max_divergences``, if reached.

    Only the first ``have`` draws of every chain (all chains have them) are looked at, so
    the answer depends on the draws alone, not on when the chains were looked at.
    """
    if stop.max_divergences is None or have <= 0 or "diverging" not in trace.sample_stats:
        return None
    div = np.nan_to_num(trace.sample_stats["diverging"].values[:, :have].astype(float))
    over = np.nonzero(np.cumsum(div.sum(axis=0)) > stop.max_divergences)[0]
    if not over.size:
        return None
    m = (int(over[0]) // stop.every + 1) * stop.every
    return m if m <= have else None


def _next_checkpoint(n: int, needed: float | None, every: int) -> int:
    """The next checkpoint: ``n + every``, or later where the check expects enough draws.

    ``needed`` (draws per chain the check extrapolates it needs, e.g. from ESS growing in
    proportion to the draws) skips checkpoints that would almost surely say "more"; 0.9
    of it, on the grid of checkpoints, so that noise in the extrapolation costs one more
    check rather than surplus draws.
    """
    if needed is None or not np.isfinite(needed):
        return n + every
    return max(n + every, int(np.ceil(0.9 * needed / every)) * every)


def _pause(seen: list[tuple[float, int]], target: int) -> float:
    """Seconds until the slowest chain should reach ``target`` iterations.

    From the pace between the last two looks (warm-up iterations are slower than draws:
    the whole-run average would overestimate the wait), clipped to :data:`POLL_SECONDS`.
    """
    (t0, i0), (t1, i1) = seen[-2], seen[-1]
    if i1 <= i0:  # no progress seen yet (starting up): look again soon
        return 4 * POLL_SECONDS[0]
    rate = (i1 - i0) / max(t1 - t0, 1e-3)
    return float(np.clip((target - i1) / rate, *POLL_SECONDS))
