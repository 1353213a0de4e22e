"""Poisson mixture: a published EM example, the driver's generic path, laws, bad input.

Oracles:
- Hasselblad, V. (1969), "Estimation of finite mixtures of distributions from the
  exponential family", J. Amer. Statist. Assoc. 64(328), 1459-1471: death notices of
  women aged 80+ in The Times, 1910-1912 (days with 0 … 9 deaths: 162, 267, 271, 185,
  111, 61, 27, 8, 3, 1). Two-component MLE: weight 0.3599 on rate 1.2561, rate 2.6634
  for the rest. The same example is the benchmark of Varadhan & Roland (2008, Scand. J.
  Statist. 35, SQUAREM), whose converged fixed point is (0.6401146, 2.6634044,
  1.2560951), log-likelihood -1989.946 (as R's BB::spg also reports for this data).
- scipy.stats.poisson for the log-joint; the driver's generic numerical M-step (L-BFGS
  on the expected complete-data log-likelihood) through a thin wrapper model that
  exposes only initialize / log_joint / latent_support / constraints.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

import latent_em
from latent_em import PoissonMixture, PoissonMixtureModel, PoissonMixtureParams
from latent_em._tree import tree_add, tree_allclose
from latent_em.constraints import Positive, Simplex
from latent_em.numerical_mstep import numerical_m_step as _numerical_m_step

DEATHS = np.arange(10.0).reshape(-1, 1)
DAYS = np.array([162, 267, 271, 185, 111, 61, 27, 8, 3, 1])


def numerical_m_step(model, params, x, posteriors, weights, chunk_size):
    """The driver's generic M-step; newer drivers also return a diagnostics record."""
    out = _numerical_m_step(model, params, x, posteriors, weights, chunk_size)
    is_pair = isinstance(out, tuple) and not hasattr(out, "_fields")
    return out[0] if is_pair else out


@dataclasses.dataclass(frozen=True)
class GenericPoisson:
    """Only what the generic numerical path needs; log-densities from scipy."""

    n_components: int
    prior: tuple[float, float] | None = None

    def initialize(self, x, rng):
        return PoissonMixtureModel(self.n_components).initialize(x, rng)

    def latent_support(self):
        return np.arange(self.n_components)

    def log_joint(self, params, x, z):
        return np.log(params.weights[z]) + stats.poisson.logpmf(x, params.rates[z]).sum(axis=1)

    @property
    def constraints(self):
        return {"weights": Simplex(), "rates": Positive()}


@dataclasses.dataclass(frozen=True)
class GenericPoissonMAP(GenericPoisson):
    """The same with Dirichlet(α) weights and Gamma(a, rate b) rates, from scipy."""

    alpha: float = 2.0
    shape: float = 2.0
    rate: float = 0.5

    def log_prior(self, params):
        return float(
            stats.dirichlet.logpdf(params.weights, np.full(self.n_components, self.alpha))
            + stats.gamma.logpdf(params.rates, self.shape, scale=1.0 / self.rate).sum()
        )


def _simulate(rng, n=300):
    truth = PoissonMixtureParams(np.array([0.4, 0.6]), np.array([[1.0, 6.0], [7.0, 2.0]]))
    x, z = PoissonMixtureModel(2).sample(truth, n, rng)
    return truth, x, z


# ----------------------------------------------------------------------------- published


def test_hasselblad_death_notices_from_the_frequency_table():
    pm = PoissonMixture(2, tol=1e-15, max_iter=100000, random_state=0).fit(DEATHS, frequency=DAYS)
    assert pm.converged_
    assert pm.result_.n_observations == DAYS.sum() == 1096
    low = int(np.argmin(pm.rates_[:, 0]))
    # Hasselblad (1969), to the 4 decimals published
    assert pm.weights_[low] == pytest.approx(0.3599, abs=1e-4)
    assert pm.rates_[low, 0] == pytest.approx(1.2561, abs=1e-4)
    assert pm.rates_[1 - low, 0] == pytest.approx(2.6634, abs=1e-4)
    # Varadhan & Roland's converged fixed point, to the accuracy plain EM reaches
    np.testing.assert_allclose(
        [pm.weights_[1 - low], pm.rates_[1 - low, 0], pm.rates_[low, 0]],
        [0.6401146, 2.6634044, 1.2560951],
        atol=2e-5,
    )
    assert round(pm.log_likelihood_, 3) == pytest.approx(-1989.946, abs=1e-9)
    # BIC's n is the number of days, not the 10 rows of the table
    assert pm.bic(DEATHS, frequency=DAYS) == pytest.approx(
        -2 * pm.log_likelihood_ + 3 * np.log(1096), rel=1e-12
    )


