"""The Gaussian mixture's block kernels: fast expanded forms, guarded by an error bound.

The full-covariance kernel writes the quadratic form as products with the distinct
entries of ``[x - c, 1] ⊗ [x - c, 1]`` (and diag / spherical / tied as products with
``[x - c, 1, squared features]``). Expanded forms cancel when the data lie many of a
component's standard deviations from the centre ``c``, so the kernels evaluate such a
component directly in that block. These tests compare every path with an oracle we did
not write, scipy's ``multivariate_normal.logpdf`` (which subtracts the mean first), and
show the guard is needed: forcing the expanded form on ill-conditioned parameters
gives errors far above the driver's float64 tolerance.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats
from scipy.special import logsumexp

import latent_em.models.gaussian.kernels as gm
from latent_em.models import GaussianMixtureModel

from .conftest import make_blobs

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]


def _oracle(model, params, x, weights):
    """log p(x_n) and the statistics, from scipy densities and plain weighted sums."""
    k, d = params.means.shape
    full = model.covariance.to_full(params.covariances, k, d)
    table = np.stack(
        [
            np.log(params.weights[j])
            + scipy_stats.multivariate_normal(params.means[j], full[j]).logpdf(x)
            for j in range(k)
        ],
        axis=1,
    )
    lm = logsumexp(table, axis=1)
    rw = np.exp(table - lm[:, None]) * weights[:, None]
    diff = x[:, None, :] - params.means[None]
    second = {
        "full": lambda: np.einsum("nk,nkd,nke->kde", rw, diff, diff),
        "tied": lambda: np.einsum("nk,nkd,nke->de", rw, diff, diff),
        "diag": lambda: np.einsum("nk,nkd->kd", rw, diff**2),
        "spherical": lambda: np.einsum("nk,nkd->k", rw, diff**2),
    }[model.covariance_type]()
    return lm, rw.sum(axis=0), np.einsum("nk,nkd->kd", rw, diff), second


def _check(model, params, x, weights, tol):
    stats, lm = model.e_step(params, model.check_data(x), weights)
    lm_ref, counts, sum_dx, second = _oracle(model, params, x, weights)
    np.testing.assert_allclose(lm, lm_ref, rtol=tol, atol=tol)
    np.testing.assert_allclose(stats.counts, counts, rtol=tol, atol=tol * counts.sum())
    scale = np.abs(x - params.means.mean(axis=0)).sum()
    np.testing.assert_allclose(stats.sum_dx, sum_dx, atol=tol * scale)
    err = np.max(np.abs(stats.sum_dxdx - second)) / np.max(np.abs(second))
    assert err < tol, err


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("budget", ["default", "expanded everywhere", "direct everywhere"])
def test_every_kernel_path_matches_scipy(rng, monkeypatch, covariance_type, budget):
    # Well-conditioned data far from the origin and > one block: every path is exact.
    x = make_blobs(rng, n_per=1500, d=4, k=3) + 100.0
    model = GaussianMixtureModel(3, covariance_type)
    params = model.initialize(x, np.random.default_rng(1))
    if budget != "default":
        monkeypatch.setattr(gm, "_ERROR_BUDGET", np.inf if "expanded" in budget else -1.0)
    _check(model, params, x, rng.uniform(0.0, 2.0, size=len(x)), tol=1e-10)


def _ill_conditioned(covariance_type, narrow=1e-4):
    """Two components: a wide one at the origin, a very narrow one 1000 away."""
    d = 3
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.normal(size=(3000, d)), 1000.0 + narrow * rng.normal(size=(1000, d))])
    means = np.array([np.zeros(d), np.full(d, 1000.0)])
    var = np.array([1.0, narrow**2])
    covariances = {
        "full": np.stack([v * (np.eye(d) + 0.3 * (np.ones((d, d)) - np.eye(d))) for v in var]),
        "diag": np.stack([v * np.array([1.0, 2.0, 0.5]) for v in var]),
        "spherical": var,
        "tied": np.eye(d) * narrow**2,
    }[covariance_type]
    model = GaussianMixtureModel(2, covariance_type)
    params = model.make_params(np.array([0.75, 0.25]), means, covariances)
    return model, params, x


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize(
    "narrow, rows",
    # error bound on the log-density ≤ 1: the direct path only on the rows where the
    # component can matter; > 1 (1e-8 at 1000: ~1e20 ε): on the whole block
    [(1e-4, "relevant rows"), (1e-8, "whole block")],
)
def test_guard_falls_back_where_expanded_forms_cancel(monkeypatch, covariance_type, narrow, rows):
    model, params, x = _ill_conditioned(covariance_type, narrow)
    weights = np.ones(len(x))
    # default: the guard sends the narrow component (at least) to the direct path
    kernel = model._kernel(params, x.shape[1])
    kernel.table(x[-kernel.rows :])
    assert 1 in kernel.direct_components
    parts = {int(c[0]): r for c, r, _ in kernel._direct_parts}
    if covariance_type != "tied":  # tied: both components share the narrow covariance
        whole = isinstance(parts[1], slice)
        assert whole == (rows == "whole block")
        if not whole:  # the narrow component's own 1000 rows of this block, no others
            assert len(parts[1]) == min(1000, kernel.rows)
    _check(model, params, x, weights, tol=1e-10)

    # forced expanded form: the cancellation is real and far above the tolerance
    monkeypatch.setattr(gm, "_ERROR_BUDGET", np.inf)
    _, lm = model.e_step(params, model.check_data(x), weights)
    lm_ref = _oracle(model, params, x, weights)[0]
    assert np.max(np.abs(lm - lm_ref)) > 1e-6


def test_full_guard_is_per_component(rng):
    # Only the narrow component leaves the fast path; the wide ones stay on it.
    d = 3
    x = np.concatenate([rng.normal(size=(2000, d)) * 3.0, 50.0 + 1e-6 * rng.normal(size=(500, d))])
    means = np.array([np.zeros(d), np.full(d, 3.0), np.full(d, 50.0)])
    covariances = np.stack([np.eye(d) * 9.0, np.eye(d) * 4.0, np.eye(d) * 1e-12])
    model = GaussianMixtureModel(3, "full")
    params = model.make_params(np.array([0.4, 0.4, 0.2]), means, covariances)
    kernel = model._kernel(params, d)
    kernel.table(x[-kernel.rows :])
    assert kernel.direct_components == [2]
    _check(model, params, x, rng.uniform(0.5, 1.5, size=len(x)), tol=1e-10)
