"""A collapsed component is a spurious maximum: flagged per restart and by the estimator.

The Gaussian mixture likelihood is unbounded as a component shrinks onto fewer distinct
points than dimensions + 1 (Kiefer & Wolfowitz 1956; McLachlan & Peel 2000, sec. 3.10,
"spurious local maximizers"). With ``reg_covar`` such a fit is finite but its larger
likelihood says nothing about fit quality. Issue 15: it was chosen over a regular
maximum without a word.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import latent_em


def _data() -> np.ndarray:
    rng = np.random.default_rng(0)
    # one Gaussian cloud and three copies of a far point: a component can collapse on them
    return np.concatenate([rng.normal(size=(60, 2)), np.repeat([[4.0, 4.0]], 3, axis=0)])


def test_spurious_maximum_chosen_over_a_regular_one_warns():
    x = _data()
    with pytest.warns(latent_em.DegeneracyWarning, match="spurious maximum") as caught:
        gm = latent_em.GaussianMixture(
            2, init_params="random_from_data", n_init=4, random_state=0
        ).fit(x)
    restarts = gm.result_.restarts
    regular = [o for o in restarts if not o.collapsed]
    assert regular, "the scenario needs a restart that ended at a regular maximum"
    # the kept fit has the largest likelihood and a collapsed component
    assert gm.result_.restarts[gm.result_.best_restart].collapsed
    assert gm.log_likelihood_ > max(o.log_likelihood for o in regular)
    assert gm.degenerate_components_.size >= 1
    # the collapsed component has a covariance eigenvalue at the floor (it sits on
    # fewer distinct points than dimensions + 1)
    k = int(gm.degenerate_components_[0])
    assert np.linalg.eigvalsh(gm.covariances_[k]).min() <= gm.reg_covar * (1 + 1e-3)
    best = max(regular, key=lambda o: o.objective)
    assert f"restart {best.index}" in str(caught[0].message)


def test_regular_fit_is_not_flagged(faithful):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gm = latent_em.GaussianMixture(2, n_init=3, random_state=0).fit(faithful)
    assert gm.degenerate_components_.size == 0
    assert all(o.collapsed == () for o in gm.result_.restarts)


def test_every_restart_degenerate_sets_the_flag_without_warning():
    """With K close to N every restart collapses: there is no regular fit to prefer."""
    x = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0], [1.0, 1.0], [2.0, 0.5]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gm = latent_em.GaussianMixture(3, n_init=3, random_state=0).fit(x)
    assert gm.degenerate_components_.size >= 1
    assert all(o.collapsed for o in gm.result_.restarts)


def test_collapsed_survives_save_and_load(tmp_path):
    x = _data()
    with pytest.warns(latent_em.DegeneracyWarning):
        gm = latent_em.GaussianMixture(
            2, init_params="random_from_data", n_init=4, random_state=0
        ).fit(x)
    gm.save(tmp_path / "m.json")
    again = latent_em.io.load(tmp_path / "m.json")
    assert [o.collapsed for o in again.result_.restarts] == [
        o.collapsed for o in gm.result_.restarts
    ]
