"""Out-of-core data: .npy paths, memory maps and re-iterable chunks fit exactly like arrays.

Exactness law: expected sufficient statistics are additive (docs/theory.md §3), so reading
the data chunk by chunk must give the in-memory fit up to round-off, from the same
initialization. The in-memory fit itself is checked against scikit-learn's
GaussianMixture at the same initialization (an oracle we did not write).
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np
import pytest

import latent_em
from latent_em._tree import tree_allclose
from latent_em.data import Chunks, as_data_source
from latent_em.exceptions import ModelContractError
from latent_em.models import GaussianMixtureModel

from .conftest import make_blobs

sklearn_mixture = pytest.importorskip("sklearn.mixture")


@pytest.fixture
def blobs(rng: np.random.Generator) -> np.ndarray:
    return make_blobs(rng, n_per=400, d=3, k=3) + 50.0


def _fit(model, x, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", latent_em.ConvergenceWarning)
        return latent_em.fit(model, x, **kw)


def _same_fit(a: latent_em.EMResult, b: latent_em.EMResult, rtol: float = 1e-10) -> None:
    if a.n_iter != b.n_iter:
        # at a fixed point the change of the objective is round-off, so an exact zero
        # (convergence at tol=0) may come an iteration earlier or later
        assert a.converged and b.converged and abs(a.n_iter - b.n_iter) <= 2
    n = min(len(a.history), len(b.history))
    np.testing.assert_allclose(a.history[:n], b.history[:n], rtol=rtol)
    assert tree_allclose(a.params, b.params, rtol=rtol, atol=1e-12)
    assert a.log_likelihood == pytest.approx(b.log_likelihood, rel=rtol)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_npy_path_equals_in_memory_fit(tmp_path, blobs, covariance_type):
    path = tmp_path / "x.npy"
    np.save(path, blobs)
    model = GaussianMixtureModel(3, covariance_type)
    in_memory = _fit(model, blobs, random_state=3, tol=1e-9)
    # chunks of 173 rows: the last one is short and none aligns with the internal blocks
    on_disk = _fit(model, str(path), random_state=3, tol=1e-9, chunk_size=173)
    _same_fit(on_disk, in_memory)


def test_memmap_whole_and_view_equal_in_memory_fit(tmp_path, blobs):
    path = tmp_path / "x.dat"
    mm = np.memmap(path, dtype=np.float64, mode="w+", shape=blobs.shape)
    mm[:] = blobs
    mm.flush()
    model = GaussianMixtureModel(3, "full")
    reference = _fit(model, blobs, random_state=1, max_iter=15, tol=0.0)
    whole = np.memmap(path, dtype=np.float64, mode="r", shape=blobs.shape)
    _same_fit(_fit(model, whole, random_state=1, max_iter=15, tol=0.0, chunk_size=250), reference)
    # a view of a memory map is read by slicing (rows 100.. only)
    view_ref = _fit(model, blobs[100:], random_state=1, max_iter=15, tol=0.0)
    view = _fit(model, whole[100:], random_state=1, max_iter=15, tol=0.0, chunk_size=250)
    _same_fit(view, view_ref)


def test_chunks_list_and_callable_equal_in_memory_fit(blobs):
    model = GaussianMixtureModel(3, "diag")
    weights = np.random.default_rng(5).uniform(0.2, 3.0, size=len(blobs))
    reference = _fit(model, blobs, random_state=2, sample_weight=weights, tol=1e-10)
    cuts = [0, 7, 500, 501, 1200]
    parts = [blobs[a:b] for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    listed = _fit(model, Chunks(parts), random_state=2, sample_weight=weights, tol=1e-10)
    _same_fit(listed, reference)
    started = _fit(
        model, Chunks(lambda: iter(parts)), random_state=2, sample_weight=weights, tol=1e-10
    )
    _same_fit(started, reference)


def test_out_of_core_fit_matches_sklearn_at_same_initialization(tmp_path, blobs):
    """Oracle: scikit-learn's GaussianMixture from the same parameters, same iterations."""
    path = tmp_path / "x.npy"
    np.save(path, blobs)
    # scikit-learn adds its reg_covar (1e-6) to every covariance: the "additive" mode
    model = GaussianMixtureModel(3, "full", covariance_regularization="additive")
    start = model.initialize(blobs, np.random.default_rng(0))
    ours = _fit(model, path, params=start, max_iter=12, tol=0.0, chunk_size=300)
    sk = sklearn_mixture.GaussianMixture(
        3,
        covariance_type="full",
        weights_init=start.weights,
        means_init=start.means,
        precisions_init=np.linalg.inv(start.covariances),
        init_params="random_from_data",
        max_iter=12,
        tol=0.0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn's ConvergenceWarning at tol=0
        sk.fit(blobs)
    np.testing.assert_allclose(ours.params.means, sk.means_, rtol=1e-9)
    np.testing.assert_allclose(ours.params.covariances, sk.covariances_, rtol=1e-8)
    np.testing.assert_allclose(ours.params.weights, sk.weights_, rtol=1e-9)
    assert ours.mean_log_likelihood == pytest.approx(sk.score(blobs), rel=1e-10)


def test_float32_file_with_float32_model(tmp_path, blobs):
    path = tmp_path / "x32.npy"
    np.save(path, blobs.astype(np.float32))
    model = GaussianMixtureModel(3, "full", dtype=np.float32)
    on_disk = _fit(model, path, random_state=0, tol=1e-8, chunk_size=256)
    in_memory = _fit(model, blobs.astype(np.float32), random_state=0, tol=1e-8)
    # same float32 kernels, different block boundaries: float32 round-off only
    assert tree_allclose(on_disk.params, in_memory.params, rtol=1e-4, atol=1e-6)
    assert on_disk.mean_log_likelihood == pytest.approx(in_memory.mean_log_likelihood, rel=1e-6)


def test_initialization_sees_a_bounded_sample(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1000, 2))
    path = tmp_path / "x.npy"
    np.save(path, x)
    source = as_data_source(str(path))
    sample = source.init_sample(np.random.default_rng(1), max_rows=50)
    assert sample.shape == (50, 2)
    # rows of x, distinct, in file order
    rows = [int(np.flatnonzero(np.all(x == s, axis=1))[0]) for s in sample]
    assert rows == sorted(set(rows))
    # no more rows than the bound: all of them, unchanged, no random numbers used
    np.testing.assert_array_equal(source.init_sample(np.random.default_rng(1), 5000), x)


