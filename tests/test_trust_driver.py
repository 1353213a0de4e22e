"""Issue 12, the driver / validation / discrete-model half: every fit is right or fails
for the real reason.

Each test reproduces a defect seen on ``main`` before the fix (the number it gave then is
in the docstring) and checks the fix against something we did not write: closed forms,
published results, scipy, exact decimal arithmetic.
"""

from __future__ import annotations

import dataclasses
import math
from decimal import Decimal, getcontext
from typing import NamedTuple

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import poisson

import latent_em
from latent_em import ModelContractError, check_model
from latent_em.constraints import (
    Interval,
    Ordered,
    Positive,
    PositiveDefinite,
    Real,
    Simplex,
)
from latent_em.models import PoissonMixtureModel

from ._exponential import ExponentialMixture, ExponentialMixtureLogJoint


def two_poisson_clusters(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.poisson(3.0, (300, 2)), rng.poisson(12.0, (300, 2))])


class CountsAsWeights(PoissonMixtureModel):
    """The defect of the issue: an M-step that forgets to normalize the mixing weights."""

    def m_step(self, params, stats):
        return super().m_step(params, stats)._replace(weights=stats.counts)


# ------------------------------------------------------------ 1. M-step output vs constraints


def test_unnormalized_weights_from_m_step_are_refused_naming_field_and_value():
    """On main this fit 'converged' with a positive log-likelihood (the weights, summing to
    600, inflate every density); the correct model's log-likelihood is about -3113."""
    x = two_poisson_clusters()
    good = latent_em.fit(PoissonMixtureModel(2), x, random_state=0, warn_not_converged=False)
    assert good.log_likelihood < 0
    with pytest.raises(ModelContractError) as info:
        latent_em.fit(CountsAsWeights(2), x, random_state=0, warn_not_converged=False)
    message = str(info.value)
    assert "iteration 1" in message
    assert "'weights'" in message and "Simplex()" in message
    # the offending value: the weights sum to the number of rows
    total = float(re_number(message, r"they sum to ([0-9]+\.?[0-9]*)"))
    assert total == pytest.approx(len(x))


def re_number(text: str, pattern: str) -> str:
    import re

    match = re.search(pattern, text)
    assert match is not None, text
    return match.group(1)


def test_constraint_check_also_guards_squarem():
    x = two_poisson_clusters()
    with pytest.raises(ModelContractError, match=r"'weights' violates Simplex\(\)"):
        latent_em.fit(CountsAsWeights(2), x, random_state=0, accelerate="squarem")


def test_violation_after_the_first_iteration_is_caught():
    """A model that goes wrong at iteration 2 (the first check alone would miss it)."""

    @dataclasses.dataclass(frozen=True)
    class LateNegativeRate(PoissonMixtureModel):
        calls: list = dataclasses.field(default_factory=list, compare=False)

        def m_step(self, params, stats):
            self.calls.append(1)
            new = super().m_step(params, stats)
            return new._replace(rates=-new.rates) if len(self.calls) == 2 else new

    with pytest.raises(ModelContractError, match=r"iteration 2 .*'rates' violates Positive"):
        latent_em.fit(LateNegativeRate(2), two_poisson_clusters(), random_state=0)


def test_check_model_has_a_law_for_m_step_constraints():
    x = two_poisson_clusters()
    report = check_model(CountsAsWeights(2), x, raise_on_failure=False)
    law = report["m_step_constraints"]
    assert law.status == "failed"
    assert "'weights' violates Simplex()" in law.message
    assert check_model(PoissonMixtureModel(2), x)["m_step_constraints"].status == "passed"


