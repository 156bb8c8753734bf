"""POLECAT ingestion: mapping, counting of malformed and dropped rows, contract output."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conftest import TESTS, TINY
from typer.testing import CliRunner

import neutrality_forecast as nf
from neutrality_forecast.cli import app
from neutrality_forecast.ingest import (
    POLECAT_HEADER,
    IngestError,
    MappingError,
    ingest_polecat,
    load_mapping,
)

SAMPLE = TESTS / "data" / "polecat" / "sample.tsv"
runner = CliRunner()


def polecat_line(event_id: str, date: str, etype: str, actor: str, recipient: str, **cells) -> str:
    row = {h: "None" for h in POLECAT_HEADER}
    row.update({"Event ID": event_id, "Event Date": date, "Event Type": etype,
                "Actor Name": actor, "Actor Country": actor, "Recipient Name": recipient,
                "Recipient Country": recipient, "Source": "Test Wire", "Version": "v1"})  # fmt: skip
    row.update(cells)
    return "\t".join(row[h] for h in POLECAT_HEADER)


def write_tsv(path: Path, lines: list[str | bytes], header=POLECAT_HEADER) -> Path:
    with path.open("wb") as fh:
        fh.write(("\t".join(header) + "\n").encode())
        for line in lines:
            fh.write((line if isinstance(line, bytes) else line.encode()) + b"\n")
    return path


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ingest") / "cases"
    report = ingest_polecat([SAMPLE], out=out, cases=TINY)
    return report, out


def test_sample_counts(sample_run):
    report, _ = sample_run
    assert report.rows_read == 15  # the blank line is not a row
    assert report.malformed == 3  # too few fields, too many fields, invalid UTF-8
    assert report.dropped == {
        "actor has no code": 1,
        "missing or unparseable date": 2,
        "no case country involved": 1,
        "outside case windows": 1,
        "unknown event type": 1,
    }
    assert report.duplicates == 1
    assert report.rows_written == 6  # E0004 concerns two cases: written for each
    kept = report.rows_read - report.malformed - sum(report.dropped.values())
    assert kept == 6
    assert report.validated is True, report.validation_error


def test_sample_output_is_a_valid_case_set(sample_run):
    _, out = sample_run
    assert (out / "cases.csv").read_bytes() == (TINY / "cases.csv").read_bytes()
    cs = nf.load_case_set(out)
    ev = cs.events.set_index("event_id")
    assert list(ev.index) == sorted(ev.index, key=lambda e: (e.split("-")[0], ev.loc[e, "date"], e))
    assert set(ev["source_reliability"].astype(str)) == {"F"}
    assert set(ev["info_credibility"].astype(str)) == {"6"}
    assert ev.loc["XTB-PC-E0003", "actor"] == "NATO"  # organisation coded by name
    assert ev.loc["XTC-PC-E0015", "recipient"] == "GAZPROM"
    assert ev.loc["XTC-PC-E0015", "event_type"] == "AGREE"  # lower-case type accepted
    assert ev.loc["XTC-PC-E0015", "contexts"] == "natural_resource"  # unknown 'energy' left out
    assert ev.loc["XTA-PC-E0002", "contexts"] == "border;military;political_institutions"
    assert ev.loc["XTA-PC-E0001", "source"] == "POLECAT v1.1: Reuters"
    assert {"XTA-PC-E0004", "XTB-PC-E0004"} <= set(ev.index)
    assert (ev["date_precision"].astype(str) == "day").all()
    raw = pd.read_csv(out / "events.csv", dtype=str, keep_default_na=False)
    assert (
        raw.loc[raw.event_id == "XTA-PC-E0001", "notes"].item().startswith("polecat_event_id=E0001")
    )


def test_single_case_and_mapping_cases(tmp_path):
    rep = ingest_polecat([SAMPLE], out=tmp_path / "b", cases=TINY, case_id="XTB")
    ev = pd.read_csv(tmp_path / "b" / "events.csv", dtype=str)
    assert set(ev["case_id"]) == {"XTB"} and rep.rows_written == 2
    # without --cases the mapping's own [[cases]] (TKM) are used
    f = write_tsv(tmp_path / "tkm.tsv", [
        polecat_line("T1", "2017-10-02", "AGREE", "TKM", "RUS", Contexts="military"),
        polecat_line("T2", "2010-01-01", "AGREE", "TKM", "RUS"),
    ])  # fmt: skip
    rep = ingest_polecat([f], out=tmp_path / "t")
    assert rep.rows_written == 1 and rep.dropped == {"outside case windows": 1}
    assert rep.validated is None  # no cases.csv/outcomes.csv next to it


def test_columns_found_by_name_and_header_variants(tmp_path):
    header = list(
        reversed([("Event Intensity" if h == "Intensity" else h) for h in POLECAT_HEADER])
    )
    cells = polecat_line("X1", "2013-03-03", "CONSULT", "XTA", "USA").split("\t")
    line = "\t".join(reversed(cells))
    f = write_tsv(tmp_path / "rev.tsv", [line], header=header)
    rep = ingest_polecat([f, SAMPLE], out=tmp_path / "o", cases=TINY)
    assert rep.rows_written == 7 and rep.rows_read == 16 and rep.validated


def test_missing_required_column_and_bad_mapping(tmp_path):
    header = [h for h in POLECAT_HEADER if h != "Event Type"]
    f = write_tsv(tmp_path / "x.tsv", ["a"], header=header)
    with pytest.raises(IngestError, match="event_type"):
        ingest_polecat([f], out=tmp_path / "o", cases=TINY)
    assert not (tmp_path / "o" / "events.csv").exists()
    with pytest.raises(IngestError, match="file not found"):
        ingest_polecat([tmp_path / "nope.tsv"], out=tmp_path / "o", cases=TINY)
    bad = tmp_path / "m.toml"
    text = (nf.default_config_dir() / "polecat.toml").read_text()
    bad.write_text(text.replace('DEMAND = "REQUEST"', 'DEMAND = "INSIST"'))
    with pytest.raises(MappingError, match="INSIST"):
        load_mapping(bad)
    bad.write_text(text.replace('source_reliability = "F"', 'source_reliability = "G"'))
    with pytest.raises(MappingError, match="A-F"):
        load_mapping(bad)


def test_cli_ingest(tmp_path):
    out = tmp_path / "cli"
    res = runner.invoke(app, ["ingest-polecat", str(SAMPLE), "--out", str(out), "--cases",
                              str(TINY), "--report", str(tmp_path / "r.json")])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "malformed lines skipped" in res.output and "validates" in res.output
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["malformed"] == 3 and rep["rows_written"] == 6
    res = runner.invoke(app, ["ingest-polecat", str(tmp_path / "missing.tsv"), "--out", str(out)])
    assert res.exit_code == 2


def test_cli_exit_2_when_output_invalid(tmp_path):
    cases = tmp_path / "cs"
    shutil.copytree(TINY, cases)
    f = write_tsv(tmp_path / "none.tsv", [polecat_line("Z", "2013-01-01", "AGREE", "USA", "FRA")])
    res = runner.invoke(app, ["ingest-polecat", str(f), "--out", str(tmp_path / "o"),
                              "--cases", str(cases)])  # fmt: skip
    assert res.exit_code == 2  # header but no events: not a valid case set
    assert "does not validate" in res.output


GOOD = [
    polecat_line(f"G{i}", "2013-05-0" + str(i + 1), "COOPERATE", "XTA", "XTB") for i in range(3)
]
USED = [POLECAT_HEADER.index(h) for h in (
    "Event ID", "Event Date", "Event Type", "Event Mode", "Contexts", "Actor Name",
    "Actor Country", "Recipient Name", "Recipient Country", "Source", "Version",
)]  # fmt: skip
_text = st.text(
    alphabet=st.characters(blacklist_characters="\n\r\t\x00\x1e", blacklist_categories=("Cs",)),
    max_size=30,
)


@st.composite
def malformed_line(draw) -> bytes:
    base = draw(st.sampled_from(GOOD)).split("\t")
    kind = draw(st.sampled_from(["short", "long", "bytes"]))
    if kind == "short":
        # keep >= 1 (a blank line is not a row); keep + 1 cells < header width, so the line
        # is really short (keep = width - 1 plus one cell would be a full, valid line)
        keep = draw(st.integers(1, len(base) - 2))
        cells = base[:keep] + [draw(_text)]
        return "\t".join(cells).encode()
    if kind == "long":
        extra = draw(st.lists(_text, min_size=1, max_size=4))
        return "\t".join(base + extra).encode()
    # invalid UTF-8 inside a column the mapping reads (DuckDB decodes only those; a stray
    # byte in an unread column cannot reach the output and is not counted)
    pos = draw(st.sampled_from(USED))
    junk = draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"]))
    cells = [c.encode() for c in base]
    cells[pos] = cells[pos] + junk
    return b"\t".join(cells)


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    bad=st.lists(malformed_line(), min_size=1, max_size=6), where=st.randoms(use_true_random=False)
)
def test_malformed_lines_never_crash_and_are_counted(tmp_path_factory, bad, where):
    tmp = tmp_path_factory.mktemp("fuzz")
    lines: list[str | bytes] = [*GOOD, *bad]
    where.shuffle(lines)
    f = write_tsv(tmp / "f.tsv", lines)
    rep = ingest_polecat([f], out=tmp / "o", cases=TINY, validate=False)
    assert rep.malformed == len(bad)
    assert rep.rows_read == len(GOOD) + len(bad)
    assert rep.rows_written == 2 * len(GOOD)  # XTA and XTB both involved
    ev = pd.read_csv(tmp / "o" / "events.csv", dtype=str)
    assert sorted(ev["event_id"]) == sorted(
        f"{c}-PC-G{i}" for c in ("XTA", "XTB") for i in range(3)
    )