def test_large_file_initializes_from_subsample(tmp_path, monkeypatch):
    from latent_em import data

    seen: list[int] = []
    original = GaussianMixtureModel.initialize

    def spy(self, x, rng):
        seen.append(len(x))
        return original(self, x, rng)

    monkeypatch.setattr(GaussianMixtureModel, "initialize", spy)
    monkeypatch.setattr(data, "INIT_SAMPLE_ROWS", 300)
    x = np.random.default_rng(0).normal(size=(2000, 2))
    path = tmp_path / "x.npy"
    np.save(path, x)
    result = _fit(GaussianMixtureModel(2, "diag"), str(path), random_state=0, max_iter=2)
    assert seen == [300]
    assert result.n_observations == 2000


def test_bad_inputs_raise_clear_errors(tmp_path, blobs):
    model = GaussianMixtureModel(2)
    with pytest.raises(TypeError, match="one-shot iterator"):
        latent_em.fit(model, (c for c in np.array_split(blobs, 3)))
    with pytest.raises(ValueError, match="not a .npy file"):
        latent_em.fit(model, str(tmp_path / "x.csv"))
    with pytest.raises(FileNotFoundError, match="no such .npy"):
        latent_em.fit(model, str(tmp_path / "missing.npy"))
    fortran = tmp_path / "f.npy"
    np.save(fortran, np.asfortranarray(blobs))
    with pytest.raises(ValueError, match="Fortran order"):
        latent_em.fit(model, str(fortran))
    with pytest.raises(ValueError, match="chunk 1 has rows of shape"):
        Chunks([blobs[:5], blobs[5:10, :2]])
    bad = blobs.copy()
    bad[700, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        latent_em.fit(model, Chunks([bad[:600], bad[600:]]))


class _CoinParams(NamedTuple):
    weights: np.ndarray
    probs: np.ndarray


class _NumericalOnlyMixture:
    """A Bernoulli mixture with only the generic numerical M-step (no expected_stats)."""

    constraints = {
        "weights": latent_em.constraints.Simplex(),
        "probs": latent_em.constraints.Interval(0.0, 1.0),
    }

    def initialize(self, x, rng):
        return _CoinParams(np.full(2, 0.5), np.array([0.3, 0.7]))

    def latent_support(self):
        return np.arange(2)

    def log_joint(self, params, x, z):
        p = params.probs[z]
        return np.log(params.weights[z]) + x * np.log(p) + (1 - x) * np.log1p(-p)


def test_chunked_data_need_a_closed_form_model():
    x = np.array([0.0, 1.0, 1.0, 0.0, 1.0])
    with pytest.raises(ModelContractError, match="closed-form M-step"):
        latent_em.fit(_NumericalOnlyMixture(), Chunks([x[:2], x[2:]]))


def test_importing_latent_em_does_not_import_dask_or_threadpoolctl():
    import subprocess
    import sys

    code = (
        "import sys, latent_em, latent_em.data; "
        "print(sorted(m for m in ('dask', 'distributed', 'threadpoolctl') if m in sys.modules))"
    )
    import os
    import pathlib

    root = str(pathlib.Path(latent_em.__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == "[]"