@pytest.mark.parametrize(
    ("constraint", "good", "bad", "words"),
    [
        (
            Simplex(),
            np.array([[0.2, 0.8], [1.0, 0.0]]),
            np.array([[0.2, 0.8], [0.5, 0.6]]),
            "sum to 1.1",
        ),
        (Simplex(), np.array([0.5, 0.5]), np.array([1.5, -0.5]), ">= 0"),
        (Positive(), np.array([0.0, 2.0]), np.array([1.0, -2.0]), "-2.0 at index 1"),
        (Interval(0.0, 1.0), np.array([0.0, 1.0, 0.5]), np.array([0.5, 1.2]), "[0.0, 1.0]"),
        (
            PositiveDefinite(),
            np.eye(2)[None],
            np.array([[[1.0, 2.0], [2.0, 1.0]]]),
            "not positive definite",
        ),
        (PositiveDefinite(), np.eye(2), np.array([[1.0, 0.5], [0.0, 1.0]]), "not symmetric"),
        (Ordered(), np.array([0.0, 0.0, 3.0]), np.array([0.0, 2.0, 1.0]), "increase"),
    ],
    ids=lambda v: repr(v) if not isinstance(v, (np.ndarray, str)) else None,
)
def test_each_constraint_names_its_violation(constraint, good, bad, words):
    from latent_em.constraints import constraint_violation

    assert constraint.violation(good) is None
    assert words in constraint.violation(bad)
    # and through the parameter tree, naming the field
    assert constraint_violation({"f": good}, {"f": constraint}) is None
    assert constraint_violation({"f": bad}, {"f": constraint}).startswith("field 'f' violates")


def test_real_accepts_everything_and_tuple_fields_are_named_by_element():
    from latent_em.constraints import constraint_violation

    assert Real().violation(np.array([-1e300, 0.0])) is None
    probs = (np.array([[0.5, 0.5]]), np.array([[0.3, 0.3, 0.3]]))
    assert "field 'probs[1]'" in constraint_violation({"probs": probs}, {"probs": Simplex()})


# ------------------------------------------------------------ 2. log_joint vs own posterior


@dataclasses.dataclass(frozen=True)
class OwnPosterior(ExponentialMixture):
    """Computes its posterior itself and declares no latent_support."""

    latent_support = None  # type: ignore[assignment]

    def posterior(self, params, x):
        table = np.stack(
            [
                np.log(params.weights[k]) + np.log(params.rates[k]) - params.rates[k] * x
                for k in (0, 1)
            ],
            axis=1,
        )
        lm = logsumexp(table, axis=1)
        return np.exp(table - lm[:, None]), lm


class ConstantLogJoint(OwnPosterior):
    def log_joint(self, params, x, z):
        return np.zeros(len(x))


@pytest.fixture(scope="module")
def exp_data():
    rng = np.random.default_rng(11)
    return np.concatenate([rng.exponential(1.0, 150), rng.exponential(10.0, 150)])


def test_constant_log_joint_beside_own_posterior_fails(exp_data):
    """On main check_model passed this model: log_joint was never called."""
    report = check_model(ConstantLogJoint(), exp_data, raise_on_failure=False)
    assert report["log_marginal"].status == "failed"
    assert "posterior's columns" in report["log_marginal"].message
    assert report["elbo"].status == "failed"


def test_correct_log_joint_beside_own_posterior_passes(exp_data):
    report = check_model(OwnPosterior(), exp_data)
    assert report["log_marginal"].status == "passed"
    assert report["elbo"].status == "passed"
    assert report["elbo"].value < 1e-9


def test_log_joint_that_cannot_take_column_indices_is_skipped_with_reason(exp_data):
    class OneHotZ(OwnPosterior):
        def log_joint(self, params, x, z):
            if np.ndim(z) != 2:
                raise ValueError("z must be one-hot")
            return np.zeros(len(x))

    report = check_model(OneHotZ(), exp_data, raise_on_failure=False)
    assert report["log_marginal"].status == "skipped"
    assert "declare latent_support()" in report["log_marginal"].message


# ------------------------------------------------------------ DLR linkage (items 3 and 4)


class LinkageParams(NamedTuple):
    theta: np.ndarray  # shape (1,)


