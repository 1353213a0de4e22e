"""The model contract: small capabilities a latent-variable model may provide.

A model is any object (ideally a frozen dataclass) with ``initialize`` and ``log_joint``.
Everything else is an optional capability, detected with ``isinstance`` against the
runtime-checkable protocols below, and the driver (:func:`latent_em.fit`) chooses its path
from them in one place:

========================  ===========================================================
capability                what the driver does with it
========================  ===========================================================
``latent_support``        z is discrete: the posterior is the softmax of ``log_joint``
                          over the support and ``log p(x_n)`` its log-sum-exp
``posterior``             the model computes its exact posterior and ``log p(x_n)``
                          itself (continuous z, or a faster discrete one)
``expected_stats`` +      closed-form fast path: additive expected sufficient
``m_step``                statistics, then the model's own maximizer
``e_step``                fused E-step: the statistics and ``log p(x_n)`` of a chunk in
                          one pass, without the ``(n, m)`` posterior (fast path)
``constraints``           generic numerical M-step (L-BFGS over unconstrained values),
                          SQUAREM and numerical standard errors
``log_prior``             MAP-EM: the objective is ``log p(x | θ) + log p(θ)``
``log_joint_grad``        analytic gradient for the numerical M-step (else finite
                          differences; see :mod:`latent_em.numerical_mstep`)
``log_joint_batch``       ``log_joint`` at a list of parameter values in one call: the
                          numerical M-step's finite differences evaluate all
                          perturbations at once
``expected_log_joint`` +  ``Q(θ)`` and the entropy of a model's own posterior: lets
``posterior_entropy``     :func:`latent_em.check_model` test the ELBO and M-step laws
                          for continuous or structured z
``n_parameters``          free-parameter count for BIC/AIC (else from ``constraints``)
``repair``                called after each M-step to mend degenerate parameters
``log_likelihood_round_off``  a bound on the float64 error of ``log p(x_n | θ)`` (per
                          unit weight) at given parameters, added to the driver's
                          monotonicity tolerance (ill-conditioned parameters)
``monotone_objective``    ``False`` declares an M-step that maximizes no fixed
                          objective (e.g. scikit-learn's additive ``reg_covar``): the
                          driver records a decrease as an event instead of raising
``check_data``            validates and converts user data before fitting
``collapsed_components``  components of a fit that collapsed (a spurious maximum held
                          up only by regularization); recorded per restart
``fit_context``           a context manager held for the whole fit (all restarts),
                          for process state such as BLAS thread limits
========================  ===========================================================

Shapes: ``x`` is any array-like indexed by observation along axis 0 (``(n, D)`` for
vector data, ``(n, T)`` for a batch of sequences, ...). A discrete posterior is an
``(n, m)`` array of responsibilities over the ``m`` support points.

Examples
--------
A complete custom model (a mixture of two exponentials with a closed-form M-step):

>>> import numpy as np
>>> from typing import NamedTuple
>>> import latent_em
>>> class ExpParams(NamedTuple):
...     weights: np.ndarray  # (K,)
...     rates: np.ndarray    # (K,)
>>> class ExpStats(NamedTuple):
...     counts: np.ndarray   # Σ_n w_n q_nk
...     sum_x: np.ndarray    # Σ_n w_n q_nk x_n
>>> class ExponentialMixture:
...     n_components = 2
...     def initialize(self, x, rng):
...         return ExpParams(np.full(2, 0.5), 1.0 / np.quantile(x, [0.25, 0.75]))
...     def latent_support(self):
...         return np.arange(2)
...     def log_joint(self, params, x, z):
...         rate = params.rates[z]
...         return np.log(params.weights[z]) + np.log(rate) - rate * x
...     def expected_stats(self, params, x, posterior, weights):
...         r = posterior * weights[:, None]
...         return ExpStats(r.sum(0), r.T @ x)
...     def m_step(self, params, stats):
...         return ExpParams(stats.counts / stats.counts.sum(), stats.counts / stats.sum_x)
>>> rng = np.random.default_rng(0)
>>> x = np.concatenate([rng.exponential(1.0, 300), rng.exponential(10.0, 300)])
>>> result = latent_em.fit(ExponentialMixture(), x, random_state=0)
>>> result.converged
True
>>> bool(np.all(np.diff(result.history) >= -1e-9))
True
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .constraints import Constraint

__all__ = [
    "LatentVariableModel",
    "EnumerableLatent",
    "ExactPosterior",
    "ClosedFormMStep",
    "FusedEStep",
    "Constrained",
    "HasLogPrior",
    "CountsParameters",
    "Repairable",
    "ChecksData",
    "ValidatesParams",
    "Samples",
    "HasLogJointGradient",
    "BatchedLogJoint",
    "ExpectedLogJoint",
    "HasFitContext",
    "FlagsCollapse",
    "DeclaresObjective",
    "StatesRoundOff",
    "has_monotone_objective",
    "round_off_of",
]


@runtime_checkable
class LatentVariableModel(Protocol):
    """Required of every model: initial parameters and the joint log-density."""

    def initialize(self, x: Any, rng: np.random.Generator) -> Any:
        """Initial parameters (a NamedTuple of arrays) from data and a random generator."""

    def log_joint(self, params: Any, x: Any, z: Any) -> np.ndarray:
        """``log p(x_n, z_n | params)`` for each row, shape ``(n,)``.

        ``z`` holds one latent value per row (shape ``(n, ...)``).
        """


@runtime_checkable
class EnumerableLatent(Protocol):
    """z takes finitely many values that can be listed."""

    def latent_support(self) -> np.ndarray:
        """The ``m`` possible values of z, stacked along axis 0: shape ``(m, ...)``."""


@runtime_checkable
class ExactPosterior(Protocol):
    """The model computes the exact posterior ``p(z | x, θ)`` itself."""

    def posterior(self, params: Any, x: Any) -> tuple[Any, np.ndarray]:
        """Return ``(posterior, log_marginal)`` with ``log_marginal[n] = log p(x_n | θ)``.

        For discrete z the posterior must be the ``(n, m)`` responsibilities over
        ``latent_support()``; for continuous z it is whatever ``expected_stats`` consumes.
        """


@runtime_checkable
class ClosedFormMStep(Protocol):
    """Closed-form EM: additive expected sufficient statistics and their maximizer."""

    def expected_stats(self, params: Any, x: Any, posterior: Any, weights: np.ndarray) -> Any:
        """Weighted expected sufficient statistics of a chunk.

        Must be additive: the statistics of a split of the rows add up (leafwise) to the
        statistics of all rows. ``weights`` has shape ``(n,)``.
        """

    def m_step(self, params: Any, stats: Any) -> Any:
        """New parameters maximizing the expected complete-data log-likelihood.

        A model that also has ``log_prior`` must maximize ``Q(θ) + log p(θ)`` here (fold
        the prior into its own update, e.g. Dirichlet pseudo-counts): the driver adds
        ``log_prior`` to the objective it checks for monotonicity, but only the numerical
        M-step adds it to the function it maximizes.
        """


@runtime_checkable
class FusedEStep(Protocol):
    """The model computes an E-step's statistics without materializing the posterior."""

    def e_step(self, params: Any, x: Any, weights: np.ndarray) -> tuple[Any, np.ndarray]:
        """Return ``(stats, log_marginal)`` for a chunk.

        ``stats`` must equal ``expected_stats(params, x, posterior, weights)`` at the exact
        posterior (up to round-off) and ``log_marginal[n] = log p(x_n | θ)``. Used only
        together with :class:`ClosedFormMStep`; the driver checks it against the unfused
        path on the first chunk of a fit.
        """


