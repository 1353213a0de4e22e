"""The gallery's hand-written models (models/) against their one-line compositions.

* ``hidden_markov.CategoricalHMM`` (scaled forward-backward, written by hand) and
  ``HiddenMarkovModel(Categorical(), n_states=2)`` follow the same EM path from the same
  start.
* ``gamma_mixture.GammaMixture`` (numerical M-step through ``constraints``) and
  ``Mixture(Gamma(), n_components=2)`` (closed-form statistics, a 1-D root for the
  shape) reach the same maximum of the likelihood.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import latent_em
from latent_em.components import Categorical, Gamma

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))

import gamma_mixture  # noqa: E402
import hidden_markov  # noqa: E402


def test_categorical_hmm_equals_the_gallery_hmm():
    gallery = hidden_markov.CategoricalHMM(n_states=2, n_symbols=3)
    x, _ = gallery.sample(hidden_markov.TRUE_PARAMS, 40, np.random.default_rng(0), length=15)
    start = gallery.initialize(x, np.random.default_rng(1))
    ref = latent_em.fit(gallery, x, params=start, max_iter=30, tol=0, warn_not_converged=False)

    hmm = latent_em.HiddenMarkovModel(Categorical(n_categories=3), n_states=2)
    seqs = latent_em.Sequences(x.reshape(-1), lengths=np.full(40, 15))
    p0 = {
        "initial": start.initial,
        "transition": start.transition,
        "probs": start.emission[:, None, :],
    }
    ours = latent_em.fit(hmm, seqs, params=p0, max_iter=30, tol=0, warn_not_converged=False)
    np.testing.assert_allclose(ours.history, ref.history, rtol=1e-12)
    np.testing.assert_allclose(ours.params["transition"], ref.params.transition, rtol=1e-9)
    np.testing.assert_allclose(ours.params["probs"][:, 0], ref.params.emission, rtol=1e-9)


def test_gamma_mixture_equals_the_gallery_numerical_fit():
    gallery = gamma_mixture.GammaMixtureWithGradient(2)
    x, _ = gallery.sample(gamma_mixture.TRUE_PARAMS, 600, np.random.default_rng(0))
    ref = latent_em.fit(gallery, x, random_state=0, tol=1e-10)
    composed = latent_em.Mixture(Gamma(), n_components=2)
    ours = latent_em.fit(composed, x, n_init=3, random_state=0, tol=1e-12)
    assert ours.log_likelihood == pytest.approx(ref.log_likelihood, rel=1e-8)
    order = np.argsort(ours.params["shape"][:, 0])
    ref_order = np.argsort(ref.params.shapes)
    np.testing.assert_allclose(
        ours.params["shape"][order, 0], ref.params.shapes[ref_order], rtol=1e-3
    )
