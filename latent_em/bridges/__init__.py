"""Bridges to the probabilistic-programming ecosystem (PyMC and ArviZ).

Nothing here is imported by ``import latent_em``, and PyMC, ArviZ and matplotlib are
imported only inside the functions that use them.

* :func:`to_pymc` — the equivalent PyMC model of an EM fit (same likelihood, weak priors);
  :func:`register_pymc` registers the builder of a custom model class.
* :func:`crosscheck` — NUTS from the EM estimate, draws relabeled to the EM solution, and a
  :class:`CrossCheckReport` comparing both; its verdict is :func:`judge`, a pure function
  of the EM estimate and the relabeled draws.
* :func:`to_inference_data` — an EM fit as an ArviZ object (InferenceData or DataTree).
* :func:`compare_components` — EM's BIC/ICL next to the posterior's LOO for several K.
"""

from . import compose as _compose  # noqa: F401  (registers the Mixture builder)
from .arviz import to_inference_data
from .crosscheck import CrossCheckReport, ParameterComparison, crosscheck, relabel_draws
from .model_comparison import ComponentComparison, compare_components
from .pymc import PyMCModel, build_pymc, register_pymc, to_pymc
from .verdict import Thresholds, Verdict, judge

__all__ = [
    "to_pymc",
    "build_pymc",
    "register_pymc",
    "PyMCModel",
    "crosscheck",
    "relabel_draws",
    "CrossCheckReport",
    "ParameterComparison",
    "judge",
    "Thresholds",
    "Verdict",
    "to_inference_data",
    "compare_components",
    "ComponentComparison",
]
