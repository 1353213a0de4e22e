"""EM fits as ArviZ objects: groups, pointwise log-likelihood, Laplace and bootstrap draws,
``arviz.summary``, ``plot_forest`` (EM next to NUTS-like draws) and netCDF round trips.

Runs on ArviZ 0.2x (InferenceData) and 1.x (DataTree) alike. Oracles: latent_em's
log-likelihood, and the textbook standard errors of a single Gaussian's MLE
(``sd(μ̂) = σ / √n``, ``sd(σ̂²) = σ² √(2 / n)``, e.g. Casella & Berger, Example 10.1.14).
"""

from __future__ import annotations

import numpy as np
import pytest

import latent_em

pytestmark = pytest.mark.bridges

az = pytest.importorskip("arviz")

from latent_em.bridges import to_inference_data  # noqa: E402
from latent_em.bridges._compat import group_names  # noqa: E402
from latent_em.bridges.arviz import (  # noqa: E402
    draws_to_inference_data,
    from_netcdf,
    plot_forest_em_vs_nuts,
    summary,
    to_netcdf,
)


@pytest.fixture(scope="module")
def fitted(faithful):
    return latent_em.GaussianMixture(2, random_state=0).fit(faithful)


def test_point_estimate_layout(fitted, faithful):
    obj = to_inference_data(fitted, faithful)
    assert {"posterior", "constant_data", "observed_data", "log_likelihood", "sample_stats"} <= set(
        group_names(obj)
    )
    post = obj["posterior"]
    assert post["means"].shape == (1, 1, 2, 2)
    np.testing.assert_array_equal(post["means"].values[0, 0], fitted.means_)
    np.testing.assert_array_equal(obj["constant_data"]["covariances"].values, fitted.covariances_)
    np.testing.assert_array_equal(obj["observed_data"]["x"].values, faithful)
    pointwise = obj["log_likelihood"]["x"].values
    assert pointwise.shape == (1, 1, faithful.shape[0])
    assert pointwise.sum() == pytest.approx(fitted.log_likelihood_, rel=1e-12)
    np.testing.assert_array_equal(
        obj["sample_stats"]["em_log_likelihood"].values[0], fitted.history_
    )
    assert obj.attrs["draws_kind"] == "point_estimate"


def test_laplace_draws_match_closed_form_standard_errors():
    rng = np.random.default_rng(1)
    n = 400
    x = rng.normal(2.0, 1.5, size=(n, 1))
    gm = latent_em.GaussianMixture(1, random_state=0).fit(x)
    obj = to_inference_data(gm, x, draws="laplace", n_draws=4000, random_seed=2)
    means = obj["posterior"]["means"].values.reshape(-1)
    variances = obj["posterior"]["covariances"].values.reshape(-1)
    sigma2 = float(gm.covariances_.reshape(-1)[0])
    assert means.std() == pytest.approx(np.sqrt(sigma2 / n), rel=0.06)
    assert variances.std() == pytest.approx(sigma2 * np.sqrt(2.0 / n), rel=0.1)
    assert means.mean() == pytest.approx(float(gm.means_[0, 0]), abs=3 * np.sqrt(sigma2 / n) / 60)
    # the pointwise log-likelihood is per draw
    assert obj["log_likelihood"]["x"].shape == (1, 4000, n)


def test_bootstrap_draws_agree_with_laplace(fitted, faithful):
    boot = to_inference_data(fitted, faithful, draws="bootstrap", n_draws=150, random_seed=3)
    lap = to_inference_data(fitted, faithful, draws="laplace", n_draws=2000, random_seed=3)
    sb = boot["posterior"]["means"].values.reshape(-1, 2, 2).std(axis=0)
    sl = lap["posterior"]["means"].values.reshape(-1, 2, 2).std(axis=0)
    # two different approximations of the same sampling variability
    assert np.all(sb / sl > 0.67) and np.all(sb / sl < 1.5), (sb, sl)
    # relabeled to the EM solution: component 0 stays the short-eruption component
    bm = boot["posterior"]["means"].values.reshape(-1, 2, 2)
    assert np.all(np.abs(bm[:, 0, 0] - fitted.means_[0, 0]) < 0.3)
    assert boot.attrs["draws_kind"] == "bootstrap"


def test_summary_and_netcdf_round_trip(fitted, faithful, tmp_path):
    obj = to_inference_data(fitted, faithful, draws="laplace", n_draws=200, random_seed=0)
    table = summary(obj, ["weights", "means"])
    assert {"mean", "sd", "lower", "upper"} <= set(table.columns)
    assert len(table) == 2 + 4
    assert np.all(table["lower"] <= table["mean"]) and np.all(table["mean"] <= table["upper"])
    path = to_netcdf(obj, str(tmp_path / "em.nc"))
    back = from_netcdf(path)
    assert set(group_names(back)) == set(group_names(obj))
    for group, var in [
        ("posterior", "covariances"),
        ("log_likelihood", "x"),
        ("observed_data", "x"),
    ]:
        np.testing.assert_array_equal(back[group][var].values, obj[group][var].values)
    assert back.attrs["em_log_likelihood"] == pytest.approx(fitted.log_likelihood_)


def test_forest_plot_em_next_to_nuts(fitted, faithful, tmp_path):
    em = to_inference_data(fitted, faithful, draws="laplace", n_draws=200, random_seed=0)
    rng = np.random.default_rng(0)
    nuts_like = draws_to_inference_data(
        {
            "weights": fitted.weights_ + 0.02 * rng.normal(size=(2, 100, 2)),
            "means": fitted.means_ + 0.05 * rng.normal(size=(2, 100, 2, 2)),
        }
    )
    # different draw counts (1 x 200 vs 2 x 100): ArviZ 1.x drops such models silently
    # unless told to skip the padding, so check that both models were actually drawn
    out = plot_forest_em_vs_nuts(em, nuts_like, str(tmp_path / "forest.png"), ["weights"])
    import matplotlib.pyplot as plt

    rgb = plt.imread(out)[..., :3]
    blue = np.sum(rgb[..., 2] - rgb[..., 0] > 0.3)  # first model colour (C0)
    orange = np.sum(rgb[..., 0] - rgb[..., 2] > 0.3)  # second model colour (C1)
    assert blue > 50 and orange > 50, (blue, orange)


def test_options_are_validated(fitted, faithful):
    with pytest.raises(ValueError, match="draws must be one of"):
        to_inference_data(fitted, faithful, draws="mcmc")
    with pytest.raises(ValueError, match="n_draws"):
        to_inference_data(fitted, faithful, draws="bootstrap", n_draws=0)


def test_named_dims_on_both_majors(fitted, faithful, rng):
    # the same names as the PyMC models: EM and NUTS objects line up in plots
    obj = to_inference_data(fitted, faithful)
    assert obj["posterior"]["weights"].dims == ("chain", "draw", "component")
    assert obj["posterior"]["means"].dims == ("chain", "draw", "component", "feature")
    assert obj["posterior"]["covariances"].dims[2:] == ("component", "feature", "feature_bis")
    assert obj["constant_data"]["means"].dims == ("component", "feature")
    draws = {
        "weights": rng.dirichlet(np.ones(3), size=(2, 5)),
        "probs_0": rng.dirichlet(np.ones(4), size=(2, 5, 3)),
        "probs": rng.uniform(size=(2, 5, 3, 6)),
    }
    post = draws_to_inference_data(draws)["posterior"]
    assert post["probs_0"].dims == ("chain", "draw", "component", "level_0")
    assert post["probs"].dims == ("chain", "draw", "component", "feature")