@dataclasses.dataclass(frozen=True)
class Linkage:
    """Dempster, Laird & Rubin (1977), section 1: 197 animals in four cells with
    probabilities (1/2 + θ/4, (1-θ)/4, (1-θ)/4, θ/4); z splits the first cell into its
    1/2 and θ/4 parts. Only log_joint is given: the driver's numerical M-step."""

    constraints = {"theta": Interval(0.0, 1.0)}

    def initialize(self, x, rng):
        return LinkageParams(np.array([0.5]))

    def latent_support(self):
        return np.arange(2)

    def log_joint(self, params, x, z):
        t = params.theta[0]
        cell = np.asarray(x, dtype=int).reshape(-1)
        z = np.asarray(z).reshape(-1)
        first = np.log(np.where(z == 0, 0.5, t / 4.0))
        other = np.log(np.where(cell == 3, t / 4.0, (1.0 - t) / 4.0))
        return np.where(cell == 0, first, np.where(z == 0, other, -np.inf))


LINK_X = np.arange(4.0)
LINK_W = np.array([125.0, 18.0, 20.0, 34.0])
#: the MLE: the root in (0, 1) of 197 θ² - 15 θ - 68 = 0 (DLR 1977: θ̂ = 0.6268215)
THETA_HAT = (15.0 + math.sqrt(15.0**2 + 4.0 * 197.0 * 68.0)) / (2.0 * 197.0)


def closed_form_em(n_iter: int) -> float:
    """DLR's own EM iteration θ ← (x₂ + 34) / (x₂ + 72), x₂ = 125 (θ/4) / (1/2 + θ/4)."""
    t = 0.5
    for _ in range(n_iter):
        x2 = 125.0 * (t / 4.0) / (0.5 + t / 4.0)
        t = (x2 + 34.0) / (x2 + 72.0)
    return t


def fit_linkage(**kw):
    return latent_em.fit(Linkage(), LINK_X, sample_weight=LINK_W, **kw)


def test_standard_errors_refuse_a_weighted_fit_without_its_weights():
    """On main: 0.273 (every cell counted once) instead of 0.0515."""
    result = fit_linkage(tol=1e-12)
    with pytest.raises(ValueError, match=r"sample_weight: the fit's total weight .*= 197\)"):
        latent_em.standard_errors(result, LINK_X)
    with pytest.raises(ValueError, match=r"these weights sum to 4, but .* 197"):
        latent_em.standard_errors(result, LINK_X, sample_weight=np.ones(4))
    with pytest.raises(ValueError, match=r"bootstrap resamples rows with equal weights"):
        latent_em.bootstrap(result, LINK_X, n_boot=2)
    # with the fit's weights: 1 / sqrt(observed information) of
    # log L = 125 log(2 + θ) + 38 log(1 - θ) + 34 log θ, at θ̂ (DLR 1977; Louis 1982: 0.0515)
    t = THETA_HAT
    info = 125.0 / (2.0 + t) ** 2 + 38.0 / (1.0 - t) ** 2 + 34.0 / t**2
    se = latent_em.standard_errors(result, LINK_X, sample_weight=LINK_W).se.theta[0]
    assert se == pytest.approx(1.0 / math.sqrt(info), rel=1e-4)
    assert round(se, 4) == 0.0515


def test_numerical_m_step_follows_a_tiny_tol():
    """On main the numerical M-step stalled 2.1e-9 from θ̂ however long EM ran (its
    gradient tolerance 1e-9 ended every M-step at its start), and at tol=1e-14 it gave
    0.6268214827 (1.5e-8 from θ̂) where DLR's closed-form EM is 1.8e-9 away."""
    with pytest.warns(latent_em.ConvergenceWarning):
        long = fit_linkage(tol=0.0, max_iter=60)
    assert abs(long.params.theta[0] - THETA_HAT) < 1e-10
    tight = fit_linkage(tol=1e-14)
    # the same iterates as the closed-form EM (up to the optimizer's accuracy) ...
    assert abs(tight.params.theta[0] - closed_form_em(tight.n_iter)) < 5e-10
    # ... so as close to θ̂ as EM itself gets by the tol rule
    assert abs(tight.params.theta[0] - THETA_HAT) < 5e-9


