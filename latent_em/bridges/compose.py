"""PyMC counterparts of composed mixtures (:class:`latent_em.Mixture`).

A homogeneous mixture of a ``Gaussian``, ``Poisson``, ``Bernoulli`` or ``Categorical``
component has the same likelihood as the built-in mixture of that family, so its PyMC
model is the built-in builder's (:mod:`latent_em.bridges.pymc`), with draws mapped back to
the composed model's ``dict`` parameters. Other compositions have no PyMC builder yet;
:func:`~latent_em.bridges.to_pymc` says so.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from .pymc import (
    PyMCModel,
    bernoulli_mixture_pymc,
    categorical_mixture_pymc,
    gaussian_mixture_pymc,
    poisson_mixture_pymc,
    register_pymc,
)

__all__ = ["mixture_builder"]


def mixture_builder(
    model: Any, params: Mapping[str, np.ndarray], x: Any, priors: Mapping[str, Any] | None
) -> PyMCModel:
    """Registered builder of ``latent_em.Mixture`` (homogeneous Gaussian, Poisson,
    Bernoulli or categorical components)."""
    from ..components import Bernoulli, Categorical, Gaussian, Poisson

    comp = model.components[0] if len(model.components) == 1 else None
    w = np.asarray(params["weights"], dtype=float)
    if isinstance(comp, Gaussian):
        record = gaussian_mixture_pymc(
            w, params["mean"], params["cov"], x, comp.covariance_type, priors
        )

        def back(v: Mapping[str, np.ndarray]) -> Any:
            return {"weights": v["weights"], "mean": v["means"], "cov": v["covariances"]}

    elif isinstance(comp, Poisson):
        record = poisson_mixture_pymc(w, params["rate"], x, priors)

        def back(v: Mapping[str, np.ndarray]) -> Any:
            return {"weights": v["weights"], "rate": v["rates"]}

    elif isinstance(comp, Bernoulli):
        record = bernoulli_mixture_pymc(w, params["p"], x, priors)

        def back(v: Mapping[str, np.ndarray]) -> Any:
            return {"weights": v["weights"], "p": v["probs"]}

    elif isinstance(comp, Categorical):
        probs = np.asarray(params["probs"], dtype=float)  # (K, D, C)
        tables = [probs[:, j, :] for j in range(probs.shape[1])]
        record = categorical_mixture_pymc(w, tables, np.asarray(x).astype(np.int64), priors)

        def back(v: Mapping[str, np.ndarray]) -> Any:
            cols = [np.asarray(v[f"probs_{j}"]) for j in range(len(tables))]
            return {"weights": v["weights"], "probs": np.stack(cols, axis=-2)}

    else:
        parts = ", ".join(type(c).__name__ for c in model.components)
        raise TypeError(
            f"no PyMC builder for a Mixture of {parts}: only homogeneous mixtures of "
            "Gaussian, Poisson, Bernoulli or Categorical components have one"
        )
    return dataclasses.replace(record, to_params=back)


register_pymc("latent_em.composite.Mixture", mixture_builder)
