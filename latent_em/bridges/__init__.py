"""Bridges to the probabilistic-programming ecosystem (PyMC and ArviZ).

Nothing here is imported by ``import latent_em``, and PyMC, ArviZ and matplotlib are
imported only inside the functions that use them.

* :func:`to_pymc` — the equivalent PyMC model of an EM fit (same likelihood, weak priors);
  :func:`register_pymc` registers the builder of a custom model class.
* :func:`crosscheck` — NUTS from the EM estimate, draws relabeled to the EM solution, and a
  :class:`CrossCheckReport` comparing both.
* :func:`to_inference_data` — an EM fit as an ArviZ object (InferenceData or DataTree).
"""

from . import compose as _compose  # noqa: F401  (registers the Mixture builder)
from .arviz import to_inference_data
from .crosscheck import CrossCheckReport, ParameterComparison, crosscheck, relabel_draws
from .pymc import PyMCModel, build_pymc, register_pymc, to_pymc

__all__ = [
    "to_pymc",
    "build_pymc",
    "register_pymc",
    "PyMCModel",
    "crosscheck",
    "relabel_draws",
    "CrossCheckReport",
    "ParameterComparison",
    "to_inference_data",
]