def test_optimizer_tolerances_follow_tol():
    from latent_em.numerical_mstep import optimizer_tolerances

    assert optimizer_tolerances(None) == {"ftol": 1e-13, "gtol": 1e-9}
    assert optimizer_tolerances(1e-6) == {"ftol": 1e-13, "gtol": 1e-9}
    tiny = optimizer_tolerances(1e-12)
    assert tiny["gtol"] == 1e-12 and tiny["ftol"] == np.finfo(float).eps
    assert optimizer_tolerances(0.0)["gtol"] == 1e-13


# ------------------------------------------------------------ 5. Poisson log-probabilities


def decimal_poisson_logpmf(x: float, rate: float) -> float:
    """``x log λ - λ - log x!`` in 60-digit decimal arithmetic, ``log x!`` by Stirling's
    series to x⁻⁵ (error below 1e-40 for x >= 1e5)."""
    getcontext().prec = 60
    k, lam = Decimal(x), Decimal(rate)
    pi = Decimal("3.14159265358979323846264338327950288419716939937510582097494")
    log_fact = (
        k * k.ln() - k + (2 * pi * k).ln() / 2 + 1 / (12 * k) - 1 / (360 * k**3) + 1 / (1260 * k**5)
    )
    return float(k * lam.ln() - lam - log_fact)


