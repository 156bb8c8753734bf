"""The PyMC model: structure, exact aggregation, priors, forecasting maths (no MCMC)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pymc as pm
import pytest
from tests.helpers import mock_fit

import neutrality_forecast as nf
from neutrality_forecast.forecast.horizon import chain_probabilities
from neutrality_forecast.model.data import ROW_BLOCK, ModelData
from neutrality_forecast.model.likelihood import log_likelihood, pointwise_log_likelihood


@pytest.fixture(scope="module")
def tiny():
    return nf.load_case_set("tests/data/tiny")


def _random_draws(data: ModelData, rng, n=1):
    k, f, q, p = len(data.outcomes), len(data.features), len(data.questions), len(data.partners)
    return {
        "alpha": rng.normal(-4, 1, size=(n, k)), "beta": rng.normal(size=(n, k, f)),
        "u": rng.normal(size=(n, q)), "partner": rng.normal(size=(n, k, p)),
        "rho": rng.normal(size=(n, k)), "gamma": rng.normal(size=(n, k)),
    }  # fmt: skip


def test_model_structure(tiny):
    cfg = nf.load_config()
    data = nf.build_model_data(tiny, cfg)
    model = nf.HazardModel(data, cfg).build_model()
    free = {v.name for v in model.free_RVs}
    assert free == {
        "mu_alpha", "alpha", "mu_beta", "w_beta", "z_beta", "w_partner", "z_partner",
        "w_shared", "z_shared", "w_q", "z_q", "rho", "gamma",
    }  # fmt: skip
    assert {"alpha", "beta", "u", "v", "partner_effect", "sigma_beta", "sigma_q",
            "sigma_partner", "sigma_shared"} <= set(model.named_vars)  # fmt: skip
    assert model.coords["outcome"] == ("neutrality_revision", "security_accord", "foreign_basing")
    assert model.coords["question"] == tuple(data.question_labels)
    assert [p.name for p in model.potentials] == ["loglik"]
    real = 0
    for k, o in enumerate(data.outcomes):
        z = model[f"design_{o}"].get_value()
        assert z.shape[0] % ROW_BLOCK == 0
        real += int((model[f"trials_{o}"].get_value() > 0).sum())
        # the width does not grow with the number of cases or questions
        assert z.shape[1] == len(data.family_columns(k)) <= 1 + 6 + len(data.features) + 2
    assert real == data.n_rows  # every binomial row, plus empty padding rows


def test_model_potential_equals_numpy_likelihood(tiny):
    """The PyMC potential and the NumPy likelihood (PSIS, folds, SBC) are one function."""
    cfg = nf.load_config()
    data = nf.build_model_data(tiny, cfg)
    model = nf.HazardModel(data, cfg).build_model()
    names = ["alpha", "beta", "u", "partner_effect", "rho", "gamma", "sigma_q", "sigma_shared"]
    det = model.compile_fn([model[n] for n in names] + [model["loglik"]], inputs=model.value_vars,
                           on_unused_input="ignore")  # fmt: skip
    rng = np.random.default_rng(0)
    from neutrality_forecast.model.fitted import posterior_draws

    for _ in range(3):
        point = {k: v + rng.normal(scale=0.4, size=np.shape(v))
                 for k, v in model.initial_point().items()}  # fmt: skip
        out = det(point)
        import xarray as xr

        ds = xr.Dataset(
            {n: (("chain", "draw", *[f"d{n}{i}" for i in range(np.ndim(v))]), np.asarray(v)[None, None])
             for n, v in zip(names, out[:-1], strict=True)}
        )  # fmt: skip
        draws = posterior_draws(ds, data)
        assert log_likelihood(draws, data)[0] == pytest.approx(float(out[-1]), rel=1e-10)
    # evidence-free inputs zero exactly the covariate block, and excluded cases drop rows
    dropped = data.model_inputs(exclude_cases=[data.case_ids[0]], evidence=False)
    n_left = 0
    for k, o in enumerate(data.outcomes):
        cols = data.family_columns(k)
        xcols = [i for i, c in enumerate(cols) if c.startswith("x:")]
        assert not dropped[f"design_{o}"][:, xcols].any()
        assert dropped[f"design_{o}"][:, 0].sum() == (dropped[f"trials_{o}"] > 0).sum()
        n_left += int((dropped[f"trials_{o}"] > 0).sum())
    assert n_left == int((data.case_idx != 0).sum())


def _disaggregated(data: ModelData) -> ModelData:
    """Expand binomial rows back to one row per at-risk month (fractions kept)."""
    reps = np.ceil(data.trials - 1e-9).astype(int)
    trials = np.concatenate(
        [np.r_[np.ones(int(np.floor(n + 1e-9))), [n - np.floor(n + 1e-9)] if n % 1 > 1e-9 else []]
         for n in data.trials]
    )  # fmt: skip
    y = np.concatenate(
        [np.r_[np.ones(int(k)), np.zeros(r - int(k))] for r, k in zip(reps, data.y, strict=True)]
    )
    rep = lambda a: np.repeat(a, reps, axis=0)  # noqa: E731
    return dataclasses.replace(
        data, q_idx=rep(data.q_idx), outcome_idx=rep(data.outcome_idx),
        partner_idx=rep(data.partner_idx), x=rep(data.x), standing=rep(data.standing),
        recurrence=rep(data.recurrence), trials=trials, y=y,
    )  # fmt: skip


def test_aggregated_likelihood_is_exact(tiny):
    cfg = nf.load_config().with_updates(likelihood={"bin_width": 0.0})
    agg = nf.build_model_data(tiny, cfg)
    assert agg.n_rows < agg.meta["month_rows"]
    full = _disaggregated(agg)
    draws = _random_draws(agg, np.random.default_rng(3), n=3)
    np.testing.assert_allclose(log_likelihood(draws, agg), log_likelihood(draws, full), rtol=1e-10)


def test_pooled_rows_keep_events_exact_and_approximate_the_exposure(tiny):
    """bin_width > 0: fewer rows, same totals, exact event rows, likelihood within 2nd order."""
    exact = nf.build_model_data(tiny, nf.load_config().with_updates(likelihood={"bin_width": 0.0}))
    pooled = nf.build_model_data(
        tiny, nf.load_config().with_updates(likelihood={"bin_width": 0.25})
    )
    assert pooled.n_rows < exact.n_rows
    for d in (exact, pooled):
        assert d.meta["month_rows"] == exact.meta["month_rows"]
    # per question: exposure, events and exposure-weighted covariate sums are preserved
    for a in ("trials", "y"):
        np.testing.assert_allclose(
            np.bincount(pooled.q_idx, getattr(pooled, a)),
            np.bincount(exact.q_idx, getattr(exact, a)),
        )
    for f in range(exact.x.shape[1]):
        np.testing.assert_allclose(
            np.bincount(pooled.q_idx, pooled.trials * pooled.x[:, f]),
            np.bincount(exact.q_idx, exact.trials * exact.x[:, f]), atol=1e-9,
        )  # fmt: skip
    # the event term is exact: sum(y * x) over rows is unchanged
    np.testing.assert_allclose(pooled.y @ pooled.x, exact.y @ exact.x, atol=1e-9)
    draws = _random_draws(exact, np.random.default_rng(11), n=20)
    draws["beta"] *= 0.5  # effects of the size the priors allow
    diff = log_likelihood(draws, pooled) - log_likelihood(draws, exact)
    # Jensen: pooling at the mean covariates can only lower the convex exposure term
    assert (diff >= -1e-9).all()
    # second-order bound of collapse_rows' docstring, with h (1 - h) <= 1/4 and every
    # pooled month at most one bin width from its group's mean in every covariate
    spread = 0.25 * np.abs(draws["beta"]).sum(axis=2).max(axis=1)
    bound = 0.5 * 0.25 * exact.trials.sum() * spread**2
    assert (diff <= bound).all()
    assert diff.max() < 0.1  # in practice: a small fraction of one log-likelihood unit


def test_pointwise_likelihood_is_the_same_in_any_chunking(tiny):
    """Chunking over draws bounds memory and changes no value."""
    data = nf.build_model_data(tiny, nf.load_config())
    draws = _random_draws(data, np.random.default_rng(5), n=7)
    whole = pointwise_log_likelihood(draws, data, chunk=7)
    assert whole.shape == (7, data.n_rows)
    for chunk in (1, 3):
        np.testing.assert_array_equal(pointwise_log_likelihood(draws, data, chunk=chunk), whole)
    np.testing.assert_allclose(log_likelihood(draws, data, chunk=2), whole.sum(axis=1))


def test_evidence_term_equals_the_gathered_einsum():
    """Summed per family without the (S, R, F) gather: the einsum's values."""
    from neutrality_forecast.model.likelihood import _evidence_term

    rng = np.random.default_rng(3)
    x, beta, k = rng.normal(size=(50, 7)), rng.normal(size=(30, 3, 7)), rng.integers(0, 3, 50)
    want = np.einsum("rf,srf->sr", x, beta[:, k, :])
    np.testing.assert_allclose(_evidence_term(x, beta, k), want, rtol=1e-13, atol=1e-13)


