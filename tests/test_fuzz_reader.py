"""Property-based fuzzing of the reader: it only ever raises CaseSetError (or succeeds)."""

from __future__ import annotations

import csv
import io
import shutil
import tempfile
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conftest import TINY

import neutrality_forecast as nf

FILES = ("cases.csv", "outcomes.csv", "events.csv")
SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _load_with(name: str, payload: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "cs"
        shutil.copytree(TINY, folder)
        (folder / name).write_bytes(payload)
        try:
            nf.load_case_set(folder)
        except nf.CaseSetError as exc:
            assert exc.violations, "a CaseSetError must list violations"
            for v in exc.violations:
                assert v.file in FILES


@SETTINGS
@given(name=st.sampled_from(FILES), payload=st.binary(max_size=400))
def test_random_bytes(name, payload):
    _load_with(name, payload)


@SETTINGS
@given(name=st.sampled_from(FILES), cut=st.floats(0, 1))
def test_truncation(name, cut):
    data = (TINY / name).read_bytes()
    _load_with(name, data[: int(len(data) * cut)])


@SETTINGS
@given(name=st.sampled_from(FILES), seed=st.integers(0, 10_000), drop=st.booleans())
def test_shuffled_or_missing_columns(name, seed, drop):
    df = pd.read_csv(TINY / name, dtype=str, keep_default_na=False)
    cols = list(df.sample(frac=1, axis=1, random_state=seed).columns)
    if drop:
        cols = cols[1:]
    payload = df[cols].to_csv(index=False).encode()
    if not drop:
        # a pure reordering of columns is still a valid case set
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "cs"
            shutil.copytree(TINY, folder)
            (folder / name).write_bytes(payload)
            nf.load_case_set(folder)
    else:
        _load_with(name, payload)


@SETTINGS
@given(
    name=st.sampled_from(FILES),
    quoting=st.sampled_from([csv.QUOTE_ALL, csv.QUOTE_MINIMAL, csv.QUOTE_NONNUMERIC]),
    junk=st.text(alphabet="\",;\n\r\t x'", max_size=8),
    row=st.integers(0, 5),
)
def test_odd_quoting(name, quoting, junk, row):
    df = pd.read_csv(TINY / name, dtype=str, keep_default_na=False)
    buf = io.StringIO()
    df.to_csv(buf, index=False, quoting=quoting)
    lines = buf.getvalue().splitlines(keepends=True)
    i = min(row + 1, len(lines) - 1)
    lines[i] = junk + lines[i]
    _load_with(name, "".join(lines).encode())
