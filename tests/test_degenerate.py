"""Degenerate but valid data: every case fits without crashing and reports what happened.

Where a closed form exists the fit is checked against it (MLE of one Gaussian:
sample mean and biased sample covariance; frequency weights equal repeated rows; the
Gaussian log-likelihood of ``a·X`` is that of ``X`` minus ``n D log a``).
Cases for the Bernoulli and Poisson mixtures run once those estimators are exported
by :mod:`latent_em.estimators` (they are skipped, with the reason, until then).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import multivariate_normal

import latent_em
from latent_em import GaussianMixture

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]


def _messages(est) -> str:
    return " | ".join(event.message for event in est.result_.events)


def _check_sane(est, x) -> None:
    """What every degenerate fit must satisfy."""
    assert math.isfinite(est.log_likelihood_)
    assert np.all(np.isfinite(est.score_samples(x)))
    np.testing.assert_allclose(est.predict_proba(x).sum(axis=1), 1.0, rtol=1e-12)
    assert np.all(np.diff(est.history_) >= -1e-9 * (1 + abs(est.history_[-1])))


@pytest.fixture
def x60(rng) -> np.ndarray:
    return rng.normal(size=(60, 2))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_duplicated_rows_equal_frequency_weights(x60, covariance_type):
    distinct = x60[:10]
    repeated = np.repeat(distinct, 6, axis=0)
    init = distinct[[0, 4, 8]]
    opts = dict(covariance_type=covariance_type, means_init=init, tol=1e-10)
    a = GaussianMixture(3, **opts).fit(repeated)
    b = GaussianMixture(3, **opts).fit(distinct, sample_weight=np.full(10, 6.0))
    _check_sane(a, repeated)
    # integer weights are repeated rows: same parameters and log-likelihood
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-8, atol=1e-10)
    assert a.log_likelihood_ == pytest.approx(b.log_likelihood_, rel=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_constant_column_is_reported_and_fits_the_closed_form(x60, covariance_type):
    x = np.c_[x60[:, 0], np.full(60, 3.0)]
    est = GaussianMixture(1, covariance_type=covariance_type).fit(x)
    _check_sane(est, x)
    # one component: the MLE is the sample mean and the biased sample covariance
    np.testing.assert_allclose(est.means_[0], x.mean(axis=0), rtol=1e-12)
    full = est.model_.covariance.to_full(est.covariances_, 1, 2)[0]
    # the constrained MLE (every eigenvalue >= reg_covar = 1e-6): the sample variances,
    # the constant column's 0 raised to the floor (the columns are uncorrelated, so the
    # eigenvalues are the variances)
    if covariance_type in ("full", "tied", "diag"):
        expected = np.maximum(np.cov(x.T, bias=True).diagonal(), 1e-6)
        np.testing.assert_allclose(np.diag(full), expected, rtol=1e-10)
        assert "collapsed" in _messages(est) and "a constant column" in _messages(est)
    else:
        # one shared variance: the constant column halves it but does not collapse it
        assert full[0, 0] == pytest.approx(x.var(axis=0).mean(), rel=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_more_components_than_distinct_points(covariance_type):
    x = np.repeat(np.array([[0.0, 0.0], [1.0, 1.0]]), 10, axis=0)
    est = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(x)
    _check_sane(est, x)
    assert "collapsed" in _messages(est)
    labels = est.predict(x)
    # the two distinct points are never put in the same component
    assert len(set(labels[:10])) == 1 and len(set(labels[10:])) == 1 and labels[0] != labels[-1]


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_single_row(covariance_type):
    x = np.array([[1.5, -2.0]])
    est = GaussianMixture(1, covariance_type=covariance_type).fit(x)
    _check_sane(est, x)
    # the MLE sits on the point with covariance reg_covar·I: log N(x; x, 1e-6 I)
    expected = multivariate_normal(x[0], 1e-6 * np.eye(2)).logpdf(x[0])
    assert est.log_likelihood_ == pytest.approx(expected, rel=1e-12)
    assert "collapsed" in _messages(est)


@pytest.mark.parametrize("scale", [1e8, 1e-8])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_scaled_data_is_equivariant(faithful, scale, covariance_type):
    init = np.array([[2.0, 55.0], [4.5, 80.0]])
    opts = dict(covariance_type=covariance_type, reg_covar=0.0, tol=1e-12, max_iter=5000)
    base = GaussianMixture(2, means_init=init, **opts).fit(faithful)
    scaled = GaussianMixture(2, means_init=init * scale, **opts).fit(faithful * scale)
    _check_sane(scaled, faithful * scale)
    np.testing.assert_allclose(scaled.means_, base.means_ * scale, rtol=1e-8)
    np.testing.assert_allclose(scaled.weights_, base.weights_, rtol=1e-8)
    # log p(a x) = log p(x) - D log a for a density on R^D
    n, d = faithful.shape
    expected = base.log_likelihood_ - n * d * math.log(scale)
    assert scaled.log_likelihood_ == pytest.approx(expected, rel=1e-9)


def test_tiny_scale_with_default_regularisation_is_reported(faithful):
    est = GaussianMixture(2, random_state=0).fit(faithful * 1e-8)
    _check_sane(est, faithful * 1e-8)
    assert "data on a tiny scale" in _messages(est)


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical"])
def test_one_extreme_outlier_gets_its_own_component(faithful, covariance_type):
    x = np.r_[faithful, [[1e6, 1e6]]]
    est = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(x)
    _check_sane(est, x)
    labels = est.predict(x)
    assert np.sum(labels == labels[-1]) == 1
    assert "collapsed" in _messages(est)
    if covariance_type == "full":
        # closed form: the other two components are the K=2 fit of the clean data, the
        # outlier's component has weight 1/273 and covariance reg_covar·I on the point
        clean = GaussianMixture(2, random_state=0, tol=1e-10).fit(faithful)
        n = faithful.shape[0]
        expected = (
            clean.log_likelihood_
            + n * math.log(n / (n + 1))
            + math.log(1 / (n + 1))
            + multivariate_normal(np.zeros(2), 1e-6 * np.eye(2)).logpdf(np.zeros(2))
        )
        assert est.log_likelihood_ == pytest.approx(expected, rel=1e-6)


def test_emresult_events_name_restart_and_iteration():
    x = np.repeat(np.array([[0.0, 0.0], [1.0, 1.0]]), 10, axis=0)
    result = latent_em.fit(latent_em.GaussianMixtureModel(3), x, n_init=2, random_state=0)
    assert result.events
    for event in result.events:
        assert 0 <= event.restart < 2 and event.iteration >= 1 and event.message
    assert sum(r.n_events for r in result.restarts) == len(result.events)


# ---------------------------------------------------------------- other built-in models


def _estimator(name: str):
    return getattr(latent_em.estimators, name)


def test_bernoulli_perfectly_separated_patterns():
    cls = _estimator("BernoulliMixture")
    x = np.repeat(np.array([[1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1]]), 20, axis=0)
    est = cls(2, random_state=0).fit(x)
    _check_sane(est, x)
    labels = est.predict(x)
    assert len(set(labels[:20])) == 1 and len(set(labels[20:])) == 1
    assert labels[0] != labels[-1]
    np.testing.assert_allclose(np.sort(est.weights_), [0.5, 0.5], atol=1e-6)


def test_bernoulli_all_equal_rows():
    cls = _estimator("BernoulliMixture")
    x = np.ones((15, 4), dtype=int)
    est = cls(2, random_state=0).fit(x)
    _check_sane(est, x)
    # a probability mass is at most one
    assert est.log_likelihood_ <= 1e-12


def test_poisson_all_zero_count_column(rng):
    cls = _estimator("PoissonMixture")
    x = np.c_[np.r_[rng.poisson(2.0, 50), rng.poisson(20.0, 50)], np.zeros(100, dtype=int)]
    est = cls(2, random_state=0).fit(x)
    _check_sane(est, x)
    labels = est.predict(x)
    assert len(set(labels[:50])) == 1 and len(set(labels[50:])) == 1
