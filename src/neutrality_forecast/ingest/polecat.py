"""Stream POLECAT event files into the data contract's ``events.csv`` with DuckDB.

How it works (one pass over the input, memory bounded by DuckDB's ``memory_limit``):

1. Each file's header line is read in Python; the mapping's logical fields are located in
   it by name (a file lacking a required column is refused before anything is read).
2. DuckDB scans every file with its own header's columns plus one sentinel column, no
   quoting, NULL padding and no NULL strings: a line with an extra field fills the sentinel
   and a short line leaves its last column NULL, so both are counted as malformed and a
   shifted or truncated line is never read into the wrong columns. Lines with invalid
   UTF-8 in a column the mapping reads are rejected by DuckDB (``store_rejects``) and
   counted; DuckDB decodes only the columns it reads, so a stray byte in an unread column
   (which cannot reach the output) is not counted.
3. Each well-formed row is mapped (event type, contexts, actor codes, Admiralty grades) and
   tagged with the first reason it is dropped for, or kept. One streaming ``GROUP BY``
   counts the dropped rows per reason and keeps the (few) relevant rows in full.
4. Kept rows are assigned to every case whose country is the actor's or recipient's and
   whose window holds the date, de-duplicated on (case, POLECAT Event ID), and written with
   ``COPY ... TO`` as ``events.csv``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb

from neutrality_forecast.casesets import schema as S
from neutrality_forecast.ingest.mapping import (
    REQUIRED_FIELDS,
    CaseSpec,
    PolecatMapping,
    cases_from_csv,
    load_mapping,
)

__all__ = ["POLECAT_HEADER", "IngestError", "IngestReport", "ingest_polecat", "read_header"]

#: The POLECAT header (public weekly files; later files write "Event Intensity" for
#: "Intensity"). Used by the benchmark and the tests to write files in the real layout.
POLECAT_HEADER = (
    "Event ID", "Event Date", "Event Type", "Event Mode", "Intensity", "Quad Code", "Contexts",
    "Actor Name", "Actor Country", "Actor COW", "Primary Actor Sector", "Actor Sectors",
    "Actor Title", "Actor Name Raw", "Wikipedia Actor ID", "Recipient Name",
    "Recipient Country", "Recipient COW", "Primary Recipient Sector", "Recipient Sectors",
    "Recipient Title", "Recipient Name Raw", "Wikipedia Recipient ID", "Placename", "City",
    "District", "Province", "Country", "Latitude", "Longitude", "GeoNames ID", "Raw Placename",
    "Feature Type", "Source", "Publication Date", "Story People", "Story Organizations",
    "Story Locations", "Language", "Version",
)  # fmt: skip

_NEVER = "\x1e"  # ASCII record separator: never a POLECAT cell, so no cell reads as NULL
_OPTIONAL = (
    "publication_date", "mode", "intensity", "quad_code", "contexts", "actor_name",
    "actor_sector", "recipient_name", "recipient_sector", "publisher", "language", "version",
)  # fmt: skip
MALFORMED = "malformed line"
OUTPUT_COLUMNS = (
    *S.REQUIRED_COLUMNS[S.EVENTS_FILE], "mode", "actor_sector", "recipient_sector", "coder",
    "notes",
)  # fmt: skip


class IngestError(ValueError):
    """Input that cannot be ingested at all (missing file, header without a required column)."""


@dataclass
class IngestReport:
    """What an ingestion read, wrote and skipped.

    Attributes
    ----------
    files : list of str
        Input files.
    rows_read : int
        Non-blank data lines in all files (well-formed + malformed).
    rows_written : int
        Rows in ``events.csv`` (an event concerning two cases is written twice).
    malformed : int
        Lines skipped as malformed: wrong field count, or invalid UTF-8 in a column the
        mapping reads.
    dropped : dict of str to int
        Well-formed rows dropped by the mapping, per reason.
    duplicates : int
        Kept rows dropped as repeats of an earlier (case, Event ID).
    events_csv : str
        Path of the written file.
    seconds : float
        Wall time.
    validated : bool or None
        Whether the output folder passed :func:`~neutrality_forecast.load_case_set`
        (``None`` when it holds no cases.csv/outcomes.csv to validate with).
    validation_error : str or None
        The validation message when it failed.

    """

    files: list[str]
    rows_read: int = 0
    rows_written: int = 0
    malformed: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    events_csv: str = ""
    seconds: float = 0.0
    validated: bool | None = None
    validation_error: str | None = None

    @property
    def rows_per_second(self) -> float:
        """Input rows per second of wall time."""
        return self.rows_read / self.seconds if self.seconds > 0 else float("nan")

    def to_dict(self) -> dict:
        """JSON-ready dictionary (with ``rows_per_second``)."""
        d = asdict(self)
        d["rows_per_second"] = round(self.rows_per_second, 1) if self.seconds > 0 else None
        return d

    def to_json(self) -> str:
        """The report as indented JSON."""
        return json.dumps(self.to_dict(), indent=2)


def read_header(path: Path) -> list[str]:
    """The tab-separated header of ``path`` (BOM and line ending stripped).

    Raises
    ------
    IngestError
        The file is missing, empty or its first line is not UTF-8.

    """
    if not path.is_file():
        raise IngestError(f"file not found: {path}")
    with path.open("rb") as fh:
        first = fh.readline(1 << 20)
    if not first.strip():
        raise IngestError(f"{path}: empty file or blank header line")
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise IngestError(f"{path}: header is not valid UTF-8 ({exc})") from exc
    return [c.strip() for c in text.rstrip("\r\n").split("\t")]


def _lit(value: str) -> str:
    """A SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


