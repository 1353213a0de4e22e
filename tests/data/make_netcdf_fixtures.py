"""Write the netCDF fixtures that tests/test_netcdf_cross_major.py reads.

Run it once under each ArviZ major, from the repository root::

    PYTHONPATH=. /path/to/python-with-arviz-0.2x tests/data/make_netcdf_fixtures.py
    PYTHONPATH=. /path/to/python-with-arviz-1.x tests/data/make_netcdf_fixtures.py

The first writes ``tests/data/em_arviz0.nc`` (an ``InferenceData``), the second
``tests/data/em_arviz1.nc`` (an ``xarray.DataTree``). Both hold the same EM fit, built by
:func:`fixture_object`, which the test calls again to recompute the expected values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: the recipe; the test recomputes from the same values
N_COMPONENTS = 2
FIT_SEED = 0
N_DRAWS = 10
DRAWS_SEED = 1

DATA_DIR = Path(__file__).resolve().parent


def fixture_path(major: int) -> Path:
    """Where the fixture written under ArviZ ``major`` (0 or 1) lives."""
    return DATA_DIR / f"em_arviz{major}.nc"


def fixture_object() -> Any:
    """Gaussian mixture (K = 2) on Old Faithful with a few bootstrap draws, as an ArviZ
    object. Bootstrap draws rather than the single point estimate, so that
    ``arviz.summary`` has a spread to compute."""
    import latent_em
    from latent_em.bridges.arviz import to_inference_data
    from latent_em.datasets import load_faithful

    x = load_faithful()
    # the files were written with scikit-learn's additive reg_covar, the default until
    # the eigenvalue floor (issue 12): the recipe names it so that they still match
    fitted = latent_em.GaussianMixture(
        N_COMPONENTS, random_state=FIT_SEED, covariance_regularization="additive"
    ).fit(x)
    return to_inference_data(fitted, x, draws="bootstrap", n_draws=N_DRAWS, random_seed=DRAWS_SEED)


def main() -> None:
    from latent_em.bridges._compat import arviz_major
    from latent_em.bridges.arviz import to_netcdf

    path = fixture_path(arviz_major())
    to_netcdf(fixture_object(), str(path))
    print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
