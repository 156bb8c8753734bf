"""Evidence mapping: roles, categories, Admiralty weights, decay, intensity."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import neutrality_forecast as nf
from neutrality_forecast.evidence import (
    admiralty_weight,
    category_matrix,
    counterpart_role,
    intensity_factor,
    stock_from_inflow,
)


@pytest.fixture(scope="module")
def cfg():
    return nf.load_config().evidence


@pytest.mark.parametrize(
    ("actor", "recipient", "partner", "role"),
    [
        ("TKM", "TKM", "RUS", "domestic"),
        ("TKM", "RUS", "RUS", "partner"),
        ("GAZPROM", "TKM", "RUS", "partner"),  # proxy of the partner
        ("TALIBAN", "TKM", "RUS", "threat"),
        ("TKM", "USA", "CHN", "west"),
        ("TKM", "RUS", "CHN", "rival"),
        ("TKM", "NATO", "USA", "partner"),  # the partner's bloc
        ("TKM", "AFG", "RUS", "other"),
        ("TKM", "CHN", None, "partner"),  # partner-less: any great power
    ],
)
def test_counterpart_role(cfg, actor, recipient, partner, role):
    assert counterpart_role(actor, recipient, "TKM", partner, cfg) == role


def _events(rows):
    cols = ["event_id", "actor", "recipient", "event_type", "contexts", "source_reliability",
            "info_credibility", "date"]  # fmt: skip
    return pd.DataFrame(rows, columns=cols)


def test_category_matrix_and_weights(cfg):
    ev = _events(
        [
            ("e1", "RUS", "TKM", "CONSULT", "military;diplomatic", "A", "1", "2016-06-09"),
            ("e2", "GAZPROM", "TKM", "SANCTION", "economic", "B", "2", "2016-01-04"),
            ("e3", "TKM", "TKM", "AGREE", "legislative", "A", "1", "2016-09-14"),
            ("e4", "TKM", "CSTO", "REJECT", "diplomatic", "C", "3", "2015-01-01"),
        ]
    )
    m = category_matrix(ev, "TKM", "RUS", cfg)
    names = cfg.category_names
    assert m[0, names.index("partner_security")] == 1
    assert m[0, names.index("partner_political")] == 0  # military context excludes it
    assert m[1, names.index("partner_friction")] == 1
    assert m[2, names.index("domestic_institutional")] == 1
    assert m[3, names.index("bloc_rejection")] == 1
    w = admiralty_weight(ev, cfg)
    assert w[0] == pytest.approx(1.0)
    assert w[1] == pytest.approx(0.85 * 0.85)
    assert w[3] < w[1] < w[0]


def test_decay_half_life_and_lag():
    inflow = np.zeros((40, 1))
    inflow[0, 0] = 1.0
    stock = stock_from_inflow(inflow, half_life=12, lag=1)
    assert stock[0, 0] == 0  # lag: the event does not inform its own month
    assert stock[1, 0] == pytest.approx(1.0)
    assert stock[13, 0] == pytest.approx(0.5)
    assert stock[25, 0] == pytest.approx(0.25)


def test_intensity_factor(cfg):
    ev = _events([("e", "A", "B", "AGREE", "", "A", "1", "2016-01-01")] * 24)
    dense = intensity_factor(ev, 12, cfg)  # 2 events/month
    sparse = intensity_factor(ev.iloc[:1], 12, cfg)
    assert dense < 1 < sparse
    assert dense == pytest.approx(max(cfg.intensity.reference_rate / 2.0, cfg.intensity.min_factor))


def test_every_shipped_event_maps(cfg):
    cs = nf.load_case_set(nf.default_cases_dir())
    d = nf.build_model_data(cs, nf.load_config())
    assert d.x.shape[1] == len(cfg.category_names)
    assert np.isfinite(d.x).all() and (d.x >= 0).all()
    assert d.trials.sum() == d.meta["at_risk_months"]
    assert d.y.sum() == cs.outcomes["occurred"].sum()


def _reference_categories(events, country, partner, cfg):
    """Rule-by-rule loop over events (the plain reading of models/evidence.toml)."""
    quad_of = {t: q for q, types in cfg.quads.items() for t in types}
    out = np.zeros((len(events), len(cfg.categories)))
    for i, ev in enumerate(events.itertuples(index=False)):
        role = counterpart_role(ev.actor, ev.recipient, country, partner, cfg)
        ctx = {c.strip() for c in str(ev.contexts).split(";") if c.strip()}
        for j, cat in enumerate(cfg.categories):
            ok = (
                (not cat.roles or role in cat.roles)
                and (not cat.quads or quad_of.get(ev.event_type) in cat.quads)
                and (not cat.event_types or ev.event_type in cat.event_types)
                and (not cat.contexts or bool(ctx & set(cat.contexts)))
                and not (cat.exclude_contexts and ctx & set(cat.exclude_contexts))
                and (not cat.actor_is_case or ev.actor == country)
            )
            out[i, j] = float(ok)
    return out


def test_vectorised_mapping_matches_rule_loop_on_shipped_events(cfg):
    """The vectorised category matrix (DataFrame and EventArrays inputs) equals the loop."""
    from neutrality_forecast.evidence import EventArrays

    cs = nf.load_case_set(nf.default_cases_dir())
    for case in cs.cases.itertuples(index=False):
        ev = cs.events_of(case.case_id).astype({"event_type": str, "actor": str})
        arrays = EventArrays.from_frame(ev, cfg)
        partners = cs.outcomes_of(case.case_id)["partner"]
        for partner in {None if pd.isna(p) else str(p) for p in partners}:
            ref = _reference_categories(ev, case.country, partner, cfg)
            np.testing.assert_array_equal(category_matrix(ev, case.country, partner, cfg), ref)
            np.testing.assert_array_equal(category_matrix(arrays, case.country, partner, cfg), ref)
        half = arrays.take(np.arange(len(arrays))[::2])
        assert half.event_ids == arrays.event_ids[::2]
        np.testing.assert_array_equal(half.weight, admiralty_weight(ev, cfg)[::2])
