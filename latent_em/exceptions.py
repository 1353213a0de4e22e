"""Exceptions and warnings raised by latent_em."""

from __future__ import annotations

__all__ = [
    "ModelContractError",
    "MonotonicityError",
    "ConvergenceWarning",
    "DegeneracyWarning",
    "NotFittedError",
]


class ModelContractError(TypeError):
    """A model broke the contract of :mod:`latent_em.protocols`.

    The message names the method, and the shape or value it returned.
    """


class MonotonicityError(RuntimeError):
    """EM lowered the objective: the M-step is not a maximizer or the E-step is not exact.

    Attributes
    ----------
    iteration : int
        The iteration whose M-step produced the lower value (1-based).
    before, after : float
        The objective (log-likelihood plus log-prior) before and after that M-step.
    drop : float
        ``before - after`` (positive).
    """

    def __init__(self, iteration: int, before: float, after: float, message: str) -> None:
        super().__init__(message)
        self.iteration = iteration
        self.before = before
        self.after = after
        self.drop = before - after


class ConvergenceWarning(UserWarning):
    """EM stopped at ``max_iter`` before the convergence criterion was met."""


class DegeneracyWarning(UserWarning):
    """Parameters were repaired during fitting (empty or singular components)."""


class NotFittedError(ValueError, AttributeError):
    """An estimator was used before ``fit``."""
