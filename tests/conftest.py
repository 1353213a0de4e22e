"""Shared fixtures. Warnings are errors (pyproject); seeds are fixed."""

from __future__ import annotations

import os

# PyMC sampling on 2 cores is ~3x slower with threaded BLAS (see docs/pymc-notes)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261125)


@pytest.fixture(scope="session")
def faithful() -> np.ndarray:
    from latent_em.datasets import load_faithful

    return load_faithful()


def make_blobs(rng: np.random.Generator, n_per: int = 150, d: int = 2, k: int = 3) -> np.ndarray:
    """Well-separated Gaussian clusters with correlated covariances."""
    parts = []
    for j in range(k):
        a = rng.normal(size=(d, d)) * 0.4 + np.eye(d) * 0.6
        parts.append(rng.normal(size=(n_per, d)) @ a + 5.0 * j * np.ones(d) * (-1) ** j)
    return np.concatenate(parts)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With LATENT_EM_NO_SKIPS=1 (set by CI) a skipped test fails the run.

    Every optional dependency is installed in CI, so a skip there can only mean a broken
    install or a test that silently stopped running: neither may pass unnoticed.
    """
    if os.environ.get("LATENT_EM_NO_SKIPS") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if skipped and exitstatus == 0:
        reporter.write_line(
            f"LATENT_EM_NO_SKIPS=1: {len(skipped)} test(s) skipped; failing the run",
            red=True,
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
