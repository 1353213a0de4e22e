"""mclust's 14 parsimonious covariance structures (issue 16).

Oracles:

* the M-step of every structure against a direct numerical maximization (scipy's
  L-BFGS-B from several starts) of the expected complete-data log-likelihood over an
  explicit parameterization ``Σ_k = λ_k D_k A_k D_kᵀ`` written here, independently of the
  library (``_direct_build``);
* :func:`latent_em.check_model` (its M-step law perturbs the M-step's result inside the
  structure, and its ``n_parameters`` law compares mclust's count with the free values of
  the structure's constraint), with a mutation check that the law has teeth;
* monotone EM on random data for all 14;
* R's mclust on Old Faithful: the full BIC table of ``mclustBIC(faithful)`` (mclust 6,
  default ``G = 1:9``), rows G = 1, 2, 3, as printed in an R session transcript stored in
  a public GitHub repository (an R script on model-based clustering with its output
  pasted as comments; found through the code-search index, file id 13565957595). Its
  ``EEE,3`` entry, -2314.316, is mclust's own documented ``summary(Mclust(faithful))``
  (tests/test_gaussian_mixture.py), which corroborates the transcript.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import linalg, optimize

import latent_em
from latent_em import GaussianMixture
from latent_em.exceptions import ConvergenceWarning
from latent_em.io import ModelFileError
from latent_em.models import GaussianMixtureModel
from latent_em.models.gaussian import parsimonious
from latent_em.models.gaussian.covariance import (
    ALIASES,
    COVARIANCES,
    ParsimoniousConstraint,
    mclust_names,
)
from latent_em.models.gaussian.parsimonious import MCLUST_MODELS, n_variance_parameters, q_value

MODELS = MCLUST_MODELS


# ----------------------------------------------------------------- direct maximization


def _n_direct(name: str, k: int, d: int) -> int:
    vol, shape, orient = name
    n = 1 if vol == "E" else k
    n += {"I": 0, "E": d - 1, "V": k * (d - 1)}[shape]
    n += {"I": 0, "E": 1, "V": k}[orient] * (d * (d - 1) // 2)
    return n


def _direct_build(name: str, theta: np.ndarray, k: int, d: int) -> np.ndarray:
    """``λ_k D_k A_k D_kᵀ`` from free values: log-volumes, log-shapes (last = minus the
    sum of the others), and rotations ``expm(S - Sᵀ)`` of upper-triangular ``S``."""
    vol, shape, orient = name
    pos = 1 if vol == "E" else k
    lam = np.exp(np.resize(theta[:pos], k))
    if shape == "I":
        log_a = np.zeros((k, d))
    else:
        m = 1 if shape == "E" else k
        free = theta[pos : pos + m * (d - 1)].reshape(m, d - 1)
        pos += m * (d - 1)
        log_a = np.resize(np.hstack([free, -free.sum(axis=1, keepdims=True)]), (k, d))
    rots = []
    if orient == "I":
        rots = [np.eye(d)] * k
    else:
        m = 1 if orient == "E" else k
        iu = np.triu_indices(d, 1)
        for j in range(m):
            s = np.zeros((d, d))
            s[iu] = theta[pos + j * iu[0].size : pos + (j + 1) * iu[0].size]
            rots.append(linalg.expm(s - s.T))
        rots = rots * k if m == 1 else rots
    return np.stack([lam[j] * rots[j] @ np.diag(np.exp(log_a[j])) @ rots[j].T for j in range(k)])


def _scatter(rng: np.random.Generator, k: int, d: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    mats = []
    for _ in range(k):
        z = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) * rng.uniform(0.5, 2.0)
        mats.append(z.T @ z)
    return np.stack(mats), np.full(k, float(n)) * rng.uniform(0.5, 1.5, size=k)


@pytest.mark.parametrize("name", MODELS)
def test_m_step_is_the_direct_maximizer(name):
    k, d = 2, 3
    rng = np.random.default_rng(sum(map(ord, name)))
    scatter, counts = _scatter(rng, k, d, 15)
    p = _n_direct(name, k, d)
    assert p == n_variance_parameters(name, k, d)  # mclust's nVarParams

    def negative_q(theta):
        with np.errstate(all="ignore"):
            value = -q_value(scatter, counts, _direct_build(name, theta, k, d))
        return value if np.isfinite(value) else 1e300  # outside where Σ is computable

    best = np.inf
    for _ in range(3):
        start = rng.normal(scale=0.5, size=p)
        start[: (1 if name[0] == "E" else k)] += np.log(np.trace(scatter[0]) / (d * counts[0]))
        res = optimize.minimize(
            negative_q,
            start,
            method="L-BFGS-B",
            options={"ftol": 1e-14, "gtol": 1e-9, "maxiter": 3000},
        )
        best = min(best, res.fun)
    ours = q_value(scatter, counts, parsimonious.solve(name, scatter, counts))
    # as high as the best of the direct maximizations, and not above it
    assert ours >= -best - 1e-7 * abs(best)
    assert ours <= -best + 1e-7 * abs(best)


@pytest.mark.parametrize("name", [m for m in MODELS if m in parsimonious.ITERATIVE])
def test_iterated_m_step_never_lowers_q_from_the_current_covariances(name):
    k, d = 3, 3
    rng = np.random.default_rng(7)
    scatter, counts = _scatter(rng, k, d, 12)
    # current covariances of the structure: a random point of the parameterization
    current = _direct_build(name, rng.normal(size=_n_direct(name, k, d)), k, d)
    q_now = q_value(scatter, counts, current)
    one = parsimonious.solve(name, scatter, counts, current, max_sweeps=1)
    full = parsimonious.solve(name, scatter, counts, current)
    assert q_value(scatter, counts, one) >= q_now
    assert q_value(scatter, counts, full) >= q_value(scatter, counts, one) - 1e-10 * abs(q_now)


@pytest.mark.parametrize("name", MODELS)
def test_constraint_round_trip_and_free_size(name):
    k, d = 3, 4
    rng = np.random.default_rng(3)
    cov = _direct_build(name, rng.normal(size=_n_direct(name, k, d)), k, d)
    constraint = ParsimoniousConstraint(name)
    u = constraint.unconstrain(cov)
    assert u.size == constraint.free_size(cov.shape) == n_variance_parameters(name, k, d)
    np.testing.assert_allclose(constraint.constrain(u, cov.shape), cov, rtol=1e-9, atol=1e-12)


# ----------------------------------------------------------------- check_model, EM


@pytest.fixture(scope="module")
def three_blobs() -> np.ndarray:
    rng = np.random.default_rng(0)
    centres = ([0, 0, 0], [4, 0, 0], [0, 4, 1])
    return np.concatenate([rng.normal(size=(60, 3)) @ rng.normal(size=(3, 3)) + c for c in centres])


@pytest.mark.parametrize("name", MODELS)
def test_check_model_passes(name, three_blobs):
    report = latent_em.check_model(GaussianMixtureModel(3, name, reg_covar=0.0), three_blobs)
    laws = {r.law: r.status for r in report.results}
    assert laws["m_step_maximizer"] == "passed"
    assert laws["n_parameters"] == "passed"
    assert laws["monotone"] == "passed"


def test_check_model_catches_a_wrong_m_step(three_blobs, monkeypatch):
    # the law has teeth: EVV's volume 10 % too large is caught
    right = parsimonious.CLOSED_FORM["EVV"]
    monkeypatch.setitem(parsimonious.CLOSED_FORM, "EVV", lambda w, n: 1.1 * right(w, n))
    report = latent_em.check_model(
        GaussianMixtureModel(3, "EVV", reg_covar=0.0), three_blobs, raise_on_failure=False
    )
    assert {r.law: r.status for r in report.results}["m_step_maximizer"] == "failed"


@pytest.mark.parametrize("name", MODELS)
def test_em_is_monotone_on_random_data(name):
    rng = np.random.default_rng(11)
    x = rng.normal(size=(150, 3)) * [1.0, 2.0, 0.5]
    model = GaussianMixtureModel(4, name, reg_covar=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # 40 iterations at tol=0
        result = latent_em.fit(model, x, max_iter=40, tol=0.0, random_state=0)
    history = np.asarray(result.history)
    drops = -np.diff(history)
    assert drops.max() <= 1e-9 * np.abs(history).max()
    k, d = 4, 3
    assert result.params.covariances.shape == (k, d, d) or name in ALIASES


# ----------------------------------------------------------------- names, shapes, errors


@pytest.mark.parametrize(("alias", "name"), sorted(ALIASES.items()))
def test_aliases_give_the_same_fit(alias, name, three_blobs):
    a = GaussianMixture(3, covariance_type=alias, random_state=0).fit(three_blobs)
    b = GaussianMixture(3, covariance_type=name, random_state=0).fit(three_blobs)
    assert a.model_.covariance_type == name
    np.testing.assert_array_equal(a.covariances_, b.covariances_)
    assert a.log_likelihood_ == b.log_likelihood_
    assert a.n_parameters_ == b.n_parameters_


def test_an_alias_survives_save_and_load(three_blobs, tmp_path):
    # the estimator keeps the user's "EEE", its model stores "tied": the loader's check
    # that the two agree reads the alias as the model does (a real disagreement, "full"
    # against a fitted "tied", stays an error: tests/test_io_safety.py)
    gm = GaussianMixture(3, covariance_type="EEE", random_state=0).fit(three_blobs)
    gm.save(tmp_path / "eee.json")
    back = GaussianMixture.load(tmp_path / "eee.json")
    assert back.covariance_type == "EEE" and back.model_.covariance_type == "tied"
    np.testing.assert_array_equal(back.predict(three_blobs), gm.predict(three_blobs))
    other = GaussianMixture(3, covariance_type="full", random_state=0).fit(three_blobs)
    other.covariance_type = "tied"  # tampered: disagrees with the fitted full model
    other.save(tmp_path / "bad.json")
    with pytest.raises(ModelFileError, match="covariance_type='tied' disagrees"):
        GaussianMixture.load(tmp_path / "bad.json")


def test_new_structures_hold_full_matrices(three_blobs):
    gm = GaussianMixture(3, covariance_type="VEV", random_state=0).fit(three_blobs)
    assert gm.covariances_.shape == (3, 3, 3)
    np.testing.assert_allclose(
        gm.precisions_ @ gm.covariances_, np.broadcast_to(np.eye(3), (3, 3, 3)), atol=1e-9
    )
    # the structure holds: a common shape (sorted eigenvalues / volume) in every component
    vals = np.linalg.eigvalsh(gm.covariances_)
    shapes = vals / np.exp(np.log(vals).mean(axis=1, keepdims=True))
    np.testing.assert_allclose(shapes, np.broadcast_to(shapes[0], shapes.shape), rtol=1e-6)
    assert gm.n_parameters_ == 2 + 3 * 3 + n_variance_parameters("VEV", 3, 3)


def test_univariate_e_and_v(faithful):
    x = faithful[:, :1]
    # in one dimension E is tied and V is spherical: the same fits without regularization
    # and with scikit-learn's additive one (the default reg_covar means an eigenvalue
    # floor for tied/spherical but not for E/V, so there they may differ by ~reg_covar)
    for options in ({"reg_covar": 0.0}, {"covariance_regularization": "additive"}):
        e = GaussianMixture(2, covariance_type="E", random_state=0, **options).fit(x)
        tied = GaussianMixture(2, covariance_type="tied", random_state=0, **options).fit(x)
        v = GaussianMixture(2, covariance_type="V", random_state=0, **options).fit(x)
        sph = GaussianMixture(2, covariance_type="spherical", random_state=0, **options).fit(x)
        assert e.covariances_.shape == (2, 1, 1)
        assert e.log_likelihood_ == pytest.approx(tied.log_likelihood_, rel=1e-9)
        assert v.log_likelihood_ == pytest.approx(sph.log_likelihood_, rel=1e-9)
    assert (e.n_parameters_, v.n_parameters_) == (1 + 2 + 1, 1 + 2 + 2)
    assert mclust_names(1) == ("E", "V") and mclust_names(2) == MODELS
    with pytest.raises(ValueError, match="covariance_type='E'.*one column"):
        GaussianMixture(2, covariance_type="E").fit(faithful)


def test_unknown_name_is_a_clear_error():
    with pytest.raises(ValueError, match="covariance_type"):
        GaussianMixtureModel(2, "XYZ")


def test_every_structure_is_in_the_table():
    assert set(MODELS) <= set(COVARIANCES) | set(ALIASES)


def test_standard_errors_in_the_structures_parameters():
    # one EII component: the MLE is (x̄, σ² = tr S / (n d)) and the observed information
    # gives se(μ_j) = sqrt(σ² / n) and se(σ²) = sqrt(2 σ⁴ / (n d)) in closed form
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3)) * 1.5 + 2
    gm = GaussianMixture(1, covariance_type="EII", reg_covar=0.0, tol=1e-12).fit(x)
    found = latent_em.standard_errors(gm, x)
    assert found.method == "numerical"  # 'auto' does not take the unstructured Louis path
    var = gm.covariances_[0, 0, 0]
    np.testing.assert_allclose(found.se.means, np.sqrt(var / 400), rtol=1e-5)
    np.testing.assert_allclose(
        np.diag(found.se.covariances[0]), np.sqrt(2 * var**2 / 1200), rtol=1e-5
    )
    with pytest.raises(
        ValueError, match="method='louis' is not available for covariance_type='EII'"
    ):
        latent_em.standard_errors(gm, x, method="louis")


def test_pymc_refuses_the_new_structures(three_blobs):
    gm = GaussianMixture(3, covariance_type="EVE", random_state=0).fit(three_blobs)
    from latent_em.bridges.pymc import gaussian_mixture_builder

    with pytest.raises(NotImplementedError, match="to_pymc does not support.*'EVE'"):
        gaussian_mixture_builder(gm.model_, gm.result_.params, three_blobs, None)


# ----------------------------------------------------------------- mclust on Old Faithful

#: ``mclustBIC(faithful)`` rows G = 1, 2, 3 (mclust's sign: 2 log L - p log n), columns
#: in mclust's order (see the module docstring for the source)
MCLUST_FAITHFUL_BIC = {
    1: [-4024.721] * 2 + [-3055.835] * 4 + [-2607.623] * 8,
    2: [-3452.998, -3458.305, -2354.601, -2350.607, -2352.618, -2346.065, -2325.220,
        -2322.972, -2324.273, -2320.433, -2329.115, -2325.416, -2327.598, -2322.192],
    3: [-3377.701, -3336.598, -2323.014, -2332.687, -2332.205, -2342.366, -2314.316,
        -2322.103, -2342.319, -2336.271, -2325.322, -2329.648, -2339.983, -2349.696],
}  # fmt: skip

#: (model, G) where mclust's run (started from its hierarchical agglomeration) stopped at
#: a lower local maximum than our best of 3 k-means starts; there ours is higher by the
#: amount measured when this test was written (VVI 9.9, EVE 19.8, VVE 7.8, EVV 4.6,
#: VVV 16.0), and only "not lower" is asserted
LOWER_MCLUST_OPTIMUM = {("VVI", 3), ("EVE", 3), ("VVE", 3), ("EVV", 3), ("VVV", 3)}


@pytest.mark.parametrize("name", MODELS)
def test_old_faithful_bic_table_matches_mclust(name, faithful):
    j = MODELS.index(name)
    for g, row in MCLUST_FAITHFUL_BIC.items():
        gm = GaussianMixture(g, covariance_type=name, n_init=3, random_state=0).fit(faithful)
        ours = -gm.bic(faithful)  # mclust's sign
        # never below mclust (which stops at a relative change of 1e-5, slightly short
        # of the maximum) beyond its printed precision
        assert ours >= row[j] - 1e-3, (name, g)
        if (name, g) not in LOWER_MCLUST_OPTIMUM:
            # the same maximum: a wrong parameter count would move BIC by log(272) = 5.6
            assert ours - row[j] <= 0.5, (name, g)


# ----------------------------------------------------------------- selection and the CLI


def test_select_components_over_all_structures_ranks_like_mclust(faithful, tmp_path):
    found = latent_em.select_components(
        GaussianMixture(n_init=3, random_state=0), faithful, range(1, 4), covariance_types="all"
    )
    assert tuple(found.results) == MODELS
    # mclustBIC(faithful)'s "Top 3 models based on the BIC criterion": EEE,3 VVE,2 VEE,3
    assert [(c, k) for c, k, _ in found.top(3)] == [("EEE", 3), ("VVE", 2), ("VEE", 3)]
    assert (found.best_covariance, found.best_k) == ("EEE", 3)
    assert found.best.covariance_type == "EEE"
    text = found.format()
    assert "Top 3 models based on the BIC criterion:" in text
    lines = text.splitlines()
    assert lines[1].split() == list(MODELS)
    # the row of K = 3, mclust's sign, EEE column
    row3 = next(line for line in lines if line.split()[:1] == ["3"]).split()
    assert float(row3[1 + MODELS.index("EEE")]) == pytest.approx(-2314.316, abs=0.03)
    diffs = next(line for line in lines if line.startswith("BIC diff")).split()[2:]
    assert float(diffs[0]) == 0.0 and float(diffs[1]) < 0 and float(diffs[2]) < float(diffs[1])
    assert found.plot(str(tmp_path / "bic.png")) and (tmp_path / "bic.png").stat().st_size > 0


def test_select_components_univariate_uses_e_and_v(faithful):
    found = latent_em.select_components(
        GaussianMixtureModel(1), faithful[:, :1], [1, 2], covariance_types="all", random_state=0
    )
    assert tuple(found.results) == ("E", "V")
    with pytest.raises(ValueError, match="covariance_types: unknown covariance_type 'XXX'"):
        latent_em.select_components(GaussianMixtureModel(1), faithful, [1], covariance_types="XXX")


def test_cli_accepts_mclust_names_and_all(tmp_path, faithful, capsys):
    from latent_em.cli import main

    path = tmp_path / "x.npy"
    np.save(path, faithful[:, :1])
    out = tmp_path / "fit.json"
    assert main(["fit", str(path), "-k", "1-2", "--covariance", "all", "--out", str(out),
                 "--no-plot", "--no-progress"]) == 0  # fmt: skip
    text = capsys.readouterr().out
    assert "Top 3 models based on the BIC criterion:" in text
    assert text.count(" E ") + text.count(" V ") >= 4  # the candidates' rows
    np.save(path, faithful)
    assert main(["fit", str(path), "-k", "2", "--covariance", "VEV", "--out", str(out),
                 "--no-plot", "--no-progress"]) == 0  # fmt: skip
    assert "covariance=VEV" in capsys.readouterr().out


# ----------------------------------------------------------------- deterministic start


def test_hc_start_is_wards_partition_and_does_not_depend_on_the_seed(faithful):
    from scipy.cluster import hierarchy

    model = GaussianMixtureModel(3, "VEV", init_params="hc")
    a = model.initialize(faithful, np.random.default_rng(0))
    b = model.initialize(faithful, np.random.default_rng(99))
    np.testing.assert_array_equal(a.means, b.means)
    # the start's means are the means of scipy's Ward groups (mclust's hcEII criterion)
    groups = hierarchy.cut_tree(hierarchy.linkage(faithful, "ward"), n_clusters=3).ravel()
    expected = np.stack([faithful[groups == g].mean(axis=0) for g in range(3)])
    order = np.lexsort(expected.T[::-1])
    np.testing.assert_allclose(a.means[np.lexsort(a.means.T[::-1])], expected[order])
    fits = [
        GaussianMixture(3, covariance_type="EEE", init_params="hc", random_state=s).fit(faithful)
        for s in (0, 1)
    ]
    assert fits[0].log_likelihood_ == fits[1].log_likelihood_
    # from this start EM reaches mclust's EEE,3 (log-likelihood -1126.326 in mclust)
    assert fits[0].log_likelihood_ == pytest.approx(-1126.32, abs=0.01)
    with pytest.raises(ValueError, match="init_params='hc' agglomerates all rows"):
        GaussianMixtureModel(2, init_params="hc").initialize(
            np.zeros((10_001, 2)), np.random.default_rng(0)
        )


@pytest.mark.parametrize("name", ["VEV", "EVE"])
def test_chunks_and_squarem_with_an_iterated_structure(name, faithful):
    plain = GaussianMixture(3, covariance_type=name, random_state=0, tol=1e-8).fit(faithful)
    chunked = GaussianMixture(3, covariance_type=name, random_state=0, tol=1e-8, chunk_size=50)
    assert chunked.fit(faithful).log_likelihood_ == pytest.approx(plain.log_likelihood_, rel=1e-12)
    fast = GaussianMixture(
        3, covariance_type=name, random_state=0, tol=1e-8, accelerate="squarem"
    ).fit(faithful)
    # SQUAREM extrapolates in the structure's own parameters and lands on the same maximum
    assert fast.log_likelihood_ == pytest.approx(plain.log_likelihood_, abs=1e-4)
    assert fast.n_iter_ < plain.n_iter_
    vals = np.linalg.eigvalsh(fast.covariances_)
    if name == "VEV":  # the common shape survives the extrapolation
        shapes = vals / np.exp(np.log(vals).mean(axis=1, keepdims=True))
        np.testing.assert_allclose(shapes, np.broadcast_to(shapes[0], shapes.shape), rtol=1e-6)


@pytest.mark.parametrize("name", [m for m in COVARIANCES if COVARIANCES[m].uses_current])
def test_new_structures_use_the_full_kernel_through_the_table(name):
    from latent_em.models.gaussian.kernels import KERNELS, FullKernel

    assert KERNELS[name] is FullKernel
    d = 1 if name in ("E", "V") else 3
    model = GaussianMixtureModel(2, name)
    rng = np.random.default_rng(0)
    params = model.initialize(rng.normal(size=(40, d)), rng)
    assert type(model._kernel(params, d)) is FullKernel


def test_partial_labels_with_missing_values(faithful):
    x = faithful.copy()
    x[::7, 1] = np.nan
    y = np.full(len(x), -1)
    y[:4] = [0, 1, 0, 1]
    gm = GaussianMixture(2, covariance_type="VEV", missing="marginalize", random_state=0)
    gm.fit(x, labels=y)
    assert gm.converged_ and np.isfinite(gm.log_likelihood_)
    table = gm.model_.log_weighted_densities(gm.params_, x)
    from scipy.special import logsumexp

    combined = table[np.arange(4), y[:4]].sum() + logsumexp(table[4:], axis=1).sum()
    assert gm.log_likelihood_ == pytest.approx(combined, rel=1e-10)
