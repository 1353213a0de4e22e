"""The compiled kernels' own ``exp`` (latent_em.compiled.fastexp) against the exact
value: NumPy's 80-bit extended-precision ``exp`` (x86 ``long double``, 64-bit
significand, error far below a float64 ulp) over the whole domain ``[-708.39, 0]``."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")

from latent_em.compiled import exp_nonpositive  # noqa: E402

EXTENDED = np.finfo(np.longdouble).nmant >= 63


def _ulps(x: np.ndarray) -> np.ndarray:
    """Error of ``exp_nonpositive(x)`` in float64 ulps of the exact result."""
    got = exp_nonpositive(x).astype(np.longdouble)
    exact = np.exp(x.astype(np.longdouble))
    ulp = np.spacing(exact.astype(np.float64)).astype(np.longdouble)
    return np.asarray((got - exact) / ulp, dtype=np.float64)


@pytest.mark.skipif(not EXTENDED, reason="needs x86 extended precision as the reference")
def test_every_point_of_a_fine_grid_is_within_one_ulp():
    x = -np.arange(0, int(708.39 * 1024) + 1) / 1024.0  # 725 392 points, spacing 2**-10
    err = np.abs(_ulps(x))
    assert err.max() < 1.0, (err.max(), x[err.argmax()])


@pytest.mark.skipif(not EXTENDED, reason="needs x86 extended precision as the reference")
def test_random_points_and_the_reduction_boundaries_are_within_one_ulp(rng):
    x = [-rng.uniform(0, 708.39, 200_000), -rng.exponential(1e-3, 50_000)]
    # where the reduction's integer k changes, x = (m + 1/2) ln 2, and a few ulps either side
    mid = -(np.arange(0, 1022) + 0.5) * np.log(2.0)
    x += [np.nextafter(mid, -np.inf), mid, np.nextafter(mid, 0.0)]
    x = np.clip(np.concatenate(x), -708.39, 0.0)
    assert np.abs(_ulps(x)).max() < 1.0


def test_special_values_and_the_subnormal_range():
    x = np.array([0.0, -0.0, -1e-300, -np.inf, np.nan, -708.39, -708.4, -745.2, -1e308])
    got = exp_nonpositive(x)
    assert got[0] == 1.0 and got[1] == 1.0 and got[2] == 1.0
    assert got[3] == 0.0 and np.isnan(got[4])
    assert got[5] == pytest.approx(np.exp(-708.39), rel=1e-15) and got[5] > 0
    # below the domain: 0 where the exact value is subnormal (< 2.3e-308) or 0
    assert np.all(got[6:] == 0.0) and np.all(np.exp(x[6:]) < np.finfo(np.float64).tiny)


def test_shape_and_dtype_are_kept_and_input_untouched():
    x = -np.arange(12, dtype=np.float32).reshape(3, 4)
    before = x.copy()
    got = exp_nonpositive(x)
    assert got.shape == (3, 4) and got.dtype == np.float64
    np.testing.assert_array_equal(x, before)
    np.testing.assert_allclose(got, np.exp(x.astype(np.float64)), rtol=3e-16)


def test_floor_flushes_to_zero_and_leaves_the_rest():
    from latent_em.compiled.fastexp import exp_inplace

    x = np.array([0.0, -1.0, -499.9, -500.0, -500.1, -700.0, -np.inf])
    a = x.copy()
    exp_inplace(a, np.empty(a.size, dtype=np.int64), -500.0)
    np.testing.assert_allclose(a[:4], np.exp(x[:4]), rtol=3e-16)
    assert np.all(a[4:] == 0.0)
