"""scikit-learn interoperability of the estimators (issue 17).

scikit-learn is an optional test dependency: these tests use it as the reference (its
``Pipeline``, ``GridSearchCV``, ``clone`` and its own estimator checks), while the
package itself must import and fit without it (last test).
"""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest

import latent_em
from latent_em import (
    BernoulliMixture,
    CategoricalMixture,
    GaussianMixture,
    PoissonMixture,
)

from .conftest import make_blobs

sklearn = pytest.importorskip("sklearn", minversion="1.6")  # check_estimator(on_fail=None)
pd = pytest.importorskip("pandas")

from sklearn.base import clone  # noqa: E402
from sklearn.model_selection import GridSearchCV, KFold  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402


@pytest.fixture
def blobs(rng):
    return make_blobs(rng, n_per=60)


def test_pipeline_with_a_scaler_fits_predicts_and_scores(blobs):
    # on main: AttributeError, no __sklearn_tags__ (Pipeline.predict/score ask for tags)
    pipe = make_pipeline(StandardScaler(), GaussianMixture(3, random_state=0)).fit(blobs)
    scaled = StandardScaler().fit_transform(blobs)
    direct = GaussianMixture(3, random_state=0).fit(scaled)
    assert np.array_equal(pipe.predict(blobs), direct.predict(scaled))
    np.testing.assert_allclose(pipe.predict_proba(blobs), direct.predict_proba(scaled))
    assert pipe.score(blobs) == pytest.approx(direct.score(scaled), rel=1e-12)
    np.testing.assert_allclose(pipe.score_samples(blobs), direct.score_samples(scaled))


def test_grid_search_uses_score_and_picks_the_true_k(blobs):
    cv = KFold(3, shuffle=True, random_state=0)
    grid = GridSearchCV(
        GaussianMixture(random_state=0, n_init=2), {"n_components": [1, 2, 3]}, cv=cv
    ).fit(blobs)
    # the grid's held-out scores are our score() on each test fold, computed by hand
    for i, k in enumerate([1, 2, 3]):
        folds = [
            GaussianMixture(k, random_state=0, n_init=2).fit(blobs[tr]).score(blobs[te])
            for tr, te in cv.split(blobs)
        ]
        assert grid.cv_results_["mean_test_score"][i] == pytest.approx(np.mean(folds))
    assert grid.best_params_ == {"n_components": 3}
    assert isinstance(grid.best_estimator_, GaussianMixture)


def test_clone_keeps_parameters_and_drops_the_fit(blobs):
    gm = GaussianMixture(3, covariance_type="tied", random_state=5).fit(blobs)
    copy = clone(gm)
    assert copy.get_params() == gm.get_params()
    assert not hasattr(copy, "result_")
    assert repr(copy).endswith("[not fitted]")
    assert "[fitted: log-likelihood" in repr(gm)


def test_not_fitted_error_is_also_scikit_learns():
    from sklearn.exceptions import NotFittedError as SkNotFitted
    from sklearn.utils.validation import check_is_fitted

    with pytest.raises(SkNotFitted):
        GaussianMixture(2).predict(np.zeros((3, 2)))
    with pytest.raises(latent_em.NotFittedError):
        GaussianMixture(2).predict(np.zeros((3, 2)))
    with pytest.raises(SkNotFitted):
        check_is_fitted(GaussianMixture(2))


@pytest.mark.parametrize(
    ("est", "data"),
    [
        (GaussianMixture(2, random_state=0), "normal"),
        (PoissonMixture(2, random_state=0), "counts"),
        (BernoulliMixture(2, random_state=0), "binary"),
        (CategoricalMixture(2, random_state=0), "labels"),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, str) else v,
)
def test_feature_names_from_a_dataframe(est, data, rng):
    values = {
        "normal": rng.normal(size=(40, 3)),
        "counts": rng.poisson(3.0, size=(40, 3)),
        "binary": rng.integers(0, 2, size=(40, 3)),
        "labels": rng.choice(["a", "b", "c"], size=(40, 3)),
    }[data]
    df = pd.DataFrame(values, columns=["u", "v", "w"])
    est = clone(est).fit(df)
    assert est.feature_names_in_.dtype == object
    assert list(est.feature_names_in_) == ["u", "v", "w"]
    assert est.n_features_in_ == 3
    est.predict(df)  # same names: no warning (warnings are errors here)
    with pytest.raises(ValueError, match="Feature names unseen at fit time:\n- x"):
        est.predict(df.rename(columns={"u": "x"}))
    with pytest.raises(ValueError, match="must be in the same order"):
        est.predict(df[["w", "v", "u"]])
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        est.predict(df.to_numpy())
    # refitting on an array forgets the names
    assert not hasattr(clone(est).fit(df.to_numpy()), "feature_names_in_")


def test_sparse_input_is_refused_with_a_message(blobs):
    scipy_sparse = pytest.importorskip("scipy.sparse")
    with pytest.raises(TypeError, match="sparse input is not supported"):
        GaussianMixture(2).fit(scipy_sparse.csr_matrix(blobs))


