"""Partially labelled data (semi-supervised fitting, as mclust's ``MclustSSC``).

A row with a known component ``y_n = k`` contributes ``log φ_k + log N(x_n; μ_k, Σ_k)``
to the log-likelihood, a row with ``y_n = -1`` its mixture density
``log Σ_k φ_k N(x_n; μ_k, Σ_k)``. That is EM on the ordinary mixture with the
table of ``log φ_k + log N`` set to ``-inf`` where a row's known label excludes component
k: its posterior is then one-hot on the label (fixed responsibilities), its ``log p`` is
the labelled term, and the M-step is the base model's, unchanged. The labels travel with
the rows as a last column of the data, so chunks and sample weights need nothing more.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from ...constraints import Constraint
from .._mixture import FiniteMixture
from . import missing as missing_values
from .model import GaussianMixtureModel
from .params import GaussianMixtureParams, GaussianMixtureStats

__all__ = ["PartiallyLabelledGaussianMixture", "join_labels"]


def join_labels(x: np.ndarray, y: Any, n_components: int) -> np.ndarray:
    """``[x, y]``: the data with the labels ``y`` as a last column, after checking them
    (integers, ``-1`` for unknown, ``0 .. K-1`` otherwise, one per row)."""
    labels = np.asarray(y)
    if labels.ndim != 1 or labels.shape[0] != x.shape[0]:
        raise ValueError(
            f"labels must hold one label per row of X ({x.shape[0]}); got shape {labels.shape}"
        )
    if labels.dtype.kind not in "iub":
        if labels.dtype.kind != "f" or not np.all(np.isfinite(labels)):
            raise ValueError("labels must hold integers (component indices, -1 for unknown)")
        if not np.all(labels == np.round(labels)):
            raise ValueError("labels must hold integers (component indices, -1 for unknown)")
    labels = labels.astype(np.int64)
    bad = (labels < -1) | (labels >= n_components)
    if np.any(bad):
        raise ValueError(
            f"labels must hold -1 (unknown) or a component index 0..{n_components - 1}; got "
            f"{int(labels[np.flatnonzero(bad)[0]])}"
        )
    return np.hstack([np.asarray(x, dtype=float), labels[:, None].astype(float)])


@dataclasses.dataclass(frozen=True, eq=False)
class PartiallyLabelledGaussianMixture(FiniteMixture):
    """The Gaussian mixture ``base`` fitted to data whose last column holds labels.

    Parameters
    ----------
    base : GaussianMixtureModel
        The mixture (any covariance structure); its parameters are this model's.

    Notes
    -----
    The data are ``[x, y]`` (see :func:`join_labels`). ``log_likelihood`` of a fit is the
    combined log-likelihood of the labelled and the unlabelled rows (what mclust's
    ``MclustSSC`` maximizes).
    """

    base: GaussianMixtureModel

    @property
    def n_components(self) -> int:  # type: ignore[override]
        return self.base.n_components

    # ---- data
    def check_data(self, x: Any) -> np.ndarray:
        arr = np.asarray(x, dtype=float)
        if arr.ndim != 2 or arr.shape[1] < 2:
            raise ValueError("X must be [features, label]: 2-D with at least 2 columns")
        self.base.check_data(arr[:, :-1])
        labels = arr[:, -1]
        if not np.all((labels == np.round(labels)) & (labels >= -1) & (labels < self.n_components)):
            raise ValueError("the last column must hold labels: -1 or 0..K-1")
        return arr

    def check_chunk(self, x: Any) -> np.ndarray:
        return np.asarray(x, dtype=float)

    @staticmethod
    def _split(x: Any) -> tuple[np.ndarray, np.ndarray]:
        arr = np.asarray(x, dtype=float)
        return arr[:, :-1], arr[:, -1].astype(np.int64)

    # ---- the mixture table, with the known labels
    def log_weighted_densities(self, params: GaussianMixtureParams, x: Any) -> np.ndarray:
        features, labels = self._split(x)
        table = self.base.log_weighted_densities(params, features)
        known = np.flatnonzero(labels >= 0)
        if known.size:
            keep = table[known, labels[known]]
            table[known] = -np.inf
            table[known, labels[known]] = keep
        return table

    def expected_stats(
        self, params: GaussianMixtureParams, x: Any, posterior: np.ndarray, weights: np.ndarray
    ) -> GaussianMixtureStats:
        return self.base.expected_stats(params, self._split(x)[0], posterior, weights)

    def m_step(
        self, params: GaussianMixtureParams, stats: GaussianMixtureStats
    ) -> GaussianMixtureParams:
        return self.base.m_step(params, stats)

    def repair(
        self, params: GaussianMixtureParams, stats: GaussianMixtureStats, rng: np.random.Generator
    ) -> tuple[GaussianMixtureParams, tuple[str, ...]]:
        return self.base.repair(params, stats, rng)

    def log_prior(self, params: GaussianMixtureParams) -> float:
        return self.base.log_prior(params)

    @property
    def constraints(self) -> Mapping[str, Constraint]:
        return self.base.constraints

    def n_parameters(self, params: GaussianMixtureParams) -> int:
        return self.base.n_parameters(params)

    def fit_context(self) -> Any:
        return self.base.fit_context()

    @property
    def working_dtype(self) -> np.dtype:
        return self.base.working_dtype

    def initialize(self, x: Any, rng: np.random.Generator) -> GaussianMixtureParams:
        """Means of the labelled rows of each component (a random unlabelled row for a
        component without labels), every unlabelled row assigned to the nearest, then
        one M-step; the base model's ``*_init`` values override as in its own start."""
        features, labels = self._split(x)
        if np.isnan(features).any():  # missing="marginalize": start from column means
            features = missing_values.fill_column_means(features)
        k = self.n_components
        base = self.base
        unlabelled = np.flatnonzero(labels < 0)
        pool = unlabelled if unlabelled.size else np.arange(features.shape[0])
        centres = np.empty((k, features.shape[1]))
        for j in range(k):
            rows = labels == j
            centres[j] = features[rows].mean(axis=0) if np.any(rows) else features[rng.choice(pool)]
        if base.means_init is not None:
            centres = np.asarray(base.means_init, dtype=float)
        nearest = np.argmin(((features[:, None, :] - centres[None]) ** 2).sum(axis=2), axis=1)
        assign = np.where(labels >= 0, labels, nearest)
        resp = np.zeros((features.shape[0], k))
        resp[np.arange(features.shape[0]), assign] = 1.0
        counts = resp.sum(axis=0)
        for j in np.flatnonzero(counts == 0).tolist():
            # a component with neither labels nor nearest rows: its centre's nearest
            # unlabelled row
            row = int(pool[np.argmin(((features[pool] - centres[j]) ** 2).sum(axis=1))])
            resp[row] = 0.0
            resp[row, j] = 1.0
        counts = resp.sum(axis=0)
        means = (resp.T @ features) / np.maximum(counts, 1.0)[:, None]
        d = features.shape[1]
        start = GaussianMixtureParams(
            counts / counts.sum(), means, np.zeros(base.covariance.shape(k, d))
        )
        stats = base.expected_stats(start, features, resp, np.ones(features.shape[0]))
        params = base.m_step(start, stats)
        bad = base.covariance.check_pd(np.asarray(params.covariances))
        if bad:
            params = params._replace(
                covariances=base.covariance.jitter(np.asarray(params.covariances), bad)
            )
        updates = {}
        if base.weights_init is not None:
            updates["weights"] = np.asarray(base.weights_init).copy()
        if base.covariances_init is not None:
            updates["covariances"] = np.asarray(base.covariances_init).copy()
        return params._replace(**updates)
