"""The threaded fused E-step: same statistics whatever the number of threads, repeatable,
and no lasting change to the process's BLAS thread settings."""

from __future__ import annotations

import numpy as np
import pytest

from latent_em._tree import tree_allclose
from latent_em.models import GaussianMixtureModel

threadpoolctl = pytest.importorskip("threadpoolctl")


@pytest.fixture
def data(rng: np.random.Generator) -> np.ndarray:
    # 12 000 rows: 8 blocks of 1713 rows (full, D = 16), 2 of 7943 (diag): enough
    # blocks for two threads
    return rng.normal(size=(12_000, 16)) + rng.normal(size=(4, 16))[rng.integers(4, size=12_000)]


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_threads_change_only_the_order_of_additions(data, covariance_type):
    weights = np.random.default_rng(3).uniform(size=len(data))
    one = GaussianMixtureModel(16, covariance_type, n_threads=1)
    params = one.initialize(data, np.random.default_rng(0))
    ref_stats, ref_lm = one.e_step(params, data, weights)
    for threads in (2, 3):
        model = GaussianMixtureModel(16, covariance_type, n_threads=threads)
        stats, lm = model.e_step(params, data, weights)
        np.testing.assert_array_equal(lm, ref_lm)  # per-row values do not depend on it
        assert tree_allclose(stats, ref_stats, rtol=1e-11, atol=1e-9)
        again, _ = model.e_step(params, data, weights)
        for a, b in zip(again, stats, strict=True):
            np.testing.assert_array_equal(a, b)  # bit-for-bit repeatable


def test_blas_thread_setting_is_restored(data):
    before = [p["num_threads"] for p in threadpoolctl.threadpool_info()]
    model = GaussianMixtureModel(4, "full", n_threads=2)
    params = model.initialize(data, np.random.default_rng(0))
    model.e_step(params, data, np.ones(len(data)))
    model.posterior(params, data)
    assert [p["num_threads"] for p in threadpoolctl.threadpool_info()] == before


def test_blas_is_single_threaded_for_the_whole_fit_and_restored(data):
    # between E-steps too (the driver holds ``fit_context``): OpenBLAS threads woken by
    # the M-step would spin and take the cores from the E-step's threads
    import latent_em

    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        seen: list[list[int]] = []
        model = GaussianMixtureModel(4, "full", n_threads=2)
        latent_em.fit(
            model,
            data,
            random_state=0,
            max_iter=200,
            tol=1e-4,
            callback=lambda *_: seen.append(
                [
                    p["num_threads"]
                    for p in threadpoolctl.threadpool_info()
                    if p["user_api"] == "blas"
                ]
            ),
        )
        assert seen and all(threads == [1] * len(threads) for threads in seen)
        after = [
            p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"
        ]
        assert after == [2] * len(after)


def test_n_threads_is_validated():
    with pytest.raises(ValueError, match="n_threads must be >= 1"):
        GaussianMixtureModel(2, n_threads=0)
    with pytest.raises(TypeError, match="n_threads must be an integer"):
        GaussianMixtureModel(2, n_threads=1.5)