def test_poisson_log_pmf_matches_scipy_at_ordinary_counts():
    from latent_em.models.poisson_mixture import poisson_log_pmf

    counts = np.arange(0.0, 400.0)
    rates = np.array([0.0, 1e-3, 0.7, 7.0, 150.0, 1e4])
    ours = poisson_log_pmf(counts[:, None], rates[None, :])
    ref = poisson.logpmf(counts[:, None], rates[None, :])
    finite = np.isfinite(ref)
    np.testing.assert_array_equal(np.isfinite(ours), finite)
    np.testing.assert_allclose(ours[finite], ref[finite], rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize("count", [1e5, 1e6, 1e10, 1e15, 1e16, 1e17, 1e20])
def test_poisson_log_pmf_is_stable_at_huge_counts(count):
    """On main: 2.2 nats off at 1e15 and exactly 0 from 1e16 (true -19.34 there); scipy's
    poisson.logpmf has the same cancellation (-16.0 and 0.0), so the reference is exact
    decimal arithmetic."""
    from latent_em.models.poisson_mixture import poisson_log_pmf

    for rate in (count, count * 0.5, count + 3.0 * math.sqrt(count), 1.0):
        ours = float(poisson_log_pmf(np.array(count), np.array(rate)))
        ref = decimal_poisson_logpmf(count, rate)
        # beyond round-off of the input rate: d log p / dλ = x/λ - 1 amplifies it
        slack = 4e-16 * abs(count / rate - 1.0) * rate
        assert abs(ours - ref) <= 1e-9 * max(1.0, abs(ref)) + slack, (count, rate, ours, ref)


def test_poisson_mixture_log_likelihood_at_huge_counts():
    model = PoissonMixtureModel(1)
    params = model.initialize(np.array([[1e16]]), np.random.default_rng(0))
    params = params._replace(rates=np.array([[1e16]]))
    _, lm = latent_em.posterior(model, params, np.array([[1e16], [0.0]]))
    assert lm[0] == pytest.approx(decimal_poisson_logpmf(1e16, 1e16), abs=1e-9)
    assert lm[0] == pytest.approx(-19.3396192772, abs=1e-9)
    assert lm[1] == -1e16  # a zero count: log p = -λ


# ------------------------------------------------------------ 6. copy-on-write memory maps


@pytest.mark.parametrize("how", ["np.load", "np.memmap"])
def test_copy_on_write_memmap_fits_the_array_not_the_file(tmp_path, how):
    """On main the fit read the file on disk, ignoring the changes made in the map."""
    counts = np.random.default_rng(3).poisson(4.0, size=(200, 3)).astype(float)
    path = tmp_path / "counts.npy"
    np.save(path, counts)
    if how == "np.load":
        x = np.load(path, mmap_mode="c")
    else:
        x = np.memmap(path, dtype=float, mode="c", shape=counts.shape, offset=128)
        np.testing.assert_array_equal(x, counts)
    x[:, 0] += 100.0  # private to this map: the file keeps the original counts
    assert float(np.load(path)[:, 0].mean()) < 10
    result = latent_em.fit(PoissonMixtureModel(1), x, random_state=0)
    # one component: the rates are the column means of the data passed
    np.testing.assert_allclose(result.params.rates[0], np.asarray(x).mean(axis=0), rtol=1e-12)


def test_read_only_memmap_still_read_from_its_file(tmp_path):
    counts = np.random.default_rng(4).poisson(4.0, size=(100, 2)).astype(float)
    path = tmp_path / "c.npy"
    np.save(path, counts)
    result = latent_em.fit(PoissonMixtureModel(1), np.load(path, mmap_mode="r"))
    np.testing.assert_allclose(result.params.rates[0], counts.mean(axis=0), rtol=1e-12)


# ------------------------------------------------------------ 7. inputs refused clearly


@pytest.fixture(scope="module")
def counts():
    return two_poisson_clusters()


@pytest.fixture(scope="module")
def start(counts):
    return PoissonMixtureModel(2).initialize(counts, np.random.default_rng(0))


def test_initial_weights_summing_to_three_are_refused(counts, start):
    """On main: a MonotonicityError blaming the M-step."""
    bad = start._replace(weights=np.array([1.5, 1.5]))
    with pytest.raises(ValueError, match=r"^params: .*'weights' violates Simplex\(\).*sum to 3"):
        latent_em.fit(PoissonMixtureModel(2), counts, params=bad)


def test_initial_params_of_the_wrong_shape_are_refused(counts, start):
    """On main: a raw numpy broadcasting error."""
    bad = start._replace(rates=start.rates[:, :1])
    with pytest.raises(
        ValueError, match=r"params: field 'rates' has shape \(2, 1\), but .* needs shape \(2, 2\)"
    ):
        latent_em.fit(PoissonMixtureModel(2), counts, params=bad)


def test_initial_params_as_a_plain_tuple_are_refused(counts, start):
    """On main: AttributeError."""
    expected = r"params: .*PoissonMixtureParams \(fields weights, rates\)"
    with pytest.raises(TypeError, match=expected):
        latent_em.fit(PoissonMixtureModel(2), counts, params=tuple(start))


def test_initial_params_with_nan_name_the_field(counts, start):
    bad = start._replace(rates=np.full_like(start.rates, np.nan))
    with pytest.raises(ValueError, match=r"params: .*NaN.*field 'rates'"):
        latent_em.fit(PoissonMixtureModel(2), counts, params=bad)


def test_a_models_own_validate_params_hook_is_used(exp_data):
    seen = []

    class Hooked(ExponentialMixture):
        def validate_params(self, params, x):
            seen.append(len(x))
            if params.rates.shape != (2,):
                raise ValueError("params: rates must have shape (2,)")

    good = ExponentialMixture().initialize(exp_data, None)
    latent_em.fit(Hooked(), exp_data, params=good, max_iter=2, warn_not_converged=False)
    assert seen == [len(exp_data)]
    with pytest.raises(ValueError, match=r"rates must have shape \(2,\)"):
        latent_em.fit(Hooked(), exp_data, params=good._replace(rates=np.ones(3)))


def test_initialize_outside_constraints_is_a_contract_error(exp_data):
    from latent_em.constraints import Simplex as S

    class BadInit(ExponentialMixtureLogJoint):
        constraints = {"weights": S(), "rates": Positive()}

        def initialize(self, x, rng):
            return super().initialize(x, rng)._replace(weights=np.array([0.5, 0.9]))

    with pytest.raises(ModelContractError, match=r"initialize returned parameters outside"):
        latent_em.fit(BadInit(), exp_data)


@pytest.mark.parametrize(
    ("option", "error", "message"),
    [
        ({"monotone_rtol": float("nan")}, ValueError, "monotone_rtol must be a finite number >= 0"),
        ({"monotone_rtol": "1e-3"}, TypeError, "monotone_rtol must be a number; got '1e-3'"),
        ({"monotone_rtol": -1e-3}, ValueError, "monotone_rtol must be a finite number >= 0"),
        ({"max_iter": True}, TypeError, "max_iter must be an integer; got True"),
        ({"n_init": True}, TypeError, "n_init must be an integer; got True"),
        ({"chunk_size": True}, TypeError, "chunk_size must be an integer; got True"),
        ({"tol": "0.1"}, TypeError, "tol must be a number; got '0.1'"),
        ({"tol": True}, TypeError, "tol must be a number; got True"),
    ],
)
def test_driver_options_refused(option, error, message, counts):
    """On main: monotone_rtol=NaN switched the check off, max_iter=True ran 1 iteration."""
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        latent_em.fit(PoissonMixtureModel(2), counts, **option)


@pytest.mark.parametrize("k", [3, 5])
def test_fitted_estimator_predicts_fewer_rows_than_components(k):
    """On main: 'X has 2 row(s) but at least 3 are needed' from a fitted GaussianMixture."""
    x = np.random.default_rng(0).normal(size=(60, 2))
    for est in (
        latent_em.GaussianMixture(k, random_state=0),
        latent_em.PoissonMixture(k, random_state=0),
    ):
        data = x if isinstance(est, latent_em.GaussianMixture) else np.abs(np.round(3 * x))
        est.fit(data)
        np.testing.assert_array_equal(est.predict(data[:2]), est.predict(data)[:2])
        assert est.score_samples(data[:1]).shape == (1,)


def test_categorical_mixture_refuses_empty_data_frames():
    """On main: IndexError for a DataFrame with 0 rows or 0 columns."""
    pd = pytest.importorskip("pandas")
    est = latent_em.CategoricalMixture(2, random_state=0)
    with pytest.raises(ValueError, match="X is empty: it has 0 rows"):
        est.fit(pd.DataFrame({"a": pd.Series([], dtype=int)}))
    with pytest.raises(ValueError, match="X has 0 columns"):
        est.fit(pd.DataFrame(index=range(5)))


def test_failed_categorical_refit_keeps_the_fitted_estimator():
    """On main a refit that failed after learning the new categories left the estimator
    unable to predict its own training data."""
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, size=(40, 3))
    est = latent_em.CategoricalMixture(2, random_state=0).fit(x)
    before = est.predict(x)
    with pytest.raises(ValueError, match="sample_weight must have shape"):
        est.fit(x[:, :2] + 10, sample_weight=np.ones(3))
    np.testing.assert_array_equal(est.predict(x), before)
    # and with column names: the names stay those of the successful fit
    frame = pd.DataFrame(x, columns=["a", "b", "c"])
    est.fit(frame)
    with pytest.raises(ValueError):
        est.fit(pd.DataFrame(x[:, :2] + 10, columns=["p", "q"]), sample_weight=np.ones(3))
    assert list(est.feature_names_in_) == ["a", "b", "c"]
    # a plain array for an estimator fitted on named columns warns, as in scikit-learn
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        unnamed = est.predict(x)
    np.testing.assert_array_equal(est.predict(frame), unnamed)


