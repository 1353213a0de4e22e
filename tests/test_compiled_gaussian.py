"""The compiled fused Gaussian-mixture E-step (latent_em.compiled.gaussian) against a
plain NumPy/scipy reference: ``scipy.stats.multivariate_normal.logpdf`` for every
component, ``scipy.special.logsumexp`` for the normalization, and the weighted moments
about the current means written out with ``einsum``; to 1e-12 relative for all four
covariance types, with sample weights, float32 data, chunking and any thread count."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from scipy import linalg, special, stats

pytest.importorskip("numba")

from latent_em.compiled import default_threads, gaussian_e_step  # noqa: E402
from latent_em.compiled.gaussian import BLOCK_ROWS, segment_rows  # noqa: E402

TYPES = ("full", "tied", "diag", "spherical")
RTOL = 1e-12


def _problem(
    rng: np.random.Generator, covariance_type: str, n: int = 3_000, d: int = 5, k: int = 4
):
    """Data, weights and parameters; returns the kernel's arguments and the full
    covariances for the reference."""
    centers = rng.normal(scale=3.0, size=(k, d))
    x = centers[rng.integers(k, size=n)] + rng.normal(size=(n, d)) @ rng.normal(size=(d, d))
    x += 10.0  # away from the origin: the kernel must not cancel
    w = rng.uniform(0.2, 3.0, size=n)
    means = centers + 10.0 + rng.normal(scale=0.5, size=(k, d))
    weights = rng.dirichlet(np.full(k, 2.0))
    if covariance_type in ("full", "tied"):
        a = rng.normal(size=(k, d, d))
        covs = a @ np.swapaxes(a, 1, 2) + 0.3 * np.eye(d)
        if covariance_type == "tied":
            covs = np.broadcast_to(covs[0], (k, d, d))
        # scikit-learn's convention: P = L⁻ᵀ, upper triangular, with Σ = L Lᵀ
        pcs = np.stack(
            [linalg.solve_triangular(np.linalg.cholesky(c), np.eye(d), lower=True).T for c in covs]
        )
        pc = pcs if covariance_type == "full" else pcs[0]
        log_det = np.log(np.diagonal(pcs, axis1=1, axis2=2)).sum(axis=1)
    elif covariance_type == "diag":
        var = rng.uniform(0.3, 3.0, size=(k, d))
        covs = np.stack([np.diag(v) for v in var])
        pc = 1.0 / np.sqrt(var)
        log_det = np.log(pc).sum(axis=1)
    else:
        var = rng.uniform(0.3, 3.0, size=k)
        covs = var[:, None, None] * np.eye(d)
        pc = 1.0 / np.sqrt(var)
        log_det = d * np.log(pc)
    const = np.log(weights) - 0.5 * d * np.log(2.0 * np.pi) + log_det
    return x, w, means, pc, const, weights, covs


def _reference(covariance_type, x, w, means, weights, covs):
    x = np.asarray(x, dtype=np.float64)
    k = means.shape[0]
    table = np.stack(
        [
            np.log(weights[j]) + stats.multivariate_normal(means[j], covs[j]).logpdf(x)
            for j in range(k)
        ],
        axis=1,
    )
    log_marginal = special.logsumexp(table, axis=1)
    rw = np.exp(table - log_marginal[:, None]) * w[:, None]  # (n, K)
    diffs = x[None, :, :] - means[:, None, :]  # (K, n, D)
    counts = rw.sum(axis=0)
    sum_dx = np.einsum("nk,knd->kd", rw, diffs)
    second = np.einsum("nk,knd,kne->kde", rw, diffs, diffs)
    second = {
        "full": second,
        "tied": second.sum(axis=0),
        "diag": np.einsum("kdd->kd", second),
        "spherical": np.einsum("kdd->k", second),
    }[covariance_type]
    return counts, sum_dx, second, log_marginal


def _assert_close(got, want, rtol=RTOL):
    for a, b in zip(got, want, strict=True):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.max(np.abs(b)))


@pytest.mark.parametrize("covariance_type", TYPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matches_scipy_reference(rng, covariance_type, dtype):
    x, w, means, pc, const, weights, covs = _problem(rng, covariance_type)
    x = x.astype(dtype)
    got = gaussian_e_step(covariance_type, x, w, means, pc, const, 1)
    # float32 data are widened exactly: the reference sees the same float32 values
    _assert_close(got, _reference(covariance_type, x, w, means, weights, covs))
    assert all(a.dtype == np.float64 for a in got)


@pytest.mark.parametrize("covariance_type", TYPES)
@pytest.mark.parametrize("d", [1, 3, 4, 9, 37])
def test_dimensions_that_are_not_a_multiple_of_the_panel_width(rng, covariance_type, d):
    x, w, means, pc, const, weights, covs = _problem(rng, covariance_type, n=700, d=d, k=3)
    got = gaussian_e_step(covariance_type, x, w, means, pc, const, 1)
    _assert_close(got, _reference(covariance_type, x, w, means, weights, covs))


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_thread_count_does_not_change_a_bit(rng, covariance_type):
    n = 5 * segment_rows(30_000) + 77  # several segments, a ragged last block
    x, w, means, pc, const, _, _ = _problem(rng, covariance_type, n=n, d=6, k=5)
    one = gaussian_e_step(covariance_type, x, w, means, pc, const, 1)
    for threads in (2, 3, 8):
        many = gaussian_e_step(covariance_type, x, w, means, pc, const, threads)
        for a, b in zip(one, many, strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_chunks_add_up_to_the_whole(rng, covariance_type):
    x, w, means, pc, const, _, _ = _problem(rng, covariance_type, n=2_500)
    whole = gaussian_e_step(covariance_type, x, w, means, pc, const, 2)
    cuts = [0, 1, BLOCK_ROWS - 1, 1_000, 1_001, 2_500]
    parts = [
        gaussian_e_step(covariance_type, x[a:b], w[a:b], means, pc, const, 1)
        for a, b in zip(cuts[:-1], cuts[1:], strict=True)
    ]
    summed = [sum(p[i] for p in parts) for i in range(3)]
    summed.append(np.concatenate([p[3] for p in parts]))
    _assert_close(summed, whole)


def test_sample_weights_are_a_linear_factor(rng):
    x, w, means, pc, const, _, _ = _problem(rng, "full")
    ones = gaussian_e_step("full", x, np.ones(len(x)), means, pc, const, 1)
    doubled = gaussian_e_step("full", x, np.full(len(x), 2.0), means, pc, const, 1)
    for a, b in zip(ones[:3], doubled[:3], strict=True):
        np.testing.assert_allclose(2.0 * a, b, rtol=1e-15)
    np.testing.assert_array_equal(ones[3], doubled[3])  # log p(x_n) does not see them
    # an integer weight is a repeated row
    rep = np.array([0, 1, 1, 2, 2, 2])
    a = gaussian_e_step("full", x[:3], np.array([1.0, 2.0, 3.0]), means, pc, const, 1)
    b = gaussian_e_step("full", x[rep], np.ones(6), means, pc, const, 1)
    _assert_close(a[:3], b[:3])


def test_an_empty_component_gets_nothing_and_all_empty_rows_are_minus_inf(rng):
    x, w, means, pc, const, weights, covs = _problem(rng, "diag")
    const = const.copy()
    const[1] = -np.inf  # weight zero
    counts, sum_dx, second, lm = gaussian_e_step("diag", x, w, means, pc, const, 1)
    assert counts[1] == 0.0 and np.all(sum_dx[1] == 0.0) and np.all(second[1] == 0.0)
    assert np.all(np.isfinite(lm))
    _, _, _, lm = gaussian_e_step("diag", x, w, means, pc, np.full(4, -np.inf), 1)
    assert np.all(lm == -np.inf)


def test_tiny_and_empty_inputs(rng):
    x, w, means, pc, const, weights, covs = _problem(rng, "full", n=3)
    _assert_close(
        gaussian_e_step("full", x, w, means, pc, const, 4),
        _reference("full", x, w, means, weights, covs),
    )
    counts, sum_dx, second, lm = gaussian_e_step("full", x[:0], w[:0], means, pc, const, 2)
    assert lm.shape == (0,) and np.all(counts == 0.0) and second.shape == (4, 5, 5)


def test_thread_knob(monkeypatch):
    monkeypatch.setenv("LATENT_EM_NUM_THREADS", "3")
    assert default_threads() == 3
    for bad in ("0", "-2", "two"):
        monkeypatch.setenv("LATENT_EM_NUM_THREADS", bad)
        with pytest.raises(ValueError, match="LATENT_EM_NUM_THREADS must be a positive integer"):
            default_threads()
    monkeypatch.delenv("LATENT_EM_NUM_THREADS")
    assert default_threads() >= 1


_IN_CHILD = """
import sys, numpy as np
from latent_em.compiled import gaussian_e_step
x = np.random.default_rng(0).normal(size=(500, 3))
counts, _, _, lm = gaussian_e_step(
    "diag", x, np.ones(500), np.zeros((2, 3)), np.ones((2, 3)), np.log([0.5, 0.5]), 2
)
ref = -0.5 * np.sum(x * x, axis=1)  # const holds only log(1/2): no 2π term
assert np.allclose(lm, ref, rtol=1e-13, atol=0) and abs(counts.sum() - 500) < 1e-9
import latent_em.compiled.gaussian as g
print(type(g._segment_diagonal._cache).__name__, g.__file__.startswith(sys.argv[1]))
"""


def test_works_without_a_writable_cache_directory(tmp_path):
    # a copy of the package whose __pycache__ directories cannot be created (a file is
    # in the way: this holds even for root), with Numba's user cache and NUMBA_CACHE_DIR
    # unusable too: Numba finds no cache locator, and the kernels compile in memory
    import latent_em

    copy = tmp_path / "src"
    shutil.copytree(
        os.path.dirname(latent_em.__file__),
        copy / "latent_em",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    for folder in (copy / "latent_em", copy / "latent_em" / "compiled"):
        (folder / "__pycache__").write_text("not a directory")
    unusable = str(tmp_path / "blocked" / "numba")
    (tmp_path / "blocked").write_text("a file, so nothing can be created under it")
    env = dict(
        os.environ,
        PYTHONPATH=str(copy),
        NUMBA_CACHE_DIR=unusable,
        XDG_CACHE_HOME=unusable,
        HOME=unusable,
        PYTHONDONTWRITEBYTECODE="1",
    )
    out = subprocess.run(
        [sys.executable, "-W", "error", "-c", _IN_CHILD, str(copy)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["NullCache", "True"]  # the copy, compiled without a cache


def test_import_latent_em_does_not_import_numba():
    code = "import sys, latent_em; assert 'numba' not in sys.modules, 'numba imported'"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_bad_arguments_are_named():
    x = np.zeros((10, 2))
    args = (np.ones(10), np.zeros((1, 2)), np.ones((1, 2)), np.zeros(1))
    with pytest.raises(ValueError, match="covariance_type must be one of"):
        gaussian_e_step("diagonal", x, *args)
    with pytest.raises(ValueError, match="x must be 2-D"):
        gaussian_e_step("diag", np.zeros(10), *args)


def test_partial_statistics_stay_within_their_memory_budget():
    # D = 100, K = 50 full: 4 MB of partial statistics per segment, 16 segments at most
    floats = 50 * 100 * 100
    for n in (10_000, 1_000_000, 10_000_000):
        rows = segment_rows(n, floats)
        assert rows % BLOCK_ROWS == 0 and rows * 16 >= n
        assert -(-n // rows) * floats * 8 <= 64 << 20
    assert segment_rows(10_000_000) * 256 >= 10_000_000  # small statistics: 256 segments
    assert segment_rows(100, 10**9) >= 100  # one segment when even one is over budget
