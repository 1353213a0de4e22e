"""A hidden Markov model with any component as its emission distribution.

``S`` hidden states follow a Markov chain with initial distribution ``π`` and transition
matrix ``A``; in state ``s`` an observation is drawn from the emission component with
parameters ``θ_s`` (:mod:`latent_em.components`):

    ``log p(x, z) = log π_{z_1} + Σ_{t≥2} log A_{z_{t-1} z_t} + Σ_t log p(x_t | θ_{z_t})``.

One observation of the driver is one *sequence*: data are a :class:`Sequences` (the
steps of all sequences concatenated, with their lengths, as in hmmlearn's
``X, lengths``). The E-step is forward–backward in log space (Rabiner 1989), vectorized
over sequences of different lengths; the posterior holds the state marginals ``γ_t``,
the summed pair marginals ``Σ_t ξ_t`` and the entropy of the posterior chain, so that
:func:`latent_em.check_model` can verify the ELBO and M-step laws. The M-step normalizes
the expected initial and transition counts and gives the emission component its
weighted MLE with the state marginals as weights.

Examples
--------
>>> import numpy as np
>>> import latent_em
>>> from latent_em.components import Poisson
>>> hmm = latent_em.HiddenMarkovModel(Poisson(), n_states=2)
>>> truth = {"initial": np.array([0.5, 0.5]),
...          "transition": np.array([[0.95, 0.05], [0.1, 0.9]]),
...          "rate": np.array([[1.0], [8.0]])}
>>> x, states = hmm.sample(truth, 5, np.random.default_rng(0), length=200)
>>> result = latent_em.fit(hmm, x, n_init=2, random_state=0)
>>> paths, _ = hmm.decode(result.params, x)
>>> bool(np.mean(paths == states) > 0.95 or np.mean(paths != states) > 0.95)
True
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from ._registry import register_all
from ._validation import check_choice, check_int
from .components import Component, Params, as_data_matrix
from .composite import initial_partition
from .constraints import Constraint, Simplex
from .hmm_kernels import forward_backward, numba_available

__all__ = ["HiddenMarkovModel", "HMMPosterior", "Sequences"]


def _safe_log(p: Any) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(np.asarray(p, dtype=float))


def _lse(a: np.ndarray, axis: int) -> np.ndarray:
    """log-sum-exp that returns ``-inf`` (without a warning) where all terms are ``-inf``."""
    top = np.max(a, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore", under="ignore"):
        out = np.log(np.sum(np.exp(a - top), axis=axis, keepdims=True)) + top
    return np.squeeze(out, axis=axis)


def _plogp(p: np.ndarray) -> np.ndarray:
    return np.where(p > 0, p * _safe_log(np.where(p > 0, p, 1.0)), 0.0)


class Sequences:
    """Several sequences of observations: their steps concatenated, and their lengths.

    Indexing (a slice, an integer array) selects whole sequences, so the driver's chunks,
    bootstrap resamples and sample weights work per sequence.

    Parameters
    ----------
    x : array-like, shape (n_steps,) or (n_steps, D)
        All steps of all sequences, one after the other (hmmlearn's ``X``).
    lengths : sequence of int, optional
        Length of each sequence, summing to ``n_steps``; by default one sequence.
    """

    def __init__(self, x: Any, lengths: Any = None) -> None:
        data = as_data_matrix(x, "X")
        if lengths is None:
            lens = np.array([data.shape[0]], dtype=np.intp)
        else:
            lens = np.asarray(lengths)
            if lens.ndim != 1 or lens.size == 0 or not np.issubdtype(lens.dtype, np.integer):
                raise ValueError(
                    f"lengths must be a non-empty 1-D sequence of ints; got {lengths!r}"
                )
            if np.any(lens < 1):
                raise ValueError("lengths must all be >= 1")
            if int(lens.sum()) != data.shape[0]:
                raise ValueError(
                    f"lengths sum to {int(lens.sum())} but X has {data.shape[0]} rows (steps)"
                )
        self.data = data
        self.lengths = lens.astype(np.intp)

    @classmethod
    def from_list(cls, sequences: Any) -> Sequences:
        """From a list of arrays, one per sequence."""
        parts = [as_data_matrix(s, f"sequences[{i}]") for i, s in enumerate(sequences)]
        if not parts:
            raise ValueError("sequences is empty")
        return cls(np.concatenate(parts), [p.shape[0] for p in parts])

    @property
    def offsets(self) -> np.ndarray:
        """Index of each sequence's first step in :attr:`data`."""
        return np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.intp)

    def __len__(self) -> int:
        return int(self.lengths.size)

    def __getitem__(self, key: Any) -> Sequences:
        idx = np.arange(len(self))[key]
        idx = np.atleast_1d(idx)
        starts, lens = self.offsets[idx], self.lengths[idx]
        rows = np.concatenate([np.arange(s, s + n) for s, n in zip(starts, lens, strict=True)])
        out = object.__new__(Sequences)
        out.data = self.data[rows]
        out.lengths = lens.copy()
        return out

    def split(self, values: np.ndarray) -> list[np.ndarray]:
        """Per-step ``values`` (aligned with :attr:`data`) split into one array per sequence."""
        return np.split(np.asarray(values), np.cumsum(self.lengths)[:-1])

    def __repr__(self) -> str:
        return f"Sequences(n_sequences={len(self)}, n_steps={self.data.shape[0]})"


