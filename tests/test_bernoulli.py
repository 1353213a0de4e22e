"""Bernoulli mixture: equals the two-category categorical mixture, recovers simulated
parameters, reproduces poLCA on binary data, obeys the laws, rejects bad input.

Oracles:
- the categorical mixture with two categories per item (a different implementation:
  indexing of per-item tables rather than matrix products);
- scipy.stats.bernoulli for the log-joint;
- poLCA's ``?carcinoma`` example (Linzer & Lewis; Agresti 2002, Table 13.1): the 2-class
  maximum log-likelihood -317.2568 and BIC 706.0739 (poLCA output), the data recoded
  to 0/1;
- the driver's generic numerical M-step for the closed-form Beta/Dirichlet MAP update.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

import latent_em
from latent_em import (
    BernoulliMixture,
    BernoulliMixtureModel,
    BernoulliMixtureParams,
    CategoricalMixtureModel,
    CategoricalMixtureParams,
)
from latent_em._tree import tree_add, tree_allclose
from latent_em.numerical_mstep import numerical_m_step as _numerical_m_step

TRUTH = BernoulliMixtureParams(
    np.array([0.3, 0.7]),
    np.array([[0.9, 0.8, 0.85, 0.1, 0.2, 0.15], [0.1, 0.2, 0.3, 0.9, 0.75, 0.8]]),
)


def numerical_m_step(model, params, x, posteriors, weights, chunk_size):
    """The driver's generic M-step; newer drivers also return a diagnostics record."""
    out = _numerical_m_step(model, params, x, posteriors, weights, chunk_size)
    is_pair = isinstance(out, tuple) and not hasattr(out, "_fields")
    return out[0] if is_pair else out


def _as_categorical(params: BernoulliMixtureParams) -> CategoricalMixtureParams:
    return CategoricalMixtureParams(
        params.weights, tuple(np.stack([1 - p, p], axis=1) for p in params.probs.T)
    )


@pytest.fixture(scope="module")
def binary_carcinoma() -> np.ndarray:
    return (latent_em.datasets.load_carcinoma() == 2).astype(int)


# ----------------------------------------------------------------------------- oracles


def test_equals_categorical_mixture_with_two_categories(rng):
    x, _ = BernoulliMixtureModel(2).sample(TRUTH, 500, rng)
    bern = BernoulliMixtureModel(2)
    cat = CategoricalMixtureModel(2, n_categories=(2,) * 6)
    start = BernoulliMixtureParams(np.array([0.5, 0.5]), rng.uniform(0.2, 0.8, (2, 6)))
    weights = rng.integers(1, 3, size=500)
    b = latent_em.fit(bern, x, params=start, sample_weight=weights, tol=1e-10)
    c = latent_em.fit(cat, x, params=_as_categorical(start), sample_weight=weights, tol=1e-10)
    np.testing.assert_allclose(b.history, c.history, rtol=1e-10)
    assert tree_allclose(_as_categorical(b.params), c.params, rtol=1e-8, atol=1e-12)
    assert b.n_parameters == c.n_parameters == 13
    # MAP: Beta(a, a) on θ is the symmetric Dirichlet(a) on (1 - θ, θ)
    bern_map = BernoulliMixtureModel(2, weight_concentration=2.0, beta_prior=(3.0, 3.0))
    cat_map = CategoricalMixtureModel(
        2, n_categories=(2,) * 6, weight_concentration=2.0, dirichlet_prior=3.0
    )
    bm = latent_em.fit(bern_map, x, params=start, tol=1e-10)
    cm = latent_em.fit(cat_map, x, params=_as_categorical(start), tol=1e-10)
    np.testing.assert_allclose(bm.history, cm.history, rtol=1e-10)
    assert bm.log_prior == pytest.approx(cm.log_prior, rel=1e-10)
    assert tree_allclose(_as_categorical(bm.params), cm.params, rtol=1e-8)


def test_log_joint_matches_scipy(rng):
    model = BernoulliMixtureModel(2)
    x, _ = model.sample(TRUTH, 50, rng)
    for k in range(2):
        expected = np.log(TRUTH.weights[k]) + stats.bernoulli.logpmf(x, TRUTH.probs[k]).sum(axis=1)
        np.testing.assert_allclose(model.log_joint(TRUTH, x, np.full(50, k)), expected, rtol=1e-12)


def test_boundary_probabilities_match_scipy_without_nan():
    # θ = 0 and θ = 1 are legal: scipy gives 0 or -inf there, and so must we
    model = BernoulliMixtureModel(2)
    params = BernoulliMixtureParams(np.array([0.5, 0.5]), np.array([[0.0, 1.0], [0.3, 0.6]]))
    x = np.array([[0, 1], [1, 1], [0, 0], [1, 0]])
    for k in range(2):
        expected = np.log(0.5) + stats.bernoulli.logpmf(x, params.probs[k]).sum(axis=1)
        np.testing.assert_array_equal(model.log_joint(params, x, np.full(4, k)), expected)
    resp, lm = model.posterior(params, x)
    assert np.all(np.isfinite(lm)) and np.all(np.isfinite(resp))
    np.testing.assert_allclose(resp[1:], [[0.0, 1.0]] * 3)


