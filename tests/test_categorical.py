"""Categorical mixture (latent class analysis): published poLCA results, laws, bad input.

Oracles:
- poLCA (Linzer & Lewis, R package; J. Stat. Softw. 42(10), 2011) on its ``carcinoma``
  example (Agresti 2002, Categorical Data Analysis, 2nd ed., Table 13.1; latent class
  fits in Tables 13.2/13.3). The ``?carcinoma`` help page states the maximum
  log-likelihoods -317.2568 (2 classes), -293.705 (3) and -289.2858 (4, nrep=10,
  maxiter=5000). poLCA's printed output for the same calls gives AIC(2) = 664.5137,
  BIC(2) = 706.0739, shares 0.5012 / 0.4988; AIC(3) = 633.41, BIC(3) = 697.1357, shares
  0.4447 / 0.3736 / 0.1817 and the class-conditional probabilities quoted below;
  BIC(4) = 726.4629, AIC(4) = 640.5717. poLCA's BIC is ``-2 LL + npar log N`` with
  ``npar = K - 1 + K Σ_j (C_j - 1)`` (15, 23, 31 here) and N = 118.
- brute-force products over the items for the log-joint; the generic numerical M-step
  of the driver (L-BFGS on the expected complete-data log-likelihood) for the closed
  form and the MAP update.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

import latent_em
from latent_em import CategoricalMixture, CategoricalMixtureModel, CategoricalMixtureParams
from latent_em._tree import tree_add, tree_allclose
from latent_em.numerical_mstep import numerical_m_step as _numerical_m_step

N_CARCINOMA = 118


def numerical_m_step(model, params, x, posteriors, weights, chunk_size):
    """The driver's generic M-step; newer drivers also return a diagnostics record."""
    out = _numerical_m_step(model, params, x, posteriors, weights, chunk_size)
    is_pair = isinstance(out, tuple) and not hasattr(out, "_fields")
    return out[0] if is_pair else out


@pytest.fixture(scope="module")
def carcinoma() -> np.ndarray:
    return latent_em.datasets.load_carcinoma()


@pytest.fixture(scope="module")
def lca3(carcinoma: np.ndarray) -> CategoricalMixture:
    return CategoricalMixture(3, n_init=10, tol=1e-10, max_iter=5000, random_state=0).fit(carcinoma)


# ----------------------------------------------------------------------------- poLCA


@pytest.mark.parametrize(
    ("k", "loglik", "bic", "aic", "npar", "shares"),
    [
        (2, -317.2568, 706.0739, 664.5137, 15, [0.4988, 0.5012]),
        (3, -293.7050, 697.1357, 633.4100, 23, [0.1817, 0.3736, 0.4447]),
    ],
)
def test_polca_carcinoma_two_and_three_classes(carcinoma, k, loglik, bic, aic, npar, shares):
    lca = CategoricalMixture(k, n_init=10, tol=1e-10, max_iter=5000, random_state=0).fit(carcinoma)
    assert lca.converged_
    assert round(lca.log_likelihood_, 4) == pytest.approx(loglik, abs=1e-9)
    assert lca.n_parameters_ == npar
    assert lca.bic(carcinoma) == pytest.approx(bic, abs=1e-4)
    assert lca.aic(carcinoma) == pytest.approx(aic, abs=1e-4)
    assert lca.result_.bic == pytest.approx(bic, abs=1e-4)
    np.testing.assert_allclose(np.sort(lca.weights_), shares, atol=1e-4)


def test_polca_carcinoma_four_classes(carcinoma):
    # poLCA: nrep=10, maxiter=5000, tol=1e-10 on the total log-likelihood. The 4-class
    # likelihood is very flat near its maximum, so the best restart is polished to a
    # tiny tolerance before comparing with the published 4 decimals.
    lca = CategoricalMixture(4, n_init=6, tol=1e-9, max_iter=5000, random_state=1).fit(carcinoma)
    assert lca.log_likelihood_ == pytest.approx(-289.2858, abs=5e-4)
    polished = latent_em.fit(
        lca.model_,
        lca.model_.check_data(carcinoma - 1),
        params=lca.params_,
        tol=1e-13,
        max_iter=20000,
    )
    assert polished.converged
    assert round(polished.log_likelihood, 4) == pytest.approx(-289.2858, abs=1e-9)
    assert polished.n_parameters == 31
    assert polished.bic == pytest.approx(726.4629, abs=1e-4)
    assert polished.aic == pytest.approx(640.5717, abs=1e-4)


