"""Read one contract CSV file into a frame of raw text, collecting every problem.

Row numbers in messages are **1-based data row numbers**: the header is row 0, the first
record after it is row 1. Blank lines are skipped and not counted. A record with the wrong
number of fields is reported and left out of the column checks.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pandas as pd

from neutrality_forecast.casesets.errors import Violation

__all__ = ["read_raw"]

csv.field_size_limit(10_000_000)


def read_raw(
    path: Path, required: tuple[str, ...], violations: list[Violation]
) -> pd.DataFrame | None:
    """Parse ``path`` as UTF-8 CSV with a header; return text cells indexed by data row.

    Parameters
    ----------
    path : Path
        The CSV file.
    required : tuple of str
        Columns the contract requires; each missing one is reported at row 0.
    violations : list of Violation
        Problems are appended here; nothing is raised.

    Returns
    -------
    DataFrame or None
        ``None`` when the file cannot be read at all. Otherwise every column as ``str``
        (stripped), the index holding data row numbers; required columns that are missing
        are absent from the frame.

    """
    name = path.name
    if not path.is_file():
        violations.append(Violation(name, None, "-", f"file not found: {path}"))
        return None
    raw = path.read_bytes()
    if raw.removeprefix(b"\xef\xbb\xbf").strip() == b"":
        violations.append(Violation(name, None, "-", "file is empty"))
        return None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        byte = raw[exc.start : exc.start + 1].hex()
        violations.append(
            Violation(
                name,
                max(line - 1, 0),
                "-",
                f"wrong encoding: byte 0x{byte} on file line {line} is not valid UTF-8 "
                "(save the file as UTF-8)",
            )
        )
        return None

    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    records: list[tuple[int, list[str]]] = []
    header: list[str] | None = None
    data_row = 0
    try:
        for fields in reader:
            if not fields or all(f.strip() == "" for f in fields):
                continue  # blank line
            if header is None:
                header = [f.strip() for f in fields]
                continue
            data_row += 1
            records.append((data_row, fields))
    except csv.Error as exc:
        violations.append(
            Violation(name, data_row + 1 if header else 0, "-", f"malformed CSV: {exc}")
        )
        return None
    if header is None:
        violations.append(Violation(name, None, "-", "file is empty"))
        return None

    bad_header = False
    seen: set[str] = set()
    for i, col in enumerate(header, start=1):
        if col == "":
            violations.append(Violation(name, 0, f"#{i}", "empty column name in header"))
            bad_header = True
        elif col in seen:
            violations.append(Violation(name, 0, col, "duplicate column name in header"))
            bad_header = True
        seen.add(col)
    for col in required:
        if col not in seen:
            violations.append(Violation(name, 0, col, "required column missing"))
    if bad_header:
        return None
    if not records:
        violations.append(Violation(name, None, "-", "file has a header but no data rows"))
        return None

    width = len(header)
    rows: list[list[str]] = []
    index: list[int] = []
    for number, fields in records:
        if len(fields) != width:
            kind = "too many" if len(fields) > width else "too few"
            col = header[width - 1] if len(fields) > width else header[len(fields)]
            violations.append(
                Violation(
                    name,
                    number,
                    col,
                    f"{kind} fields: {len(fields)} found, the header has {width}",
                )
            )
            continue
        rows.append([f.strip() for f in fields])
        index.append(number)
    frame = pd.DataFrame(rows, columns=header, index=pd.Index(index, name="row"), dtype=object)
    return frame.astype(str) if len(frame) else frame
