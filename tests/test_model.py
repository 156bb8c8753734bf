"""The PyMC model: structure, exact aggregation, priors, forecasting maths (no MCMC)."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytest
from tests.helpers import mock_fit

import neutrality_forecast as nf
from neutrality_forecast.forecast.horizon import simulate_joint
from neutrality_forecast.model.data import ROW_BLOCK, ModelData


@pytest.fixture(scope="module")
def tiny():
    return nf.load_case_set("tests/data/tiny")


def test_model_structure(tiny):
    data = nf.build_model_data(tiny, nf.load_config())
    model = nf.HazardModel(data, nf.load_config()).build_model()
    free = {v.name for v in model.free_RVs}
    assert {
        "mu_alpha",
        "z_alpha",
        "mu_beta",
        "w_beta",
        "z_beta",
        "w_case",
        "z_case",
        "gamma",
    } == free
    assert {"alpha", "beta", "u", "sigma_beta", "sigma_case"} <= set(model.named_vars)
    assert model.coords["outcome"] == ("neutrality_revision", "security_accord", "foreign_basing")
    assert [p.name for p in model.potentials] == ["loglik"]
    shapes = [model[f"design_{o}"].get_value().shape for o in data.outcomes]
    real = [int((model[f"trials_{o}"].get_value() > 0).sum()) for o in data.outcomes]
    assert sum(real) == data.n_rows  # every binomial row, plus empty padding rows
    assert all(r % ROW_BLOCK == 0 for r, _ in shapes)
    assert {c for _, c in shapes} == {1 + len(data.case_ids) + 7 + 1}


def test_family_blocks_are_the_full_design_without_structural_zeros(tiny):
    """The per-family products give exactly eta = Z @ theta of the full design matrix."""
    from neutrality_forecast.update.psis import theta_draws

    data = nf.build_model_data(tiny, nf.load_config())
    rng = np.random.default_rng(0)
    k_n, c_n, j_n = 3, len(data.case_ids), data.x.shape[1]
    draws = {
        "alpha": rng.normal(size=(1, k_n)), "u": rng.normal(size=(1, c_n, k_n)),
        "beta": rng.normal(size=(1, k_n, j_n)), "gamma": rng.normal(size=(1, k_n)),
    }  # fmt: skip
    eta_full = data.design() @ theta_draws(draws)[0]
    theta_k = np.column_stack(
        [draws["alpha"][0], draws["u"][0].T, draws["beta"][0], -draws["gamma"][0]]
    )
    inputs = data.model_inputs()
    for k, o in enumerate(data.outcomes):
        rows, z = data.block_design(o)
        np.testing.assert_allclose(z @ theta_k[k], eta_full[rows], rtol=1e-12)
        np.testing.assert_array_equal(inputs[f"y_{o}"][: len(rows)], data.y[rows])
        np.testing.assert_array_equal(inputs[f"design_{o}"][: len(rows)], z)
    dropped = data.model_inputs(exclude_cases=[data.case_ids[0]], evidence=False)
    n_left = sum(int((dropped[f"trials_{o}"] > 0).sum()) for o in data.outcomes)
    assert n_left == int((data.case_idx != 0).sum())
    assert all(not dropped[f"design_{o}"][:, 1 + c_n : 1 + c_n + j_n].any() for o in data.outcomes)


def _disaggregated(data: ModelData) -> ModelData:
    """Expand binomial rows back to one Bernoulli row per at-risk month."""
    reps = data.trials.astype(int)
    y = np.concatenate(
        [np.r_[np.ones(k), np.zeros(n - k)] for n, k in zip(reps, data.y, strict=True)]
    )
    return ModelData(
        case_ids=data.case_ids, outcomes=data.outcomes, categories=data.categories,
        link_outcomes=data.link_outcomes, questions=data.questions,
        case_idx=np.repeat(data.case_idx, reps), outcome_idx=np.repeat(data.outcome_idx, reps),
        x=np.repeat(data.x, reps, axis=0), standing=np.repeat(data.standing, reps),
        trials=np.ones(reps.sum(), dtype=np.int64), y=y.astype(np.int64),
    )  # fmt: skip


def test_aggregated_likelihood_is_exact(tiny):
    cfg = nf.load_config()
    agg = nf.build_model_data(tiny, cfg)
    assert agg.n_rows < agg.meta["at_risk_months"]
    m_agg = nf.HazardModel(agg, cfg).build_model()
    m_full = nf.HazardModel(_disaggregated(agg), cfg).build_model()
    f_agg, f_full = m_agg.compile_logp(), m_full.compile_logp()
    rng = np.random.default_rng(3)
    diffs = []
    for _ in range(3):
        point = {
            k: v + rng.normal(scale=0.3, size=np.shape(v)) for k, v in m_agg.initial_point().items()
        }
        diffs.append(f_agg(point) - f_full(point))
    # Binomial and Bernoulli differ only by the constant log C(n, y)
    assert np.ptp(diffs) == pytest.approx(0.0, abs=1e-8)


def test_signed_scales_define_the_reference_posterior(tiny):
    """Library parameterisation == textbook model, up to the change-of-variables Jacobian.

    At matching points (w = sigma / s, same z), log p_ref - log p_lib equals
    sum log(sigma / s) + log 2 per scale (half-normal on log sigma vs normal on w) plus the
    binomial constants: the difference minus sum log sigma must be the same at every point.
    """
    from neutrality_forecast.model.reference import ReferenceHazardModel

    cfg = nf.load_config()
    data = nf.build_model_data(tiny, cfg)
    lib = nf.HazardModel(data, cfg).build_model()
    ref = ReferenceHazardModel(data, cfg).build_model()
    f_lib, f_ref = lib.compile_logp(), ref.compile_logp()
    p = cfg.model.priors
    rng = np.random.default_rng(11)
    diffs = []
    for _ in range(4):
        pt_ref = {
            k: v + rng.normal(scale=0.5, size=np.shape(v)) for k, v in ref.initial_point().items()
        }
        sb, sc = np.exp(pt_ref["sigma_beta_log__"]), np.exp(pt_ref["sigma_case_log__"])
        pt_lib = {k: v for k, v in pt_ref.items() if not k.endswith("_log__")}
        pt_lib["w_beta"] = sb / p.beta_sigma_scale
        pt_lib["w_case"] = sc / p.case_sigma_scale
        jac = np.log(sb) + np.log(sc).sum()
        diffs.append(f_ref(pt_ref) - f_lib(pt_lib) - jac)
        # the mirror point (-w, -z) has the same density
        mirror = dict(pt_lib, w_case=-pt_lib["w_case"], z_case=-pt_lib["z_case"])
        assert f_lib(mirror) == pytest.approx(f_lib(pt_lib), abs=1e-9)
    assert np.ptp(diffs) == pytest.approx(0.0, abs=1e-8)
    # and the deterministic effects agree
    lib_u = lib.compile_fn(lib["u"], inputs=[lib["w_case"], lib["z_case"]])
    ref_u = ref.compile_fn(ref["u"], inputs=[ref["sigma_case"], ref["z_case"]])
    np.testing.assert_allclose(
        lib_u({"w_case": pt_lib["w_case"], "z_case": pt_lib["z_case"]}),
        ref_u({"sigma_case": sc, "z_case": pt_lib["z_case"]}),
    )


def test_prior_base_rate_is_plausible(tiny):
    cfg = nf.load_config()
    model = nf.HazardModel(nf.build_model_data(tiny, cfg), cfg).build_model()
    with model:
        prior = pm.sample_prior_predictive(draws=2000, random_seed=1, var_names=["alpha"])
    monthly = 1 / (1 + np.exp(-prior.prior["alpha"].values))
    yearly = 1 - (1 - np.median(monthly)) ** 12
    assert 0.01 < yearly < 0.2  # median prior: a realignment every 5-100 years


def test_simulate_joint_matches_closed_form():
    h = np.full((4, 24), 0.05)
    out = simulate_joint(
        [(h, h)], resolved=[False], linked=[False], revision=None, neutral_standing=False
    )
    t = np.arange(1, 25)
    np.testing.assert_allclose(out[0, :, 1], 1 - 0.95**t)
    np.testing.assert_allclose(out.sum(-1), 1.0)


def test_simulate_joint_link_lifts_penalty_after_revision():
    n = np.full((1, 12), 0.2)
    basing_free, basing_stand = np.full((1, 12), 0.1), np.full((1, 12), 0.01)
    out = simulate_joint(
        [(n, n), (basing_free, basing_stand)],
        resolved=[False, False], linked=[False, True], revision=0, neutral_standing=True,
    )  # fmt: skip
    p = out[0, -1]  # index = bit0 (revision) + 2 * bit1 (basing)
    p_b_given_n = p[3] / (p[1] + p[3])
    p_b_given_not_n = p[2] / (p[0] + p[2])
    assert p_b_given_n > 3 * p_b_given_not_n
    np.testing.assert_allclose(out.sum(-1), 1.0)


def test_forecast_tables_with_mock_fit(tiny, monkeypatch):
    fitted = mock_fit(tiny, monkeypatch=monkeypatch)
    fc = nf.make_forecast(fitted, "XTC", horizons=[3, 6, 12, 24])
    t = fc.table
    assert list(t.columns[:12]) == [
        "case_id", "outcome", "partner", "as_of", "horizon_months", "target_date",
        "p_mean", "p_median", "p_q05", "p_q95", "status", "occurred_on",
    ]  # fmt: skip
    for _, grp in t.groupby("outcome"):
        assert grp.sort_values("horizon_months")["p_mean"].is_monotonic_increasing
        assert (grp["p_q05"] <= grp["p_median"]).all() and (grp["p_median"] <= grp["p_q95"]).all()
    sums = fc.joint.groupby("horizon_months")["p_mean"].sum()
    np.testing.assert_allclose(sums, 1.0)
    assert len(fc.joint) == 4 * 8
    cond = fc.conditional
    assert "P(foreign_basing | neutrality_revision)" in set(cond["quantity"])
    # per-draw joint sums to one too
    np.testing.assert_allclose(fc.draws["joint"].sum("combo"), 1.0)


def test_resolved_outcomes_not_forecast(tiny, monkeypatch):
    fitted = mock_fit(tiny, monkeypatch=monkeypatch)
    t = nf.make_forecast(fitted, "XTA").table
    assert set(t["status"]) == {"resolved"}
    assert (t["p_mean"] == 1.0).all()
    assert set(t["occurred_on"]) == {"2014-06-15", "2015-03-01"}


def test_as_of_uses_only_past_evidence(tiny):
    from neutrality_forecast.workflow import prepare

    cut, when = prepare(tiny, "XTA", "2014-01-31")
    assert cut.events_of("XTA")["date"].max() <= when
    assert not cut.outcomes_of("XTA")["occurred"].any()  # both occurred later
    assert cut.case("XTA")["window_end"] == when
    assert len(cut.events_of("XTB")) == len(tiny.events_of("XTB"))  # others untouched
