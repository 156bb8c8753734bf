"""PSIS instant updates: the likelihood, the weights, resampling, and one real update."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tests.archive_helpers import NEW_EVENT, add_event
from tests.helpers import mock_fit

import neutrality_forecast as nf
from neutrality_forecast.update import (
    PsisOptions,
    changed_cases,
    log_likelihood,
    psis_reweight,
    resample_idata,
    systematic_resample,
    update_log_ratios,
)


@pytest.fixture
def fitted(tiny_dir, monkeypatch):
    return mock_fit(nf.load_case_set(tiny_dir), draws=200, chains=2, monkeypatch=monkeypatch)


def test_log_likelihood_matches_indexed_form(fitted):
    d, draws = fitted.data, fitted.draws()
    ll = log_likelihood(draws, d)
    k, q, p = d.outcome_idx, d.q_idx, d.partner_idx
    partner = np.where(p >= 0, draws["partner"][:, k, np.maximum(p, 0)], 0.0)
    eta = (
        draws["alpha"][:, k]
        + partner
        + draws["u"][:, q]
        + np.einsum("srj,rj->sr", draws["beta"][:, k, :], d.x)
        + draws["rho"][:, k] * d.recurrence
        - draws["gamma"][:, k] * d.standing
    )
    ref = (d.y * eta - d.trials * np.logaddexp(0, eta)).sum(axis=1)
    np.testing.assert_allclose(ll, ref, rtol=1e-10)


def test_update_refuses_other_structure(fitted, tiny_dir):
    other = nf.build_model_data(nf.load_case_set(tiny_dir).subset(["XTA", "XTB"]), fitted.config)
    with pytest.raises(ValueError, match="questions|case list"):
        update_log_ratios(fitted.draws(), fitted.data, other, ["XTA"])


def test_unchanged_data_gives_uniform_weights():
    res = psis_reweight(np.zeros(1000))
    assert res.accepted
    assert res.ess == pytest.approx(1000)
    np.testing.assert_allclose(res.weights, 1e-3)
    assert json.dumps(res.to_dict())


def test_heavy_tailed_ratios_are_rejected():
    rng = np.random.default_rng(0)
    res = psis_reweight(rng.standard_cauchy(4000) * 5)
    assert not res.accepted and "k-hat" in res.reason and res.khat > 0.7
    low = psis_reweight(rng.normal(0, 1.0, 500), options=PsisOptions(min_ess=450))
    assert not low.accepted and "ESS" in low.reason
    bad = psis_reweight(np.array([0.0, np.nan, 1.0]))
    assert not bad.accepted and "non-finite" in bad.reason


def test_systematic_resample_is_unbiased_and_seeded():
    w = np.array([0.5, 0.25, 0.125, 0.125])
    idx = systematic_resample(w, 800, np.random.default_rng(1))
    np.testing.assert_array_equal(np.bincount(idx, minlength=4), [400, 200, 100, 100])
    a = systematic_resample(np.random.default_rng(3).random(50), 50, np.random.default_rng(7))
    b = systematic_resample(np.random.default_rng(3).random(50), 50, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)


def test_resample_idata_keeps_shape_and_stats(fitted):
    s = fitted.idata.posterior.sizes["chain"] * fitted.idata.posterior.sizes["draw"]
    w = np.zeros(s)
    w[[3, 10]] = 0.5
    idata, idx = resample_idata(fitted.idata, w, seed=1)
    assert set(idx) == {3, 10}
    assert dict(idata.posterior.sizes) == dict(fitted.idata.posterior.sizes)
    assert "sample_stats" in idata.groups()
    flat = fitted.idata.posterior["alpha"].stack(s=("chain", "draw")).transpose("s", ...).values
    new = idata.posterior["alpha"].stack(s=("chain", "draw")).transpose("s", ...).values
    np.testing.assert_array_equal(new, flat[idx])


def test_real_fit_then_instant_update(tiny_copy, tmp_path, monkeypatch):
    """One real (tiny) NUTS fit, then one added event handled by PSIS without refitting."""
    import neutrality_forecast.report.html as html
    from neutrality_forecast.archive import reforecast

    monkeypatch.setattr(html, "write_report", lambda *a, **k: None, raising=False)
    archive = tmp_path / "archive"
    kw = dict(archive=archive, case_id="XTC", draws=1000, tune=1000, chains=4, seed=7,
              progressbar=False)  # fmt: skip
    first = reforecast(tiny_copy, **kw)
    assert first.update_path == "refit"
    add_event(tiny_copy, NEW_EVENT)
    second = reforecast(tiny_copy, **kw)
    info = second.update["psis"]
    assert second.update_path == "psis", second.update
    assert info["khat"] <= 0.7 and info["ess"] >= 400
    assert info["seconds"] < 60
    ev = second.changes[second.changes["component"] == "event"]
    assert set(ev["event_id"]) == {"XTC-E900"}


def _with_event_changes(case_set):
    """Add one XTC event, edit one XTA event's grade, remove one XTB event."""
    ev = case_set.events.copy()
    add = ev[ev["case_id"] == "XTC"].iloc[[0]].copy()
    add["event_id"] = "XTC-E901"
    xta = ev.index[ev["case_id"] == "XTA"][0]
    ev.loc[xta, "source_reliability"] = "F" if ev.loc[xta, "source_reliability"] != "F" else "A"
    ev = ev.drop(index=ev.index[ev["case_id"] == "XTB"][0])
    base = case_set.__class__(case_set.cases, case_set.outcomes, ev.reset_index(drop=True))
    return base.with_events(add)


def test_changed_cases_names_added_edited_and_removed(tiny_dir):
    old = nf.load_case_set(tiny_dir)
    new = _with_event_changes(old)
    assert changed_cases(old, new) == [c for c in old.case_ids if c in {"XTA", "XTB", "XTC"}]
    assert changed_cases(old, old) == []
    with pytest.raises(ValueError, match="case list"):
        changed_cases(old, old.subset(old.case_ids[:2]))


def test_update_log_ratios_equal_full_likelihood_difference(fitted, tiny_dir):
    """Only the changed cases' rows are evaluated, and the result is exact."""
    old = nf.load_case_set(tiny_dir)
    new = _with_event_changes(old)
    draws = fitted.draws()
    new_data = nf.build_model_data(new, fitted.config)
    changed = changed_cases(old, new)
    ratio = update_log_ratios(draws, fitted.data, new_data, changed)
    full = log_likelihood(draws, new_data) - log_likelihood(draws, fitted.data)
    assert set(changed) == {"XTA", "XTB", "XTC"}
    np.testing.assert_allclose(ratio, full, rtol=1e-9, atol=1e-9)
    assert np.ptp(ratio) > 0  # the changes do move the likelihood


def test_read_idata_groups_only(fitted, tmp_path):
    from neutrality_forecast.model.fitted import read_idata

    path = fitted.save(tmp_path / "fit.nc")
    part = read_idata(path, ("posterior", "no_such_group"))
    assert part.groups() == ["posterior"]
    assert part.attrs["data_hash"] == fitted.data_hash
    full = read_idata(path)
    np.testing.assert_array_equal(part.posterior["alpha"].values, full.posterior["alpha"].values)
