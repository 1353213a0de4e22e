"""SQUAREM run past convergence (``tol=0``): at the fixed point the step length sits at
its upper bound, which grows by ``mstep`` every cycle; ``alpha**2`` of a Python float then
raised OverflowError after a few hundred cycles (found with
``benchmarks/bench_squarem_accuracy.py``). Such a step must be refused like any other
unusable extrapolation, and the fit must end at the fixed point."""

from __future__ import annotations

import warnings

import numpy as np

import latent_em
from latent_em.models import PoissonMixtureModel, PoissonMixtureParams


def test_squarem_with_tol_zero_runs_past_the_fixed_point():
    # Hasselblad (1969) death notices; fixed point from the R package SQUAREM's
    # tests/Hasselblad1969.R
    deaths = np.arange(10, dtype=float)[:, None]
    freq = np.array([162, 267, 271, 185, 111, 61, 27, 8, 3, 1], dtype=float)
    start = PoissonMixtureParams(np.array([0.3, 0.7]), np.array([[1.0], [2.5]]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", latent_em.ConvergenceWarning)
        result = latent_em.fit(
            PoissonMixtureModel(2),
            deaths,
            sample_weight=freq,
            params=start,
            tol=0.0,
            max_iter=600,
            accelerate="squarem",
        )
    rates = result.params.rates[:, 0]
    hi = int(np.argmax(rates))
    got = [result.params.weights[hi], rates[hi], rates[1 - hi]]
    np.testing.assert_allclose(got, [0.6401146029910, 2.6634043566619, 1.2560951012662], atol=1e-6)
