"""The POLECAT -> data contract mapping (``models/polecat.toml``), loaded and checked.

The mapping says which POLECAT header names feed which logical fields, how POLECAT event
types and contexts become the contract's PLOVER enumerations, how actors get codes, which
Admiralty grades machine-coded events receive and which cases (country + window) events are
assigned to. Everything is checked when loaded, so that a bad mapping fails before a
10-million-row file is read.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from neutrality_forecast.casesets import schema as S
from neutrality_forecast.paths import default_config_dir

__all__ = [
    "REQUIRED_FIELDS",
    "CaseSpec",
    "MappingError",
    "PolecatMapping",
    "cases_from_csv",
    "default_mapping_path",
    "load_mapping",
]

REQUIRED_FIELDS = ("event_id", "date", "event_type", "actor_country", "recipient_country")
OPTIONAL_FIELDS = (
    "publication_date", "mode", "intensity", "quad_code", "contexts", "actor_name",
    "actor_sector", "recipient_name", "recipient_sector", "publisher", "language", "version",
)  # fmt: skip
_CODE = re.compile(r"^[A-Za-z0-9_.\-]+$")
_ISO3 = re.compile(r"^[A-Z]{3}$")


class MappingError(ValueError):
    """The mapping file (or the cases it names) is invalid."""


@dataclass(frozen=True)
class CaseSpec:
    """A case events can be assigned to: its country and observation window."""

    case_id: str
    country: str
    window_start: pd.Timestamp
    window_end: pd.Timestamp


@dataclass
class PolecatMapping:
    """A validated ``polecat.toml``.

    Attributes
    ----------
    columns : dict of str to list of str
        Logical field -> POLECAT header names, first present wins.
    missing : list of str
        Cell values meaning "missing".
    list_separators : list of str
        Separators inside list cells (Contexts, Sectors).
    fallback_to_publication_date : bool
        Use Publication Date when Event Date is missing or unparseable.
    event_types, contexts : dict of str to str
        Upper-/lower-cased POLECAT value -> contract value.
    actor_names : dict of str to str
        Lower-cased actor name -> contract code.
    country_aliases : dict of str to str
        POLECAT country cell -> ISO3.
    source_reliability, info_credibility : str
        Default Admiralty grades.
    publisher_reliability : dict of str to str
        Lower-cased publisher -> Admiralty letter.
    event_id_prefix, coder : str
        Output conventions.
    cases : list of CaseSpec
        Cases from the mapping (replaced by a cases.csv when one is given).
    path : Path or None
        Where the mapping was read from.

    """

    columns: dict[str, list[str]]
    missing: list[str] = field(default_factory=lambda: ["", "None"])
    list_separators: list[str] = field(default_factory=lambda: [";"])
    fallback_to_publication_date: bool = False
    event_types: dict[str, str] = field(default_factory=dict)
    contexts: dict[str, str] = field(default_factory=dict)
    actor_names: dict[str, str] = field(default_factory=dict)
    country_aliases: dict[str, str] = field(default_factory=dict)
    source_reliability: str = "F"
    info_credibility: str = "6"
    publisher_reliability: dict[str, str] = field(default_factory=dict)
    event_id_prefix: str = "PC-"
    coder: str = "POLECAT (machine-coded)"
    cases: list[CaseSpec] = field(default_factory=list)
    path: Path | None = None

    def with_cases(self, cases: list[CaseSpec]) -> PolecatMapping:
        """A copy assigning events to ``cases`` instead of the mapping's own."""
        copy = PolecatMapping(**{k: getattr(self, k) for k in self.__dataclass_fields__})
        copy.cases = list(cases)
        return copy


def default_mapping_path() -> Path:
    """``models/polecat.toml`` of the checkout (or of the installed package)."""
    return default_config_dir() / "polecat.toml"


