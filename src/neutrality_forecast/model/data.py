"""From a case set to the arrays the hazard model is fitted on.

A *question* is a (case, outcome family, partner) of ``outcomes.csv`` (contract version 2:
several partners per family, one row per occurrence for recurrent families). A question is
observed monthly over its case's window:

* ``neutrality_revision`` is at risk up to and including the month it occurred (``y = 1``
  there) or to the window end;
* a recurrent family (``security_accord``, ``foreign_basing``) is a *counting process*: it
  stays at risk after an occurrence, for the next one, until the window end; ``y = 1`` in
  each month with an occurrence (two occurrences in one month count once), and the
  covariate ``recurrence = log1p(occurrences in earlier months)`` carries its history.

Exposure: the window's last month counts as the observed fraction of its days when no
occurrence fell in it (``trials = day / days in month``), so a case cut on the 18th of a
month is at risk for 18/31 of that month; the forecast then covers the rest of the month
(:mod:`neutrality_forecast.forecast.horizon`), and training and forecasting cover the same
days. Each month's covariates come from :func:`~neutrality_forecast.evidence.features`,
from events known before the month only.

Rows with identical (question, covariates) are collapsed into one binomial row (an exact
sufficient-statistic form of the monthly Bernoulli likelihood); with ``[likelihood]
bin_width`` > 0 in ``models/model.toml``, months without an occurrence are also pooled
within covariate bins (:func:`collapse_rows`: exact event term, second-order exposure
term). :meth:`ModelData.month_rows` gives the uncollapsed rows of some cases (for
importance weights by origin).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from neutrality_forecast.casesets import CaseSet
from neutrality_forecast.casesets.schema import OUTCOMES, RECURRENT_OUTCOMES
from neutrality_forecast.config import Config
from neutrality_forecast.evidence import EventArrays, QuestionEvidence, month_index
from neutrality_forecast.evidence import question_evidence as _question_evidence
from neutrality_forecast.evidence.features import features as _features

__all__ = [
    "KEY_COLUMNS",
    "ROW_BLOCK",
    "ModelData",
    "Question",
    "build_model_data",
    "collapse_rows",
    "month_fraction",
    "padded_rows",
    "question_rows",
    "questions_at",
]

#: rows are padded with empty rows (no trials, no events, zero covariates) to a multiple of
#: this, so data sets that differ by a few rows (new events, another as-of month, a
#: left-out cluster) have the same array shapes and reuse one compiled sampler
#: (``docs/performance.md``). An empty row adds exactly 0 to the log-likelihood and to its
#: gradient (``y * eta - n * softplus(eta)`` with ``y = n = 0``).
ROW_BLOCK = 512


def padded_rows(n: int, block: int = ROW_BLOCK) -> int:
    """``n`` rounded up to a positive multiple of ``block``."""
    return max(block, -(-n // block) * block)


def month_fraction(when: pd.Timestamp) -> float:
    """Share of ``when``'s month observed by the end of that day (1.0 on the last day)."""
    when = pd.Timestamp(when)
    return when.day / when.days_in_month


def question_label(case_id: str, outcome: str, partner: str | None) -> str:
    """``CASE|outcome|PARTNER`` (``CASE|outcome`` without a partner)."""
    return f"{case_id}|{outcome}" + (f"|{partner}" if partner else "")


@dataclass(frozen=True)
class Question:
    """One (case, outcome, partner) question, its occurrences and its monthly evidence."""

    case_id: str
    case_idx: int
    cluster: str
    country: str
    outcome: str
    outcome_idx: int
    partner: str | None
    partner_idx: int
    q_idx: int
    neutral: bool
    occurrences: tuple[pd.Timestamp, ...]
    revision_date: pd.Timestamp | None
    first_month: int
    last_month: int
    window_end: pd.Timestamp
    evidence: QuestionEvidence
    static: tuple[float, ...] = ()

    @property
    def label(self) -> str:
        """``CASE|outcome|PARTNER``."""
        return question_label(self.case_id, self.outcome, self.partner)

    @property
    def recurrent(self) -> bool:
        """Whether the family recurs (a counting process) rather than happening once."""
        return self.outcome in RECURRENT_OUTCOMES

    @property
    def occurred(self) -> bool:
        """At least one occurrence in the observed window."""
        return bool(self.occurrences)

    @property
    def occurrence_months(self) -> np.ndarray:
        """Month index of each occurrence."""
        return np.array([month_index(d) for d in self.occurrences], dtype=int)

    @property
    def revision_month(self) -> int | None:
        """Month the case's neutrality was revised, if it was."""
        return None if self.revision_date is None else int(month_index(self.revision_date))

    def occurrences_before(self, when: pd.Timestamp) -> int:
        """Occurrences dated on or before ``when``."""
        return sum(d <= when for d in self.occurrences)


