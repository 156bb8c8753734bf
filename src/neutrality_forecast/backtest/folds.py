r"""Leave-cluster-out posteriors at a forecast origin, by importance sampling or refit.

The backtest evaluates the *deployed* procedure: at origin :math:`d` a case is forecast
from a posterior that knows every other cluster and its own cluster's history up to
:math:`d` (as the Turkmenistan forecast knows Turkmenistan's history). The target is

.. math::

    p(\theta, u_c \mid y_{-c},\, y_c^{<d}) \;\propto\;
    p(\theta \mid y_{-c})\; p(u_c \mid \theta)\; p(y_c^{<d} \mid u_c, \theta)

with :math:`\theta` the population parameters, :math:`u_c` the effects of the left-out
cluster's questions (and its cases' shared effects) and :math:`y_c^{<d}` the cluster's
rows as known on :math:`d` (later occurrences removed, the origin month's exposure cut at
:math:`d`).

**Importance sampling** from the full-population posterior (one MCMC fit for all folds):
for each posterior draw :math:`\theta_s`, ``n_effects`` fresh effects
:math:`u_{sm} \sim p(u_c \mid \theta_s)` are drawn and weighted by

.. math::

    w_{sm} = \frac{p(y_c^{<d} \mid u_{sm}, \theta_s)}{\hat p(y_c \mid \theta_s)}, \qquad
    \hat p(y_c \mid \theta_s) = \frac1M \sum_m p(y_c \mid u_{sm}, \theta_s),

the denominator removing the cluster's information from :math:`\theta` (integrated
importance sampling: the cluster's effects are integrated out, so the weights do not
collapse onto the full posterior's narrow :math:`u_c`), the numerator adding its history
before the origin back. The log weights are Pareto-smoothed (:func:`arviz.psislw`); the
fold is accepted when :math:`\hat k \le 0.7` and the weights' effective sample size is at
least ``min_ess``; then ``n_out`` equally weighted draws are taken by systematic
resampling. Otherwise the fold is **refitted**: MCMC on the case set with the cluster cut at
:math:`d`, sampled by the same compiled model (same shapes, so no recompilation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import logsumexp

from neutrality_forecast.backtest.kernels import Effects, loglik_by_bin
from neutrality_forecast.model.data import ModelData, Question, question_rows
from neutrality_forecast.model.likelihood import linear_predictor
from neutrality_forecast.update.psis import smooth_weights, systematic_resample

__all__ = [
    "FoldWeights",
    "cluster_loglik",
    "draw_effects",
    "fixed_eta",
    "fold_draws",
    "importance_fold",
    "origin_rows",
]


def fixed_eta(draws: dict[str, np.ndarray], rows: pd.DataFrame, *, evidence: bool) -> np.ndarray:
    """Linear predictor of ``rows`` without the question effect: shape (draws, rows)."""
    xcols = [c for c in rows.columns if c.startswith("x:")]
    x = rows[xcols].to_numpy(float) if evidence else np.zeros((len(rows), len(xcols)))
    return linear_predictor(
        draws, outcome_idx=rows["outcome_idx"].to_numpy(int),
        partner_idx=rows["partner_idx"].to_numpy(int), x=x,
        recurrence=rows["recurrence"].to_numpy(float), standing=rows["standing"].to_numpy(float),
    )  # fmt: skip


def draw_effects(
    draws: dict[str, np.ndarray], questions: list[Question], n: int, rng: np.random.Generator
) -> np.ndarray:
    """Fresh effects ``u (S, n, Q)`` of ``questions`` from their prior given each draw.

    Each case gets a shared effect ``v ~ N(0, sigma_shared)``; each question adds
    ``sigma_q[k] * z``.
    """
    s = draws["alpha"].shape[0]
    cases = sorted({q.case_id for q in questions})
    v = rng.standard_normal((s, n, len(cases))) * draws["sigma_shared"][:, None, None]
    z = rng.standard_normal((s, n, len(questions)))
    sig = draws["sigma_q"][:, [q.outcome_idx for q in questions]]  # (S, Q)
    case_pos = [cases.index(q.case_id) for q in questions]
    return v[:, :, case_pos] + sig[:, None, :] * z


def cluster_loglik(
    eta0: np.ndarray,
    u: np.ndarray | Effects,
    rows: pd.DataFrame,
    q_pos: np.ndarray,
    *,
    bins: np.ndarray | None = None,
    n_bins: int = 1,
    cumulative: bool = False,
) -> np.ndarray:
    """Log-likelihood (without constants) of ``rows`` for every (draw, effect draw).

    ``eta0`` (S, R) from :func:`fixed_eta`; ``u`` (S, M, Q); ``q_pos`` maps rows to the
    question axis of ``u``. Returns (S, M), or (S, M, n_bins) summed by ``bins`` (a bin
    index per row, e.g. its month), running sums over the bins with ``cumulative``. The
    loop is compiled (:func:`~neutrality_forecast.backtest.kernels.loglik_by_bin`).
    """
    y = rows["y"].to_numpy(float)
    n = rows["trials"].to_numpy(float)
    if bins is None:
        return loglik_by_bin(eta0, u, q_pos, y, n, np.zeros(len(rows), np.int64), 1)[:, :, 0]
    return loglik_by_bin(eta0, u, q_pos, y, n, bins, n_bins, cumulative=cumulative)


@dataclass
class FoldWeights:
    """Importance weights of one fold and the decision to use them."""

    log_weights: np.ndarray
    khat: float
    ess: float
    accepted: bool
    reason: str
    #: the normalised weights ``exp(log_weights)`` (``None`` when they are not finite)
    weights: np.ndarray | None = None


def importance_fold(
    log_w: np.ndarray, *, max_khat: float = 0.7, min_ess: float = 200.0
) -> FoldWeights:
    """Pareto-smooth log weights and judge them (k-hat and ESS thresholds).

    The smoothing is :func:`~neutrality_forecast.update.psis.smooth_weights`, shared with
    the instant update.
    """
    flat = log_w.ravel()
    if not np.all(np.isfinite(flat)):
        return FoldWeights(flat, np.inf, 0.0, False, "non-finite weights")
    lw, khat, w, ess = smooth_weights(flat)
    if not khat <= max_khat:
        return FoldWeights(lw, khat, ess, False, f"k-hat {khat:.2f} > {max_khat}", w)
    if ess < min_ess:
        return FoldWeights(lw, khat, ess, False, f"ESS {ess:.0f} < {min_ess:g}", w)
    return FoldWeights(lw, khat, ess, True, "ok", w)


@dataclass
class ClusterState:
    """Per-cluster quantities shared by the cluster's origins (one posterior, one twin)."""

    questions: list[Question]
    effects: np.ndarray
    log_marginal: np.ndarray
    #: log-likelihood of the cluster's rows through each month (cumulative over months),
    #: (S, M, months), from ``first_month``
    month_cum: np.ndarray | None = None
    first_month: int = 0
    #: ``effects`` laid out for the compiled loop (prepared once per cluster)
    prepared: Effects | None = None

    def __post_init__(self) -> None:
        if self.prepared is None:
            self.prepared = Effects.of(self.effects)