def test_signed_scales_define_the_reference_posterior(tiny):
    """Library parameterisation == textbook model, up to the change-of-variables Jacobian.

    At matching points (w = sigma / s, same z), log p_ref - log p_lib equals the sum of
    log(sigma / s) + log 2 per half-normal scale: the difference minus sum log sigma must be
    the same at every point.
    """
    from neutrality_forecast.model.reference import ReferenceHazardModel

    cfg = nf.load_config()
    data = nf.build_model_data(tiny, cfg)
    lib = nf.HazardModel(data, cfg).build_model()
    ref = ReferenceHazardModel(data, cfg).build_model()
    f_lib, f_ref = lib.compile_logp(), ref.compile_logp()
    p = cfg.model.priors
    scales = {"beta": p.beta_sigma_scale, "partner": p.partner_sigma_scale,
              "shared": 0.5 * p.case_sigma_scale, "q": p.case_sigma_scale}  # fmt: skip
    rng = np.random.default_rng(11)
    diffs = []
    for _ in range(4):
        pt_ref = {k: v + rng.normal(scale=0.5, size=np.shape(v))
                  for k, v in ref.initial_point().items()}  # fmt: skip
        pt_lib = {k: v for k, v in pt_ref.items() if not k.endswith("_log__")}
        jac = 0.0
        for name, s in scales.items():
            sig = np.exp(pt_ref[f"sigma_{name}_log__"])
            pt_lib[f"w_{name}"] = sig / s
            jac += np.log(sig).sum()
        diffs.append(f_ref(pt_ref) - f_lib(pt_lib) - jac)
        mirror = dict(pt_lib, w_shared=-pt_lib["w_shared"], z_shared=-pt_lib["z_shared"])
        assert f_lib(mirror) == pytest.approx(f_lib(pt_lib), abs=1e-9)
    assert np.ptp(diffs) == pytest.approx(0.0, abs=1e-8)


