"""The compiled leave-cluster-out log-likelihood equals its NumPy definition."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neutrality_forecast.backtest.folds import cluster_loglik
from neutrality_forecast.backtest.kernels import Effects, loglik_by_bin


def _numpy_loglik(eta0, u, q_pos, y, n, bins, n_bins):
    """The definition: y eta - n log(1 + e^eta), summed into bins with np.add.at."""
    eta = eta0[:, None, :] + u[:, :, q_pos]  # (S, M, R)
    ll = eta * y - np.logaddexp(0.0, eta) * n
    out = np.zeros((*u.shape[:2], n_bins))
    np.add.at(out, (slice(None), slice(None), bins), ll)
    return out


@settings(max_examples=40, deadline=None)
@given(
    s=st.integers(1, 5),
    m=st.integers(1, 6),
    q=st.integers(1, 4),
    r=st.integers(0, 30),
    n_bins=st.integers(1, 7),
    scale=st.sampled_from([0.5, 5.0, 250.0, 800.0]),  # 800: exp(eta) overflows without care
    u_scale=st.sampled_from([0.5, 5.0, 250.0, 800.0]),
    seed=st.integers(0, 2**16),
)
def test_kernel_equals_numpy_definition(s, m, q, r, n_bins, scale, u_scale, seed):
    """Both branches: exp(eta0) * exp(u) (|eta0|, |u| < 300) and the overflow-safe form."""
    rng = np.random.default_rng(seed)
    eta0 = rng.normal(0, scale, (s, r))
    u = rng.normal(0, u_scale, (s, m, q))
    q_pos = rng.integers(0, q, r)
    n = rng.integers(1, 4, r).astype(float)
    y = np.minimum(rng.integers(0, 2, r), n).astype(float)
    bins = rng.integers(0, n_bins, r)
    got = loglik_by_bin(eta0, u, q_pos, y, n, bins, n_bins)
    want = _numpy_loglik(eta0, u, q_pos, y, n, bins, n_bins)
    assert got.shape == (s, m, n_bins)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-9 * max(scale, u_scale, 1.0))


@settings(max_examples=25, deadline=None)
@given(
    n_bins=st.integers(1, 9),
    u_scale=st.sampled_from([0.5, 800.0]),
    seed=st.integers(0, 2**16),
)
def test_prepared_effects_and_running_sums_change_nothing(n_bins, u_scale, seed):
    """Effects prepared once give the same bits; ``cumulative`` equals np.cumsum's sums."""
    rng = np.random.default_rng(seed)
    eta0 = rng.normal(-5, 2, (4, 40))
    u = rng.normal(0, u_scale, (4, 6, 3))
    q_pos, bins = rng.integers(0, 3, 40), rng.integers(0, n_bins, 40)
    y, n = (rng.random(40) < 0.1).astype(float), np.ones(40)
    plain = loglik_by_bin(eta0, u, q_pos, y, n, bins, n_bins)
    prepared = Effects.of(u)
    assert prepared.shape == u.shape
    assert np.array_equal(loglik_by_bin(eta0, prepared, q_pos, y, n, bins, n_bins), plain)
    running = loglik_by_bin(eta0, prepared, q_pos, y, n, bins, n_bins, cumulative=True)
    assert np.array_equal(running, np.cumsum(plain, axis=2))


def test_cluster_loglik_without_bins_is_the_total():
    rng = np.random.default_rng(1)
    rows = pd.DataFrame({"y": [0.0, 1.0, 0.0, 2.0], "trials": [1.0, 1.0, 3.0, 2.0]})
    eta0 = rng.normal(size=(3, 4))
    u = rng.normal(size=(3, 5, 2))
    q_pos = np.array([0, 1, 1, 0])
    total = cluster_loglik(eta0, u, rows, q_pos)
    by_bin = cluster_loglik(eta0, u, rows, q_pos, bins=np.array([0, 2, 1, 2]), n_bins=3)
    assert total.shape == (3, 5)
    np.testing.assert_allclose(by_bin.sum(axis=2), total, rtol=1e-12)


@pytest.mark.parametrize(
    ("q_pos", "bins", "match"),
    [([0, 2], [0, 0], "q_pos"), ([0, 1], [0, 3], "bins"), ([0], [0], "shapes")],
)
def test_kernel_rejects_out_of_range_indices(q_pos, bins, match):
    eta0, u = np.zeros((2, 2)), np.zeros((2, 3, 2))
    with pytest.raises(ValueError, match=match):
        loglik_by_bin(eta0, u, np.array(q_pos), np.zeros(2), np.ones(2), np.array(bins), 2)
