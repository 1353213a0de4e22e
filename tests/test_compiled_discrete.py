"""The compiled fused E-steps of the discrete mixtures (latent_em.compiled.discrete)
against the plain NumPy reference of each model: ``log_weighted_densities`` (the
matrix forms of ``bernoulli_log_table`` / ``poisson_log_table``, the indexed log-tables
of the categorical model), ``posterior_from_table`` and ``expected_stats``.

The reference is also checked against scipy's distributions on the same problems
(``scipy.stats.bernoulli`` / ``poisson`` log-pmfs, ``scipy.special.logsumexp``), so the
compiled kernels are tied to values we did not write. Agreement is to 1e-12 relative on
random problems with boundary parameters (probabilities 0 and 1, rates 0), impossible
rows, empty components, zero sample weights, K = 1, D = 1, N not a multiple of the block
size, float32 / integer / boolean input; any thread count gives bit-identical results;
whole fits through ``latent_em.fit`` agree with the NumPy path, chunked and not.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from scipy import special, stats

pytest.importorskip("numba")

import latent_em  # noqa: E402
import latent_em.compiled as compiled  # noqa: E402
from latent_em.compiled import discrete as kernels  # noqa: E402
from latent_em.models import (  # noqa: E402
    BernoulliMixtureModel,
    CategoricalMixtureModel,
    PoissonMixtureModel,
    _discrete,
)

RTOL = 1e-12
#: the kernels give responsibility 0 below a log-ratio of FLUSH_BELOW = -500 (exp < 7e-218)
#: where NumPy's exp gives a tiny positive number: an absolute allowance far below that
#: of any statistic that is not itself ~0
ATOL = 1e-200


def _assert_close(actual, desired, rtol=RTOL):
    actual = np.asarray(actual)
    desired = np.asarray(desired)
    assert actual.shape == desired.shape
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=ATOL)


def _assert_same_e_step(result, reference, rtol=RTOL):
    (stats, lm), (ref_stats, ref_lm) = result, reference
    # -inf (impossible rows) at the same places, finite values to rtol
    np.testing.assert_array_equal(np.isfinite(lm), np.isfinite(ref_lm))
    _assert_close(lm, ref_lm, rtol)
    for a, b in zip(stats, ref_stats, strict=True):
        if isinstance(b, tuple):
            for u, v in zip(a, b, strict=True):
                _assert_close(u, v, rtol)
        else:
            _assert_close(a, b, rtol)


def _leaves(a):
    return a if isinstance(a, tuple) else (a,)


def _weights(rng, n):
    w = rng.uniform(0.0, 3.0, size=n)
    w[rng.random(n) < 0.1] = 0.0  # zero sample weights
    return w


# ------------------------------------------------------------------ problems


def _bernoulli_problem(rng, n, d, k, boundary=True, empty=False):
    probs = rng.uniform(0.02, 0.98, size=(k, d))
    x = (rng.random((n, d)) < rng.uniform(0.1, 0.9, size=d)).astype(float)
    if boundary and d > 1:
        mask = rng.random((k, d)) < 0.15
        probs[mask] = rng.integers(0, 2, size=int(mask.sum())).astype(float)
        # impossible rows: column 0 has θ = 0 in every class; rows with x_0 = 1 are impossible
        probs[:, 0] = 0.0
        x[rng.random(n) < 0.05, 0] = 1.0
    weights = rng.dirichlet(np.full(k, 2.0))
    if empty and k > 1:
        weights[0] = 0.0
        weights /= weights.sum()
    model = BernoulliMixtureModel(k)
    return model, model.check_data(x), type(model.initialize(x, rng))(weights, probs)


def _poisson_problem(rng, n, d, k, boundary=True, empty=False, scale=5.0):
    rates = rng.uniform(0.2, scale, size=(k, d))
    z = rng.integers(k, size=n)
    x = rng.poisson(rates[z]).astype(float)
    if boundary and d > 1:
        mask = rng.random((k, d)) < 0.15
        rates[mask] = 0.0
        rates[:, 0] = 0.0  # every row with x_0 > 0 is impossible
    weights = rng.dirichlet(np.full(k, 2.0))
    if empty and k > 1:
        weights[-1] = 0.0
        weights /= weights.sum()
    model = PoissonMixtureModel(k)
    return model, model.check_data(x), type(model.initialize(x, rng))(weights, rates)


def _categorical_problem(rng, n, sizes, k, boundary=True, empty=False):
    probs = [rng.dirichlet(np.ones(c), size=k) for c in sizes]
    x = np.stack([rng.integers(c, size=n) for c in sizes], axis=1)
    if boundary:
        for p in probs:
            p[rng.random(p.shape) < 0.15] = 0.0
        probs[0][:, -1] = 0.0  # rows with the last code of item 0 are impossible
        for p in probs:
            p[p.sum(axis=1) == 0.0, 0] = 1.0
            p /= p.sum(axis=1, keepdims=True)
    weights = rng.dirichlet(np.full(k, 2.0))
    if empty and k > 1:
        weights[0] = 0.0
        weights /= weights.sum()
    model = CategoricalMixtureModel(k, n_categories=tuple(sizes))
    return model, model.check_data(x), type(model.initialize(x, rng))(weights, tuple(probs))


def _reference(model, params, x, w):
    """The NumPy reference: log_weighted_densities + posterior_from_table + expected_stats."""
    table = model.log_weighted_densities(params, x)
    post, lm = _discrete.posterior_from_table(table)
    return model.expected_stats(params, x, post, w), lm


def _bernoulli_kernel(model, params, x, w, threads=1):
    counts, sum_x, lm = compiled.bernoulli_e_step(x, w, _log(params.weights), params.probs, threads)
    return (counts, sum_x), lm


def _log(v):
    with np.errstate(divide="ignore"):
        return np.log(v)


def _poisson_kernel(model, params, x, w, threads=1):
    top = int(np.max(x)) if np.size(x) else 0
    lf = special.gammaln(np.arange(top + 1) + 1.0)
    counts, sum_x, lm = compiled.poisson_e_step(
        x, w, _log(params.weights), params.rates, lf, threads
    )
    return (counts, sum_x), lm


def _categorical_kernel(model, params, x, w, threads=1):
    counts, sums, lm = compiled.categorical_e_step(
        x, w, _log(params.weights), params.probs, threads
    )
    return (counts, sums), lm


# shapes: N not a multiple of any block size, K = 1, D = 1, odd K, wide D
SHAPES = [(1, 1, 1), (333, 1, 3), (1_000, 7, 1), (2_531, 13, 4), (4_099, 50, 5), (9_001, 20, 10)]


# ------------------------------------------------------------------ the reference itself


def test_the_reference_agrees_with_scipy_distributions(rng):
    """Tie the NumPy reference to scipy's log-pmfs and logsumexp (interior parameters)."""
    model, x, params = _bernoulli_problem(rng, 500, 6, 3, boundary=False)
    table = np.log(params.weights) + np.stack(
        [stats.bernoulli(params.probs[j]).logpmf(x).sum(axis=1) for j in range(3)], axis=1
    )
    _, lm = _reference(model, params, x, np.ones(500))
    np.testing.assert_allclose(lm, special.logsumexp(table, axis=1), rtol=1e-13)

    model, x, params = _poisson_problem(rng, 500, 4, 3, boundary=False)
    table = np.log(params.weights) + np.stack(
        [stats.poisson(params.rates[j]).logpmf(x).sum(axis=1) for j in range(3)], axis=1
    )
    _, lm = _reference(model, params, x, np.ones(500))
    np.testing.assert_allclose(lm, special.logsumexp(table, axis=1), rtol=1e-13)

    model, x, params = _categorical_problem(rng, 500, (2, 3, 5), 3, boundary=False)
    table = np.log(params.weights) + np.stack(
        [sum(np.log(p[j, x[:, i]]) for i, p in enumerate(params.probs)) for j in range(3)],
        axis=1,
    )
    _, lm = _reference(model, params, x, np.ones(500))
    np.testing.assert_allclose(lm, special.logsumexp(table, axis=1), rtol=1e-13)


