"""Relabeling on the whole component (allocation probabilities) against nearest features.

The synthetic case reproduces the mislabeling measured in issue 15: a dominant component
(weight 0.8, variance 4.7) and a small one (weight 0.037) whose posterior is diffuse. In
the draws where the small component's mean wanders far from its EM value, matching on
standardized means and raw weights swaps it with the dominant component, which then
inherits its variance: the posterior mean of the dominant variance is inflated while its
median stays near 4.7. Stephens' (2000) KL relabeling on allocation probabilities keeps
every draw's labels.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import latent_em
from latent_em.bridges.relabel import (
    allocation_cost,
    allocation_permutations,
    feature_permutations,
    permute_components,
)

pytestmark = pytest.mark.bridges

WEIGHTS = np.array([0.8, 0.037, 0.163])
MEANS = np.array([0.0, 3.0, 8.0])
VARIANCES = np.array([4.7, 0.5, 1.0])


def responsibilities(x, w, mu, var):
    """Allocation probabilities of a 1-D Gaussian mixture (scipy densities)."""
    table = np.log(w) + stats.norm(mu, np.sqrt(var)).logpdf(x[:, None])
    table -= table.max(axis=1, keepdims=True)
    p = np.exp(table)
    return p / p.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def case():
    rng = np.random.default_rng(7)
    n = 400
    z = rng.choice(3, size=n, p=WEIGHTS)
    x = rng.normal(MEANS[z], np.sqrt(VARIANCES[z]))
    chains, draws = 2, 300
    shape = (chains, draws, 3)
    w = WEIGHTS * np.exp(0.05 * rng.standard_normal(shape))
    w /= w.sum(axis=-1, keepdims=True)
    mu = MEANS + 0.1 * rng.standard_normal(shape)
    var = VARIANCES * np.exp(0.1 * rng.standard_normal(shape))
    # 5 % of draws: the small component wanders far left with a large variance, as the
    # diffuse posterior of a 3.7 % component allows
    wander = rng.random((chains, draws)) < 0.05
    mu[..., 1] = np.where(wander, -6.0 + rng.standard_normal((chains, draws)), mu[..., 1])
    var[..., 1] = np.where(wander, 200.0, var[..., 1])
    # and chain 1 runs in a permuted labeling (label switching between chains)
    perm = np.array([2, 0, 1])
    w[1], mu[1], var[1] = w[1][:, perm], mu[1][:, perm], var[1][:, perm]
    return x, {"weights": w, "means": mu, "covariances": var}, wander


def test_feature_matching_mislabels_the_dominant_component(case):
    x, draws, wander = case
    # the cross-check's previous features: standardized means and raw weights
    scale = x.std()
    reference = np.column_stack([MEANS / scale, WEIGHTS])
    features = np.stack([draws["means"] / scale, draws["weights"]], axis=-1)
    perms = feature_permutations(reference, features)
    out = permute_components(draws, perms, {"weights": 0, "means": 0, "covariances": 0})
    dominant = out["covariances"][..., 0]
    # the wandering draws hand the small component's variance to the dominant one
    assert np.mean(dominant[wander] == 200.0) > 0.9
    assert dominant.mean() > 10.0  # measured on real data: 13.8-30.9
    assert np.median(dominant) == pytest.approx(4.7, rel=0.05)


def test_allocation_relabeling_gets_every_draw_right(case):
    x, draws, wander = case
    reference = responsibilities(x, WEIGHTS, MEANS, VARIANCES)
    alloc = np.stack(
        [
            [
                responsibilities(
                    x, draws["weights"][c, s], draws["means"][c, s], draws["covariances"][c, s]
                )
                for s in range(draws["weights"].shape[1])
            ]
            for c in range(2)
        ]
    )
    perms = allocation_permutations(reference, alloc)
    # chain 0 is in the reference labeling, chain 1 in the permuted one: undone exactly
    assert np.all(perms[0] == [0, 1, 2])
    assert np.all(perms[1] == [1, 2, 0])
    out = permute_components(draws, perms, {"weights": 0, "means": 0, "covariances": 0})
    dominant = out["covariances"][..., 0]
    assert dominant.max() < 10.0
    assert dominant.mean() == pytest.approx(4.7, rel=0.05)
    # the wandering draws keep their (diffuse) small component in its own label
    assert np.all(out["covariances"][..., 1][wander] == 200.0)


def test_allocation_cost_is_the_kl_divergence_up_to_a_constant(rng):
    q = rng.dirichlet(np.ones(3), size=50)
    p = rng.dirichlet(np.ones(3), size=50)
    cost = allocation_cost(q, p)
    entropy = np.sum(q * np.log(q))
    for perm in ([0, 1, 2], [2, 0, 1], [1, 0, 2]):
        kl = np.sum(q * (np.log(q) - np.log(p[:, perm])))
        assert cost[np.arange(3), perm].sum() + entropy == pytest.approx(kl, rel=1e-12)
    with pytest.raises(ValueError, match="allocations must have shape"):
        allocation_permutations(q, p[:, :2])


def test_allocation_relabeling_on_latent_em_responsibilities():
    # the same routine on latent_em's own posterior: EM responsibilities of a fit and
    # of the same fit with permuted labels
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(-5, 1, 50), rng.normal(0, 1, 50), rng.normal(5, 1, 50)])
    x = x[:, None]
    gm = latent_em.GaussianMixture(3, n_init=3, random_state=0).fit(x)
    ref, _ = latent_em.posterior(gm.model_, gm.params_, x)
    perm = np.array([1, 2, 0])
    p = gm.params_
    swapped = p._replace(
        weights=p.weights[perm], means=p.means[perm], covariances=p.covariances[perm]
    )
    resp, _ = latent_em.posterior(gm.model_, swapped, x)
    found = allocation_permutations(np.asarray(ref), np.asarray(resp)[None])[0]
    np.testing.assert_array_equal(swapped.means[found], p.means)
