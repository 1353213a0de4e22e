"""The record of a fit: :class:`EMResult`, with :class:`Event` and :class:`RestartOutcome`.

Frozen, documented values that the driver (:func:`latent_em.fit`) and SQUAREM return and
that :mod:`latent_em.io` saves and loads. Saving and loading live a layer above, in
:mod:`latent_em.io`; ``EMResult.save``/``load`` reach it through the hook that io installs
in :mod:`latent_em._registry`, so no import runs back up.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ._registry import file_format, register

__all__ = ["EMResult", "RestartOutcome", "Event"]


@register
@dataclasses.dataclass(frozen=True)
class Event:
    """Something the driver or the model did along the way (a reseed, a floor, ...).

    Attributes
    ----------
    restart : int
        Index of the restart (0-based).
    iteration : int
        Iteration after whose M-step it happened (1-based).
    message : str
        What happened, in words.
    """

    restart: int
    iteration: int
    message: str


@register
@dataclasses.dataclass(frozen=True)
class RestartOutcome:
    """How one restart ended.

    Attributes
    ----------
    index : int
        Restart index (0-based).
    log_likelihood : float
        Final weighted log-likelihood ``Σ_n w_n log p(x_n | θ)``.
    objective : float
        Final objective (log-likelihood plus log-prior).
    n_iter : int
        Number of EM iterations (M-steps).
    converged : bool
        Whether the convergence criterion was met before ``max_iter``.
    n_events : int
        Number of repair events during this restart.
    collapsed : tuple of int
        Components that collapsed in the final parameters (a spurious maximum held up
        only by regularization), for models that state it (``collapsed_components``);
        empty otherwise.
    """

    index: int
    log_likelihood: float
    objective: float
    n_iter: int
    converged: bool
    n_events: int
    collapsed: tuple[int, ...] = ()


@register
@dataclasses.dataclass(frozen=True)
class EMResult:
    """The result of :func:`fit`.

    Attributes
    ----------
    params : Any
        Fitted parameters of the best restart (the model's NamedTuple).
    log_likelihood : float
        ``Σ_n w_n log p(x_n | params)`` at ``params`` (from a final E-step).
    log_prior : float
        ``log p(params)`` (0 for models without a prior).
    objective : float
        ``log_likelihood + log_prior``, the quantity EM maximizes.
    history : numpy.ndarray
        Objective after every E-step of the best restart, shape ``(n_iter + 1,)``.
        Non-decreasing (checked, up to the round-off tolerance ``monotone_rtol · (|L| +
        Σ w)`` of :func:`latent_em.fit`) within each segment of :attr:`history_segments`;
        a repair starts a new segment (see ``jumps``).
    n_iter : int
        Number of EM iterations (M-steps) of the best restart.
    n_evaluations : int
        Number of E-step passes over the data of the best restart.
    converged : bool
        Whether the best restart met the convergence criterion.
    n_observations : float
        Total weight ``Σ_n w_n`` (the number of rows without ``sample_weight``).
    n_parameters : int or None
        Number of free parameters, when the model states it or declares constraints.
    best_restart : int
        Index of the best restart.
    restarts : tuple of RestartOutcome
        Outcome of every restart.
    events : tuple of Event
        Repairs and other events of every restart.
    model : Any
        The model that was fitted.
    jumps : tuple of int
        Indices ``i`` into ``history`` where a repair (a re-seeded component, a jittered
        covariance: see ``events``) moved the parameters off the EM path between
        ``history[i - 1]`` and ``history[i]``. EM's guarantee does not cover that one
        step, so ``history[i]`` may be lower than ``history[i - 1]``; it does cover every
        step within a segment.
    """

    params: Any
    log_likelihood: float
    log_prior: float
    objective: float
    history: np.ndarray
    n_iter: int
    n_evaluations: int
    converged: bool
    n_observations: float
    n_parameters: int | None
    best_restart: int
    restarts: tuple[RestartOutcome, ...]
    events: tuple[Event, ...]
    model: Any
    jumps: tuple[int, ...] = ()

    @property
    def mean_log_likelihood(self) -> float:
        """Log-likelihood per observation, ``log_likelihood / n_observations``."""
        return self.log_likelihood / self.n_observations

    @property
    def history_segments(self) -> list[np.ndarray]:
        """``history`` cut at ``jumps``: the pieces over which EM never decreased."""
        history = np.asarray(self.history)
        return [
            history[a:b]
            for a, b in zip((0, *self.jumps), (*self.jumps, history.shape[0]), strict=True)
        ]

    @property
    def bic(self) -> float:
        """``-2 log L + p log n`` (smaller is better)."""
        return -2.0 * self.log_likelihood + self._p() * math.log(self.n_observations)

    @property
    def aic(self) -> float:
        """``-2 log L + 2 p`` (smaller is better)."""
        return -2.0 * self.log_likelihood + 2.0 * self._p()

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save to ``path`` (JSON) and its ``.npz`` sibling; see :mod:`latent_em.io`."""
        save, _ = file_format()
        return save(self, path)

    @staticmethod
    def load(path: str | os.PathLike[str]) -> EMResult:
        """Load an :class:`EMResult` written by :meth:`save`."""
        _, load = file_format()
        obj = load(path)
        if not isinstance(obj, EMResult):
            raise TypeError(f"{str(path)!r} holds a {type(obj).__name__}, not an EMResult")
        return obj

    def _p(self) -> int:
        if self.n_parameters is None:
            raise AttributeError(
                "the model does not state its number of free parameters; give it an "
                "n_parameters(params) method or a constraints mapping"
            )
        return self.n_parameters
