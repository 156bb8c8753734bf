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