def test_polca_three_class_probabilities(lca3):
    # poLCA's printed table for nclass=3 (Pr(2) = "yes" per pathologist), classes ordered
    # by share 0.4447, 0.3736, 0.1817. Several are exactly 0 or 1: legal estimates.
    published_yes = {
        "A": [1.0000, 0.0573, 0.5128],
        "B": [0.9809, 0.1379, 1.0000],
        "C": [0.8575, 0.0000, 0.0000],
        "D": [0.5862, 0.0000, 0.0576],
        "E": [1.0000, 0.0551, 0.7506],
        "F": [0.4764, 0.0000, 0.0000],
        "G": [1.0000, 0.0000, 0.6307],
    }
    order = np.argsort(-lca3.weights_)
    for j, item in enumerate("ABCDEFG"):
        yes = lca3.probs_[j][order, 1]
        np.testing.assert_allclose(yes, published_yes[item], atol=1e-4, err_msg=item)
    assert all(np.all(np.isfinite(p)) for p in lca3.probs_)
    assert any(np.any(p == 0.0) for p in lca3.probs_)
    assert np.all(np.isfinite(lca3.score_samples(latent_em.datasets.load_carcinoma())))


def test_polca_predicted_memberships_three_classes(lca3, carcinoma):
    # poLCA: "Predicted class memberships (by modal posterior prob.) 0.4322 0.3729 0.1949"
    labels = lca3.predict(carcinoma)
    shares = np.bincount(labels, minlength=3) / N_CARCINOMA
    np.testing.assert_allclose(np.sort(shares), [0.1949, 0.3729, 0.4322], atol=1e-4)


def test_frequency_table_of_patterns_equals_rows(carcinoma, lca3):
    # carcinoma has 20 distinct response patterns; fitting their counts must give the
    # same maximum and the same BIC (n = 118, the sum of the frequencies)
    patterns, counts = np.unique(carcinoma, axis=0, return_counts=True)
    assert patterns.shape[0] == 20
    table = CategoricalMixture(3, n_init=10, tol=1e-10, max_iter=5000, random_state=0)
    table.fit(patterns, frequency=counts)
    assert table.result_.n_observations == N_CARCINOMA
    assert table.log_likelihood_ == pytest.approx(lca3.log_likelihood_, abs=1e-6)
    assert table.bic(patterns, frequency=counts) == pytest.approx(697.1357, abs=1e-4)
    assert table.bic(patterns, frequency=counts) == pytest.approx(lca3.bic(carcinoma), abs=1e-6)


# ----------------------------------------------------------------------------- model


def _random_params(rng, k, cats):
    return CategoricalMixtureParams(
        rng.dirichlet(np.ones(k)), tuple(rng.dirichlet(np.ones(c), size=k) for c in cats)
    )


def _simulate(rng, n=400):
    model = CategoricalMixtureModel(3, n_categories=(2, 3, 4, 3))
    truth = CategoricalMixtureParams(
        np.array([0.5, 0.3, 0.2]),
        (
            np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]]),
            np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]]),
            np.array([[0.7, 0.1, 0.1, 0.1], [0.1, 0.7, 0.1, 0.1], [0.1, 0.1, 0.1, 0.7]]),
            np.array([[0.6, 0.2, 0.2], [0.2, 0.2, 0.6], [0.2, 0.6, 0.2]]),
        ),
    )
    x, z = model.sample(truth, n, rng)
    return model, truth, x, z


