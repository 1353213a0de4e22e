"""``estimator.summary()`` and the estimator repr (issue 17): mclust-style blocks whose
numbers are checked against independent computations (scikit-learn's BIC, the
estimator's own criteria, the hard labels), and model names as in mclust's
``mclustModelNames`` (https://rdrr.io/cran/mclust/man/mclustModelNames.html)."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

import latent_em
from latent_em import CategoricalMixture, GaussianMixture, PoissonMixture
from latent_em.exceptions import ConvergenceWarning


def _row(text: str, header: str) -> dict[str, str]:
    lines = text.splitlines()
    i = next(i for i, line in enumerate(lines) if line.split() == header.split())
    return dict(zip(header.split(), lines[i + 1].split(), strict=True))


def test_gaussian_summary_numbers_match_independent_computations(faithful):
    sklearn_mixture = pytest.importorskip("sklearn.mixture")
    gm = GaussianMixture(2, tol=1e-10, random_state=0).fit(faithful)
    text = str(gm.summary())
    row = _row(text, "log-likelihood n df BIC ICL")
    reference = sklearn_mixture.GaussianMixture(
        2, tol=1e-10, max_iter=5000, n_init=5, random_state=0
    ).fit(faithful)
    assert float(row["log-likelihood"]) == pytest.approx(gm.log_likelihood_, abs=0.01)
    assert int(row["n"]) == 272 and int(row["df"]) == 11
    assert float(row["BIC"]) == pytest.approx(reference.bic(faithful), abs=0.01)
    assert float(row["ICL"]) == pytest.approx(gm.icl(faithful), abs=0.01)
    counts = np.bincount(gm.predict(faithful), minlength=2)
    table = text.split("Clustering table")[1].splitlines()
    assert table[1].split() == ["0", "1"]
    assert [int(c) for c in table[2].split()] == counts.tolist()
    assert "mclust VVV: ellipsoidal, varying volume, shape and orientation" in text
    assert "EM converged after" in text


def test_tied_covariance_and_labels_with_parameters(faithful):
    gm = GaussianMixture(3, covariance_type="tied", random_state=0).fit(faithful)
    gm.feature_names_in_ = np.array(["eruptions", "waiting"], dtype=object)
    text = gm.summary(parameters=True)
    assert "mclust EEE: ellipsoidal, equal volume, shape and orientation" in text
    block = text.split("Covariance (tied: shared by all components):")[1].splitlines()
    assert block[1].split() == ["eruptions", "waiting"]
    first = block[2].split()
    assert first[0] == "eruptions"
    np.testing.assert_allclose([float(v) for v in first[1:]], gm.covariances_[0], rtol=1e-5)
    means = text.split("Means:")[1].splitlines()
    assert means[1].split() == ["0", "1", "2"]
    np.testing.assert_allclose([float(v) for v in means[3].split()[1:]], gm.means_[:, 1], rtol=1e-5)
    assert "array(" not in text and "[[" not in text  # formatted, not numpy reprs


@pytest.mark.parametrize(
    ("cov", "code", "words"),
    [
        ("diag", "VVI", "diagonal, varying volume and shape"),
        ("spherical", "VII", "spherical, varying volume"),
    ],
)
def test_mclust_names_of_the_other_structures(faithful, cov, code, words):
    text = GaussianMixture(2, covariance_type=cov, random_state=0).fit(faithful).summary(True)
    assert f"mclust {code}: {words}" in text


def test_categorical_summary_lists_item_response_probabilities():
    X = latent_em.datasets.load_carcinoma()
    lca = CategoricalMixture(3, n_init=10, tol=1e-10, random_state=0).fit(X)
    text = lca.summary(parameters=True)
    assert "Latent class model" in text
    for j in range(X.shape[1]):
        head = f"Item-response probabilities of x{j + 1} "
        block = text.split(head)[1].splitlines()
        assert block[1].split() == ["0", "1", "2"]
        labels = [line.split()[0] for line in block[2:4]]
        assert labels == [str(c) for c in lca.categories_[j]]
        values = np.array([[float(v) for v in line.split()[1:]] for line in block[2:4]])
        np.testing.assert_allclose(values, lca.probs_[j].T, rtol=1e-5, atol=1e-300)


def test_weighted_counts_equal_the_expanded_data():
    # Hasselblad (1969) death notices as a frequency table and expanded
    deaths = np.arange(10).reshape(-1, 1)
    days = np.array([162, 267, 271, 185, 111, 61, 27, 8, 3, 1])
    pm = PoissonMixture(2, tol=1e-12, max_iter=100000, random_state=0).fit(deaths, frequency=days)
    expanded = np.repeat(deaths, days, axis=0)
    counts = np.bincount(pm.predict(expanded), minlength=2)
    np.testing.assert_allclose(pm.classification_counts_, counts)
    assert _row(pm.summary(), "log-likelihood n df BIC ICL")["n"] == str(days.sum())
    assert pm.icl_ == pytest.approx(pm.icl(expanded), rel=1e-10)


def test_not_converged_is_said(faithful):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm = GaussianMixture(3, max_iter=2, random_state=0).fit(faithful)
    assert "NOT converged" in gm.summary()
    assert "NOT converged after 2 iterations" in repr(gm)


def test_repr_says_fitted_or_not(faithful):
    gm = GaussianMixture(2, random_state=0)
    assert repr(gm) == "GaussianMixture(n_components=2, random_state=0) [not fitted]"
    gm.fit(faithful)
    assert re.fullmatch(
        r"GaussianMixture\(n_components=2, random_state=0\) \[fitted: log-likelihood "
        r"-1130\.26, n=272, converged after \d+ iterations\]",
        repr(gm),
    )


def test_summary_survives_save_and_load(tmp_path, faithful):
    gm = GaussianMixture(2, random_state=0).fit(faithful)
    path = gm.save(tmp_path / "m.json")
    assert latent_em.io.load(path).summary(parameters=True) == gm.summary(parameters=True)


def test_summary_before_fit_is_a_not_fitted_error():
    with pytest.raises(latent_em.NotFittedError):
        GaussianMixture(2).summary()