def _lambda(var: str, body: str) -> str:
    """A DuckDB lambda in the syntax the installed version accepts."""
    major, minor = (int(p) for p in duckdb.__version__.split(".")[:2])
    return f"lambda {var}: {body}" if (major, minor) >= (1, 3) else f"{var} -> {body}"


def _case_when(expr: str, table: dict[str, str]) -> str:
    """``CASE expr WHEN k THEN v ... END`` (NULL when nothing matches)."""
    if not table:
        return "NULL::VARCHAR"
    arms = " ".join(f"WHEN {_lit(k)} THEN {_lit(v)}" for k, v in sorted(table.items()))
    return f"(CASE {expr} {arms} ELSE NULL END)"


def _file_select(path: Path, file_no: int, mapping: PolecatMapping) -> str:
    """SELECT one file as (file_no, ok, <logical fields>) with text cells."""
    header = read_header(path)
    position: dict[str, int] = {}
    for i, name in enumerate(header, start=1):
        position.setdefault(name, i)
    picked: dict[str, int | None] = {}
    for key in (*REQUIRED_FIELDS, *_OPTIONAL):
        names = mapping.columns.get(key, [])
        picked[key] = next((position[n] for n in names if n in position), None)
        if picked[key] is None and key in REQUIRED_FIELDS:
            raise IngestError(
                f"{path}: no column for required field {key!r} (looked for "
                f"{', '.join(repr(n) for n in names)}; header has {len(header)} columns)"
            )
    width = len(header)
    cells = ", ".join(
        f"nz(c{pos}) AS {key}" if pos else f"NULL::VARCHAR AS {key}" for key, pos in picked.items()
    )
    types = ", ".join(f"'c{i}': 'VARCHAR'" for i in range(1, width + 1))
    # One sentinel column beyond the header: a line with an extra field fills it, a short
    # line leaves the last real column NULL (null_padding); empty cells stay '' (nullstr).
    scan = (
        f"read_csv({_lit(str(path))}, columns={{{types}, 'c_extra': 'VARCHAR'}}, "
        "delim='\t', header=false, skip=1, quote='', escape='', auto_detect=false, "
        f"strict_mode=false, null_padding=true, nullstr={_lit(_NEVER)}, store_rejects=true, "
        "max_line_size=4194304)"
    )
    return (
        f"SELECT {file_no} AS file_no, (c{width} IS NOT NULL AND c_extra IS NULL) AS ok, "
        f"{cells} FROM {scan}"
    )


