"""Dask arrays: per-block statistics on the workers, tree-reduced, M-step on the client.

Exactness law: the statistics are additive (docs/theory.md §3), so a Dask fit must equal
the in-memory fit from the same initialization up to round-off (only the order of the
additions differs). Checked with the threaded scheduler and with a two-process
``distributed.LocalCluster`` on loopback, for the Gaussian mixture and for a Poisson
mixture written here against the public API only.
"""

from __future__ import annotations

import sys
import warnings
from typing import NamedTuple

import numpy as np
import pytest
from scipy import stats as scipy_stats

import latent_em
from latent_em._tree import tree_allclose
from latent_em.data import Chunks
from latent_em.models import GaussianMixtureModel

from .conftest import make_blobs

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")


# ------------------------------------------------------------- a non-Gaussian model


class PoissonParams(NamedTuple):
    weights: np.ndarray  # (K,)
    rates: np.ndarray  # (K,)


class PoissonStats(NamedTuple):
    counts: np.ndarray  # Σ_n w_n r_nk
    sum_x: np.ndarray  # Σ_n w_n r_nk x_n


class PoissonMixture:
    """``p(x) = Σ_k φ_k Poisson(x; λ_k)`` with the closed-form M-step
    ``φ_k = N_k / N``, ``λ_k = Σ w r x / N_k``."""

    n_components = 3

    def initialize(self, x, rng):
        x = np.asarray(x, dtype=float)
        return PoissonParams(np.full(3, 1 / 3), np.quantile(x, [0.2, 0.5, 0.8]) + 0.5)

    def latent_support(self):
        return np.arange(3)

    def log_joint(self, params, x, z):
        x = np.asarray(x, dtype=float)
        # scipy's Poisson log-pmf is the oracle for the density
        return np.log(params.weights[z]) + scipy_stats.poisson.logpmf(x, params.rates[z])

    def expected_stats(self, params, x, posterior, weights):
        r = posterior * weights[:, None]
        return PoissonStats(r.sum(axis=0), r.T @ np.asarray(x, dtype=float))

    def m_step(self, params, stats):
        return PoissonParams(stats.counts / stats.counts.sum(), stats.sum_x / stats.counts)


@pytest.fixture
def counts_data() -> np.ndarray:
    rng = np.random.default_rng(11)
    return np.concatenate([rng.poisson(lam, size=m) for lam, m in ((2, 500), (9, 400), (25, 300))])


@pytest.fixture
def blobs(rng: np.random.Generator) -> np.ndarray:
    return make_blobs(rng, n_per=300, d=3, k=3) - 20.0


