"""Partial labels: ``GaussianMixture.fit(X, labels=y)`` with ``-1`` for unknown (mclust's
``MclustSSC``).

Oracles: a direct maximization (scipy's L-BFGS-B) of the combined log-likelihood
``Σ_known log φ_y N(x; μ_y, σ²_y) + Σ_unknown log Σ_k φ_k N(x; μ_k, σ²_k)`` written here
with scipy's densities; with every row labelled, the per-class maximum-likelihood
estimates in closed form; ``check_model`` on the labelled model.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize, stats
from scipy.special import logsumexp

import latent_em
from latent_em import GaussianMixture
from latent_em.models import GaussianMixtureModel
from latent_em.models.gaussian.labels import PartiallyLabelledGaussianMixture, join_labels


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.normal(0.0, 1.0, 40), rng.normal(2.0, 0.7, 30)])
    y = np.full(70, -1)
    y[[0, 1, 2, 3, 4]] = 0
    y[[40, 41, 42]] = 1
    return x, y


def _combined(theta, x, y):
    logit, m0, m1, s0, s1 = theta
    w1 = 1.0 / (1.0 + np.exp(-logit))
    logw = np.log([1.0 - w1, w1])
    table = np.stack(
        [
            logw[0] + stats.norm.logpdf(x, m0, np.exp(s0)),
            logw[1] + stats.norm.logpdf(x, m1, np.exp(s1)),
        ],
        axis=1,
    )
    known = y >= 0
    return table[known, y[known]].sum() + logsumexp(table[~known], axis=1).sum()


def test_matches_direct_maximization_of_the_combined_likelihood(small):
    x, y = small
    gm = GaussianMixture(2, covariance_type="V", reg_covar=0.0, tol=1e-12, random_state=0)
    gm.fit(x[:, None], labels=y)
    best = None
    rng = np.random.default_rng(0)
    for _ in range(5):
        start = np.array([0.0, *rng.normal(1.0, 1.0, 2), 0.0, 0.0])
        res = optimize.minimize(lambda t: -_combined(t, x, y), start, method="L-BFGS-B",
                                options={"ftol": 1e-15, "gtol": 1e-10})  # fmt: skip
        if best is None or res.fun < best.fun:
            best = res
    assert gm.log_likelihood_ == pytest.approx(-best.fun, rel=1e-9)
    logit, m0, m1, s0, s1 = best.x
    np.testing.assert_allclose(gm.means_[:, 0], [m0, m1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gm.covariances_[:, 0, 0], np.exp([2 * s0, 2 * s1]), rtol=1e-5)
    np.testing.assert_allclose(gm.weights_[1], 1.0 / (1.0 + np.exp(-logit)), rtol=1e-5)
    # the labels fix the component indices: component 0 is the one labelled near 0
    assert gm.means_[0, 0] < gm.means_[1, 0]


@pytest.mark.parametrize("cov", ["full", "VEV", "EII"])
def test_all_labelled_is_the_per_class_mle(cov):
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(size=(30, 2)), rng.normal(size=(20, 2)) * [2.0, 0.5] + 3])
    y = np.repeat([0, 1], [30, 20])
    gm = GaussianMixture(2, covariance_type=cov, reg_covar=0.0, random_state=0).fit(x, labels=y)
    np.testing.assert_allclose(gm.weights_, [0.6, 0.4], rtol=1e-12)
    np.testing.assert_allclose(gm.means_, [x[:30].mean(0), x[30:].mean(0)], rtol=1e-10)
    if cov == "full":
        expected = np.stack([np.cov(x[:30].T, bias=True), np.cov(x[30:].T, bias=True)])
        np.testing.assert_allclose(gm.covariances_, expected, rtol=1e-10)
    # the combined log-likelihood of a fully labelled fit: every row's labelled term
    table = gm.model_.log_weighted_densities(gm.params_, x)
    assert gm.log_likelihood_ == pytest.approx(table[np.arange(50), y].sum(), rel=1e-12)


def test_check_model_on_the_labelled_model(small):
    x, y = small
    model = PartiallyLabelledGaussianMixture(GaussianMixtureModel(2, "V", reg_covar=0.0))
    report = latent_em.check_model(model, join_labels(x[:, None], y, 2))
    laws = {r.law: r.status for r in report.results}
    assert laws["m_step_maximizer"] == "passed" and laws["monotone"] == "passed"


def test_bad_labels_are_clear_errors(small):
    x, y = small
    with pytest.raises(ValueError, match="labels must hold one label per row of X"):
        GaussianMixture(2).fit(x[:, None], labels=y[:-1])
    with pytest.raises(
        ValueError, match=r"labels must hold -1 \(unknown\) or a component index 0..1; got 2"
    ):
        GaussianMixture(2).fit(x[:, None], labels=np.where(y == 1, 2, y))
    with pytest.raises(ValueError, match="labels must hold integers"):
        GaussianMixture(2).fit(x[:, None], labels=y + 0.5)