def test_log_joint_is_the_product_over_items(rng):
    model = CategoricalMixtureModel(2, n_categories=(2, 3, 4))
    params = _random_params(rng, 2, (2, 3, 4))
    x = np.stack([rng.integers(0, c, 25) for c in (2, 3, 4)], axis=1)
    for k in range(2):
        brute = [
            math.log(params.weights[k])
            + sum(math.log(params.probs[j][k, row[j]]) for j in range(3))
            for row in x
        ]
        np.testing.assert_allclose(model.log_joint(params, x, np.full(25, k)), brute, rtol=1e-12)


def test_zero_probability_gives_minus_inf_not_nan():
    model = CategoricalMixtureModel(2, n_categories=(2, 2))
    params = CategoricalMixtureParams(
        np.array([0.5, 0.5]), (np.array([[1.0, 0.0], [0.5, 0.5]]), np.array([[0.3, 0.7]] * 2))
    )
    x = np.array([[1, 0], [0, 1]])
    resp, lm = model.posterior(params, x)
    assert np.all(np.isfinite(lm))
    assert resp[0, 0] == 0.0 and resp[0, 1] == 1.0
    assert model.log_joint(params, x, np.zeros(2, dtype=int))[0] == -np.inf


def _small_problem(rng, model):
    params = _random_params(rng, 2, (2, 3))
    x, _ = model.sample(params, 200, rng)
    return params, x


def test_closed_form_m_step_matches_generic_numerical_m_step(rng):
    # the driver's generic path maximizes Q(θ) numerically over the Simplex
    # parameterization of every item's tables (a field holding a tuple of arrays)
    model = CategoricalMixtureModel(2, n_categories=(2, 3))
    params, x = _small_problem(rng, model)
    params = _random_params(rng, 2, (2, 3))
    weights = rng.integers(1, 4, size=x.shape[0]).astype(float)
    resp, _ = model.posterior(params, x)
    closed = model.m_step(params, model.expected_stats(params, x, resp, weights))
    numeric = numerical_m_step(model, params, x, [resp], weights, None)
    np.testing.assert_allclose(numeric.weights, closed.weights, atol=2e-4)
    for a, b in zip(numeric.probs, closed.probs, strict=True):
        np.testing.assert_allclose(a, b, atol=2e-4)


def test_map_m_step_matches_generic_numerical_m_step(rng):
    model = CategoricalMixtureModel(
        2, n_categories=(2, 3), weight_concentration=3.0, dirichlet_prior=2.5
    )
    params, x = _small_problem(rng, model)
    params = _random_params(rng, 2, (2, 3))
    resp, _ = model.posterior(params, x)
    weights = np.ones(x.shape[0])
    closed = model.m_step(params, model.expected_stats(params, x, resp, weights))
    numeric = numerical_m_step(model, params, x, [resp], weights, None)
    np.testing.assert_allclose(numeric.weights, closed.weights, atol=2e-4)
    for a, b in zip(numeric.probs, closed.probs, strict=True):
        np.testing.assert_allclose(a, b, atol=2e-4)


def test_dirichlet_prior_keeps_estimates_interior(carcinoma):
    lca = CategoricalMixture(
        3, dirichlet_prior=2.0, n_init=5, tol=1e-9, max_iter=5000, random_state=0
    ).fit(carcinoma)
    assert all(np.all((p > 0) & (p < 1)) for p in lca.probs_)
    assert lca.result_.log_prior != 0.0
    # MAP-EM maximizes log-likelihood + log-prior, so the likelihood is at most the MLE's
    assert lca.log_likelihood_ < -293.70


def test_recovers_simulated_parameters():
    rng = np.random.default_rng(7)
    model, truth, x, _ = _simulate(rng, 4000)
    result = latent_em.fit(model, x, n_init=5, tol=1e-9, random_state=0)
    # match classes to the truth by the weights (0.5, 0.3, 0.2 are well apart)
    order = np.argsort(-result.params.weights)
    np.testing.assert_allclose(result.params.weights[order], truth.weights, atol=0.03)
    for est, true in zip(result.params.probs, truth.probs, strict=True):
        np.testing.assert_allclose(est[order], true, atol=0.06)


# ----------------------------------------------------------------------------- laws


