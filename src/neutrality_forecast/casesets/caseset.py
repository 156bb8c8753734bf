"""The typed, validated case set."""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from neutrality_forecast.casesets import schema as S

__all__ = ["COVARIATES_FILE", "CaseSet"]

#: optional file of static covariates in a case set folder (not part of the contract)
COVARIATES_FILE = "covariates.csv"

_CATEGORIES: dict[str, dict[str, tuple[str, ...]]] = {
    S.CASES_FILE: {"neutrality_status": S.NEUTRALITY_STATUSES},
    S.OUTCOMES_FILE: {"outcome": S.OUTCOMES},
    S.EVENTS_FILE: {
        "date_precision": S.DATE_PRECISIONS,
        "event_type": S.EVENT_TYPES,
        "source_reliability": S.SOURCE_RELIABILITY,
        "info_credibility": S.INFO_CREDIBILITY,
    },
}
_ORDERED = {"source_reliability", "info_credibility"}
_DATES = {
    S.CASES_FILE: ("window_start", "window_end"),
    S.OUTCOMES_FILE: ("occurred_on",),
    S.EVENTS_FILE: ("date",),
}


def _typed(name: str, raw: pd.DataFrame) -> pd.DataFrame:
    frame = raw.copy().reset_index(drop=True)
    for col in _DATES[name]:
        frame[col] = pd.to_datetime(frame[col].replace("", None), format="%Y-%m-%d").astype(
            "datetime64[ns]"
        )
    for col, cats in _CATEGORIES[name].items():
        frame[col] = pd.Categorical(frame[col], categories=list(cats), ordered=col in _ORDERED)
    if name == S.OUTCOMES_FILE:
        frame["occurred"] = frame["occurred"].str.lower().eq("true").astype(bool)
        frame["partner"] = frame["partner"].replace("", None)
    return frame


