"""The numerical M-step's default optimizer: BFGS with its curvature carried across M-steps.

Oracles: a direct ``scipy.optimize.minimize`` (L-BFGS-B) of the marginal log-likelihood of a
two-component von Mises mixture (the problem of benchmarks/bench_numerical_mstep.py, smaller),
with ``scipy.stats.vonmises.logpdf`` for the density; the exact minimizer of a quadratic; and
the closed-form M-step of an exponential mixture (N_k / N, N_k / Σ r x).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np
import pytest
import scipy.optimize
import scipy.stats
from scipy.special import logsumexp

import latent_em
import latent_em.em_map as em_map
import latent_em.numerical_mstep as nm
from latent_em.constraints import Positive, Real, Simplex, flatten_params, unflatten_params

from ._exponential import ExponentialMixtureLogJoint, ExpParams


class VMParams(NamedTuple):
    weights: np.ndarray
    mu: np.ndarray
    kappa: np.ndarray


@dataclasses.dataclass(frozen=True)
class VonMises:
    """log_joint + constraints + latent_support only: the generic numerical M-step."""

    constraints = {"weights": Simplex(), "mu": Real(), "kappa": Positive()}

    def latent_support(self):
        return np.arange(2)

    def initialize(self, x, rng):
        return VMParams(np.full(2, 0.5), np.array([-0.5, 0.5]), np.ones(2))

    def log_joint(self, params, x, z):
        return np.log(params.weights[z]) + scipy.stats.vonmises.logpdf(
            x, params.kappa[z], loc=params.mu[z]
        )


@pytest.fixture(scope="module")
def angles():
    rng = np.random.default_rng(0)
    return rng.permutation(
        np.concatenate([rng.vonmises(-1.0, 4.0, 120), rng.vonmises(1.5, 2.0, 180)])
    )


START = VMParams(np.array([0.5, 0.5]), np.array([-0.5, 0.5]), np.array([1.0, 1.0]))


def _marginal(params, x):
    table = np.log(params.weights)[None, :] + scipy.stats.vonmises.logpdf(
        x[:, None], params.kappa, loc=params.mu
    )
    return float(logsumexp(table, axis=1).sum())


def test_default_path_reaches_the_direct_maximum(angles):
    model = VonMises()
    result = latent_em.fit(model, angles, params=START, tol=1e-11, max_iter=5000)
    assert result.converged
    cons = model.constraints
    u0 = flatten_params(START, cons)
    direct = scipy.optimize.minimize(
        lambda u: -_marginal(unflatten_params(u, START, cons), angles) / len(angles),
        u0,
        method="L-BFGS-B",
        options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 10000},
    )
    best = unflatten_params(direct.x, START, cons)
    # the same maximum: log-likelihoods within 1e-9 relative, parameters within 1e-4
    assert result.log_likelihood == pytest.approx(_marginal(best, angles), rel=1e-9)
    assert result.log_likelihood >= _marginal(best, angles) - 1e-6
    np.testing.assert_allclose(result.params.mu, best.mu, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(result.params.kappa, best.kappa, rtol=1e-4)
    np.testing.assert_allclose(result.params.weights, best.weights, rtol=1e-4)


def test_every_m_step_raises_q_and_curvature_is_carried(angles, monkeypatch):
    infos, states = [], []
    original = nm.numerical_m_step

    def spy(*args, **kwargs):
        new, info = original(*args, **kwargs)
        infos.append(info)
        states.append(kwargs.get("state"))
        return new, info

    monkeypatch.setattr(em_map, "numerical_m_step", spy)
    result = latent_em.fit(VonMises(), angles, params=START, tol=1e-8, max_iter=5000)
    assert result.converged and len(infos) == result.n_iter
    for info in infos:
        assert info.accepted and info.gradient == "finite differences"
        # Q rose, up to the round-off a tie allows (64 eps |Q|)
        assert info.q_after >= info.q_before - nm.TIE_ULPS * np.finfo(float).eps * abs(
            info.q_before
        )
    assert sum(i.q_after > i.q_before for i in infos) >= len(infos) - 3
    assert np.all(np.diff(result.history) >= -1e-12 * abs(result.history[-1]))
    # one state dictionary for the whole fit, holding the inverse Hessian's factor
    assert all(s is states[0] for s in states) and states[0]["factor"].shape == (5, 5)
    # with curvature carried, late M-steps take few steps
    assert max(i.n_iter for i in infos[-5:]) <= 5


def _quadratic(a, b):
    def value(x):
        return 0.5 * float(x @ a @ x) - float(b @ x)

    def value_and_gradient(x, f=None, forward=False):
        return (value(x) if f is None else f), a @ x - b

    return value, value_and_gradient


def test_curvature_without_descent_is_dropped():
    a = np.array([[3.0, 1.0], [1.0, 2.0]])
    b = np.array([1.0, -1.0])
    value, vg = _quadratic(a, b)
    # a stale "inverse Hessian" that points uphill: it must be dropped, not followed
    res = scipy.optimize.minimize(
        value,
        np.array([2.0, 2.0]),
        method=nm._quasi_newton,
        options={"value_and_gradient": vg, "inverse_hessian": -np.eye(2), "gtol": 1e-12},
    )
    assert res.success and res.resets >= 1
    np.testing.assert_allclose(res.x, np.linalg.solve(a, b), atol=1e-10)
    # a good one is kept: one step lands on the minimizer of a quadratic
    res = scipy.optimize.minimize(
        value,
        np.array([2.0, 2.0]),
        method=nm._quasi_newton,
        options={"value_and_gradient": vg, "inverse_hessian": np.linalg.inv(a), "gtol": 1e-12},
    )
    assert res.success and res.resets == 0 and res.nit == 1
    np.testing.assert_allclose(res.x, np.linalg.solve(a, b), atol=1e-12)


def test_forward_differences_never_decide_convergence():
    """The gtol test is applied only to central (or model) gradients: a forward gradient
    whose error exceeds gtol (here rounded to 1e-6, so it reads 0 near the minimizer)
    cannot stop the run."""
    a = np.diag([1.0, 4.0])
    b = np.array([1.0, 2.0])
    value, vg = _quadratic(a, b)

    def biased(x, f=None, forward=False):
        f, g = vg(x, f)
        return f, (np.round(g, 6) if forward else g)

    res = scipy.optimize.minimize(
        value,
        np.array([30.0, -20.0]),
        method=nm._quasi_newton,
        options={
            "value_and_gradient": biased,
            "forward_error": 1e-10,
            "gtol": 1e-7,
            "ftol": 0.0,
        },
    )
    assert res.success
    assert np.max(np.abs(a @ res.x - b)) <= 1e-7
    np.testing.assert_allclose(res.x, np.linalg.solve(a, b), atol=1e-7)


@dataclasses.dataclass(frozen=True)
class ExpNumerical(ExponentialMixtureLogJoint):
    constraints = {"weights": Simplex(), "rates": Positive()}


@pytest.mark.parametrize("method", ["quasi-newton", "L-BFGS-B"])
def test_both_methods_land_on_the_closed_form_maximizer(method):
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.exponential(1.0, 200), rng.exponential(15.0, 200)])
    params = ExpParams(np.array([0.3, 0.7]), np.array([2.0, 0.3]))
    model = ExpNumerical()
    resp = latent_em.posterior(model, params, x)[0]
    new, info = nm.numerical_m_step(
        model, params, x, [resp], np.ones(len(x)), None, tol=1e-8, method=method
    )
    counts = resp.sum(0)
    assert info.accepted and info.q_after > info.q_before
    np.testing.assert_allclose(new.weights, counts / counts.sum(), rtol=1e-7)
    np.testing.assert_allclose(new.rates, counts / (resp.T @ x), rtol=1e-7)


def test_unknown_method_is_rejected():
    model = ExpNumerical()
    x = np.array([0.5, 1.0, 2.0])
    params = ExpParams(np.array([0.3, 0.7]), np.array([2.0, 0.3]))
    resp = latent_em.posterior(model, params, x)[0]
    with pytest.raises(ValueError, match="method must be 'quasi-newton' or 'L-BFGS-B'"):
        nm.numerical_m_step(model, params, x, [resp], np.ones(3), None, method="newton")


def test_dependency_pattern_and_the_gradient_it_gives(angles):
    """Perturbing μ_k or κ_k changes only log p(x, z = k); the weights (a simplex) move
    both. Skipping the unaffected support points gives the same central gradient."""
    model = VonMises()
    resp = latent_em.posterior(model, START, angles)[0]
    w = np.ones(len(angles))
    columns = nm._weighted_columns(model, angles, [resp], w, None)
    pattern = nm._dependency_pattern(model, START, model.constraints, columns)
    # u = (weights: 1 free value, mu_0, mu_1, kappa_0, kappa_1)
    expected = np.array([[1, 1], [1, 0], [0, 1], [1, 0], [0, 1]], dtype=bool)
    np.testing.assert_array_equal(pattern, expected)
    u = flatten_params(START, model.constraints)
    _, full, _ = nm._objective_parts(model, START, angles, [resp], w, None)
    _, sparse, _ = nm._objective_parts(model, START, angles, [resp], w, None, dependency=pattern)
    f_full, g_full = full(u, None, False)
    f_sparse, g_sparse = sparse(u, None, False)
    assert f_sparse == pytest.approx(f_full, rel=1e-14)
    np.testing.assert_allclose(g_sparse, g_full, rtol=0, atol=1e-9)
    # forward differences agree to their own accuracy (~sqrt(eps))
    np.testing.assert_allclose(sparse(u, None, True)[1], g_full, rtol=0, atol=1e-6)


@dataclasses.dataclass(frozen=True)
class SharedKappa(VonMises):
    """Both components use kappa[0]: kappa_0 moves both support points, kappa_1 none."""

    def log_joint(self, params, x, z):
        kappa = np.full(len(z), params.kappa[0])
        return np.log(params.weights[z]) + scipy.stats.vonmises.logpdf(x, kappa, loc=params.mu[z])


def test_dependency_pattern_follows_the_model_not_the_layout(angles):
    model = SharedKappa()
    resp = latent_em.posterior(model, START, angles)[0]
    columns = nm._weighted_columns(model, angles, [resp], np.ones(len(angles)), None)
    pattern = nm._dependency_pattern(model, START, model.constraints, columns)
    np.testing.assert_array_equal(pattern[3], [True, True])
    np.testing.assert_array_equal(pattern[4], [False, False])
    # and the fit through the driver (which uses the pattern) reaches the direct optimum
    result = latent_em.fit(model, angles, params=START, tol=1e-11, max_iter=5000)
    cons = model.constraints

    def negative(u):
        p = unflatten_params(u, START, cons)
        table = np.log(p.weights)[None, :] + scipy.stats.vonmises.logpdf(
            angles[:, None], p.kappa[0], loc=p.mu
        )
        return -float(logsumexp(table, axis=1).sum()) / len(angles)

    direct = scipy.optimize.minimize(
        negative,
        flatten_params(START, cons),
        method="L-BFGS-B",
        options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 10000},
    )
    assert result.log_likelihood == pytest.approx(-direct.fun * len(angles), rel=1e-9)


@dataclasses.dataclass(frozen=True)
class VonMisesBatched(VonMises):
    def log_joint_batch(self, params_list, x, z):
        w = np.stack([p.weights for p in params_list])[:, z]
        mu = np.stack([p.mu for p in params_list])[:, z]
        kappa = np.stack([p.kappa for p in params_list])[:, z]
        return np.log(w) + scipy.stats.vonmises.logpdf(x[None, :], kappa, loc=mu)


@pytest.mark.parametrize("chunk_size", [None, 77])
def test_batched_gradient_with_the_dependency_pattern(angles, chunk_size):
    """log_joint_batch called per support point with only the parameter values that move
    it: the same value and gradient as the loop over all support points."""
    model = VonMisesBatched()
    resp = latent_em.posterior(model, START, angles)[0]
    posts = [resp[sl] for sl in latent_em.posteriors.chunks(len(angles), chunk_size)]
    w = np.linspace(0.5, 2.0, len(angles))
    columns = nm._weighted_columns(model, angles, posts, w, chunk_size)
    pattern = nm._dependency_pattern(model, START, model.constraints, columns)
    assert not pattern.all()
    u = flatten_params(START, model.constraints)
    args = (model, START, angles, posts, w, chunk_size)
    _, loop, _ = nm._objective_parts(*args, gradient="finite differences")
    _, batched, name = nm._objective_parts(*args, dependency=pattern)
    assert name == "batched finite differences"
    for forward, atol in ((False, 1e-9), (True, 1e-6)):
        f_loop, g_loop = loop(u, None, forward)
        f_b, g_b = batched(u, None, forward)
        assert f_b == pytest.approx(f_loop, rel=1e-14)
        np.testing.assert_allclose(g_b, g_loop, rtol=0, atol=atol)


def test_chunked_fit_equals_whole_with_the_dependency_pattern(angles):
    for model in (VonMises(), VonMisesBatched()):
        opts = {"params": START, "max_iter": 5, "warn_not_converged": False}
        whole = latent_em.fit(model, angles, **opts)
        chunked = latent_em.fit(model, angles, chunk_size=77, **opts)
        np.testing.assert_allclose(chunked.history, whole.history, rtol=1e-10)
