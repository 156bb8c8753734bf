"""collapse_rows: pooling months into binomial rows (property-based)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from neutrality_forecast.model.data import KEY_COLUMNS, collapse_rows

XCOLS = ["x:a", "x:b"]


@st.composite
def month_rows(draw) -> pd.DataFrame:
    n = draw(st.integers(1, 60))
    ints = st.lists(st.integers(0, 2), min_size=n, max_size=n)
    xs = st.lists(st.floats(-2.0, 3.0, allow_nan=False), min_size=n, max_size=n)
    trials = st.lists(st.sampled_from([1.0, 1.0, 1.0, 0.5, 18 / 31]), min_size=n, max_size=n)
    events = st.lists(st.booleans(), min_size=n, max_size=n)
    # a few distinct x values, so exact pooling has something to pool
    grid = draw(st.booleans())
    a, b = np.array(draw(xs)), np.array(draw(xs))
    if grid:
        a, b = np.round(a), np.round(b)
    return pd.DataFrame(
        {
            "q_idx": draw(ints),
            "outcome_idx": 0,
            "partner_idx": -1,
            "standing": np.array(draw(ints)) % 2,
            "recurrence": 0.0,
            "trials": draw(trials),
            "y": np.array(draw(events), float),
            "x:a": a,
            "x:b": b,
        }  # fmt: skip
    )


def _sums(frame: pd.DataFrame) -> pd.DataFrame:
    f = frame.assign(**{f"n{c}": frame["trials"] * frame[c] for c in XCOLS})
    return f.groupby(KEY_COLUMNS)[["trials", "y", *[f"n{c}" for c in XCOLS]]].sum()


@settings(max_examples=150, deadline=None)
@given(month_rows(), st.sampled_from([0.0, 0.1, 0.25, 1.0]))
def test_pooling_preserves_sufficient_totals(rows, width):
    out = collapse_rows(rows, XCOLS, bin_width=width)
    assert list(out.columns) == [*KEY_COLUMNS, *XCOLS, "trials", "y"]
    assert len(out) <= len(rows)
    pd.testing.assert_frame_equal(_sums(out), _sums(rows), check_exact=False, atol=1e-9)
    # the event term is exact: every row with an occurrence has the covariates of
    # months with occurrences (pooled only with identical covariates)
    event_x = {tuple(v) for v in rows.loc[rows["y"] > 0, XCOLS].to_numpy()}
    assert {tuple(v) for v in out.loc[out["y"] > 0, XCOLS].to_numpy()} <= event_x
    if width == 0:
        exact = rows.groupby([*KEY_COLUMNS, *XCOLS])[["trials", "y"]].sum().reset_index()
        pd.testing.assert_frame_equal(out, exact, check_dtype=False)
    else:
        # a pooled row's mean covariates stay in its bin: one row per (keys, bin)
        quiet = out[out["y"] == 0]
        bins = np.floor(quiet[XCOLS].to_numpy() / width + 1e-9)
        keys = pd.concat([quiet[KEY_COLUMNS].reset_index(drop=True), pd.DataFrame(bins)], axis=1)
        assert not keys.duplicated().any()