def test_polca_carcinoma_as_binary_items(binary_carcinoma):
    bm = BernoulliMixture(2, n_init=10, tol=1e-10, max_iter=5000, random_state=0)
    bm.fit(binary_carcinoma)
    assert round(bm.log_likelihood_, 4) == pytest.approx(-317.2568, abs=1e-9)
    assert bm.bic(binary_carcinoma) == pytest.approx(706.0739, abs=1e-4)
    np.testing.assert_allclose(np.sort(bm.weights_), [0.4988, 0.5012], atol=1e-4)
    # poLCA: in the "carcinoma" class pathologists A and G always say yes (1.0000)
    yes_class = int(np.argmax(bm.probs_[:, 0]))
    assert bm.probs_[yes_class, 0] == pytest.approx(1.0, abs=1e-4)
    assert bm.probs_[yes_class, 6] == pytest.approx(1.0, abs=1e-4)
    # the same from the table of patterns (booleans accepted)
    patterns, counts = np.unique(binary_carcinoma, axis=0, return_counts=True)
    table = BernoulliMixture(2, n_init=10, tol=1e-10, max_iter=5000, random_state=0)
    table.fit(patterns.astype(bool), frequency=counts)
    assert table.log_likelihood_ == pytest.approx(bm.log_likelihood_, abs=1e-6)
    assert table.bic(patterns, frequency=counts) == pytest.approx(706.0739, abs=1e-4)


def test_recovers_simulated_parameters():
    rng = np.random.default_rng(5)
    x, _ = BernoulliMixtureModel(2).sample(TRUTH, 4000, rng)
    bm = BernoulliMixture(2, n_init=5, tol=1e-9, random_state=0).fit(x)
    order = np.argsort(bm.weights_)
    np.testing.assert_allclose(bm.weights_[order], TRUTH.weights, atol=0.03)
    np.testing.assert_allclose(bm.probs_[order], TRUTH.probs, atol=0.04)


def test_map_m_step_matches_generic_numerical_m_step(rng):
    model = BernoulliMixtureModel(2, weight_concentration=2.5, beta_prior=(2.0, 3.0))
    x, _ = BernoulliMixtureModel(2).sample(TRUTH, 60, rng)
    x = x[:, :3]
    params = BernoulliMixtureParams(np.array([0.4, 0.6]), rng.uniform(0.2, 0.8, (2, 3)))
    resp, _ = model.posterior(params, x)
    w = np.ones(x.shape[0])
    closed = model.m_step(params, model.expected_stats(params, x, resp, w))
    numeric = numerical_m_step(model, params, x, [resp], w, None)
    np.testing.assert_allclose(numeric.weights, closed.weights, atol=1e-5)
    np.testing.assert_allclose(numeric.probs, closed.probs, atol=1e-5)
    # the log-prior is scipy's Dirichlet + Beta density
    expected = stats.dirichlet.logpdf(closed.weights, [2.5, 2.5]) + np.sum(
        stats.beta.logpdf(closed.probs, 2.0, 3.0)
    )
    assert model.log_prior(closed) == pytest.approx(expected, rel=1e-12)


def test_beta_prior_keeps_estimates_off_the_boundary(binary_carcinoma):
    bm = BernoulliMixture(
        3, beta_prior=(2.0, 2.0), n_init=5, tol=1e-9, max_iter=5000, random_state=0
    )
    bm.fit(binary_carcinoma)
    assert np.all((bm.probs_ > 0) & (bm.probs_ < 1))
    mle = BernoulliMixture(3, n_init=5, tol=1e-9, max_iter=5000, random_state=0)
    mle.fit(binary_carcinoma)
    assert np.any((mle.probs_ == 0) | (mle.probs_ == 1))


def test_empty_component_is_reported_and_keeps_weight_zero(rng):
    x, _ = BernoulliMixtureModel(2).sample(TRUTH, 200, rng)
    model = BernoulliMixtureModel(3)
    start = BernoulliMixtureParams(np.array([0.5, 0.5, 0.0]), rng.uniform(0.2, 0.8, (3, 6)))
    result = latent_em.fit(model, x, params=start, tol=1e-10)
    assert result.params.weights[2] == 0.0
    assert np.all(np.isfinite(result.history))
    messages = [e.message for e in result.events]
    assert len(messages) == 1 and messages[0].startswith("component 2 is empty")


# ----------------------------------------------------------------------------- laws


