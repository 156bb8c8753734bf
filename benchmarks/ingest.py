"""Benchmark POLECAT ingestion: generate a large synthetic POLECAT file, ingest it, measure.

    python benchmarks/ingest.py [--rows 10000000] [--dir /tmp] [--out ingest.json]

The file is written in chunks in the public POLECAT layout (40 tab-separated columns, see
models/polecat.toml) from a fixed seed, with a small share of deliberately malformed lines
(truncated, an extra field, invalid UTF-8) and of rows the mapping drops (unknown event
types, missing countries or dates). Events involve the shipped case countries at a few
percent, like real POLECAT where a single small state is a sliver of world news.

The ingestion runs in a child process (the `ingest-polecat` code path, against the shipped
data/cases) so that its peak resident memory can be read from
``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``. Prints and writes JSON with rows per
second and peak memory; the generated file is deleted unless --keep.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from neutrality_forecast.ingest import POLECAT_HEADER
from neutrality_forecast.paths import default_cases_dir

TYPES = [
    "AGREE", "CONSULT", "SUPPORT", "CONCEDE", "COOPERATE", "AID", "RETREAT", "REQUEST",
    "ACCUSE", "REJECT", "THREATEN", "PROTEST", "SANCTION", "MOBILIZE", "COERCE", "ASSAULT",
]  # fmt: skip
MODES = ["None", "visit", "sign", "meet", "statement", "call", "attack", "deploy"]
CONTEXTS = [
    "None", "military", "diplomatic", "economic", "military;diplomatic", "economic;trade",
    "pro_democracy", "natural_resources;economic", "terrorism;military", "border;territory",
    "cyber", "humanitarian;refugees", "health",
]  # fmt: skip
BIG = [
    "USA", "CHN", "RUS", "GBR", "FRA", "DEU", "IND", "JPN", "TUR", "IRN", "ISR", "PAK", "SAU",
    "BRA", "KOR", "PRK", "EGY", "NGA", "ZAF", "AUS", "CAN", "MEX", "ITA", "ESP", "POL", "IRQ",
    "SYR", "AFG", "IDN", "PHL", "VNM", "THA", "KAZ", "AZE", "ARM", "GEO", "BLR", "None",
]  # fmt: skip
PUBLISHERS = ["Reuters", "AFP", "Xinhua", "TASS", "BBC Monitoring", "Al Jazeera", "AP"]
SECTORS = ["GOV", "MIL", "LEG", "GOV;MIL", "BUS", "None", "CVL"]


def case_countries() -> list[str]:
    """Countries of the shipped case set (their events are the ones kept)."""
    import pandas as pd

    return sorted(set(pd.read_csv(default_cases_dir() / "cases.csv", dtype=str)["country"]))


def make_tail_pool(rng: np.random.Generator, size: int, share_case: float) -> list[str]:
    """Distinct row tails (columns 3..40) to draw rows from; ~2% unknown event types."""
    cases = case_countries()
    pool = []
    for _ in range(size):

        def country() -> str:
            return str(rng.choice(cases)) if rng.random() < share_case else str(rng.choice(BIG))

        etype = str(rng.choice(TYPES)) if rng.random() > 0.02 else "EXPRESS_INTENT"
        ac, rc = country(), country()
        cells = {h: "None" for h in POLECAT_HEADER}
        cells.update(
            {
                "Event Type": etype,
                "Event Mode": str(rng.choice(MODES)),
                "Intensity": f"{rng.uniform(-10, 10):.1f}",
                "Quad Code": str(rng.integers(1, 5)),
                "Contexts": str(rng.choice(CONTEXTS)),
                "Actor Name": f"Actor of {ac}",
                "Actor Country": ac,
                "Primary Actor Sector": str(rng.choice(SECTORS)).split(";")[0],
                "Actor Sectors": str(rng.choice(SECTORS)),
                "Actor Title": "Minister",
                "Recipient Name": f"Recipient in {rc}",
                "Recipient Country": rc,
                "Primary Recipient Sector": "GOV",
                "Recipient Sectors": "GOV",
                "Placename": "Capital",
                "Country": ac,
                "Latitude": f"{rng.uniform(-60, 70):.4f}",
                "Longitude": f"{rng.uniform(-180, 180):.4f}",
                "Source": str(rng.choice(PUBLISHERS)),
                "Story People": "Person A;Person B",
                "Language": "en",
                "Version": "v1.2",
            }
        )
        pool.append("\t".join(cells[h] for h in POLECAT_HEADER[2:]))
    return pool


def generate(path: Path, rows: int, *, seed: int, malformed_share: float, chunk: int) -> dict:
    """Write the synthetic file in chunks; return what was injected."""
    rng = np.random.default_rng(seed)
    pool = make_tail_pool(rng, 20_000, share_case=0.03)
    start = np.datetime64("2000-01-01")
    span = int((np.datetime64("2026-03-18") - start).astype(int))
    injected = 0
    with path.open("wb") as fh:
        fh.write(("\t".join(POLECAT_HEADER) + "\n").encode())
        for lo in range(0, rows, chunk):
            n = min(chunk, rows - lo)
            days = start + rng.integers(0, span, n).astype("timedelta64[D]")
            dates = np.datetime_as_string(days, unit="D")
            tails = rng.integers(0, len(pool), n)
            bad = np.flatnonzero(rng.random(n) < malformed_share)
            kinds = rng.integers(0, 3, len(bad))
            lines = [
                f"E{lo + i:09d}\t{d}\t{pool[t]}"
                for i, (d, t) in enumerate(zip(dates, tails, strict=True))
            ]
            for i, kind in zip(bad, kinds, strict=True):
                if kind == 0:  # truncated mid-line
                    lines[i] = lines[i][: len(lines[i]) // 3]
                elif kind == 1:  # a stray extra field
                    lines[i] = lines[i] + "\tstray"
                else:  # not UTF-8
                    lines[i] = lines[i].replace("Actor of", "Actor \udcff\udcfe of", 1)
            injected += len(bad)
            fh.write(("\n".join(lines) + "\n").encode("utf-8", errors="surrogateescape"))
    return {"malformed_injected": injected}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    ap.add_argument("--out", type=Path, default=None, help="Write the JSON result here too.")
    ap.add_argument("--seed", type=int, default=20240521)
    ap.add_argument("--malformed-share", type=float, default=0.001)
    ap.add_argument("--chunk", type=int, default=250_000)
    ap.add_argument("--memory-limit", default="1GB")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--keep", action="store_true", help="Keep the generated file and output.")
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="nf-ingest-bench-", dir=args.dir))
    src = work / "polecat-synthetic.tsv"
    t0 = time.perf_counter()
    gen = generate(
        src, args.rows, seed=args.seed, malformed_share=args.malformed_share, chunk=args.chunk
    )
    gen_s = time.perf_counter() - t0
    code = (
        "import json, sys\n"
        "from neutrality_forecast.ingest import ingest_polecat\n"
        "r = ingest_polecat([sys.argv[1]], out=sys.argv[2], cases=sys.argv[3],\n"
        "                   memory_limit=sys.argv[4], threads=int(sys.argv[5]) or None,\n"
        "                   validate=False)\n"
        "print('@@REPORT@@' + json.dumps(r.to_dict()))\n"
    )
    cmd = [
        sys.executable, "-c", code, str(src), str(work / "out"), str(default_cases_dir()),
        args.memory_limit, str(args.threads or 0),
    ]  # fmt: skip
    t1 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t1
    if proc.returncode != 0:
        sys.exit(f"ingestion failed:\n{proc.stderr}")
    report = json.loads(proc.stdout.split("@@REPORT@@")[-1])
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result = {
        "rows": args.rows,
        "file_bytes": src.stat().st_size,
        "generate_seconds": round(gen_s, 1),
        "ingest_seconds": report["seconds"],
        "ingest_rows_per_second": round(report["rows_read"] / report["seconds"], 1),
        "process_wall_seconds": round(wall, 2),
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "memory_limit": args.memory_limit,
        "threads": args.threads or os.cpu_count(),
        "rows_read": report["rows_read"],
        "rows_written": report["rows_written"],
        "malformed_counted": report["malformed"],
        **gen,
        "dropped": report["dropped"],
        "duplicates": report["duplicates"],
        "validated": report["validated"],
        "seed": args.seed,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
    }
    if not args.keep:
        src.unlink()
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    else:
        result["work_dir"] = str(work)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return result


if __name__ == "__main__":
    main()