# ------------------------------------------------------------------ kernels vs reference


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("shape", SHAPES)
def test_bernoulli_kernel_matches_the_numpy_reference(seed, shape):
    rng = np.random.default_rng([seed, *shape])
    n, d, k = shape
    model, x, params = _bernoulli_problem(rng, n, d, k, empty=seed % 2 == 1)
    w = _weights(rng, n)
    _assert_same_e_step(_bernoulli_kernel(model, params, x, w), _reference(model, params, x, w))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("shape", SHAPES)
def test_poisson_kernel_matches_the_numpy_reference(seed, shape):
    rng = np.random.default_rng([seed, *shape])
    n, d, k = shape
    model, x, params = _poisson_problem(
        rng, n, d, k, empty=seed % 2 == 1, scale=[1, 5, 40, 300][seed]
    )
    w = _weights(rng, n)
    _assert_same_e_step(_poisson_kernel(model, params, x, w), _reference(model, params, x, w))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("shape", SHAPES)
def test_categorical_kernel_matches_the_numpy_reference(seed, shape):
    rng = np.random.default_rng([seed, *shape])
    n, d, k = shape
    sizes = tuple(int(c) for c in rng.integers(2, 7, size=d))
    model, x, params = _categorical_problem(rng, n, sizes, k, empty=seed % 2 == 1)
    w = _weights(rng, n)
    _assert_same_e_step(_categorical_kernel(model, params, x, w), _reference(model, params, x, w))


