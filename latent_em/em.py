"""The generic EM driver: restarts, the loop, convergence, monotonicity, the result.

One driver fits every model. Per iteration it runs the E-step chunk by chunk, sums the
(additive) statistics, checks that the objective did not decrease, tests convergence,
and runs one M-step. The path is chosen once, by :func:`latent_em.em_map.choose_m_step`, from the
capabilities a model provides (see :mod:`latent_em.protocols`).

The objective is ``L(θ) = Σ_n w_n log p(x_n | θ)`` (plus ``log p(θ)`` for MAP-EM). By the
decomposition ``log p(x) = ELBO(q, θ) + KL(q ‖ p(z | x, θ))`` the E-step
``q = p(z | x, θ)`` closes the gap and the M-step raises the ELBO, so ``L`` never
decreases; the driver enforces this instead of assuming it, up to the round-off
tolerance ``monotone_rtol · (|L| + Σ w)``. Two exceptions, both recorded in the result: a
repair (``model.repair``) moves the parameters off the EM path and starts a new segment
of the history (``EMResult.jumps``), and a model stating ``monotone_objective = False``
has decreases recorded as events instead of raised.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import numbers
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from ._registry import kind_of
from ._validation import check_int, check_positive_float
from .acceleration import resolve_accelerate, run_squarem
from .em_map import (
    CHECKED_ITERATIONS,
    MStep,
    RestartRun,
    check_model_contract,
    check_step,
    choose_m_step,
    e_pass,
    n_parameters_of,
    prepare_data,
    validate_initial_params,
    validate_m_step_output,
    working_rtol,
)
from .exceptions import ConvergenceWarning, ModelContractError
from .posteriors import check_sample_weight, log_likelihood, log_prior, posterior
from .protocols import (
    ClosedFormMStep,
    FlagsCollapse,
    HasFitContext,
    Repairable,
    ValidatesParams,
    round_off_of,
)
from .result import EMResult, Event, RestartOutcome

__all__ = [
    "fit",
    "EMResult",
    "RestartOutcome",
    "Event",
    "posterior",
    "log_likelihood",
    "check_sample_weight",
    "restart_rngs",
]

logger = logging.getLogger("latent_em")

#: Default relative tolerance for a decrease of the objective treated as round-off.
MONOTONE_RTOL = 1e-10


def restart_rngs(random_state: Any, n: int) -> list[np.random.Generator]:
    """``n`` independent generators derived reproducibly from ``random_state``."""
    if isinstance(random_state, np.random.Generator):
        return list(random_state.spawn(n))
    if isinstance(random_state, np.random.RandomState):
        seed = int(random_state.randint(0, 2**31 - 1))
        return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n)]
    if random_state is not None and (
        isinstance(random_state, bool) or not isinstance(random_state, numbers.Integral)
    ):
        raise TypeError(
            "random_state must be None, an int or a numpy Generator; "
            f"got {type(random_state).__name__}"
        )
    if random_state is not None and random_state < 0:
        raise ValueError(f"random_state must be non-negative; got {random_state}")
    entropy = None if random_state is None else int(random_state)
    return [np.random.default_rng(s) for s in np.random.SeedSequence(entropy).spawn(n)]


def _check_options(
    tol: float, max_iter: int, n_init: int, chunk_size: int | None, monotone_rtol: float
) -> None:
    # the shared validators: bools are not integers, NaN and strings are not tolerances
    check_positive_float(tol, "tol", allow_zero=True)
    check_int(max_iter, "max_iter", minimum=0)
    check_int(n_init, "n_init", minimum=1)
    if chunk_size is not None:
        check_int(chunk_size, "chunk_size", minimum=1)
    check_positive_float(monotone_rtol, "monotone_rtol", allow_zero=True)


# ----------------------------------------------------------------------------- driver


def _run_em(
    model: Any,
    x: Any,
    weights: np.ndarray,
    params: Any,
    *,
    restart: int,
    rng: np.random.Generator,
    tol: float,
    max_iter: int,
    chunk_size: int | None,
    m_step: MStep,
    closed_form: bool,
    monotone_rtol: float,
    callback: Callable[[int, Any, float], Any] | None,
) -> RestartRun:
    total_weight = float(weights.sum())
    history: list[float] = []
    jumps: list[int] = []
    events: list[Event] = []
    reported: set[str] = set()
    previous: float | None = None  # objective at the parameters the last M-step started from
    previous_params = params
    jumped = False  # whether a repair moved the parameters after the last M-step
    converged = False
    n_iter = 0
    for iteration in range(max_iter + 1):
        e = e_pass(model, params, x, weights, chunk_size, closed_form, validate=iteration == 0)
        lp = log_prior(model, params)
        objective = e.log_likelihood + lp
        history.append(objective)
        if callback is not None:
            callback(iteration, params, objective)
        if previous is not None:
            change = objective - previous
            if jumped:
                # a repair moved the parameters: a new segment of the history begins
                jumps.append(len(history) - 1)
            else:
                decrease = check_step(
                    model,
                    previous,
                    objective,
                    rtol=monotone_rtol,
                    total_weight=total_weight,
                    iteration=iteration,
                    restart=restart,
                    round_off=round_off_of(model, previous_params, params),
                )
                if decrease is not None:
                    events.append(decrease)
            if abs(change) < tol * total_weight:
                converged = True
                break
        if iteration == max_iter:
            break
        new_params, step_messages = m_step(params, e)
        n_iter += 1
        for message in step_messages:
            events.append(Event(restart, n_iter, message))
            logger.info("restart %d, iteration %d: %s", restart, n_iter, message)
        previous, previous_params = objective, params
        jumped = False
        if isinstance(model, Repairable):
            repaired, messages = model.repair(new_params, e.stats, rng)
            for message in messages:
                # a condition that persists is reported once, where it first appeared
                if message not in reported:
                    reported.add(message)
                    events.append(Event(restart, n_iter, message))
                    logger.info("restart %d, iteration %d: %s", restart, n_iter, message)
            if repaired is not new_params:
                # the parameters jumped: a decrease at the next E-step is not an EM
                # failure, so monotonicity is not checked for this one step
                jumped = True
                new_params = repaired
        if n_iter <= CHECKED_ITERATIONS:
            # after repair: a model may rely on repair to mend what its m_step left
            validate_m_step_output(model, params, new_params, n_iter)
        params = new_params
    # The loop always ends right after an E-step at `params`, so the reported
    # log-likelihood belongs to the returned parameters (the final E-step).
    return RestartRun(
        params, e.log_likelihood, lp, history, n_iter, len(history), converged, events, jumps
    )


def fit(
    model: Any,
    x: Any,
    *,
    params: Any = None,
    n_init: int = 1,
    tol: float = 1e-6,
    max_iter: int = 1000,
    sample_weight: Any = None,
    chunk_size: int | None = None,
    random_state: Any = None,
    accelerate: str | None = None,
    callback: Callable[[int, Any, float], Any] | None = None,
    monotone_rtol: float = MONOTONE_RTOL,
    warn_not_converged: bool = True,
) -> EMResult:
    """Fit a latent-variable model by expectation-maximization.

    Parameters
    ----------
    model : object
        A model implementing the contract of :mod:`latent_em.protocols`.
    x : array-like, path, numpy.memmap, latent_em.data.Chunks or dask.array.Array
        Data, indexed by observation along axis 0. Data not in memory (a ``.npy`` path, a
        memory map, a re-iterable of chunks, a Dask array) are read chunk by chunk on
        every E-step and initialization sees a bounded subsample; see
        :mod:`latent_em.data`. Such data need a closed-form model.
    params : optional
        Initial parameters; by default ``model.initialize(x, rng)`` for every restart.
        Checked before the first E-step: same type, fields and shapes as what
        ``model.initialize`` returns (or the model's own ``validate_params(params, x)``),
        finite, and inside the model's ``constraints``.
    n_init : int, default 1
        Number of restarts from independent initializations; the best objective wins.
    tol : float, default 1e-6
        Convergence threshold on the change of the objective per unit weight (per
        observation without ``sample_weight``) between successive iterations.
    max_iter : int, default 1000
        Maximum number of EM iterations per restart.
    sample_weight : array-like of shape (n,), optional
        Non-negative row weights; integer weights are equivalent to repeating rows.
    chunk_size : int, optional
        Rows per E-step chunk; bounds memory and gives the same result as one chunk
        (data read from disk default to ``latent_em.data.DEFAULT_CHUNK_ROWS``).
    random_state : int, numpy.random.Generator or None
        Seeds the initializations (reproducible bit for bit for an int).
    accelerate : {None, "squarem"} or latent_em.acceleration.Squarem, optional
        Acceleration of the EM map: ``None`` for plain EM, ``"squarem"`` (or a
        :class:`~latent_em.acceleration.Squarem` with options) for SQUAREM, which needs
        the model's ``constraints``. ``n_iter`` then counts SQUAREM cycles,
        ``n_evaluations`` the E-step passes, and ``history`` and ``callback`` see the
        accepted point of every cycle.
    callback : callable, optional
        Called as ``callback(iteration, params, objective)`` after every E-step;
        ``iteration`` counts from 0 in every restart.
    monotone_rtol : float, default 1e-10
        A decrease of the objective larger than ``monotone_rtol * (|L| + Σ w)`` (``L``
        the objective before the step) raises :class:`~latent_em.MonotonicityError`;
        smaller decreases are round-off. Not checked on the step right after a repair
        (its index is in ``EMResult.jumps``), and only recorded as an event for a model
        that states ``monotone_objective = False``
        (:class:`~latent_em.protocols.DeclaresObjective`).
    warn_not_converged : bool, default True
        Emit :class:`~latent_em.ConvergenceWarning` when the best restart did not converge.

    Returns
    -------
    EMResult
        Fitted parameters, log-likelihood, history, per-restart outcomes and events.

    Raises
    ------
    MonotonicityError
        If an iteration lowers the objective beyond round-off.
    ModelContractError
        If the model lacks a required method, returns values of the wrong shape, or an
        M-step of the first iterations returns parameters outside the model's
        ``constraints`` (the message names the field and the value).
    TypeError, ValueError
        For bad options, and for ``params`` that are not what the model uses (another
        type, other fields or shapes than ``model.initialize`` returns, NaN, or values
        outside the model's ``constraints``).
    """
    check_model_contract(model)
    _check_options(tol, max_iter, n_init, chunk_size, monotone_rtol)
    if params is not None and n_init > 1:
        raise ValueError("give either initial params or n_init > 1, not both")
    x, n, init_data = prepare_data(model, x)
    if params is not None:
        _check_given_params(model, params, init_data)
    monotone_rtol = working_rtol(model, monotone_rtol)
    weights = check_sample_weight(sample_weight, n)
    # SQUAREM (latent_em.acceleration) is a second user of the EM map, beside _run_em
    squarem = resolve_accelerate(accelerate, model)

    closed_form = isinstance(model, ClosedFormMStep)
    m_step = choose_m_step(model, x, weights, chunk_size, tol)
    run_restart: Callable[..., RestartRun] = _run_em
    if squarem is not None:
        run_restart = functools.partial(run_squarem, options=squarem)
    rngs = restart_rngs(random_state, n_init)
    runs: list[RestartRun] = []
    context = model.fit_context() if isinstance(model, HasFitContext) else contextlib.nullcontext()
    with context, _contract_errors_of(model):
        for restart, rng in enumerate(rngs):
            if params is None:
                start = model.initialize(init_data(rng), rng)
                validate_initial_params(model, start)
            else:
                start = params
            runs.append(
                run_restart(
                    model,
                    x,
                    weights,
                    start,
                    restart=restart,
                    rng=rng,
                    tol=tol,
                    max_iter=max_iter,
                    chunk_size=chunk_size,
                    m_step=m_step,
                    closed_form=closed_form,
                    monotone_rtol=monotone_rtol,
                    callback=callback,
                )
            )
    best = max(range(len(runs)), key=lambda i: runs[i].log_likelihood + runs[i].log_prior)
    run = runs[best]
    if warn_not_converged and not run.converged and max_iter > 0:
        warnings.warn(
            f"EM did not converge in max_iter={max_iter} iterations (last change "
            f"{_last_change(run.history, float(weights.sum())):.3g} per observation > "
            f"tol={tol:g}); increase max_iter or tol",
            ConvergenceWarning,
            stacklevel=2,
        )
    outcomes = tuple(
        RestartOutcome(
            index=i,
            log_likelihood=r.log_likelihood,
            objective=r.log_likelihood + r.log_prior,
            n_iter=r.n_iter,
            converged=r.converged,
            n_events=len(r.events),
            collapsed=(
                tuple(model.collapsed_components(r.params))
                if isinstance(model, FlagsCollapse)
                else ()
            ),
        )
        for i, r in enumerate(runs)
    )
    return EMResult(
        params=run.params,
        log_likelihood=run.log_likelihood,
        log_prior=run.log_prior,
        objective=run.log_likelihood + run.log_prior,
        history=np.asarray(run.history),
        n_iter=run.n_iter,
        n_evaluations=run.n_evaluations,
        converged=run.converged,
        n_observations=float(weights.sum()),
        n_parameters=n_parameters_of(model, run.params),
        best_restart=best,
        restarts=outcomes,
        events=tuple(ev for r in runs for ev in r.events),
        model=model,
        jumps=tuple(run.jumps),
    )


@contextlib.contextmanager
def _contract_errors_of(model: Any) -> Iterator[None]:
    """A contract error of a built-in model is latent_em's bug: say so.

    The driver's contract messages address the author of the model ("check m_step"); for
    a model built into latent_em that author is latent_em, not the user. Errors about the
    user's own input (options, data, given ``params``) are ``ValueError``/``TypeError``
    and pass unchanged.
    """
    try:
        yield
    except ModelContractError as exc:
        if kind_of(type(model)) != "builtin":
            raise
        raise ModelContractError(
            f"{exc} -- {type(model).__name__} is built into latent_em, so this is a bug in "
            "latent_em, not in your model: please report it with the data and the options "
            "of the fit"
        ) from exc


def _check_given_params(
    model: Any, params: Any, init_data: Callable[[np.random.Generator], Any]
) -> None:
    """Parameters passed to :func:`fit` are checked before the first E-step.

    A model's own ``validate_params(params, x)``, when it has one, checks them against
    the data; otherwise they must have the type, fields and shapes of what
    ``model.initialize`` returns for these data. Then, for every model: finite values
    inside the declared ``constraints``.
    """
    rng = np.random.default_rng(0)
    reference = None
    if isinstance(model, ValidatesParams):
        model.validate_params(params, init_data(rng))
    else:
        try:
            reference = model.initialize(init_data(rng), rng)
        except Exception:  # a model used only from given parameters: nothing to compare
            reference = None
    validate_initial_params(model, params, given=True, reference=reference)


def _last_change(history: Sequence[float], total_weight: float) -> float:
    if len(history) < 2:
        return float("nan")
    return abs(history[-1] - history[-2]) / total_weight