# scikit-learn's own estimator checks. Every check that fails is listed with the reason;
# the test asserts that exactly these fail, so a newly failing check, or one that starts
# passing, is noticed.
_COMMON = {
    "check_complex_data": (
        "complex X raises TypeError (X must be real-valued), scikit-learn expects "
        "ValueError 'Complex data not supported'"
    ),
    "check_estimators_empty_data_messages": (
        "X with 0 columns is refused with our wording ('X has 0 columns'), not "
        "scikit-learn's '0 feature(s) (shape=...)'"
    ),
}
_WORDING_1D = {
    "check_fit2d_predict1d": (
        "1-D X is refused with 'X must be 2-D ... reshape ... with X.reshape(-1, 1)', not "
        "scikit-learn's 'Reshape your data'"
    ),
}
# scikit-learn generates continuous X; these estimators refuse it by design (a ValueError
# naming the column and row), so every check that fits its generated data fails
_DISCRETE_DATA = [
    "check_fit_score_takes_y",
    "check_estimators_overwrite_params",
    "check_dont_overwrite_parameters",
    "check_estimators_fit_returns_self",
    "check_readonly_memmap_input",
    "check_n_features_in_after_fitting",
    "check_positive_only_tag_during_fit",
    "check_estimators_dtypes",
    "check_sample_weights_list",
    "check_all_zero_sample_weights_error",
    "check_sample_weight_equivalence_on_dense_data",
    "check_dtype_object",
    "check_pipeline_consistency",
    "check_estimators_nan_inf",
    "check_estimators_pickle",
    "check_f_contiguous_array_estimator",
    "check_methods_sample_order_invariance",
    "check_methods_subset_invariance",
    "check_fit2d_1sample",
    "check_fit2d_1feature",
    "check_dict_unchanged",
    "check_fit_idempotent",
    "check_fit_check_is_fitted",
    "check_n_features_in",
    "check_fit2d_predict1d",
]
_BERNOULLI_EXTRA = [
    "check_sample_weights_pandas_series",
    "check_sample_weights_not_an_array",
    "check_sample_weights_shape",
    "check_sample_weights_not_overwritten",
]

#: the scikit-learn version whose checks EXPECTED_FAILURES lists exactly (other versions add
#: or rename checks: there, only undocumented failures fail the test)
CHECKED_WITH = "1.9."

EXPECTED_FAILURES: dict[str, dict[str, str]] = {
    "GaussianMixture": {
        **_COMMON,
        **_WORDING_1D,
        "check_sample_weight_equivalence_on_dense_data": (
            "the k-means start ignores sample weights, so integer weights and repeated rows "
            "start EM from different points (the weighted EM updates themselves are exact: "
            "tests/test_driver.py)"
        ),
        "check_dtype_object": (
            "object arrays are refused ('X must contain numbers; got dtype object') "
            "instead of being converted"
        ),
    },
    "PoissonMixture": {
        **_COMMON,
        **{c: "scikit-learn's generated X is not whole counts" for c in _DISCRETE_DATA},
    },
    "BernoulliMixture": {
        **_COMMON,
        **{
            c: "scikit-learn's generated X is not binary" for c in _DISCRETE_DATA + _BERNOULLI_EXTRA
        },
    },
    "CategoricalMixture": {
        **_COMMON,
        **_WORDING_1D,
        "check_sample_weight_equivalence_on_dense_data": (
            "the check predicts on rows holding continuous values never seen in fit; an "
            "unseen category is refused"
        ),
        "check_fit2d_1sample": (
            "one row gives every column a single category, refused as 'carries no "
            "information' rather than with scikit-learn's '1 sample' wording"
        ),
    },
}


@pytest.mark.parametrize(
    "est",
    [
        GaussianMixture(2, random_state=0),
        PoissonMixture(2, random_state=0),
        BernoulliMixture(2, random_state=0),
        CategoricalMixture(2, random_state=0),
    ],
    ids=lambda e: type(e).__name__,
)
def test_scikit_learn_check_estimator(est):
    from sklearn.utils.estimator_checks import check_estimator

    expected = EXPECTED_FAILURES[type(est).__name__]
    with warnings.catch_warnings():
        # the checks fit tiny random data (ConvergenceWarning, DegeneracyWarning) and warn
        # about skipped checks themselves; their outcome is what is asserted
        warnings.simplefilter("ignore")
        results = check_estimator(est, on_fail=None)
    failed = {r["check_name"] for r in results if r["status"] == "failed"}
    passed = {r["check_name"] for r in results if r["status"] == "passed"}
    assert not failed - set(expected), f"undocumented failures: {sorted(failed - set(expected))}"
    if sklearn.__version__.startswith(CHECKED_WITH):
        # with the version the list was made for, it is exact: a check that starts passing
        # must leave the list
        assert not set(expected) - failed, f"now passing: {sorted(set(expected) - failed)}"
    # the API checks that matter for pipelines pass for every estimator
    assert {
        "check_estimator_cloneable",
        "check_get_params_invariance",
        "check_set_params",
        "check_estimators_unfitted",
        "check_estimator_sparse_array",
        "check_no_attributes_set_in_init",
        "check_parameters_default_constructible",
    } <= passed


def test_the_package_imports_and_fits_without_scikit_learn():
    code = """
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "sklearn" or name.startswith("sklearn."):
            raise ImportError("scikit-learn is blocked in this test")
sys.meta_path.insert(0, Block())
import numpy as np
import latent_em
X = latent_em.datasets.load_faithful()
gm = latent_em.GaussianMixture(2, random_state=0).fit(X)
assert "fitted" in repr(gm) and "Clustering table" in gm.summary()
try:
    latent_em.GaussianMixture(2).predict(X)
except latent_em.NotFittedError:
    pass
assert not any(m == "sklearn" or m.startswith("sklearn.") for m in sys.modules)
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
