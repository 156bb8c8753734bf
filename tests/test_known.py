"""CaseHistory: questions cut at a date equal a rebuild from the truncated case set."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conftest import REPO, TINY

import neutrality_forecast as nf
from neutrality_forecast.model.data import build_model_data, build_questions
from neutrality_forecast.model.known import CaseHistory
from neutrality_forecast.synthetic import synthetic_population


def rebuild(case_set, case_id, as_of, config, data):
    """The definition: truncate the case set, build the questions again, index like data."""
    as_of = pd.Timestamp(as_of)
    cut = case_set.subset([case_id])
    if as_of < case_set.case(case_id)["window_end"]:
        cut = cut.truncate(case_id, as_of)
    labels = {lbl: i for i, lbl in enumerate(data.question_labels)}
    c_idx = data.case_ids.index(case_id)
    return [
        dataclasses.replace(q, q_idx=labels[q.label], case_idx=c_idx)
        for q in build_questions(cut, config, data.partners)
    ]


def same(a, b) -> bool:
    """Exact equality, field by field, arrays by dtype, shape and value."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype
            and a.shape == b.shape and np.array_equal(a, b)
        )  # fmt: skip
    if type(a) is not type(b):
        return False
    if dataclasses.is_dataclass(a):
        return all(same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    if isinstance(a, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def assert_same(expected, got, where: str) -> None:
    assert [q.label for q in got] == [q.label for q in expected], where
    for e, g in zip(expected, got, strict=True):
        bad = [
            f.name
            for f in dataclasses.fields(e)
            if not same(getattr(e, f.name), getattr(g, f.name))
        ]
        assert not bad, f"{where} {e.label}: {bad}"


def edge_dates(case_set, case_id) -> list[pd.Timestamp]:
    """Yearly dates, the window's ends, and each known date / occurrence and the day before."""
    case = case_set.case(case_id)
    start, end = pd.Timestamp(case["window_start"]), pd.Timestamp(case["window_end"])
    dates = list(pd.date_range(start, end, freq="12MS")) + [start, end]
    known = case_set.known_dates()[case_set.events["case_id"] == case_id]
    occ = case_set.outcomes_of(case_id)["occurred_on"].dropna()
    for d in [*known.iloc[::5], *occ]:
        d = pd.Timestamp(d)
        dates += [d, d - pd.Timedelta(days=1)]
    return sorted({d for d in dates if start <= d <= end + pd.Timedelta(days=40)})


@pytest.fixture(scope="module")
def shipped():
    cs = nf.load_case_set(REPO / "data" / "cases")
    cfg = nf.load_config()
    return cs, cfg, build_model_data(cs, cfg)


@pytest.mark.parametrize("case_id", ["TKM", "QAT-2014", "IND-2016"])
def test_cut_equals_rebuild_on_shipped_data(shipped, case_id):
    cs, cfg, data = shipped
    history = CaseHistory(cs, case_id, cfg, data)
    for when in edge_dates(cs, case_id):
        assert_same(rebuild(cs, case_id, when, cfg, data), history.at(when), f"{case_id} {when}")


@pytest.fixture(scope="module")
def population():
    cs, _ = synthetic_population(n_cases=6, months=48, seed=3)
    cfg = nf.load_config()
    return cs, cfg, build_model_data(cs, cfg)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=st.integers(0, 5), day=st.integers(0, 48 * 31))
def test_cut_equals_rebuild_at_any_day(population, case, day):
    cs, cfg, data = population
    case_id = cs.case_ids[case]
    when = pd.Timestamp(cs.case(case_id)["window_start"]) + pd.Timedelta(days=day)
    got = CaseHistory(cs, case_id, cfg, data).at(when)
    assert_same(rebuild(cs, case_id, when, cfg, data), got, f"{case_id} {when}")


def test_question_order_follows_the_truncated_outcomes(tmp_path):
    """A later occurrence listed first: the rebuild's order changes with the date."""
    folder = tmp_path / "cases"
    shutil.copytree(TINY, folder)
    path = folder / "outcomes.csv"
    lines = path.read_text().splitlines()
    late = "XTA,security_accord,USA,true,2016-05-01,Fictional: second agreement.,Test fixture"
    path.write_text("\n".join([lines[0], late, *lines[1:]]) + "\n")
    cs = nf.load_case_set(folder)
    cfg = nf.load_config()
    data = build_model_data(cs, cfg)
    history = CaseHistory(cs, "XTA", cfg, data)
    orders = set()
    for when in ["2013-01-01", "2014-07-01", "2015-06-01", "2016-06-01", "2016-12-31"]:
        got = history.at(when)
        assert_same(rebuild(cs, "XTA", when, cfg, data), got, when)
        orders.add(tuple(q.label for q in got))
    assert len(orders) == 2  # the case the order logic exists for is exercised
    assert [len(q.occurrences) for q in history.at("2015-06-01")] == [1, 1]


def test_before_the_window_is_an_error():
    cs = nf.load_case_set(TINY)
    cfg = nf.load_config()
    history = CaseHistory(cs, "XTC", cfg, build_model_data(cs, cfg))
    with pytest.raises(ValueError, match="before the window of case 'XTC'"):
        history.at("2011-06-30")