def test_laws(rng):
    model, _, x, _ = _simulate(rng, 300)
    params = model.initialize(x, rng)
    # posterior rows sum to one
    resp, _ = model.posterior(params, x)
    np.testing.assert_allclose(resp.sum(axis=1), 1.0, rtol=1e-12)
    # additive statistics over a split of the rows
    w = np.ones(x.shape[0])
    whole = model.expected_stats(params, x, resp, w)
    parts = tree_add(
        model.expected_stats(params, x[:120], resp[:120], w[:120]),
        model.expected_stats(params, x[120:], resp[120:], w[120:]),
    )
    assert tree_allclose(whole, parts, rtol=1e-12)
    # monotone history (the driver checks too; this asserts it on the record)
    full = latent_em.fit(model, x, params=params, tol=1e-10, max_iter=300)
    assert np.all(np.diff(full.history) >= -1e-9)
    # chunked == unchunked
    chunked = latent_em.fit(model, x, params=params, tol=1e-10, max_iter=300, chunk_size=37)
    np.testing.assert_allclose(chunked.history, full.history, rtol=1e-12)
    assert tree_allclose(chunked.params, full.params, rtol=1e-9, atol=1e-12)
    # integer sample weights == repeated rows
    counts = rng.integers(0, 4, size=x.shape[0])
    weighted = latent_em.fit(model, x, params=params, sample_weight=counts, tol=1e-10)
    repeated = latent_em.fit(model, np.repeat(x, counts, axis=0), params=params, tol=1e-10)
    assert weighted.log_likelihood == pytest.approx(repeated.log_likelihood, rel=1e-10)
    assert weighted.n_observations == counts.sum()
    assert tree_allclose(weighted.params, repeated.params, rtol=1e-7, atol=1e-10)


# ----------------------------------------------------------------------------- labels


def test_string_labels_and_mapping_are_remembered(carcinoma, lca3):
    words = np.where(carcinoma == 2, "yes", "no")
    lca = CategoricalMixture(3, n_init=10, tol=1e-10, max_iter=5000, random_state=0).fit(words)
    assert [list(c) for c in lca.categories_] == [["no", "yes"]] * 7
    assert lca.log_likelihood_ == pytest.approx(lca3.log_likelihood_, abs=1e-6)
    np.testing.assert_allclose(lca.score_samples(words), lca3.score_samples(carcinoma), atol=1e-6)
    drawn, z = lca.sample(50, random_state=0)
    assert drawn.shape == (50, 7) and set(np.unique(drawn)) <= {"no", "yes"}
    assert z.shape == (50,)


def test_pandas_categoricals_and_column_names():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(3)
    model, _, x, _ = _simulate(rng, 300)
    colours = np.array(["red", "green", "blue"])
    df = pd.DataFrame(
        {
            "flag": pd.Categorical(np.where(x[:, 0] == 1, "on", "off")),
            "colour": pd.Categorical(colours[x[:, 1]], categories=["red", "green", "blue"]),
            "grade": x[:, 2] + 1,
            "size": np.array(["S", "M", "L"])[x[:, 3]],
        }
    )
    lca = CategoricalMixture(3, n_init=3, tol=1e-8, random_state=0).fit(df)
    assert list(lca.feature_names_in_) == ["flag", "colour", "grade", "size"]
    # a categorical keeps its own category order; other columns are sorted
    assert list(lca.categories_[1]) == ["red", "green", "blue"]
    assert list(lca.categories_[2]) == [1, 2, 3, 4]
    assert list(lca.categories_[3]) == ["L", "M", "S"]
    assert [p.shape for p in lca.probs_] == [(3, 2), (3, 3), (3, 4), (3, 3)]
    proba = lca.predict_proba(df.iloc[:10])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    unseen = df.iloc[:5].copy()
    unseen["size"] = ["S", "M", "XL", "L", "S"]
    with pytest.raises(ValueError, match=r"column 'size'.*'XL'.*not seen"):
        lca.predict(unseen)
    missing = df.iloc[:5].copy()
    missing.loc[2, "grade"] = np.nan
    with pytest.raises(ValueError, match=r"missing values.*column 'grade'"):
        lca.predict(missing)