def test_laws(rng):
    model = BernoulliMixtureModel(2, init_params="random_from_data")
    x, _ = BernoulliMixtureModel(2).sample(TRUTH, 300, rng)
    params = model.initialize(x, rng)
    resp, _ = model.posterior(params, x)
    np.testing.assert_allclose(resp.sum(axis=1), 1.0, rtol=1e-12)
    w = np.ones(x.shape[0])
    whole = model.expected_stats(params, x, resp, w)
    parts = tree_add(
        model.expected_stats(params, x[:77], resp[:77], w[:77]),
        model.expected_stats(params, x[77:], resp[77:], w[77:]),
    )
    assert tree_allclose(whole, parts, rtol=1e-12)
    full = latent_em.fit(model, x, params=params, tol=1e-10, max_iter=500)
    assert np.all(np.diff(full.history) >= -1e-9)
    chunked = latent_em.fit(model, x, params=params, tol=1e-10, max_iter=500, chunk_size=64)
    np.testing.assert_allclose(chunked.history, full.history, rtol=1e-12)
    assert tree_allclose(chunked.params, full.params, rtol=1e-9, atol=1e-12)
    counts = rng.integers(0, 4, size=x.shape[0])
    weighted = latent_em.fit(model, x, params=params, sample_weight=counts, tol=1e-10)
    repeated = latent_em.fit(model, np.repeat(x, counts, axis=0), params=params, tol=1e-10)
    assert weighted.log_likelihood == pytest.approx(repeated.log_likelihood, rel=1e-10)
    assert tree_allclose(weighted.params, repeated.params, rtol=1e-7, atol=1e-12)


def test_estimator_api(rng):
    x, z = BernoulliMixtureModel(2).sample(TRUTH, 400, rng)
    bm = BernoulliMixture(2, n_init=3, random_state=0).fit(x)
    labels = bm.fit_predict(x)
    assert max(np.mean(labels == z), np.mean(labels != z)) > 0.9
    proba = bm.predict_proba(x)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert bm.score(x) == pytest.approx(bm.log_likelihood_ / 400)
    assert bm.n_parameters_ == 13
    assert bm.aic(x) == pytest.approx(-2 * bm.log_likelihood_ + 26)
    assert bm.icl(x) >= bm.bic(x)
    drawn, _ = bm.sample(100, random_state=0)
    assert drawn.shape == (100, 6) and set(np.unique(drawn)) <= {0, 1}
    with pytest.raises(ValueError, match=r"X has 5 features"):
        bm.predict(x[:, :5])


def test_contract_suite():
    # the project's check_model laws (posterior, ELBO, additive statistics, M-step is a
    # maximizer, monotone, parameter count, constraints)
    check_model = latent_em.check_model
    x = (latent_em.datasets.load_carcinoma() == 2).astype(int)
    models = [
        BernoulliMixtureModel(2),
        BernoulliMixtureModel(3, beta_prior=(2.0, 3.0), weight_concentration=2.0),
    ]
    for model in models:
        report = check_model(model, x)
        assert report.passed, str(report)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("x", "message"),
    [
        ([[0, 1], [2, 1]], r"binary.*column 0 holds the value 2 at row 1"),
        ([[0, 1], [1, 0.5]], r"binary.*column 1 holds the value 0.5 at row 1"),
        ([[0, 1], [1, np.nan]], r"NaN.*column 1.*row 1"),
        (
            np.array([[0, 1], [None, 1]], dtype=object),
            r"missing values: column 0 has None at row 1",
        ),
        ([["a", "b"], ["b", "a"]], r"must contain numbers"),
    ],
)
def test_bad_data_is_an_error(x, message):
    with pytest.raises((ValueError, TypeError), match=message):
        BernoulliMixture(2).fit(x)


@pytest.mark.parametrize(
    ("frequency", "message"),
    [
        ([1, 2], r"frequency must have shape \(4,\)"),
        ([1, 2, -1, 1], r"frequency must be non-negative"),
        ([1, 2, 0.5, 1], r"frequency must hold whole counts; row 2"),
        ([[1, 2, 1, 1]], r"frequency must have shape"),
    ],
)
def test_wrong_frequency_is_an_error(frequency, message):
    x = [[0, 1], [1, 1], [0, 0], [1, 0]]
    with pytest.raises(ValueError, match=message):
        BernoulliMixture(2).fit(x, frequency=frequency)


def test_bad_priors_are_errors():
    with pytest.raises(ValueError, match=r"beta_prior"):
        BernoulliMixtureModel(2, beta_prior=(0.5, 2.0))
    with pytest.raises(TypeError, match=r"beta_prior"):
        BernoulliMixtureModel(2, beta_prior=2.0)
    with pytest.raises(TypeError, match=r"n_components"):
        BernoulliMixture(2.5).fit([[0, 1], [1, 0]])


# ----------------------------------------------------------------------------- docs


def test_docs_example_runs():
    page = Path(__file__).resolve().parents[1] / "docs" / "models" / "bernoulli.md"
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.S)
    assert blocks, "the docs page must hold an example"
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(page), "exec"), namespace)


def test_estimator_docstring_example_runs():
    import doctest

    import latent_em.estimators.bernoulli as module

    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0