def _fit(model, x, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", latent_em.ConvergenceWarning)
        return latent_em.fit(model, x, **kw)


def _same_fit(a, b, rtol=1e-10):
    if a.n_iter != b.n_iter:
        # at a fixed point the change of the objective is round-off, so an exact zero
        # (convergence at tol=0) may come an iteration earlier or later
        assert a.converged and b.converged and abs(a.n_iter - b.n_iter) <= 2
    n = min(len(a.history), len(b.history))
    np.testing.assert_allclose(a.history[:n], b.history[:n], rtol=rtol)
    assert tree_allclose(a.params, b.params, rtol=rtol, atol=1e-12)


# ---------------------------------------------------------------- threaded scheduler


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_threaded_dask_equals_in_memory(blobs, covariance_type):
    model = GaussianMixtureModel(3, covariance_type)
    reference = _fit(model, blobs, random_state=4, tol=1e-10)
    x = da.from_array(blobs, chunks=(128, 2))  # split columns too: rechunked to whole rows
    with dask.config.set(scheduler="threads"):
        result = _fit(model, x, random_state=4, tol=1e-10)
    _same_fit(result, reference)


def test_threaded_dask_weighted_poisson_mixture(counts_data):
    weights = np.random.default_rng(2).integers(1, 4, size=counts_data.size).astype(float)
    model = PoissonMixture()
    reference = _fit(model, counts_data, sample_weight=weights, tol=1e-12)
    with dask.config.set(scheduler="threads"):
        result = _fit(
            model, da.from_array(counts_data, chunks=97), sample_weight=weights, tol=1e-12
        )
    _same_fit(result, reference)
    # integer weights are frequency weights: the same as repeating rows (an oracle of
    # the weighting itself, independent of the chunking)
    start = model.initialize(counts_data, np.random.default_rng(0))
    with dask.config.set(scheduler="threads"):
        weighted = _fit(
            model,
            da.from_array(counts_data, chunks=97),
            sample_weight=weights,
            params=start,
            max_iter=15,
            tol=0.0,
        )
    repeated = _fit(
        model, np.repeat(counts_data, weights.astype(int)), params=start, max_iter=15, tol=0.0
    )
    assert tree_allclose(weighted.params, repeated.params, rtol=1e-10)
    # and a re-iterable of chunks gives the same fit again
    chunks = Chunks(np.array_split(counts_data, 7))
    _same_fit(_fit(model, chunks, sample_weight=weights, tol=1e-12), reference)


def test_poisson_mixture_stats_are_additive(counts_data):
    model = PoissonMixture()
    params = model.initialize(counts_data, np.random.default_rng(0))
    post, _ = latent_em.posterior(model, params, counts_data)
    w = np.ones(counts_data.size)
    whole = model.expected_stats(params, counts_data, post, w)
    a = model.expected_stats(params, counts_data[:333], post[:333], w[:333])
    b = model.expected_stats(params, counts_data[333:], post[333:], w[333:])
    assert tree_allclose(latent_em._tree.tree_add(a, b), whole, rtol=1e-12)


def test_dask_unknown_chunk_sizes_are_refused(blobs):
    x = da.from_array(blobs, chunks=(100, 3))
    x = x[x[:, 0] > -1e9]  # boolean mask: row counts per block unknown until computed
    with pytest.raises(ValueError, match="compute_chunk_sizes"):
        latent_em.fit(GaussianMixtureModel(2), x)


def test_dask_large_array_initializes_from_subsample(blobs, monkeypatch):
    from latent_em import data

    monkeypatch.setattr(data, "INIT_SAMPLE_ROWS", 200)
    x = da.from_array(blobs, chunks=(250, 3))
    with dask.config.set(scheduler="threads"):
        result = _fit(GaussianMixtureModel(3, "diag"), x, random_state=0, max_iter=30)
    assert result.n_observations == len(blobs)
    # a good fit from 200 initial rows: close to the in-memory optimum
    full = _fit(GaussianMixtureModel(3, "diag"), blobs, random_state=0, max_iter=30)
    assert result.mean_log_likelihood == pytest.approx(full.mean_log_likelihood, abs=0.05)


# ------------------------------------------------------------ distributed LocalCluster


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    import cloudpickle

    # the workers cannot import this test module: ship its classes by value
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        silence_logs=40,
    )
    client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def _spread(client, x):
    """Persist the row blocks of ``x`` alternately on the two workers.

    A plain ``persist()`` may leave every small block on one worker (the scheduler need
    not spread cheap tasks), and then nothing would show that the E-step runs where the
    data live; pinning the blocks makes both workers hold data.
    """
    client.wait_for_workers(2)
    workers = sorted(client.scheduler_info()["workers"])
    blocks = [client.persist(x.blocks[i], workers=[workers[i % 2]]) for i in range(x.numblocks[0])]
    return da.concatenate(blocks, axis=0)


@pytest.mark.slow
def test_local_cluster_gaussian_mixture_equals_in_memory(client, blobs):
    distributed = pytest.importorskip("distributed")
    model = GaussianMixtureModel(3, "full")
    reference = _fit(model, blobs, random_state=6, tol=1e-10)
    x = _spread(client, da.from_array(blobs, chunks=(150, 3)))  # blocks live on the workers
    with distributed.get_task_stream(client) as stream:
        result = _fit(model, x, random_state=6, tol=1e-10)
    _same_fit(result, reference)
    # the E-step tasks really ran in both worker processes
    workers = {task["worker"] for task in stream.data if "_block_task" in task["key"]}
    assert len(workers) == 2


@pytest.mark.slow
def test_local_cluster_poisson_mixture_equals_in_memory(client, counts_data):
    model = PoissonMixture()
    start = model.initialize(counts_data, np.random.default_rng(0))
    reference = _fit(model, counts_data, params=start, max_iter=8, tol=0.0)
    x = da.from_array(counts_data, chunks=300).persist()
    result = _fit(model, x, params=start, max_iter=8, tol=0.0)
    _same_fit(result, reference)