def test_the_problems_exercise_the_boundaries(rng):
    """The random problems above do contain impossible rows, -inf cells and empty classes."""
    for make, size in (
        (_bernoulli_problem, 7),
        (_poisson_problem, 7),
        (lambda r, n, d, k, **kw: _categorical_problem(r, n, (3,) * d, k, **kw), 7),
    ):
        model, x, params = make(rng, 2_000, size, 4, empty=True)
        table = model.log_weighted_densities(params, x)
        assert np.any(np.all(np.isneginf(table), axis=1))  # impossible rows
        assert np.any(np.isneginf(table) & np.isfinite(table.max(axis=1))[:, None])
        assert np.all(np.isneginf(table[:, 0])) or np.all(np.isneginf(table[:, -1]))


@pytest.mark.parametrize(
    "make, kernel",
    [
        (_bernoulli_problem, _bernoulli_kernel),
        (_poisson_problem, _poisson_kernel),
        (
            lambda r, n, d, k, **kw: _categorical_problem(r, n, (2, 3, 4, 5, 6) * 2, k, **kw),
            _categorical_kernel,
        ),
    ],
    ids=["bernoulli", "poisson", "categorical"],
)
def test_any_thread_count_gives_bit_identical_results(make, kernel):
    rng = np.random.default_rng(7)
    model, x, params = make(rng, 30_001, 10, 6)  # several row segments
    w = _weights(rng, len(x))
    assert kernels.segment_rows(len(x), 100) < len(x) // 4
    (s1, lm1) = kernel(model, params, x, w, 1)
    for threads in (2, 3, 8):
        stats_t, lm_t = kernel(model, params, x, w, threads)
        np.testing.assert_array_equal(lm_t, lm1)
        for a, b in zip(stats_t, s1, strict=True):
            for u, v in zip(_leaves(a), _leaves(b), strict=True):
                np.testing.assert_array_equal(u, v)
    _assert_same_e_step((s1, lm1), _reference(model, params, x, w))


@pytest.mark.parametrize("dtype", [np.float32, np.int8, np.int64, bool])
def test_bernoulli_kernel_accepts_other_dtypes(rng, dtype):
    model, x, params = _bernoulli_problem(rng, 3_001, 9, 3)
    w = _weights(rng, len(x))
    expected = _bernoulli_kernel(model, params, x, w)
    got = _bernoulli_kernel(model, params, x.astype(dtype), w)
    np.testing.assert_array_equal(got[1], expected[1])
    for a, b in zip(got[0], expected[0], strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.uint16])
def test_poisson_kernel_accepts_other_dtypes(rng, dtype):
    model, x, params = _poisson_problem(rng, 3_001, 9, 3)
    w = _weights(rng, len(x))
    expected = _poisson_kernel(model, params, x, w)
    got = _poisson_kernel(model, params, x.astype(dtype), w)
    np.testing.assert_array_equal(got[1], expected[1])
    for a, b in zip(got[0], expected[0], strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int8, np.uint8])
def test_categorical_kernel_accepts_other_dtypes(rng, dtype):
    model, x, params = _categorical_problem(rng, 3_001, (2, 4, 3), 3)
    w = _weights(rng, len(x))
    expected = _categorical_kernel(model, params, x, w)
    got = _categorical_kernel(model, params, x.astype(dtype), w)
    np.testing.assert_array_equal(got[1], expected[1])
    for a, b in zip(got[0][1], expected[0][1], strict=True):
        np.testing.assert_array_equal(a, b)


