"""mclust's conjugate prior (``priorControl()``; Fraley & Raftery 2007): MAP-EM.

Oracles: ``check_model``'s M-step law on ``Q + log p(θ)`` with the prior's densities taken
from scipy (inverse-Wishart, inverse-gamma, normal); the one-component MAP estimate in
closed form; in one dimension the inverse-Wishart structures (full, tied) and the
inverse-gamma ones (V, E) are the same model and give the same fit; the default
hyperparameters are mclust's ``defaultPrior`` (mclust's R source: shrinkage 0.01, the
column means, ``d + 2`` degrees of freedom, ``var(X) / G^(2/d)`` or
``sum(apply(X, 2, var)) / d / G^(2/d)``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import latent_em
from latent_em import GaussianMixture
from latent_em.models import GaussianMixtureModel
from latent_em.models.gaussian.prior import NO_PRIOR_IN_MCLUST, PRIOR_STRUCTURES, ConjugatePrior


@pytest.mark.parametrize("cov", [c for c in PRIOR_STRUCTURES if c not in ("E", "V")])
def test_check_model_passes_with_the_prior(cov, faithful):
    model = GaussianMixtureModel(3, cov, prior=ConjugatePrior.default(faithful, 3, cov))
    report = latent_em.check_model(model, faithful)
    laws = {r.law: r.status for r in report.results}
    assert laws["m_step_maximizer"] == "passed" and laws["monotone"] == "passed"


def test_default_hyperparameters_are_mclusts(faithful):
    n, d = faithful.shape
    full = ConjugatePrior.default(faithful, 3, "full")
    assert full.shrinkage == 0.01 and full.dof == d + 2
    np.testing.assert_allclose(full.mean, faithful.mean(axis=0))
    np.testing.assert_allclose(full.scale, np.cov(faithful.T) / 3 ** (2 / d))
    sph = ConjugatePrior.default(faithful, 3, "spherical")
    assert float(sph.scale) == pytest.approx(np.var(faithful, axis=0, ddof=1).sum() / d / 3)
    one = ConjugatePrior.default(faithful[:, :1], 2, "V")
    assert one.dof == 3 and float(one.scale) == pytest.approx(np.var(faithful[:, 0], ddof=1) / 4)


def test_one_component_map_is_the_closed_form(faithful):
    prior = ConjugatePrior.default(faithful, 1, "full")
    gm = GaussianMixture(1, prior=prior, reg_covar=0.0).fit(faithful)
    n, d = faithful.shape
    ybar = faithful.mean(axis=0)
    w = (faithful - ybar).T @ (faithful - ybar)
    e = ybar - prior.mean
    kappa, nu = prior.shrinkage, prior.dof
    expected = (prior.scale + w + kappa * n / (kappa + n) * np.outer(e, e)) / (nu + n + d + 2)
    np.testing.assert_allclose(gm.means_[0], (n * ybar + kappa * prior.mean) / (n + kappa))
    np.testing.assert_allclose(gm.covariances_[0], expected, rtol=1e-12)


def test_one_dimension_inverse_wishart_equals_inverse_gamma(faithful):
    x = faithful[:, :1]
    for wishart, gamma in (("full", "V"), ("tied", "E")):
        p_w = ConjugatePrior.default(x, 2, wishart)
        p_g = ConjugatePrior(p_w.shrinkage, p_w.mean, p_w.dof, float(p_w.scale[0, 0]))
        assert float(p_g.scale) == pytest.approx(float(ConjugatePrior.default(x, 2, gamma).scale))
        a = GaussianMixture(2, covariance_type=wishart, prior=p_w, random_state=0).fit(x)
        b = GaussianMixture(2, covariance_type=gamma, prior=p_g, random_state=0).fit(x)
        assert a.result_.objective == pytest.approx(b.result_.objective, rel=1e-10)
        assert a.result_.log_prior == pytest.approx(b.result_.log_prior, rel=1e-10)
        np.testing.assert_allclose(a.means_, b.means_, rtol=1e-8)


def test_map_objective_and_bic_from_the_log_likelihood(faithful):
    gm = GaussianMixture(3, covariance_type="tied", prior="default", n_init=2, random_state=0)
    gm.fit(faithful)
    r = gm.result_
    assert r.objective == pytest.approx(r.log_likelihood + r.log_prior)
    assert r.log_prior < 0 and np.all(np.diff(r.history) >= -1e-9 * abs(r.history[-1]))
    assert gm.model_.prior is not None and gm.model_.prior.dof == 4
    # BIC from the log-likelihood at the MAP estimate (mclust's convention)
    assert gm.bic(faithful) == pytest.approx(-2 * r.log_likelihood + 11 * math.log(272))
    # the MAP estimate is near, and not above, the maximum likelihood
    mle = GaussianMixture(3, covariance_type="tied", n_init=2, random_state=0).fit(faithful)
    assert mle.log_likelihood_ - 1.0 < gm.log_likelihood_ <= mle.log_likelihood_ + 1e-9


def test_prior_keeps_a_tiny_component_proper():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(size=(60, 2)), [[8.0, 8.0], [8.0, 8.0]]])  # 2 equal points
    gm = GaussianMixture(2, prior="default", reg_covar=0.0, random_state=0).fit(x)
    assert np.linalg.eigvalsh(gm.covariances_).min() > 1e-3
    assert not gm.result_.events


def test_prior_errors(faithful):
    for name in NO_PRIOR_IN_MCLUST:  # mclust has none for these four either
        with pytest.raises(
            ValueError,
            match=f"no conjugate prior for covariance_type='{name}' "
            rf"\(mclust has none for {name} either",
        ):
            GaussianMixture(2, covariance_type=name, prior="default").fit(faithful)
    with pytest.raises(ValueError, match="prior must be None, 'default' or a ConjugatePrior"):
        GaussianMixture(2, prior="mclust").fit(faithful)
    with pytest.raises(ValueError, match="prior scale must be a positive number"):
        GaussianMixtureModel(2, "diag", prior=ConjugatePrior.default(faithful, 2, "full"))
    with pytest.raises(TypeError, match="prior must be None or a ConjugatePrior"):
        GaussianMixtureModel(2, prior={"shrinkage": 0.01})


def test_prior_with_partial_labels_and_saving(faithful, tmp_path):
    y = np.full(len(faithful), -1)
    y[:3] = [0, 1, 0]
    gm = GaussianMixture(2, prior="default", random_state=0).fit(faithful, labels=y)
    assert gm.result_.log_prior < 0
    gm.save(tmp_path / "m.json")
    back = latent_em.io.load(tmp_path / "m.json")
    np.testing.assert_array_equal(back.model_.prior.scale, gm.model_.prior.scale)
    np.testing.assert_allclose(back.score_samples(faithful), gm.score_samples(faithful))


# ------------------------- VEI, EVI, EEV, VEV: the rest of mclust's ten models with a prior
#
# The prior on these (mclust's ``?defaultPrior``: "only 10 out of 14 models may be used in
# conjunction with a prior", EII VII EEI VEI EVI VVI EEE EEV VEV VVV) is the density of
# every component covariance: inverse-gamma on each diagonal entry (VEI, EVI) or
# inverse-Wishart (EEV, VEV), with the normal prior on each mean. Oracle: scipy's direct
# maximization of the penalized complete-data objective over an independent
# parameterization of the structure (log-volumes, log-shapes, rotation angle in 2-D).

PARSIMONIOUS_WITH_PRIOR = ("VEI", "EVI", "EEV", "VEV")


def _structure(name: str, theta: np.ndarray, k: int) -> np.ndarray:
    """``λ_k R(α_k) diag(a_k, 1/a_k) R(α_k)ᵀ`` in two dimensions from free values."""
    vol, shape, orient = name
    pos = 1 if vol == "E" else k
    lam = np.exp(np.resize(theta[:pos], k))
    m = 1 if shape == "E" else k
    log_a = np.resize(theta[pos : pos + m], k)
    pos += m
    if orient == "I":
        angles = np.zeros(k)
    else:
        angles = np.resize(theta[pos : pos + (1 if orient == "E" else k)], k)
    out = []
    for j in range(k):
        c, s = np.cos(angles[j]), np.sin(angles[j])
        r = np.array([[c, -s], [s, c]])
        out.append(lam[j] * r @ np.diag([np.exp(log_a[j]), np.exp(-log_a[j])]) @ r.T)
    return np.stack(out)


def _penalized(x, z, means, covs, prior, name) -> float:
    """Complete-data log-likelihood (labels ``z``) + log-prior, all densities scipy's."""
    return sum(_parts(x, z, means, covs, prior, name))


