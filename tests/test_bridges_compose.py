"""PyMC counterparts of composed mixtures: the PyMC likelihood potential at the EM
estimate equals latent_em's log-likelihood, and draws map back to the Mixture's dict
parameters. Other compositions are refused with a clear error."""

from __future__ import annotations

import numpy as np
import pytest

import latent_em
from latent_em.components import Bernoulli, Categorical, Gamma, Gaussian, Poisson

pytestmark = pytest.mark.bridges

pm = pytest.importorskip("pymc")

from latent_em.bridges import build_pymc  # noqa: E402

from .test_bridges_pymc import potential_at_start  # noqa: E402


def _data(kind, rng):
    z = rng.integers(0, 2, size=150)
    if kind == "gaussian":
        return np.array([[0.0, 0.0], [3.0, 2.0]])[z] + rng.normal(size=(150, 2))
    if kind == "poisson":
        return rng.poisson(np.array([[1.0, 4.0], [6.0, 1.0]])[z]).astype(float)
    if kind == "bernoulli":
        p = np.array([[0.8, 0.2, 0.7], [0.1, 0.9, 0.3]])[z]
        return (rng.uniform(size=p.shape) < p).astype(float)
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.2, 0.7]])[z]
    cols = [(rng.uniform(size=(150, 1)) > probs.cumsum(axis=1)).sum(axis=1) for _ in range(2)]
    return np.column_stack(cols).astype(float)


@pytest.mark.parametrize(
    ("kind", "component"),
    [
        ("gaussian", Gaussian("full")),
        ("gaussian", Gaussian("diag")),
        ("poisson", Poisson()),
        ("bernoulli", Bernoulli()),
        ("categorical", Categorical()),
    ],
    ids=["gaussian-full", "gaussian-diag", "poisson", "bernoulli", "categorical"],
)
def test_pymc_likelihood_equals_the_composed_mixture(kind, component):
    x = _data(kind, np.random.default_rng(0))
    model = latent_em.Mixture(component, n_components=2)
    result = latent_em.fit(model, x, n_init=2, random_state=0)
    rec = build_pymc(result, x)
    assert potential_at_start(rec) == pytest.approx(result.log_likelihood, rel=1e-8)
    back = rec.to_params(rec.estimate)
    assert set(back) == set(result.params)
    for key in back:
        np.testing.assert_allclose(back[key], result.params[key], rtol=1e-12)


def test_other_compositions_are_refused():
    x = np.random.default_rng(1).gamma(2.0, 1.0, size=(50, 1))
    result = latent_em.fit(latent_em.Mixture([Gamma(), Gamma()]), x, random_state=0)
    with pytest.raises(TypeError, match="no PyMC builder for a Mixture of Gamma, Gamma"):
        build_pymc(result, x)
