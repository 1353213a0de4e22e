"""The models/ gallery: each custom model fits, passes check_model, and matches an oracle.

Oracles: scikit-learn's weighted LinearRegression (the WLS M-step) and FactorAnalysis
(an SVD-based ML fit, Barber 2012 Alg. 21.1), scipy's gamma log-density and a direct
L-BFGS maximization of the marginal likelihood, brute-force enumeration of all K^T HMM
state paths, and hmmlearn's CategoricalHMM (forward-backward and one Baum-Welch step).
The docs page docs/custom-models.md is executed here too.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.optimize
import scipy.stats

import latent_em
from latent_em.constraints import flatten_params, unflatten_params

ROOT = Path(__file__).resolve().parents[1]
GALLERY = ROOT / "models"
sys.path.insert(0, str(GALLERY))

import factor_analysis  # noqa: E402
import gamma_mixture  # noqa: E402
import hidden_markov  # noqa: E402
import mixture_of_regressions  # noqa: E402


@pytest.mark.parametrize("path", sorted(GALLERY.glob("*.py")), ids=lambda p: p.name)
def test_gallery_uses_only_the_public_api(path):
    tree = ast.parse(path.read_text())
    assert ast.get_docstring(tree), f"{path.name} needs a docstring stating the model"
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("latent_em"):
            assert not any(part.startswith("_") for part in node.module.split(".")), node.module
            assert not any(alias.name.startswith("_") for alias in node.names)
        if isinstance(node, ast.Import):
            for alias in node.names:
                assert not any(p.startswith("_") for p in alias.name.split(".")), alias.name
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id == "latent_em":
                assert not node.attr.startswith("_"), f"private latent_em.{node.attr}"


def _maximize_marginal(model, params, x):
    """Oracle: L-BFGS directly on log p(x | θ) (no EM), started at ``params``."""
    constraints = model.constraints
    u0 = flatten_params(params, constraints)

    def negloglik(u):
        theta = unflatten_params(u, params, constraints)
        with np.errstate(all="ignore"):
            value = latent_em.log_likelihood(model, theta, x)
        return -value if np.isfinite(value) else np.inf

    res = scipy.optimize.minimize(negloglik, u0, method="L-BFGS-B")
    return -res.fun


# ----------------------------------------------------------------- mixture of regressions


@pytest.fixture(scope="module")
def regression_data():
    model = mixture_of_regressions.MixtureOfRegressions(2)
    x, _ = model.sample(mixture_of_regressions.TRUE_PARAMS, 400, np.random.default_rng(2))
    return x


def test_regression_m_step_equals_sklearn_weighted_least_squares(regression_data):
    from sklearn.linear_model import LinearRegression

    model = mixture_of_regressions.MixtureOfRegressions(2)
    x = regression_data
    params = model.initialize(x, np.random.default_rng(0))
    resp, _ = latent_em.posterior(model, params, x)
    new = model.m_step(params, model.expected_stats(params, x, resp, np.ones(len(x))))
    y, a = x[:, 0], x[:, 1:]
    for k in range(2):
        ols = LinearRegression(fit_intercept=False).fit(a, y, sample_weight=resp[:, k])
        np.testing.assert_allclose(new.coefficients[k], ols.coef_, rtol=1e-9)
        resid = y - ols.predict(a)
        var = np.sum(resp[:, k] * resid**2) / resp[:, k].sum()
        assert new.variances[k] == pytest.approx(var, rel=1e-9)


def test_regression_mixture_fits(regression_data):
    model = mixture_of_regressions.MixtureOfRegressions(2)
    result = latent_em.fit(model, regression_data, n_init=3, random_state=0, tol=1e-10)
    assert result.converged
    order = np.argsort(result.params.coefficients[:, 1])[::-1]  # label switching
    truth = mixture_of_regressions.TRUE_PARAMS
    np.testing.assert_allclose(result.params.coefficients[order], truth.coefficients, atol=0.2)
    # EM's fixed point is a maximum of the likelihood: direct optimization cannot improve it
    direct = _maximize_marginal(model, result.params, regression_data)
    assert direct - result.log_likelihood < 1e-6
    latent_em.check_model(model, regression_data)


# ----------------------------------------------------------------- factor analysis


def test_factor_analysis_matches_sklearn():
    from sklearn.decomposition import FactorAnalysis as SklearnFA

    model = factor_analysis.FactorAnalysis(2)
    x, _ = model.sample(factor_analysis.TRUE_PARAMS, 500, np.random.default_rng(0))
    result = latent_em.fit(model, x, random_state=0, tol=1e-12, max_iter=20000)
    assert result.converged
    oracle = SklearnFA(2, tol=1e-12, max_iter=100000, svd_method="lapack").fit(x)
    assert result.log_likelihood == pytest.approx(oracle.score(x) * len(x), rel=1e-9)
    p = result.params
    cov = p.loadings @ p.loadings.T + np.diag(p.noise_variances)
    np.testing.assert_allclose(cov, oracle.get_covariance(), atol=1e-3)
    np.testing.assert_allclose(p.mean, oracle.mean_, rtol=1e-10)
    report = latent_em.check_model(model, x)
    assert report["elbo"].status == "passed"
    assert report["m_step_maximizer"].status == "passed"


# ----------------------------------------------------------------- gamma mixture


@pytest.fixture(scope="module")
def gamma_data():
    model = gamma_mixture.GammaMixture(2)
    x, _ = model.sample(gamma_mixture.TRUE_PARAMS, 400, np.random.default_rng(4))
    return x


def test_gamma_log_joint_matches_scipy(gamma_data):
    model = gamma_mixture.GammaMixture(2)
    p = gamma_mixture.TRUE_PARAMS
    for k in range(2):
        z = np.full(len(gamma_data), k)
        expected = np.log(p.weights[k]) + scipy.stats.gamma.logpdf(
            gamma_data, p.shapes[k], scale=1 / p.rates[k]
        )
        np.testing.assert_allclose(model.log_joint(p, gamma_data, z), expected, rtol=1e-12)


def test_gamma_mixture_fits_through_log_joint_alone(gamma_data):
    model = gamma_mixture.GammaMixtureWithGradient(2)
    result = latent_em.fit(model, gamma_data, random_state=0, tol=1e-9)
    assert result.converged
    assert np.all(np.diff(result.history) >= -1e-9 * abs(result.history[0]))
    direct = _maximize_marginal(model, result.params, gamma_data)
    assert direct - result.log_likelihood < 1e-5
    order = np.argsort(result.params.shapes)
    np.testing.assert_allclose(
        result.params.shapes[order], gamma_mixture.TRUE_PARAMS.shapes, rtol=0.35
    )
    latent_em.check_model(model, gamma_data)
    # the finite-difference path takes the same EM steps
    start = model.initialize(gamma_data, np.random.default_rng(0))
    opts = {"params": start, "max_iter": 3, "warn_not_converged": False}
    fd = latent_em.fit(gamma_mixture.GammaMixture(2), gamma_data, **opts)
    analytic = latent_em.fit(model, gamma_data, **opts)
    np.testing.assert_allclose(fd.history, analytic.history, rtol=1e-7)


# ----------------------------------------------------------------- hidden Markov model


def _hmm_data(length, n=30, seed=0):
    model = hidden_markov.CategoricalHMM(2, 3)
    x, _ = model.sample(hidden_markov.TRUE_PARAMS, n, np.random.default_rng(seed), length=length)
    return model, x


def test_forward_backward_matches_brute_force_path_enumeration():
    for k, length in ((2, 6), (3, 4)):
        model = hidden_markov.CategoricalHMM(k, 3)
        rng = np.random.default_rng(k)
        params = model.initialize(None, rng)
        x, _ = model.sample(params, 12, rng, length=length)
        post, lm = model.posterior(params, x)
        brute = hidden_markov.HMMPathEnumeration(model, length)
        paths = brute.latent_support()  # (K^T, T)
        assert len(paths) == k**length
        resp, lm_brute = latent_em.posterior(brute, params, x)  # (n, K^T)
        np.testing.assert_allclose(lm, lm_brute, rtol=1e-12)
        onehot = np.eye(k)[paths]  # (K^T, T, K)
        np.testing.assert_allclose(
            post.state_marginals, np.einsum("np,ptk->ntk", resp, onehot), atol=1e-12
        )
        pairs = np.einsum("np,ptj,ptk->ntjk", resp, onehot[:, :-1], onehot[:, 1:])
        np.testing.assert_allclose(post.pair_marginals, pairs, atol=1e-12)


def test_brute_force_hmm_obeys_the_discrete_laws():
    model, x = _hmm_data(length=4, n=10)
    brute = hidden_markov.HMMPathEnumeration(model, 4)
    params = hidden_markov.TRUE_PARAMS
    report = latent_em.check_model(brute, x, params=params, n_em_iter=1)
    assert report["log_marginal"].status == "passed"
    assert report["elbo"].status == "passed"


def test_hmm_matches_hmmlearn():
    hmm = pytest.importorskip("hmmlearn.hmm")
    model, x = _hmm_data(length=15, n=40, seed=1)
    params = model.initialize(x, np.random.default_rng(3))
    post, lm = model.posterior(params, x)

    def oracle(n_iter):
        o = hmm.CategoricalHMM(n_components=2, n_iter=n_iter, init_params="", params="ste")
        o.n_features = 3
        o.startprob_, o.transmat_, o.emissionprob_ = params
        return o

    flat, lengths = x.reshape(-1, 1), [x.shape[1]] * len(x)
    o = oracle(1)
    assert o.score(flat, lengths) == pytest.approx(lm.sum(), rel=1e-12)
    np.testing.assert_allclose(
        o.predict_proba(flat, lengths), post.state_marginals.reshape(-1, 2), atol=1e-10
    )
    # one Baum-Welch iteration from the same parameters
    o.fit(flat, lengths)
    new = model.m_step(params, model.expected_stats(params, x, post, np.ones(len(x))))
    np.testing.assert_allclose(new.initial, o.startprob_, atol=1e-10)
    np.testing.assert_allclose(new.transition, o.transmat_, atol=1e-10)
    np.testing.assert_allclose(new.emission, o.emissionprob_, atol=1e-10)


def test_hmm_fits_and_passes_check_model():
    model, x = _hmm_data(length=20, n=150, seed=2)
    report = latent_em.check_model(model, x)
    assert report["elbo"].status == "passed"
    assert report["m_step_maximizer"].status == "passed"
    assert report["additive_stats"].status == "passed"
    result = latent_em.fit(model, x, n_init=3, random_state=0, tol=1e-9)
    assert result.converged
    # a fixed point of Baum-Welch maximizes the likelihood: direct L-BFGS cannot improve it
    assert _maximize_marginal(model, result.params, x) - result.log_likelihood < 1e-5
    truth = hidden_markov.TRUE_PARAMS
    order = np.argsort(result.params.emission[:, 0])[::-1]
    np.testing.assert_allclose(result.params.emission[order], truth.emission, atol=0.1)


# ----------------------------------------------------------------- the docs page


def test_custom_models_docs_page_runs(capsys):
    text = (ROOT / "docs" / "custom-models.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 3
    namespace: dict = {}
    for i, block in enumerate(blocks):
        exec(compile(block, f"docs/custom-models.md[block {i}]", "exec"), namespace)
    assert namespace["report"]["m_step_maximizer"].status == "failed"
    assert "not a maximizer" in capsys.readouterr().out
