"""A contract error raised while fitting a built-in model is latent_em's bug, and says so.

The driver's contract errors (``ModelContractError``) address the author of a model:
"check m_step", "check log_joint/posterior". For a built-in model that author is
latent_em, so the message must not send the user to fix a model they did not write.
"""

from __future__ import annotations

import numpy as np
import pytest

import latent_em
from latent_em.models import GaussianMixtureModel, PoissonMixtureModel


def test_nan_from_a_builtin_m_step_is_reported_as_a_latent_em_bug(monkeypatch, faithful):
    original = GaussianMixtureModel.m_step

    def broken(self, params, stats):
        new = original(self, params, stats)
        return new._replace(means=np.full_like(new.means, np.nan))

    monkeypatch.setattr(GaussianMixtureModel, "m_step", broken)
    with pytest.raises(latent_em.ModelContractError) as info:
        latent_em.fit(GaussianMixtureModel(2), faithful, random_state=0)
    message = str(info.value)
    assert "bug in latent_em" in message
    assert "not in your model" in message


def test_a_builtin_constraint_violation_is_reported_as_a_latent_em_bug(monkeypatch):
    original = PoissonMixtureModel.m_step

    def unnormalized(self, params, stats):
        new = original(self, params, stats)
        return new._replace(weights=2.0 * new.weights)

    monkeypatch.setattr(PoissonMixtureModel, "m_step", unnormalized)
    x = np.random.default_rng(0).poisson(np.repeat([2.0, 9.0], 100))[:, None]
    with pytest.raises(latent_em.ModelContractError, match="bug in latent_em"):
        latent_em.fit(PoissonMixtureModel(2), x, random_state=0)


def test_a_user_model_is_still_told_to_check_its_own_code():
    """The same error from a user's model keeps addressing the model's author."""
    from tests._exponential import ExponentialMixture

    class Broken(ExponentialMixture):
        def m_step(self, params, stats):
            new = super().m_step(params, stats)
            return new._replace(rates=np.full_like(new.rates, np.nan))

    x = np.random.default_rng(0).exponential(1.0, 300)
    with pytest.raises(latent_em.ModelContractError) as info:
        latent_em.fit(Broken(), x, random_state=0)
    assert "bug in latent_em" not in str(info.value)