def _text(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Inverse of :func:`_typed`: the frame as contract text."""
    out = frame.copy()
    for col in _DATES[name]:
        out[col] = out[col].dt.strftime("%Y-%m-%d").fillna("")
    for col in _CATEGORIES[name]:
        out[col] = out[col].astype(str)
    if name == S.OUTCOMES_FILE:
        out["occurred"] = out["occurred"].map({True: "true", False: "false"})
        out["partner"] = out["partner"].fillna("")
    return out.fillna("").astype(str)


@dataclass
class CaseSet:
    """A validated case set: three typed DataFrames.

    Attributes
    ----------
    cases, outcomes, events : DataFrame
        One row per case / outcome question / coded event. Dates are ``datetime64[ns]``
        (``NaT`` for an empty ``occurred_on``), enumerations are categoricals (Admiralty
        grades ordered), ``occurred`` is ``bool``, ``partner`` is text or missing. Extra
        columns are kept as text.
    root : Path or None
        The folder the set was read from, if any.

    """

    cases: pd.DataFrame
    outcomes: pd.DataFrame
    events: pd.DataFrame
    root: Path | None = None
    _hash: str | None = field(default=None, repr=False)
    #: optional static covariates (``covariates.csv``: ``case_id, partner, covariate,
    #: value``, numeric values), an extension outside the three-file contract
    covariates: pd.DataFrame | None = field(default=None, repr=False)
    _static_cache: tuple | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_raw(
        cls,
        cases: pd.DataFrame,
        outcomes: pd.DataFrame,
        events: pd.DataFrame,
        *,
        root: Path | None = None,
    ) -> CaseSet:
        """Build from validated raw text frames (see :func:`load_case_set`)."""
        return cls(
            _typed(S.CASES_FILE, cases),
            _typed(S.OUTCOMES_FILE, outcomes),
            _typed(S.EVENTS_FILE, events),
            root=root,
        )

    # ------------------------------------------------------------------ queries
    @property
    def case_ids(self) -> list[str]:
        """Case ids in file order."""
        return list(self.cases["case_id"])

    def case(self, case_id: str) -> pd.Series:
        """The ``cases.csv`` row of ``case_id`` (``KeyError`` if absent)."""
        rows = self.cases[self.cases["case_id"] == case_id]
        if rows.empty:
            raise KeyError(f"no case {case_id!r} in this case set (have: {self.case_ids})")
        return rows.iloc[0]

    def events_of(self, case_id: str) -> pd.DataFrame:
        """Events of one case, sorted by date (stable: same-day events keep file order)."""
        return self.events[self.events["case_id"] == case_id].sort_values("date", kind="stable")

    def outcomes_of(self, case_id: str) -> pd.DataFrame:
        """Outcome questions of one case."""
        return self.outcomes[self.outcomes["case_id"] == case_id]

    def static(self, case_id: str, partner: str | None, name: str) -> float:
        """Static covariate ``name`` of (case, partner), else of the case.

        A case not coded for ``name`` gets the mean of the values coded for the other
        cases at the same level (mean imputation: the model then treats it as a typical
        case, instead of as a case whose value is 0), with a :class:`UserWarning` naming the
        case. 0 when ``name`` is coded for no case at that level: a covariate coded per
        partner (``alliance`` with RUS) does not apply to a question without a partner
        (neutrality revision), and a covariate coded nowhere is constant and carries no
        information.
        """
        values, means = self._static_lookup().get(name, ({}, (None, None)))
        for p in (partner or "", ""):
            if (case_id, p) in values:
                return values[case_id, p]
        # coded at the level asked for: per partner for a partner's question, per case for
        # a question without a partner (a partner covariate does not apply to it: 0)
        mean = means[partner is not None]
        if mean is None:
            return 0.0
        warnings.warn(
            f"covariates.csv: no {name!r} value for case {case_id!r}"
            f"{f' and partner {partner!r}' if partner else ''}; using the mean of the coded "
            f"cases ({mean:.3g})",
            UserWarning,
            stacklevel=2,
        )
        return mean

    def _static_lookup(self) -> dict[str, tuple[dict, tuple[float | None, float | None]]]:
        """Per covariate: values by (case, partner) and the means per level.

        ``{(case_id, partner or ""): value}`` (the first row of each in file order) and the
        means of the values coded per case and per partner (``None`` where none is
        coded); built once per ``covariates`` frame.
        """
        cov = self.covariates
        if self._static_cache is not None and self._static_cache[0] is cov:
            return self._static_cache[1]
        out: dict = {}
        if cov is not None and not cov.empty:
            frame = cov.assign(
                case_id=cov["case_id"].astype(str),
                partner=cov["partner"].fillna("").astype(str),
                value=cov["value"].astype(float),
            )
            for name, grp in frame.groupby("covariate", sort=False):
                first = grp.drop_duplicates(["case_id", "partner"])  # file order: first wins
                keys = zip(first["case_id"], first["partner"], strict=True)
                values = dict(zip(keys, first["value"], strict=True))
                per_partner = grp["partner"] != ""
                means = tuple(
                    float(grp.loc[m, "value"].mean()) if m.any() else None
                    for m in (~per_partner, per_partner)
                )
                out[str(name)] = (values, means)
        self._static_cache = (cov, out)
        return out

    def contexts(self) -> pd.Series:
        """Each event's contexts as a list of strings."""
        return self.events["contexts"].map(lambda s: [p.strip() for p in s.split(";") if p.strip()])

    # ------------------------------------------------------------------ derived sets
    def subset(self, case_ids: list[str]) -> CaseSet:
        """A case set with only ``case_ids``."""
        keep = set(case_ids)
        cov = self.covariates
        return CaseSet(
            self.cases[self.cases["case_id"].isin(keep)].reset_index(drop=True),
            self.outcomes[self.outcomes["case_id"].isin(keep)].reset_index(drop=True),
            self.events[self.events["case_id"].isin(keep)].reset_index(drop=True),
            root=self.root,
            covariates=None if cov is None else cov[cov["case_id"].isin(keep)],
        )

    @property
    def clusters(self) -> dict[str, str]:
        """Cluster of every case: the ``cluster`` column where given, else the country."""
        cases = self.cases
        country = cases["country"].astype(str)
        if "cluster" in cases.columns:
            col = cases["cluster"].fillna("").astype(str).str.strip()
            values = col.where(col != "", country)
        else:
            values = country
        return dict(zip(cases["case_id"].astype(str), values, strict=True))

    def known_dates(self) -> pd.Series:
        """The day each event becomes known: the end of its date's period."""
        from neutrality_forecast.evidence.covariates import known_dates

        return pd.Series(
            known_dates(self.events["date"], self.events["date_precision"]),
            index=self.events.index,
        )

    def truncate(self, case_id: str, as_of: pd.Timestamp | str) -> CaseSet:
        """What was known about ``case_id`` on ``as_of`` (other cases unchanged).

        The case window ends at ``as_of``; events not yet *known* on ``as_of`` are dropped
        (an event is known at the end of its date's period: a month-precision event at the
        end of its month); occurrences after ``as_of`` are removed, and a question left
        without any occurrence becomes one ``occurred=false`` row.
        """
        return self._cut({case_id}, pd.Timestamp(as_of))

    def as_known_on(self, as_of: pd.Timestamp | str) -> CaseSet:
        """Every case as known on ``as_of`` (real time): cases starting later are dropped."""
        as_of = pd.Timestamp(as_of)
        started = self.cases.loc[self.cases["window_start"] <= as_of, "case_id"].astype(str)
        return self.subset(list(started))._cut(set(started), as_of)

    def _cut(self, case_ids: set[str], as_of: pd.Timestamp) -> CaseSet:
        for cid in case_ids:
            if not self.case(cid)["window_start"] <= as_of:
                raise ValueError(f"as_of {as_of.date()} is before the window of case {cid!r}")
        cases = self.cases.copy()
        mask = cases["case_id"].isin(case_ids)
        cases.loc[mask, "window_end"] = cases.loc[mask, "window_end"].clip(upper=as_of)
        outcomes = self.outcomes.copy()
        mine = outcomes["case_id"].isin(case_ids)
        late = mine & outcomes["occurred"] & (outcomes["occurred_on"] > as_of)
        if late.any():
            keys = ["case_id", "outcome", "partner"]
            late_rows = outcomes[late]
            outcomes = outcomes[~late]

            def key(frame: pd.DataFrame) -> pd.Series:
                text = frame[keys].astype(object).where(frame[keys].notna(), "").astype(str)
                return text.agg("|".join, axis=1)

            left = set(key(outcomes))
            reopened = []
            for k, grp in late_rows.groupby(key(late_rows), sort=False):
                row = grp.iloc[[0]].copy()
                if k in left:
                    continue
                row["occurred"] = False
                row["occurred_on"] = pd.NaT
                row["resolution_note"] = f"not yet occurred on {as_of.date()}"
                reopened.append(row)
            outcomes = pd.concat([outcomes, *reopened]).sort_index(kind="stable")
            outcomes["outcome"] = pd.Categorical(
                outcomes["outcome"].astype(str), categories=list(S.OUTCOMES)
            )
        known = self.known_dates()
        keep = ~self.events["case_id"].isin(case_ids) | (known <= as_of)
        events = self.events[keep].reset_index(drop=True)
        return CaseSet(cases, outcomes.reset_index(drop=True), events, root=self.root,
                       covariates=self.covariates)  # fmt: skip

    def with_events(self, extra: pd.DataFrame) -> CaseSet:
        """A case set with ``extra`` typed events appended (ids must not clash)."""
        clash = set(extra["event_id"]) & set(self.events["event_id"])
        if clash:
            raise ValueError(f"event ids already in the case set: {sorted(clash)}")
        events = pd.concat([self.events, extra], ignore_index=True)
        for col, cats in _CATEGORIES[S.EVENTS_FILE].items():
            events[col] = pd.Categorical(
                events[col].astype(str), categories=list(cats), ordered=col in _ORDERED
            )
        return CaseSet(self.cases.copy(), self.outcomes.copy(), events, root=self.root,
                       covariates=self.covariates)  # fmt: skip

    # ------------------------------------------------------------------ io
    def to_frames_text(self) -> dict[str, pd.DataFrame]:
        """The three files as contract text (what :meth:`write` writes)."""
        return {
            S.CASES_FILE: _text(S.CASES_FILE, self.cases),
            S.OUTCOMES_FILE: _text(S.OUTCOMES_FILE, self.outcomes),
            S.EVENTS_FILE: _text(S.EVENTS_FILE, self.events),
        }

    def write(self, folder: str | Path) -> Path:
        """Write the three CSV files into ``folder`` (created if needed)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name, frame in self.to_frames_text().items():
            frame.to_csv(folder / name, index=False, lineterminator="\n")
        if self.covariates is not None:
            self.covariates.to_csv(folder / COVARIATES_FILE, index=False, lineterminator="\n")
        return folder

    def data_hash(self) -> str:
        """SHA-256 of the canonical text of the three files (row order kept)."""
        if self._hash is None:
            digest = hashlib.sha256()
            for name, frame in self.to_frames_text().items():
                digest.update(name.encode())
                digest.update(frame.to_csv(index=False, lineterminator="\n").encode())
            if self.covariates is not None:
                digest.update(COVARIATES_FILE.encode())
                digest.update(self.covariates.to_csv(index=False, lineterminator="\n").encode())
            self._hash = digest.hexdigest()
        return self._hash

    def summary(self) -> pd.DataFrame:
        """One row per case: outcomes, events, event date range and window."""
        ev = self.events.groupby("case_id", observed=True)["date"].agg(["count", "min", "max"])
        n_out = self.outcomes.groupby("case_id").size()
        occurred = self.outcomes[self.outcomes["occurred"]].groupby("case_id").size()
        out = self.cases[["case_id", "country", "window_start", "window_end"]].copy()
        out = out.set_index("case_id")
        out["outcomes"] = n_out.reindex(out.index).fillna(0).astype(int)
        out["occurred"] = occurred.reindex(out.index).fillna(0).astype(int)
        out["events"] = ev["count"].reindex(out.index).fillna(0).astype(int)
        out["first_event"] = ev["min"].reindex(out.index)
        out["last_event"] = ev["max"].reindex(out.index)
        return out.reset_index()
