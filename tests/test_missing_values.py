"""Missing values: ``missing="marginalize"`` (Ghahramani & Jordan 1994).

Oracles (issue 16): with no NaN the fit equals the complete-data fit bit for bit; with
missing coordinates each row's log-likelihood equals the marginal density of its
observed coordinates computed directly with scipy; on simulated missing-at-random data
the estimates approach those of the complete data as N grows. Also: EM stays monotone
for every structure, frequency weights equal repeated rows, chunks give the same fit,
and ``impute`` equals the conditional-mean formula.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats

import latent_em
from latent_em import GaussianMixture
from latent_em.exceptions import ConvergenceWarning
from latent_em.models import GaussianMixtureModel
from latent_em.models.gaussian.parsimonious import MCLUST_MODELS

STRUCTURES = ["full", "tied", "diag", "spherical", "VEV", "EVE", "EII"]


@pytest.fixture(scope="module")
def holes():
    rng = np.random.default_rng(2)
    x = np.concatenate(
        [
            rng.normal(size=(120, 3)) @ [[1, 0.5, 0], [0, 1, 0.3], [0, 0, 1]],
            rng.normal(size=(80, 3)) + 3,
        ]
    )
    xm = x.copy()
    xm[rng.random(x.shape) < 0.15] = np.nan
    xm[5] = np.nan  # a row with nothing observed
    return x, xm


@pytest.mark.parametrize("cov", ["full", "tied", "diag", "spherical", "VEV"])
def test_without_nan_it_is_the_complete_data_fit_bit_for_bit(cov, holes):
    x, _ = holes
    a = GaussianMixture(2, covariance_type=cov, random_state=0).fit(x)
    b = GaussianMixture(2, covariance_type=cov, random_state=0, missing="marginalize").fit(x)
    assert a.log_likelihood_ == b.log_likelihood_
    np.testing.assert_array_equal(a.means_, b.means_)
    np.testing.assert_array_equal(a.covariances_, b.covariances_)


@pytest.mark.parametrize("cov", STRUCTURES)
def test_row_log_likelihood_is_the_marginal_density(cov, holes):
    _, xm = holes
    gm = GaussianMixture(2, covariance_type=cov, random_state=0, missing="marginalize").fit(xm)
    k, d = gm.means_.shape
    full = gm.model_.covariance.to_full(gm.covariances_, k, d)
    ours = gm.score_samples(xm)
    for n in [0, 1, 2, 3, 4, 5, 6, 7, 150, 199]:
        obs = ~np.isnan(xm[n])
        if not obs.any():
            expected = 0.0  # nothing observed: the density of nothing
        else:
            expected = np.log(
                sum(
                    gm.weights_[j]
                    * stats.multivariate_normal(gm.means_[j][obs], full[j][np.ix_(obs, obs)]).pdf(
                        xm[n, obs]
                    )
                    for j in range(k)
                )
            )
        assert ours[n] == pytest.approx(expected, rel=1e-10, abs=1e-12)
    assert gm.log_likelihood_ == pytest.approx(ours.sum(), rel=1e-8)
    assert np.allclose(gm.predict_proba(xm).sum(axis=1), 1.0)


def _mar(n, rng):
    """Two clusters; the second coordinate is missing more often when the first is large
    (missing at random: it depends on an observed value only)."""
    z = rng.random(n) < 0.4
    x = np.where(z[:, None], rng.normal(size=(n, 2)) * 0.6 + [2.5, 1.0], rng.normal(size=(n, 2)))
    xm = x.copy()
    drop = rng.random(n) < np.where(x[:, 0] > 1.0, 0.5, 0.1)
    xm[drop, 1] = np.nan
    return x, xm


def test_mar_estimates_approach_the_complete_data_ones():
    rng = np.random.default_rng(4)
    gaps = []
    for n in (300, 20000):
        x, xm = _mar(n, rng)
        complete = GaussianMixture(2, random_state=0).fit(x)
        partial = GaussianMixture(2, random_state=0, missing="marginalize").fit(xm)
        order_c = np.argsort(complete.means_[:, 0])
        order_p = np.argsort(partial.means_[:, 0])
        gaps.append(
            max(
                np.abs(complete.means_[order_c] - partial.means_[order_p]).max(),
                np.abs(complete.covariances_[order_c] - partial.covariances_[order_p]).max(),
                np.abs(complete.weights_[order_c] - partial.weights_[order_p]).max(),
            )
        )
    assert gaps[1] < gaps[0]
    assert gaps[1] < 0.03


@pytest.mark.parametrize("cov", MCLUST_MODELS)
def test_em_is_monotone_with_missing_values(cov, holes):
    _, xm = holes
    model = GaussianMixtureModel(2, cov, missing="marginalize", reg_covar=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = latent_em.fit(model, xm, max_iter=25, tol=0.0, random_state=0)
    history = np.asarray(result.history)
    assert np.all(np.diff(history) >= -1e-9 * np.abs(history).max())


def test_weights_equal_repeated_rows_and_chunks_give_the_same_fit(holes):
    _, xm = holes
    w = np.ones(len(xm))
    w[:10] = 2.0
    repeated = np.concatenate([xm, xm[:10]])
    model = GaussianMixtureModel(2, missing="marginalize")
    params = model.initialize(xm, np.random.default_rng(0))  # the same start for all
    a = latent_em.fit(model, xm, params=params, sample_weight=w, tol=1e-10)
    b = latent_em.fit(model, repeated, params=params, tol=1e-10)
    assert a.log_likelihood == pytest.approx(b.log_likelihood, rel=1e-10)
    np.testing.assert_allclose(a.params.means, b.params.means, rtol=1e-7)
    c = latent_em.fit(model, xm, params=params, sample_weight=w, tol=1e-10, chunk_size=37)
    assert c.log_likelihood == pytest.approx(a.log_likelihood, rel=1e-12)
    np.testing.assert_allclose(c.params.covariances, a.params.covariances, rtol=1e-9)


def test_impute_is_the_conditional_mean(holes):
    _, xm = holes
    gm = GaussianMixture(1, random_state=0, missing="marginalize").fit(xm)
    mu, sigma = gm.means_[0], gm.covariances_[0]
    filled = gm.impute(xm)
    assert not np.isnan(filled).any()
    for n in range(10):
        m = np.isnan(xm[n])
        o = ~m
        if not m.any():
            np.testing.assert_array_equal(filled[n], xm[n])
            continue
        expected = (
            mu[m] + sigma[np.ix_(m, o)] @ np.linalg.solve(sigma[np.ix_(o, o)], xm[n, o] - mu[o])
            if o.any()
            else mu[m]
        )
        np.testing.assert_allclose(filled[n, m], expected, rtol=1e-10)
        np.testing.assert_array_equal(filled[n, o], xm[n, o])


def test_nan_is_still_an_error_by_default(holes):
    _, xm = holes
    with pytest.raises(ValueError, match="X contains NaN or infinite values"):
        GaussianMixture(2).fit(xm)
    with pytest.raises(ValueError, match="missing"):
        GaussianMixture(2, missing="drop").fit(xm)
    bad = xm.copy()
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="infinite"):
        GaussianMixture(2, missing="marginalize").fit(bad)


def test_a_column_with_no_value_is_a_clear_error(holes):
    _, xm = holes
    bad = xm.copy()
    bad[:, 1] = np.nan
    with pytest.raises(ValueError, match="X column 1 has no observed value"):
        GaussianMixture(2, missing="marginalize").fit(bad)


def test_predict_on_rows_missing_the_same_column(holes):
    x, xm = holes
    gm = GaussianMixture(2, missing="marginalize", random_state=0).fit(xm)
    new = x[:5].copy()
    new[:, 2] = np.nan  # every new row lacks column 2: still a valid question
    assert gm.predict_proba(new).shape == (5, 2)
    assert np.all(np.isfinite(gm.score_samples(new)))
