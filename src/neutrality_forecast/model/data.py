"""From a case set to the arrays the hazard model is fitted on.

Every outcome row of the case set is a *question*: a (case, outcome family, partner)
observed monthly from the case's window start. A question is *at risk* in each month up to
and including the month it occurred (y = 1 there) or up to the window end (y = 0 always).
At-risk months with identical covariates are collapsed into one binomial row: this is an
exact sufficient-statistic form of the monthly Bernoulli likelihood.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import pandas as pd

from neutrality_forecast.casesets import CaseSet
from neutrality_forecast.casesets.schema import OUTCOMES
from neutrality_forecast.config import Config
from neutrality_forecast.evidence import (
    EventArrays,
    QuestionEvidence,
    intensity_factor,
    month_index,
    question_evidence,
    stock_from_inflow,
)

__all__ = ["ROW_BLOCK", "ModelData", "Question", "build_model_data", "padded_rows", "standing_path"]

#: each family's rows are padded with empty rows (no trials, no events, zero design) to a
#: multiple of this, so data sets that differ by a few rows (new events, another as-of
#: month, a left-out case) have the same array shapes and reuse one compiled sampler
#: (``docs/performance.md``). An empty row adds exactly 0 to the log-likelihood and to its
#: gradient (``y * eta - n * softplus(eta)`` with ``y = n = 0``).
ROW_BLOCK = 128


def padded_rows(n: int, block: int = ROW_BLOCK) -> int:
    """``n`` rounded up to a positive multiple of ``block``."""
    return max(block, -(-n // block) * block)


@dataclass(frozen=True)
class Question:
    """One (case, outcome) question and its monthly evidence."""

    case_id: str
    case_idx: int
    outcome: str
    outcome_idx: int
    partner: str | None
    neutral: bool
    occurred: bool
    occurred_month: int | None
    revision_month: int | None
    intensity: float
    first_month: int
    last_month: int
    evidence: QuestionEvidence


@dataclass
class ModelData:
    """Aggregated at-risk rows plus the per-question evidence kept for forecasting."""

    case_ids: list[str]
    outcomes: list[str]
    categories: list[str]
    link_outcomes: list[str]
    questions: list[Question]
    case_idx: np.ndarray
    outcome_idx: np.ndarray
    x: np.ndarray
    standing: np.ndarray
    trials: np.ndarray
    y: np.ndarray
    meta: dict = field(default_factory=dict)

    @property
    def n_rows(self) -> int:
        """Binomial rows after aggregation."""
        return len(self.y)

    def design(self) -> np.ndarray:
        """Dense design matrix ``Z`` with ``eta = Z @ theta`` (see :class:`HazardModel`).

        Column blocks, in order: outcome one-hot (K) for ``alpha``; case x outcome one-hot
        (C*K, case-major) for ``u``; covariates times outcome one-hot (K*J, outcome-major)
        for ``beta``; standing times outcome one-hot (K) for ``-gamma``.
        """
        n, k_n, c_n, j_n = self.n_rows, len(self.outcomes), len(self.case_ids), self.x.shape[1]
        rows = np.arange(n)
        onehot_k = np.zeros((n, k_n))
        onehot_k[rows, self.outcome_idx] = 1.0
        onehot_ck = np.zeros((n, c_n * k_n))
        onehot_ck[rows, self.case_idx * k_n + self.outcome_idx] = 1.0
        xk = (onehot_k[:, :, None] * self.x[:, None, :]).reshape(n, k_n * j_n)
        return np.hstack([onehot_k, onehot_ck, xk, onehot_k * self.standing[:, None]])

    def block_design(self, outcome: str) -> tuple[np.ndarray, np.ndarray]:
        """Compact design of one outcome family: ``(rows, Z_k)`` with ``eta = Z_k @ theta_k``.

        ``rows`` are the family's row positions; ``Z_k`` has columns ``[1, case one-hot (C),
        x (J), standing]`` and ``theta_k = (alpha_k, u[:, k], beta_k, -gamma_k)``. The
        three family blocks together are :meth:`design` with its structural zeros removed
        (a third of the columns, hence of the gradient's matrix products).
        """
        k, c_n = self.outcomes.index(outcome), len(self.case_ids)
        rows = np.flatnonzero(self.outcome_idx == k)
        onehot = np.zeros((len(rows), c_n))
        onehot[np.arange(len(rows)), self.case_idx[rows]] = 1.0
        z = np.column_stack([np.ones(len(rows)), onehot, self.x[rows], self.standing[rows]])
        return rows, z

    def model_inputs(
        self,
        *,
        exclude_cases: list[str] | tuple[str, ...] = (),
        evidence: bool = True,
        y: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """Per-family data for the containers ``design_<o>``, ``trials_<o>``, ``y_<o>``.

        Each family's rows are padded with empty rows to :func:`padded_rows` (a multiple
        of :data:`ROW_BLOCK`); they contribute exactly nothing to the likelihood.

        Parameters
        ----------
        exclude_cases : list of str
            Drop these cases' rows (their case effects then follow the prior): a
            leave-one-case-out fold.
        evidence : bool
            False zeroes the evidence columns: the evidence-free baseline model.
        y : ndarray, optional
            Event counts per row replacing the observed ones (simulation-based checks).

        """
        drop = [self.case_ids.index(c) for c in exclude_cases]
        y = self.y if y is None else np.asarray(y)
        j_n, c_n = self.x.shape[1], len(self.case_ids)
        out: dict[str, np.ndarray] = {}
        for outcome in self.outcomes:
            rows, z = self.block_design(outcome)
            keep = ~np.isin(self.case_idx[rows], drop)
            z = z[keep]
            if not evidence:
                z[:, 1 + c_n : 1 + c_n + j_n] = 0.0
            pad = padded_rows(len(z)) - len(z)
            out[f"design_{outcome}"] = np.pad(z, ((0, pad), (0, 0)))
            out[f"trials_{outcome}"] = np.pad(self.trials[rows][keep], (0, pad))
            out[f"y_{outcome}"] = np.pad(y[rows][keep], (0, pad))
        return out

    def question(self, case_id: str, outcome: str) -> Question:
        """The question for ``case_id`` and ``outcome`` (``KeyError`` if absent)."""
        for q in self.questions:
            if q.case_id == case_id and q.outcome == outcome:
                return q
        raise KeyError(f"case {case_id!r} has no {outcome!r} question")


def standing_path(q: Question, months: np.ndarray, link_outcomes: list[str]) -> np.ndarray:
    """1 where a neutral state's neutrality still stands for a linked outcome, else 0."""
    if not q.neutral or q.outcome not in link_outcomes:
        return np.zeros(len(months))
    if q.revision_month is None:
        return np.ones(len(months))
    return (months <= q.revision_month).astype(float)