def _pipeline_sql(files: list[Path], mapping: PolecatMapping, cases: list[CaseSpec]) -> str:
    """The tagged-row query: every well-formed or malformed row with a drop reason or NULL."""
    src = "\nUNION ALL\n".join(_file_select(p, i, mapping) for i, p in enumerate(files))
    case_list = "[" + ", ".join(
        f"{{'id': {_lit(c.case_id)}, 'c': {_lit(c.country)}, "
        f"'s': DATE {_lit(c.window_start.date().isoformat())}, "
        f"'e': DATE {_lit(c.window_end.date().isoformat())}}}"
        for c in cases
    ) + "]"  # fmt: skip
    date_expr = "try_strptime(left(date, 10), '%Y-%m-%d')::DATE"
    if mapping.fallback_to_publication_date:
        date_expr = (
            f"coalesce({date_expr}, try_strptime(left(publication_date, 10), '%Y-%m-%d')::DATE)"
        )
    aliases = mapping.country_aliases

    def country(col: str) -> str:
        up = f"upper({col})"
        aliased = f"coalesce({_case_when(up, aliases)}, {up})" if aliases else up
        return f"(CASE WHEN regexp_full_match({aliased}, '[A-Z]{{3}}') THEN {aliased} END)"

    def code(name_col: str, country_col: str) -> str:
        by_name = _case_when(f"lower({name_col})", mapping.actor_names)
        return f"coalesce({by_name}, {country_col})"

    seps = "".join("\\" + s if s in "]\\^-" else s for s in mapping.list_separators)
    split = f"regexp_split_to_array({{col}}, '[{seps}]')"
    ctx_map = _case_when("lower(trim(x))", mapping.contexts)
    contexts = (
        "coalesce(array_to_string(list_sort(list_distinct(list_filter(list_transform("
        f"{split.format(col='contexts')}, {_lambda('x', ctx_map)}), {_lambda('x', 'x IS NOT NULL')}"
        "))), ';'), '')"
    )
    reliability = (
        f"coalesce({_case_when('lower(publisher)', mapping.publisher_reliability)}, "
        f"{_lit(mapping.source_reliability)})"
    )
    countries = ", ".join(sorted({_lit(c.country) for c in cases}))
    cand = (
        f"CASE WHEN ac IN ({countries}) OR rc IN ({countries}) THEN "
        f"list_filter({case_list}, {_lambda('x', 'x.c = ac OR x.c = rc')}) ELSE [] END"
    )
    inwin = f"list_filter(cand, {_lambda('x', 'd BETWEEN x.s AND x.e')})"
    keep_ids = f"list_sort(list_transform(inwin, {_lambda('x', 'x.id')}))"
    sector = "nullif(trim(" + split.format(col="{col}") + "[1]), '')"
    summary = (
        "concat(coalesce(actor_name, actor), ' -> ', coalesce(recipient_name, recipient), ': ', "
        "etype, coalesce(' (' || mode || ')', ''), '. Machine-coded event (POLECAT).')"
    )
    source = (
        "concat('POLECAT', coalesce(' ' || version, ''), ': ', "
        "coalesce(publisher, 'publisher not given'))"
    )
    notes = (
        "concat_ws('; ', 'polecat_event_id=' || event_id, 'quad=' || quad_code, "
        "'intensity=' || intensity, 'language=' || language, 'published=' || publication_date)"
    )
    payload = {
        "k_event_id": "event_id",
        "k_date": "strftime(d, '%Y-%m-%d')",
        "k_actor": "actor",
        "k_recipient": "recipient",
        "k_event_type": "etype",
        "k_contexts": contexts,
        "k_source": source,
        "k_reliability": reliability,
        "k_summary": summary,
        "k_mode": "lower(mode)",
        "k_actor_sector": sector.format(col="actor_sector"),
        "k_recipient_sector": sector.format(col="recipient_sector"),
        "k_notes": notes,
        "k_cases": keep_ids,
    }
    kept = ",\n  ".join(f"CASE WHEN reason IS NULL THEN {e} END AS {k}" for k, e in payload.items())
    return f"""
WITH src AS ({src}),
typed AS (
  SELECT *, {date_expr} AS d, {_case_when("upper(event_type)", mapping.event_types)} AS etype,
    {country("actor_country")} AS ac, {country("recipient_country")} AS rc
  FROM src
),
coded AS (
  SELECT *, {code("actor_name", "ac")} AS actor, {code("recipient_name", "rc")} AS recipient,
    {cand} AS cand
  FROM typed
),
tagged AS (
  SELECT *, CASE
      WHEN NOT ok THEN {_lit(MALFORMED)}
      WHEN event_id IS NULL THEN 'missing Event ID'
      WHEN len(cand) = 0 THEN 'no case country involved'
      WHEN d IS NULL THEN 'missing or unparseable date'
      WHEN len({inwin}) = 0 THEN 'outside case windows'
      WHEN etype IS NULL THEN 'unknown event type'
      WHEN actor IS NULL THEN 'actor has no code'
      WHEN recipient IS NULL THEN 'recipient has no code'
    END AS reason
  FROM coded
),
windowed AS (SELECT *, {inwin} AS inwin FROM tagged)
SELECT reason,
  {kept},
  count(*) AS n
FROM windowed
GROUP BY ALL
"""


