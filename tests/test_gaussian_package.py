"""The Gaussian mixture package's seams (``latent_em/models/gaussian/``).

The numbers are tested elsewhere (test_gaussian_mixture, test_gmm_kernels, against
scikit-learn and scipy); these tests pin the structure that the mclust structures and
compiled kernels will extend: one table of covariance structures, one table of kernels,
both keyed by the same names, and the old module path still working.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import latent_em.models.gaussian as pkg
import latent_em.models.gaussian_mixture as old
from latent_em.models.gaussian.covariance import COVARIANCE_TYPES, COVARIANCES
from latent_em.models.gaussian.kernels import KERNELS


def test_old_module_reexports_the_same_objects():
    assert old.__all__ == pkg.__all__
    for name in old.__all__:
        assert getattr(old, name) is getattr(pkg, name)
    assert pkg.COVARIANCE_TYPES == ("full", "tied", "diag", "spherical")


def test_structure_and_kernel_tables_agree():
    # the scikit-learn structures come first; mclust's others follow (issue 16)
    assert tuple(COVARIANCES) == tuple(KERNELS)
    assert tuple(COVARIANCES)[:4] == COVARIANCE_TYPES
    for name, cov in COVARIANCES.items():
        assert cov.name == name


@pytest.mark.parametrize("name", COVARIANCE_TYPES)
def test_each_structure_builds_its_own_kernel(name):
    k, d = 3, 4
    model = pkg.GaussianMixtureModel(k, name)
    rng = np.random.default_rng(0)
    params = model.initialize(rng.normal(size=(50, d)), rng)
    kernel = model._kernel(params, d)
    assert type(kernel) is KERNELS[name]


@pytest.mark.parametrize("name", COVARIANCE_TYPES)
def test_features_of_matches_shape(name):
    # features_of is None exactly when the parameter shape does not involve D
    cov = COVARIANCES[name]
    k, d = 3, 4
    implied = cov.features_of(np.empty(cov.shape(k, d)))
    if cov.shape(k, d) == cov.shape(k, d + 1):
        assert implied is None
    else:
        assert implied == d


def test_pymc_builder_registered_under_the_class_name():
    # the PyMC bridge finds builders by the class's qualified name (pymc not imported)
    from latent_em.bridges import pymc

    cls = pkg.GaussianMixtureModel
    assert f"{cls.__module__}.{cls.__qualname__}" in pymc._REGISTRY


def test_no_module_of_the_package_imports_a_private_name():
    root = Path(pkg.__file__).parent
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, (path.name, node.module, private)