@runtime_checkable
class Constrained(Protocol):
    """Declares which parameter fields are free and how they are constrained."""

    @property
    def constraints(self) -> Mapping[str, Constraint]: ...


@runtime_checkable
class HasLogPrior(Protocol):
    """A prior over parameters: EM becomes MAP-EM."""

    def log_prior(self, params: Any) -> float:
        """``log p(θ)``, added to the objective on every path (see ``m_step``)."""


@runtime_checkable
class HasLogJointGradient(Protocol):
    """Analytic gradient of ``log_joint`` for the generic numerical M-step."""

    def log_joint_grad(self, params: Any, x: Any, z: Any, weights: np.ndarray) -> Any:
        """``Σ_n weights_n ∂ log p(x_n, z_n | θ) / ∂θ`` for every constrained field.

        Returns a mapping (or NamedTuple) from field name to an array shaped like the
        field; array entries are treated as independent variables. A model with
        ``log_prior`` should also define ``log_prior_grad(params)`` in the same layout.
        """


@runtime_checkable
class BatchedLogJoint(Protocol):
    """``log_joint`` at many parameter values at once, for batched finite differences."""

    def log_joint_batch(self, params_list: Sequence[Any], x: Any, z: Any) -> np.ndarray:
        """``log p(x_n, z_n | params_list[b])`` as a ``(B, n)`` array.

        Row ``b`` must equal ``log_joint(params_list[b], x, z)`` (to round-off). The
        parameter values share one type and shape (they differ only in their values),
        so a model usually stacks each field along a new leading axis and broadcasts
        its ``log_joint`` over it. Used only by the numerical M-step's
        finite-difference gradient (not when ``log_joint_grad`` is given), with the
        current θ and its ``2 p`` perturbations: ``B = 2 p + 1``.
        """