def _parts(x, z, means, covs, prior, name) -> tuple[float, float]:
    from scipy import stats as st

    loglik = total = 0.0
    for j in range(len(means)):
        loglik += st.multivariate_normal(means[j], covs[j]).logpdf(x[z == j]).sum()
        total += st.multivariate_normal(prior.mean, covs[j] / prior.shrinkage).logpdf(means[j])
        if PRIOR_STRUCTURES[name]:
            total += st.invwishart(df=prior.dof, scale=prior.scale).logpdf(covs[j])
        else:
            gamma = st.invgamma(prior.dof / 2, scale=float(prior.scale) / 2)
            total += gamma.logpdf(np.diag(covs[j])).sum()
    return float(loglik), float(total)


@pytest.mark.parametrize("name", PARSIMONIOUS_WITH_PRIOR)
def test_parsimonious_map_is_the_direct_maximizer(name, faithful):
    from scipy import optimize

    k = 2
    x = faithful
    z = (x[:, 0] > 3.0).astype(int)  # the two eruption groups, labelled
    prior = ConjugatePrior.default(x, k, name)
    gm = GaussianMixture(k, covariance_type=name, prior=prior, reg_covar=0.0, tol=1e-12)
    gm.fit(x, labels=z)
    ours = _penalized(x, z, gm.means_, gm.covariances_, prior, name)
    # the reported log-prior is the prior's density, computed here from scipy's
    assert gm.result_.log_prior == pytest.approx(
        _parts(x, z, gm.means_, gm.covariances_, prior, name)[1], rel=1e-10
    )
    vol, shape, orient = name
    p = (1 if vol == "E" else k) + (1 if shape == "E" else k)
    p += {"I": 0, "E": 1, "V": k}[orient]
    ybar = np.stack([x[z == j].mean(axis=0) for j in range(k)])
    rng = np.random.default_rng(1)

    def negative(theta):
        means = theta[: 2 * k].reshape(k, 2)
        try:
            with np.errstate(all="ignore"):
                covs = _structure(name, theta[2 * k :], k)
                value = -_penalized(x, z, means, covs, prior, name)
        except (np.linalg.LinAlgError, ValueError):
            return 1e300  # outside where Σ is computable
        return value if np.isfinite(value) else 1e300

    best = np.inf
    for _ in range(3):
        start = np.concatenate([ybar.ravel(), rng.normal(scale=0.5, size=p)])
        res = optimize.minimize(
            negative, start, method="L-BFGS-B", options={"ftol": 1e-15, "gtol": 1e-9}
        )
        best = min(best, res.fun)
    assert ours == pytest.approx(-best, abs=1e-5)
    # and the prior moved the fit: the plain maximum likelihood is a different point
    mle = GaussianMixture(k, covariance_type=name, reg_covar=0.0, tol=1e-12).fit(x, labels=z)
    assert _penalized(x, z, mle.means_, mle.covariances_, prior, name) < ours - 1e-3


