"""Attribution of forecast changes to events (same draws, with and without each event)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from tests.archive_helpers import NEW_EVENT, OTHER_CASE_EVENT, add_event
from tests.helpers import mock_fit

import neutrality_forecast as nf
from neutrality_forecast.archive.store import event_hashes
from neutrality_forecast.attribution import attribute_changes, diff_events
from neutrality_forecast.forecast.horizon import horizon_probabilities


@pytest.fixture
def sets(tiny_copy):
    old = nf.load_case_set(tiny_copy)
    add_event(tiny_copy, NEW_EVENT)
    add_event(tiny_copy, OTHER_CASE_EVENT)
    ev = pd.read_csv(tiny_copy / "events.csv", dtype=str, keep_default_na=False)
    ev.loc[ev["event_id"] == "XTC-E006", "info_credibility"] = "1"
    ev = ev[ev["event_id"] != "XTC-E007"]
    ev.to_csv(tiny_copy / "events.csv", index=False, lineterminator="\n")
    return old, nf.load_case_set(tiny_copy)


def test_diff_events_kinds(sets):
    old, new = sets
    changes = diff_events(event_hashes(old), event_hashes(new), current=new, previous=old)
    kinds = {c.event_id: (c.kind, c.case_id) for c in changes}
    assert kinds == {
        "XTC-E900": ("added", "XTC"),
        "XTA-E900": ("added", "XTA"),
        "XTC-E006": ("edited", "XTC"),
        "XTC-E007": ("removed", "XTC"),
    }
    edited = next(c for c in changes if c.event_id == "XTC-E006")
    assert edited.old is not None and edited.new is not None


def test_shares_add_up_and_match_exact_counterfactual(sets, monkeypatch):
    old, new = sets
    cfg = nf.load_config()
    fitted = mock_fit(new, cfg, draws=100, chains=2, monkeypatch=monkeypatch)
    as_of = pd.Timestamp(new.case("XTC")["window_end"])
    prev = nf.make_forecast(fitted, "XTC").table.assign(p_mean=lambda t: t["p_mean"] * 0.9)
    changes = diff_events(event_hashes(old), event_hashes(new), current=new, previous=old)
    table, summary = attribute_changes(
        fitted, "XTC", as_of=as_of, horizons=[3, 12], previous_table=prev, changes=changes
    )
    sums = table.groupby(["outcome", "partner", "horizon_months"]).agg(
        c=("contribution", "sum"), t=("total_change", "first")
    )
    np.testing.assert_allclose(sums["c"], sums["t"], atol=1e-12)
    # the share of an added event == the forecast from data without the event (same draws,
    # same simulated future evidence for the other events)
    without = new.subset(new.case_ids)
    without.events = without.events[without.events["event_id"] != "XTC-E900"].reset_index(drop=True)
    cf = dataclasses.replace(fitted, case_set=without, data=nf.build_model_data(without, cfg))
    p_all = horizon_probabilities(fitted, "XTC", as_of=as_of, horizons=[3, 12])
    p_cf = horizon_probabilities(cf, "XTC", as_of=as_of, horizons=[3, 12])
    expected = (p_all["marginal"] - p_cf["marginal"]).mean(axis=0)
    got = table[table["event_id"] == "XTC-E900"]
    for row in got.itertuples():
        h_i = [3, 12].index(row.horizon_months)
        label = "|".join(x for x in ("XTC", row.outcome, row.partner) if x)
        o_i = p_all["labels"].index(label)
        assert row.contribution == pytest.approx(expected[h_i, o_i], abs=1e-12)
    assert (got["contribution"].abs() > 0).any()
    other = table[table["event_id"] == "XTA-E900"]
    assert set(other["channel"]) == {"posterior_only"} and (other["contribution"] == 0).all()
    kinds = dict(zip(table["event_id"], table["change_kind"], strict=False))
    assert kinds["XTC-E007"] == "removed" and kinds["XTC-E006"] == "edited"
    assert "same posterior draws" in summary["method"]
    assert {e["event_id"] for e in summary["events"]} == {
        "XTC-E900", "XTA-E900", "XTC-E006", "XTC-E007"
    }  # fmt: skip


def test_first_run_has_no_previous(sets, monkeypatch):
    _, new = sets
    fitted = mock_fit(new, draws=50, chains=2, monkeypatch=monkeypatch)
    as_of = pd.Timestamp(new.case("XTC")["window_end"])
    table, _ = attribute_changes(
        fitted, "XTC", as_of=as_of, horizons=[3], previous_table=None, changes=[]
    )
    assert set(table["component"]) == {"no_previous_run"} and table["p_previous"].isna().all()
