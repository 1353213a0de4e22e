"""check_model on good and deliberately broken models; the driver's first-iteration errors.

Every broken model breaks exactly one law; the test asserts that law fails, that its
message says what to fix, and that the other laws still pass where they can.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.special import logsumexp

import latent_em
from latent_em import ModelContractError, check_model
from latent_em.constraints import Positive, Simplex

from . import _exponential
from ._exponential import ExpParams, ExpStats


@dataclasses.dataclass(frozen=True)
class ExponentialMixture(_exponential.ExponentialMixture):
    """A correct closed-form model (the protocol docstring's example, with constraints)."""

    constraints = {"weights": Simplex(), "rates": Positive()}

    def n_parameters(self, params):
        return 3

    def initialize(self, x, rng):
        return ExpParams(np.array([0.4, 0.6]), 1.0 / np.quantile(x, [0.25, 0.75]))


class WrongPosterior(ExponentialMixture):
    """Tempered responsibilities: normalized, right log p(x), but not p(z | x)."""

    def posterior(self, params, x):
        table = np.stack([self.log_joint(params, x, np.full(len(x), k)) for k in (0, 1)], 1)
        lm = logsumexp(table, axis=1)
        tempered = 0.7 * table
        return np.exp(tempered - logsumexp(tempered, axis=1, keepdims=True)), lm


class WrongLogMarginal(ExponentialMixture):
    def posterior(self, params, x):
        table = np.stack([self.log_joint(params, x, np.full(len(x), k)) for k in (0, 1)], 1)
        lm = logsumexp(table, axis=1)
        return np.exp(table - lm[:, None]), lm + 0.1  # forgot a normalizing constant


class UnnormalizedPosterior(ExponentialMixture):
    def posterior(self, params, x):
        table = np.stack([self.log_joint(params, x, np.full(len(x), k)) for k in (0, 1)], 1)
        return np.exp(table), logsumexp(table, axis=1)


class OffMStep(ExponentialMixture):
    """The rate update is 5 % off."""

    def m_step(self, params, stats):
        new = super().m_step(params, stats)
        return new._replace(rates=1.05 * new.rates)


class NonAdditiveStats(ExponentialMixture):
    """Returns means instead of sums: not additive over chunks."""

    def expected_stats(self, params, x, posterior, weights):
        s = super().expected_stats(params, x, posterior, weights)
        return ExpStats(s.counts, s.sum_x / len(x))

    def m_step(self, params, stats):
        return ExpParams(stats.counts / stats.counts.sum(), stats.counts / stats.sum_x)


class WrongCount(ExponentialMixture):
    def n_parameters(self, params):
        return 4  # counts both weights although they sum to one


class PriorIgnoredByMStep(ExponentialMixture):
    """Has a log_prior but its closed-form m_step ignores it."""

    def log_prior(self, params):
        return float(np.sum(-5.0 * params.rates))  # exponential prior, rate 5


class ViolatesConstraint(ExponentialMixture):
    def initialize(self, x, rng):
        return ExpParams(np.array([0.5, 0.9]), np.array([1.0, 0.1]))  # weights sum to 1.4


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(11)
    return np.concatenate([rng.exponential(1.0, 150), rng.exponential(10.0, 150)])


def test_correct_model_passes_every_law(data):
    report = check_model(ExponentialMixture(), data)
    assert report.passed
    assert [r.law for r in report.results] == [
        "methods",
        "posterior",
        "log_marginal",
        "elbo",
        "additive_stats",
        "m_step_maximizer",
        "m_step_constraints",
        "monotone",
        "n_parameters",
        "constraints",
    ]
    assert all(r.status == "passed" for r in report.results)
    assert report["elbo"].value < 1e-9
    assert "elbo" in str(report)


def test_builtin_gaussian_mixture_passes(data, rng):
    from tests.conftest import make_blobs

    x = make_blobs(rng, n_per=60)
    for cov in ("full", "diag"):
        report = check_model(latent_em.GaussianMixtureModel(3, covariance_type=cov), x)
        assert report.passed, str(report)


@pytest.mark.parametrize(
    ("model", "law", "hints"),
    [
        (WrongPosterior(), "elbo", ["not the exact posterior", "KL"]),
        (WrongLogMarginal(), "log_marginal", ["log-sum-exp", "logsumexp(log_joint"]),
        (UnnormalizedPosterior(), "posterior", ["sum to one", "Normalize"]),
        (OffMStep(), "m_step_maximizer", ["not a maximizer", "'rates'"]),
        (NonAdditiveStats(), "additive_stats", ["not additive", "'sum_x'", "weighted sums"]),
        (WrongCount(), "n_parameters", ["returns 4", "3 free values", "weights: 1"]),
        (PriorIgnoredByMStep(), "m_step_maximizer", ["fold the prior into m_step"]),
        (ViolatesConstraint(), "constraints", ["'weights'", "Simplex()"]),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, (str, list)) else None,
)
def test_broken_model_is_caught_with_a_helpful_message(model, law, hints, data):
    report = check_model(model, data, raise_on_failure=False)
    assert not report.passed
    failed = report[law]
    assert failed.status == "failed", str(report)
    for hint in hints:
        assert hint in failed.message, failed.message
    with pytest.raises(ModelContractError, match=law):
        check_model(model, data)


def test_off_m_step_also_breaks_monotonicity_eventually(data):
    """An M-step that overshoots badly lowers the likelihood: the monotone law reports it."""

    class Overshoot(ExponentialMixture):
        def m_step(self, params, stats):
            new = super().m_step(params, stats)
            return new._replace(rates=3.0 * new.rates)

    start = ExpParams(np.array([0.5, 0.5]), np.array([1.0, 0.1]))
    report = check_model(Overshoot(), data, params=start, raise_on_failure=False)
    assert report["monotone"].status == "failed"
    assert "EM decreased the objective" in report["monotone"].message
    assert report["m_step_maximizer"].status == "failed"


def test_model_that_raises_inside_a_law_is_reported(data):
    class Raises(ExponentialMixture):
        def expected_stats(self, params, x, posterior, weights):
            raise IndexError("boom")

    report = check_model(Raises(), data, raise_on_failure=False)
    assert report["additive_stats"].status == "failed"
    assert "IndexError while this law was checked: boom" in report["additive_stats"].message
    assert report["n_parameters"].status == "passed"  # the other laws still ran


def test_sample_weight_is_used(data):
    weights = np.where(np.arange(len(data)) % 2 == 0, 2.0, 0.5)
    report = check_model(ExponentialMixture(), data, sample_weight=weights)
    assert report.passed
    with pytest.raises(ValueError, match="sample_weight must have shape"):
        check_model(ExponentialMixture(), data, sample_weight=weights[:-1])


def test_missing_methods_fail_the_methods_law(data):
    class NoLogJoint:
        def initialize(self, x, rng):
            return None

    report = check_model(NoLogJoint(), data, raise_on_failure=False)
    assert report["methods"].status == "failed"
    assert "log_joint" in report["methods"].message


def test_laws_are_skipped_with_a_reason_for_the_numerical_path(data):
    class Numerical:
        constraints = {"weights": Simplex(), "rates": Positive()}
        initialize = ExponentialMixture.initialize
        latent_support = ExponentialMixture.latent_support
        log_joint = ExponentialMixture.log_joint

    report = check_model(Numerical(), data, n_em_iter=2)
    assert report["additive_stats"].status == "skipped"
    assert report["m_step_maximizer"].status == "skipped"
    assert report["monotone"].status == "passed"


# ------------------------------------------------------------- driver: bad models fail early


class _Base(ExponentialMixture):
    pass


def _fit(model, data):
    return latent_em.fit(model, data, max_iter=3, warn_not_converged=False)


def test_log_joint_wrong_shape_named(data):
    class M(_Base):
        def log_joint(self, params, x, z):
            return super().log_joint(params, x, z)[:, None]

    with pytest.raises(ModelContractError, match=r"log_joint returned shape \(300, 1\)"):
        _fit(M(), data)


def test_nan_log_joint_names_row_and_support_point(data):
    class M(_Base):
        def log_joint(self, params, x, z):
            out = super().log_joint(params, x, z)
            out[7] = np.nan
            return out

    with pytest.raises(ModelContractError, match=r"log_joint returned nan at row 7 .*z = "):
        _fit(M(), data)


def test_posterior_not_a_tuple(data):
    class M(_Base):
        def posterior(self, params, x):
            return np.full((len(x), 2), 0.5)

    with pytest.raises(ModelContractError, match=r"posterior must return a tuple"):
        _fit(M(), data)


def test_unnormalized_posterior_rejected_by_driver(data):
    with pytest.raises(ModelContractError, match=r"sum to one; row \d+ sums to"):
        _fit(UnnormalizedPosterior(), data)


def test_posterior_wrong_log_marginal_shape(data):
    class M(_Base):
        def posterior(self, params, x):
            resp, lm = latent_em.posterior(ExponentialMixture(), params, x)
            return resp, lm[:-1]

    with pytest.raises(ModelContractError, match=r"must have shape \(300,\).*\(299,\)"):
        _fit(M(), data)


def test_m_step_wrong_shape_named(data):
    class M(_Base):
        def m_step(self, params, stats):
            new = super().m_step(params, stats)
            return new._replace(rates=new.rates[:1])

    with pytest.raises(ModelContractError, match=r"M-step returned parameters shaped"):
        _fit(M(), data)


def test_m_step_nan_named(data):
    class M(_Base):
        def m_step(self, params, stats):
            return super().m_step(params, stats)._replace(rates=np.array([np.nan, 1.0]))

    with pytest.raises(ModelContractError, match=r"M-step returned NaN"):
        _fit(M(), data)


def test_initialize_returning_none_named(data):
    class M(_Base):
        def initialize(self, x, rng):
            return None

    with pytest.raises(ModelContractError, match=r"initialize returned None"):
        _fit(M(), data)


def test_expected_stats_without_m_step_named(data):
    class M:
        initialize = ExponentialMixture.initialize
        latent_support = ExponentialMixture.latent_support
        log_joint = ExponentialMixture.log_joint
        expected_stats = ExponentialMixture.expected_stats

    with pytest.raises(ModelContractError, match=r"defines expected_stats but not m_step"):
        _fit(M(), data)