def test_prior_base_rate_is_plausible(tiny):
    cfg = nf.load_config()
    model = nf.HazardModel(nf.build_model_data(tiny, cfg), cfg).build_model()
    with model:
        prior = pm.sample_prior_predictive(draws=2000, random_seed=1, var_names=["alpha"])
    monthly = 1 / (1 + np.exp(-prior.prior["alpha"].values))
    yearly = 1 - (1 - np.median(monthly)) ** 12
    assert 0.01 < yearly < 0.2  # median prior: a realignment every 5-100 years


def test_chain_matches_closed_form_with_exposures():
    h = np.full((4, 24), 0.05)
    e = np.r_[0.4, np.ones(23)]
    out = chain_probabilities([(h, h)], e, start=(0,), linked=[False], revision=None,
                              neutral_standing=False)  # fmt: skip
    np.testing.assert_allclose(out[0, :, 1], 1 - 0.95 ** np.cumsum(e))
    np.testing.assert_allclose(out.sum(-1), 1.0)


def test_chain_link_lifts_penalty_after_revision():
    n = np.full((1, 12), 0.2)
    basing_free, basing_stand = np.full((1, 12), 0.1), np.full((1, 12), 0.01)
    out = chain_probabilities(
        [(n, n), (basing_free, basing_stand)], np.ones(12), start=(0, 0),
        linked=[False, True], revision=0, neutral_standing=True,
    )  # fmt: skip
    p = out[0, -1]  # index = bit0 (revision) + 2 * bit1 (basing)
    assert p[3] / (p[1] + p[3]) > 3 * p[2] / (p[0] + p[2])
    np.testing.assert_allclose(out.sum(-1), 1.0)