def _output_sql(mapping: PolecatMapping, target: Path) -> str:
    rel = "k_reliability"
    cred = _lit(mapping.info_credibility)
    cols = {
        "event_id": f"case_id || '-' || {_lit(mapping.event_id_prefix)} || k_event_id",
        "case_id": "case_id",
        "date": "k_date",
        "date_precision": "'day'",
        "actor": "k_actor",
        "recipient": "k_recipient",
        "event_type": "k_event_type",
        "contexts": "k_contexts",
        "source": "k_source",
        "source_reliability": rel,
        "info_credibility": cred,
        "summary": "k_summary",
        "mode": "coalesce(k_mode, '')",
        "actor_sector": "coalesce(k_actor_sector, '')",
        "recipient_sector": "coalesce(k_recipient_sector, '')",
        "coder": _lit(mapping.coder),
        "notes": "k_notes",
    }
    select = ", ".join(f"{e} AS {c}" for c, e in cols.items())
    order = "case_id, k_date, k_event_id, k_actor, k_recipient, k_event_type, k_contexts, k_summary"
    return f"""
COPY (
  SELECT {select} FROM (
    SELECT *, row_number() OVER (PARTITION BY case_id, k_event_id ORDER BY {order}) AS rn
    FROM (SELECT *, unnest(k_cases) AS case_id FROM staged WHERE reason IS NULL)
  ) WHERE rn = 1
  ORDER BY case_id, k_date, k_event_id
) TO {_lit(str(target))} (FORMAT csv, HEADER true, DELIMITER ',', QUOTE '"', ESCAPE '"')
"""


