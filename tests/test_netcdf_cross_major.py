"""netCDF files cross the ArviZ majors: a file written under ArviZ 0.2x (``InferenceData``)
reads under 1.x (``xarray.DataTree``) and the other way round.

``tests/data/em_arviz0.nc`` was written under ArviZ 0.2x and ``tests/data/em_arviz1.nc``
under 1.x, both by ``tests/data/make_netcdf_fixtures.py``. Whichever major is installed,
both files must read with :func:`~latent_em.bridges.arviz.from_netcdf`, hold what the
fixture recipe computes now, and go through :func:`~latent_em.bridges.arviz.summary`.
Oracle: the recipe refitted in the test (same data, K and seeds).
"""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.bridges

az = pytest.importorskip("arviz")

from latent_em.bridges._compat import group_names  # noqa: E402
from latent_em.bridges.arviz import from_netcdf, summary  # noqa: E402

from .data.make_netcdf_fixtures import N_COMPONENTS, N_DRAWS, fixture_object, fixture_path  # noqa: E402

MAJORS = (0, 1)
REGENERATE = (
    "if the recipe changed on purpose, rerun tests/data/make_netcdf_fixtures.py under both majors"
)


@pytest.fixture(scope="module")
def expected():
    return fixture_object()


def _writer_version(obj) -> str:
    # each group records the ArviZ that wrote it: 0.2x as "arviz_version", 1.x (arviz-base)
    # as "creation_library_version"
    attrs = obj["posterior"].attrs
    return str(attrs.get("arviz_version") or attrs.get("creation_library_version"))


@pytest.mark.parametrize("major", MAJORS)
def test_fixture_was_written_by_its_major(major):
    # a fixture regenerated under the wrong interpreter would make the cross-major test
    # compare one major with itself
    got = from_netcdf(str(fixture_path(major)))
    assert _writer_version(got).split(".")[0] == str(major)


@pytest.mark.parametrize("major", MAJORS)
def test_read_matches_the_recomputed_fit(major, expected):
    got = from_netcdf(str(fixture_path(major)))
    assert set(group_names(got)) == set(group_names(expected)), REGENERATE
    for group in group_names(expected):
        names = set(expected[group].data_vars)
        assert set(got[group].data_vars) == names, (group, REGENERATE)
        for name in names:
            read, recomputed = got[group][name], expected[group][name]
            assert read.dims == recomputed.dims, (group, name)
            np.testing.assert_allclose(
                read.values, recomputed.values, rtol=1e-10, atol=1e-12, err_msg=f"{group}/{name}"
            )
    for key in ("latent_em_model", "draws_kind", "n_draws", "em_converged"):
        assert got.attrs[key] == expected.attrs[key], key
    assert got.attrs["em_log_likelihood"] == pytest.approx(
        expected.attrs["em_log_likelihood"], rel=1e-10
    )


@pytest.mark.parametrize("major", MAJORS)
def test_summary_of_what_was_read(major):
    got = from_netcdf(str(fixture_path(major)))
    table = summary(got, ["weights", "means"])
    k, d = N_COMPONENTS, got["observed_data"]["x"].shape[1]
    means_rows = [f"means[{i}, {j}]" for i in range(k) for j in range(d)]
    assert list(table.index) == [f"weights[{i}]" for i in range(k)] + means_rows
    draws = got["posterior"]["means"].values.reshape(N_DRAWS, k * d)
    np.testing.assert_allclose(table.loc[means_rows, "mean"], draws.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(table.loc[means_rows, "sd"], draws.std(axis=0, ddof=1), rtol=1e-10)
    assert np.all(table["sd"] > 0)
    assert np.all(table["lower"] <= table["mean"]) and np.all(table["mean"] <= table["upper"])