@pytest.mark.parametrize("init", ["random", "random_from_data"])
def test_poisson_start_is_inside_the_gamma_prior_support(init):
    """Found by the property run: a column of zeros gave zero starting rates, where a
    Gamma(2, 1) prior has zero density, so the first objective was -inf."""
    x = np.column_stack([np.zeros(8), np.arange(8.0)])
    model = PoissonMixtureModel(2, init_params=init, gamma_prior=(2.0, 1.0))
    result = latent_em.fit(model, x, random_state=0)
    assert np.all(np.isfinite(result.history))
    assert np.all(np.diff(result.history) >= -1e-9)


def test_booleans_are_not_integers_anywhere_in_the_driver(counts, exp_data):
    with pytest.raises(TypeError, match="random_state must be None, an int or a numpy Generator"):
        latent_em.fit(PoissonMixtureModel(2), counts, random_state=True)
    with pytest.raises(TypeError, match="n_em_iter must be an integer; got True"):
        check_model(ExponentialMixture(), exp_data, n_em_iter=True)
    with pytest.raises(TypeError, match="n_perturbations must be an integer; got 2.5"):
        check_model(ExponentialMixture(), exp_data, n_perturbations=2.5)
    with pytest.raises(ValueError, match="rtol must be a finite number > 0; got nan"):
        check_model(ExponentialMixture(), exp_data, rtol=float("nan"))