@dataclass
class ModelData:
    """Aggregated at-risk rows plus the questions kept for forecasting.

    Row arrays: ``q_idx`` (question), ``outcome_idx``, ``partner_idx`` (``-1``: none),
    ``x`` (rows x features), ``standing`` (0/1), ``recurrence`` (log1p earlier
    occurrences), ``trials`` (float exposure in months) and ``y`` (months with an
    occurrence).
    """

    case_ids: list[str]
    outcomes: list[str]
    partners: list[str]
    features: list[str]
    link_outcomes: list[str]
    questions: list[Question]
    q_idx: np.ndarray
    outcome_idx: np.ndarray
    partner_idx: np.ndarray
    x: np.ndarray
    standing: np.ndarray
    recurrence: np.ndarray
    trials: np.ndarray
    y: np.ndarray
    config: Config | None = None
    meta: dict = field(default_factory=dict)

    @property
    def n_rows(self) -> int:
        """Binomial rows after aggregation."""
        return len(self.y)

    @property
    def categories(self) -> list[str]:
        """Evidence categories (the columns of each question's inflow)."""
        return self.config.evidence.category_names if self.config is not None else []

    @property
    def question_labels(self) -> list[str]:
        """``CASE|outcome|PARTNER`` of every question, in parameter order."""
        return [q.label for q in self.questions]

    @property
    def case_idx(self) -> np.ndarray:
        """Case index of every row."""
        return self.question_case_idx[self.q_idx]

    @property
    def question_case_idx(self) -> np.ndarray:
        """Case index of every question, in parameter order."""
        return np.array([q.case_idx for q in self.questions], dtype=int)

    @property
    def question_outcome_idx(self) -> np.ndarray:
        """Family (outcome) index of every question, in parameter order."""
        return np.array([q.outcome_idx for q in self.questions], dtype=int)

    def questions_of(self, case_id: str) -> list[Question]:
        """The questions of one case."""
        return [q for q in self.questions if q.case_id == case_id]

    def question(self, case_id: str, outcome: str, partner: str | None = None) -> Question:
        """One question (``KeyError`` if absent; ``partner=None`` takes the first)."""
        for q in self.questions:
            if q.case_id == case_id and q.outcome == outcome:
                if partner is None or q.partner == partner:
                    return q
        raise KeyError(f"case {case_id!r} has no {outcome!r} question with partner {partner!r}")

    def rows_of(self, case_ids: list[str] | tuple[str, ...]) -> np.ndarray:
        """Boolean mask of the rows of ``case_ids``."""
        idx = [self.case_ids.index(c) for c in case_ids if c in self.case_ids]
        return np.isin(self.case_idx, idx)

    def model_inputs(
        self,
        *,
        exclude_cases: list[str] | tuple[str, ...] = (),
        evidence: bool = True,
        y: np.ndarray | None = None,
        pad_to: dict[str, int] | None = None,
    ) -> dict[str, np.ndarray]:
        """Per-family arrays ``design_<o>, q_<o>, trials_<o>, y_<o>``, padded with empty rows.

        Parameters
        ----------
        exclude_cases : list of str
            Drop these cases' rows (their question effects then follow the prior): a
            leave-cluster-out fold.
        evidence : bool
            False zeroes the evidence covariates: the evidence-free twin.
        y : ndarray, optional
            Event counts per row replacing the observed ones (simulation-based checks).
        pad_to : dict, optional
            Rows per family after padding (default :func:`padded_rows` of the kept rows).

        """
        keep = ~self.rows_of(list(exclude_cases)) if exclude_cases else np.ones(self.n_rows, bool)
        y = self.y if y is None else np.asarray(y)
        out: dict[str, np.ndarray] = {}
        for k, o in enumerate(self.outcomes):
            rows = np.flatnonzero((self.outcome_idx == k) & keep)
            n = len(rows)
            target = (pad_to or {}).get(o) if isinstance(pad_to, dict) else None
            pad = (target or padded_rows(n)) - n
            if pad < 0:
                raise ValueError(f"pad_to[{o!r}]={target} is smaller than the {n} rows")
            z = self.family_design(k, evidence=evidence)[rows]
            out[f"design_{o}"] = np.pad(z, ((0, pad), (0, 0))).astype(float)
            out[f"q_{o}"] = np.pad(self.q_idx[rows], (0, pad)).astype(np.int64)
            out[f"trials_{o}"] = np.pad(self.trials[rows], (0, pad)).astype(float)
            out[f"y_{o}"] = np.pad(y[rows], (0, pad)).astype(float)
        return out

    def family_columns(self, k: int) -> list[str]:
        """Column names of :meth:`family_design` for family ``k``."""
        o = self.outcomes[k]
        cols = ["intercept"]
        if o in self.recurrent_outcomes:
            cols += [f"partner:{p}" for p in self.partners]
        cols += [f"x:{f}" for f in self.features]
        if o in self.recurrent_outcomes:
            cols.append("recurrence")
        if o in self.link_outcomes:
            cols.append("standing")
        return cols

    def family_design(self, k: int, *, evidence: bool = True) -> np.ndarray:
        """Design of family ``k``'s population terms for *every* row (zero elsewhere).

        Columns (:meth:`family_columns`): intercept (``alpha_k``); partner one-hot
        (recurrent families: partner effects); covariates (``beta_k``); recurrence
        (``rho_k``, recurrent families); standing (``-gamma_k``, linked families). With the
        question effects gathered by index, ``eta = Z_k @ theta_k + u[q]``. The width
        depends on partners and features, never on the number of cases or questions, and
        each family's rows carry only that family's columns (no structural zeros).
        """
        o = self.outcomes[k]
        n = self.n_rows
        parts = [np.ones((n, 1))]
        if o in self.recurrent_outcomes:
            onehot = np.zeros((n, len(self.partners)))
            has = self.partner_idx >= 0
            onehot[np.flatnonzero(has), self.partner_idx[has]] = 1.0
            parts.append(onehot)
        parts.append(self.x if evidence else np.zeros_like(self.x))
        if o in self.recurrent_outcomes:
            parts.append(self.recurrence[:, None])
        if o in self.link_outcomes:
            parts.append(self.standing[:, None])
        return np.hstack(parts)

    @property
    def recurrent_outcomes(self) -> list[str]:
        """The recurrent families (those with partner effects and a recurrence term)."""
        return [o for o in self.outcomes if o in RECURRENT_OUTCOMES]

    @property
    def partner_slot(self) -> np.ndarray:
        """Index into ``[0, partner effects (recurrent family x partner, row-major)]``.

        0 selects the leading zero: rows without a partner, or of a one-time family.
        """
        rec = np.array([self.recurrent_outcomes.index(o) if o in RECURRENT_OUTCOMES else -1
                        for o in self.outcomes])[self.outcome_idx]  # fmt: skip
        ok = (self.partner_idx >= 0) & (rec >= 0)
        return np.where(ok, 1 + rec * len(self.partners) + self.partner_idx, 0)

    def month_rows(self, case_ids: list[str]) -> pd.DataFrame:
        """Uncollapsed monthly rows of ``case_ids`` (``month`` column included)."""
        cfg = self.config
        frames = [
            question_rows(q, self.link_outcomes, cfg, self.partners)
            for q in self.questions
            if q.case_id in case_ids
        ]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def question_rows(
    q: Question, link_outcomes: list[str], config: Config, partners: list[str]
) -> pd.DataFrame:
    """One row per at-risk month of ``q``: ``month, trials, y, standing, recurrence, x...``."""
    cfg = config.evidence
    last = q.last_month
    occ = q.occurrence_months
    if not q.recurrent and len(occ):
        last = int(occ.min())
    months = np.arange(q.first_month, last + 1)
    n = len(months)
    y = np.isin(months, occ).astype(float)
    earlier = np.array([(occ < m).sum() for m in months], dtype=float) if q.recurrent else 0.0
    trials = np.ones(n)
    if n and months[-1] == q.last_month and y[-1] == 0:
        trials[-1] = month_fraction(q.window_end)
    ev = q.evidence
    x = _features(ev.inflow[:n], ev.steps[:n], ev.volume[:n], cfg=cfg, static=q.static)
    standing = standing_path(q, months, link_outcomes)
    frame = pd.DataFrame(
        {
            "q_idx": q.q_idx,
            "case_id": q.case_id,
            "outcome_idx": q.outcome_idx,
            "partner_idx": q.partner_idx,
            "month": months,
            "trials": trials,
            "y": y,
            "standing": standing,
            "recurrence": np.log1p(earlier) * np.ones(n),
        }
    )
    names = cfg.feature_names
    return pd.concat([frame, pd.DataFrame(x, columns=[f"x:{c}" for c in names])], axis=1)


