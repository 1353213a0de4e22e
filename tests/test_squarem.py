"""SQUAREM (Varadhan & Roland 2008): same optimum as EM, monotone, fewer evaluations.

Oracles: plain EM from the same start (the fixed point SQUAREM must reach), a direct
maximization of the observed log-likelihood with scipy (numerical-M-step model), an
independent count of E-steps (a subclass that counts ``posterior`` calls).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import gammaln, logsumexp

import latent_em
from latent_em.acceleration import Squarem
from latent_em.constraints import Positive, Simplex
from latent_em.exceptions import ModelContractError


def _monotone(history: np.ndarray) -> bool:
    return bool(np.all(np.diff(history) >= -1e-10 * np.abs(history[:-1])))


class CountingGMM(latent_em.GaussianMixtureModel):
    """Counts E-step passes independently of the driver.

    The driver runs the Gaussian mixture's fused E-step (``e_step``) once per pass over
    the data; on the first pass it also checks ``e_step`` against ``posterior`` +
    ``expected_stats`` once (the faithful data fit in one chunk), so ``e_step`` is called
    exactly once per pass.
    """

    calls = [0]

    def e_step(self, params, x, weights):  # type: ignore[override]
        type(self).calls[0] += 1
        return super().e_step(params, x, weights)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_same_optimum_monotone_and_fewer_evaluations(faithful, covariance_type):
    model = latent_em.GaussianMixtureModel(3, covariance_type=covariance_type)
    start = model.initialize(faithful, np.random.default_rng(1))
    em = latent_em.fit(model, faithful, params=start, tol=1e-11, max_iter=5000)
    sq = latent_em.fit(model, faithful, params=start, tol=1e-11, accelerate="squarem")
    assert em.converged and sq.converged
    assert sq.log_likelihood == pytest.approx(em.log_likelihood, rel=1e-9)
    np.testing.assert_allclose(sq.params.means, em.params.means, rtol=1e-4, atol=1e-4)
    # plain EM creeps along a flat ridge: agreement to a small fraction of the SEs (~0.03)
    np.testing.assert_allclose(sq.params.weights, em.params.weights, atol=1e-4)
    assert _monotone(sq.history)
    assert sq.history[-1] == pytest.approx(sq.log_likelihood, abs=0)
    assert sq.n_evaluations < em.n_evaluations
    # iterations are SQUAREM cycles of at least two E-step passes (but the last)
    assert 2 * sq.n_iter - 1 <= sq.n_evaluations - 1


def test_n_evaluations_counts_every_e_step(faithful):
    model = CountingGMM(2, covariance_type="full")
    for accelerate in (None, "squarem"):
        CountingGMM.calls[0] = 0
        result = latent_em.fit(model, faithful, random_state=0, tol=1e-9, accelerate=accelerate)
        assert result.n_evaluations == CountingGMM.calls[0]


@pytest.mark.parametrize("space", ["natural", "unconstrained"])
@pytest.mark.parametrize("method", [1, 2, 3])
def test_all_step_length_rules_reach_the_optimum(faithful, method, space):
    model = latent_em.GaussianMixtureModel(2, covariance_type="full")
    start = model.initialize(faithful, np.random.default_rng(0))
    em = latent_em.fit(model, faithful, params=start, tol=1e-11, max_iter=5000)
    options = Squarem(method=method, space=space)
    sq = latent_em.fit(model, faithful, params=start, tol=1e-11, accelerate=options)
    assert sq.converged
    assert sq.log_likelihood == pytest.approx(em.log_likelihood, rel=1e-9)
    assert _monotone(sq.history)


def test_bad_extrapolations_fall_back_to_em(faithful):
    # step_min0 = 50 forces huge steps that overshoot; the safeguard must reject them
    # and the reported objective must still never decrease
    model = latent_em.GaussianMixtureModel(3, covariance_type="diag")
    start = model.initialize(faithful, np.random.default_rng(3))
    em = latent_em.fit(model, faithful, params=start, tol=1e-10, max_iter=5000)
    wild = Squarem(step_min0=50.0, step_max0=50.0)
    sq = latent_em.fit(model, faithful, params=start, tol=1e-10, accelerate=wild, max_iter=5000)
    assert sq.converged
    assert _monotone(sq.history)
    assert sq.log_likelihood == pytest.approx(em.log_likelihood, rel=1e-8)


def test_chunked_equals_unchunked(faithful):
    model = latent_em.GaussianMixtureModel(2)
    one = latent_em.fit(model, faithful, random_state=0, accelerate="squarem", tol=1e-10)
    chunked = latent_em.fit(
        model, faithful, random_state=0, accelerate="squarem", tol=1e-10, chunk_size=50
    )
    assert chunked.log_likelihood == pytest.approx(one.log_likelihood, rel=1e-12)
    assert chunked.n_evaluations == one.n_evaluations


def test_estimator_passes_accelerate_through(faithful):
    from sklearn.mixture import GaussianMixture as SkGaussianMixture

    ours = latent_em.GaussianMixture(2, tol=1e-10, random_state=0, accelerate="squarem")
    ours.fit(faithful)
    sk = SkGaussianMixture(2, tol=1e-8, max_iter=2000, random_state=0).fit(faithful)
    # scikit-learn's score is the mean log-likelihood; both find the global optimum
    assert ours.score(faithful) == pytest.approx(sk.score(faithful), rel=1e-7)
    assert ours.result_.n_evaluations > ours.n_iter_


# --------------------------------------------------------------- Hasselblad (1969)


class PoissonStats(NamedTuple):
    counts: np.ndarray  # Σ_n w_n r_nk
    sum_x: np.ndarray  # Σ_n w_n r_nk x_n


class PoissonMixtureClosedForm:
    """Two-component Poisson mixture with the closed-form M-step."""

    @property
    def constraints(self):
        return {"weights": Simplex(), "rates": Positive()}

    def initialize(self, x, rng):
        return PoissonParams(np.array([0.5, 0.5]), np.array([1.0, 4.0]))

    def latent_support(self):
        return np.arange(2)

    def log_joint(self, params, x, z):
        rate = params.rates[z]
        return np.log(params.weights[z]) + x * np.log(rate) - rate - gammaln(x + 1)

    def expected_stats(self, params, x, posterior, weights):
        r = posterior * weights[:, None]
        return PoissonStats(r.sum(0), r.T @ x)

    def m_step(self, params, stats):
        return PoissonParams(stats.counts / stats.counts.sum(), stats.sum_x / stats.counts)


def test_hasselblad_poisson_mixture_matches_the_squarem_package():
    # Deaths per day of women over 80 (London Times 1910-1912), Hasselblad (1969, JASA);
    # the R package SQUAREM's tests/Hasselblad1969.R checks its fixed point against
    # good = (0.6401146029910, 2.6634043566619, 1.2560951012662) to 1e-5.
    deaths = np.arange(10, dtype=float)
    freq = np.array([162, 267, 271, 185, 111, 61, 27, 8, 3, 1], dtype=float)
    model = PoissonMixtureClosedForm()
    # plain EM crawls along a ridge: it needs a tiny tol to get within 1e-5
    em = latent_em.fit(model, deaths, sample_weight=freq, tol=1e-15, max_iter=100000)
    sq = latent_em.fit(model, deaths, sample_weight=freq, tol=1e-12, accelerate="squarem")
    for result in (em, sq):
        hi = int(np.argmax(result.params.rates))
        got = [result.params.weights[hi], result.params.rates[hi], result.params.rates[1 - hi]]
        np.testing.assert_allclose(
            got, [0.6401146029910, 2.6634043566619, 1.2560951012662], atol=1e-5
        )
    assert _monotone(sq.history)
    # EM needs thousands of E-steps here; SQUAREM an order of magnitude fewer
    assert em.n_evaluations > 10 * sq.n_evaluations, (em.n_evaluations, sq.n_evaluations)


# --------------------------------------------------------------- numerical M-step path


class PoissonParams(NamedTuple):
    weights: np.ndarray
    rates: np.ndarray


class PoissonMixtureLogJointOnly:
    """Only log_joint, latent_support and constraints: the generic numerical M-step."""

    n_components = 2

    @property
    def constraints(self):
        return {"weights": Simplex(), "rates": Positive()}

    def initialize(self, x, rng):
        return PoissonParams(np.array([0.5, 0.5]), np.quantile(x, [0.25, 0.75]) + 0.5)

    def latent_support(self):
        return np.arange(2)

    def log_joint(self, params, x, z):
        rate = params.rates[z]
        return np.log(params.weights[z]) + x * np.log(rate) - rate - gammaln(x + 1)


def _poisson_data() -> np.ndarray:
    rng = np.random.default_rng(7)
    return np.concatenate([rng.poisson(2.0, 200), rng.poisson(7.0, 150)]).astype(float)


def test_numerical_m_step_path_same_optimum_as_direct_maximization():
    x = _poisson_data()
    model = PoissonMixtureLogJointOnly()
    em = latent_em.fit(model, x, random_state=0, tol=1e-10, max_iter=3000)
    sq = latent_em.fit(model, x, random_state=0, tol=1e-10, accelerate="squarem")
    assert sq.converged and _monotone(sq.history)
    assert sq.n_evaluations < em.n_evaluations

    # oracle: maximize the observed log-likelihood directly (no EM involved)
    def negll(u):
        w1 = 1.0 / (1.0 + np.exp(-u[0]))
        rates = np.exp(u[1:])
        table = np.stack(
            [
                np.log([w1, 1 - w1])[j] + x * np.log(rates[j]) - rates[j] - gammaln(x + 1)
                for j in range(2)
            ],
            axis=1,
        )
        return -logsumexp(table, axis=1).sum()

    best = minimize(
        negll,
        np.array([0.0, np.log(2.5), np.log(6.5)]),
        method="Nelder-Mead",
        options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000},
    )
    assert sq.log_likelihood == pytest.approx(-best.fun, abs=1e-5)
    assert sq.log_likelihood >= em.log_likelihood - 1e-6


# --------------------------------------------------------------- repairs and errors


class PerturbedOnceGMM(latent_em.GaussianMixtureModel):
    """Its repair moves the parameters once (a new object) and reports it."""

    repairs = [0]

    def repair(self, params, stats, rng):  # type: ignore[override]
        out, messages = super().repair(params, stats, rng)
        type(self).repairs[0] += 1
        if type(self).repairs[0] == 3:
            out = out._replace(means=out.means + 0.05)
            messages = (*messages, "test: means nudged")
        return out, messages


def test_repairs_still_apply_under_squarem(faithful):
    model = PerturbedOnceGMM(2)
    PerturbedOnceGMM.repairs[0] = 0
    sq = latent_em.fit(model, faithful, random_state=0, tol=1e-10, accelerate="squarem")
    assert any(ev.message == "test: means nudged" for ev in sq.events)
    plain = latent_em.fit(latent_em.GaussianMixtureModel(2), faithful, random_state=0, tol=1e-10)
    assert sq.converged
    assert sq.log_likelihood == pytest.approx(plain.log_likelihood, rel=1e-9)


def test_bad_options_are_rejected(faithful):
    model = latent_em.GaussianMixtureModel(2)
    with pytest.raises(ValueError, match="accelerate"):
        latent_em.fit(model, faithful, accelerate="anderson")
    with pytest.raises(ValueError, match="method"):
        Squarem(method=4)
    with pytest.raises(ValueError, match="mstep"):
        Squarem(mstep=1.0)
    with pytest.raises(ValueError, match="step_min0"):
        Squarem(step_min0=5.0, step_max0=2.0)
    with pytest.raises(ValueError, match="space"):
        Squarem(space="log")


def test_natural_space_rejects_points_outside_the_constraints():
    from latent_em.acceleration import _from_natural_vector, _natural_vector

    model = latent_em.GaussianMixtureModel(2)
    params = model.make_params([0.3, 0.7], [[0.0, 0.0], [1.0, 1.0]], [np.eye(2), 2 * np.eye(2)])
    vec = _natural_vector(params, model.constraints)
    assert vec.size == 2 + 4 + 8
    back = _from_natural_vector(vec, params, model.constraints)
    np.testing.assert_array_equal(back.covariances, params.covariances)
    negative_weight = vec.copy()
    negative_weight[:2] = [-0.1, 1.1]
    assert _from_natural_vector(negative_weight, params, model.constraints) is None
    not_pd = vec.copy()
    not_pd[6:10] = [1.0, 2.0, 2.0, 1.0]  # eigenvalues 3 and -1
    assert _from_natural_vector(not_pd, params, model.constraints) is None


def test_model_without_constraints_is_rejected():
    from latent_em.protocols import __doc__ as _  # noqa: F401  (the doctest model lives there)

    class NoConstraints:
        def initialize(self, x, rng):
            return PoissonParams(np.array([0.5, 0.5]), np.array([2.0, 5.0]))

        def latent_support(self):
            return np.arange(2)

        def log_joint(self, params, x, z):
            return PoissonMixtureLogJointOnly().log_joint(params, x, z)

        def expected_stats(self, params, x, posterior, weights):
            r = posterior * weights[:, None]
            return (r.sum(0), r.T @ x)

        def m_step(self, params, stats):
            return PoissonParams(stats[0] / stats[0].sum(), stats[1] / stats[0])

    with pytest.raises(ModelContractError, match="constraints"):
        latent_em.fit(NoConstraints(), _poisson_data(), accelerate="squarem")


# --------------------------------------------------------------- every model: the gallery


def _gallery_cases():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
    import factor_analysis
    import gamma_mixture
    import hidden_markov
    import mixture_of_regressions

    from latent_em.models.ppca import PPCAModel

    rng = np.random.default_rng(11)
    fa = factor_analysis.FactorAnalysis(2)
    gm = gamma_mixture.GammaMixture(2)
    hmm = hidden_markov.CategoricalHMM(2, 3)
    reg = mixture_of_regressions.MixtureOfRegressions(2)
    ppca = PPCAModel(2)
    return {
        "factor_analysis": (fa, fa.sample(factor_analysis.TRUE_PARAMS, 300, rng)[0]),
        "gamma_mixture (numerical M-step)": (
            gm,
            gm.sample(gamma_mixture.TRUE_PARAMS, 120, rng)[0],  # slow M-step: keep it small
        ),
        "hidden_markov": (hmm, hmm.sample(hidden_markov.TRUE_PARAMS, 60, rng, length=15)[0]),
        "mixture_of_regressions": (
            reg,
            reg.sample(mixture_of_regressions.TRUE_PARAMS, 300, rng)[0],
        ),
        "ppca": (ppca, fa.sample(factor_analysis.TRUE_PARAMS, 300, rng)[0]),
    }


@pytest.mark.parametrize("name", list(_gallery_cases()))
def test_squarem_on_every_gallery_model(name):
    # oracle: plain EM from the same start; SQUAREM must reach the same log-likelihood
    # (no worse), monotonically, with no more E-steps
    model, x = _gallery_cases()[name]
    start = model.initialize(x, np.random.default_rng(0))
    tol = 1e-7 if "numerical" in name else 1e-9
    em = latent_em.fit(model, x, params=start, tol=tol, max_iter=20000)
    sq = latent_em.fit(model, x, params=start, tol=tol, max_iter=20000, accelerate="squarem")
    assert sq.converged
    assert _monotone(sq.history)
    assert sq.log_likelihood == pytest.approx(em.log_likelihood, rel=1e-6)
    assert sq.n_evaluations <= em.n_evaluations


@pytest.mark.parametrize("name", ["poisson", "bernoulli", "categorical"])
def test_squarem_on_the_built_in_discrete_mixtures(name):
    from latent_em.estimators import BernoulliMixture, CategoricalMixture, PoissonMixture

    rng = np.random.default_rng(8)
    if name == "poisson":
        est, x = PoissonMixture, np.concatenate([rng.poisson(3, 300), rng.poisson(5, 200)])
        x = x.reshape(-1, 1)
    elif name == "bernoulli":
        est = BernoulliMixture
        x = (rng.random((400, 6)) < np.where(rng.random(400)[:, None] < 0.5, 0.7, 0.3)).astype(int)
    else:
        est, x = CategoricalMixture, latent_em.datasets.load_carcinoma()
    plain = est(2, tol=1e-10, random_state=0, max_iter=20000).fit(x)
    fast = est(2, tol=1e-10, random_state=0, accelerate="squarem").fit(x)
    assert fast.converged_ and _monotone(fast.history_)
    assert fast.log_likelihood_ == pytest.approx(plain.log_likelihood_, rel=1e-8)
    assert fast.result_.n_evaluations < plain.result_.n_evaluations
