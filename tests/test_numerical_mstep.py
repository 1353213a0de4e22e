"""The generic numerical M-step: closed-form oracles, gradients, MAP, recorded kept steps.

Oracles: the closed-form M-step of an exponential mixture (N_k / N and N_k / Σ r x, from
setting ∂Q/∂θ = 0), its closed-form MAP update under a Gamma(a, b) prior on the rates
((N_k + a - 1) / (Σ r x + b)), and scipy.stats.gamma.fit for a one-component gamma MLE.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

import latent_em
from latent_em.constraints import Positive, Simplex
from latent_em.numerical_mstep import (
    expected_complete_log_likelihood,
    numerical_m_step,
    uses_model_gradient,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
import gamma_mixture  # noqa: E402

from ._exponential import ExponentialMixtureLogJoint, ExpParams  # noqa: E402


@dataclasses.dataclass(frozen=True)
class ExponentialMixtureNumerical(ExponentialMixtureLogJoint):
    """log_joint + constraints only: the driver must use the numerical M-step."""

    constraints = {"weights": Simplex(), "rates": Positive()}


@dataclasses.dataclass(frozen=True)
class ExponentialMixtureMAP(ExponentialMixtureNumerical):
    """A Gamma(a, b) prior on each rate: MAP-EM."""

    a: float = 3.0
    b: float = 20.0

    def log_prior(self, params):
        return float(np.sum(scipy.stats.gamma.logpdf(params.rates, self.a, scale=1 / self.b)))


@dataclasses.dataclass(frozen=True)
class WrongGradient(ExponentialMixtureNumerical):
    """A gradient with the wrong sign: L-BFGS cannot improve Q, so θ must be kept."""

    def log_joint_grad(self, params, x, z, weights):
        onehot = np.eye(2)[z] * weights[:, None]
        return {
            "weights": -(onehot.sum(0) / params.weights),
            "rates": -(onehot.T @ (1.0 / params.rates[z] - x)),
        }


@pytest.fixture(scope="module")
def exp_data():
    rng = np.random.default_rng(7)
    return np.concatenate([rng.exponential(1.0, 200), rng.exponential(15.0, 200)])


def _posterior(model, params, x):
    resp, _ = latent_em.posterior(model, params, x)
    return resp


def test_numerical_m_step_equals_closed_form(exp_data):
    model = ExponentialMixtureNumerical()
    params = ExpParams(np.array([0.3, 0.7]), np.array([2.0, 0.3]))
    resp = _posterior(model, params, exp_data)
    w = np.ones(len(exp_data))
    new, info = numerical_m_step(model, params, exp_data, [resp], w, None)
    counts = resp.sum(0)
    assert info.accepted and info.gradient == "finite differences"
    assert info.messages() == ()
    np.testing.assert_allclose(new.weights, counts / counts.sum(), rtol=1e-5)
    np.testing.assert_allclose(new.rates, counts / (resp.T @ exp_data), rtol=1e-5)
    assert info.q_after >= info.q_before


def test_numerical_m_step_is_chunk_invariant(exp_data):
    model = ExponentialMixtureNumerical()
    params = ExpParams(np.array([0.3, 0.7]), np.array([2.0, 0.3]))
    resp = _posterior(model, params, exp_data)
    w = np.ones(len(exp_data))
    chunks = [resp[i : i + 150] for i in range(0, len(exp_data), 150)]
    q_whole = expected_complete_log_likelihood(model, params, exp_data, [resp], w, None)
    q_chunked = expected_complete_log_likelihood(model, params, exp_data, chunks, w, 150)
    assert q_chunked == pytest.approx(q_whole, rel=1e-12)


def test_fit_through_numerical_path_reaches_the_closed_form_fixed_point(exp_data):
    model = ExponentialMixtureNumerical()
    result = latent_em.fit(model, exp_data, random_state=0, tol=1e-9)
    assert result.converged
    assert np.all(np.diff(result.history) >= -1e-9 * abs(result.history[-1]))
    # a fixed point of EM satisfies the closed-form M-step equations
    resp = _posterior(model, result.params, exp_data)
    counts = resp.sum(0)
    np.testing.assert_allclose(result.params.weights, counts / counts.sum(), rtol=1e-4)
    np.testing.assert_allclose(result.params.rates, counts / (resp.T @ exp_data), rtol=1e-4)
    assert result.n_parameters == 3  # 1 (simplex of 2) + 2 rates, from the constraints


def test_map_em_on_the_numerical_path_uses_the_prior(exp_data):
    model = ExponentialMixtureMAP()
    params = ExpParams(np.array([0.3, 0.7]), np.array([2.0, 0.3]))
    resp = _posterior(model, params, exp_data)
    new, _ = numerical_m_step(model, params, exp_data, [resp], np.ones(len(exp_data)), None)
    counts = resp.sum(0)
    map_rates = (counts + model.a - 1) / (resp.T @ exp_data + model.b)
    np.testing.assert_allclose(new.rates, map_rates, rtol=1e-5)
    # and the fit reports the prior in its objective
    result = latent_em.fit(model, exp_data, random_state=0, tol=1e-6)
    assert result.log_prior == pytest.approx(model.log_prior(result.params))
    assert result.objective == pytest.approx(result.log_likelihood + result.log_prior)
    assert result.log_prior != 0.0


def test_worse_optimizer_result_keeps_theta_and_is_recorded(exp_data, monkeypatch):
    # L-BFGS's line search never accepts a worse point with an exact objective, so the
    # safeguard is exercised with an optimizer stand-in that returns one
    import scipy.optimize

    import latent_em.numerical_mstep as nm

    def worse(fun, x0, **kwargs):
        return scipy.optimize.OptimizeResult(
            x=x0 + 3.0, nit=1, nfev=1, success=True, message="stand-in"
        )

    monkeypatch.setattr(nm, "minimize", worse)
    model = ExponentialMixtureNumerical()
    params = ExpParams(np.array([0.3, 0.7]), np.array([2.0, 0.3]))
    resp = _posterior(model, params, exp_data)
    new, info = nm.numerical_m_step(model, params, exp_data, [resp], np.ones(len(exp_data)), None)
    assert not info.accepted and new is params
    assert info.q_after < info.q_before
    (message,) = info.messages()
    assert "kept the previous parameters" in message
    result = latent_em.fit(model, exp_data, params=params, max_iter=3, warn_not_converged=False)
    kept = [e for e in result.events if "kept the previous parameters" in e.message]
    assert kept and kept[0].iteration == 1
    # θ kept: the objective did not move, so EM stays monotone and stops
    assert result.converged and result.history[-1] == result.history[0]
    assert result.params is params


def test_failed_optimizer_is_recorded(exp_data):
    model = WrongGradient()
    assert uses_model_gradient(model)
    params = ExpParams(np.array([0.3, 0.7]), np.array([2.0, 0.3]))
    resp = _posterior(model, params, exp_data)
    _, info = numerical_m_step(model, params, exp_data, [resp], np.ones(len(exp_data)), None)
    assert info.gradient == "model" and not info.success
    # with an uphill "gradient" the line search cannot make progress
    assert info.q_after == pytest.approx(info.q_before, rel=1e-12)
    (message,) = info.messages()
    assert "stopped without converging" in message
    result = latent_em.fit(model, exp_data, params=params, max_iter=2, warn_not_converged=False)
    assert any("stopped without converging" in e.message for e in result.events)


def test_gamma_mle_matches_scipy_with_and_without_gradient():
    rng = np.random.default_rng(3)
    x = rng.gamma(3.5, 1 / 2.0, size=400)
    shape, _, scale = scipy.stats.gamma.fit(x, floc=0)  # oracle: scipy's MLE
    for cls in (gamma_mixture.GammaMixture, gamma_mixture.GammaMixtureWithGradient):
        result = latent_em.fit(cls(1), x, random_state=0, tol=1e-10)
        assert result.converged
        assert result.params.shapes[0] == pytest.approx(shape, rel=1e-4)
        assert result.params.rates[0] == pytest.approx(1 / scale, rel=1e-4)
        expected = scipy.stats.gamma.logpdf(x, shape, scale=scale).sum()
        assert result.log_likelihood == pytest.approx(expected, rel=1e-9)


def test_model_gradient_is_the_gradient_of_q():
    from latent_em.constraints import flatten_params, unflatten_params, unflatten_params_vjp
    from latent_em.numerical_mstep import _expected_gradient_tree

    model = gamma_mixture.GammaMixtureWithGradient(2)
    x, _ = model.sample(gamma_mixture.TRUE_PARAMS, 300, np.random.default_rng(1))
    params = gamma_mixture.TRUE_PARAMS
    resp = _posterior(model, params, x)
    w = np.ones(len(x))
    u = flatten_params(params, model.constraints)
    tree = _expected_gradient_tree(model, params, x, [resp], w, None)
    analytic = unflatten_params_vjp(u, params, model.constraints, tree)

    def q(v):
        theta = unflatten_params(v, params, model.constraints)
        return expected_complete_log_likelihood(model, theta, x, [resp], w, None)

    h = 1e-6
    numeric = np.array([(q(u + h * e) - q(u - h * e)) / (2 * h) for e in np.eye(u.size)])
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-5)


def test_sample_weight_equals_repeated_rows_on_numerical_path(exp_data):
    model = ExponentialMixtureNumerical()
    x = exp_data[::8]
    counts = np.tile([1, 2, 3, 1], 13)[: len(x)]
    start = ExpParams(np.array([0.3, 0.7]), np.array([2.0, 0.3]))
    opts = {"params": start, "max_iter": 4, "warn_not_converged": False}
    a = latent_em.fit(model, x, sample_weight=counts, **opts)
    b = latent_em.fit(model, np.repeat(x, counts), **opts)
    np.testing.assert_allclose(a.history, b.history, rtol=1e-10)
    np.testing.assert_allclose(a.params.rates, b.params.rates, rtol=1e-6)


def test_chunked_numerical_fit_equals_whole(exp_data):
    model = ExponentialMixtureNumerical()
    start = ExpParams(np.array([0.3, 0.7]), np.array([2.0, 0.3]))
    opts = {"params": start, "max_iter": 3, "warn_not_converged": False}
    whole = latent_em.fit(model, exp_data, **opts)
    chunked = latent_em.fit(model, exp_data, chunk_size=77, **opts)
    np.testing.assert_allclose(chunked.history, whole.history, rtol=1e-10)


def test_model_without_any_m_step_is_rejected(exp_data):
    @dataclasses.dataclass(frozen=True)
    class NoMStep:
        def initialize(self, x, rng):
            return ExpParams(np.full(2, 0.5), np.ones(2))

        def latent_support(self):
            return np.arange(2)

        def log_joint(self, params, x, z):
            return np.zeros(len(x))

    with pytest.raises(latent_em.ModelContractError, match="has no M-step"):
        latent_em.fit(NoMStep(), exp_data)