def standing_path(q: Question, months: np.ndarray, link_outcomes: list[str]) -> np.ndarray:
    """1 where a neutral state's neutrality still stands for a linked outcome, else 0."""
    if not q.neutral or q.outcome not in link_outcomes:
        return np.zeros(len(months))
    if q.revision_month is None:
        return np.ones(len(months))
    return (months <= q.revision_month).astype(float)


def _clusters(case_set: CaseSet) -> dict[str, str]:
    cases = case_set.cases
    if "cluster" in cases.columns:
        col = cases["cluster"].fillna("").astype(str)
        cl = np.where(col.str.strip() != "", col, cases["country"].astype(str))
    else:
        cl = cases["country"].astype(str).to_numpy()
    return dict(zip(cases["case_id"].astype(str), cl, strict=True))


def build_questions(case_set: CaseSet, config: Config, partners: list[str]) -> list[Question]:
    """Every (case, outcome, partner) question of ``case_set`` with its evidence."""
    ev_cfg = config.evidence
    clusters = _clusters(case_set)
    ev_sorted = case_set.events.sort_values("date", kind="stable")
    ev_case = ev_sorted["case_id"].astype(str).to_numpy()
    ev_all = EventArrays.from_frame(ev_sorted, ev_cfg)
    outs = case_set.outcomes
    questions: list[Question] = []
    for c, case in enumerate(case_set.cases.itertuples(index=False)):
        first, last = month_index(case.window_start), month_index(case.window_end)
        events = ev_all.take(np.flatnonzero(ev_case == case.case_id))
        mine = outs[outs["case_id"] == case.case_id]
        rev = mine[(mine["outcome"] == "neutrality_revision") & mine["occurred"]]
        rev_date = pd.Timestamp(rev["occurred_on"].min()) if len(rev) else None
        partner_col = mine["partner"].where(mine["partner"].notna(), None)
        keys = pd.DataFrame({"outcome": mine["outcome"].astype(str), "partner": partner_col})
        for (outcome, partner), grp in keys.groupby(
            ["outcome", "partner"], dropna=False, sort=False
        ):
            partner = None if partner is None or pd.isna(partner) else str(partner)
            rows = mine.loc[grp.index]
            dates = tuple(
                sorted(pd.Timestamp(d) for d in rows.loc[rows["occurred"], "occurred_on"])
            )
            evid = _question_evidence(
                events, country=case.country, outcome=outcome, partner=partner,
                first_month=first, last_month=last, cfg=ev_cfg,
            )  # fmt: skip
            questions.append(
                Question(
                    case_id=case.case_id,
                    case_idx=c,
                    cluster=clusters[case.case_id],
                    country=case.country,
                    outcome=outcome,
                    outcome_idx=OUTCOMES.index(outcome),
                    partner=partner,
                    partner_idx=partners.index(partner) if partner in partners else -1,
                    q_idx=len(questions),
                    neutral=str(case.neutrality_status) != "none",
                    occurrences=dates,
                    revision_date=rev_date,
                    first_month=first,
                    last_month=last,
                    window_end=pd.Timestamp(case.window_end),
                    evidence=evid,
                    static=tuple(
                        case_set.static(case.case_id, partner, name)
                        for name in ev_cfg.features.static
                    ),
                )
            )
    return questions