def cluster_state(
    draws: dict[str, np.ndarray],
    data: ModelData,
    cluster_cases: list[str],
    *,
    evidence: bool,
    n_effects: int,
    rng: np.random.Generator,
    remove: bool = True,
) -> ClusterState:
    """Fresh effects of the cluster's questions and ``log p_hat(y_c | theta_s)``.

    ``remove=False`` (the fit never saw the cluster: an external holdout) sets the
    denominator to 1.
    """
    qs = [q for q in data.questions if q.case_id in cluster_cases]
    u = draw_effects(draws, qs, n_effects, rng)
    eff = Effects.of(u)
    rows = pd.concat(
        [question_rows(q, data.link_outcomes, data.config, data.partners) for q in qs],
        ignore_index=True,
    )
    pos = {q.q_idx: i for i, q in enumerate(qs)}
    q_pos = rows["q_idx"].map(pos).to_numpy(int)
    first = int(rows["month"].min())
    bins = rows["month"].to_numpy(int) - first
    # cumulative over months: a fold reads the sum before its origin
    month_cum = cluster_loglik(fixed_eta(draws, rows, evidence=evidence), eff, rows, q_pos,
                               bins=bins, n_bins=int(bins.max()) + 1, cumulative=True)  # fmt: skip
    if not remove:
        return ClusterState(qs, u, np.zeros(u.shape[0]), month_cum, first, eff)
    log_marg = logsumexp(month_cum[:, :, -1], axis=1) - np.log(n_effects)
    return ClusterState(qs, u, log_marg, month_cum, first, eff)


def origin_rows(known_questions: list[Question], data: ModelData) -> tuple[pd.DataFrame, int]:
    """The rows of the origin month (the known questions' last month) and that month.

    Only that month's rows are cut by the origin (exposure to the origin day, occurrences
    after it removed); the months before it are the full rows (the features are causal).
    They depend on the questions only, so the model's and the twin's passes share them.
    Empty rows and month -1 when no question has an at-risk month.
    """
    frames = [
        question_rows(q, data.link_outcomes, data.config, data.partners) for q in known_questions
    ]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(), -1
    rows = pd.concat(frames, ignore_index=True)
    m0 = int(rows["month"].max())
    return rows[rows["month"] == m0], m0


def fold_draws(
    draws: dict[str, np.ndarray],
    state: ClusterState,
    known_questions: list[Question],
    data: ModelData,
    *,
    evidence: bool,
    n_out: int,
    rng: np.random.Generator,
    max_khat: float = 0.7,
    min_ess: float = 200.0,
    rows: tuple[pd.DataFrame, int] | None = None,
) -> tuple[dict[str, np.ndarray] | None, FoldWeights]:
    """Draws of the fold's posterior, or ``None`` with the reason to refit.

    ``known_questions`` are the cluster's questions as known at the origin
    (:func:`~neutrality_forecast.model.data.questions_at` for each of its cases);
    ``rows``, if given, their :func:`origin_rows` (computed once for several passes).
    """
    pos = {q.q_idx: i for i, q in enumerate(state.questions)}
    last, m0 = origin_rows(known_questions, data) if rows is None else rows
    ll_pre = np.zeros(state.effects.shape[:2])
    if len(last):
        # months before the origin month: summed once per cluster; the origin month: cut rows
        done = min(m0 - state.first_month, state.month_cum.shape[2])
        if done > 0:
            ll_pre += state.month_cum[:, :, done - 1]
        q_pos = last["q_idx"].map(pos).to_numpy(int)
        eta0 = fixed_eta(draws, last, evidence=evidence)
        ll_pre += cluster_loglik(eta0, state.prepared, last, q_pos)
    log_w = ll_pre - state.log_marginal[:, None]
    fw = importance_fold(log_w, max_khat=max_khat, min_ess=min_ess)
    if not fw.accepted:
        return None, fw
    pick = systematic_resample(fw.weights, n_out, rng)
    s_idx, m_idx = np.divmod(pick, state.effects.shape[1])
    out = {k: v[s_idx] for k, v in draws.items()}
    u = out["u"].copy()
    cols = [q.q_idx for q in state.questions]
    u[:, cols] = state.effects[s_idx, m_idx, :]
    out["u"] = u
    return out, fw
