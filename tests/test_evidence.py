"""Evidence mapping: roles, categories, Admiralty weights, decay, intensity."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import neutrality_forecast as nf
from neutrality_forecast.evidence import (
    admiralty_weight,
    category_matrix,
    counterpart_role,
    features,
    features_ahead,
    intensity_factors,
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
        ("TKM", "NATO", "TUR", "west"),  # only a bloc leader's bloc counts as the partner
        ("TKM", "AFG", "RUS", "other"),
        ("TKM", "CHN", None, "partner"),  # partner-less: any great power
    ],
)
def test_counterpart_role(cfg, actor, recipient, partner, role):
    assert counterpart_role(actor, recipient, "TKM", partner, cfg) == role


def _events(rows):
    cols = ["event_id", "actor", "recipient", "event_type", "contexts", "source_reliability",
            "info_credibility", "date"]  # fmt: skip
    frame = pd.DataFrame(rows, columns=cols)
    return frame.assign(date=pd.to_datetime(frame["date"]), date_precision="day")


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


def test_causal_intensity_factor(cfg):
    vol = np.zeros(60)
    vol[:30] = 2.0  # a densely coded first half, then silence
    f = intensity_factors(vol, cfg=cfg)
    assert f[0] == pytest.approx(1.0)  # nothing known yet: the reference rate
    assert f[29] < f[1] < 1.0  # dense coding so far scales events down...
    assert f[59] > f[31]  # ...and recovers as the rate falls
    # causal: the factor of month t ignores month t and later
    vol2 = vol.copy()
    vol2[40:] = 50.0
    np.testing.assert_allclose(intensity_factors(vol2, cfg=cfg)[:41], f[:41])
    off = nf.load_config().with_updates(intensity={"mode": "none"}).evidence
    assert (intensity_factors(vol, cfg=off) == 1).all()


def test_feature_blocks(cfg):
    full = (
        nf.load_config()
        .with_updates(
            features={
                "blocks": ["categories", "composites", "steps", "surge"],
                "half_lives": [3, 24],
            }
        )
        .evidence
    )
    names = full.feature_names
    j = len(full.category_names)
    assert names[:j] == [f"{c}@3" for c in full.category_names]
    assert names[2 * j :] == ["alignment", "pressure", "steps", "surge"]
    rng = np.random.default_rng(0)
    inflow = rng.poisson(0.3, size=(50, j)).astype(float)
    steps = rng.poisson(0.05, size=50).astype(float)
    vol = inflow.sum(1)
    x = features(inflow, steps, vol, cfg=full)
    assert x.shape == (50, len(names))
    # composite = signed sum of the first half-life's category covariates
    w = np.zeros(j)
    for name, v in full.features.composites[0].weights.items():
        w[full.category_names.index(name)] = v
    np.testing.assert_allclose(x[:, 2 * j], x[:, :j] @ w)
    # a leading draws axis gives the same values draw by draw
    xs = features(np.stack([inflow, inflow]), np.stack([steps, steps]), np.stack([vol, vol]),
                  cfg=full)  # fmt: skip
    np.testing.assert_allclose(xs[1], x)


@settings(max_examples=40, deadline=None)
@given(
    lag=st.integers(1, 4),
    mode=st.sampled_from(["causal", "none"]),
    months=st.integers(1, 60),
    ahead=st.integers(1, 30),
    draws=st.integers(1, 5),
    seed=st.integers(0, 2**16),
)
def test_features_ahead_equals_features_of_the_extended_history(
    lag, mode, months, ahead, draws, seed
):
    """The forecast's shortcut (history summarised once) gives the same covariates as
    computing every draw's whole history (every block, both intensity modes)."""
    cfg = (
        nf.load_config()
        .with_updates(
            features={
                "blocks": ["categories", "composites", "steps", "surge", "static"],
                "half_lives": [3, 24],
            },
            intensity={"mode": mode},
            timing={"lag_months": lag},
        )  # fmt: skip
        .evidence
    )
    rng = np.random.default_rng(seed)
    j, n_total = len(cfg.category_names), months + ahead
    base = (
        rng.poisson(0.4, (n_total, j)).astype(float),
        rng.poisson(0.1, n_total).astype(float),
        rng.poisson(1.0, n_total).astype(float),
    )
    added = (
        rng.poisson(0.4, (draws, ahead, j)).astype(float),
        rng.poisson(0.1, (draws, ahead)).astype(float),
        rng.poisson(1.0, (draws, ahead)).astype(float),
    )
    static = rng.normal(size=len(cfg.features.static))
    full = [np.repeat(a[None], draws, axis=0) for a in base]
    for whole, extra in zip(full, added, strict=True):
        whole[:, months:] += extra
    expected = features(*full, cfg=cfg, static=static)[:, -ahead:]
    got = features_ahead(base, added, cfg=cfg, static=static)
    assert got.shape == expected.shape == (draws, ahead, len(cfg.feature_names))
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_every_shipped_event_maps(cfg):
    cs = nf.load_case_set(nf.default_cases_dir())
    d = nf.build_model_data(cs, nf.load_config())
    assert d.x.shape[1] == len(cfg.feature_names)
    assert np.isfinite(d.x).all()
    # stocks are non-negative; only composites with negative weights (alignment subtracts
    # friction and bloc rejection) can go below zero
    signed = {c.name for c in cfg.features.composites if min(c.weights.values()) < 0}
    plain = [i for i, n in enumerate(d.features) if n not in signed]
    assert (d.x[:, plain] >= 0).all()
    assert d.trials.sum() == pytest.approx(d.meta["at_risk_months"])
    # every occurrence is one event row, except two occurrences of a question in one month
    occ = cs.outcomes[cs.outcomes["occurred"]].assign(
        m=lambda f: f["occurred_on"].dt.to_period("M")
    )
    assert d.y.sum() == len(occ.drop_duplicates(["case_id", "outcome", "partner", "m"]))


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
                and (not cat.actor_not_case or ev.actor != country)
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