def test_contract_suite():
    # the project's check_model laws (posterior, ELBO, additive statistics, M-step is a
    # maximizer, monotone, parameter count, constraints)
    check_model = latent_em.check_model
    x = latent_em.datasets.load_carcinoma() - 1
    models = [
        CategoricalMixtureModel(3),
        CategoricalMixtureModel(3, dirichlet_prior=2.0, weight_concentration=1.5),
    ]
    for model in models:
        report = check_model(model, x)
        assert report.passed, str(report)


# ----------------------------------------------------------------------------- bad input


def test_unseen_category_at_predict_time_is_an_error(lca3, carcinoma):
    bad = carcinoma[:4].copy()
    bad[1, 3] = 3
    with pytest.raises(ValueError, match=r"column 3 holds the category 3 at row 1.*not seen"):
        lca3.predict(bad)


def test_single_category_column_is_an_error(carcinoma):
    x = carcinoma.copy()
    x[:, 2] = 1
    with pytest.raises(ValueError, match=r"column 2 has a single category"):
        CategoricalMixture(2).fit(x)
    with pytest.raises(ValueError, match=r"n_categories\[1\] is 1.*single category"):
        CategoricalMixtureModel(2, n_categories=(2, 1))
    codes = np.zeros((10, 2), dtype=int)
    codes[:, 1] = [0, 1] * 5
    with pytest.raises(ValueError, match=r"column 0 has a single category"):
        latent_em.fit(CategoricalMixtureModel(2), codes)


@pytest.mark.parametrize("missing", [np.nan, None])
def test_missing_values_are_an_error(carcinoma, missing):
    x = carcinoma.astype(object)
    x[5, 4] = missing
    with pytest.raises(ValueError, match=r"missing values.*column 4 at row 5"):
        CategoricalMixture(2).fit(x)


def test_bad_codes_for_the_model_are_errors():
    model = CategoricalMixtureModel(2, n_categories=(2, 3))
    with pytest.raises(ValueError, match=r"column 1 holds the code 3 at row 0"):
        model.check_data([[0, 3], [1, 2]])
    with pytest.raises(ValueError, match=r"integer category codes.*column 0 holds -1"):
        model.check_data([[-1, 0], [1, 2]])
    with pytest.raises(ValueError, match=r"NaN.*column 1"):
        model.check_data([[0, np.nan], [1, 2]])
    # categories inferred from the data: a larger code later is an error, not an IndexError
    inferred = CategoricalMixtureModel(2)
    params = inferred.initialize(
        inferred.check_data([[0, 1], [1, 0], [1, 1]]), np.random.default_rng(0)
    )
    with pytest.raises(ValueError, match=r"column 1 holds the code 2"):
        inferred.posterior(params, np.array([[0, 2]]))


@pytest.mark.parametrize(
    ("frequency", "message"),
    [
        ([1, 2, 3], r"frequency must have shape \(118,\)"),
        (np.full(118, -1), r"frequency must be non-negative"),
        (np.full(118, 1.5), r"frequency must hold whole counts; row 0"),
        (np.r_[np.nan, np.ones(117)], r"frequency contains NaN"),
        (np.zeros(118), r"frequency is zero for every row"),
    ],
)
def test_wrong_frequency_is_an_error(carcinoma, frequency, message):
    with pytest.raises(ValueError, match=message):
        CategoricalMixture(2).fit(carcinoma, frequency=frequency)


def test_mixed_label_types_are_an_error():
    x = np.array([[1, "a"], ["b", "a"], [2, "b"]], dtype=object)
    with pytest.raises(TypeError, match=r"column 0 mixes category labels"):
        CategoricalMixture(2).fit(x)


# ----------------------------------------------------------------------------- docs


def test_docs_example_runs():
    page = Path(__file__).resolve().parents[1] / "docs" / "models" / "categorical.md"
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.S)
    assert blocks, "the docs page must hold an example"
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(page), "exec"), namespace)


def test_estimator_docstring_example_runs():
    import doctest

    import latent_em.estimators.categorical as module

    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0
