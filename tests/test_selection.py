"""Choosing K: the table, the choice, the sign convention and the plot.

Oracles: R's mclust on Old Faithful (``summary(Mclust(faithful))``; Scrucca et al. 2016,
*The R Journal* 8(1)): the best model is EEE (= tied) with 3 components, BIC -2314.3
in mclust's sign ``2 log L - p log n`` (value as recorded in the issue notes, not re-run
here); scikit-learn's ``GaussianMixture.bic``/``aic``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import latent_em
from latent_em.selection import select_components


@pytest.fixture(scope="module")
def faithful_tied(faithful):
    model = latent_em.GaussianMixtureModel(1, covariance_type="tied")
    return select_components(
        model, faithful, range(1, 7), n_init=3, random_state=0, accelerate="squarem", tol=1e-9
    )


def test_faithful_tied_picks_three_components_like_mclust(faithful_tied):
    sel = faithful_tied
    assert sel.criterion == "bic"
    assert sel.best_k == 3
    row = {r.n_components: r for r in sel.rows}[3]
    assert row.log_likelihood == pytest.approx(-1126.317, abs=5e-3)
    assert row.n_parameters == 11  # 2 weights + 6 means + 3 covariance entries
    assert -row.bic == pytest.approx(-2314.3, abs=0.05)  # mclust's sign
    assert isinstance(sel.best, latent_em.EMResult)
    assert sel.best.log_likelihood == row.log_likelihood
    assert [r.n_components for r in sel.rows] == list(range(1, 7))
    assert all(r.converged and r.restarts == 3 for r in sel.rows)


def test_criteria_formulas(faithful_tied, faithful):
    n = faithful.shape[0]
    for r in faithful_tied.rows:
        assert r.bic == pytest.approx(-2 * r.log_likelihood + r.n_parameters * math.log(n))
        assert r.aic == pytest.approx(-2 * r.log_likelihood + 2 * r.n_parameters)
        # ICL adds the classification entropy: never below BIC, equal for K = 1
        assert r.icl >= r.bic - 1e-9
    assert faithful_tied.rows[0].icl == pytest.approx(faithful_tied.rows[0].bic, abs=1e-9)
    aic = faithful_tied.column("aic")
    assert aic.shape == (6,)


def test_other_criteria_choose_their_minimum(faithful):
    model = latent_em.GaussianMixtureModel(1, covariance_type="tied")
    for criterion in ("aic", "icl"):
        sel = select_components(model, faithful, [1, 2, 3, 4], criterion, random_state=0)
        values = sel.column(criterion)
        assert sel.best_k == [1, 2, 3, 4][int(np.argmin(values))]


def test_bic_agrees_with_scikit_learn(faithful):
    from sklearn.mixture import GaussianMixture as SkGaussianMixture

    est = latent_em.GaussianMixture(
        covariance_type="full", tol=1e-10, random_state=0, accelerate="squarem"
    )
    sel = select_components(est, faithful, [1, 2])
    for row in sel.rows:
        sk = SkGaussianMixture(
            row.n_components, covariance_type="full", tol=1e-9, max_iter=5000, random_state=0
        ).fit(faithful)
        # both reach the same maximum; scikit-learn uses the same sign convention
        assert row.bic == pytest.approx(sk.bic(faithful), abs=1e-3)
        assert row.aic == pytest.approx(sk.aic(faithful), abs=1e-3)
        assert sel.fits[row.n_components].bic(faithful) == pytest.approx(row.bic, abs=1e-9)


def test_estimator_and_model_paths_agree(faithful):
    est = latent_em.GaussianMixture(covariance_type="diag", n_init=2, random_state=5)
    model = latent_em.GaussianMixtureModel(1, covariance_type="diag")
    a = select_components(est, faithful, [1, 2, 3])
    b = select_components(model, faithful, [1, 2, 3], n_init=2, random_state=5)
    np.testing.assert_allclose(a.column("log_likelihood"), b.column("log_likelihood"), rtol=1e-12)
    np.testing.assert_allclose(a.column("icl"), b.column("icl"), rtol=1e-12)
    assert a.best_k == b.best_k
    # the estimator's own icl() agrees with the table
    assert a.fits[2].icl(faithful) == pytest.approx(a.rows[1].icl, rel=1e-12)


def test_plot_and_table_outputs(faithful_tied, tmp_path):
    path = faithful_tied.plot(str(tmp_path / "bic.png"))
    with open(path, "rb") as fh:
        head = fh.read(8)
    assert head == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "bic.png").stat().st_size > 5000
    text = faithful_tied.format()
    assert "  3*" in text and len(text.splitlines()) == 7
    frame = faithful_tied.to_dataframe()
    assert list(frame.index) == list(range(1, 7))
    assert frame.loc[3, "n_parameters"] == 11


def test_plot_option_writes_png(faithful, tmp_path):
    model = latent_em.GaussianMixtureModel(1, covariance_type="spherical")
    out = tmp_path / "curve.png"
    select_components(model, faithful, [1, 2], random_state=0, plot=str(out))
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_bad_arguments(faithful):
    model = latent_em.GaussianMixtureModel(1)
    with pytest.raises(ValueError, match="criterion"):
        select_components(model, faithful, [1, 2], criterion="dic")
    with pytest.raises(ValueError, match="k_range"):
        select_components(model, faithful, [])
    with pytest.raises(ValueError, match="k_range"):
        select_components(model, faithful, [0, 1])
    with pytest.raises(ValueError, match="k_range"):
        select_components(model, faithful, [2, 2])
    with pytest.raises(TypeError, match="estimator_or_model"):
        select_components(object(), faithful, [1])