@pytest.mark.parametrize("horizons", [[0, 3, 12], [1, 6, 24], [24]])
def test_horizons_walked_once_equal_one_chain_per_horizon(horizons):
    """Each horizon's states == a chain over its own exposures (f_obs in its last month)."""
    from neutrality_forecast.forecast.horizon import _by_horizon

    rng = np.random.default_rng(4)
    n_fut = max(horizons) + 1
    hz = [tuple(rng.uniform(0.001, 0.3, (2, 5, n_fut))) for _ in range(3)]
    f_obs = 0.3
    e_full = np.r_[1 - f_obs, np.ones(n_fut - 1)]
    chain = dict(start=(0, 1, 0), linked=[False, True, True], revision=0, neutral_standing=True)
    got = _by_horizon(hz, e_full, horizons, f_obs, **chain)
    for j, h in enumerate(horizons):
        e = e_full[: h + 1].copy()
        e[h] = f_obs
        want = chain_probabilities([(a[:, : h + 1], b[:, : h + 1]) for a, b in hz], e, **chain)
        np.testing.assert_array_equal(got[:, j, :], want[:, -1, :])  # same arithmetic


def test_forecast_tables_with_mock_fit(tiny, monkeypatch):
    fitted = mock_fit(tiny, monkeypatch=monkeypatch)
    fc = nf.make_forecast(fitted, "XTC", horizons=[3, 6, 12, 24])
    t = fc.table
    assert list(t.columns[:16]) == [
        "case_id", "outcome", "partner", "question", "headline", "as_of", "horizon_months",
        "target_date", "p_mean", "p_median", "p_q05", "p_q95", "status", "occurred_on",
        "occurrences", "last_occurred_on",
    ]  # fmt: skip
    for _, grp in t.groupby("question"):
        assert grp.sort_values("horizon_months")["p_mean"].is_monotonic_increasing
        assert (grp["p_q05"] <= grp["p_median"]).all() and (grp["p_median"] <= grp["p_q95"]).all()
    np.testing.assert_allclose(fc.joint.groupby("horizon_months")["p_mean"].sum(), 1.0)
    assert len(fc.joint) == 4 * 2**3  # XTC's three questions are the headline ones
    assert any("| neutrality_revision)" in q for q in fc.conditional["quantity"])
    np.testing.assert_allclose(fc.draws["joint"].sum("combo"), 1.0)
    # marginals from the pair chains equal the headline joint's marginals
    for label in fc.table["question"].unique():
        for h in (3, 24):
            jh = fc.joint[fc.joint["horizon_months"] == h]
            m = jh[jh[label] == 1]["p_mean"].sum()
            row = t[(t["question"] == label) & (t["horizon_months"] == h)]
            assert m == pytest.approx(row["p_mean"].iloc[0], rel=1e-9)


def test_resolved_revision_and_recurrent_after_occurrence(tiny, monkeypatch):
    fitted = mock_fit(tiny, monkeypatch=monkeypatch)
    t = nf.make_forecast(fitted, "XTA").table.set_index("question")
    rev = t.loc["XTA|neutrality_revision"]
    assert set(rev["status"]) == {"resolved"} and (rev["p_mean"] == 1.0).all()
    assert set(rev["occurred_on"]) == {"2014-06-15"}
    acc = t.loc["XTA|security_accord|USA"]  # happened in 2015: a new one is forecast
    assert set(acc["status"]) == {"forecast"} and (acc["p_mean"] < 1).all()
    assert set(acc["last_occurred_on"]) == {"2015-03-01"}


def test_as_of_uses_only_past_evidence(tiny):
    from neutrality_forecast.workflow import prepare

    cut, when = prepare(tiny, "XTA", "2014-01-31")
    assert cut.events_of("XTA")["date"].max() <= when
    assert not cut.outcomes_of("XTA")["occurred"].any()  # both occurred later
    assert cut.case("XTA")["window_end"] == when
    assert len(cut.events_of("XTB")) == len(tiny.events_of("XTB"))  # others untouched
    rt, _ = prepare(tiny, "XTA", "2014-01-31", real_time=True)
    assert rt.events["date"].max() <= when  # real time: every case cut
    assert set(rt.case_ids) == {"XTA", "XTB", "XTC"}
    assert rt.case("XTB")["window_end"] == when
    assert rt.outcomes_of("XTB")["occurred"].any()  # XTB's 2013 basing was known by then
