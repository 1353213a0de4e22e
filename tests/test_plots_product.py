"""Plots a user would rather look at (issue 17): mclust's classification, uncertainty and
density views with a pairs layout, legends that say what the ellipses enclose, axis
units, and a criterion plot with integer K and named models.

The ellipse masses are checked against the closed form of the chi-square(2) CDF,
``1 - exp(-r^2 / 2)``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import latent_em
from latent_em import plotting

matplotlib = pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def gm(faithful):
    return latent_em.GaussianMixture(2, random_state=0).fit(faithful)


@pytest.fixture
def three_columns(rng):
    return np.vstack([rng.normal(size=(80, 3)), rng.normal(size=(80, 3)) + 4])


def _legend_texts(fig) -> list[str]:
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    return [t.get_text() for legend in legends for t in legend.get_texts()]


def test_ellipse_mass_is_the_chi_square_2_cdf():
    for r in (1, 2, 3):
        assert plotting.ellipse_mass(r) == pytest.approx(1 - math.exp(-(r**2) / 2), rel=1e-12)


def test_classification_view(gm, faithful):
    fig = gm.plot(faithful, "classification", feature_names=["eruptions (min)", "waiting (min)"])
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("eruptions (min)", "waiting (min)")
    texts = _legend_texts(fig)
    assert "component 0 (φ=0.36)" in texts
    assert "1 sd: 39.3% of the component" in texts and "3 sd: 98.9% of the component" in texts
    # the points are coloured by the predicted label
    colors = ax.collections[0].get_facecolors()
    labels = gm.predict(faithful)
    for k in (0, 1):
        assert len({tuple(c) for c in colors[labels == k]}) == 1
    assert len(ax.patches) == 6  # 3 ellipses per component
    matplotlib.pyplot.close(fig)


def test_uncertainty_view_grows_points_with_uncertainty(gm, faithful):
    fig = gm.plot(faithful, "uncertainty")
    sizes = fig.axes[0].collections[0].get_sizes()
    uncertainty = 1 - gm.predict_proba(faithful).max(axis=1)
    order = np.argsort(uncertainty, kind="stable")
    assert np.all(np.diff(sizes[order]) >= 0)
    assert sizes.max() > 10 * sizes.min()
    matplotlib.pyplot.close(fig)


def test_density_view_draws_contours(gm, faithful):
    fig = gm.plot(faithful, "density")
    kinds = {type(c).__name__ for c in fig.axes[0].collections} | {
        type(c).__name__ for c in fig.axes[0].get_children()
    }
    assert any("Contour" in k for k in kinds), kinds
    matplotlib.pyplot.close(fig)


@pytest.mark.parametrize("what", plotting.MIXTURE_VIEWS)
def test_pairs_layout_for_more_than_two_columns(three_columns, what, tmp_path):
    est = latent_em.GaussianMixture(2, random_state=0).fit(three_columns)
    fig = est.plot(three_columns, what, feature_names=["a", "b", "c"])
    assert len(fig.axes) == 9
    diagonal = [fig.axes[i * 3 + i] for i in range(3)]
    assert [ax.texts[0].get_text() for ax in diagonal] == ["a", "b", "c"]
    matplotlib.pyplot.close(fig)
    path = est.plot(three_columns, what, path=str(tmp_path / "p.png"))
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG" and path.endswith("p.png")


def test_plot_arguments_are_checked(gm, faithful):
    with pytest.raises(ValueError, match="what must be one of"):
        gm.plot(faithful, "scatter")
    one = latent_em.GaussianMixture(2, random_state=0).fit(faithful[:, :1])
    with pytest.raises(ValueError, match="at least 2 columns"):
        one.plot(faithful[:, :1])


def test_names_from_a_dataframe(faithful):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(faithful, columns=["eruptions", "waiting"])
    fig = latent_em.GaussianMixture(2, random_state=0).fit(df).plot(df)
    assert fig.axes[0].get_xlabel() == "eruptions"
    matplotlib.pyplot.close(fig)


def _capture_figures(monkeypatch) -> list:
    figures = []
    original = matplotlib.figure.Figure.savefig

    def savefig(self, *args, **kwargs):
        figures.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig)
    return figures


def test_demo_plot_has_a_legend_and_units(monkeypatch, tmp_path):
    from latent_em.cli.demo import run_demo

    figures = _capture_figures(monkeypatch)
    run_demo(kmax=2, covariance_types=("full",), n_init=1, out=str(tmp_path / "d.png"))
    ax = figures[-1].axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("eruptions (min)", "waiting (min)")
    assert "2 sd: 86.5% of the component" in _legend_texts(figures[-1])


def test_criterion_plot_has_integer_ticks_and_named_models(monkeypatch, tmp_path, faithful):
    from latent_em.cli import main

    np.save(tmp_path / "w.npy", faithful[:, 1])
    figures = _capture_figures(monkeypatch)
    code = main(
        [
            "fit",
            str(tmp_path / "w.npy"),
            "-k",
            "1-4",
            "--covariance",
            "all",
            "--out",
            str(tmp_path / "w.json"),
            "--n-init",
            "1",
        ]
    )
    assert code == 0
    ax = figures[-1].axes[0]
    ticks = [t for t in ax.get_xticks() if 1 <= t <= 4]
    assert ticks == [1, 2, 3, 4]
    texts = _legend_texts(figures[-1])
    # one column: --covariance all fits mclust's univariate E and V (docs/cli.md)
    assert "E covariance (equal variance)" in texts
    assert "V covariance (unequal variance)" in texts
    # the scikit-learn names carry mclust's 1-D name
    for cov in ("full", "tied"):
        args = ["fit", str(tmp_path / "w.npy"), "-k", "1-2", "--covariance", cov]
        assert main([*args, "--out", str(tmp_path / f"{cov}.json"), "--n-init", "1"]) == 0
    assert "full covariance (V)" in _legend_texts(figures[-2])
    assert "tied covariance (E)" in _legend_texts(figures[-1])