def test_categorical_params_are_checked_item_by_item():
    from latent_em.models import CategoricalMixtureModel

    x = np.random.default_rng(0).integers(0, 2, size=(30, 2))
    x[0, 1] = 2  # item 1 has three categories
    model = CategoricalMixtureModel(2)
    good = model.initialize(x, np.random.default_rng(0))
    latent_em.fit(model, x, params=good, max_iter=2, warn_not_converged=False)
    narrow = good._replace(probs=(good.probs[0], good.probs[1][:, :2] / 1.0))
    with pytest.raises(ValueError, match=r"'probs\[1\]' has shape \(2, 2\), .* \(2, 3\)"):
        latent_em.fit(model, x, params=narrow)
    with pytest.raises(ValueError, match=r"'probs' must hold 2 arrays, one per item; got 1"):
        latent_em.fit(model, x, params=good._replace(probs=good.probs[:1]))
    unnormalized = good._replace(probs=(good.probs[0], 2.0 * good.probs[1]))
    with pytest.raises(ValueError, match=r"'probs\[1\]' violates Simplex\(\)"):
        latent_em.fit(model, x, params=unnormalized)


def test_builtin_models_check_given_params_without_initializing(counts, start):
    class NoInit(PoissonMixtureModel):
        def initialize(self, x, rng):
            raise AssertionError("initialize must not run when params are given")

    result = latent_em.fit(NoInit(2), counts, params=start, max_iter=3, warn_not_converged=False)
    assert result.n_iter == 3


def test_custom_model_params_are_compared_with_what_initialize_returns(exp_data):
    good = ExponentialMixture().initialize(exp_data, None)
    with pytest.raises(
        ValueError,
        match=r"params: field 'rates' has shape \(3,\), but ExponentialMixture with these data "
        r"needs shape \(2,\)",
    ):
        latent_em.fit(ExponentialMixture(), exp_data, params=good._replace(rates=np.ones(3)))


def test_standard_errors_of_an_estimator_fitted_with_frequencies():
    """The estimator path: a table of response patterns with their counts."""
    patterns = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    freq = np.array([40, 10, 12, 38])
    est = latent_em.BernoulliMixture(1, random_state=0).fit(patterns, frequency=freq)
    with pytest.raises(ValueError, match=r"n_observations = 100\) is not the 4 rows"):
        latent_em.standard_errors(est, patterns)
    se = latent_em.standard_errors(est, patterns, sample_weight=freq.astype(float))
    # one class: the binomial standard error sqrt(p (1 - p) / n) of each column's mean
    p = (freq[:, None] * patterns).sum(axis=0) / freq.sum()
    np.testing.assert_allclose(se.se.probs[0], np.sqrt(p * (1 - p) / 100), rtol=1e-4)
