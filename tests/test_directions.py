"""Direction checks: evidence moves the hazards the way the fitted effects say.

On a small synthetic case with known effects (a security agreement with the partner
raises, a bloc rejection lowers alignment with the partner), a what-if scenario and the
attribution of an added event must move the partner's accord probability in the sign of
the effects. Runs with the shipped default features (categories or composite indices).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tests.helpers import mock_fit
from tests.test_recurrent import two_occurrence_set

import neutrality_forecast as nf
from neutrality_forecast.attribution import EventChange, attribute_changes


def _effect(name: str) -> float:
    if "partner_security" in name or name == "alignment":
        return 0.8
    if "bloc_rejection" in name:
        return -0.8
    return 0.0


@pytest.fixture(scope="module")
def fitted():
    cs = two_occurrence_set()
    with pytest.MonkeyPatch.context() as mp:
        f = mock_fit(cs, draws=100, chains=2, monkeypatch=mp)
    d = f.draws()
    n = d["alpha"].shape[0]
    beta = np.array([_effect(x) for x in f.data.features])
    d.update(
        alpha=np.full_like(d["alpha"], -4.0), u=np.zeros_like(d["u"]),
        partner=np.zeros_like(d["partner"]), rho=np.zeros_like(d["rho"]),
        gamma=np.zeros_like(d["gamma"]),
        beta=np.broadcast_to(beta, (n, len(f.data.outcomes), len(beta))).copy(),
    )  # fmt: skip
    f.extra["_draws"] = d
    return f


def _event(**kw) -> pd.DataFrame:
    base = dict(event_id="HYP-1", case_id="RCC", date="2017-07-10", date_precision="day",
                actor="XRC", recipient="RUS", event_type="AGREE", contexts="military",
                source="Hypothetical", source_reliability="A", info_credibility="1",
                summary="Hypothetical.")  # fmt: skip
    return pd.DataFrame([{**base, **kw}])


def _diff(res, label: str, h: int = 12) -> float:
    row = res.table[(res.table["question"] == label) & (res.table["horizon_months"] == h)]
    return float(row["diff_mean"].iloc[0])


def test_partner_security_agreement_raises_that_partners_accord_hazard(fitted):
    res = nf.what_if(fitted, _event(), case_id="RCC", horizons=[12])
    assert _diff(res, "RCC|security_accord|RUS") > 0


def test_bloc_rejection_lowers_it(fitted):
    ev = _event(event_type="REJECT", contexts="military;diplomatic",
                summary="Hypothetical: RCC rejects joining the Russian-led bloc.")  # fmt: skip
    res = nf.what_if(fitted, ev, case_id="RCC", horizons=[12])
    assert _diff(res, "RCC|security_accord|RUS") < 0


def test_attribution_agrees_in_sign_with_what_if(fitted):
    cs = fitted.case_set
    ev = _event(date="2017-05-02")  # before the as-of date: a coded event
    typed = ev.assign(date=pd.to_datetime(ev["date"]))
    coded = cs.with_events(typed)
    import dataclasses

    now = dataclasses.replace(
        fitted, case_set=coded, data=nf.build_model_data(coded, fitted.config)
    )
    now.extra = {"_draws": fitted.extra["_draws"]}
    as_of = pd.Timestamp(cs.case("RCC")["window_end"])
    prev = nf.make_forecast(fitted, "RCC", horizons=[12]).table
    change = EventChange("HYP-1", "RCC", "added", None, coded.events.tail(1))
    table, _ = attribute_changes(now, "RCC", as_of=as_of, horizons=[12], previous_table=prev,
                                 changes=[change])  # fmt: skip
    share = table[(table["event_id"] == "HYP-1") & (table["partner"] == "RUS")
                  & (table["outcome"] == "security_accord")]["contribution"].iloc[0]  # fmt: skip
    what_if = nf.what_if(fitted, ev, case_id="RCC", horizons=[12])
    assert share > 0 and _diff(what_if, "RCC|security_accord|RUS") > 0
