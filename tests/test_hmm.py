"""HiddenMarkovModel against brute force over all paths and against hmmlearn.

* Brute force: on short sequences of different lengths, ``log p(x)``, the state
  marginals, the summed pair marginals and the entropy of the posterior equal the sums
  over all ``S^T`` paths of ``p(x, z)`` computed with scipy.stats densities; Viterbi
  returns the best of them.
* hmmlearn 0.3 (``GaussianHMM``, ``CategoricalHMM``, ``PoissonHMM``) with its priors set
  to the plain MLE (``covars_prior=0``, ``min_covar`` unused without initialization)
  started from our initial parameters: the same log-likelihood after the same number
  of iterations, to 1e-8.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
from hmmlearn import hmm as hmmlearn_hmm
from scipy import stats
from scipy.special import logsumexp

import latent_em
from latent_em.components import Categorical, Gaussian, Poisson, StudentT

TRUTH = {
    "initial": np.array([0.6, 0.3, 0.1]),
    "transition": np.array([[0.8, 0.15, 0.05], [0.1, 0.7, 0.2], [0.2, 0.2, 0.6]]),
}


def _poisson_hmm():
    hmm = latent_em.HiddenMarkovModel(Poisson(), n_states=3)
    params = {**TRUTH, "rate": np.array([[0.5, 3.0], [4.0, 1.0], [9.0, 6.0]])}
    return hmm, params, lambda p, x, s: stats.poisson.logpmf(x, p["rate"][s]).sum(axis=-1)


def _gaussian_hmm():
    hmm = latent_em.HiddenMarkovModel(Gaussian("full", reg_covar=0.0), n_states=3)
    covs = np.array(
        [[[1.0, 0.3], [0.3, 0.5]], [[0.4, 0.0], [0.0, 2.0]], [[1.0, -0.5], [-0.5, 1.0]]]
    )
    params = {**TRUTH, "mean": np.array([[0.0, 0.0], [3.0, -1.0], [-2.0, 4.0]]), "cov": covs}

    def logpdf(p, x, s):
        return stats.multivariate_normal(p["mean"][s], p["cov"][s]).logpdf(x)

    return hmm, params, logpdf


def _categorical_hmm():
    hmm = latent_em.HiddenMarkovModel(Categorical(n_categories=4), n_states=3)
    probs = np.array([[0.7, 0.1, 0.1, 0.1], [0.1, 0.6, 0.2, 0.1], [0.05, 0.05, 0.2, 0.7]])
    params = {**TRUTH, "probs": probs[:, None, :]}
    return hmm, params, lambda p, x, s: np.log(p["probs"][s, 0, int(x[0])])


CASES = {"poisson": _poisson_hmm, "gaussian": _gaussian_hmm, "categorical": _categorical_hmm}


def _brute_force(params, logpdf, seq, s):
    """All paths: log p(x), γ_t, Σ_t ξ_t and the posterior entropy of one sequence."""
    t = seq.shape[0]
    paths = list(itertools.product(range(s), repeat=t))
    logj = np.empty(len(paths))
    with np.errstate(divide="ignore"):
        log_pi, log_a = np.log(params["initial"]), np.log(params["transition"])
    for i, z in enumerate(paths):
        value = log_pi[z[0]]
        for a, b in itertools.pairwise(z):
            value += log_a[a, b]
        value += sum(float(logpdf(params, seq[u], z[u])) for u in range(t))
        logj[i] = value
    logp = logsumexp(logj)
    post = np.exp(logj - logp)
    gamma = np.zeros((t, s))
    xi = np.zeros((s, s))
    for w, z in zip(post, paths, strict=True):
        gamma[np.arange(t), z] += w
        for a, b in itertools.pairwise(z):
            xi[a, b] += w
    live = post > 0
    entropy = -np.sum(post[live] * np.log(post[live]))
    best = np.array(paths[int(np.argmax(logj))])
    return logp, gamma, xi, entropy, best, logj.max()


@pytest.mark.parametrize("engine", ["numpy", "numba"])
@pytest.mark.parametrize("name", list(CASES))
def test_forward_backward_and_viterbi_equal_brute_force(name, engine):
    hmm, params, logpdf = CASES[name]()
    hmm = dataclasses.replace(hmm, engine=engine)
    x, _ = hmm.sample(params, 5, np.random.default_rng(0), length=5)
    lengths = np.array([1, 2, 5, 3, 4])
    seqs = latent_em.Sequences(x.data[: lengths.sum()], lengths)
    seqs = hmm.check_data(seqs)
    post, logp = hmm.posterior(params, seqs)
    paths, best_logp = hmm.decode(params, seqs)
    for i, (seq, gamma_i, path_i) in enumerate(
        zip(
            seqs.split(seqs.data),
            seqs.split(post.states),
            seqs.split(paths),
            strict=True,
        )
    ):
        want = _brute_force(params, logpdf, seq, 3)
        assert logp[i] == pytest.approx(want[0], rel=1e-12, abs=1e-12)
        np.testing.assert_allclose(gamma_i, want[1], atol=1e-12)
        np.testing.assert_allclose(post.transitions[i], want[2], atol=1e-12)
        assert post.entropy[i] == pytest.approx(want[3], abs=1e-10)
        np.testing.assert_array_equal(path_i, want[4])
        assert best_logp[i] == pytest.approx(want[5], rel=1e-12)
    # log_joint of the brute-force best path agrees with the Viterbi score
    z = np.zeros((len(seqs), 5), dtype=int)
    for i, p in enumerate(seqs.split(paths)):
        z[i, : p.size] = p
    np.testing.assert_allclose(hmm.log_joint(params, seqs, z), best_logp, rtol=1e-12)


@pytest.mark.parametrize("name", list(CASES))
def test_check_model_passes(name):
    hmm, params, _ = CASES[name]()
    x, _ = hmm.sample(params, 6, np.random.default_rng(1), length=40)
    seqs = latent_em.Sequences(x.data[:200], [40, 25, 60, 35, 40])
    assert latent_em.check_model(hmm, seqs).passed


def _hmmlearn_model(name, p0, n_iter):
    common = dict(n_iter=n_iter, tol=-np.inf, init_params="", implementation="log")
    if name == "poisson":
        m = hmmlearn_hmm.PoissonHMM(3, params="stl", **common)
        m.lambdas_ = p0["rate"].copy()
    elif name == "categorical":
        m = hmmlearn_hmm.CategoricalHMM(3, params="ste", n_features=4, **common)
        m.emissionprob_ = p0["probs"][:, 0, :].copy()
    else:
        m = hmmlearn_hmm.GaussianHMM(
            3, covariance_type="full", covars_prior=0.0, params="stmc", **common
        )
        m.means_ = p0["mean"].copy()
        m.covars_ = p0["cov"].copy()
    m.startprob_ = p0["initial"].copy()
    m.transmat_ = p0["transition"].copy()
    return m


@pytest.mark.parametrize("name", list(CASES))
def test_same_path_as_hmmlearn(name):
    hmm, truth, _ = CASES[name]()
    rng = np.random.default_rng(2)
    x, _ = hmm.sample(truth, 4, rng, length=150)
    lengths = np.array([150, 90, 210, 150])
    seqs = hmm.check_data(latent_em.Sequences(x.data, lengths))
    p0 = hmm.initialize(seqs, np.random.default_rng(3))
    n_iter = 12
    ours = latent_em.fit(hmm, seqs, params=p0, max_iter=n_iter, tol=0, warn_not_converged=False)
    ref = _hmmlearn_model(name, p0, n_iter)
    data = x.data.astype(int) if name != "gaussian" else x.data
    ref.fit(data, lengths)
    # hmmlearn's history: log p(x) at the parameters each E-step started from
    np.testing.assert_allclose(ours.history[:n_iter], ref.monitor_.history, rtol=1e-10)
    assert ours.log_likelihood == pytest.approx(ref.score(data, lengths), rel=1e-10, abs=1e-8)
    assert hmm.score(ours.params, seqs) == pytest.approx(ours.log_likelihood, rel=1e-13)
    np.testing.assert_allclose(ours.params["transition"], ref.transmat_, rtol=1e-6, atol=1e-9)
    # Viterbi agrees with hmmlearn's decoder
    ref_logp, ref_states = ref.decode(data, lengths, algorithm="viterbi")
    states, logp = hmm.decode(ours.params, seqs)
    np.testing.assert_array_equal(states, ref_states)
    assert logp.sum() == pytest.approx(ref_logp, rel=1e-10)
    # hmmlearn's BIC counts steps as observations, as ours
    assert hmm.bic(ours.params, seqs) == pytest.approx(ref.bic(data, lengths), rel=1e-10)


def test_fit_recovers_the_truth_and_chunks_agree():
    hmm, truth, _ = _poisson_hmm()
    x, states = hmm.sample(truth, 30, np.random.default_rng(4), length=100)
    result = latent_em.fit(hmm, x, n_init=3, random_state=0)
    chunked = latent_em.fit(hmm, x, n_init=3, random_state=0, chunk_size=7)
    assert chunked.log_likelihood == pytest.approx(result.log_likelihood, rel=1e-10)
    order = np.argsort(result.params["rate"][:, 0])
    np.testing.assert_allclose(result.params["rate"][order], truth["rate"], rtol=0.15)
    np.testing.assert_allclose(
        result.params["transition"][np.ix_(order, order)], truth["transition"], atol=0.06
    )
    decoded, _ = hmm.decode(result.params, x)
    assert np.mean(order[decoded] == states) > 0.9  # state labels through the sort


def test_sequences_indexing_and_inputs():
    seqs = latent_em.Sequences(np.arange(10.0), [3, 2, 5])
    assert len(seqs) == 3
    sub = seqs[1:]
    np.testing.assert_array_equal(sub.data[:, 0], np.arange(3.0, 10.0))
    np.testing.assert_array_equal(sub.lengths, [2, 5])
    picked = seqs[np.array([2, 0])]
    np.testing.assert_array_equal(picked.data[:, 0], [5, 6, 7, 8, 9, 0, 1, 2])
    hmm = latent_em.HiddenMarkovModel(Poisson(), 2)
    as_list = hmm.check_data([np.array([1, 2, 3]), np.array([4, 5])])
    np.testing.assert_array_equal(as_list.lengths, [3, 2])
    one = hmm.check_data(np.array([1, 2, 3]))
    assert len(one) == 1
    with pytest.raises(ValueError, match="lengths sum to 4 but X has 10"):
        latent_em.Sequences(np.arange(10.0), [2, 2])
    with pytest.raises(ValueError, match="non-negative integer counts"):
        hmm.check_data(latent_em.Sequences(np.array([1.0, -2.0])))
    with pytest.raises(TypeError, match="emission must be a component"):
        latent_em.HiddenMarkovModel("poisson", 2)
    with pytest.raises(ValueError, match="unknown engine"):
        latent_em.HiddenMarkovModel(Poisson(), 2, engine="cuda")
    with pytest.raises(ValueError, match="StudentT has no closed-form statistics"):
        latent_em.HiddenMarkovModel(StudentT(), 2)


def test_numba_and_numpy_engines_agree_on_long_sequences():
    hmm, truth, _ = _gaussian_hmm()
    x, _ = hmm.sample(truth, 3, np.random.default_rng(5), length=2000)
    seqs = hmm.check_data(latent_em.Sequences(x.data, [1, 3999, 2000]))
    assert hmm._use_numba(seqs)  # "auto" picks the kernel for few long sequences
    a_post, a_lm = dataclasses.replace(hmm, engine="numba").posterior(truth, seqs)
    b_post, b_lm = dataclasses.replace(hmm, engine="numpy").posterior(truth, seqs)
    np.testing.assert_allclose(a_lm, b_lm, rtol=1e-12)
    for a, b in zip(a_post, b_post, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)


def test_long_single_sequence_against_hmmlearn():
    hmm, truth, _ = _poisson_hmm()
    x, _ = hmm.sample(truth, 1, np.random.default_rng(6), length=5000)
    seqs = hmm.check_data(x)
    p0 = hmm.initialize(seqs, np.random.default_rng(7))
    ours = latent_em.fit(hmm, seqs, params=p0, max_iter=8, tol=0, warn_not_converged=False)
    ref = _hmmlearn_model("poisson", p0, 8)
    ref.fit(x.data.astype(int))
    np.testing.assert_allclose(ours.history[:8], ref.monitor_.history, rtol=1e-10)
    assert ours.log_likelihood == pytest.approx(ref.score(x.data.astype(int)), rel=1e-10)


def test_squarem_standard_errors_bootstrap_and_save_load(tmp_path):
    hmm = latent_em.HiddenMarkovModel(Poisson(), 2)
    truth = {
        "initial": np.array([0.5, 0.5]),
        "transition": np.array([[0.9, 0.1], [0.2, 0.8]]),
        "rate": np.array([[1.0], [12.0]]),
    }
    x, _ = hmm.sample(truth, 20, np.random.default_rng(0), length=50)
    result = latent_em.fit(hmm, x, random_state=0, tol=1e-10)
    fast = latent_em.fit(hmm, x, random_state=0, tol=1e-10, accelerate="squarem")
    assert fast.log_likelihood == pytest.approx(result.log_likelihood, rel=1e-9)
    # the states are nearly observed here, so the observed information of a rate is
    # close to the complete-data one: se(λ_s) ≈ sqrt(λ_s / Σ_t γ_t(s))
    se = latent_em.standard_errors(result, x, method="numerical")
    occupancy = hmm.predict_proba(result.params, x).sum(axis=0)
    complete = np.sqrt(result.params["rate"][:, 0] / occupancy)
    np.testing.assert_allclose(se.se["rate"][:, 0], complete, rtol=0.1)
    boot = latent_em.bootstrap(result, x, n_boot=8, random_state=0)
    assert np.all(np.isfinite(boot.se["rate"]))
    again = latent_em.EMResult.load(result.save(tmp_path / "hmm.json"))
    assert again.model == hmm
    np.testing.assert_array_equal(again.params["transition"], result.params["transition"])


@pytest.mark.parametrize("engine", ["numpy", "numba"])
def test_zero_probabilities_left_to_right_hmm(engine):
    """Structural zeros (a left-to-right chain) stay exact: brute force agrees, no NaN,
    EM keeps the zeros and stays monotone."""
    hmm, params, logpdf = _poisson_hmm()
    hmm = dataclasses.replace(hmm, engine=engine)
    params = {
        **params,
        "initial": np.array([1.0, 0.0, 0.0]),
        "transition": np.array([[0.7, 0.3, 0.0], [0.0, 0.8, 0.2], [0.0, 0.0, 1.0]]),
    }
    x, _ = hmm.sample(params, 4, np.random.default_rng(8), length=5)
    seqs = hmm.check_data(latent_em.Sequences(x.data[:14], [1, 5, 4, 4]))
    post, logp = hmm.posterior(params, seqs)
    for i, (seq, gamma_i) in enumerate(
        zip(seqs.split(seqs.data), seqs.split(post.states), strict=True)
    ):
        want = _brute_force(params, logpdf, seq, 3)
        assert logp[i] == pytest.approx(want[0], rel=1e-12)
        np.testing.assert_allclose(gamma_i, want[1], atol=1e-12)
        np.testing.assert_allclose(post.transitions[i], want[2], atol=1e-12)
    fitted = latent_em.fit(hmm, seqs, params=params, max_iter=20, tol=0, warn_not_converged=False)
    assert np.all(fitted.params["transition"][np.tril_indices(3, -1)] == 0.0)
    assert np.all(np.diff(fitted.history) >= -1e-9)