def questions_at(
    case_set: CaseSet, case_id: str, as_of: pd.Timestamp, config: Config, data: ModelData
) -> list[Question]:
    """The questions of ``case_id`` as known on ``as_of``, indexed like ``data``'s.

    Events not yet known and occurrences after ``as_of`` are left out; question, case and
    partner indices are those of the same questions in ``data`` (a fitted model's), so the
    fitted effects apply. For many dates of one case, build
    :class:`~neutrality_forecast.model.known.CaseHistory` once and call its ``at``.
    """
    from neutrality_forecast.model.known import CaseHistory

    return CaseHistory(case_set, case_id, config, data).at(as_of)


#: columns that identify a binomial row besides its covariates
KEY_COLUMNS = ["q_idx", "outcome_idx", "partner_idx", "standing", "recurrence"]


def collapse_rows(rows: pd.DataFrame, xcols: list[str], *, bin_width: float = 0.0) -> pd.DataFrame:
    r"""Pool monthly rows into binomial rows: ``KEY_COLUMNS``, ``xcols``, ``trials``, ``y``.

    ``bin_width = 0`` pools months with identical keys and covariates: the binomial
    likelihood of the pooled row equals the product of its months' Bernoulli likelihoods
    (exact sufficient statistics). With ``bin_width = w > 0``, months *without* an
    occurrence whose covariates fall in the same bins of width ``w``
    (``floor(x / w)`` in every covariate) are pooled into one row at their exposure-weighted
    mean covariates :math:`\bar x_g = \sum_i n_i x_i / n_g`, while months with an
    occurrence keep their exact covariates. The event term :math:`\sum y\,\eta` is then
    exact, and the exposure term is approximated to second order: with
    :math:`\eta` linear in :math:`x`,

    .. math::

        \sum_{i \in g} n_i \log(1 + e^{\eta_i}) = n_g \log(1 + e^{\bar\eta_g})
        + \tfrac12 \sum_{i \in g} n_i\, h_i (1 - h_i) (\eta_i - \bar\eta_g)^2 + \dots

    where :math:`|\eta_i - \bar\eta_g| \le w \sum_f |\beta_f|`. For monthly hazards of
    ~0.5 % (:math:`h(1-h) \approx 0.005`), ``w = 0.25`` and effects of ~0.5 the neglected
    term is below 1e-4 per month. Forecasts never use the pooled rows (they use each
    question's exact covariates), so only the fit is affected; ``docs/performance.md``
    compares the posteriors with and without pooling.
    """
    if bin_width <= 0 or not xcols:
        grouped = rows.groupby([*KEY_COLUMNS, *xcols], sort=True, dropna=False)
        return grouped[["trials", "y"]].sum().reset_index()
    event = rows["y"].to_numpy() > 0
    exact = collapse_rows(rows.loc[event], xcols)
    quiet = rows.loc[~event]
    bins = np.floor(quiet[xcols].to_numpy(float) / bin_width + 1e-9)
    bcols = [f"bin{i}" for i in range(len(xcols))]
    weighted = quiet[xcols].to_numpy(float) * quiet["trials"].to_numpy(float)[:, None]
    frame = pd.concat(
        [
            quiet[[*KEY_COLUMNS, "trials", "y"]].reset_index(drop=True),
            pd.DataFrame(bins, columns=bcols),
            pd.DataFrame(weighted, columns=xcols),
        ],
        axis=1,
    )
    pooled = frame.groupby([*KEY_COLUMNS, *bcols], sort=True)[[*xcols, "trials", "y"]].sum()
    pooled = pooled.reset_index().drop(columns=bcols)
    pooled[xcols] = pooled[xcols].to_numpy() / pooled["trials"].to_numpy()[:, None]
    out = pd.concat([pooled, exact], ignore_index=True)
    return out.sort_values([*KEY_COLUMNS, *xcols], kind="stable", ignore_index=True)


