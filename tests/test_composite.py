"""Mixture and Independent built from components, against independent oracles.

* A homogeneous mixture of a built-in family follows the built-in model's EM step for
  step from the same start (Poisson, Bernoulli, categorical: the composed code is
  separate from theirs; Gaussian: the generic per-component code of a heterogeneous
  list of Gaussians against GaussianMixtureModel's kernels).
* A heterogeneous mixture's log-likelihood equals the mixture density computed with
  scipy.stats, and at the EM solution scipy.optimize cannot raise it (a stationary
  point of the observed likelihood).
* Independent (mixed-type latent class analysis): log p(x) equals the scipy.stats
  product; with missing cells skipped it equals the scipy product over the observed
  groups only.
* Everything passes check_model, works with SQUAREM, select_components, standard errors
  and save/load.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize, stats
from scipy.special import logsumexp

import latent_em
from latent_em.components import (
    Bernoulli,
    Categorical,
    Exponential,
    Gamma,
    Gaussian,
    LogNormal,
    NegativeBinomial,
    Poisson,
    StudentT,
)
from latent_em.constraints import flatten_params, unflatten_params


def _gmm_data(rng, n=600):
    centres = np.array([[0.0, 0.0], [4.0, 1.0], [-1.0, 5.0]])
    z = rng.integers(0, 3, size=n)
    return centres[z] + rng.normal(size=(n, 2)) * np.array([1.0, 0.6])


@pytest.mark.parametrize("cov", ["full", "tied", "diag", "spherical"])
def test_homogeneous_gaussian_equals_the_built_in_model(cov):
    x = _gmm_data(np.random.default_rng(0))
    ours = latent_em.fit(latent_em.Mixture(Gaussian(cov), n_components=3), x, random_state=1)
    ref = latent_em.fit(latent_em.GaussianMixtureModel(3, covariance_type=cov), x, random_state=1)
    assert ours.n_iter == ref.n_iter
    assert ours.log_likelihood == pytest.approx(ref.log_likelihood, rel=1e-12)
    np.testing.assert_allclose(ours.params["mean"], ref.params.means, rtol=1e-10)
    np.testing.assert_allclose(ours.params["cov"], ref.params.covariances, rtol=1e-10)


@pytest.mark.parametrize("cov", ["full", "diag", "spherical"])
def test_generic_gaussian_code_follows_the_built_in_kernels(cov):
    """A list of three Gaussians runs the components' own log-density, statistics and
    MLE (not the built-in kernels): from the same start, the same EM path."""
    x = _gmm_data(np.random.default_rng(1))
    gmm = latent_em.GaussianMixtureModel(3, covariance_type=cov, reg_covar=0.0)
    start = gmm.initialize(x, np.random.default_rng(2))
    hetero = latent_em.Mixture([Gaussian(cov, reg_covar=0.0)] * 3)
    p0 = {"weights": start.weights}
    for k in range(3):
        p0[f"{k}.mean"] = start.means[k]
        p0[f"{k}.cov"] = start.covariances[k]
    ours = latent_em.fit(hetero, x, params=p0, max_iter=15, tol=0, warn_not_converged=False)
    ref = latent_em.fit(gmm, x, params=start, max_iter=15, tol=0, warn_not_converged=False)
    np.testing.assert_allclose(ours.history, ref.history, rtol=1e-10)
    for k in range(3):
        np.testing.assert_allclose(ours.params[f"{k}.mean"], ref.params.means[k], rtol=1e-8)
        np.testing.assert_allclose(ours.params[f"{k}.cov"], ref.params.covariances[k], rtol=1e-8)


def _count_data(rng):
    z = rng.integers(0, 2, size=500)
    return rng.poisson(np.array([[1.0, 6.0, 2.0], [7.0, 1.5, 3.0]])[z]).astype(float)


def _binary_data(rng):
    z = rng.integers(0, 2, size=500)
    p = np.array([[0.9, 0.8, 0.2, 0.1], [0.2, 0.3, 0.7, 0.9]])[z]
    return (rng.uniform(size=p.shape) < p).astype(float)


def _categorical_data(rng):
    z = rng.integers(0, 2, size=500)
    probs = np.array([[[0.7, 0.2, 0.1]] * 3, [[0.1, 0.3, 0.6]] * 3])[z]  # (n, 3, 3)
    cum = probs.cumsum(axis=-1)
    return (rng.uniform(size=(500, 3, 1)) > cum).sum(axis=-1).astype(float)


BUILT_IN = {
    "poisson": (
        Poisson(),
        latent_em.PoissonMixtureModel(2),
        _count_data,
        lambda p: {"weights": p.weights, "rate": p.rates},
        lambda p: p.rates,
        "rate",
    ),
    "bernoulli": (
        Bernoulli(),
        latent_em.BernoulliMixtureModel(2),
        _binary_data,
        lambda p: {"weights": p.weights, "p": p.probs},
        lambda p: p.probs,
        "p",
    ),
    "categorical": (
        Categorical(),
        latent_em.CategoricalMixtureModel(2),
        _categorical_data,
        None,
        None,
        "probs",
    ),
}


@pytest.mark.parametrize("name", list(BUILT_IN))
def test_homogeneous_discrete_mixture_follows_the_built_in_model(name):
    comp, builtin, data, to_ours, field, key = BUILT_IN[name]
    x = data(np.random.default_rng(3))
    xb = builtin.check_data(x)
    start = builtin.initialize(xb, np.random.default_rng(4))
    if name == "categorical":
        probs = np.stack(list(start.probs), axis=1)  # tuple of (K, C_d) -> (K, D, C)
        p0 = {"weights": start.weights, "probs": probs}
    else:
        p0 = to_ours(start)
    model = latent_em.Mixture(comp, n_components=2)
    ours = latent_em.fit(model, x, params=p0, max_iter=25, tol=0, warn_not_converged=False)
    ref = latent_em.fit(builtin, xb, params=start, max_iter=25, tol=0, warn_not_converged=False)
    np.testing.assert_allclose(ours.history, ref.history, rtol=1e-10)
    got = ours.params[key]
    want = np.stack(list(ref.params.probs), axis=1) if name == "categorical" else field(ref.params)
    np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-12)


def _mixture_logpdf_scipy(params, x):
    """Gaussian + gamma + exponential mixture density with scipy.stats."""
    w = params["weights"]
    parts = [
        np.log(w[0]) + stats.norm.logpdf(x, params["0.mean"][0], np.sqrt(params["0.cov"][0, 0])),
        np.log(w[1]) + stats.gamma.logpdf(x, params["1.shape"][0], scale=1 / params["1.rate"][0]),
        np.log(w[2]) + stats.expon.logpdf(x, scale=1 / params["2.rate"][0]),
    ]
    return logsumexp(np.stack(parts), axis=0)


def test_heterogeneous_mixture_against_scipy_and_a_direct_optimizer():
    rng = np.random.default_rng(5)
    x = np.concatenate(
        [rng.normal(12.0, 1.0, 300), rng.gamma(6.0, 0.8, 300), rng.exponential(0.5, 200)]
    )
    model = latent_em.Mixture([Gaussian(reg_covar=0.0), Gamma(), Exponential()])
    assert latent_em.check_model(model, x).passed
    result = latent_em.fit(model, x, n_init=4, random_state=0, tol=1e-12)
    p = result.params
    assert result.log_likelihood == pytest.approx(_mixture_logpdf_scipy(p, x).sum(), rel=1e-12)
    assert p["0.mean"][0] == pytest.approx(12.0, abs=0.3)
    assert p["1.shape"][0] == pytest.approx(6.0, rel=0.3)
    assert p["2.rate"][0] == pytest.approx(2.0, rel=0.3)

    # the EM solution is a stationary point: a direct optimizer cannot improve it
    cons = model.constraints
    u0 = flatten_params(p, cons)

    def neg(u):
        return -_mixture_logpdf_scipy(unflatten_params(u, p, cons), x).sum()

    best = optimize.minimize(neg, u0, method="L-BFGS-B", options={"ftol": 1e-15, "gtol": 1e-9})
    assert -best.fun <= result.log_likelihood + 1e-6


@pytest.mark.parametrize(
    "model",
    [
        latent_em.Mixture(Poisson(), n_components=2),
        latent_em.Mixture(LogNormal(), n_components=2),
        latent_em.Mixture([Gamma(), LogNormal()]),
    ],
    ids=["poisson", "lognormal", "gamma+lognormal"],
)
def test_check_model_passes(model):
    rng = np.random.default_rng(6)
    x = np.concatenate([rng.gamma(2.0, 1.0, (200, 1)), rng.gamma(30.0, 0.5, (200, 1))])
    x = np.round(x) + 1.0
    assert latent_em.check_model(model, x).passed


def _lca_data(rng, n=1500):
    """Two classes; a Gaussian, a 3-level categorical and a Poisson count per row."""
    z = rng.integers(0, 2, size=n)
    height = rng.normal(np.array([0.0, 3.0])[z], 1.0)
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.2, 0.7]])[z]
    level = (rng.uniform(size=(n, 1)) > probs.cumsum(axis=1)).sum(axis=1)
    count = rng.poisson(np.array([1.0, 6.0])[z])
    return np.column_stack([height, level, count]).astype(float), z


LCA = latent_em.Independent({0: Gaussian(reg_covar=0.0), 1: Categorical(), 2: Poisson()})


def _lca_logpdf_scipy(p, x, k, observed=None):
    """log p(x_n | class k) as a product of scipy densities (over observed groups)."""
    observed = np.ones(x.shape, dtype=bool) if observed is None else observed
    terms = [
        stats.norm.logpdf(x[:, 0], p["g0.mean"][k, 0], np.sqrt(p["g0.cov"][k, 0, 0])),
        np.log(p["g1.probs"][k, 0][np.nan_to_num(x[:, 1]).astype(int)]),
        stats.poisson.logpmf(np.nan_to_num(x[:, 2]), p["g2.rate"][k, 0]),
    ]
    return sum(np.where(observed[:, j], t, 0.0) for j, t in enumerate(terms))


def test_mixed_type_latent_class_model():
    x, z = _lca_data(np.random.default_rng(7))
    model = latent_em.Mixture(LCA, n_components=2)
    assert latent_em.check_model(model, x).passed
    result = latent_em.fit(model, x, n_init=3, random_state=0)
    p = result.params
    logp = logsumexp(
        [np.log(p["weights"][k]) + _lca_logpdf_scipy(p, x, k) for k in range(2)], axis=0
    )
    assert result.log_likelihood == pytest.approx(logp.sum(), rel=1e-12)
    order = np.argsort(p["g0.mean"][:, 0])
    np.testing.assert_allclose(p["g0.mean"][order, 0], [0.0, 3.0], atol=0.15)
    np.testing.assert_allclose(p["g2.rate"][order, 0], [1.0, 6.0], rtol=0.1)
    np.testing.assert_allclose(p["g1.probs"][order[1], 0], [0.1, 0.2, 0.7], atol=0.05)
    assert model.n_parameters(p) == 1 + 2 * (2 + 2 + 1)


def test_missing_cells_are_skipped():
    rng = np.random.default_rng(8)
    x, _ = _lca_data(rng, n=800)
    holes = rng.uniform(size=x.shape) < 0.15
    x[holes] = np.nan
    strict = latent_em.Mixture(LCA, n_components=2)
    with pytest.raises(ValueError, match="NaN"):
        strict.check_data(x)
    skip = latent_em.Independent(
        {0: Gaussian(reg_covar=0.0), 1: Categorical(), 2: Poisson()}, missing="skip"
    )
    model = latent_em.Mixture(skip, n_components=2)
    assert latent_em.check_model(model, x).passed
    result = latent_em.fit(model, x, n_init=2, random_state=0)
    p = result.params
    observed = ~np.isnan(x)
    logp = logsumexp(
        [np.log(p["weights"][k]) + _lca_logpdf_scipy(p, x, k, observed) for k in range(2)],
        axis=0,
    )
    assert result.log_likelihood == pytest.approx(logp.sum(), rel=1e-12)
    # the rows' observed values alone identify the classes as well as before
    order = np.argsort(p["g0.mean"][:, 0])
    np.testing.assert_allclose(p["g0.mean"][order, 0], [0.0, 3.0], atol=0.25)


def test_missing_skip_equals_dropping_the_rows_for_a_single_group():
    """With one group, a row with a NaN contributes nothing: the same fit as without it."""
    rng = np.random.default_rng(9)
    x = _count_data(rng)
    x_nan = x.copy()
    x_nan[::7, 1] = np.nan
    comp = latent_em.Independent({(0, 1, 2): Poisson()}, missing="skip")
    model = latent_em.Mixture(comp, n_components=2)
    start = model.initialize(model.check_data(x[1::7]), np.random.default_rng(0))
    kept = ~np.isnan(x_nan).any(axis=1)
    # the rows' factor is 1 whatever the parameters: the same maximum (EM still gives
    # those rows responsibilities equal to the weights, so the paths differ)
    a = latent_em.fit(model, x_nan, params=start, tol=1e-13)
    b = latent_em.fit(model, x[kept], params=start, tol=1e-13)
    assert a.log_likelihood == pytest.approx(b.log_likelihood, rel=1e-10)
    np.testing.assert_allclose(a.params["g0.rate"], b.params["g0.rate"], rtol=1e-5)
    np.testing.assert_allclose(a.params["weights"], b.params["weights"], rtol=1e-5)


def test_squarem_select_components_standard_errors_and_save_load(tmp_path):
    x = _count_data(np.random.default_rng(10))
    model = latent_em.Mixture(Poisson(), n_components=2)
    plain = latent_em.fit(model, x, random_state=0, tol=1e-10)
    fast = latent_em.fit(model, x, random_state=0, tol=1e-10, accelerate="squarem")
    assert fast.log_likelihood == pytest.approx(plain.log_likelihood, rel=1e-8)
    assert fast.n_evaluations < plain.n_evaluations

    sel = latent_em.select_components(model, x, [1, 2, 3], random_state=0)
    assert sel.best_k == 2

    # standard errors: the same as the built-in Poisson mixture's numerical ones
    se = latent_em.standard_errors(plain, x, method="numerical")
    builtin = latent_em.PoissonMixtureModel(2)
    ref_params = latent_em.PoissonMixtureParams(plain.params["weights"], plain.params["rate"])
    ref = latent_em.standard_errors(builtin, x, params=ref_params, method="numerical")
    np.testing.assert_allclose(se.se["rate"], ref.se.rates, rtol=1e-4)

    path = plain.save(tmp_path / "fit.json")
    again = latent_em.EMResult.load(path)
    assert again.model == model
    np.testing.assert_array_equal(again.params["rate"], plain.params["rate"])


def test_sample_then_fit_recovers_a_heterogeneous_mixture():
    model = latent_em.Mixture([Exponential(), Gaussian()])
    truth = {
        "weights": np.array([0.4, 0.6]),
        "0.rate": np.array([1.0]),
        "1.mean": np.array([8.0]),
        "1.cov": np.array([[1.0]]),
    }
    x, z = model.sample(truth, 3000, np.random.default_rng(11))
    assert x.shape == (3000, 1) and set(np.unique(z)) == {0, 1}
    x = np.abs(x)  # the exponential needs x >= 0 (a Gaussian draw below 0 is ~1e-15 likely)
    result = latent_em.fit(model, x, n_init=3, random_state=0)
    assert result.params["weights"][0] == pytest.approx(0.4, abs=0.03)
    assert result.params["0.rate"][0] == pytest.approx(1.0, rel=0.1)
    assert result.params["1.mean"][0] == pytest.approx(8.0, abs=0.1)


def test_bad_construction_is_named():
    with pytest.raises(ValueError, match="n_components is required"):
        latent_em.Mixture(Poisson())
    with pytest.raises(TypeError, match="components\\[1\\]"):
        latent_em.Mixture([Poisson(), "gamma"])
    with pytest.raises(ValueError, match="does not match"):
        latent_em.Mixture([Poisson(), Gamma()], n_components=3)
    with pytest.raises(ValueError, match="tied"):
        latent_em.Mixture([Gaussian("tied"), Gaussian("tied")])
    with pytest.raises(ValueError, match="more than one group"):
        latent_em.Independent({(0, 1): Poisson(), 1: Gamma()})
    with pytest.raises(ValueError, match="column 1 is missing"):
        latent_em.Independent({0: Poisson(), 2: Gamma()})
    with pytest.raises(ValueError, match="missing must be"):
        latent_em.Independent({0: Poisson()}, missing="drop")
    with pytest.raises(ValueError, match=r"columns \[2\] \(Poisson\)"):
        LCA.check_data(np.array([[0.0, 1.0, -1.0]]))


def test_numerical_mixture_of_student_t_and_negative_binomial(tmp_path):
    """Components without closed-form statistics: the numerical M-step; check_model,
    a stationary point of the scipy.stats likelihood, and save/load."""
    rng = np.random.default_rng(12)
    x = np.concatenate([rng.standard_t(3.0, 200) * 0.5, 6.0 + rng.standard_t(5.0, 200)])
    model = latent_em.Mixture(StudentT(), n_components=2)
    assert type(model).__name__ == "NumericalMixture"
    assert latent_em.check_model(model, x).passed
    result = latent_em.fit(model, x, n_init=3, random_state=0, tol=1e-8)
    p = result.params
    logp = logsumexp(
        [
            np.log(p["weights"][k])
            + stats.t.logpdf(x, p["df"][k, 0], loc=p["loc"][k, 0], scale=p["scale"][k, 0])
            for k in range(2)
        ],
        axis=0,
    )
    # the t(5) cluster's df runs off to ~1e8 (its MLE is a Gaussian), where scipy's
    # log-density loses ~1e-8 per row to the cancellation of two large lnΓ values
    assert result.log_likelihood == pytest.approx(logp.sum(), rel=1e-8)
    order = np.argsort(p["loc"][:, 0])
    np.testing.assert_allclose(p["loc"][order, 0], [0.0, 6.0], atol=0.2)
    path = result.save(tmp_path / "t.json")
    again = latent_em.EMResult.load(path)
    assert again.model == model and type(again.model) is type(model)


def test_numerical_heterogeneous_mixture_passes_check_model():
    rng = np.random.default_rng(13)
    counts = np.concatenate([rng.negative_binomial(2, 0.2, 150), rng.poisson(30.0, 150)])
    mixed = latent_em.Mixture([NegativeBinomial(), Poisson()])
    assert latent_em.check_model(mixed, counts).passed


def test_bootstrap_equals_the_built_in_models():
    """Same resamples (same seed), same fits: the same bootstrap standard errors as the
    built-in Poisson mixture, label alignment included."""
    x = _count_data(np.random.default_rng(10))
    model = latent_em.Mixture(Poisson(), n_components=2)
    ours = latent_em.fit(model, x, random_state=0, tol=1e-10)
    builtin = latent_em.PoissonMixtureModel(2)
    start = latent_em.PoissonMixtureParams(ours.params["weights"], ours.params["rate"])
    ref = latent_em.fit(builtin, x, params=start, tol=1e-10)
    a = latent_em.bootstrap(ours, x, n_boot=20, random_state=0)
    b = latent_em.bootstrap(ref, x, n_boot=20, random_state=0)
    np.testing.assert_allclose(a.se["rate"], b.se.rates, rtol=1e-6)
    np.testing.assert_allclose(a.se["weights"], b.se.weights, rtol=1e-6)


def test_chunks_and_data_on_disk_give_the_same_fit(tmp_path):
    """Statistics add over chunks: chunk_size and a .npy file read chunk by chunk give
    the in-memory fit (a mixed-type model, chunks smaller than K included)."""
    x, _ = _lca_data(np.random.default_rng(14), n=500)
    model = latent_em.Mixture(
        latent_em.Independent({0: Gaussian(), 1: Categorical(n_categories=3), 2: Poisson()}),
        n_components=3,
    )
    start = model.initialize(model.check_data(x), np.random.default_rng(0))
    whole = latent_em.fit(model, x, params=start, max_iter=10, tol=0, warn_not_converged=False)
    chunked = latent_em.fit(
        model, x, params=start, max_iter=10, tol=0, chunk_size=2, warn_not_converged=False
    )
    np.save(tmp_path / "x.npy", x)
    on_disk = latent_em.fit(
        model,
        tmp_path / "x.npy",
        params=start,
        max_iter=10,
        tol=0,
        chunk_size=128,
        warn_not_converged=False,
    )
    np.testing.assert_allclose(chunked.history, whole.history, rtol=1e-12)
    np.testing.assert_allclose(on_disk.history, whole.history, rtol=1e-12)


def test_heterogeneous_supports_a_gaussian_and_a_gamma_on_signed_data():
    """Negative values belong to the Gaussian alone (the gamma gives them probability
    zero): the log-likelihood is scipy's mixture density, EM ends at a stationary point."""
    rng = np.random.default_rng(15)
    x = np.concatenate([rng.normal(0.0, 1.0, 400), rng.gamma(4.0, 2.0, 300)])
    model = latent_em.Mixture([Gaussian(reg_covar=0.0), Gamma()])
    assert latent_em.check_model(model, x).passed
    result = latent_em.fit(model, x, n_init=3, random_state=0, tol=1e-12)
    p = result.params

    def loglik(q):
        with np.errstate(divide="ignore"):
            parts = [
                np.log(q["weights"][0])
                + stats.norm.logpdf(x, q["0.mean"][0], np.sqrt(q["0.cov"][0, 0])),
                np.log(q["weights"][1])
                + stats.gamma.logpdf(x, q["1.shape"][0], scale=1 / q["1.rate"][0]),
            ]
        return logsumexp(np.stack(parts), axis=0).sum()

    assert result.log_likelihood == pytest.approx(loglik(p), rel=1e-12)
    assert p["0.mean"][0] == pytest.approx(0.0, abs=0.2)
    assert p["1.shape"][0] == pytest.approx(4.0, rel=0.25)
    cons = model.constraints
    best = optimize.minimize(
        lambda u: -loglik(unflatten_params(u, p, cons)),
        flatten_params(p, cons),
        method="L-BFGS-B",
        options={"ftol": 1e-15, "gtol": 1e-9},
    )
    assert -best.fun <= result.log_likelihood + 1e-6
    with pytest.raises(ValueError, match="row 1 lies outside the support of every component"):
        latent_em.Mixture([Gamma(), Exponential()]).check_data(np.array([1.0, -1.0]))


