"""``dtype=float32``: float32 data; float64 kernels, statistics and parameters.

Documented tolerance (GaussianMixtureModel docstring): from the same initialization a
float32 fit agrees with the float64 fit to ~1e-5 relative in the parameters and ~1e-6 in
the mean log-likelihood. Oracles: scikit-learn's GaussianMixture (float64) from the same
initialization, and scipy's multivariate normal density for the fused E-step kernels.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats as scipy_stats
from scipy.special import logsumexp

import latent_em
from latent_em.models import GaussianMixtureModel

from .conftest import make_blobs

sklearn_mixture = pytest.importorskip("sklearn.mixture")

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]


@pytest.fixture
def blobs(rng: np.random.Generator) -> np.ndarray:
    return make_blobs(rng, n_per=500, d=4, k=3) + 30.0


def _fit(model, x, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", latent_em.ConvergenceWarning)
        return latent_em.fit(model, x, **kw)


def _precisions(cov: np.ndarray, covariance_type: str) -> np.ndarray:
    return np.linalg.inv(cov) if covariance_type in ("full", "tied") else 1.0 / cov


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a) - b)) / np.max(np.abs(b)))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_fit_matches_float64_and_sklearn(blobs, covariance_type):
    # scikit-learn adds its reg_covar (1e-6) to every covariance: the "additive" mode
    add = {"covariance_regularization": "additive"}
    start = GaussianMixtureModel(3, covariance_type, **add).initialize(
        blobs, np.random.default_rng(0)
    )
    f64 = _fit(
        GaussianMixtureModel(3, covariance_type, **add), blobs, params=start, max_iter=25, tol=0
    )
    model32 = GaussianMixtureModel(3, covariance_type, dtype=np.float32, **add)
    f32 = _fit(model32, blobs, params=start, max_iter=25, tol=0)
    for field in ("weights", "means", "covariances"):
        value = getattr(f32.params, field)
        assert value.dtype == np.float64  # parameters stay float64
        assert _rel(value, getattr(f64.params, field)) < 1e-5, field
    assert f32.mean_log_likelihood == pytest.approx(f64.mean_log_likelihood, rel=1e-6)
    sk = sklearn_mixture.GaussianMixture(
        3,
        covariance_type=covariance_type,
        weights_init=start.weights,
        means_init=start.means,
        precisions_init=_precisions(start.covariances, covariance_type),
        init_params="random_from_data",
        max_iter=25,
        tol=0.0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn's ConvergenceWarning at tol=0
        sk.fit(blobs)
    assert _rel(f32.params.means, sk.means_) < 1e-5
    assert _rel(f32.params.covariances, sk.covariances_) < 1e-5
    assert _rel(f64.params.covariances, sk.covariances_) < 1e-10
    assert f32.mean_log_likelihood == pytest.approx(sk.score(blobs), rel=1e-6)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fused_e_step_matches_scipy_densities(rng, covariance_type, dtype):
    """Oracle: scipy.stats.multivariate_normal for log p(x_n) and the responsibilities;
    the statistics are then the plain weighted sums of the module docstring."""
    x = rng.normal(size=(2500, 3)) * [1.0, 3.0, 0.5] + 10.0  # > one kernel block
    model = GaussianMixtureModel(3, covariance_type, dtype=dtype)
    params = model.initialize(x, np.random.default_rng(1))
    weights = rng.uniform(0.0, 2.0, size=x.shape[0])
    stats, log_marginal = model.e_step(params, model.check_data(x), weights)

    full = model.covariance.to_full(params.covariances, 3, 3)
    table = np.stack(
        [
            np.log(params.weights[k])
            + scipy_stats.multivariate_normal(params.means[k], full[k]).logpdf(x)
            for k in range(3)
        ],
        axis=1,
    )
    expected_lm = logsumexp(table, axis=1)
    rw = np.exp(table - expected_lm[:, None]) * weights[:, None]
    diff = x[:, None, :] - params.means[None]  # (n, K, D)
    rtol = 1e-10 if dtype == np.float64 else 2e-5
    np.testing.assert_allclose(log_marginal, expected_lm, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(stats.counts, rw.sum(axis=0), rtol=rtol)
    np.testing.assert_allclose(
        stats.sum_dx, np.einsum("nk,nkd->kd", rw, diff), atol=rtol * np.abs(x - 10).sum()
    )
    second = {
        "full": lambda: np.einsum("nk,nkd,nke->kde", rw, diff, diff),
        "tied": lambda: np.einsum("nk,nkd,nke->de", rw, diff, diff),
        "diag": lambda: np.einsum("nk,nkd->kd", rw, diff**2),
        "spherical": lambda: np.einsum("nk,nkd->k", rw, diff**2),
    }[covariance_type]()
    assert stats.sum_dxdx.dtype == np.float64  # accumulated in float64
    assert _rel(stats.sum_dxdx, second) < (1e-11 if dtype == np.float64 else 2e-5)


def test_float32_estimator_converges_monotonically(blobs):
    # A long float32 run to a tight tolerance: round-off in the log-likelihood must not
    # be mistaken for a decrease (the driver's tolerance follows the working precision,
    # float64 here: the data are float32, the arithmetic float64).
    gm = latent_em.GaussianMixture(3, dtype=np.float32, tol=1e-9, max_iter=500, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", latent_em.ConvergenceWarning)
        gm.fit(blobs)
    ref = latent_em.GaussianMixture(3, tol=1e-9, max_iter=500, random_state=0).fit(blobs)
    assert gm.model_.check_data(blobs).dtype == np.float32
    np.testing.assert_allclose(gm.means_, ref.means_, rtol=1e-5)
    assert gm.score(blobs) == pytest.approx(ref.score(blobs), rel=1e-6)
    assert np.all(np.diff(gm.history_) > -1e-6 * np.abs(gm.history_[1:]))


def test_float32_halves_the_data_memory(blobs):
    model = GaussianMixtureModel(3, dtype="float32")
    assert model.dtype == np.float32
    assert model.check_data(blobs).nbytes == blobs.nbytes // 2


@pytest.mark.parametrize("bad", [np.int32, np.float16, "complex128"])
def test_bad_dtype_names_the_argument(bad):
    with pytest.raises(ValueError, match="dtype must be numpy.float32 or numpy.float64"):
        GaussianMixtureModel(2, dtype=bad)
    with pytest.raises(TypeError, match="dtype"):
        GaussianMixtureModel(2, dtype="no-such-type")


def test_monotonicity_tolerance_follows_the_working_precision():
    from latent_em.em_map import working_rtol as _working_rtol

    class Float32Model:  # computes in float32: round-off ~1e-7 relative
        dtype = np.float32

    assert _working_rtol(Float32Model(), 1e-10) == pytest.approx(4 * np.finfo(np.float32).eps)
    # float32 data, float64 arithmetic: the float64 tolerance stays
    model = GaussianMixtureModel(2, dtype=np.float32)
    assert model.working_dtype == np.float64
    assert _working_rtol(model, 1e-10) == 1e-10
