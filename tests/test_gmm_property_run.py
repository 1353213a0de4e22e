"""A property run of the Gaussian mixture (issue 12): random problems, every fit right or a
documented error.

320 problems from fixed seeds (80 per covariance type): data on scales from 1e-4 to 1e4
(clustered, rounded so that duplicated rows occur, sometimes with a constant column or far
from the origin), K from 1 up to N, the four initializations, sometimes sample weights,
sometimes SQUAREM. For each: no :class:`~latent_em.MonotonicityError`, no NaN, no
internal error and no warning other than :class:`~latent_em.ConvergenceWarning`; the
history never decreases beyond the documented tolerance within a segment; the covariances
respect the ``reg_covar`` floor; the reported log-likelihood is scipy's mixture density.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

import latent_em
from latent_em import GaussianMixtureModel

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
INITS = ("kmeans", "k-means++", "random", "random_from_data")
PROBLEMS_PER_TYPE = 80
RTOL = 1e-10  # latent_em.fit's default monotone_rtol


def problem(seed: int, covariance_type: str) -> tuple[GaussianMixtureModel, np.ndarray, dict]:
    """One random problem: ``(model, x, fit options)``."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 41))
    d = int(rng.integers(1, 4))
    scale = 10.0 ** rng.uniform(-4, 4)
    n_clusters = int(rng.integers(1, 5))
    centres = rng.normal(scale=5.0, size=(n_clusters, d))
    x = centres[rng.integers(0, n_clusters, n)] + rng.normal(size=(n, d))
    x = np.round(x, int(rng.integers(0, 3)))  # ties and duplicated rows
    if d > 1 and rng.uniform() < 0.15:
        x[:, -1] = 1.0  # a constant column
    x = scale * x
    if rng.uniform() < 0.15:
        x = x + scale * 1e4  # far from the origin, in units of the spread
    k = int(rng.integers(1, n + 1)) if rng.uniform() < 0.5 else int(rng.integers(1, min(n, 4) + 1))
    model = GaussianMixtureModel(
        k, covariance_type=covariance_type, init_params=INITS[int(rng.integers(0, 4))]
    )
    options: dict = {"random_state": seed, "max_iter": 300, "n_init": int(rng.integers(1, 3))}
    if rng.uniform() < 0.3:
        options["sample_weight"] = rng.choice([0.0, 0.5, 1.0, 3.0], size=n)
        options["sample_weight"][0] = 1.0  # never all zero
    if rng.uniform() < 0.2:
        options["accelerate"] = "squarem"
    return model, x, options


def _mixture_log_likelihood(model, params, x, weights) -> float | None:
    k, d = np.shape(params.means)
    full = model.covariance.to_full(np.asarray(params.covariances), k, d)
    try:
        table = np.stack(
            [
                np.log(w) + multivariate_normal(m, c).logpdf(x).reshape(-1)
                for w, m, c in zip(params.weights, params.means, full, strict=True)
                if w > 0
            ],
            axis=1,
        )
    except np.linalg.LinAlgError:
        # scipy calls a covariance singular beyond a condition number of ~4.5e9 (and
        # would then use a pseudo-determinant): no oracle there
        return None
    lm = logsumexp(table, axis=1)
    return float(np.dot(weights[weights > 0], lm[weights > 0]))


def check_problem(seed: int, covariance_type: str) -> None:
    model, x, options = problem(seed, covariance_type)
    with warnings.catch_warnings():
        # the only warning a fit may give; every other one is an error of this suite
        warnings.simplefilter("ignore", latent_em.ConvergenceWarning)
        result = latent_em.fit(model, x, **options)
    weights = options.get("sample_weight", np.ones(len(x)))
    n = float(np.sum(weights))
    assert math.isfinite(result.log_likelihood)
    for leaf in result.params:
        assert np.all(np.isfinite(leaf))
    # the history: within each segment, no decrease beyond the documented tolerance
    slack = model.log_likelihood_round_off(result.params)
    for segment in result.history_segments:
        allowed = RTOL * (np.abs(segment[:-1]) + n) + slack * n
        assert np.all(np.diff(segment) >= -allowed)
    # the covariances respect the floor, up to the round-off of storing an
    # ill-conditioned matrix (its eigenvalues are known to ε times the largest)
    cov = np.asarray(result.params.covariances)
    low = model.covariance.min_variance(cov, model.n_components)
    high = model.covariance.max_variance(cov, model.n_components)
    eps = np.finfo(float).eps
    assert np.all(low >= model.reg_covar * (1 - 1e-9) - 64 * eps * high)
    # the posterior is a distribution over components for every row
    resp, lm = latent_em.posterior(model, result.params, x)
    assert np.all(np.isfinite(resp)) and np.all(np.isfinite(lm))
    np.testing.assert_allclose(resp.sum(axis=1), 1.0, rtol=1e-10)
    # the reported log-likelihood is the mixture density, computed by scipy
    expected = _mixture_log_likelihood(model, result.params, x, weights)
    if expected is not None:
        assert result.log_likelihood == pytest.approx(expected, rel=1e-8, abs=(1e-8 + slack) * n)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_random_gaussian_problems_fit_or_fail_for_a_documented_reason(covariance_type):
    offset = COVARIANCE_TYPES.index(covariance_type) * 100_000
    failures = []
    for seed in range(offset, offset + PROBLEMS_PER_TYPE):
        try:
            check_problem(seed, covariance_type)
        except Exception as exc:  # collected so that one run reports every failing seed
            failures.append(f"seed {seed}: {type(exc).__name__}: {str(exc)[:300]}")
    assert not failures, "\n".join(failures)