def _str_map(raw: object, where: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise MappingError(f"[{where}] must be a table of strings")
    return {str(k): v for k, v in raw.items()}


def _case_spec(case_id: str, country: str, start: str, end: str, where: str) -> CaseSpec:
    if not _CODE.match(case_id or ""):
        raise MappingError(f"{where}: case_id {case_id!r} is not a valid code")
    if not _ISO3.match(country or ""):
        raise MappingError(f"{where}: country {country!r} is not an ISO3 code")
    for v in (start, end):
        if not S.is_iso_date(str(v)):
            raise MappingError(f"{where}: window date {v!r} is not YYYY-MM-DD")
    ws, we = pd.Timestamp(str(start)), pd.Timestamp(str(end))
    if ws > we:
        raise MappingError(f"{where}: window_end is before window_start")
    return CaseSpec(case_id, country, ws, we)


def load_mapping(path: str | Path | None = None) -> PolecatMapping:
    """Read and check a ``polecat.toml`` mapping.

    Parameters
    ----------
    path : str or Path, optional
        The mapping file (default: :func:`default_mapping_path`).

    Returns
    -------
    PolecatMapping

    Raises
    ------
    MappingError
        Unreadable TOML, a missing required field, a target outside the contract's
        enumerations, an invalid actor code, Admiralty grade or case.

    """
    p = Path(path) if path is not None else default_mapping_path()
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise MappingError(f"cannot read mapping {p}: {exc}") from exc

    cols_raw = raw.get("columns", {})
    columns: dict[str, list[str]] = {}
    for key, names in cols_raw.items():
        if key not in REQUIRED_FIELDS + OPTIONAL_FIELDS:
            raise MappingError(f"[columns] unknown field {key!r}")
        names = [names] if isinstance(names, str) else names
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise MappingError(f"[columns] {key} must be a header name or a list of names")
        columns[key] = names
    for key in REQUIRED_FIELDS:
        if key not in columns:
            raise MappingError(f"[columns] required field {key!r} is missing")

    inp = raw.get("input", {})
    event_types = {k.upper(): v for k, v in _str_map(raw.get("event_types"), "event_types").items()}
    for k, v in event_types.items():
        if v not in S.EVENT_TYPES:
            raise MappingError(f"[event_types] {k} -> {v!r} is not a contract event type")
    contexts = {k.lower(): v for k, v in _str_map(raw.get("contexts"), "contexts").items()}
    for k, v in contexts.items():
        if v not in S.CONTEXTS:
            raise MappingError(f"[contexts] {k} -> {v!r} is not a contract context")
    actors = raw.get("actors", {})
    names = {k.strip().lower(): v for k, v in _str_map(actors.get("names"), "actors.names").items()}
    for k, v in names.items():
        if not _CODE.match(v):
            raise MappingError(f"[actors.names] {k!r} -> {v!r} is not a valid code")
    aliases = _str_map(actors.get("country_aliases"), "actors.country_aliases")
    for k, v in aliases.items():
        if not _ISO3.match(v):
            raise MappingError(f"[actors.country_aliases] {k!r} -> {v!r} is not ISO3")
    grading = raw.get("grading", {})
    rel = str(grading.get("source_reliability", "F"))
    cred = str(grading.get("info_credibility", "6"))
    if rel not in S.SOURCE_RELIABILITY:
        raise MappingError(f"[grading] source_reliability {rel!r} must be A-F")
    if cred not in S.INFO_CREDIBILITY:
        raise MappingError(f"[grading] info_credibility {cred!r} must be 1-6")
    pubs = {
        k.lower(): v for k, v in _str_map(grading.get("publishers"), "grading.publishers").items()
    }
    for k, v in pubs.items():
        if v not in S.SOURCE_RELIABILITY:
            raise MappingError(f"[grading.publishers] {k!r} -> {v!r} must be A-F")
    out = raw.get("output", {})
    cases = [
        _case_spec(
            str(c.get("case_id", "")),
            str(c.get("country", "")),
            str(c.get("window_start", "")),
            str(c.get("window_end", "")),
            f"[[cases]] #{i}",
        )
        for i, c in enumerate(raw.get("cases", []), start=1)
    ]
    seps = [str(s) for s in inp.get("list_separators", [";"])]
    if not seps or any(len(s) != 1 for s in seps):
        raise MappingError("[input] list_separators must be single characters")
    return PolecatMapping(
        columns=columns,
        missing=[str(m) for m in inp.get("missing", ["", "None"])],
        list_separators=seps,
        fallback_to_publication_date=bool(
            raw.get("dates", {}).get("fallback_to_publication_date", False)
        ),
        event_types=event_types,
        contexts=contexts,
        actor_names=names,
        country_aliases=aliases,
        source_reliability=rel,
        info_credibility=cred,
        publisher_reliability=pubs,
        event_id_prefix=str(out.get("event_id_prefix", "PC-")),
        coder=str(out.get("coder", "POLECAT (machine-coded)")),
        cases=cases,
        path=p,
    )


def cases_from_csv(path: str | Path) -> list[CaseSpec]:
    """Case specs (country and window) from a contract ``cases.csv``.

    Parameters
    ----------
    path : str or Path
        A ``cases.csv`` file, or a case set folder holding one.

    Raises
    ------
    MappingError
        The file is missing or a row is not a valid case.

    """
    p = Path(path)
    if p.is_dir():
        p = p / S.CASES_FILE
    try:
        frame = pd.read_csv(p, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as exc:
        raise MappingError(f"cannot read cases file {p}: {exc}") from exc
    need = ("case_id", "country", "window_start", "window_end")
    missing = [c for c in need if c not in frame.columns]
    if missing:
        raise MappingError(f"{p}: missing column(s) {', '.join(missing)}")
    return [
        _case_spec(
            r.case_id.strip(), r.country.strip(), r.window_start.strip(), r.window_end.strip(),
            f"{p.name} row {i}",
        )
        for i, r in enumerate(frame.itertuples(index=False), start=1)
    ]  # fmt: skip
