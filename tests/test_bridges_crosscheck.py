"""The NUTS cross-check: relabeling, agreement on a well-identified fit, and a detected
disagreement when EM is stuck at a poor local optimum.

Sampling is small (2 chains x 300 draws, 150 rows, one model structure shared by the
sampling tests so PyTensor compiles it once) and seeded.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import latent_em

pytestmark = pytest.mark.bridges

pytest.importorskip("pymc")

from latent_em.bridges import _compat, crosscheck, relabel_draws  # noqa: E402


def three_clusters() -> np.ndarray:
    """1-D data: three well-separated unit-variance clusters at -5, 0 and 5."""
    rng = np.random.default_rng(3)
    return np.concatenate([rng.normal(-5, 1, 50), rng.normal(0, 1, 50), rng.normal(5, 1, 50)])[
        :, None
    ]


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    return three_clusters()


@pytest.fixture(scope="module")
def good_fit(data):
    return latent_em.GaussianMixture(3, n_init=3, random_state=0).fit(data)


@pytest.fixture(scope="module")
def stuck_fit(data):
    # two components start on the left cluster, one between the others: EM converges to a
    # local optimum that merges the middle and right clusters
    return latent_em.GaussianMixture(3, means_init=[[-5.5], [-4.5], [2.5]], random_state=0).fit(
        data
    )


@pytest.fixture(scope="module")
def good_report(good_fit, data):
    # standard errors "auto": Louis' observed information from latent_em.uncertainty
    return crosscheck(good_fit, data, draws=300, tune=300, chains=2, random_seed=1)


def test_laplace_draws_match_louis_standard_errors(good_fit, data):
    # two independent routes to the same asymptotic covariance: finite differences in
    # the unconstrained space (bridges) and Louis' analytic information (uncertainty)
    from latent_em.bridges import to_inference_data
    from latent_em.uncertainty import standard_errors

    se = standard_errors(good_fit, data).se
    lap = to_inference_data(good_fit, data, draws="laplace", n_draws=3000, random_seed=0)
    for name in ("weights", "means", "covariances"):
        sd = lap["posterior"][name].values.reshape(3000, *np.shape(getattr(se, name))).std(0)
        np.testing.assert_allclose(sd, getattr(se, name), rtol=0.1, err_msg=name)


def test_relabeling_repairs_label_switching_between_chains():
    # chain 1 explores the same mode as chain 0 with its labels swapped: R-hat of the raw
    # draws is huge, after matching to the reference it is that of two identical chains
    rng = np.random.default_rng(0)
    s = 400
    means = np.stack([rng.normal(-2, 0.1, (2, s)), rng.normal(3, 0.1, (2, s))], axis=-1)
    weights = np.stack([rng.normal(0.3, 0.01, (2, s)), rng.normal(0.7, 0.01, (2, s))], axis=-1)
    means[1] = means[1][:, ::-1]
    weights[1] = weights[1][:, ::-1]
    draws = {"means": means, "weights": weights}
    reference = np.array([[-2.0], [3.0]])
    relabeled, perms = relabel_draws(draws, reference, means[..., None], {"means": 0, "weights": 0})
    assert _compat.rhat(draws["means"][..., 0]) > 1.5
    assert _compat.rhat(relabeled["means"][..., 0]) < 1.02
    assert np.all(perms[0] == [0, 1]) and np.all(perms[1] == [1, 0])
    np.testing.assert_allclose(relabeled["weights"].mean(axis=(0, 1)), [0.3, 0.7], atol=0.01)
    # parameters not indexed by component stay as they are
    shared = {"sigma": rng.normal(size=(2, s))}
    out, _ = relabel_draws(shared, reference, means[..., None], {"sigma": None})
    np.testing.assert_array_equal(out["sigma"], shared["sigma"])


def test_agreement_on_a_well_identified_fit(good_report, good_fit):
    report = good_report
    assert report.verdict == "agree", report.to_table()
    assert report.signals == ()
    assert report.modes["n_modes"] == 1 and report.modes["em_mode"] == 0
    assert report.settings["standard_errors"] == "observed information (louis)"
    assert len(report.parameters) == 9  # 3 weights, 3 means, 3 variances
    for p in report.parameters:
        assert abs(p.z) < 3
        assert p.lower <= p.mean <= p.upper
        # EM's MLE lies inside the 94 % interval of a well-identified posterior
        assert p.lower <= p.em <= p.upper, p
    # Bernstein-von Mises: with weak priors and 150 rows the posterior sd is close to the
    # standard error from the observed information
    for p in report.parameters:
        if p.name.startswith(("means", "weights")):
            assert 0.67 < p.sd / p.se < 1.5, p
    assert report.diagnostics["divergences"] == 0
    assert report.diagnostics["max_r_hat"] < 1.05
    # the MLE bounds every posterior draw's likelihood (up to EM's tolerance)
    ll = report.log_likelihood
    assert ll["em"] == pytest.approx(good_fit.log_likelihood_)
    assert ll["posterior_max"] <= ll["em"] + 1e-3
    # well-separated clusters: memberships agree row by row
    assert report.membership["label_agreement"] == 1.0
    assert report.membership["mean_abs_difference"] < 0.02
    assert report.posterior_membership.shape == (150, 3)
    np.testing.assert_allclose(report.posterior_membership.sum(axis=1), 1.0)


def test_disagreement_when_em_is_stuck_at_a_local_optimum(stuck_fit, good_fit, data):
    assert stuck_fit.log_likelihood_ < good_fit.log_likelihood_ - 5  # really a poor optimum
    report = crosscheck(stuck_fit, data, draws=300, tune=300, chains=2, random_seed=1)
    assert report.verdict == "disagree", report.to_table()
    assert any("did not find the maximum" in r for r in report.reasons)
    # the merged component also changes who belongs where: a second, independent signal
    assert {"log_likelihood", "membership"} <= set(report.signals), report.reasons
    assert report.log_likelihood["posterior_max"] > report.log_likelihood["em"] + 1.0
    # chain 1 leaves EM's mode for the three-cluster one; chain 0 stays near EM, so the
    # average over chains hides what the chain that left shows
    assert min(report.membership["label_agreement_per_chain"]) < 0.9


def test_collapsed_component_disagrees_end_to_end():
    # issue 15, defect 5: one isolated point; EM puts a component on it (variance at the
    # reg_covar floor, likelihood unbounded there), the posterior keeps that variance far
    # from 0. Before the verdict looked at boundaries and intervals this said "agree".
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, 80), [10.0]])[:, None]
    gm = latent_em.GaussianMixture(2, means_init=[[0.0], [10.0]], random_state=0).fit(x)
    assert gm.covariances_[1, 0, 0] == pytest.approx(1e-6)
    report = crosscheck(gm, x, draws=300, tune=300, chains=2, random_seed=1)
    assert report.verdict == "disagree", report.to_table()
    assert set(report.signals) == {"interval", "boundary"}
    row = next(p for p in report.parameters if p.name == "covariances[1,0,0]")
    assert row.signals == ("boundary", "interval")
    assert row.reasons[0].startswith("component 1 collapsed: smallest variance 1e-06")
    assert row.lower > 1.0  # measured: [4.1, 812] (issue 15: [6.7, 7033])
    # the rest of the fit agrees
    assert [p.name for p in report.parameters if p.verdict == "disagree"] == [row.name]


def test_dispersed_starts_report_the_modes_visited(stuck_fit, data):
    # chain 0 starts at the poor EM optimum, chain 1 at PyMC's jittered default point:
    # the report says where each started, which mode each settled in, and that the
    # posterior reaches likelihoods EM's optimum cannot
    report = crosscheck(
        stuck_fit, data, draws=300, tune=300, chains=2, random_seed=1, starts="dispersed"
    )
    assert report.modes["starts"] == ["EM", "PyMC default (jittered)"]
    assert report.settings["starts"] == "dispersed"
    assert len(report.modes["chain_mode"]) == 2
    assert report.verdict == "disagree"
    assert "log_likelihood" in report.signals
    assert "started ['EM', 'PyMC default (jittered)']" in report.to_table()
    with pytest.raises(ValueError, match="starts must be"):
        crosscheck(stuck_fit, data, starts="random")


def test_start_points_per_chain(good_fit, data):
    # no sampling: where each chain would start
    from latent_em.bridges import build_pymc
    from latent_em.bridges.crosscheck import _starts

    rec = build_pymc(good_fit, data)
    x = good_fit._check_predict_data(data)
    points, names = _starts(rec, 3, "restarts", 1, good_fit.model_, x, None)
    assert names[0] == names[2] == "EM"
    for name in rec.initvals:
        np.testing.assert_array_equal(points[0][name], rec.initvals[name])
    # the odd chain starts at another EM run's optimum (one random start)
    run = latent_em.fit(good_fit.model_, x, n_init=1, random_state=1010)
    assert names[1] == f"EM restart (random_state=1010, log-likelihood {run.log_likelihood:.3f})"
    np.testing.assert_allclose(points[1]["means"], run.params.means)
    np.testing.assert_allclose(points[1]["sd"] ** 2, run.params.covariances[:, 0, 0])
    points, names = _starts(rec, 2, "dispersed", 1)
    assert names == ["EM", "PyMC default (jittered)"]
    assert set(points[1]) == {rv.name for rv in rec.model.free_RVs}


def test_report_outputs(good_report, tmp_path):
    report = good_report
    text = report.to_table()
    assert "means[0,0]" in text and "verdict: AGREE" in text and "R-hat" in text
    assert " SE " in text.splitlines()[0] + " "
    assert "standard errors: observed information (louis)" in text
    assert "modes: chain -> mode [0, 0]; EM in mode 0" in text
    assert str(report) == text
    df = report.to_dataframe()
    assert list(df.index) == [p.name for p in report.parameters]
    assert {"em", "mean", "sd", "lower", "upper", "z", "r_hat", "ess_bulk", "verdict"} <= set(
        df.columns
    )
    path = report.to_json(str(tmp_path / "report.json"))
    with open(path, encoding="utf-8") as fh:
        loaded = json.load(fh)
    assert loaded["verdict"] == "agree"
    assert loaded["parameters"][0]["name"] == report.parameters[0].name
    assert loaded["parameters"][0]["mean"] == pytest.approx(report.parameters[0].mean)
    assert loaded["settings"]["draws"] == 300
    for name, method in [
        ("forest.png", report.plot_forest),
        ("membership.png", report.plot_membership),
        ("trace.png", report.plot_trace),
    ]:
        out = method(str(tmp_path / name))
        with open(out, "rb") as fh:
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n"


def test_loo_and_posterior_predictive_check_on_the_crosscheck_output(good_report, data):
    from scipy.special import logsumexp

    idata = good_report.inference_data
    # named dims on the PyMC result
    assert idata["posterior"]["means"].dims == ("chain", "draw", "component", "feature")
    assert idata["posterior"]["covariances"].dims[2:] == ("component", "feature", "feature_bis")
    pointwise = np.asarray(idata["log_likelihood"]["x"].values)
    assert pointwise.shape == (2, 300, 150)
    # PyMC's pointwise log-likelihood summed over rows equals latent_em's at every draw
    # (averaged over the same draws: an independent evaluation of the same numbers)
    assert pointwise.sum(axis=-1).mean() == pytest.approx(
        good_report.log_likelihood["posterior_mean"], rel=1e-10
    )
    res = good_report.loo()
    assert res["pareto_k"].shape == (150,)
    # every Pareto k below 0.7 (Vehtari, Gelman & Gabry 2017). With 600 draws ArviZ's
    # sample-size threshold is 0.64, which one row crossed on PyMC 6 (k = 0.66)
    assert res["pareto_k"].max() < 0.7
    assert res["good_k"] == pytest.approx(1 - 1 / np.log10(600))
    assert res["warning"] == (res["n_bad_k"] > 0)
    # definition: lppd = Σ_n log mean_s p(x_n | θ_s); p_loo = lppd - elpd_loo, close to the
    # 8 free parameters of a well-identified 3-component 1-D mixture
    flat = pointwise.reshape(-1, 150)
    lppd = float(np.sum(logsumexp(flat, axis=0) - np.log(flat.shape[0])))
    assert res["p"] == pytest.approx(lppd - res["elpd"], rel=1e-6)
    assert 5 < res["p"] < 12
    # az.compare takes the cross-check's output as it is (here against itself: no difference)
    import arviz as az

    with warnings.catch_warnings():
        # ArviZ 1.x warns about the one Pareto k above 0.64 (see above)
        warnings.filterwarnings("ignore", message="Estimated shape parameter of Pareto")
        table = az.compare({"a": idata, "b": idata})
    assert len(table) == 2
    # posterior predictive check: replicated data sets like the observed one
    rep = good_report.posterior_predictive(random_seed=0)
    assert rep.shape == (2, 300, 150)
    for stat in (np.std, lambda v, axis=None: np.mean(np.abs(v) < 2.5, axis=axis)):
        observed = stat(data[:, 0])
        replicated = stat(rep, axis=-1)
        assert 0.05 < np.mean(replicated > observed) < 0.95


def test_standard_errors_are_shown_and_checked(good_fit, data):
    # validation happens before any sampling
    with pytest.raises(ValueError, match="unknown parameter 'mu'"):
        crosscheck(good_fit, data, standard_errors={"mu": np.ones(3)})
    with pytest.raises(ValueError, match=r"standard_errors\['means'\] must have shape"):
        crosscheck(good_fit, data, standard_errors={"means": np.ones(3)})


@pytest.mark.parametrize(
    ("option", "value"),
    [("draws", 0), ("tune", -1), ("chains", 0), ("threshold", 0.0), ("random_seed", -3)],
)
def test_crosscheck_validates_options(good_fit, data, option, value):
    with pytest.raises(ValueError, match=option):
        crosscheck(good_fit, data, **{option: value})


# ----------------------------------------------------------------------------- discrete


def test_bernoulli_mixture_on_carcinoma():
    x = latent_em.datasets.load_carcinoma() - 1  # ratings 1/2 -> 0/1
    lca = latent_em.BernoulliMixture(2, n_init=5, random_state=0).fit(x)
    # published: poLCA's carcinoma example, nclass = 2, log-likelihood -317.2568
    assert lca.log_likelihood_ == pytest.approx(-317.2568, abs=1e-3)
    report = crosscheck(lca, x, draws=300, tune=300, chains=2, random_seed=2)
    # EM puts five probabilities on (or within 1e-8 of) the 0/1 boundary, where the
    # Beta(1, 1) posterior keeps them inside: a real difference between the two answers,
    # which the verdict reports (issue 15: a boundary estimate is a disagreement)
    assert report.verdict == "disagree", report.to_table()
    assert report.signals == ("interval", "boundary"), report.reasons
    near_boundary = {p.name for p in report.parameters if min(p.em, 1 - p.em) < 1e-3}
    assert {p.name for p in report.parameters if p.verdict == "disagree"} == near_boundary
    assert len(near_boundary) == 5
    assert any("on the boundary of [0, 1]" in r for p in report.parameters for r in p.reasons)
    assert len(report.parameters) == 2 + 2 * 7
    # relabeling keeps the chains in one labeling, and EM's maximum bounds the draws
    assert report.diagnostics["max_r_hat"] < 1.05
    assert report.log_likelihood["posterior_max"] <= report.log_likelihood["em"] + 1e-6
    # several probabilities sit on the 0/1 boundary: no usable observed information
    assert report.settings["standard_errors"].startswith("unavailable")
    assert all(p.se is None for p in report.parameters)
    # the printed report says why the SE column is missing and why each row disagrees
    text = report.to_table()
    assert "standard errors: no SE column; unavailable: " in text
    row = next(p for p in report.parameters if p.verdict == "disagree")
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith(row.name + " "))
    assert lines[at].endswith("disagree (boundary, interval)")
    assert lines[at + 1] == f"    - {row.reasons[0]}"
    assert "5 of 16 parameters disagree (reasons under their rows)" in text
    # memberships mostly agree; they cannot all agree: EM puts some probabilities on the
    # boundary (e.g. rater A always says "yes" in one class), which makes a response
    # pattern impossible in a class, while under the Beta prior it is merely unlikely
    assert report.membership["label_agreement"] > 0.9
    assert report.membership["mean_abs_difference"] < 0.1
    # LOO and a posterior predictive check run on the latent class model (CustomDist)
    res = report.loo()
    assert res["pareto_k"].shape == (len(x),)
    assert res["warning"] == (res["n_bad_k"] > 0)  # ArviZ's flag, returned not raised
    rep = report.posterior_predictive(random_seed=1)
    assert rep.shape == (2, 300, *x.shape) and set(np.unique(rep)) <= {0, 1}
    for d in range(x.shape[1]):
        assert 0.02 < np.mean(rep[..., d].mean(axis=-1) > x[:, d].mean()) < 0.98
    # probabilities away from the boundary agree with the posterior
    interior = [p for p in report.parameters if 0.05 < p.em < 0.95]
    assert len(interior) >= 8
    assert all(abs(p.z) < 3 for p in interior)


# ----------------------------------------------------------------------------- relabeling


def test_relabeled_draws_match_an_ordered_means_model():
    """Relabeled posterior means equal those of an identified model within MC error.

    Oracle: a hand-written PyMC model of the same mixture and priors whose labels are
    identified by ordered means (``transforms.ordered``), sampled without any relabeling.
    Clusters that touch (means -4, 0, 4; sds 1, 1.2, 1) so the allocation matters.
    """
    import pymc as pm

    rng = np.random.default_rng(11)
    x = np.concatenate([rng.normal(-4, 1, 60), rng.normal(0, 1.2, 80), rng.normal(4, 1, 60)])
    x = x[:, None]
    gm = latent_em.GaussianMixture(3, n_init=3, random_state=0).fit(x)
    order = np.argsort(gm.means_[:, 0])
    report = crosscheck(gm, x, draws=400, tune=400, chains=2, random_seed=4)
    col_sd = float(x.std())
    with pm.Model():
        w = pm.Dirichlet("weights", a=np.ones(3))
        mu = pm.Normal(
            "mu",
            mu=float(x.mean()),
            sigma=10 * col_sd,
            shape=3,
            transform=pm.distributions.transforms.ordered,
            initval=np.array([-3.0, 0.0, 3.0]),
        )
        sd = pm.HalfNormal("sd", sigma=10 * col_sd, shape=3)
        pm.NormalMixture("x", w=w, mu=mu, sigma=sd, observed=x[:, 0])
        idata = pm.sample(
            draws=400,
            tune=400,
            chains=2,
            random_seed=4,
            progressbar=False,
            compute_convergence_checks=False,
        )
    post = idata["posterior"]
    oracle = {
        "weights": np.asarray(post["weights"].values),
        "means": np.asarray(post["mu"].values),
        "covariances": np.asarray(post["sd"].values) ** 2,
    }
    relabeled = {
        "weights": report.draws["weights"][..., order],
        "means": report.draws["means"][..., order, 0],
        "covariances": report.draws["covariances"][..., order, 0, 0],
    }
    for name in oracle:
        for j in range(3):
            a, b = relabeled[name][..., j], oracle[name][..., j]
            mcse = np.hypot(
                a.std() / np.sqrt(_compat.ess_bulk(a)), b.std() / np.sqrt(_compat.ess_bulk(b))
            )
            assert abs(a.mean() - b.mean()) < 4 * mcse, (name, j, a.mean(), b.mean(), mcse)