def build_model_data(
    case_set: CaseSet, config: Config, *, partners: list[str] | None = None
) -> ModelData:
    """Evidence covariates and at-risk rows for every question of ``case_set``.

    ``partners`` fixes the partner list (and so the parameter shapes), e.g. to keep a
    left-out fold's model identical to the full one; default: the partners in the data.
    """
    if partners is None:
        partners = sorted({str(p) for p in case_set.outcomes["partner"].dropna()})
    link = list(config.model.priors.link_outcomes)
    questions = build_questions(case_set, config, partners)
    frames = [question_rows(q, link, config, partners) for q in questions]
    names = config.evidence.feature_names
    xcols = [f"x:{c}" for c in names]
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if rows.empty:
        keys = np.zeros((0, 5 + len(names)))
        trials = y = np.zeros(0)
    else:
        pooled = collapse_rows(rows, xcols, bin_width=config.model.likelihood.bin_width)
        keys = pooled[[*KEY_COLUMNS, *xcols]].to_numpy(float).reshape(len(pooled), -1)
        trials, y = pooled["trials"].to_numpy(float), pooled["y"].to_numpy(float)
    return ModelData(
        case_ids=case_set.case_ids,
        outcomes=list(OUTCOMES),
        partners=list(partners),
        features=names,
        link_outcomes=link,
        questions=questions,
        q_idx=keys[:, 0].astype(int),
        outcome_idx=keys[:, 1].astype(int),
        partner_idx=keys[:, 2].astype(int),
        standing=keys[:, 3],
        recurrence=keys[:, 4],
        x=keys[:, 5:],
        trials=trials,
        y=y,
        config=config,
        meta={"at_risk_months": float(rows["trials"].sum()) if len(rows) else 0.0,
              "month_rows": len(rows), "events_total": float(y.sum())},
    )  # fmt: skip
