"""The generic numerical M-step against a direct scipy fit of the same likelihood.

Run from the repository root::

    PYTHONPATH=. python benchmarks/bench_numerical_mstep.py [--repeat 5] [--out FILE]

A two-component von Mises mixture (issue 14) on N = 1000 seeded angles, stated only
through ``log_joint`` + ``constraints`` + ``latent_support`` (no ``expected_stats`` /
``m_step``), so :func:`latent_em.fit` takes the generic numerical M-step. It is fitted

* ``em-loop``: as a plain model (finite differences, one ``log_joint`` call per
  perturbation and support point, the path before batching);
* ``em-batched``: the same model with ``log_joint_batch`` (all perturbations in one call);
* ``em-gradient``: with an analytic ``log_joint_grad``;
* ``em-*-inexact``: with ``forcing=1e-3`` (each M-step stops once the gradient fell
  1000-fold; opt-in, not the driver's default, patched in here);
* ``em-loop-lbfgs``: the M-step before the quasi-Newton default (scipy L-BFGS-B restarted
  at every M-step, ``method="L-BFGS-B"``, no state), patched in here;
* ``direct``: ``scipy.optimize.minimize`` (L-BFGS-B, scipy's own finite-difference
  gradient) of the marginal log-likelihood over the same unconstrained vector, from the
  same start.

Every method is repeated ``--repeat`` times; the minimum, median and maximum wall time
are printed (the machine is shared and noisy), with EM iterations and the final
log-likelihoods (which must agree).
"""

from __future__ import annotations

import argparse
import dataclasses
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import NamedTuple  # noqa: E402

import numpy as np  # noqa: E402
import scipy  # noqa: E402
from scipy.optimize import minimize  # noqa: E402
from scipy.special import i0e, i1e, logsumexp  # noqa: E402

import latent_em  # noqa: E402
from latent_em.constraints import Positive, Real, Simplex, flatten_params, unflatten_params  # noqa: E402

N, K, SEED = 1000, 2, 0


class VMParams(NamedTuple):
    weights: np.ndarray
    mu: np.ndarray
    kappa: np.ndarray


def _log_vm(x: np.ndarray, mu: np.ndarray, kappa: np.ndarray) -> np.ndarray:
    # log of the von Mises density, with i0e for stability: log I0(k) = log i0e(k) + k
    return kappa * (np.cos(x - mu) - 1.0) - np.log(2 * np.pi * i0e(kappa))


@dataclasses.dataclass(frozen=True)
class VonMisesMixture:
    """log_joint + constraints + latent_support only: the numerical M-step."""

    n_components: int = K
    constraints = {"weights": Simplex(), "mu": Real(), "kappa": Positive()}

    def latent_support(self) -> np.ndarray:
        return np.arange(self.n_components)

    def initialize(self, x, rng):
        return VMParams(
            np.full(self.n_components, 1.0 / self.n_components),
            rng.choice(np.asarray(x), self.n_components, replace=False),
            np.ones(self.n_components),
        )

    def log_joint(self, params, x, z):
        return np.log(params.weights[z]) + _log_vm(x, params.mu[z], params.kappa[z])


@dataclasses.dataclass(frozen=True)
class VonMisesMixtureBatched(VonMisesMixture):
    """Adds ``log_joint_batch``: a list of parameter values evaluated in one call."""

    def log_joint_batch(self, params_list, x, z):
        w = np.stack([p.weights for p in params_list])[:, z]  # (B, n)
        mu = np.stack([p.mu for p in params_list])[:, z]
        kappa = np.stack([p.kappa for p in params_list])[:, z]
        return np.log(w) + _log_vm(x[None, :], mu, kappa)


@dataclasses.dataclass(frozen=True)
class VonMisesMixtureGradient(VonMisesMixture):
    """Adds the analytic ``log_joint_grad``."""

    def log_joint_grad(self, params, x, z, weights):
        k = self.n_components
        onehot = np.eye(k)[z] * weights[:, None]  # (n, K)
        mu, kappa = params.mu[z], params.kappa[z]
        # d/dk log I0(k) = I1(k)/I0(k)
        a = i1e(kappa) / i0e(kappa)
        return {
            "weights": onehot.sum(0) / params.weights,
            "mu": onehot.T @ (kappa * np.sin(x - mu)),
            "kappa": onehot.T @ (np.cos(x - mu) - a),
        }


