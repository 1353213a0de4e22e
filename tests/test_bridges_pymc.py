"""The PyMC models built by ``to_pymc`` are the same models as latent_em's.

Oracles: latent_em's own log-likelihood (the EM fit) and hand-written scipy
log-likelihoods (``scipy.stats`` densities, log-sum-exp over components) at the same θ.
The likelihood potential is evaluated with PyMC's public ``compile_logp`` at the point
PyMC builds from the EM start values, so the start values are tested too.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from typing import Any

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

import latent_em

pytestmark = pytest.mark.bridges

pm = pytest.importorskip("pymc")

from latent_em.bridges import build_pymc, register_pymc, to_pymc  # noqa: E402
from latent_em.bridges.pymc import (  # noqa: E402
    LOG_LIKELIHOOD,
    bernoulli_mixture_pymc,
    categorical_mixture_pymc,
    poisson_mixture_pymc,
)

from ._exponential import ExponentialMixture  # noqa: E402


def potential_at_start(rec: Any) -> float:
    """Σ_n log p(x_n | θ) of the PyMC model at its EM start values (no priors, no Jacobian)."""
    from pymc.initial_point import make_initial_point_fn

    model = rec.model
    point = make_initial_point_fn(
        model=model, overrides=rec.initvals, jitter_rvs=set(), return_transformed=True
    )(0)
    logp = model.compile_logp(vars=[model[LOG_LIKELIHOOD]], jacobian=False)
    return float(logp(point))


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize("n_features", [1, 2])
def test_gaussian_mixture_loglik_equals_latent_em(faithful, covariance_type, n_features):
    X = faithful[:, :n_features]
    gm = latent_em.GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(X)
    rec = build_pymc(gm, X)
    value = potential_at_start(rec)
    assert value == pytest.approx(gm.log_likelihood_, rel=1e-8)
    # independent oracle: scipy densities at the same parameters
    full = gm.model_.covariance.to_full(gm.covariances_, 2, n_features)
    table = np.stack(
        [
            np.log(gm.weights_[k])
            + stats.multivariate_normal(gm.means_[k], full[k]).logpdf(X).reshape(-1)
            for k in range(2)
        ],
        axis=1,
    )
    assert value == pytest.approx(logsumexp(table, axis=1).sum(), rel=1e-8)
    # the reported parameters carry the EM values in the fitted shapes
    np.testing.assert_array_equal(rec.estimate["covariances"], gm.covariances_)
    assert set(rec.parameters) == {"weights", "means", "covariances"}


def test_to_pymc_returns_a_pymc_model_with_free_parameters(faithful):
    gm = latent_em.GaussianMixture(2, covariance_type="diag", random_state=0).fit(faithful)
    model = to_pymc(gm, faithful)
    assert isinstance(model, pm.Model)
    names = {rv.name for rv in model.free_RVs}
    assert names == {"weights", "means", "sd"}
    # no discrete latent variable: the classes are marginalized
    assert not any(rv.type.dtype.startswith("int") for rv in model.free_RVs)
    # an EMResult with its model works as well
    assert isinstance(to_pymc(gm.result_, faithful), pm.Model)


def _random_simplex(rng, shape):
    g = rng.gamma(2.0, size=shape)
    return g / g.sum(axis=-1, keepdims=True)


def test_bernoulli_mixture_loglik_matches_scipy(rng):
    k, d, n = 3, 6, 80
    w = _random_simplex(rng, k)
    p = rng.uniform(0.05, 0.95, size=(k, d))
    x = rng.integers(0, 2, size=(n, d))
    rec = bernoulli_mixture_pymc(w, p, x)
    # row-wise mixture: Π_d over the features inside each component, then log-sum-exp
    table = np.stack(
        [np.log(w[j]) + stats.bernoulli(p[j]).logpmf(x).sum(axis=1) for j in range(k)], axis=1
    )
    assert potential_at_start(rec) == pytest.approx(logsumexp(table, axis=1).sum(), rel=1e-8)


def test_poisson_mixture_loglik_matches_scipy(rng):
    k, d, n = 2, 3, 70
    w = _random_simplex(rng, k)
    lam = rng.uniform(0.5, 9.0, size=(k, d))
    x = rng.poisson(4.0, size=(n, d))
    rec = poisson_mixture_pymc(w, lam, x)
    table = np.stack(
        [np.log(w[j]) + stats.poisson(lam[j]).logpmf(x).sum(axis=1) for j in range(k)], axis=1
    )
    assert potential_at_start(rec) == pytest.approx(logsumexp(table, axis=1).sum(), rel=1e-8)


def test_categorical_mixture_loglik_matches_scipy(rng):
    k, n, levels = 2, 60, (3, 2, 4)
    w = _random_simplex(rng, k)
    probs = tuple(_random_simplex(rng, (k, c)) for c in levels)
    x = np.column_stack([rng.integers(0, c, size=n) for c in levels])
    rec = categorical_mixture_pymc(w, probs, x)
    table = np.zeros((n, k))
    for j in range(k):
        table[:, j] = np.log(w[j])
        for col, pj in enumerate(probs):
            # one multinomial draw with one-hot outcome = the categorical probability
            onehot = np.eye(levels[col])[x[:, col]]
            table[:, j] += stats.multinomial(1, pj[j]).logpmf(onehot)
    assert potential_at_start(rec) == pytest.approx(logsumexp(table, axis=1).sum(), rel=1e-8)
    assert set(rec.parameters) == {"weights", "probs_0", "probs_1", "probs_2"}


def test_built_in_discrete_estimators_bind_by_qualified_name(rng):
    # the builders are registered by qualified class name: the estimators need no hook
    x = latent_em.datasets.load_carcinoma()
    bern = latent_em.BernoulliMixture(2, n_init=5, random_state=0).fit(x - 1)
    # the same latent class model as categorical items with two levels (codes 1/2)
    cat = latent_em.CategoricalMixture(2, n_init=5, random_state=0).fit(x)
    counts = np.concatenate([rng.poisson([2, 8], (60, 2)), rng.poisson([9, 1], (60, 2))])
    pois = latent_em.PoissonMixture(2, n_init=3, random_state=0).fit(counts)
    for est, data in ((bern, x - 1), (cat, x), (pois, counts)):
        rec = build_pymc(est, data)
        assert potential_at_start(rec) == pytest.approx(est.log_likelihood_, rel=1e-8)
    # poLCA's carcinoma example, nclass = 2: log-likelihood -317.2568
    for est in (bern, cat):
        assert est.log_likelihood_ == pytest.approx(-317.2568, abs=1e-3)


def test_discrete_builders_reject_bad_data(rng):
    with pytest.raises(ValueError, match="0/1"):
        bernoulli_mixture_pymc([0.5, 0.5], np.full((2, 2), 0.5), [[0, 2], [1, 0]])
    with pytest.raises(ValueError, match="non-negative counts"):
        poisson_mixture_pymc([0.5, 0.5], np.ones((2, 1)), [[-1], [2]])
    with pytest.raises(ValueError, match="codes 0..1"):
        categorical_mixture_pymc([0.5, 0.5], (np.full((2, 2), 0.5),), [[0], [2]])
    with pytest.raises(ValueError, match="probs must have shape"):
        bernoulli_mixture_pymc([0.5, 0.5], np.full((3, 2), 0.5), [[0, 1]])
    with pytest.raises(ValueError, match="weights must sum to one"):
        poisson_mixture_pymc([0.5, 0.6], np.ones((2, 1)), [[1]])


def test_priors_are_validated(faithful):
    gm = latent_em.GaussianMixture(2, covariance_type="spherical", random_state=0).fit(faithful)
    with pytest.raises(ValueError, match="unknown setting 'mean_sigma'"):
        to_pymc(gm, faithful, priors={"mean_sigma": 3.0})
    with pytest.raises(TypeError, match="priors must be a mapping"):
        to_pymc(gm, faithful, priors=[1.0])
    # a valid override changes the prior (the Dirichlet concentration), not the likelihood
    from pymc.initial_point import make_initial_point_fn

    rec = build_pymc(gm, faithful, priors={"weights_concentration": 5.0})
    point = make_initial_point_fn(
        model=rec.model, overrides=rec.initvals, jitter_rvs=set(), return_transformed=True
    )(0)
    logp = rec.model.compile_logp(vars=[rec.model["weights"]], jacobian=False)
    expected = stats.dirichlet(np.full(2, 5.0)).logpdf(gm.weights_)
    assert float(logp(point)) == pytest.approx(expected, rel=1e-8)


def test_bad_fitted_arguments_raise():
    with pytest.raises(TypeError, match="fitted must be"):
        to_pymc(object(), np.zeros((3, 1)))
    with pytest.raises(latent_em.NotFittedError, match="fitted"):
        to_pymc(latent_em.GaussianMixture(2), np.zeros((3, 1)))


def _exponential_builder(model, params, x, priors):
    import pytensor.tensor as pt

    from latent_em.bridges import PyMCModel
    from latent_em.bridges.pymc import _logsumexp_rows

    x = np.asarray(x, dtype=float)
    with pm.Model() as m:
        w = pm.Dirichlet("weights", a=np.ones(2))
        r = pm.Gamma("rates", alpha=1.0, beta=1.0, shape=2)
        table = pt.log(w)[None, :] + pt.log(r)[None, :] - r[None, :] * x[:, None]
        pm.Potential(LOG_LIKELIHOOD, _logsumexp_rows(table).sum())
    return PyMCModel(
        model=m,
        parameters={"weights": 0, "rates": 0},
        estimate={"weights": params.weights, "rates": params.rates},
        initvals={"weights": params.weights, "rates": params.rates},
        to_params=lambda v: params._replace(weights=v["weights"], rates=v["rates"]),
        match_features=lambda v: np.log(np.asarray(v["rates"]))[..., None],
    )


@pytest.mark.parametrize("by_name", [False, True])
def test_custom_model_registration(rng, by_name):
    x = np.concatenate([rng.exponential(1.0, 100), rng.exponential(10.0, 100)])
    model = ExponentialMixture()
    with pytest.raises(TypeError, match="no PyMC builder registered"):
        to_pymc((model, model.initialize(x, rng)), x)
    name = f"{ExponentialMixture.__module__}.{ExponentialMixture.__qualname__}"
    key = name if by_name else ExponentialMixture
    register_pymc(key, _exponential_builder)
    try:
        result = latent_em.fit(model, x, random_state=0)
        rec = build_pymc(result, x)
        assert potential_at_start(rec) == pytest.approx(result.log_likelihood, rel=1e-8)
    finally:
        from latent_em.bridges.pymc import _REGISTRY

        _REGISTRY.pop(key)


def test_register_pymc_validates_its_arguments():
    with pytest.raises(TypeError, match="key must be a class"):
        register_pymc(3, _exponential_builder)
    with pytest.raises(TypeError, match="builder must be callable"):
        register_pymc("x.Y", 3)


def test_core_import_does_not_load_bridges_dependencies():
    code = (
        "import sys, latent_em, latent_em.cli; "
        "bad = [m for m in ('pymc', 'arviz', 'matplotlib', 'pytensor', 'latent_em.bridges') "
        "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    # the bridges package itself defers PyMC/ArviZ to the functions that use them
    code = code.replace("latent_em.cli;", "latent_em.cli, latent_em.bridges;").replace(
        ", 'latent_em.bridges'", ""
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_boundary_estimates_are_named(rng):
    # three copies of one point far from the rest: EM puts a component on them, its
    # variance at the reg_covar floor (a spurious maximum with unbounded likelihood)
    x = np.concatenate([rng.normal(0, 1, 80), [10.0] * 3])[:, None]
    gm = latent_em.GaussianMixture(2, means_init=[[0.0], [10.0]], random_state=0).fit(x)
    assert gm.covariances_[1, 0, 0] == pytest.approx(1e-6)
    rec = build_pymc(gm, x)
    assert list(rec.boundaries) == ["covariances[1,0,0]"]
    assert rec.boundaries["covariances[1,0,0]"].startswith(
        "component 1 collapsed: smallest variance 1e-06 at the floor (1e-06"
    )
    # a non-degenerate fit of the same kind has none
    clean = latent_em.GaussianMixture(2, random_state=0).fit(x[:80])
    assert build_pymc(clean, x[:80]).boundaries == {}
    # probabilities of exactly 0 / 1 and empty components
    rec = bernoulli_mixture_pymc([1.0, 0.0], np.array([[0.0, 0.4], [0.5, 1.0]]), [[0, 1], [1, 0]])
    assert set(rec.boundaries) == {"weights[1]", "probs[0,0]", "probs[1,1]"}
    assert "an empty component" in rec.boundaries["weights[1]"]


def test_random_functions_of_the_row_wise_mixtures(rng):
    """The generators behind posterior predictive checks: moments against closed forms
    (E x_d = Σ_k φ_k θ_kd; P(x_j = c) = Σ_k φ_k π_kjc), and PyMC drawing the observed
    variable of each built model in the data's shape."""
    from latent_em.bridges.pymc import (
        _bernoulli_mixture_random,
        _categorical_mixture_random,
        _poisson_mixture_random,
    )

    w = np.array([0.3, 0.7])
    p = np.array([[0.1, 0.8, 0.5], [0.9, 0.2, 0.5]])
    lam = np.array([[1.0, 6.0], [8.0, 0.5]])
    tables = (np.array([[0.2, 0.8], [0.6, 0.4]]), np.array([[0.1, 0.1, 0.8], [0.5, 0.3, 0.2]]))
    n = 40000
    # PyMC passes the parameters broadcast to its batch shape: (1, K), (1, K, D)
    draws = _bernoulli_mixture_random(w[None], p[None], rng=rng, size=(n,))
    assert draws.shape == (n, 3)
    np.testing.assert_allclose(draws.mean(0), w @ p, atol=0.01)
    # rows are mixed as a whole: features 0 and 1 are strongly (negatively) correlated
    expected_cov = w @ (p[:, 0] * p[:, 1]) - (w @ p[:, 0]) * (w @ p[:, 1])
    assert np.cov(draws[:, 0], draws[:, 1])[0, 1] == pytest.approx(expected_cov, abs=0.01)
    counts = _poisson_mixture_random(w, lam, rng=rng, size=(n,))
    np.testing.assert_allclose(counts.mean(0), w @ lam, rtol=0.03)
    codes = _categorical_mixture_random(np.zeros(2), w, *tables, rng=rng, size=(n,))
    for j, t in enumerate(tables):
        freq = np.bincount(codes[:, j], minlength=t.shape[1]) / n
        np.testing.assert_allclose(freq, w @ t, atol=0.01)
    # the observed variable of every built model draws data shaped like x
    x = rng.integers(0, 2, size=(30, 3))
    for rec in (
        bernoulli_mixture_pymc(w, p, x),
        poisson_mixture_pymc(w, lam, rng.poisson(3.0, size=(30, 2))),
        categorical_mixture_pymc(w, tables, np.column_stack([x[:, 0], x[:, 1] + x[:, 2]])),
    ):
        with warnings.catch_warnings():
            # PyTensor 3 (PyMC 6) runs the Python generator in Numba's object mode
            warnings.filterwarnings("ignore", message="Numba will use object mode")
            sample = pm.draw(rec.model["x"], random_seed=1)
        assert sample.shape == (30, len(rec.model.coords["feature"]))
        assert sample.dtype.kind == "i" and sample.min() >= 0