def build_model_data(case_set: CaseSet, config: Config) -> ModelData:
    """Evidence covariates and at-risk rows for every question of ``case_set``."""
    ev_cfg = config.evidence
    case_ids = case_set.case_ids
    link = list(config.model.priors.link_outcomes)
    questions: list[Question] = []
    rows: list[np.ndarray] = []
    # each case's events and outcomes, converted to plain arrays once (not per question)
    ev_sorted = case_set.events.sort_values("date", kind="stable")
    ev_case = ev_sorted["case_id"].astype(str).to_numpy()
    ev_all = EventArrays.from_frame(ev_sorted, ev_cfg)
    out_records = case_set.outcomes.to_dict("records")
    for c, case in enumerate(case_set.cases.itertuples(index=False)):
        first, last = month_index(case.window_start), month_index(case.window_end)
        events = ev_all.take(np.flatnonzero(ev_case == case.case_id))
        outs = [o for o in out_records if o["case_id"] == case.case_id]
        rev = [o for o in outs if o["outcome"] == "neutrality_revision" and o["occurred"]]
        rev_month = int(month_index(rev[0]["occurred_on"])) if rev else None
        scale = intensity_factor(events, last - first + 1, ev_cfg)
        for out in (SimpleNamespace(**o) for o in outs):
            k = OUTCOMES.index(str(out.outcome))
            partner = None if pd.isna(out.partner) else str(out.partner)
            evid = question_evidence(
                events,
                country=case.country,
                partner=partner,
                first_month=first,
                last_month=last,
                cfg=ev_cfg,
                scale=scale,
            )
            occ_month = int(month_index(out.occurred_on)) if out.occurred else None
            q = Question(
                case_id=case.case_id,
                case_idx=c,
                outcome=str(out.outcome),
                outcome_idx=k,
                partner=partner,
                neutral=str(case.neutrality_status) != "none",
                occurred=bool(out.occurred),
                occurred_month=occ_month,
                revision_month=rev_month,
                intensity=scale,
                first_month=first,
                last_month=last,
                evidence=evid,
            )
            questions.append(q)
            end = occ_month if occ_month is not None else last
            months = np.arange(first, end + 1)
            stock = stock_from_inflow(
                evid.inflow, half_life=ev_cfg.decay.half_life_months, lag=ev_cfg.decay.lag_months
            )[: len(months)]
            y = np.zeros(len(months))
            if occ_month is not None:
                y[-1] = 1.0
            rows.append(
                np.column_stack(
                    [
                        np.full(len(months), c),
                        np.full(len(months), k),
                        standing_path(q, months, link),
                        np.log1p(stock),
                        y,
                    ]
                )
            )
    allrows = np.vstack(rows) if rows else np.zeros((0, 4 + len(ev_cfg.categories)))
    keys, inverse = np.unique(allrows[:, :-1], axis=0, return_inverse=True)
    inverse = inverse.ravel()
    trials = np.bincount(inverse, minlength=len(keys)).astype(np.int64)
    y = np.rint(np.bincount(inverse, weights=allrows[:, -1], minlength=len(keys))).astype(np.int64)
    return ModelData(
        case_ids=case_ids,
        outcomes=list(OUTCOMES),
        categories=ev_cfg.category_names,
        link_outcomes=link,
        questions=questions,
        case_idx=keys[:, 0].astype(int),
        outcome_idx=keys[:, 1].astype(int),
        standing=keys[:, 2],
        x=keys[:, 3:],
        trials=trials,
        y=y,
        meta={"at_risk_months": len(allrows), "events_total": int(allrows[:, -1].sum())},
    )
