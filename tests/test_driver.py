"""Laws of the generic driver, checked on the Gaussian mixture and a small custom model."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp

import latent_em
from latent_em import ModelContractError, MonotonicityError
from latent_em.constraints import Positive, Simplex
from latent_em.models import GaussianMixtureModel

from ._exponential import ExponentialMixture, ExponentialMixtureLogJoint
from .conftest import make_blobs

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


# ---------------------------------------------------------------- a tiny custom model
class ExponentialMixtureNumerical(ExponentialMixtureLogJoint):
    """The same model stated through log_joint and constraints only (numerical M-step)."""

    constraints = {"weights": Simplex(), "rates": Positive()}


@pytest.fixture
def exp_data(rng):
    return np.concatenate([rng.exponential(1.0, 400), rng.exponential(8.0, 400)])


def test_custom_closed_form_model_fits_and_is_monotone(exp_data):
    result = latent_em.fit(
        ExponentialMixture(), exp_data, random_state=0, tol=1e-13, max_iter=20000
    )
    assert result.converged
    assert np.all(np.diff(result.history) >= -1e-10 * abs(result.history[-1]))
    # the MLE is a stationary point: the weights equal the mean responsibilities
    resp, lm = latent_em.posterior(ExponentialMixture(), result.params, exp_data)
    np.testing.assert_allclose(resp.mean(0), result.params.weights, rtol=1e-5)
    assert result.log_likelihood == pytest.approx(lm.sum(), rel=1e-12)
    # no constraints and no n_parameters(): BIC cannot be computed, and says why
    assert result.n_parameters is None
    with pytest.raises(AttributeError, match="n_parameters"):
        _ = result.bic


def test_numerical_m_step_reaches_closed_form_optimum(exp_data):
    closed = latent_em.fit(ExponentialMixture(), exp_data, random_state=0, tol=1e-10)
    numeric = latent_em.fit(ExponentialMixtureNumerical(), exp_data, random_state=0, tol=1e-10)
    assert numeric.log_likelihood == pytest.approx(closed.log_likelihood, rel=1e-7)
    order_c = np.argsort(closed.params.rates)
    order_n = np.argsort(numeric.params.rates)
    np.testing.assert_allclose(
        numeric.params.rates[order_n], closed.params.rates[order_c], rtol=1e-3
    )
    assert np.all(np.diff(numeric.history) >= -1e-10 * abs(numeric.history[-1]))
    assert numeric.n_parameters == 3  # from the constraints: 1 (simplex) + 2 (rates)


# ---------------------------------------------------------------- laws on the GMM
@pytest.fixture
def blobs(rng):
    return make_blobs(rng, n_per=120, d=3, k=3)


@pytest.mark.parametrize("cov", COVARIANCE_TYPES)
def test_log_likelihood_never_decreases(blobs, cov):
    model = GaussianMixtureModel(3, covariance_type=cov, init_params="random")
    result = latent_em.fit(model, blobs, random_state=1, max_iter=500)
    steps = np.diff(result.history)
    assert np.all(steps >= -1e-10 * np.abs(result.history[1:]))
    assert result.n_evaluations == result.n_iter + 1 == len(result.history)


@pytest.mark.parametrize("cov", COVARIANCE_TYPES)
def test_chunked_equals_unchunked(blobs, cov):
    model = GaussianMixtureModel(3, covariance_type=cov)
    start = model.initialize(blobs, np.random.default_rng(0))
    whole = latent_em.fit(model, blobs, params=start, max_iter=25, tol=0, warn_not_converged=False)
    chunked = latent_em.fit(
        model, blobs, params=start, max_iter=25, tol=0, chunk_size=37, warn_not_converged=False
    )
    np.testing.assert_allclose(chunked.history, whole.history, rtol=1e-12)
    for a, b in zip(chunked.params, whole.params, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("cov", COVARIANCE_TYPES)
def test_statistics_are_additive(blobs, cov):
    model = GaussianMixtureModel(3, covariance_type=cov)
    params = model.initialize(blobs, np.random.default_rng(0))
    resp, _ = latent_em.posterior(model, params, blobs)
    w = np.ones(len(blobs))
    whole = model.expected_stats(params, blobs, resp, w)
    a = model.expected_stats(params, blobs[:100], resp[:100], w[:100])
    b = model.expected_stats(params, blobs[100:], resp[100:], w[100:])
    for s, p, q in zip(whole, a, b, strict=True):
        np.testing.assert_allclose(p + q, s, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("cov", COVARIANCE_TYPES)
def test_posterior_normalized_and_elbo_equals_log_likelihood(blobs, cov):
    model = GaussianMixtureModel(3, covariance_type=cov)
    params = model.initialize(blobs, np.random.default_rng(2))
    resp, lm = latent_em.posterior(model, params, blobs)
    np.testing.assert_allclose(resp.sum(axis=1), 1.0, rtol=1e-12)
    # enumerate log p(x, z) over z: log p(x) is its log-sum-exp ...
    table = np.stack(
        [model.log_joint(params, blobs, np.full(len(blobs), k)) for k in range(3)], axis=1
    )
    np.testing.assert_allclose(lm, logsumexp(table, axis=1), rtol=1e-12)
    # ... and with q = p(z | x) the ELBO Σ q (log p(x, z) - log q) equals log p(x)
    safe = np.where(resp > 0, resp, 1.0)
    elbo = np.sum(resp * (table - np.log(safe)), axis=1)
    np.testing.assert_allclose(elbo, lm, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("cov", COVARIANCE_TYPES)
def test_integer_sample_weight_equals_repeated_rows(blobs, cov, rng):
    counts = rng.integers(0, 4, size=len(blobs))
    counts[:3] = 1  # keep at least one row of the first cluster
    model = GaussianMixtureModel(3, covariance_type=cov)
    repeated = np.repeat(blobs, counts, axis=0)
    start = model.initialize(repeated, np.random.default_rng(0))
    weighted = latent_em.fit(
        model,
        blobs,
        params=start,
        sample_weight=counts,
        max_iter=30,
        tol=0,
        warn_not_converged=False,
    )
    expanded = latent_em.fit(
        model, repeated, params=start, max_iter=30, tol=0, warn_not_converged=False
    )
    assert weighted.log_likelihood == pytest.approx(expanded.log_likelihood, rel=1e-10)
    assert weighted.n_observations == expanded.n_observations == counts.sum()
    for a, b in zip(weighted.params, expanded.params, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)


def test_random_state_is_bit_for_bit_reproducible(blobs):
    model = GaussianMixtureModel(3, init_params="k-means++")
    a = latent_em.fit(model, blobs, n_init=3, random_state=42)
    b = latent_em.fit(model, blobs, n_init=3, random_state=42)
    for p, q in zip(a.params, b.params, strict=True):
        assert np.array_equal(p, q)
    assert np.array_equal(a.history, b.history)


def test_restarts_are_reported_and_best_is_kept(blobs):
    model = GaussianMixtureModel(3, init_params="random")
    result = latent_em.fit(model, blobs, n_init=4, random_state=3)
    assert len(result.restarts) == 4
    best = max(result.restarts, key=lambda r: r.objective)
    assert result.best_restart == best.index
    assert result.log_likelihood == best.log_likelihood


def test_final_e_step_belongs_to_returned_parameters(blobs):
    model = GaussianMixtureModel(3)
    result = latent_em.fit(
        model, blobs, max_iter=3, tol=0, random_state=0, warn_not_converged=False
    )
    assert result.log_likelihood == pytest.approx(
        latent_em.log_likelihood(model, result.params, blobs), rel=1e-13
    )
    assert result.history[-1] == result.log_likelihood


def test_not_converged_warns(blobs):
    with pytest.warns(latent_em.ConvergenceWarning, match="max_iter=2"):
        latent_em.fit(
            GaussianMixtureModel(3, init_params="random"), blobs, max_iter=2, random_state=0
        )


# ---------------------------------------------------------------- broken models are caught
class OffMStep(ExponentialMixture):
    """An M-step that overshoots the rates: not a maximizer."""

    def m_step(self, params, stats):
        good = super().m_step(params, stats)
        return good._replace(rates=good.rates * 3.0)


def test_decrease_raises_monotonicity_error_naming_iteration(exp_data):
    mle = latent_em.fit(ExponentialMixture(), exp_data, random_state=0).params
    with pytest.raises(MonotonicityError, match=r"iteration 1 .*drop of") as info:
        latent_em.fit(OffMStep(), exp_data, params=mle)
    assert info.value.iteration == 1
    assert info.value.drop > 0
    assert info.value.before > info.value.after


class NoLogJoint:
    def initialize(self, x, rng):
        return None


def test_missing_methods_are_named():
    with pytest.raises(ModelContractError, match="log_joint"):
        latent_em.fit(NoLogJoint(), np.zeros(5))


class WrongShape(ExponentialMixture):
    def log_joint(self, params, x, z):
        return super().log_joint(params, x, z)[:-1]


def test_wrong_log_joint_shape_is_reported(exp_data):
    with pytest.raises(ModelContractError, match=r"log_joint returned shape \(799,\)"):
        latent_em.fit(WrongShape(), exp_data)


class BadPosterior(ExponentialMixture):
    def posterior(self, params, x):
        table = np.stack([self.log_joint(params, x, np.full(len(x), k)) for k in range(2)], 1)
        lm = logsumexp(table, axis=1)
        return np.exp(table - lm[:, None]) * 1.1, lm  # rows sum to 1.1


def test_unnormalized_posterior_is_reported(exp_data):
    with pytest.raises(ModelContractError, match="sum to one"):
        latent_em.fit(BadPosterior(), exp_data)


class NaNLogJoint(ExponentialMixture):
    def log_joint(self, params, x, z):
        out = super().log_joint(params, x, z)
        out[5] = np.nan
        return out


def test_nan_log_density_is_reported(exp_data):
    with pytest.raises(ModelContractError, match="NaN"):
        latent_em.fit(NaNLogJoint(), exp_data)


def test_empty_component_is_reseeded_and_reported(rng):
    x = rng.normal(size=(300, 2))
    model = GaussianMixtureModel(2)
    start = model.make_params([0.5, 0.5], [[0.0, 0.0], [1e6, 1e6]], np.stack([np.eye(2)] * 2))
    result = latent_em.fit(model, x, params=start)
    assert any("re-seeded" in e.message for e in result.events)
    assert result.converged
    assert np.all(result.params.weights > 0.05)


class _WrongFusedGMM(latent_em.GaussianMixtureModel):
    """A fused E-step whose counts are 1 % off: the driver must notice on the first pass."""

    def e_step(self, params, x, weights):  # type: ignore[override]
        stats, lm = super().e_step(params, x, weights)
        return stats._replace(counts=stats.counts * 1.01), lm


@pytest.mark.parametrize("n", [300, 5000])  # the whole chunk checked, or its head
def test_a_fused_e_step_that_disagrees_is_a_contract_error(n):
    x = np.random.default_rng(0).normal(size=(n, 2))
    with pytest.raises(latent_em.ModelContractError, match="e_step disagrees"):
        latent_em.fit(_WrongFusedGMM(2), x, random_state=0)
