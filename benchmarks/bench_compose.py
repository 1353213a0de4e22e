"""Benchmark: the composed Gaussian mixture against the built-in GaussianMixtureModel.

Run from a checkout::

    PYTHONPATH=. python benchmarks/bench_compose.py            # N = 200 000, D = K = 16
    PYTHONPATH=. python benchmarks/bench_compose.py --n 50000  # smaller

Same data, same initial parameters, ``tol=0`` and a fixed number of iterations for:

* ``built-in``: ``GaussianMixtureModel(K, covariance_type)``;
* ``Mixture``: ``Mixture(Gaussian(covariance_type), n_components=K)`` (runs on the
  built-in model's E-step kernels; the parameters are a dict);
* ``generic``: ``Mixture([Gaussian(covariance_type)] * K)``, the components' own
  vectorized NumPy code (log-density by Cholesky solves, statistics by products), as
  every non-Gaussian composition runs; measured for information.

Seconds per iteration: the median over ``--repeats`` interleaved runs of the median
wall time between consecutive E-steps (the driver's ``callback``), the first iteration
of each run left out.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import latent_em
from latent_em.components import Gaussian


def per_iteration(model, x, params, iters):
    stamps = []
    latent_em.fit(
        model,
        x,
        params=params,
        max_iter=iters,
        tol=0,
        warn_not_converged=False,
        callback=lambda *_: stamps.append(time.perf_counter()),
    )
    return statistics.median(np.diff(stamps)[1:])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--d", type=int, default=16)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--iters", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--generic", action="store_true", help="also time the generic path")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=4.0, size=(args.k, args.d))
    x = centres[rng.integers(0, args.k, size=args.n)] + rng.normal(size=(args.n, args.d))
    for cov in ("full", "diag"):
        gmm = latent_em.GaussianMixtureModel(args.k, covariance_type=cov)
        start = gmm.initialize(x, np.random.default_rng(1))
        composed = latent_em.Mixture(Gaussian(cov), n_components=args.k)
        as_dict = {"weights": start.weights, "mean": start.means, "cov": start.covariances}
        runs = {
            "built-in": (gmm, start),
            "Mixture": (composed, as_dict),
        }
        if args.generic:
            generic = latent_em.Mixture([Gaussian(cov)] * args.k)
            p = {"weights": start.weights}
            for j in range(args.k):
                p[f"{j}.mean"], p[f"{j}.cov"] = start.means[j], start.covariances[j]
            runs["generic"] = (generic, p)
        times: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.repeats):
            for name, (model, params) in runs.items():
                times[name].append(per_iteration(model, x, params, args.iters))
        base = statistics.median(times["built-in"])
        for name, values in times.items():
            med = statistics.median(values)
            print(
                f"N={args.n} D={args.d} K={args.k} {cov:5s} {name:9s} {med:8.4f} s/iter "
                f"(x{med / base:5.2f} of built-in; runs: "
                + ", ".join(f"{v:.4f}" for v in values)
                + ")"
            )


if __name__ == "__main__":
    main()
