"""Merge per-case coding folders (data/_parts/<CASE>/) into the shipped case set data/cases/.

Kept for provenance: the shipped files were assembled with this script from folders coded
case by case. Run from the repository root: ``python data/scripts/merge_parts.py``.
"""

import csv
import sys
from pathlib import Path

parts = Path("data/_parts")
out = Path("data/cases")
out.mkdir(parents=True, exist_ok=True)
for name in ("cases.csv", "outcomes.csv", "events.csv"):
    rows, header = [], []
    for folder in sorted(p for p in parts.iterdir() if p.is_dir()):
        f = folder / name
        if not f.is_file():
            continue
        with f.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            for col in reader.fieldnames or []:
                if col not in header:
                    header.append(col)
            rows.extend(reader)
    if name == "events.csv":
        rows.sort(key=lambda r: (r["case_id"], r["date"], r["event_id"]))
    with (out / name).open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=header, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(name, len(rows), file=sys.stderr)
