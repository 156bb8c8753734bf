r"""Compiled inner loop of the leave-cluster-out importance weights.

:func:`loglik_by_bin` evaluates, for every posterior draw :math:`s`, effect draw :math:`m`
and row :math:`r` of a cluster,

.. math::

    \ell_{smr} = y_r\,\eta_{smr} - n_r \log(1 + e^{\eta_{smr}}), \qquad
    \eta_{smr} = \eta^0_{sr} + u_{s m q(r)},

and sums :math:`\ell` into the row's bin (its month). That is 2,000 x 128 x ~1,100
softplus evaluations per cluster of the synthetic population; written with NumPy (one
(draws x rows) temporary per effect draw, then a dense one-hot product for the bins) it
was half of a leave-cluster-out run's time. The loop here fuses the gather, the softplus
and the scatter into the bins without temporaries, parallel over posterior draws
(numba's ``prange``). It is compiled on first use and cached on disk by numba
(``cache=True``); numba is already installed as nutpie's compiler.

The softplus is the overflow-safe :math:`\max(\eta, 0) + \operatorname{log1p}(e^{-|\eta|})`,
equal to NumPy's ``logaddexp(0, eta)`` to rounding (tested against the NumPy form).
"""

from __future__ import annotations

from functools import cache

import numpy as np

__all__ = ["loglik_by_bin"]


@cache
def _kernel():
    import numba

    @numba.njit(parallel=True, cache=True)
    def kernel(eta0, u, q_pos, y, n, bins, n_bins):  # pragma: no cover - compiled
        n_draws, n_effects = u.shape[0], u.shape[1]
        out = np.zeros((n_draws, n_effects, n_bins))
        for s in numba.prange(n_draws):
            o = out[s]
            us = u[s]
            for r in range(eta0.shape[1]):
                e0, q, b, yr, nr = eta0[s, r], q_pos[r], bins[r], y[r], n[r]
                for m in range(n_effects):
                    eta = e0 + us[m, q]
                    o[m, b] += yr * eta - nr * (max(eta, 0.0) + np.log1p(np.exp(-abs(eta))))
        return out

    return kernel


def loglik_by_bin(
    eta0: np.ndarray,
    u: np.ndarray,
    q_pos: np.ndarray,
    y: np.ndarray,
    trials: np.ndarray,
    bins: np.ndarray,
    n_bins: int,
) -> np.ndarray:
    """Binomial log-likelihood (no constant) summed by bin: shape (S, M, n_bins).

    Parameters
    ----------
    eta0 : ndarray, shape (S, R)
        Linear predictor of each row without the question effect, per posterior draw.
    u : ndarray, shape (S, M, Q)
        Question effects: M effect draws per posterior draw.
    q_pos : ndarray of int, shape (R,)
        Question (position on ``u``'s last axis) of each row.
    y, trials : ndarray, shape (R,)
        Occurrences and trials of each row.
    bins : ndarray of int, shape (R,)
        Bin of each row, in ``[0, n_bins)``.
    n_bins : int
        Number of bins.

    """
    eta0 = np.ascontiguousarray(eta0, dtype=np.float64)
    u = np.ascontiguousarray(u, dtype=np.float64)
    q_pos = np.ascontiguousarray(q_pos, dtype=np.int64)
    bins = np.ascontiguousarray(bins, dtype=np.int64)
    r = eta0.shape[1]
    if eta0.shape[0] != u.shape[0] or not (len(q_pos) == len(y) == len(trials) == len(bins) == r):
        raise ValueError(
            f"shapes do not match: eta0 {eta0.shape}, u {u.shape}, rows "
            f"{(len(q_pos), len(y), len(trials), len(bins))}"
        )
    if r and (q_pos.min() < 0 or q_pos.max() >= u.shape[2]):
        raise ValueError(f"q_pos must be in [0, {u.shape[2]})")
    if r and (bins.min() < 0 or bins.max() >= n_bins):
        raise ValueError(f"bins must be in [0, {n_bins})")
    return _kernel()(
        eta0, u, q_pos, np.asarray(y, np.float64), np.asarray(trials, np.float64), bins,
        int(n_bins),
    )  # fmt: skip
