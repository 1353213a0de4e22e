"""The Gaussian mixture's E-step on the compiled kernel (large problems) against the
NumPy kernels (small problems, tested against scipy in test_gmm_kernels.py) and against
scikit-learn's E-step and M-step from the same parameters."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("numba")

import latent_em  # noqa: E402
import latent_em.compiled as compiled  # noqa: E402
from latent_em.models import GaussianMixtureModel  # noqa: E402

TYPES = ("full", "tied", "diag", "spherical")


@pytest.fixture
def big(rng: np.random.Generator) -> np.ndarray:
    # N·K = 8 000 · 16 ≥ 10⁵: the compiled path
    centers = rng.normal(scale=4.0, size=(6, 5))
    return centers[rng.integers(6, size=8_000)] + rng.normal(size=(8_000, 5)) + 20.0


@pytest.fixture
def calls(monkeypatch):
    seen: list[str] = []
    kernel = compiled.gaussian_e_step

    def counting(covariance_type, *args, **kwargs):
        seen.append(covariance_type)
        return kernel(covariance_type, *args, **kwargs)

    monkeypatch.setattr(compiled, "gaussian_e_step", counting)
    return seen


@pytest.mark.parametrize("covariance_type", TYPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_compiled_e_step_matches_the_numpy_kernels(
    big, rng, monkeypatch, calls, covariance_type, dtype
):
    model = GaussianMixtureModel(16, covariance_type, dtype=dtype)
    params = model.initialize(big, np.random.default_rng(0))
    x = model.check_data(big)
    w = rng.uniform(0.0, 2.0, size=len(x))
    stats, lm = model.e_step(params, x, w)
    assert calls == [covariance_type]
    monkeypatch.setattr(compiled, "COMPILED_MIN_SIZE", np.inf)
    ref_stats, ref_lm = model.e_step(params, x, w)
    assert calls == [covariance_type]  # the NumPy kernels this time
    # the NumPy kernels are exact to ~1e-10 (expanded forms, test_gmm_kernels.py)
    np.testing.assert_allclose(lm, ref_lm, rtol=1e-10)
    for a, b in zip(stats, ref_stats, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-10 * np.max(np.abs(b)))


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_one_iteration_matches_scikit_learn(big, calls, covariance_type):
    # scikit-learn's _e_step and _m_step from the same parameters (its additive reg_covar)
    mixture = pytest.importorskip("sklearn.mixture")
    model = GaussianMixtureModel(
        16, covariance_type, reg_covar=1e-6, covariance_regularization="additive"
    )
    params = model.initialize(big, np.random.default_rng(0))
    stats, lm = model.e_step(params, big, np.ones(len(big)))
    new = model.m_step(params, stats)
    assert calls == [covariance_type]
    cov = params.covariances
    sk = mixture.GaussianMixture(
        16,
        covariance_type=covariance_type,
        weights_init=params.weights,
        means_init=params.means,
        precisions_init=np.linalg.inv(cov) if covariance_type == "full" else 1.0 / cov,
        reg_covar=1e-6,
    )
    sk._initialize_parameters(big, np.random.RandomState(0))
    log_prob_norm, log_resp = sk._e_step(big)
    sk._m_step(big, log_resp)
    assert lm.mean() == pytest.approx(log_prob_norm, rel=1e-12)
    np.testing.assert_allclose(new.weights, sk.weights_, rtol=1e-11)
    np.testing.assert_allclose(new.means, sk.means_, rtol=1e-11)
    np.testing.assert_allclose(new.covariances, sk.covariances_, rtol=1e-10)


def test_fit_is_the_same_with_any_thread_count(big, calls):
    results = [
        latent_em.fit(
            GaussianMixtureModel(16, "full", n_threads=t),
            big,
            random_state=0,
            max_iter=5,
            tol=0,
            warn_not_converged=False,
        )
        for t in (1, 2, 3)
    ]
    assert calls  # compiled
    for other in results[1:]:
        assert other.log_likelihood == results[0].log_likelihood
        np.testing.assert_array_equal(other.params.covariances, results[0].params.covariances)


def test_small_fits_compile_nothing():
    code = (
        "import sys, numpy as np, latent_em\n"
        "x = np.random.default_rng(0).normal(size=(3000, 2))\n"
        "latent_em.GaussianMixture(3, random_state=0).fit(x)\n"
        "assert 'numba' not in sys.modules, 'numba imported for a small fit'\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_thread_knob_reaches_the_model(monkeypatch):
    monkeypatch.setenv("LATENT_EM_NUM_THREADS", "3")
    assert GaussianMixtureModel(2)._threads() == 3
    assert GaussianMixtureModel(2, n_threads=1)._threads() == 1


@pytest.mark.parametrize("structure", ["EII", "EEV", "VVE", "E"])
def test_parsimonious_structures_take_the_full_compiled_kernel(structure):
    """mclust's structures hold full matrices: past the compiled threshold their fused
    E-step is the full family's compiled kernel, equal to posterior + expected_stats
    (both branches were merged separately; the name alone reached the compiled table)."""
    from latent_em.models.gaussian import kernels

    rng = np.random.default_rng(3)
    d = 1 if structure == "E" else 3
    x = np.concatenate([rng.normal(size=(20_000, d)), 2.0 * rng.normal(size=(20_000, d)) + 5])
    model = latent_em.GaussianMixtureModel(3, covariance_type=structure)
    params = model.initialize(x, np.random.default_rng(1))
    assert kernels.use_compiled(len(x), 3)
    weights = np.ones(len(x))
    stats, lm = model.e_step(params, x, weights)
    post, lm_ref = model.posterior(params, x)
    ref = model.expected_stats(params, x, post, weights)
    np.testing.assert_allclose(lm, lm_ref, rtol=1e-12, atol=1e-10)
    for got, want in zip(stats, ref, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-8)
