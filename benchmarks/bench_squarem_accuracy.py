"""SQUAREM against plain EM on Hasselblad's Poisson mixture, counted two ways.

Run from the repository root::

    PYTHONPATH=. python benchmarks/bench_squarem_accuracy.py

Issue 14 reported SQUAREM at 19.5x fewer E-step evaluations than plain EM at ``tol=1e-12``
from Varadhan & Roland's start, against about 40x reported by the R package SQUAREM.
This script counts the evaluations (1) to the driver's convergence test at several
``tol`` and (2) to a fixed *parameter* accuracy, the distance to the fixed point that the
R package's own test (``tests/Hasselblad1969.R``) checks, ``(0.6401146029910,
2.6634043566619, 1.2560951012662)`` for (weight, rate, rate) of the high-rate component.
A test on the change in log-likelihood stops plain EM, which crawls along a ridge here,
long before its parameters are accurate, so it undercounts EM's evaluations.
"""

from __future__ import annotations

import warnings

import numpy as np

import latent_em
from latent_em.acceleration import Squarem
from latent_em.models import PoissonMixtureModel, PoissonMixtureParams

DEATHS = np.arange(10, dtype=float)[:, None]
FREQ = np.array([162, 267, 271, 185, 111, 61, 27, 8, 3, 1], dtype=float)
FIXED_POINT = np.array([0.6401146029910, 2.6634043566619, 1.2560951012662])


def error(params) -> float:
    rates = np.asarray(params.rates)[:, 0]
    hi = int(np.argmax(rates))
    got = np.array([params.weights[hi], rates[hi], rates[1 - hi]])
    return float(np.max(np.abs(got - FIXED_POINT)))


def fit(start, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return latent_em.fit(
            PoissonMixtureModel(2), DEATHS, sample_weight=FREQ, params=start, **kwargs
        )


def evaluations_to_accuracy(start, target: float, accelerate) -> int:
    """E-step evaluations until the parameters are within ``target`` of the fixed point."""
    errors: list[float] = []
    fit(
        start,
        tol=0.0,
        max_iter=50_000 if accelerate is None else 500,
        accelerate=accelerate,
        callback=lambda it, params, obj: errors.append(error(params)),
    )
    first = next(i for i, e in enumerate(errors) if e < target)
    if accelerate is None:
        return first + 1  # one E-step per iteration
    # a SQUAREM cycle costs 2-4 evaluations: rerun with that many cycles and count
    return fit(start, tol=0.0, max_iter=first + 1, accelerate=accelerate).n_evaluations


def main() -> None:
    # Varadhan & Roland's start: weight 0.3, rates 1.0 and 2.5
    start = PoissonMixtureParams(np.array([0.3, 0.7]), np.array([[1.0], [2.5]]))
    print("to the driver's convergence test (change in mean log-likelihood < tol):")
    for tol in (1e-8, 1e-10, 1e-12):
        em = fit(start, tol=tol, max_iter=200_000)
        sq = fit(start, tol=tol, accelerate=Squarem())
        print(
            f"  tol {tol:g}: EM {em.n_evaluations} evaluations (parameter error "
            f"{error(em.params):.1e}), SQUAREM {sq.n_evaluations} ({error(sq.params):.1e}): "
            f"{em.n_evaluations / sq.n_evaluations:.1f}x"
        )
    print("to a parameter accuracy (max abs distance to the R package's fixed point):")
    for target in (1e-5, 1e-7):
        em = evaluations_to_accuracy(start, target, None)
        sq = evaluations_to_accuracy(start, target, Squarem())
        print(f"  {target:g}: EM {em} evaluations, SQUAREM {sq}: {em / sq:.1f}x")


if __name__ == "__main__":
    main()