@runtime_checkable
class ExpectedLogJoint(Protocol):
    """``Q`` and the posterior entropy for a model that computes its own posterior."""

    def expected_log_joint(self, params: Any, x: Any, posterior: Any, weights: np.ndarray) -> float:
        """``Σ_n w_n E_q[log p(x_n, z_n | params)]`` under a fixed ``posterior``."""

    def posterior_entropy(self, posterior: Any, weights: np.ndarray) -> float:
        """``Σ_n w_n H[q_n]``, so that ``ELBO = expected_log_joint + posterior_entropy``."""


@runtime_checkable
class CountsParameters(Protocol):
    """States the number of free parameters (for BIC and AIC)."""

    def n_parameters(self, params: Any) -> int: ...


@runtime_checkable
class Repairable(Protocol):
    """Mends degenerate parameters after an M-step (empty or singular components)."""

    def repair(
        self, params: Any, stats: Any, rng: np.random.Generator
    ) -> tuple[Any, tuple[str, ...]]:
        """Return ``(params, messages)``.

        Return the *same* params object when nothing was changed (messages may still
        report a condition). Returning a new object tells the driver the parameters
        jumped, so the monotonicity check restarts from the repaired parameters.
        """


@runtime_checkable
class ChecksData(Protocol):
    """Validates and converts user data before fitting."""

    def check_data(self, x: Any) -> Any: ...


@runtime_checkable
class ValidatesParams(Protocol):
    """Checks parameters passed to ``fit(model, x, params=...)`` against the data.

    Also the place for the model's own domain: the set its M-step maximizes over, where
    EM's guarantee starts (the Gaussian mixture refuses covariances below its
    ``reg_covar`` floor here); ``initialize`` must return parameters inside it.

    Raises ``TypeError``/``ValueError`` naming ``params`` and the field. Without it the
    driver compares them with what ``initialize`` returns for the same data. Either way
    the driver then checks that they are finite and inside ``constraints``.
    """

    def validate_params(self, params: Any, x: Any) -> None: ...


@runtime_checkable
class Samples(Protocol):
    """Draws from the fitted model."""

    def sample(self, params: Any, n: int, rng: np.random.Generator) -> tuple[Any, Any]:
        """Return ``(x, z)`` with ``n`` rows."""


@runtime_checkable
class FlagsCollapse(Protocol):
    """Names the components of a fit that collapsed (a spurious maximum).

    The likelihood of a mixture grows without bound as a component shrinks onto fewer
    points than it has free directions; a fit holding such a component is kept finite only
    by regularization. The driver records the answer for every restart
    (:attr:`latent_em.RestartOutcome.collapsed`), so that a spurious maximum chosen over a
    regular one can be reported.
    """

    def collapsed_components(self, params: Any) -> list[int]: ...


@runtime_checkable
class HasFitContext(Protocol):
    """Process state the model needs for the duration of a fit.

    The driver enters ``fit_context()`` once, around every restart, and leaves it when
    the fit returns or raises; the user's ``callback`` runs inside it.
    """

    def fit_context(self) -> contextlib.AbstractContextManager[Any]:
        """A context manager (e.g. one limiting BLAS to one thread)."""


@runtime_checkable
class DeclaresObjective(Protocol):
    """States whether EM provably increases the model's objective.

    ``monotone_objective`` is ``True`` when every M-step maximizes ``Q(θ) + log p(θ)``
    over a fixed parameter set (a constrained set included), so that EM never lowers
    ``log p(x | θ) + log p(θ)``. A model stating ``False`` (an update that is not such a
    maximizer, such as scikit-learn's ``Σ = S + εI``) is not checked for monotonicity:
    the driver records a decrease as an :class:`~latent_em.Event` instead of raising
    :class:`~latent_em.MonotonicityError`. Models that do not state it are checked.
    """

    @property
    def monotone_objective(self) -> bool: ...


def has_monotone_objective(model: Any) -> bool:
    """Whether the driver enforces monotonicity for ``model`` (see :class:`DeclaresObjective`)."""
    return not isinstance(model, DeclaresObjective) or bool(model.monotone_objective)


@runtime_checkable
class StatesRoundOff(Protocol):
    """States how accurately ``log p(x_n | θ)`` can be computed at given parameters."""

    def log_likelihood_round_off(self, params: Any) -> float:
        """A bound (nats per unit weight) on the floating-point error of ``log p(x_n | θ)``.

        The driver adds ``Σ w`` times the larger of its values before and after a step to
        the monotonicity tolerance. A Gaussian component with covariance condition
        number κ, stored as a float64 matrix, is known only to about ``ε κ`` relative in
        its narrowest direction, so its log-density cannot be computed more accurately.
        """


def round_off_of(model: Any, *params: Any) -> float:
    """The largest :meth:`StatesRoundOff.log_likelihood_round_off` at ``params`` (0 for a
    model that does not state it)."""
    if not isinstance(model, StatesRoundOff):
        return 0.0
    return max((float(model.log_likelihood_round_off(p)) for p in params), default=0.0)
