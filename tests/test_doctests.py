"""Runnable examples in docstrings (the protocol's custom model, constraints, estimators)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "latent_em.protocols",
    "latent_em.constraints",
    "latent_em.estimators.gaussian",
    "latent_em.estimators.bernoulli",
    "latent_em.estimators.categorical",
    "latent_em.estimators.poisson",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