class HMMPosterior(NamedTuple):
    """The posterior of the state paths, as the statistics need it.

    Attributes
    ----------
    states : (n_steps, S)
        ``γ_t(s) = p(z_t = s | x)`` for every step of every sequence.
    first : (n_seq, S)
        ``γ_1`` of every sequence.
    transitions : (n_seq, S, S)
        ``Σ_t ξ_t(j, k) = Σ_t p(z_{t-1} = j, z_t = k | x)`` per sequence.
    entropy : (n_seq,)
        Entropy of the posterior Markov chain of every sequence.
    """

    states: np.ndarray
    first: np.ndarray
    transitions: np.ndarray
    entropy: np.ndarray


@dataclasses.dataclass(frozen=True)
class HiddenMarkovModel:
    """Hidden Markov model with ``n_states`` states and an emission component.

    Parameters
    ----------
    emission : Component
        The distribution of an observation given the state, e.g.
        ``Gaussian("diag")``, ``Categorical()``, ``Poisson()`` or an ``Independent``.
    n_states : int
        Number of hidden states ``S``.
    engine : {"auto", "numpy", "numba"}, default "auto"
        Forward–backward in NumPy (vectorized over sequences, a Python loop over time)
        or compiled with Numba (:mod:`latent_em.hmm_kernels`; compiled on first use and
        cached). ``"auto"`` takes Numba, when installed, for data with few long
        sequences (at most 100 sequences, the longest of at least 500 steps).

    Notes
    -----
    Parameters are a dict: ``"initial"`` ``(S,)``, ``"transition"`` ``(S, S)`` (rows sum
    to one) and the emission's parameters with a leading ``S`` axis. Data are
    :class:`Sequences`; a plain array is one sequence and a list of arrays is one
    sequence per array. BIC (:meth:`bic`) counts the steps as observations, as hmmlearn.
    """

    emission: Component
    n_states: int = 2
    engine: str = "auto"

    def __post_init__(self) -> None:
        check_choice(self.engine, "engine", ("auto", "numpy", "numba"))
        if self.engine == "numba" and not numba_available():
            raise ValueError("engine='numba' needs Numba, which is not installed")
        if not isinstance(self.emission, Component):
            raise TypeError(
                "emission must be a component (latent_em.components); got "
                f"{type(self.emission).__name__}"
            )
        if not self.emission.closed_form:
            raise ValueError(
                f"emission: {type(self.emission).__name__} has no closed-form statistics; "
                "the hidden Markov model needs them (its M-step is closed-form)"
            )
        check_int(self.n_states, "n_states", minimum=1)

    # ---- data and parameters
    def check_data(self, x: Any) -> Sequences:
        """``Sequences`` (a plain array is one sequence, a list one sequence per array),
        with the emission's own checks on the steps."""
        if isinstance(x, Sequences):
            seqs = x
        elif isinstance(x, list):
            seqs = Sequences.from_list(x)
        else:
            seqs = Sequences(x)
        out = object.__new__(Sequences)
        out.data = self.emission.check_data(seqs.data, "X")
        out.lengths = seqs.lengths
        return out

    @property
    def constraints(self) -> Mapping[str, Constraint]:
        """``π`` and the rows of ``A`` on the simplex, then the emission's constraints."""
        return {"initial": Simplex(), "transition": Simplex(), **self.emission.constraints}

    def _emission_params(self, params: Mapping[str, np.ndarray]) -> Params:
        return {k: v for k, v in params.items() if k not in ("initial", "transition")}

    def n_parameters(self, params: Mapping[str, np.ndarray]) -> int:
        """``(S - 1) + S (S - 1)`` plus the emission's free parameters."""
        s = self.n_states
        return s - 1 + s * (s - 1) + self.emission.n_free(self._emission_params(params))

    def initialize(self, x: Sequences, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Emissions from a soft partition of all steps; uniform ``π``;
        ``A = 0.5 I + 0.5 / S``."""
        s = self.n_states
        resp = initial_partition(x.data, s, rng)
        emission = self.emission.initialize(x.data, resp, rng)
        return {
            "initial": np.full(s, 1.0 / s),
            "transition": 0.5 * np.eye(s) + 0.5 / s,
            **emission,
        }

    # ---- forward-backward
    def _padded_log_emission(
        self, params: Mapping[str, np.ndarray], x: Sequences
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(logB (n, T, S), mask (n, T), step index (n, T))`` padded to the longest."""
        table = self.emission.log_density(self._emission_params(params), x.data)
        t_max = int(x.lengths.max())
        steps = np.arange(t_max)
        mask = steps[None, :] < x.lengths[:, None]
        index = np.where(mask, x.offsets[:, None] + steps[None, :], 0)
        log_b = np.where(mask[:, :, None], table[index], 0.0)
        return log_b, mask, index

    def _forward(
        self, log_pi: np.ndarray, log_a: np.ndarray, log_b: np.ndarray, mask: np.ndarray
    ) -> np.ndarray:
        alpha = np.empty_like(log_b)
        alpha[:, 0] = log_pi[None] + log_b[:, 0]
        for t in range(1, log_b.shape[1]):
            new = _lse(alpha[:, t - 1, :, None] + log_a[None], axis=1) + log_b[:, t]
            alpha[:, t] = np.where(mask[:, t, None], new, alpha[:, t - 1])
        return alpha

    def posterior(
        self, params: Mapping[str, np.ndarray], x: Sequences
    ) -> tuple[HMMPosterior, np.ndarray]:
        """Forward–backward in log space: the posterior and ``log p(x_i)`` per sequence."""
        log_pi = _safe_log(params["initial"])
        log_a = _safe_log(params["transition"])
        if self._use_numba(x):
            table = self.emission.log_density(self._emission_params(params), x.data)
            gamma_flat, transitions, entropy, lm_c = forward_backward(
                log_pi, log_a, table, x.offsets, x.lengths
            )
            starts = gamma_flat[x.offsets]
            return HMMPosterior(gamma_flat, starts, transitions, entropy), lm_c
        log_b, mask, index = self._padded_log_emission(params, x)
        n, t_max, s = log_b.shape
        alpha = self._forward(log_pi, log_a, log_b, mask)
        log_marginal = _lse(alpha[:, -1], axis=1)
        ok = np.isfinite(log_marginal)
        lm = np.where(ok, log_marginal, 0.0)
        beta = np.zeros_like(log_b)
        for t in range(t_max - 2, -1, -1):
            new = _lse(log_a[None] + (log_b[:, t + 1] + beta[:, t + 1])[:, None, :], axis=2)
            beta[:, t] = np.where(mask[:, t + 1, None], new, 0.0)
        with np.errstate(under="ignore"):
            gamma = np.exp(alpha + beta - lm[:, None, None])
        gamma = np.where(mask[:, :, None] & ok[:, None, None], gamma, 0.0)
        transitions = np.zeros((n, s, s))
        entropy = np.zeros(n)
        for t in range(t_max - 1):
            live = mask[:, t + 1] & ok
            if not np.any(live):
                break
            with np.errstate(under="ignore"):
                xi = np.exp(
                    alpha[:, t, :, None]
                    + log_a[None]
                    + (log_b[:, t + 1] + beta[:, t + 1])[:, None, :]
                    - lm[:, None, None]
                )
            xi = np.where(live[:, None, None], xi, 0.0)
            transitions += xi
            entropy -= _plogp(xi).sum(axis=(1, 2))
        # H = -Σ_t ξ log ξ + Σ_{interior t} γ_t log γ_t (a chain's entropy from its
        # pairwise marginals); a sequence of one step has H = -Σ γ log γ
        steps = np.arange(t_max)
        interior = (steps[None] >= 1) & (steps[None] <= x.lengths[:, None] - 2)
        entropy += np.sum(np.where(interior[:, :, None], _plogp(gamma), 0.0), axis=(1, 2))
        single = x.lengths == 1
        entropy = np.where(single, -_plogp(gamma[:, 0]).sum(axis=1), entropy)
        states = np.empty((x.data.shape[0], s))
        states[index[mask]] = gamma[mask]
        if not np.all(ok):
            states[index[mask & ~ok[:, None]]] = 1.0 / s
        post = HMMPosterior(states, gamma[:, 0], transitions, entropy)
        return post, log_marginal

    def _use_numba(self, x: Sequences) -> bool:
        if self.engine == "numba":
            return True
        if self.engine == "numpy":
            return False
        return len(x) <= 100 and int(x.lengths.max()) >= 500 and numba_available()

    # ---- closed-form M-step
    def expected_stats(
        self,
        params: Mapping[str, np.ndarray],
        x: Sequences,
        posterior: HMMPosterior,
        weights: np.ndarray,
    ) -> dict[str, np.ndarray]:
        """Expected initial and transition counts and the emission's weighted statistics
        (weights ``w_i γ_t(s)``); additive over sequences."""
        w = np.asarray(weights, dtype=float)
        step_w = np.repeat(w, x.lengths)
        resp = posterior.states * step_w[:, None]
        emission = self.emission.stats(self._emission_params(params), x.data, resp)
        return {
            "initial_counts": w @ posterior.first,
            "transition_counts": np.einsum("n,njk->jk", w, posterior.transitions),
            "emission": emission,
        }

    def m_step(
        self, params: Mapping[str, np.ndarray], stats: Mapping[str, Any]
    ) -> dict[str, np.ndarray]:
        """Normalized counts for ``π`` and ``A`` (a row without counts keeps its old
        value) and the emission's weighted MLE."""
        init = np.asarray(stats["initial_counts"], dtype=float)
        trans = np.asarray(stats["transition_counts"], dtype=float)
        rows = trans.sum(axis=1, keepdims=True)
        transition = np.where(rows > 0, trans / np.where(rows > 0, rows, 1.0), params["transition"])
        emission = self.emission.mle(stats["emission"], self._emission_params(params))
        return {"initial": init / init.sum(), "transition": transition, **emission}

    # ---- the joint, Q and the entropy (check_model)
    def log_joint(self, params: Mapping[str, np.ndarray], x: Sequences, z: Any) -> np.ndarray:
        """``log p(x_i, z_i)`` per sequence, ``z`` a padded ``(n_seq, T_max)`` array of
        state paths (entries past a sequence's end are ignored)."""
        z = np.asarray(z, dtype=np.intp)
        log_pi = _safe_log(params["initial"])
        log_a = _safe_log(params["transition"])
        log_b, mask, _ = self._padded_log_emission(params, x)
        n, t_max, _ = log_b.shape
        z = z[:, :t_max]
        rows = np.arange(n)
        emit = np.where(mask, log_b[rows[:, None], np.arange(t_max)[None], z], 0.0)
        trans = np.where(mask[:, 1:], log_a[z[:, :-1], z[:, 1:]], 0.0)
        return log_pi[z[:, 0]] + trans.sum(axis=1) + emit.sum(axis=1)

    def expected_log_joint(
        self,
        params: Mapping[str, np.ndarray],
        x: Sequences,
        posterior: HMMPosterior,
        weights: np.ndarray,
    ) -> float:
        """``Σ_i w_i E_q[log p(x_i, z_i)]`` (with ``0 · log 0 = 0``)."""
        log_pi = _safe_log(params["initial"])
        log_a = _safe_log(params["transition"])
        table = self.emission.log_density(self._emission_params(params), x.data)

        def dot(p: np.ndarray, logp: np.ndarray) -> np.ndarray:
            return np.where(p > 0, p * np.where(p > 0, logp, 0.0), 0.0)

        w = np.asarray(weights, dtype=float)
        per_step = dot(posterior.states, table).sum(axis=1)
        emit = np.array([part.sum() for part in x.split(per_step)])
        first = dot(posterior.first, log_pi[None]).sum(axis=1)
        trans = dot(posterior.transitions, log_a[None]).sum(axis=(1, 2))
        return float(w @ (first + trans + emit))

    def posterior_entropy(self, posterior: HMMPosterior, weights: np.ndarray) -> float:
        """``Σ_i w_i H[q_i]``."""
        return float(np.asarray(weights, dtype=float) @ posterior.entropy)

    # ---- use of a fitted model
    def score(self, params: Mapping[str, np.ndarray], x: Any) -> float:
        """Total log-likelihood ``Σ_i log p(x_i)`` of the sequences."""
        seqs = self.check_data(x)
        return float(np.sum(self.posterior(params, seqs)[1]))

    def bic(self, params: Mapping[str, np.ndarray], x: Any) -> float:
        """``-2 log L + p log(n_steps)`` (hmmlearn's convention: steps are observations)."""
        seqs = self.check_data(x)
        n_steps = seqs.data.shape[0]
        return -2.0 * self.score(params, seqs) + self.n_parameters(params) * np.log(n_steps)

    def predict_proba(self, params: Mapping[str, np.ndarray], x: Any) -> np.ndarray:
        """State marginals ``(n_steps, S)``, aligned with the concatenated steps."""
        return self.posterior(params, self.check_data(x))[0].states

    def decode(self, params: Mapping[str, np.ndarray], x: Any) -> tuple[np.ndarray, np.ndarray]:
        """Viterbi: the most probable state path of every sequence.

        Returns
        -------
        states : (n_steps,) int
            The paths, concatenated like the steps.
        log_prob : (n_seq,)
            ``log p(x_i, z_i*)`` of each sequence's best path.
        """
        seqs = self.check_data(x)
        log_pi = _safe_log(params["initial"])
        log_a = _safe_log(params["transition"])
        log_b, mask, index = self._padded_log_emission(params, seqs)
        n, t_max, s = log_b.shape
        delta = log_pi[None] + log_b[:, 0]
        back = np.zeros((n, t_max, s), dtype=np.intp)
        for t in range(1, t_max):
            cand = delta[:, :, None] + log_a[None]  # (n, from, to)
            best = np.argmax(cand, axis=1)
            new = np.take_along_axis(cand, best[:, None, :], axis=1)[:, 0] + log_b[:, t]
            live = mask[:, t]
            delta = np.where(live[:, None], new, delta)
            back[:, t] = np.where(live[:, None], best, np.arange(s)[None])
        log_prob = delta.max(axis=1)
        path = np.empty((n, t_max), dtype=np.intp)
        path[:, -1] = np.argmax(delta, axis=1)
        for t in range(t_max - 1, 0, -1):
            path[:, t - 1] = back[np.arange(n), t, path[:, t]]
        states = np.empty(seqs.data.shape[0], dtype=np.intp)
        states[index[mask]] = path[mask]
        return states, log_prob

    def sample(
        self, params: Mapping[str, np.ndarray], n: int, rng: np.random.Generator, length: int = 100
    ) -> tuple[Sequences, np.ndarray]:
        """Draw ``n`` sequences of ``length`` steps: ``(Sequences, states (n * length,))``."""
        s = self.n_states
        z = np.empty((n, length), dtype=np.intp)
        z[:, 0] = rng.choice(s, size=n, p=np.asarray(params["initial"], dtype=float))
        cum = np.cumsum(np.asarray(params["transition"], dtype=float), axis=1)
        for t in range(1, length):
            u = rng.uniform(size=(n, 1))
            z[:, t] = np.minimum((u > cum[z[:, t - 1]]).sum(axis=1), s - 1)
        flat = z.ravel()
        x = self.emission.sample(self._emission_params(params), flat, rng)
        return Sequences(x, np.full(n, length)), flat


# the classes latent_em.io may save and load
register_all(globals(), __all__, "builtin")
