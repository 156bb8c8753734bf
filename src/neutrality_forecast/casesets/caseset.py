"""The typed, validated case set."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from neutrality_forecast.casesets import schema as S

__all__ = ["CaseSet"]

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

    def contexts(self) -> pd.Series:
        """Each event's contexts as a list of strings."""
        return self.events["contexts"].map(lambda s: [p.strip() for p in s.split(";") if p.strip()])

    # ------------------------------------------------------------------ derived sets
    def subset(self, case_ids: list[str]) -> CaseSet:
        """A case set with only ``case_ids``."""
        keep = set(case_ids)
        return CaseSet(
            self.cases[self.cases["case_id"].isin(keep)].reset_index(drop=True),
            self.outcomes[self.outcomes["case_id"].isin(keep)].reset_index(drop=True),
            self.events[self.events["case_id"].isin(keep)].reset_index(drop=True),
            root=self.root,
        )

    def truncate(self, case_id: str, as_of: pd.Timestamp | str) -> CaseSet:
        """What was known about ``case_id`` on ``as_of``.

        The case window ends at ``as_of``; later events are dropped and outcomes that
        occurred after ``as_of`` become ``occurred=false``. Other cases are unchanged.
        """
        as_of = pd.Timestamp(as_of)
        case = self.case(case_id)
        if not case["window_start"] <= as_of:
            raise ValueError(f"as_of {as_of.date()} is before the window of case {case_id!r}")
        cases = self.cases.copy()
        mask = cases["case_id"] == case_id
        cases.loc[mask, "window_end"] = min(as_of, case["window_end"])
        outcomes = self.outcomes.copy()
        late = (outcomes["case_id"] == case_id) & (outcomes["occurred_on"] > as_of)
        outcomes.loc[late, "occurred"] = False
        outcomes.loc[late, "occurred_on"] = pd.NaT
        events = self.events[
            (self.events["case_id"] != case_id) | (self.events["date"] <= as_of)
        ].reset_index(drop=True)
        return CaseSet(cases, outcomes, events, root=self.root)

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
        return CaseSet(self.cases.copy(), self.outcomes.copy(), events, root=self.root)

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
        return folder

    def data_hash(self) -> str:
        """SHA-256 of the canonical text of the three files (row order kept)."""
        if self._hash is None:
            digest = hashlib.sha256()
            for name, frame in self.to_frames_text().items():
                digest.update(name.encode())
                digest.update(frame.to_csv(index=False, lineterminator="\n").encode())
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