def test_categorical_table_is_the_reference_table(rng):
    """Same additions in the same order: the log-marginals of rows whose classes are
    all possible agree to a few ulp (only exp and log differ)."""
    model, x, params = _categorical_problem(rng, 5_000, (3, 4, 2, 5), 4, boundary=False)
    w = np.ones(len(x))
    (_, lm), (_, ref_lm) = _categorical_kernel(model, params, x, w), _reference(model, params, x, w)
    np.testing.assert_allclose(lm, ref_lm, rtol=4 * np.finfo(float).eps)


def test_impossible_rows_get_uniform_responsibilities(rng):
    # every class has θ_0 = 0: a row with x_0 = 1 contributes w / K to every class
    k = 3
    x = np.array([[1.0, 0.0], [0.0, 1.0]])
    probs = np.array([[0.0, 0.3], [0.0, 0.6], [0.0, 0.9]])
    w = np.array([2.0, 0.0])  # only the impossible row counts
    counts, sum_x, lm = compiled.bernoulli_e_step(x, w, np.log(np.full(k, 1 / k)), probs, 1)
    assert lm[0] == -np.inf and np.isfinite(lm[1])
    np.testing.assert_array_equal(counts, np.full(k, 2.0 / k))
    np.testing.assert_array_equal(sum_x, [[2.0 / k, 0.0]] * k)
    # Poisson: a zero rate in every component, a positive count there
    counts, sum_x, lm = compiled.poisson_e_step(
        np.array([[3.0]]), np.ones(1), np.log([0.5, 0.5]), np.zeros((2, 1)), np.zeros(4), 1
    )
    assert lm[0] == -np.inf
    np.testing.assert_array_equal(counts, [0.5, 0.5])
    np.testing.assert_array_equal(sum_x, [[1.5], [1.5]])


def test_boundary_cells_are_exact():
    """θ = 1 with x = 1 and θ = 0 with x = 0 are certain (log 1 = 0), not NaN."""
    x = np.array([[1.0, 0.0, 1.0]])
    probs = np.array([[1.0, 0.0, 0.5], [0.5, 0.5, 0.5]])
    _, _, lm = compiled.bernoulli_e_step(x, np.ones(1), np.log([0.5, 0.5]), probs, 1)
    np.testing.assert_allclose(lm, np.log(0.5 * 0.5 + 0.5 * 0.125), rtol=1e-15)
    # λ = 0 with x = 0: probability one
    _, _, lm = compiled.poisson_e_step(
        np.array([[0.0, 2.0]]),
        np.ones(1),
        np.zeros(1),
        np.array([[0.0, 1.5]]),
        special.gammaln(np.arange(3) + 1.0),
        1,
    )
    np.testing.assert_allclose(lm, stats.poisson(1.5).logpmf(2), rtol=1e-14)


def test_kernel_errors_name_the_problem():
    with pytest.raises(ValueError, match="column 1 holds the code 3"):
        compiled.categorical_e_step(
            np.array([[0, 3]]), np.ones(1), np.zeros(1), [np.full((1, 2), 0.5)] * 2
        )
    with pytest.raises(ValueError, match="column 0 holds the code -1"):
        compiled.categorical_e_step(
            np.array([[-1, 0]]), np.ones(1), np.zeros(1), [np.full((1, 2), 0.5)] * 2
        )
    with pytest.raises(ValueError, match="non-negative integer counts no larger than 2"):
        compiled.poisson_e_step(
            np.array([[3.0]]), np.ones(1), np.zeros(1), np.ones((1, 1)), np.zeros(3)
        )
    with pytest.raises(ValueError, match="non-negative integer counts"):
        compiled.poisson_e_step(
            np.array([[-1.0]]), np.ones(1), np.zeros(1), np.ones((1, 1)), np.zeros(3)
        )
    with pytest.raises(ValueError, match=r"probs must have shape \(K, 2\)"):
        compiled.bernoulli_e_step(np.zeros((3, 2)), np.ones(3), np.zeros(1), np.ones((1, 3)))
    with pytest.raises(ValueError, match=r"weights must have shape \(3,\)"):
        compiled.bernoulli_e_step(np.zeros((3, 2)), np.ones(4), np.zeros(1), np.ones((1, 2)))


def test_negative_codes_are_rejected_by_the_numpy_path_too():
    # np.take wraps a negative index around: a code -1 used to read the last category
    model = CategoricalMixtureModel(1)
    params = model.initialize(np.array([[0, 1], [1, 0]]), np.random.default_rng(0))
    with pytest.raises(ValueError, match="column 0 holds the code -1"):
        model.log_weighted_densities(params, np.array([[-1, 0]]))