def test_hasselblad_likelihood_is_the_maximum_found_by_scipy():
    # an optimizer we did not write, on a log-likelihood written with scipy.stats
    def negloglik(theta):
        w, l1, l2 = theta
        mix = w * stats.poisson.pmf(DEATHS[:, 0], l1) + (1 - w) * stats.poisson.pmf(
            DEATHS[:, 0], l2
        )
        return -float(DAYS @ np.log(mix))

    from scipy.optimize import minimize

    best = minimize(
        negloglik,
        [0.3, 1.0, 2.5],
        method="L-BFGS-B",
        bounds=[(1e-6, 1 - 1e-6), (1e-6, 20), (1e-6, 20)],
        options={"ftol": 1e-15, "gtol": 1e-10},
    )
    pm = PoissonMixture(2, tol=1e-15, max_iter=100000, random_state=0).fit(DEATHS, frequency=DAYS)
    assert pm.log_likelihood_ >= -best.fun - 1e-6
    assert pm.log_likelihood_ == pytest.approx(-best.fun, abs=1e-5)


def test_frequency_table_equals_expanded_rows():
    model = PoissonMixtureModel(2)
    start = PoissonMixtureParams(np.array([0.5, 0.5]), np.array([[1.0], [3.0]]))
    # the same EM path, iteration by iteration (convergence itself is slow here)
    options = {"params": start, "tol": 0.0, "max_iter": 200, "warn_not_converged": False}
    table = latent_em.fit(model, DEATHS, sample_weight=DAYS, **options)
    rows = latent_em.fit(model, np.repeat(DEATHS, DAYS, axis=0), **options)
    np.testing.assert_allclose(table.history, rows.history, rtol=1e-12)
    assert table.log_likelihood == pytest.approx(rows.log_likelihood, rel=1e-12)
    assert table.bic == pytest.approx(rows.bic, rel=1e-12)
    assert tree_allclose(table.params, rows.params, rtol=1e-8)


def test_frequency_multiplies_sample_weight():
    options = {"n_components": 2, "tol": 1e-7, "max_iter": 5000, "random_state": 0}
    both = PoissonMixture(**options).fit(DEATHS, sample_weight=np.full(10, 2.0), frequency=DAYS)
    doubled = PoissonMixture(**options).fit(DEATHS, frequency=2 * DAYS)
    assert both.result_.n_observations == doubled.result_.n_observations == 2 * 1096
    np.testing.assert_allclose(both.history_, doubled.history_, rtol=1e-12)
    assert both.bic(DEATHS, sample_weight=np.full(10, 2.0), frequency=DAYS) == pytest.approx(
        doubled.bic(DEATHS, frequency=2 * DAYS), rel=1e-12
    )


# ----------------------------------------------------------------------------- generic path


def test_log_joint_matches_scipy(rng):
    model = PoissonMixtureModel(3)
    params = PoissonMixtureParams(np.array([0.2, 0.3, 0.5]), rng.uniform(0.5, 6.0, (3, 4)))
    x = rng.poisson(3.0, size=(40, 4))
    for k in range(3):
        z = np.full(40, k)
        np.testing.assert_allclose(
            model.log_joint(params, x, z), GenericPoisson(3).log_joint(params, x, z), rtol=1e-12
        )


def test_one_m_step_closed_form_equals_numerical(rng):
    model = PoissonMixtureModel(2)
    params = PoissonMixtureParams(np.array([0.5, 0.5]), np.array([[1.0], [3.0]]))
    resp, _ = model.posterior(params, DEATHS)
    weights = DAYS.astype(float)
    closed = model.m_step(params, model.expected_stats(params, DEATHS, resp, weights))
    numeric = numerical_m_step(GenericPoisson(2), params, DEATHS, [resp], weights, None)
    np.testing.assert_allclose(numeric.weights, closed.weights, rtol=1e-5)
    np.testing.assert_allclose(numeric.rates, closed.rates, rtol=1e-5)


