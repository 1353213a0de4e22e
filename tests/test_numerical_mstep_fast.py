"""The fast paths of the generic numerical M-step (issue 14).

* ``log_joint_batch``: the batched finite-difference gradient equals the loop's (same
  central steps, to round-off) and the analytic gradient of ``Q`` (derived by hand for
  the exponential mixture: ∂Q/∂π_k = N_k / π_k, ∂Q/∂λ_k = N_k / λ_k - Σ_n r_nk x_n);
* preconditioning by the previous M-step's inverse Hessian: the M-step still lands on the
  closed-form maximizer (π_k = N_k / N, λ_k = N_k / Σ_n r_nk x_n) to optimizer tolerance;
* fits through every path reach the same fixed point as the closed-form M-step.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.stats

import latent_em
from latent_em.constraints import Positive, Simplex, flatten_params
from latent_em.numerical_mstep import (
    numerical_m_step,
    objective_and_gradient,
    uses_batched_log_joint,
)
from latent_em.protocols import BatchedLogJoint

from ._exponential import ExponentialMixture, ExponentialMixtureLogJoint, ExpParams


@dataclasses.dataclass(frozen=True)
class ExpNumerical(ExponentialMixtureLogJoint):
    constraints = {"weights": Simplex(), "rates": Positive()}


@dataclasses.dataclass(frozen=True)
class ExpBatched(ExpNumerical):
    """All parameter values in one broadcast call."""

    def log_joint_batch(self, params_list, x, z):
        w = np.stack([p.weights for p in params_list])[:, z]
        rate = np.stack([p.rates for p in params_list])[:, z]
        return np.log(w) + np.log(rate) - rate * x[None, :]


@dataclasses.dataclass(frozen=True)
class ExpGradient(ExpNumerical):
    def log_joint_grad(self, params, x, z, weights):
        onehot = np.eye(2)[z] * weights[:, None]
        return {
            "weights": onehot.sum(0) / params.weights,
            "rates": onehot.T @ (1.0 / params.rates[z] - x),
        }


@dataclasses.dataclass(frozen=True)
class ExpBatchedMAP(ExpBatched):
    """A Gamma(3, 20) prior on the rates: the batched path must add log p(θ) per row."""

    def log_prior(self, params):
        return float(np.sum(scipy.stats.gamma.logpdf(params.rates, 3.0, scale=1 / 20.0)))


@dataclasses.dataclass(frozen=True)
class ExpLoopMAP(ExpNumerical):
    def log_prior(self, params):
        return ExpBatchedMAP.log_prior(self, params)


@dataclasses.dataclass(frozen=True)
class BadBatch(ExpNumerical):
    def log_joint_batch(self, params_list, x, z):
        return np.zeros(len(x))


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    return np.concatenate([rng.exponential(1.0, 200), rng.exponential(15.0, 200)])


START = ExpParams(np.array([0.3, 0.7]), np.array([2.0, 0.3]))


def _resp(model, params, x):
    return latent_em.posterior(model, params, x)[0]


def test_batched_capability_is_detected():
    assert isinstance(ExpBatched(), BatchedLogJoint) and uses_batched_log_joint(ExpBatched())
    assert not uses_batched_log_joint(ExpNumerical())


@pytest.mark.parametrize("chunk_size", [None, 77])
def test_batched_gradient_equals_loop_and_analytic(data, chunk_size):
    w = np.linspace(0.5, 2.0, len(data))
    resp = _resp(ExpNumerical(), START, data)
    posts = [resp[sl] for sl in latent_em.posteriors.chunks(len(data), chunk_size)]
    u = flatten_params(START, ExpNumerical.constraints)
    args = (START, data, posts, w, chunk_size)
    f_loop, g_loop = objective_and_gradient(ExpNumerical(), *args)[0](u)
    fun_b, name = objective_and_gradient(ExpBatched(), *args)
    assert name == "batched finite differences"
    f_b, g_b = fun_b(u)
    f_a, g_a = objective_and_gradient(ExpGradient(), *args)[0](u)
    assert f_b == pytest.approx(f_loop, rel=1e-14)
    assert f_a == pytest.approx(f_loop, rel=1e-14)
    # same central differences: equal up to round-off in Q (|Q / Σw| ~ 2, steps ~ 6e-6)
    np.testing.assert_allclose(g_b, g_loop, rtol=0, atol=1e-9)
    # against the hand-derived gradient: central-difference truncation error O(h²)
    np.testing.assert_allclose(g_b, g_a, rtol=1e-7, atol=1e-9)


def test_batched_gradient_includes_the_prior(data):
    w = np.ones(len(data))
    resp = _resp(ExpNumerical(), START, data)
    u = flatten_params(START, ExpNumerical.constraints)
    f_loop, g_loop = objective_and_gradient(ExpLoopMAP(), START, data, [resp], w, None)[0](u)
    f_b, g_b = objective_and_gradient(ExpBatchedMAP(), START, data, [resp], w, None)[0](u)
    assert f_b == pytest.approx(f_loop, rel=1e-14)
    np.testing.assert_allclose(g_b, g_loop, rtol=0, atol=1e-9)


def test_wrong_batch_shape_is_a_contract_error(data):
    resp = _resp(ExpNumerical(), START, data)
    with pytest.raises(latent_em.ModelContractError, match=r"log_joint_batch returned shape"):
        numerical_m_step(BadBatch(), START, data, [resp], np.ones(len(data)), None)


def _closed_form(resp, x):
    counts = resp.sum(0)
    return counts / counts.sum(), counts / (resp.T @ x)


@pytest.mark.parametrize("cls", [ExpNumerical, ExpBatched, ExpGradient])
def test_preconditioned_m_steps_land_on_the_closed_form_maximizer(data, cls):
    model, w = cls(), np.ones(len(data))
    state: dict = {}
    params = START
    pre_iters = []
    for _ in range(6):
        resp = _resp(model, params, data)
        fresh, _ = numerical_m_step(model, params, data, [resp], w, None, tol=1e-8)
        new, info = numerical_m_step(model, params, data, [resp], w, None, tol=1e-8, state=state)
        weights, rates = _closed_form(resp, data)
        for p in (fresh, new):
            np.testing.assert_allclose(p.weights, weights, rtol=1e-7)
            np.testing.assert_allclose(p.rates, rates, rtol=1e-7)
        # the law is the landing point; L-BFGS may end on round-off ("ABNORMAL" line
        # search) within gtol's reach of it, as the loop's finite differences also can
        assert info.accepted and info.q_after >= info.q_before
        pre_iters.append(info.n_iter)
        params = new
    assert state["factor"].shape == (3, 3)
    # fewer iterations are not guaranteed (a stale preconditioner can stall the line
    # search, and the M-step then finishes without it); the benchmark measures the gain
    assert max(pre_iters) < 100


@pytest.mark.parametrize("cls", [ExpNumerical, ExpBatched, ExpGradient])
def test_fit_reaches_the_closed_form_fixed_point(data, cls):
    reference = latent_em.fit(ExponentialMixture(), data, params=START, tol=1e-10, max_iter=5000)
    result = latent_em.fit(cls(), data, params=START, tol=1e-10, max_iter=5000)
    assert result.converged
    # an optimizer stopped by round-off may be recorded, but θ is never kept: EM moved on
    assert not any("kept the previous" in e.message for e in result.events)
    assert result.n_iter == reference.n_iter
    assert result.log_likelihood == pytest.approx(reference.log_likelihood, rel=1e-10)
    np.testing.assert_allclose(result.params.rates, reference.params.rates, rtol=1e-5)


def test_check_model_passes_with_batched_log_joint(data):
    report = latent_em.check_model(ExpBatched(), data, START)
    assert report.passed and report["log_joint_batch"].status == "passed"


@dataclasses.dataclass(frozen=True)
class StaleBatch(ExpNumerical):
    """Ignores all but the first parameter value: a bug check_model must catch."""

    def log_joint_batch(self, params_list, x, z):
        return np.stack([self.log_joint(params_list[0], x, z)] * len(params_list))


def test_check_model_catches_a_wrong_log_joint_batch(data):
    report = latent_em.check_model(StaleBatch(), data, START, raise_on_failure=False)
    assert report["log_joint_batch"].status == "failed"
    assert "row 1" in report["log_joint_batch"].message


def test_inexact_m_step_raises_q_and_fit_reaches_the_same_maximum(data):
    import functools

    import latent_em.em_map as em_map
    import latent_em.numerical_mstep as nm

    model, w = ExpBatched(), np.ones(len(data))
    resp = _resp(model, START, data)
    exact, info_exact = numerical_m_step(model, START, data, [resp], w, None, tol=1e-8)
    rough, info = numerical_m_step(model, START, data, [resp], w, None, tol=1e-8, forcing=0.1)
    assert info.accepted and info.q_after > info.q_before
    assert info.n_iter < info_exact.n_iter
    assert info.q_after <= info_exact.q_after
    with pytest.raises(ValueError, match="forcing must be in"):
        numerical_m_step(model, START, data, [resp], w, None, forcing=1.0)
    reference = latent_em.fit(ExponentialMixture(), data, params=START, tol=1e-12, max_iter=9000)
    patched = functools.partial(nm.numerical_m_step, forcing=1e-2)
    try:
        em_map.numerical_m_step = patched
        result = latent_em.fit(model, data, params=START, tol=1e-12, max_iter=9000)
    finally:
        em_map.numerical_m_step = nm.numerical_m_step
    assert result.converged
    assert result.log_likelihood == pytest.approx(reference.log_likelihood, rel=1e-12)
    np.testing.assert_allclose(result.params.rates, reference.params.rates, rtol=1e-5)
