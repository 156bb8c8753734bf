"""Question effects integrated out: does removing them from the sampler remove the ridge?

The pre-registration (variants, runs, metric, accuracy check, rule) is in
docs/performance.md, section "Question effects integrated out (2026-11-30, seventh
session): pre-registration", written before any run. Three variants of the shipped model
(``hazard-2.2``), same priors and data, all sampled by nutpie (numba backend):

* **A** the shipped :class:`~neutrality_forecast.model.hazard.HazardModel` (logit link);
* **B** :class:`CloglogHazardModel`: A with the complementary log-log link;
* **C** :class:`MarginalHazardModel`: B with every question effect integrated out by
  adaptive Gauss-Hermite quadrature inside the graph.

One JSON line per variant and data set, then the accuracy check of C against B::

    python benchmarks/marginal.py --out docs/bench/marginal-study.jsonl
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from pathlib import Path

import arviz as az
import numpy as np
import pymc as pm
import pytensor.tensor as pt
from _studies import add_fit_options, study_case_set
from pytensor.gradient import disconnected_grad

import neutrality_forecast as nf
from neutrality_forecast.model.hazard import HazardModel
from neutrality_forecast.sampling import CompiledModel

SHARED = [
    "mu_alpha", "alpha", "mu_beta", "sigma_beta", "beta", "sigma_partner", "partner_effect",
    "sigma_shared", "v", "sigma_q", "rho", "gamma",
]  # fmt: skip


class _Inputs:
    """The padded per-family arrays as NumPy constants, built once per model object."""

    @functools.cached_property
    def inputs(self) -> dict[str, np.ndarray]:
        return self.data.model_inputs(pad_to=self.pad_to)


class CloglogHazardModel(HazardModel):
    r"""``hazard-2.2`` with the complementary log-log link.

    .. math::

        h_{qt} = 1 - \exp(-e^{\eta_{qt}}), \qquad
        \log L = \sum_r y_r \log(1 - e^{-e^{\eta_r}}) - (n_r - y_r)\, e^{\eta_r}

    (the discrete-time form of a proportional continuous-time hazard; at monthly hazards of
    ~0.5 % it differs from the logit by about ``h / 2`` relative). Same priors.
    """

    def log_likelihood(self, data: dict, eta: dict, u) -> pt.TensorVariable:
        """Binomial log-likelihood with the complementary log-log link."""
        loglik = 0.0
        for o in self.data.outcomes:
            e = eta[o] + u[data[f"q_{o}"]]
            y, n = data[f"y_{o}"], data[f"trials_{o}"]
            rate = pt.exp(e)
            loglik = loglik + pt.sum(y * pt.log1mexp(-rate) - (n - y) * rate)
        return loglik


class MarginalHazardModel(_Inputs, CloglogHazardModel):
    r"""The complementary log-log model with the question effects integrated out.

    With :math:`u_q \sim \mathcal N(v_{c_q}, \sigma_{k_q}^2)` and the rows of question
    :math:`q` split into the exposure part and its occurrence rows :math:`e`,

    .. math::

        L_q = \int \exp\Big(\sum_{e \in q} y_e \log(1 - e^{-e^{\eta'_e + u}})
              - e^{u} \Lambda_q\Big)\, \mathcal N(u; v_{c_q}, \sigma_{k_q}^2)\, du,
        \qquad \Lambda_q = \sum_{r \in q} (n_r - y_r)\, e^{\eta'_r}

    where :math:`\eta'` is the linear predictor without :math:`u`. The log integrand
    :math:`g_q(u)` is concave; ``newton`` Newton steps (each clipped to 2) from
    :math:`v_{c_q}` find its mode :math:`\hat u_q`, and ``nodes``-point Gauss-Hermite
    quadrature scaled by :math:`\hat s_q = (-g_q''(\hat u_q))^{-1/2}` gives :math:`\log L_q`.
    The sampler sees only the population terms, the case effects and
    :math:`\sigma_k \sim \mathcal N^+(1)` (log-transformed: without the question
    effects there is no funnel to avoid). The quadrature's centre and width are held
    constant in the gradient (the exact integral does not depend on them): the gradient
    is exact up to the quadrature error.
    """

    nodes: int = 15
    newton: int = 8

    def question_effects(self, v):
        """The prior mean and scale of every question's effect (the effects themselves are
        integrated out)."""
        d, p = self.data, self.config.model.priors
        q_outcome, q_case = d.question_outcome_idx, d.question_case_idx
        sigma = pm.HalfNormal("sigma_q", p.case_sigma_scale, dims="outcome")
        return v[q_case], sigma[q_outcome]

    def log_likelihood(self, data: dict, eta: dict, u) -> pt.TensorVariable:
        """Sum over questions of the quadrature approximation of :math:`\\log L_q`."""
        loc, scale = u
        n_q = len(self.data.questions)
        inputs = self.inputs
        lam = pt.zeros(n_q)
        eta_e, q_e, y_e = [], [], []
        for o in self.data.outcomes:
            y, n, q = data[f"y_{o}"], data[f"trials_{o}"], data[f"q_{o}"]
            lam = pt.inc_subtensor(lam[q], (n - y) * pt.exp(eta[o]))
            ev = np.flatnonzero(inputs[f"y_{o}"] > 0)
            eta_e.append(eta[o][ev])
            q_e.append(inputs[f"q_{o}"][ev])
            y_e.append(inputs[f"y_{o}"][ev])
        eta_e = pt.concatenate(eta_e)
        y_e = np.concatenate(y_e)
        q_e = np.concatenate(q_e)
        prec = 1.0 / scale**2

        u_hat = loc
        for step in range(self.newton):
            g1, g2 = self._derivatives(u_hat, loc, prec, lam, eta_e, q_e, y_e, at_loc=step == 0)
            u_hat = u_hat - pt.clip(g1 / g2, -2.0, 2.0)
        _, g2 = self._derivatives(u_hat, loc, prec, lam, eta_e, q_e, y_e)
        # the quadrature's centre and width carry no gradient: the exact integral does not
        # depend on them, so treating them as constants changes the gradient only by the
        # quadrature error (and keeps the unrolled Newton steps out of the gradient graph)
        u_hat = disconnected_grad(u_hat)
        s_hat = disconnected_grad(1.0 / pt.sqrt(-g2))

        x, w = np.polynomial.hermite.hermgauss(self.nodes)
        u_nodes = u_hat[:, None] + np.sqrt(2.0) * s_hat[:, None] * x[None, :]
        a = pt.exp(eta_e[:, None] + u_nodes[q_e])
        ev_term = pt.inc_subtensor(pt.zeros((n_q, self.nodes))[q_e], y_e[:, None] * pt.log1mexp(-a))
        g = (
            ev_term
            - pt.exp(u_nodes) * lam[:, None]
            - 0.5 * (u_nodes - loc[:, None]) ** 2 * prec[:, None]
        )
        log_int = pt.logsumexp(g + (np.log(w) + x**2)[None, :], axis=1)
        log_int = log_int + pt.log(np.sqrt(2.0) * s_hat)
        return pt.sum(log_int - pt.log(np.sqrt(2.0 * np.pi) * scale))

    @staticmethod
    def _derivatives(u, loc, prec, lam, eta_e, q_e, y_e, *, at_loc=False):
        """First and second derivative of every question's log integrand at ``u``.

        ``at_loc``: ``u`` is ``loc`` (the prior term of the first derivative is 0; written
        out, ``(loc - loc) * prec`` sends PyTensor's rewrites into a loop of minutes).
        """
        n_q = u.shape[0]
        a = pt.exp(eta_e + u[q_e])
        b = a / pt.expm1(a)  # d/du log(1 - exp(-a))
        d1 = pt.inc_subtensor(pt.zeros(n_q)[q_e], y_e * b)
        d2 = pt.inc_subtensor(pt.zeros(n_q)[q_e], y_e * b * (1.0 - b * pt.exp(a)))
        eu = pt.exp(u) * lam
        prior = 0.0 if at_loc else (u - loc) * prec
        return d1 - eu - prior, d2 - eu - prec


class Float32HazardModel(_Inputs, HazardModel):
    """The shipped model with its likelihood in single precision (exploratory variant D).

    Each family's design, the gathered question effects, the linear predictor and the
    softplus are float32; the parameters, the sampler and the sum over rows stay float64.
    """

    def family_predictors(self, data: dict, alpha, beta, partner, rho_k, gamma_k) -> dict:
        """``Z_k theta_k`` in float32, the data as float32 constants (a cast of the data
        containers would convert the whole design at every gradient)."""
        thetas = self.family_parameters(alpha, beta, partner, rho_k, gamma_k)
        inputs = self.inputs
        return {
            o: pt.dot(inputs[f"design_{o}"].astype(np.float32), pt.cast(thetas[o], "float32"))
            for o in self.data.outcomes
        }

    def log_likelihood(self, data: dict, eta: dict, u) -> pt.TensorVariable:
        """Binomial log-likelihood (logit link) evaluated in float32, summed in float64."""
        inputs = self.inputs
        u32 = pt.cast(u, "float32")
        loglik = 0.0
        for o in self.data.outcomes:
            e = eta[o] + u32[inputs[f"q_{o}"]]
            y = inputs[f"y_{o}"].astype(np.float32)
            n = inputs[f"trials_{o}"].astype(np.float32)
            loglik = loglik + pt.sum(y * e - n * pt.softplus(e), acc_dtype="float64")
        return pt.cast(loglik, "float64")


VARIANTS = {
    "A": HazardModel,
    "B": CloglogHazardModel,
    "C": MarginalHazardModel,
    "D": Float32HazardModel,  # exploratory (not in the pre-registered study)
}


def _record(idata, seconds: float) -> dict:
    post = idata.posterior[[v for v in SHARED if v in idata.posterior]]
    stats = idata.sample_stats
    ess_bulk = az.ess(post, method="bulk")
    worst = min(ess_bulk.data_vars, key=lambda v: float(ess_bulk[v].min()))
    return {
        "sampling_seconds": round(seconds, 1),
        "steps_per_draw": round(float(stats["n_steps"].mean()), 1),
        "divergences": int(stats["diverging"].sum()),
        "min_ess_bulk": round(float(ess_bulk.to_array().min())),
        "slowest": worst,
        "min_ess_tail": round(float(az.ess(post, method="tail").to_array().min())),
        "max_rhat": round(float(az.rhat(post).to_array().max()), 4),
        "min_ess_bulk_per_s": round(float(ess_bulk.to_array().min()) / seconds, 2),
    }


def _accuracy(b, c) -> dict:
    """Posterior means of a variant ``c`` against its reference ``b`` (C against B, D
    against A), in units of their combined Monte Carlo error."""
    z = []
    for v in SHARED:
        if v not in b.posterior:
            continue
        mb, mc = b.posterior[v].mean(("chain", "draw")), c.posterior[v].mean(("chain", "draw"))
        se = np.sqrt(az.mcse(b.posterior[[v]])[v] ** 2 + az.mcse(c.posterior[[v]])[v] ** 2)
        z.append(np.abs(np.asarray(mb - mc)).ravel() / np.asarray(se).ravel())
    z = np.concatenate(z)
    return {
        "scalars": int(z.size),
        "max_z": round(float(z.max()), 2),
        "share_above_3": round(float((z > 3).mean()), 4),
        "passed": bool((z > 3).mean() <= 0.02 and z.max() <= 5),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--out",
        type=Path,
        default=Path("runs/marginal-study.jsonl"),
        help="JSON lines, appended: one per variant and data set, then the check",
    )
    ap.add_argument(
        "--variants",
        nargs="+",
        default=list(VARIANTS),
        help="A shipped (logit), B cloglog, C cloglog with u integrated out",
    )
    add_fit_options(ap, draws=1000)
    args = ap.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cfg = nf.load_config()
    for name in args.data:
        cs = study_case_set(name)
        data = nf.build_model_data(cs, cfg)
        fits = {}
        for key in args.variants:
            t0 = time.perf_counter()
            compiled = CompiledModel(VARIANTS[key](data, cfg).build_model(), sampler="nutpie")
            compile_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            idata = compiled.sample(
                draws=args.draws, tune=args.tune, chains=4, seed=args.seed,
                target_accept=0.9, progressbar=False,
            )  # fmt: skip
            rec = {"data": name, "variant": key, "compile_seconds": round(compile_s, 1),
                   "free_parameters": int(sum(np.prod(v.shape) for v in
                                              compiled.model.initial_point().values())),
                   **_record(idata, time.perf_counter() - t0)}  # fmt: skip
            fits[key] = idata
            print(json.dumps(rec), flush=True)
            with args.out.open("a") as f:
                f.write(json.dumps(rec) + "\n")
        for ref, var in (("B", "C"), ("A", "D")):
            if ref in fits and var in fits:
                rec = {"data": name, "check": f"{var} vs {ref}", **_accuracy(fits[ref], fits[var])}
                print(json.dumps(rec), flush=True)
                with args.out.open("a") as f:
                    f.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