# ------------------------------------------------------------------ the models' dispatch


@pytest.fixture
def calls(monkeypatch):
    """Count the compiled kernels' calls through latent_em.compiled."""
    seen: list[str] = []
    for name in ("bernoulli_e_step", "poisson_e_step", "categorical_e_step"):
        kernel = getattr(compiled, name)

        def counting(*args, _kernel=kernel, _name=name, **kwargs):
            seen.append(_name)
            return _kernel(*args, **kwargs)

        monkeypatch.setattr(compiled, name, counting)
    return seen


MODELS = {
    "bernoulli": lambda rng, n: _bernoulli_problem(rng, n, 12, 4),
    "poisson": lambda rng, n: _poisson_problem(rng, n, 6, 4),
    "categorical": lambda rng, n: _categorical_problem(rng, n, (2, 3, 4, 3, 2), 4),
}


@pytest.mark.parametrize("name", MODELS)
def test_model_e_step_dispatches_on_size(name, rng, calls, monkeypatch):
    model, x, params = MODELS[name](rng, 30_000)  # N·K = 120 000 >= 10⁵: compiled
    w = _weights(rng, len(x))
    result = model.e_step(params, x, w)
    assert calls == [f"{name}_e_step"]
    _assert_same_e_step(result, _reference(model, params, x, w))
    small = model.e_step(params, x[:1000], w[:1000])  # N·K = 4 000: NumPy
    assert calls == [f"{name}_e_step"]
    _assert_same_e_step(small, _reference(model, params, x[:1000], w[:1000]), rtol=0)
    monkeypatch.setattr(compiled, "COMPILED_MIN_SIZE", 0)
    model.e_step(params, x[:1000], w[:1000])
    assert calls == [f"{name}_e_step"] * 2


def test_poisson_model_keeps_the_numpy_path_for_huge_counts(rng, calls, monkeypatch):
    # above STABLE_COUNT the table is Loader's element-wise form, which has no kernel
    monkeypatch.setattr(compiled, "COMPILED_MIN_SIZE", 0)
    model, x, params = _poisson_problem(rng, 200, 3, 2, boundary=False)
    x[0, 0] = 1e6
    params = params._replace(rates=params.rates * 100.0)
    result = model.e_step(params, x, np.ones(200))
    assert calls == []
    _assert_same_e_step(result, _reference(model, params, x, np.ones(200)), rtol=0)


def _fit(model, x, params, **kwargs):
    return latent_em.fit(
        model, x, params=params, tol=0.0, max_iter=15, warn_not_converged=False, **kwargs
    )


@pytest.mark.parametrize("name", MODELS)
def test_fit_on_the_compiled_path_equals_the_numpy_path(name, rng, calls, monkeypatch):
    model, x, _ = MODELS[name](rng, 4_000)
    start = model.initialize(x, np.random.default_rng(1))
    w = rng.uniform(0.5, 2.0, size=len(x))
    monkeypatch.setattr(compiled, "COMPILED_MIN_SIZE", np.inf)
    numpy_fit = _fit(model, x, start, sample_weight=w)
    assert calls == []
    monkeypatch.setattr(compiled, "COMPILED_MIN_SIZE", 0)
    compiled_fit = _fit(model, x, start, sample_weight=w)
    assert len(calls) >= 15
    chunked_fit = _fit(model, x, start, sample_weight=w, chunk_size=999)
    for other in (compiled_fit, chunked_fit):
        assert other.n_iter == numpy_fit.n_iter
        assert other.log_likelihood == pytest.approx(numpy_fit.log_likelihood, rel=1e-12)
        for a, b in zip(other.params, numpy_fit.params, strict=True):
            for u, v in zip(_leaves(a), _leaves(b), strict=True):
                np.testing.assert_allclose(u, v, rtol=1e-10, atol=1e-13)


def test_fit_is_the_same_with_any_thread_count(rng, calls, monkeypatch):
    model, x, _ = _bernoulli_problem(rng, 20_000, 12, 5, boundary=False)
    start = model.initialize(x, np.random.default_rng(1))
    fits = []
    for threads in (1, 2, 3):
        monkeypatch.setenv(compiled.THREADS_VARIABLE, str(threads))
        fits.append(_fit(model, x, start))
    assert calls
    for other in fits[1:]:
        assert other.log_likelihood == fits[0].log_likelihood
        np.testing.assert_array_equal(other.params.probs, fits[0].params.probs)


