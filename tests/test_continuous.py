"""Continuous latent variables: probabilistic PCA through its own exact posterior.

Oracles: the closed-form maximum-likelihood solution of Tipping & Bishop (1999, JRSS-B
61(3), eqs. 7-8; eigendecomposition of the sample covariance, numpy's eigh), scipy's
multivariate normal density for log p(x_n), and Gaussian conditioning of the joint
(z, x) covariance for the posterior.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

import latent_em
from latent_em import PPCAModel, PPCAParams


def _data(rng, n=400, d=6, q=2):
    loadings = rng.normal(size=(d, q)) * np.array([4.0, 2.0])
    z = rng.normal(size=(n, q))
    return z @ loadings.T + rng.normal(scale=0.5, size=(n, d)) + np.arange(d) * 10.0


def _tipping_bishop(x, q):
    """Closed-form ML: μ = mean, σ² = mean of the D - q smallest eigenvalues,
    W = U_q (Λ_q - σ² I)^{1/2} (T&B 1999, eqs. 7-8; R = I)."""
    mean = x.mean(axis=0)
    cov = np.cov(x.T, bias=True)  # the ML (1/N) sample covariance
    lam, u = np.linalg.eigh(cov)
    lam, u = lam[::-1], u[:, ::-1]
    s2 = lam[q:].mean()
    w = u[:, :q] * np.sqrt(lam[:q] - s2)
    loglik = scipy.stats.multivariate_normal(mean, w @ w.T + s2 * np.eye(x.shape[1])).logpdf(x)
    return PPCAParams(w, mean, np.asarray(s2)), loglik.sum()


@pytest.fixture(scope="module")
def x():
    return _data(np.random.default_rng(5))


def test_em_reaches_the_tipping_bishop_ml_solution(x):
    q = 2
    ml, ml_loglik = _tipping_bishop(x, q)
    result = latent_em.fit(PPCAModel(q), x, random_state=0, tol=1e-13, max_iter=20000)
    assert result.converged
    p = result.params
    # the likelihood is flat only along rotations of W, so compare W Wᵀ, μ, σ²
    assert result.log_likelihood == pytest.approx(ml_loglik, rel=1e-12, abs=1e-7)
    assert float(p.noise_variance) == pytest.approx(float(ml.noise_variance), rel=1e-6)
    np.testing.assert_allclose(p.mean, ml.mean, rtol=1e-10)
    wwt, ml_wwt = p.loadings @ p.loadings.T, ml.loadings @ ml.loadings.T
    np.testing.assert_allclose(wwt, ml_wwt, rtol=0, atol=1e-5 * np.abs(ml_wwt).max())
    assert result.n_parameters == 6 * 2 + 6 + 1 - 1


def test_tipping_bishop_solution_is_a_fixed_point_of_one_em_step(x):
    ml, _ = _tipping_bishop(x, 2)
    model = PPCAModel(2)
    post, _ = model.posterior(ml, x)
    new = model.m_step(ml, model.expected_stats(ml, x, post, np.ones(len(x))))
    np.testing.assert_allclose(new.loadings, ml.loadings, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(new.mean, ml.mean, rtol=1e-12)
    assert float(new.noise_variance) == pytest.approx(float(ml.noise_variance), rel=1e-10)


def test_posterior_and_marginal_match_gaussian_conditioning(rng):
    d, q = 4, 2
    params = PPCAParams(rng.normal(size=(d, q)), rng.normal(size=d), np.asarray(0.7))
    x = rng.normal(size=(5, d)) * 2
    post, lm = PPCAModel(q).posterior(params, x)
    c = params.loadings @ params.loadings.T + 0.7 * np.eye(d)
    np.testing.assert_allclose(
        lm, scipy.stats.multivariate_normal(params.mean, c).logpdf(x), rtol=1e-12
    )
    # joint (z, x) is Gaussian with Cov(z, x) = Wᵀ: condition z on x
    gain = params.loadings.T @ np.linalg.inv(c)
    np.testing.assert_allclose(post.means, (x - params.mean) @ gain.T, rtol=1e-10)
    np.testing.assert_allclose(
        post.covariance, np.eye(q) - gain @ params.loadings, rtol=1e-10, atol=1e-12
    )
    # log p(x) = log p(x, z) - log q(z) at any z when q is the exact posterior
    z = rng.normal(size=(5, q))
    log_q = [
        scipy.stats.multivariate_normal(m, post.covariance).logpdf(zi)
        for m, zi in zip(post.means, z, strict=True)
    ]
    np.testing.assert_allclose(PPCAModel(q).log_joint(params, x, z) - log_q, lm, rtol=1e-10)


def test_ppca_passes_check_model(x):
    report = latent_em.check_model(PPCAModel(2), x)
    assert report["elbo"].status == "passed"
    assert report["m_step_maximizer"].status == "passed"
    assert report["additive_stats"].status == "passed"
    assert report["n_parameters"].status == "passed"


def test_chunked_and_weighted_fits_agree(x):
    model = PPCAModel(2)
    start = model.initialize(x, np.random.default_rng(0))
    opts = {"params": start, "max_iter": 5, "warn_not_converged": False}
    whole = latent_em.fit(model, x, **opts)
    chunked = latent_em.fit(model, x, chunk_size=97, **opts)
    np.testing.assert_allclose(chunked.history, whole.history, rtol=1e-12)
    counts = np.arange(len(x)) % 3
    weighted = latent_em.fit(model, x, sample_weight=counts, **opts)
    repeated = latent_em.fit(model, np.repeat(x, counts, axis=0), **opts)
    np.testing.assert_allclose(weighted.history, repeated.history, rtol=1e-10)


def test_bad_input_named():
    with pytest.raises(ValueError, match="n_components"):
        PPCAModel(0)
    with pytest.raises(ValueError, match="below the number of features"):
        latent_em.fit(PPCAModel(3), np.ones((10, 3)))
    with pytest.raises(ValueError, match="x contains NaN"):
        latent_em.fit(PPCAModel(1), np.array([[1.0, np.nan], [2.0, 3.0]]))
