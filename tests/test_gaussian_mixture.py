"""The Gaussian mixture against oracles we did not write, plus its estimator API.

Oracles: scikit-learn's GaussianMixture from the same initial parameters; the published
mclust result on Old Faithful; closed-form single-component MLEs; scipy's densities.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

import latent_em
from latent_em import GaussianMixture
from latent_em.models import GaussianMixtureModel

from .conftest import make_blobs

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


def _sklearn_precisions(model: GaussianMixtureModel, covariances: np.ndarray) -> np.ndarray:
    pc = model.covariance.precisions_cholesky(covariances)
    if model.covariance_type == "full":
        return np.einsum("kij,klj->kil", pc, pc)
    if model.covariance_type == "tied":
        return pc @ pc.T
    return pc**2


@pytest.fixture
def blobs(rng):
    return make_blobs(rng, n_per=150, d=3, k=3)


@pytest.mark.parametrize("cov", COVARIANCE_TYPES)
def test_matches_sklearn_from_same_initialization(blobs, cov):
    """Same start, same number of EM iterations: scikit-learn reaches the same parameters."""
    sklearn_mixture = pytest.importorskip("sklearn.mixture")
    from sklearn.exceptions import ConvergenceWarning

    # scikit-learn adds reg_covar to every covariance: our "additive" mode
    model = GaussianMixtureModel(
        3, covariance_type=cov, init_params="random", covariance_regularization="additive"
    )
    start = model.initialize(blobs, np.random.default_rng(7))
    n_iter = 40
    ours = latent_em.fit(
        model, blobs, params=start, max_iter=n_iter, tol=0, warn_not_converged=False
    )
    sk = sklearn_mixture.GaussianMixture(
        3,
        covariance_type=cov,
        max_iter=n_iter,
        tol=0,
        reg_covar=1e-6,
        weights_init=start.weights,
        means_init=start.means,
        precisions_init=_sklearn_precisions(model, start.covariances),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # tol=0 never "converges"
        sk.fit(blobs)
    np.testing.assert_allclose(ours.params.weights, sk.weights_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(ours.params.means, sk.means_, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(ours.params.covariances, sk.covariances_, rtol=1e-7, atol=1e-9)
    assert ours.log_likelihood == pytest.approx(sk.score(blobs) * len(blobs), rel=1e-10)
    # same number of free parameters, hence the same BIC and AIC
    est = GaussianMixture(3, covariance_type=cov)
    est._store_result(model, ours, blobs)
    assert est.n_parameters_ == sk._n_parameters()
    assert est.bic(blobs) == pytest.approx(sk.bic(blobs), rel=1e-10)
    assert est.aic(blobs) == pytest.approx(sk.aic(blobs), rel=1e-10)


@pytest.mark.parametrize("cov", COVARIANCE_TYPES)
def test_converged_fit_matches_sklearn_tight_tolerance(blobs, cov):
    sklearn_mixture = pytest.importorskip("sklearn.mixture")
    # scikit-learn's default reg_covar=1e-6 is added to every covariance: "additive"
    model = GaussianMixtureModel(3, covariance_type=cov, covariance_regularization="additive")
    start = model.initialize(blobs, np.random.default_rng(3))
    ours = latent_em.fit(model, blobs, params=start, tol=1e-12, max_iter=5000)
    sk = sklearn_mixture.GaussianMixture(
        3,
        covariance_type=cov,
        tol=1e-12,
        max_iter=5000,
        weights_init=start.weights,
        means_init=start.means,
        precisions_init=_sklearn_precisions(model, start.covariances),
    ).fit(blobs)
    assert ours.converged and sk.converged_
    assert ours.mean_log_likelihood == pytest.approx(sk.score(blobs), rel=1e-10)
    np.testing.assert_allclose(ours.params.means, sk.means_, rtol=1e-5, atol=1e-6)


def test_old_faithful_matches_published_mclust_result(faithful):
    """mclust's summary of ``Mclust(faithful)`` (mclust 5/6 documentation and vignette):

        Mclust EEE (ellipsoidal, equal volume, shape and orientation) model with 3 components:
         log-likelihood   n df       BIC       ICL
              -1126.326 272 11 -2314.316 -2357.824
        Clustering table:  40  97 135

    EEE is our ``tied`` covariance. mclust stops at a relative log-likelihood change of
    1e-5, so it sits slightly below the optimum our tighter tolerance reaches (by < 0.02).
    """
    gm = GaussianMixture(3, covariance_type="tied", n_init=5, random_state=0).fit(faithful)
    assert gm.n_parameters_ == 11
    assert -1126.326 - 1e-6 <= gm.log_likelihood_ <= -1126.326 + 0.02
    # mclust's BIC is 2 log L - p log n: the negative of ours
    assert -gm.bic(faithful) == pytest.approx(-2314.316, abs=0.04)
    sizes = np.sort(np.bincount(gm.predict(faithful)))
    np.testing.assert_allclose(sizes, [40, 97, 135], atol=1)  # one boundary point may differ
    # ICL = BIC - 2 Σ log max_k r_nk; the one boundary point moves it by under 1.5
    assert -gm.icl(faithful) == pytest.approx(-2357.824, abs=1.5)


def test_old_faithful_bic_prefers_mclusts_model(faithful):
    """Among our four covariance types and K = 1..4, BIC picks tied (EEE) with K = 3,
    mclust's choice for these data."""
    scores = {
        (cov, k): GaussianMixture(k, covariance_type=cov, n_init=3, random_state=0)
        .fit(faithful)
        .bic(faithful)
        for cov in COVARIANCE_TYPES
        for k in range(1, 5)
    }
    assert min(scores, key=scores.get) == ("tied", 3)


