"""mclust's conjugate prior (``priorControl()``; Fraley & Raftery 2007): MAP-EM.

Oracles: ``check_model``'s M-step law on ``Q + log p(θ)`` with the prior's densities taken
from scipy (inverse-Wishart, inverse-gamma, normal); the one-component MAP estimate in
closed form; in one dimension the inverse-Wishart structures (full, tied) and the
inverse-gamma ones (V, E) are the same model and give the same fit; the default
hyperparameters are mclust's ``defaultPrior`` (mclust's R source: shrinkage 0.01, the
column means, ``d + 2`` degrees of freedom, ``var(X) / G^(2/d)`` or
``sum(apply(X, 2, var)) / d / G^(2/d)``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import latent_em
from latent_em import GaussianMixture
from latent_em.models import GaussianMixtureModel
from latent_em.models.gaussian.prior import PRIOR_STRUCTURES, ConjugatePrior


@pytest.mark.parametrize("cov", [c for c in PRIOR_STRUCTURES if c not in ("E", "V")])
def test_check_model_passes_with_the_prior(cov, faithful):
    model = GaussianMixtureModel(3, cov, prior=ConjugatePrior.default(faithful, 3, cov))
    report = latent_em.check_model(model, faithful)
    laws = {r.law: r.status for r in report.results}
    assert laws["m_step_maximizer"] == "passed" and laws["monotone"] == "passed"


def test_default_hyperparameters_are_mclusts(faithful):
    n, d = faithful.shape
    full = ConjugatePrior.default(faithful, 3, "full")
    assert full.shrinkage == 0.01 and full.dof == d + 2
    np.testing.assert_allclose(full.mean, faithful.mean(axis=0))
    np.testing.assert_allclose(full.scale, np.cov(faithful.T) / 3 ** (2 / d))
    sph = ConjugatePrior.default(faithful, 3, "spherical")
    assert float(sph.scale) == pytest.approx(np.var(faithful, axis=0, ddof=1).sum() / d / 3)
    one = ConjugatePrior.default(faithful[:, :1], 2, "V")
    assert one.dof == 3 and float(one.scale) == pytest.approx(np.var(faithful[:, 0], ddof=1) / 4)


def test_one_component_map_is_the_closed_form(faithful):
    prior = ConjugatePrior.default(faithful, 1, "full")
    gm = GaussianMixture(1, prior=prior, reg_covar=0.0).fit(faithful)
    n, d = faithful.shape
    ybar = faithful.mean(axis=0)
    w = (faithful - ybar).T @ (faithful - ybar)
    e = ybar - prior.mean
    kappa, nu = prior.shrinkage, prior.dof
    expected = (prior.scale + w + kappa * n / (kappa + n) * np.outer(e, e)) / (nu + n + d + 2)
    np.testing.assert_allclose(gm.means_[0], (n * ybar + kappa * prior.mean) / (n + kappa))
    np.testing.assert_allclose(gm.covariances_[0], expected, rtol=1e-12)


def test_one_dimension_inverse_wishart_equals_inverse_gamma(faithful):
    x = faithful[:, :1]
    for wishart, gamma in (("full", "V"), ("tied", "E")):
        p_w = ConjugatePrior.default(x, 2, wishart)
        p_g = ConjugatePrior(p_w.shrinkage, p_w.mean, p_w.dof, float(p_w.scale[0, 0]))
        assert float(p_g.scale) == pytest.approx(float(ConjugatePrior.default(x, 2, gamma).scale))
        a = GaussianMixture(2, covariance_type=wishart, prior=p_w, random_state=0).fit(x)
        b = GaussianMixture(2, covariance_type=gamma, prior=p_g, random_state=0).fit(x)
        assert a.result_.objective == pytest.approx(b.result_.objective, rel=1e-10)
        assert a.result_.log_prior == pytest.approx(b.result_.log_prior, rel=1e-10)
        np.testing.assert_allclose(a.means_, b.means_, rtol=1e-8)


def test_map_objective_and_bic_from_the_log_likelihood(faithful):
    gm = GaussianMixture(3, covariance_type="tied", prior="default", n_init=2, random_state=0)
    gm.fit(faithful)
    r = gm.result_
    assert r.objective == pytest.approx(r.log_likelihood + r.log_prior)
    assert r.log_prior < 0 and np.all(np.diff(r.history) >= -1e-9 * abs(r.history[-1]))
    assert gm.model_.prior is not None and gm.model_.prior.dof == 4
    # BIC from the log-likelihood at the MAP estimate (mclust's convention)
    assert gm.bic(faithful) == pytest.approx(-2 * r.log_likelihood + 11 * math.log(272))
    # the MAP estimate is near, and not above, the maximum likelihood
    mle = GaussianMixture(3, covariance_type="tied", n_init=2, random_state=0).fit(faithful)
    assert mle.log_likelihood_ - 1.0 < gm.log_likelihood_ <= mle.log_likelihood_ + 1e-9


def test_prior_keeps_a_tiny_component_proper():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(size=(60, 2)), [[8.0, 8.0], [8.0, 8.0]]])  # 2 equal points
    gm = GaussianMixture(2, prior="default", reg_covar=0.0, random_state=0).fit(x)
    assert np.linalg.eigvalsh(gm.covariances_).min() > 1e-3
    assert not gm.result_.events


def test_prior_errors(faithful):
    with pytest.raises(ValueError, match="no conjugate prior for covariance_type='VEV'"):
        GaussianMixture(2, covariance_type="VEV", prior="default").fit(faithful)
    with pytest.raises(ValueError, match="prior must be None, 'default' or a ConjugatePrior"):
        GaussianMixture(2, prior="mclust").fit(faithful)
    with pytest.raises(ValueError, match="prior scale must be a positive number"):
        GaussianMixtureModel(2, "diag", prior=ConjugatePrior.default(faithful, 2, "full"))
    with pytest.raises(TypeError, match="prior must be None or a ConjugatePrior"):
        GaussianMixtureModel(2, prior={"shrinkage": 0.01})


def test_prior_with_partial_labels_and_saving(faithful, tmp_path):
    y = np.full(len(faithful), -1)
    y[:3] = [0, 1, 0]
    gm = GaussianMixture(2, prior="default", random_state=0).fit(faithful, labels=y)
    assert gm.result_.log_prior < 0
    gm.save(tmp_path / "m.json")
    back = latent_em.io.load(tmp_path / "m.json")
    np.testing.assert_array_equal(back.model_.prior.scale, gm.model_.prior.scale)
    np.testing.assert_allclose(back.score_samples(faithful), gm.score_samples(faithful))