@pytest.mark.parametrize("name", PARSIMONIOUS_WITH_PRIOR)
def test_parsimonious_prior_one_component_closed_form(name, faithful):
    # one component: VEI and EVI are VVI (diag), EEV and VEV are VVV (full), whose MAP
    # estimates are closed forms (Fraley & Raftery 2007, section 3)
    prior = ConjugatePrior.default(faithful, 1, name)
    gm = GaussianMixture(1, covariance_type=name, prior=prior, reg_covar=0.0).fit(faithful)
    n, d = faithful.shape
    ybar = faithful.mean(axis=0)
    e = ybar - prior.mean
    kappa, nu = prior.shrinkage, prior.dof
    b = (faithful - ybar).T @ (faithful - ybar) + kappa * n / (kappa + n) * np.outer(e, e)
    if PRIOR_STRUCTURES[name]:
        expected = (prior.scale + b) / (nu + n + d + 2)
    else:
        expected = np.diag((float(prior.scale) + np.diag(b)) / (nu + n + 3))
    np.testing.assert_allclose(gm.means_[0], (n * ybar + kappa * prior.mean) / (n + kappa))
    np.testing.assert_allclose(gm.covariances_[0], expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", PARSIMONIOUS_WITH_PRIOR)
def test_parsimonious_map_em_is_monotone(name):
    rng = np.random.default_rng(3)
    x = np.concatenate(
        [rng.normal(size=(40, 2)) @ rng.normal(size=(2, 2)) + 4 * j for j in range(3)]
    )
    gm = GaussianMixture(3, covariance_type=name, prior="default", random_state=0).fit(x)
    h = np.asarray(gm.result_.history)
    assert np.all(np.diff(h) >= -1e-10 * abs(h[-1])) and not gm.result_.events
    assert gm.result_.objective == pytest.approx(gm.result_.log_likelihood + gm.result_.log_prior)