def make_data() -> np.ndarray:
    rng = np.random.default_rng(SEED)
    n1 = int(0.4 * N)
    x = np.concatenate([rng.vonmises(-1.0, 4.0, n1), rng.vonmises(1.5, 2.0, N - n1)])
    return rng.permutation(x)


def start_params(x: np.ndarray) -> VMParams:
    return VonMisesMixture().initialize(x, np.random.default_rng(SEED + 1))


def marginal_ll(params: VMParams, x: np.ndarray) -> float:
    table = np.log(params.weights)[None, :] + _log_vm(x[:, None], params.mu, params.kappa)
    return float(logsumexp(table, axis=1).sum())


def run_em(model, x, p0, tol):
    t = time.perf_counter()
    res = latent_em.fit(model, x, params=p0, tol=tol, max_iter=2000)
    dt = time.perf_counter() - t
    return dt, res.n_iter, marginal_ll(res.params, x)


def run_em_inexact(model, x, p0, tol, forcing=1e-3, method="quasi-newton"):
    import functools

    import latent_em.em_map as em_map
    import latent_em.numerical_mstep as nm

    original = em_map.numerical_m_step
    if method == "quasi-newton":  # the driver passes its own state
        em_map.numerical_m_step = functools.partial(nm.numerical_m_step, forcing=forcing)
    else:  # the old default: L-BFGS-B afresh at every M-step

        def old(*args, state=None, **kwargs):
            return nm.numerical_m_step(*args, method=method, forcing=forcing, **kwargs)

        em_map.numerical_m_step = old
    try:
        return run_em(model, x, p0, tol)
    finally:
        em_map.numerical_m_step = original


def run_direct(x, p0):
    cons = VonMisesMixture.constraints
    u0 = flatten_params(p0, cons)

    def f(u):
        return -marginal_ll(unflatten_params(u, p0, cons), x) / len(x)

    t = time.perf_counter()
    r = minimize(f, u0, method="L-BFGS-B", options={"ftol": 1e-13, "gtol": 1e-9})
    dt = time.perf_counter() - t
    return dt, r.nit, marginal_ll(unflatten_params(r.x, p0, cons), x)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--tol", type=float, default=1e-6)
    ap.add_argument("--only", nargs="*", default=None)
    args = ap.parse_args()
    x = make_data()
    p0 = start_params(x)
    methods = {
        "em-loop": lambda: run_em(VonMisesMixture(), x, p0, args.tol),
        "em-batched": lambda: run_em(VonMisesMixtureBatched(), x, p0, args.tol),
        "em-gradient": lambda: run_em(VonMisesMixtureGradient(), x, p0, args.tol),
        "em-loop-inexact": lambda: run_em_inexact(VonMisesMixture(), x, p0, args.tol),
        "em-grad-inexact": lambda: run_em_inexact(VonMisesMixtureGradient(), x, p0, args.tol),
        "em-loop-lbfgs": lambda: run_em_inexact(
            VonMisesMixture(), x, p0, args.tol, forcing=0.0, method="L-BFGS-B"
        ),
        "direct": lambda: run_direct(x, p0),
    }
    if args.only:
        methods = {k: v for k, v in methods.items() if k in args.only}
    print(
        f"# {platform.platform()} | {platform.processor() or platform.machine()} | "
        f"{os.cpu_count()} cpus | python {sys.version.split()[0]} | numpy {np.__version__} | "
        f"scipy {scipy.__version__} | latent_em {latent_em.__version__} | "
        f"loadavg {os.getloadavg()[0]:.2f}"
    )
    print(f"# von Mises mixture K={K}, N={N}, seed={SEED}, EM tol={args.tol}, repeat={args.repeat}")
    print(f"{'method':<16} {'min s':>8} {'median s':>9} {'max s':>8} {'iter':>5} {'log-lik':>20}")
    times = {}
    for name, fn in methods.items():
        runs = [fn() for _ in range(args.repeat)]
        secs = np.array([r[0] for r in runs])
        times[name] = np.median(secs)
        print(
            f"{name:<16} {secs.min():8.3f} {np.median(secs):9.3f} {secs.max():8.3f} "
            f"{runs[0][1]:5d} {runs[0][2]:20.10f}"
        )
    if "direct" in times:
        for name, t in times.items():
            if name != "direct":
                print(f"# {name} / direct (medians): {t / times['direct']:.1f}x")


if __name__ == "__main__":
    main()