@pytest.mark.parametrize("cov", COVARIANCE_TYPES)
def test_floor_matches_unregularized_sklearn_from_same_initialization(blobs, cov):
    """The default eigenvalue floor changes nothing where every eigenvalue is above it:
    the same start gives scikit-learn's fit at reg_covar=0, to the same tolerances."""
    sklearn_mixture = pytest.importorskip("sklearn.mixture")
    from sklearn.exceptions import ConvergenceWarning

    model = GaussianMixtureModel(3, covariance_type=cov, init_params="random")
    assert model.covariance_regularization == "floor" and model.reg_covar == 1e-6
    start = model.initialize(blobs, np.random.default_rng(7))
    ours = latent_em.fit(model, blobs, params=start, max_iter=40, tol=0, warn_not_converged=False)
    assert np.min(model.covariance.min_variance(ours.params.covariances, 3)) > 1e-3
    sk = sklearn_mixture.GaussianMixture(
        3,
        covariance_type=cov,
        max_iter=40,
        tol=0,
        reg_covar=0.0,
        weights_init=start.weights,
        means_init=start.means,
        precisions_init=_sklearn_precisions(model, start.covariances),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # tol=0 never "converges"
        sk.fit(blobs)
    np.testing.assert_allclose(ours.params.weights, sk.weights_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(ours.params.means, sk.means_, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(ours.params.covariances, sk.covariances_, rtol=1e-7, atol=1e-9)
    assert ours.log_likelihood == pytest.approx(sk.score(blobs) * len(blobs), rel=1e-10)


@pytest.mark.parametrize("cov", COVARIANCE_TYPES)
def test_single_component_is_the_closed_form_mle(blobs, cov):
    """Additive mode: the MLE plus reg_covar on the diagonal (scikit-learn's update)."""
    reg = 1e-6
    gm = GaussianMixture(
        1, covariance_type=cov, reg_covar=reg, covariance_regularization="additive"
    ).fit(blobs)
    mean = blobs.mean(axis=0)
    sample_cov = np.cov(blobs, rowvar=False, bias=True)  # MLE divides by n
    np.testing.assert_allclose(gm.means_[0], mean, rtol=1e-12, atol=1e-12)
    expected = {
        "full": (sample_cov + reg * np.eye(3))[None],
        "tied": sample_cov + reg * np.eye(3),
        "diag": (np.diag(sample_cov) + reg)[None],
        "spherical": np.array([np.trace(sample_cov) / 3 + reg]),
    }[cov]
    np.testing.assert_allclose(gm.covariances_, expected, rtol=1e-10)
    full = gm.model_.covariance.to_full(gm.covariances_, 1, 3)[0]
    ll = multivariate_normal(mean, full).logpdf(blobs).sum()
    assert gm.log_likelihood_ == pytest.approx(ll, rel=1e-12)


@pytest.mark.parametrize("cov", COVARIANCE_TYPES)
def test_single_component_under_the_floor_is_the_unregularized_mle(blobs, cov):
    """Default floor: every eigenvalue of the sample covariance is far above 1e-6, so the
    constrained MLE is the MLE itself (sample mean, biased sample covariance)."""
    gm = GaussianMixture(1, covariance_type=cov).fit(blobs)
    sample_cov = np.cov(blobs, rowvar=False, bias=True)
    expected = {
        "full": sample_cov[None],
        "tied": sample_cov,
        "diag": np.diag(sample_cov)[None],
        "spherical": np.array([np.trace(sample_cov) / 3]),
    }[cov]
    np.testing.assert_allclose(gm.covariances_, expected, rtol=1e-10)


@pytest.mark.parametrize("cov", COVARIANCE_TYPES)
def test_score_samples_match_scipy_mixture_density(blobs, cov):
    gm = GaussianMixture(3, covariance_type=cov, random_state=0).fit(blobs)
    full = gm.model_.covariance.to_full(gm.covariances_, 3, 3)
    dens = np.stack(
        [
            np.log(w) + multivariate_normal(m, c).logpdf(blobs)
            for w, m, c in zip(gm.weights_, gm.means_, full, strict=True)
        ],
        axis=1,
    )
    np.testing.assert_allclose(gm.score_samples(blobs), logsumexp(dens, axis=1), rtol=1e-10)
    proba = gm.predict_proba(blobs)
    np.testing.assert_allclose(
        proba, np.exp(dens - logsumexp(dens, axis=1, keepdims=True)), atol=1e-10
    )
    assert np.array_equal(gm.predict(blobs), np.argmax(proba, axis=1))
    assert gm.score(blobs) == pytest.approx(gm.score_samples(blobs).mean(), rel=1e-14)
    assert gm.lower_bound_ == pytest.approx(gm.score(blobs), rel=1e-12)


@pytest.mark.parametrize("cov", COVARIANCE_TYPES)
def test_precisions_match_inverse_covariances(blobs, cov):
    gm = GaussianMixture(2, covariance_type=cov, random_state=0).fit(blobs)
    if cov in ("full",):
        np.testing.assert_allclose(
            np.einsum("kij,kjl->kil", gm.precisions_, gm.covariances_),
            np.broadcast_to(np.eye(3), (2, 3, 3)),
            atol=1e-10,
        )
    elif cov == "tied":
        np.testing.assert_allclose(gm.precisions_ @ gm.covariances_, np.eye(3), atol=1e-10)
    else:
        np.testing.assert_allclose(gm.precisions_ * gm.covariances_, 1.0, rtol=1e-12)


def test_sample_draws_from_the_fitted_mixture(faithful):
    gm = GaussianMixture(2, random_state=0).fit(faithful)
    x, z = gm.sample(20000, random_state=1)
    assert x.shape == (20000, 2) and z.shape == (20000,)
    np.testing.assert_allclose(np.bincount(z) / 20000, gm.weights_, atol=0.015)
    for k in range(2):
        np.testing.assert_allclose(x[z == k].mean(0), gm.means_[k], rtol=0.02)


def test_explicit_initial_parameters_are_used(faithful):
    means = np.array([[2.0, 55.0], [4.5, 80.0]])
    gm = GaussianMixture(2, means_init=means, max_iter=0).fit(faithful)
    np.testing.assert_array_equal(gm.means_, means)
    assert gm.n_iter_ == 0


def test_all_init_methods_reach_the_two_cluster_optimum(faithful):
    for init in ("kmeans", "k-means++", "random", "random_from_data"):
        gm = GaussianMixture(2, init_params=init, n_init=3, random_state=0).fit(faithful)
        assert gm.log_likelihood_ == pytest.approx(-1130.264, abs=1e-3), init


def test_get_set_params_and_repr():
    gm = GaussianMixture(3, covariance_type="diag")
    assert gm.get_params()["covariance_type"] == "diag"
    gm.set_params(n_components=4)
    assert gm.n_components == 4
    assert "n_components=4" in repr(gm)
    with pytest.raises(ValueError, match="invalid parameter 'bogus'"):
        gm.set_params(bogus=1)


def test_unfitted_estimator_raises(faithful):
    with pytest.raises(latent_em.NotFittedError, match="not fitted"):
        GaussianMixture(2).predict(faithful)


def test_predict_rejects_wrong_number_of_features(faithful):
    gm = GaussianMixture(2, random_state=0).fit(faithful)
    with pytest.raises(ValueError, match="X has 3 features"):
        gm.predict(np.ones((4, 3)))


# ------------------------------------------------------------------------ bad input
X_OK = np.random.default_rng(0).normal(size=(20, 2))
BAD_INPUTS = [
    ("nan in X", {}, np.array([[0.0, np.nan]] + [[1.0, 2.0]] * 5), ValueError, "X contains NaN"),
    ("inf in X", {}, np.array([[0.0, np.inf]] + [[1.0, 2.0]] * 5), ValueError, "infinite"),
    ("1-D X", {}, np.arange(10.0), ValueError, "X must be 2-D"),
    ("3-D X", {}, np.zeros((4, 2, 2)), ValueError, "X must be 2-D"),
    ("empty X", {}, np.zeros((0, 2)), ValueError, "X is empty"),
    ("strings", {}, np.array([["a", "b"]] * 5), TypeError, "X must contain numbers"),
    ("too few rows", {"n_components": 5}, X_OK[:3], ValueError, "at least 5 are needed"),
    ("n_components=0", {"n_components": 0}, X_OK, ValueError, "n_components must be >= 1"),
    ("n_components float", {"n_components": 2.5}, X_OK, TypeError, "n_components must be an int"),
    (
        "covariance_type",
        {"covariance_type": "banana"},
        X_OK,
        ValueError,
        "unknown covariance_type 'banana'",
    ),
    ("init_params", {"init_params": "kmedoids"}, X_OK, ValueError, "unknown init_params"),
    ("tol negative", {"tol": -1.0}, X_OK, ValueError, "tol must be"),
    ("max_iter negative", {"max_iter": -3}, X_OK, ValueError, "max_iter must be >= 0"),
    ("reg_covar negative", {"reg_covar": -1e-3}, X_OK, ValueError, "reg_covar must be"),
    ("n_init zero", {"n_init": 0}, X_OK, ValueError, "n_init must be >= 1"),
    (
        "weights_init shape",
        {"n_components": 2, "weights_init": [1.0]},
        X_OK,
        ValueError,
        r"weights_init must have shape \(2,\)",
    ),
    (
        "weights_init sum",
        {"n_components": 2, "weights_init": [0.5, 0.6]},
        X_OK,
        ValueError,
        "weights_init must sum to one",
    ),
    (
        "means_init shape",
        {"n_components": 2, "means_init": np.zeros((3, 2))},
        X_OK,
        ValueError,
        "means_init must have shape",
    ),
    (
        "means_init features",
        {"n_components": 2, "means_init": np.zeros((2, 5))},
        X_OK,
        ValueError,
        "means_init has 5 features but X has 2",
    ),
    (
        "covariances_init not PD",
        {"n_components": 2, "covariances_init": np.stack([np.eye(2), -np.eye(2)])},
        X_OK,
        ValueError,
        "covariances_init must be symmetric positive definite",
    ),
    (
        "covariances_init shape",
        {"n_components": 2, "covariances_init": np.ones((3, 2, 2))},
        X_OK,
        ValueError,
        "covariances_init for covariance_type='full' must have shape",
    ),
    ("random_state", {"random_state": "seed"}, X_OK, TypeError, "random_state must be"),
    ("chunk_size", {"chunk_size": 0}, X_OK, ValueError, "chunk_size must be"),
]


@pytest.mark.parametrize(
    "kwargs, X, error, message", [b[1:] for b in BAD_INPUTS], ids=[b[0] for b in BAD_INPUTS]
)
def test_bad_input_gets_a_clear_error(kwargs, X, error, message):
    with pytest.raises(error, match=message):
        GaussianMixture(**{"n_components": 1, **kwargs}).fit(X)


@pytest.mark.parametrize(
    "weights, message",
    [
        (-np.ones(20), "sample_weight must be non-negative"),
        (np.full(20, np.nan), "sample_weight contains NaN"),
        (np.zeros(20), "sample_weight is zero for every row"),
        (np.ones(7), r"sample_weight must have shape \(20,\)"),
    ],
)
def test_bad_sample_weight(weights, message):
    with pytest.raises(ValueError, match=message):
        GaussianMixture(2).fit(X_OK, sample_weight=weights)


# --------------------------------------------------------------------- degenerate data
def test_duplicated_rows_fit_and_report_collapse():
    x = np.repeat(np.array([[0.0, 0.0], [5.0, 5.0], [0.0, 5.0]]), 20, axis=0)
    gm = GaussianMixture(3, random_state=0).fit(x)
    assert np.isfinite(gm.log_likelihood_)
    assert any("collapsed" in e.message for e in gm.result_.events)


def test_constant_column_fits_at_reg_floor(rng):
    x = np.column_stack([rng.normal(size=100), np.full(100, 3.0)])
    gm = GaussianMixture(2, random_state=0).fit(x)
    assert np.all(gm.covariances_[:, 1, 1] == pytest.approx(1e-6, rel=1e-3))
    assert any("collapsed" in e.message for e in gm.result_.events)


def test_more_components_than_distinct_points():
    x = np.repeat(np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 0.0]]), 4, axis=0)
    gm = GaussianMixture(5, covariance_type="diag", random_state=0).fit(x)
    assert np.isfinite(gm.log_likelihood_)
    np.testing.assert_allclose(gm.weights_.sum(), 1.0)
    assert gm.result_.events  # what happened is reported


def test_zero_reg_covar_singular_data_is_jittered_not_crashing():
    x = np.column_stack([np.arange(30.0), 2 * np.arange(30.0)])  # rank-1 data
    gm = GaussianMixture(1, reg_covar=0.0).fit(x)
    assert np.isfinite(gm.log_likelihood_)
    assert any("not positive definite" in e.message for e in gm.result_.events)