def test_map_m_step_closed_form_equals_numerical(rng):
    model = PoissonMixtureModel(2, weight_concentration=2.0, gamma_prior=(2.0, 0.5))
    params = PoissonMixtureParams(np.array([0.5, 0.5]), np.array([[1.0], [3.0]]))
    resp, _ = model.posterior(params, DEATHS[:4])
    weights = DAYS[:4].astype(float) / 50.0  # little data, so the prior matters
    closed = model.m_step(params, model.expected_stats(params, DEATHS[:4], resp, weights))
    numeric = numerical_m_step(GenericPoissonMAP(2), params, DEATHS[:4], [resp], weights, None)
    np.testing.assert_allclose(numeric.weights, closed.weights, rtol=1e-5)
    np.testing.assert_allclose(numeric.rates, closed.rates, rtol=1e-5)
    # and the log-prior is the same density scipy computes
    assert model.log_prior(closed) == pytest.approx(GenericPoissonMAP(2).log_prior(closed))


def test_full_fit_closed_form_equals_generic_path(rng):
    _, x, _ = _simulate(rng, 300)
    start = PoissonMixtureParams(np.array([0.5, 0.5]), np.array([[2.0, 4.0], [5.0, 3.0]]))
    fast = latent_em.fit(PoissonMixtureModel(2), x, params=start, tol=1e-10)
    slow = latent_em.fit(GenericPoisson(2), x, params=start, tol=1e-10)
    assert fast.converged and slow.converged
    assert slow.log_likelihood == pytest.approx(fast.log_likelihood, abs=1e-6)
    np.testing.assert_allclose(slow.params.weights, fast.params.weights, atol=1e-4)
    np.testing.assert_allclose(slow.params.rates, fast.params.rates, rtol=1e-4)
    assert slow.n_parameters == fast.n_parameters == 5


# ----------------------------------------------------------------------------- behaviour


def test_recovers_simulated_parameters():
    rng = np.random.default_rng(11)
    truth, x, _ = _simulate(rng, 3000)
    pm = PoissonMixture(2, n_init=3, tol=1e-9, random_state=0).fit(x)
    order = np.argsort(pm.rates_[:, 0])
    np.testing.assert_allclose(pm.weights_[order], truth.weights, atol=0.03)
    np.testing.assert_allclose(pm.rates_[order], truth.rates, rtol=0.06)


def test_zero_rate_is_a_legal_estimate():
    # column 1 is 0 for every row of the first group: its rate is exactly 0
    x = np.array([[0, 0], [1, 0], [0, 0], [2, 0], [9, 4], [8, 6], [10, 5], [11, 7]])
    pm = PoissonMixture(2, n_init=5, tol=1e-12, random_state=0).fit(x)
    low = int(np.argmin(pm.rates_[:, 0]))
    assert pm.rates_[low, 1] < 1e-100  # on its way to 0 geometrically
    # started exactly on the boundary, EM stays there with finite, NaN-free values
    start = pm.params_._replace(rates=np.where(pm.rates_ < 1e-100, 0.0, pm.rates_))
    boundary = latent_em.fit(pm.model_, x, params=start, tol=1e-12)
    assert boundary.params.rates[low, 1] == 0.0
    assert np.isfinite(boundary.log_likelihood) and np.isfinite(boundary.bic)
    # a positive count under a zero rate is impossible in that component, not NaN
    proba, log_marginal = latent_em.posterior(pm.model_, boundary.params, np.array([[0, 3]]))
    assert proba[0, low] == 0.0 and np.isfinite(proba).all() and np.isfinite(log_marginal).all()


def test_gamma_prior_keeps_rates_positive():
    x = np.array([[0, 0], [1, 0], [0, 0], [2, 0], [9, 4], [8, 6], [10, 5], [11, 7]])
    pm = PoissonMixture(2, gamma_prior=(2.0, 1.0), n_init=5, tol=1e-12, random_state=0).fit(x)
    assert np.all(pm.rates_ > 0)
    assert pm.result_.log_prior != 0.0


def test_estimator_api(rng):
    _, x, z = _simulate(rng, 400)
    pm = PoissonMixture(2, n_init=2, random_state=0).fit(x)
    labels = pm.predict(x)
    agreement = max(np.mean(labels == z), np.mean(labels != z))
    assert agreement > 0.95
    assert pm.score(x) == pytest.approx(pm.log_likelihood_ / 400)
    assert pm.aic(x) == pytest.approx(-2 * pm.log_likelihood_ + 2 * 5)
    assert pm.icl(x) >= pm.bic(x)
    drawn, zz = pm.sample(500, random_state=1)
    assert drawn.shape == (500, 2) and drawn.dtype.kind == "i" and np.all(drawn >= 0)
    assert set(np.unique(zz)) <= {0, 1}
    assert "n_components=2" in repr(pm)