def ingest_polecat(
    files: list[str | Path],
    *,
    out: str | Path,
    mapping: str | Path | PolecatMapping | None = None,
    cases: str | Path | None = None,
    case_id: str | None = None,
    memory_limit: str = "1GB",
    threads: int | None = None,
    validate: bool = True,
) -> IngestReport:
    """Convert POLECAT event files into ``OUT/events.csv`` (the data contract).

    Parameters
    ----------
    files : list of str or Path
        POLECAT tab-separated files (each with its own header).
    out : str or Path
        Output folder (created). ``events.csv`` is replaced atomically.
    mapping : str, Path or PolecatMapping, optional
        The mapping (default ``models/polecat.toml``).
    cases : str or Path, optional
        A case set folder or a ``cases.csv``: its cases (country, window) replace the
        mapping's; ``cases.csv`` and ``outcomes.csv`` found next to it are copied to ``out``
        so that the output is a complete case set.
    case_id : str, optional
        Assign events to this case only.
    memory_limit : str
        DuckDB memory limit; beyond it DuckDB spills to a temporary folder.
    threads : int, optional
        DuckDB threads (default: all cores).
    validate : bool
        Validate ``out`` with :func:`~neutrality_forecast.load_case_set` when it holds
        ``cases.csv`` and ``outcomes.csv``.

    Returns
    -------
    IngestReport

    Raises
    ------
    IngestError
        No input file, a missing file or required column, no case to assign events to.
    MappingError
        Invalid mapping or cases file.

    """
    started = time.perf_counter()
    paths = [Path(f) for f in files]
    if not paths:
        raise IngestError("no input file given")
    mp = mapping if isinstance(mapping, PolecatMapping) else load_mapping(mapping)
    specs = cases_from_csv(cases) if cases is not None else list(mp.cases)
    if case_id is not None:
        specs = [c for c in specs if c.case_id == case_id]
        if not specs:
            raise IngestError(f"case {case_id!r} is not among the cases to assign events to")
    if not specs:
        raise IngestError("no cases to assign events to: give --cases or [[cases]] in the mapping")
    for p in paths:
        read_header(p)
    dest = Path(out)
    dest.mkdir(parents=True, exist_ok=True)
    report = IngestReport(files=[str(p) for p in paths])
    target = dest / S.EVENTS_FILE
    with tempfile.TemporaryDirectory(prefix=".ingest-", dir=dest) as tmp:
        con = duckdb.connect()
        try:
            con.execute(f"SET memory_limit = {_lit(memory_limit)}")
            con.execute(f"SET temp_directory = {_lit(tmp)}")
            con.execute("SET preserve_insertion_order = false")
            con.execute("SET enable_progress_bar = false")
            if threads:
                con.execute(f"SET threads = {int(threads)}")
            missing = ", ".join(_lit(m) for m in mp.missing) or "''"
            con.execute(
                f"CREATE MACRO nz(x) AS CASE WHEN trim(x) IN ({missing}) THEN NULL ELSE trim(x) END"
            )
            con.execute("CREATE TEMP TABLE staged AS " + _pipeline_sql(paths, mp, specs))
            counts = con.execute(
                "SELECT coalesce(reason, ''), sum(n)::BIGINT, "
                "sum(n * coalesce(len(k_cases), 0))::BIGINT FROM staged GROUP BY ALL ORDER BY 1"
            ).fetchall()
            rejected = con.execute(
                "SELECT count(*) FROM (SELECT DISTINCT scan_id, file_id, line FROM reject_errors)"
            ).fetchone()[0]
            part = Path(tmp) / "events.part.csv"
            con.execute(_output_sql(mp, part))
            written = con.execute(
                f"SELECT count(*) FROM read_csv({_lit(str(part))}, header=true, all_varchar=true)"
            ).fetchone()[0]
        finally:
            con.close()
        shutil.move(str(part), target)
    kept_assigned = 0
    for reason, n, assigned in counts:
        report.rows_read += int(n)
        if reason == "":
            kept_assigned = int(assigned)
        elif reason == MALFORMED:
            report.malformed += int(n)
        else:
            report.dropped[reason] = int(n)
    report.rows_read += int(rejected)
    report.malformed += int(rejected)
    report.rows_written = int(written)
    report.duplicates = kept_assigned - report.rows_written
    report.events_csv = str(target)
    if cases is not None:
        _copy_case_files(Path(cases), dest)
    if validate:
        _validate(dest, report)
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def _copy_case_files(cases: Path, dest: Path) -> None:
    folder = cases if cases.is_dir() else cases.parent
    for name in (S.CASES_FILE, S.OUTCOMES_FILE):
        src = folder / name
        if src.is_file() and src.resolve() != (dest / name).resolve():
            shutil.copyfile(src, dest / name)


def _validate(dest: Path, report: IngestReport) -> None:
    from neutrality_forecast.casesets import CaseSetError, load_case_set

    if not ((dest / S.CASES_FILE).is_file() and (dest / S.OUTCOMES_FILE).is_file()):
        return
    try:
        load_case_set(dest)
    except CaseSetError as exc:
        report.validated = False
        report.validation_error = str(exc)
    else:
        report.validated = True