def test_small_discrete_fits_compile_nothing():
    code = (
        "import sys, numpy as np, latent_em\n"
        "rng = np.random.default_rng(0)\n"
        "x = (rng.random((2000, 6)) < 0.3).astype(int)\n"
        "latent_em.fit(latent_em.BernoulliMixtureModel(3), x, random_state=0)\n"
        "latent_em.fit(latent_em.PoissonMixtureModel(3), rng.poisson(2.0, (2000, 4)),\n"
        "              random_state=0)\n"
        "latent_em.fit(latent_em.CategoricalMixtureModel(3), rng.integers(3, size=(2000, 4)),\n"
        "              random_state=0)\n"
        "assert 'numba' not in sys.modules, 'numba imported for a small fit'\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_block_and_segment_sizes_do_not_depend_on_threads():
    assert kernels.block_rows(50) % 8 == 0 and 32 <= kernels.block_rows(50) <= 256
    assert kernels.block_rows(1) == 256 and kernels.block_rows(10_000) == 32
    assert kernels.segment_rows(200_000, 500) % 256 == 0


def test_discrete_fits_hold_blas_at_one_thread():
    # the compiled kernels run their own threads; a BLAS woken between E-steps would spin
    # on the same cores (the discrete models' fit_context, as the Gaussian mixture's)
    code = (
        "import numpy as np, latent_em\n"
        "from threadpoolctl import threadpool_info\n"
        "seen = []\n"
        "def look(*_):\n"
        "    seen.extend(p['num_threads'] for p in threadpool_info() if p['user_api'] == 'blas')\n"
        "rng = np.random.default_rng(0)\n"
        "x = (rng.random((500, 4)) < 0.5).astype(int)\n"
        "for model, data in [(latent_em.BernoulliMixtureModel(2), x),\n"
        "                    (latent_em.PoissonMixtureModel(2), 3 * x),\n"
        "                    (latent_em.CategoricalMixtureModel(2), x)]:\n"
        "    latent_em.fit(model, data, random_state=0, max_iter=3, tol=0,\n"
        "                  warn_not_converged=False, callback=look)\n"
        "assert seen and all(t == 1 for t in seen), seen\n"
        "after = [p['num_threads'] for p in threadpool_info() if p['user_api'] == 'blas']\n"
        "assert all(t == 2 for t in after), after  # restored when the fit returns\n"
    )
    env = dict(os.environ, OPENBLAS_NUM_THREADS="2", MKL_NUM_THREADS="2")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr


_IN_CHILD = """
import sys, numpy as np
from latent_em.compiled import categorical_e_step
codes = np.random.default_rng(0).integers(3, size=(500, 2))
counts, sums, lm = categorical_e_step(codes, np.ones(500), np.log([0.5, 0.5]),
                                      [np.full((2, 3), 1 / 3)] * 2, 2)
assert np.allclose(lm, np.log(1 / 9), rtol=1e-14) and np.allclose(counts, 250.0)
import latent_em.compiled.discrete as d
print(type(d._segment_categorical._cache).__name__, d.__file__.startswith(sys.argv[1]))
"""


def test_works_without_a_writable_cache_directory(tmp_path):
    # as tests/test_compiled_gaussian.py: a copy of the package where no cache directory
    # can be created; the kernels compile in memory
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
    assert out.stdout.split() == ["NullCache", "True"]


class _TemperedBernoulli(BernoulliMixtureModel):
    """A user's subclass with its own table (tempered likelihood): the fused E-step must
    use it, i.e. take the table path, whatever N·K."""

    def log_weighted_densities(self, params, x):
        return 0.5 * super().log_weighted_densities(params, x)


def test_subclass_with_its_own_table_keeps_the_table_path(rng, calls, monkeypatch):
    monkeypatch.setattr(compiled, "COMPILED_MIN_SIZE", 0)
    _, x, params = _bernoulli_problem(rng, 3_000, 8, 3, boundary=False)
    model = _TemperedBernoulli(3)
    w = np.ones(len(x))
    _assert_same_e_step(model.e_step(params, x, w), _reference(model, params, x, w), rtol=0)
    result = _fit(model, x, params)  # the driver's fused-vs-unfused check passes
    assert np.isfinite(result.log_likelihood)
    assert calls == []
