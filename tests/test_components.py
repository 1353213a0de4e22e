"""Component distributions against scipy.stats and a direct weighted MLE.

For every component (latent_em.components):

* ``log_density`` equals the sum over columns (or the multivariate density) of the
  scipy.stats log-density, for a batch of K = 2 random parameter sets;
* ``mle(stats(...))`` is the weighted maximum-likelihood estimate: scipy.optimize
  (L-BFGS-B on the weighted log-likelihood computed with scipy.stats, over the
  unconstrained values) started from other parameters does not find a higher
  likelihood, and finds the same parameters;
* the statistics add over a split of the rows.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize, stats

import latent_em
from latent_em.components import (
    Bernoulli,
    Beta,
    Categorical,
    Exponential,
    Gamma,
    Gaussian,
    LogNormal,
    NegativeBinomial,
    Poisson,
    StudentT,
    VonMises,
)
from latent_em.constraints import flatten_params, unflatten_params

N, K, D = 400, 2, 2


def _pd(rng, d):
    a = rng.normal(size=(d, d))
    return a @ a.T + d * np.eye(d)


def _gauss_logpdf(cov_full):
    def logpdf(params, x, k):
        return stats.multivariate_normal(params["mean"][k], cov_full(params, k)).logpdf(x)

    return logpdf


def _percol(fn):
    """scipy log-density summed over independent columns."""

    def logpdf(params, x, k):
        return np.sum(fn({name: v[k] for name, v in params.items()}, x), axis=1)

    return logpdf


def _categorical_logpdf(params, x, k):
    probs = params["probs"][k]  # (D, C)
    out = np.zeros(x.shape[0])
    for d in range(x.shape[1]):
        onehot = np.eye(probs.shape[1])[x[:, d].astype(int)]
        out += stats.multinomial.logpmf(onehot, 1, probs[d])
    return out


def case_gaussian(cov_type):
    def make(rng):
        mean = rng.normal(size=(K, D)) * 2
        cov = {
            "full": np.stack([_pd(rng, D) for _ in range(K)]),
            "tied": _pd(rng, D),
            "diag": rng.uniform(0.5, 2.0, size=(K, D)),
            "spherical": rng.uniform(0.5, 2.0, size=K),
        }[cov_type]
        return {"mean": mean, "cov": cov}

    def cov_full(params, k):
        c = params["cov"]
        return {
            "full": lambda: c[k],
            "tied": lambda: c,
            "diag": lambda: np.diag(c[k]),
            "spherical": lambda: c[k] * np.eye(D),
        }[cov_type]()

    return (
        Gaussian(cov_type, reg_covar=0.0),
        make,
        lambda rng: rng.normal(size=(N, D)) * 1.5 + 1.0,
        _gauss_logpdf(cov_full),
    )


CASES = {
    **{f"gaussian-{c}": case_gaussian(c) for c in ("full", "tied", "diag", "spherical")},
    "bernoulli": (
        Bernoulli(),
        lambda rng: {"p": rng.uniform(0.1, 0.9, size=(K, D))},
        lambda rng: (rng.uniform(size=(N, D)) < 0.3).astype(float),
        _percol(lambda p, x: stats.bernoulli.logpmf(x, p["p"])),
    ),
    "categorical": (
        Categorical(),
        lambda rng: {"probs": rng.dirichlet(np.ones(3), size=(K, D))},
        lambda rng: rng.integers(0, 3, size=(N, D)).astype(float),
        _categorical_logpdf,
    ),
    "poisson": (
        Poisson(),
        lambda rng: {"rate": rng.uniform(0.5, 6.0, size=(K, D))},
        lambda rng: rng.poisson(3.0, size=(N, D)).astype(float),
        _percol(lambda p, x: stats.poisson.logpmf(x, p["rate"])),
    ),
    "exponential": (
        Exponential(),
        lambda rng: {"rate": rng.uniform(0.5, 3.0, size=(K, D))},
        lambda rng: rng.exponential(1.5, size=(N, D)),
        _percol(lambda p, x: stats.expon.logpdf(x, scale=1.0 / p["rate"])),
    ),
    "gamma": (
        Gamma(),
        lambda rng: {
            "shape": rng.uniform(0.5, 5.0, size=(K, D)),
            "rate": rng.uniform(0.5, 3.0, size=(K, D)),
        },
        lambda rng: rng.gamma(2.5, 0.7, size=(N, D)),
        _percol(lambda p, x: stats.gamma.logpdf(x, p["shape"], scale=1.0 / p["rate"])),
    ),
    "lognormal": (
        LogNormal(),
        lambda rng: {
            "mu": rng.normal(size=(K, D)),
            "sigma": rng.uniform(0.3, 1.5, size=(K, D)),
        },
        lambda rng: rng.lognormal(0.5, 0.8, size=(N, D)),
        _percol(lambda p, x: stats.lognorm.logpdf(x, p["sigma"], scale=np.exp(p["mu"]))),
    ),
    "vonmises": (
        VonMises(),
        lambda rng: {
            "mu": rng.uniform(-3, 3, size=(K, D)),
            "kappa": rng.uniform(0.5, 8.0, size=(K, D)),
        },
        lambda rng: rng.vonmises(1.0, 3.0, size=(N, D)),
        _percol(lambda p, x: stats.vonmises.logpdf(x, p["kappa"], loc=p["mu"])),
    ),
    "beta": (
        Beta(),
        lambda rng: {
            "a": rng.uniform(0.5, 5.0, size=(K, D)),
            "b": rng.uniform(0.5, 5.0, size=(K, D)),
        },
        lambda rng: rng.beta(2.0, 5.0, size=(N, D)),
        _percol(lambda p, x: stats.beta.logpdf(x, p["a"], p["b"])),
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_log_density_matches_scipy(name):
    comp, make, data, logpdf = CASES[name]
    rng = np.random.default_rng(1)
    params, x = make(rng), data(rng)
    table = comp.log_density(params, comp.check_data(x))
    assert table.shape == (N, K)
    for k in range(K):
        np.testing.assert_allclose(table[:, k], logpdf(params, x, k), rtol=1e-10, atol=1e-10)


def _weighted_loglik(logpdf, params, x, resp):
    return sum(float(resp[:, k] @ logpdf(params, x, k)) for k in range(resp.shape[1]))


@pytest.mark.parametrize("name", list(CASES))
def test_mle_is_the_weighted_maximum_likelihood(name):
    comp, make, data, logpdf = CASES[name]
    rng = np.random.default_rng(2)
    x = comp.check_data(data(rng))
    resp = rng.uniform(0.05, 1.0, size=(N, K)) * rng.uniform(0.5, 2.0, size=(N, 1))
    ours = comp.mle(comp.stats(None, x, resp), None)
    ll_ours = _weighted_loglik(logpdf, ours, x, resp)

    # a direct fit: L-BFGS-B over the unconstrained values from other parameters
    cons = comp.constraints
    start = make(np.random.default_rng(3))
    if name == "categorical":
        start = {"probs": np.full((K, D, 3), 1.0 / 3)}
    u0 = flatten_params(start, cons)

    def neg(u):
        p = unflatten_params(u, start, cons)
        value = -_weighted_loglik(logpdf, p, x, resp)
        return value if np.isfinite(value) else 1e300

    best = optimize.minimize(
        neg, u0, method="L-BFGS-B", options={"maxiter": 5000, "ftol": 1e-15, "gtol": 1e-9}
    )
    direct = unflatten_params(best.x, start, cons)
    ll_direct = -best.fun
    # the closed form (or root solve) is at least as good as the optimizer ...
    assert ll_ours >= ll_direct - 1e-8 * abs(ll_direct)
    # ... and the optimizer gets (near) the same parameters
    for key in ours:
        got = direct[key]
        if name == "vonmises" and key == "mu":  # an angle: equal modulo 2π
            got = ours[key] + np.angle(np.exp(1j * (got - ours[key])))
        np.testing.assert_allclose(got, ours[key], rtol=2e-3, atol=2e-3, err_msg=key)


@pytest.mark.parametrize("name", list(CASES))
def test_stats_add_over_rows(name):
    comp, make, data, _ = CASES[name]
    rng = np.random.default_rng(4)
    params, x = make(rng), comp.check_data(data(rng))
    resp = rng.uniform(size=(N, K))
    whole = comp.stats(params, x, resp)
    a, b = comp.stats(params, x[:150], resp[:150]), comp.stats(params, x[150:], resp[150:])
    for key in whole:
        np.testing.assert_allclose(a[key] + b[key], whole[key], rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize("name", list(CASES))
def test_mle_of_own_samples_recovers_the_parameters(name):
    comp, make, _, _ = CASES[name]
    rng = np.random.default_rng(5)
    params = make(rng)
    z = np.repeat(np.arange(K), 20000)
    x = comp.sample(params, z, rng)
    resp = np.eye(K)[z]
    est = comp.mle(comp.stats(None, comp.check_data(x), resp), None)
    for key in params:
        got = est[key]
        if name == "vonmises" and key == "mu":
            got = params[key] + np.angle(np.exp(1j * (got - params[key])))
        np.testing.assert_allclose(got, params[key], rtol=0.1, atol=0.05, err_msg=key)


@pytest.mark.parametrize("name", list(CASES))
def test_empty_component_keeps_its_parameters(name):
    comp, make, data, _ = CASES[name]
    rng = np.random.default_rng(6)
    old, x = make(rng), comp.check_data(data(rng))
    resp = np.column_stack([np.ones(N), np.zeros(N)])
    new = comp.mle(comp.stats(old, x, resp), old)
    for key in old:
        if name == "gaussian-tied" and key == "cov":
            continue  # shared by both components: estimated from the live one
        np.testing.assert_array_equal(new[key][1], old[key][1], err_msg=key)
        assert np.all(np.isfinite(new[key]))


@pytest.mark.parametrize(
    ("comp", "x", "message"),
    [
        (Poisson(), [[1.0], [-1.0]], "non-negative integer counts"),
        (Poisson(), [[1.5]], "non-negative integer counts"),
        (Bernoulli(), [[0.0], [2.0]], "0/1"),
        (Gamma(), [[1.0], [0.0]], "positive values"),
        (Beta(), [[0.5], [1.0]], r"open interval \(0, 1\)"),
        (Categorical(n_categories=2), [[0.0], [2.0]], "codes below n_categories=2"),
        (Gaussian(), [[0.0], [np.nan]], "finite"),
    ],
)
def test_bad_data_is_named(comp, x, message):
    with pytest.raises(ValueError, match=message):
        comp.check_data(np.asarray(x))


def test_bad_options():
    with pytest.raises(ValueError, match="covariance_type"):
        Gaussian("banana")
    with pytest.raises(ValueError, match="reg_covar"):
        Gaussian(reg_covar=-1.0)
    with pytest.raises(ValueError, match="n_categories"):
        Categorical(n_categories=0)


# ---- components without closed-form statistics: the driver's numerical M-step

NUMERICAL = {
    "student-t": (
        StudentT(),
        lambda rng: {
            "loc": rng.normal(size=(K, D)),
            "scale": rng.uniform(0.5, 2.0, size=(K, D)),
            "df": rng.uniform(1.5, 20.0, size=(K, D)),
        },
        lambda rng: rng.standard_t(4.0, size=(N, D)) * 1.5 + 0.5,
        _percol(lambda p, x: stats.t.logpdf(x, p["df"], loc=p["loc"], scale=p["scale"])),
    ),
    "negative-binomial": (
        NegativeBinomial(),
        lambda rng: {
            "r": rng.uniform(0.5, 10.0, size=(K, D)),
            "p": rng.uniform(0.2, 0.8, size=(K, D)),
        },
        lambda rng: rng.negative_binomial(3.0, 0.4, size=(N, D)).astype(float),
        _percol(lambda p, x: stats.nbinom.logpmf(x, p["r"], p["p"])),
    ),
}


@pytest.mark.parametrize("name", list(NUMERICAL))
def test_numerical_component_log_density_matches_scipy(name):
    comp, make, data, logpdf = NUMERICAL[name]
    rng = np.random.default_rng(1)
    params, x = make(rng), data(rng)
    table = comp.log_density(params, comp.check_data(x))
    for k in range(K):
        np.testing.assert_allclose(table[:, k], logpdf(params, x, k), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", list(NUMERICAL))
def test_numerical_component_weighted_mle(name):
    """A one-component Mixture fitted with sample weights is the weighted MLE: the same
    as scipy.optimize on the scipy.stats weighted log-likelihood."""
    comp, make, data, logpdf = NUMERICAL[name]
    rng = np.random.default_rng(2)
    x = comp.check_data(data(rng))
    w = rng.uniform(0.1, 2.0, size=N)
    model = latent_em.Mixture(comp, n_components=1)
    assert isinstance(model, latent_em.composite.NumericalMixture)
    result = latent_em.fit(model, x, sample_weight=w, random_state=0, tol=1e-12)
    ours = {k: v for k, v in result.params.items() if k != "weights"}
    cons = comp.constraints
    start = comp.initialize(x, np.ones((N, 1)), rng)

    def neg(u):
        value = -float(w @ logpdf(unflatten_params(u, start, cons), x, 0))
        return value if np.isfinite(value) else 1e300

    best = optimize.minimize(
        neg, flatten_params(start, cons), method="L-BFGS-B", options={"ftol": 1e-15, "gtol": 1e-9}
    )
    assert result.log_likelihood >= -best.fun - 1e-7 * abs(best.fun)
    direct = unflatten_params(best.x, start, cons)
    for key in ours:
        np.testing.assert_allclose(ours[key], direct[key], rtol=5e-3, err_msg=key)


def test_numerical_components_refuse_closed_form_calls():
    with pytest.raises(NotImplementedError, match="numerical M-step"):
        StudentT().stats(None, np.zeros((3, 1)), np.ones((3, 1)))