GRADIENT_CASES = {
    "student-t": (
        latent_em.Mixture(StudentT(), n_components=2),
        lambda rng: np.column_stack([rng.standard_t(4.0, 120), rng.normal(size=120)]),
    ),
    "negbin+poisson": (
        latent_em.Mixture([NegativeBinomial(), Poisson()]),
        lambda rng: rng.negative_binomial(3, 0.3, size=(120, 2)).astype(float),
    ),
    "gamma+exponential": (
        latent_em.Mixture([latent_em.Independent({0: Gamma(), 1: Exponential()}), Gamma()]),
        lambda rng: rng.gamma(2.0, 1.5, size=(120, 2)),
    ),
}


@pytest.mark.parametrize("name", list(GRADIENT_CASES))
def test_log_joint_grad_equals_finite_differences(name):
    """The analytic gradient against central differences of Σ_n w_n log p(x_n, z_n)."""
    model, data = GRADIENT_CASES[name]
    rng = np.random.default_rng(16)
    x = model.check_data(data(rng))
    params = model.initialize(x, rng)
    z = rng.integers(0, 2, size=x.shape[0])
    w = rng.uniform(0.5, 1.5, size=x.shape[0])
    assert callable(model.log_joint_grad)
    grad = model.log_joint_grad(params, x, z, w)
    for key, value in params.items():
        value = np.asarray(value, dtype=float)
        numeric = np.empty(value.shape)
        for idx in np.ndindex(value.shape):
            h = 1e-6 * max(1.0, abs(value[idx]))
            up, down = value.copy(), value.copy()
            up[idx] += h
            down[idx] -= h
            f_up = w @ model.log_joint({**params, key: up}, x, z)
            f_down = w @ model.log_joint({**params, key: down}, x, z)
            numeric[idx] = (f_up - f_down) / (2 * h)
        np.testing.assert_allclose(grad[key], numeric, rtol=1e-5, atol=1e-5, err_msg=key)


def test_gradient_and_finite_difference_fits_agree():
    rng = np.random.default_rng(17)
    x = np.concatenate([rng.standard_t(3.0, 150) * 0.5, 6.0 + rng.standard_t(5.0, 150)])
    model = latent_em.Mixture(StudentT(), n_components=2)
    start = model.initialize(model.check_data(x), np.random.default_rng(0))
    with_grad = latent_em.fit(model, x, params=start, max_iter=6, tol=0, warn_not_converged=False)

    class FiniteDifferences(latent_em.composite.NumericalMixture):
        log_joint_grad = None

    plain = FiniteDifferences(StudentT(), n_components=2)
    without = latent_em.fit(plain, x, params=start, max_iter=6, tol=0, warn_not_converged=False)
    # the same EM path: each M-step's optimum, found with either gradient
    np.testing.assert_allclose(with_grad.history, without.history, rtol=1e-7)
    np.testing.assert_allclose(with_grad.params["loc"], without.params["loc"], atol=1e-4)