# ----------------------------------------------------------------------------- laws


def test_laws(rng):
    _, x, _ = _simulate(rng, 300)
    model = PoissonMixtureModel(2)
    params = model.initialize(x, rng)
    resp, _ = model.posterior(params, x)
    np.testing.assert_allclose(resp.sum(axis=1), 1.0, rtol=1e-12)
    w = np.ones(x.shape[0])
    whole = model.expected_stats(params, x, resp, w)
    parts = tree_add(
        model.expected_stats(params, x[:100], resp[:100], w[:100]),
        model.expected_stats(params, x[100:], resp[100:], w[100:]),
    )
    assert tree_allclose(whole, parts, rtol=1e-12)
    full = latent_em.fit(model, x, params=params, tol=1e-10, max_iter=500)
    assert np.all(np.diff(full.history) >= -1e-9)
    chunked = latent_em.fit(model, x, params=params, tol=1e-10, max_iter=500, chunk_size=41)
    np.testing.assert_allclose(chunked.history, full.history, rtol=1e-12)
    assert tree_allclose(chunked.params, full.params, rtol=1e-9)
    counts = rng.integers(0, 4, size=x.shape[0])
    weighted = latent_em.fit(model, x, params=params, sample_weight=counts, tol=1e-10)
    repeated = latent_em.fit(model, np.repeat(x, counts, axis=0), params=params, tol=1e-10)
    assert weighted.log_likelihood == pytest.approx(repeated.log_likelihood, rel=1e-10)
    assert tree_allclose(weighted.params, repeated.params, rtol=1e-7)


def test_contract_suite():
    # the project's check_model laws (posterior, ELBO, additive statistics, M-step is a
    # maximizer, monotone, parameter count, constraints)
    check_model = latent_em.check_model
    x = np.random.default_rng(0).poisson(3.0, size=(200, 3))
    models = [
        PoissonMixtureModel(2),
        PoissonMixtureModel(2, gamma_prior=(2.0, 0.5), weight_concentration=2.0),
    ]
    for model in models:
        report = check_model(model, x)
        assert report.passed, str(report)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("x", "message"),
    [
        ([[1, 2], [3, -1]], r"non-negative counts.*column 1 holds -1 at row 1"),
        ([[1, 2.5], [3, 1]], r"integer counts.*column 1 holds 2.5 at row 0"),
        ([[1, 2], [np.nan, 1]], r"NaN.*column 0.*row 1"),
        ([[1, 2], [np.inf, 1]], r"infinite.*column 0.*row 1"),
        ([1, 2, 3], r"X must be 2-D"),
    ],
)
def test_bad_counts_are_errors(x, message):
    with pytest.raises(ValueError, match=message):
        PoissonMixture(2).fit(x)


@pytest.mark.parametrize(
    ("frequency", "message"),
    [
        (DAYS[:5], r"frequency must have shape \(10,\)"),
        (-DAYS, r"frequency must be non-negative"),
        (DAYS + 0.5, r"frequency must hold whole counts"),
        (np.r_[np.nan, DAYS[1:]], r"frequency contains NaN"),
    ],
)
def test_wrong_frequency_is_an_error(frequency, message):
    with pytest.raises(ValueError, match=message):
        PoissonMixture(2).fit(DEATHS, frequency=frequency)


def test_bad_options_are_errors():
    with pytest.raises(ValueError, match=r"gamma_prior"):
        PoissonMixture(2, gamma_prior=(0.5, 1.0)).fit(DEATHS)
    with pytest.raises(ValueError, match=r"weight_concentration"):
        PoissonMixtureModel(2, weight_concentration=0.5)
    with pytest.raises(ValueError, match=r"init_params"):
        PoissonMixture(2, init_params="kmeans").fit(DEATHS)
    with pytest.raises(ValueError, match=r"n_init"):
        PoissonMixture(2, n_init=0).fit(DEATHS)


# ----------------------------------------------------------------------------- docs


def test_docs_example_runs():
    page = Path(__file__).resolve().parents[1] / "docs" / "models" / "poisson.md"
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.S)
    assert blocks, "the docs page must hold an example"
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(page), "exec"), namespace)


def test_estimator_docstring_example_runs():
    import doctest

    import latent_em.estimators.poisson as module

    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0
