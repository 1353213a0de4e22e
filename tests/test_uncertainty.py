"""Standard errors: Louis (1982) information, the numerical fallback, the bootstrap.

Oracles:
* closed-form asymptotic covariances of the Gaussian MLE (Anderson 2003, *An
  Introduction to Multivariate Statistical Analysis*, Thm 3.4.4): ``Var(μ̂_i) = Σ_ii/n``,
  ``Cov(Σ̂_ij, Σ̂_kl) = (Σ_ik Σ_jl + Σ_il Σ_jk)/n``; for one variance ``σ²√(2/n)``;
* the Poisson MLE ``Var(λ̂) = λ/n``;
* two independent computations of the same information (analytic Louis vs finite
  differences), and the bootstrap distribution (McLachlan & Peel 2000, §2.16).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest
from scipy.special import gammaln

import latent_em
from latent_em.constraints import Positive, Simplex
from latent_em.uncertainty import bootstrap, standard_errors


class PoissonParams(NamedTuple):
    weights: np.ndarray
    rates: np.ndarray


class OnePoisson:
    """A one-component Poisson "mixture" known only through log_joint and constraints."""

    @property
    def constraints(self):
        return {"weights": Simplex(), "rates": Positive()}

    def initialize(self, x, rng):
        return PoissonParams(np.array([1.0]), np.array([float(np.mean(x)) + 1.0]))

    def latent_support(self):
        return np.arange(1)

    def log_joint(self, params, x, z):
        rate = params.rates[z]
        return np.log(params.weights[z]) + x * np.log(rate) - rate - gammaln(x + 1)


def _one_gaussian(x, covariance_type):
    model = latent_em.GaussianMixtureModel(1, covariance_type=covariance_type, reg_covar=0.0)
    return latent_em.fit(model, x, tol=1e-12)


@pytest.mark.parametrize("method", ["louis", "numerical"])
def test_one_component_univariate_closed_form(method):
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=(400, 1))
    result = _one_gaussian(x, "full")
    se = standard_errors(result, x, method=method)
    var = float(result.params.covariances[0, 0, 0])
    assert se.method == method
    assert se.se.means[0, 0] == pytest.approx(np.sqrt(var / 400), rel=1e-5)
    assert se.se.covariances[0, 0, 0] == pytest.approx(var * np.sqrt(2 / 400), rel=1e-5)
    assert se.se.weights[0] == pytest.approx(0.0, abs=1e-12)  # one weight, fixed at 1


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_one_component_multivariate_closed_form(covariance_type):
    rng = np.random.default_rng(1)
    n, d = 500, 3
    a = np.array([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [-0.3, 0.2, 0.5]])
    x = rng.normal(size=(n, d)) @ a.T + np.array([10.0, -5.0, 40.0])
    result = _one_gaussian(x, covariance_type)
    se = standard_errors(result, x)
    assert se.method == "louis"
    full = result.model.covariance.to_full(np.asarray(result.params.covariances), 1, d)[0]
    np.testing.assert_allclose(se.se.means[0], np.sqrt(np.diag(full) / n), rtol=1e-6)
    cov_se = np.asarray(se.se.covariances)
    if covariance_type in ("full", "tied"):
        expected = np.sqrt((np.outer(np.diag(full), np.diag(full)) + full**2) / n)
        np.testing.assert_allclose(cov_se.reshape(d, d), expected, rtol=1e-6)
    elif covariance_type == "diag":
        np.testing.assert_allclose(cov_se[0], np.diag(full) * np.sqrt(2 / n), rtol=1e-6)
    else:  # spherical: σ̂² = tr(S)/d is a mean of n d squared deviations
        assert cov_se[0] == pytest.approx(full[0, 0] * np.sqrt(2 / (n * d)), rel=1e-6)
    # the full matrix: means and covariances are asymptotically independent
    n_mean = d
    block = se.covariance[1 : 1 + n_mean, 1 + n_mean :]
    assert np.max(np.abs(block)) < 1e-8 * np.max(np.abs(se.covariance))


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_louis_equals_numerical_hessian(faithful, covariance_type):
    model = latent_em.GaussianMixtureModel(2, covariance_type=covariance_type)
    result = latent_em.fit(model, faithful, tol=1e-13, random_state=0, accelerate="squarem")
    louis = standard_errors(result, faithful, method="louis")
    numeric = standard_errors(result, faithful, method="numerical")
    np.testing.assert_allclose(
        np.sqrt(np.diag(louis.covariance)), np.sqrt(np.diag(numeric.covariance)), rtol=2e-4
    )
    assert louis.names == numeric.names
    assert len(louis.names) == louis.estimates.size == louis.covariance.shape[0]
    assert louis.information.shape == (result.n_parameters,) * 2


def _separated_mixture(rng, n=600):
    z = rng.random(n) < 0.4
    x = np.where(
        z[:, None],
        rng.normal(size=(n, 2)) @ np.array([[1.0, 0.3], [0.0, 0.7]]),
        rng.normal(size=(n, 2)) * [0.8, 1.2] + [6.0, 4.0],
    )
    return x


@pytest.mark.parametrize("kind", ["nonparametric", "parametric"])
def test_information_matches_bootstrap_on_separated_mixture(kind):
    rng = np.random.default_rng(2)
    x = _separated_mixture(rng)
    est = latent_em.GaussianMixture(2, tol=1e-10, random_state=0).fit(x)
    info = standard_errors(est, x)
    boot = bootstrap(est, x, n_boot=150, kind=kind, random_state=3, tol=1e-8)
    assert boot.n_boot == 150 and boot.kind == kind
    assert boot.replicates.means.shape == (150, 2, 2)
    assert boot.replicates.covariances.shape == (150, 2, 2, 2)
    assert np.all(boot.converged)
    # labels aligned: every permutation is one, and the replicates scatter around the MLE
    assert all(sorted(p) == [0, 1] for p in boot.permutations)
    assert np.all(np.abs(boot.replicates.means.mean(0) - est.means_) < 4 * info.se.means)
    # 150 replicates estimate an SD to about ±6 % (1/√(2·150)); allow ±25 %
    for field in ("weights", "means", "covariances"):
        ratio = np.asarray(getattr(boot.se, field)) / np.asarray(getattr(info.se, field))
        assert np.all((ratio > 0.75) & (ratio < 1.33)), (field, ratio)


def test_numerical_fallback_for_a_custom_model():
    rng = np.random.default_rng(4)
    x = rng.poisson(4.0, 800).astype(float)
    result = latent_em.fit(OnePoisson(), x, tol=1e-12)
    # the MLE is the sample mean (to the L-BFGS tolerance of the numerical M-step)
    assert result.params.rates[0] == pytest.approx(x.mean(), rel=1e-5)
    se = standard_errors(result, x)
    assert se.method == "numerical"
    assert se.se.rates[0] == pytest.approx(np.sqrt(x.mean() / x.size), rel=1e-4)
    with pytest.raises(ValueError, match="louis"):
        standard_errors(result, x, method="louis")


def test_arguments_are_checked(faithful):
    model = latent_em.GaussianMixtureModel(2)
    result = latent_em.fit(model, faithful, random_state=0)
    with pytest.raises(ValueError, match="params"):
        standard_errors(model, faithful)
    with pytest.raises(ValueError, match="method"):
        standard_errors(result, faithful, method="sandwich")
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap(result, faithful, n_boot=1)
    with pytest.raises(ValueError, match="kind"):
        bootstrap(result, faithful, n_boot=5, kind="jackknife")
    with pytest.raises(ValueError, match="not fitted"):
        standard_errors(latent_em.GaussianMixture(2), faithful)


def test_non_maximum_warns(faithful):
    model = latent_em.GaussianMixtureModel(2)
    # two identical components: a stationary point where the weight is not identified
    cov = np.cov(faithful.T, bias=True)
    bad = model.make_params([0.5, 0.5], [faithful.mean(0)] * 2, [cov, cov])
    with pytest.warns(RuntimeWarning, match="not positive definite"):
        standard_errors(model, faithful, params=bad)


def test_discrete_mixtures_numerical_se_and_bootstrap():
    # oracle: the parametric bootstrap; the built-in Poisson mixture has no Louis
    # implementation, so "auto" takes the numerical Hessian
    from latent_em.estimators import PoissonMixture

    rng = np.random.default_rng(6)
    x = np.concatenate([rng.poisson(3.0, 300), rng.poisson(10.0, 200)]).reshape(-1, 1)
    est = PoissonMixture(2, tol=1e-10, random_state=0, accelerate="squarem").fit(x)
    info = standard_errors(est, x)
    assert info.method == "numerical"
    boot = bootstrap(est, x, n_boot=120, kind="parametric", random_state=1)
    for field in ("weights", "rates"):
        ratio = np.asarray(getattr(boot.se, field)) / np.asarray(getattr(info.se, field))
        assert np.all((ratio > 0.7) & (ratio < 1.4)), (field, ratio)


def test_bootstrap_aligns_tuple_fields_of_the_latent_class_model():
    # carcinoma (Agresti 2002): per-item probability tables are a tuple field; their
    # component axis must be permuted together with the weights
    from latent_em.estimators import CategoricalMixture

    x = latent_em.datasets.load_carcinoma()
    est = CategoricalMixture(2, tol=1e-8, random_state=0).fit(x)
    boot = bootstrap(est, x, n_boot=40, random_state=2)
    assert isinstance(boot.replicates.probs, tuple)
    assert len(boot.replicates.probs) == len(est.params_.probs)
    assert all(
        r.shape == (40, *p.shape)
        for r, p in zip(boot.replicates.probs, est.params_.probs, strict=True)
    )
    assert all(sorted(p) == [0, 1] for p in boot.permutations)
    # the aligned replicates scatter around the estimate
    for reps, mle in zip(boot.replicates.probs, est.params_.probs, strict=True):
        assert np.max(np.abs(np.median(reps, axis=0) - mle)) < 0.15
    assert np.max(np.abs(np.median(boot.replicates.weights, axis=0) - est.params_.weights)) < 0.1
