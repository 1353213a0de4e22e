"""Compiled forward–backward for few, long sequences (Numba, imported lazily).

The NumPy forward–backward of :class:`~latent_em.HiddenMarkovModel` vectorizes over
sequences and loops over time in Python; for a single sequence of ``T`` steps that is
``T`` rounds of small array operations (~35 µs a step). This kernel runs the same
log-space recursions per sequence in compiled loops. It is used when Numba is installed
and the data have few sequences for their length; both paths are tested to agree.
"""

from __future__ import annotations

import functools
import importlib.util
import math
from typing import Any

import numpy as np

__all__ = ["numba_available", "forward_backward"]


def numba_available() -> bool:
    """Whether Numba can be imported (without importing it)."""
    return importlib.util.find_spec("numba") is not None


def _kernel_source(log_pi, log_a, log_b, offsets, lengths):  # pragma: no cover - compiled
    n_seq = lengths.shape[0]
    s = log_pi.shape[0]
    n_steps = log_b.shape[0]
    gamma = np.zeros((n_steps, s))
    trans = np.zeros((n_seq, s, s))
    entropy = np.zeros(n_seq)
    log_marginal = np.zeros(n_seq)
    for i in range(n_seq):
        start = offsets[i]
        t_len = lengths[i]
        alpha = np.empty((t_len, s))
        beta = np.zeros((t_len, s))
        for k in range(s):
            alpha[0, k] = log_pi[k] + log_b[start, k]
        tmp = np.empty(s)
        for t in range(1, t_len):
            for k in range(s):
                top = -np.inf
                for j in range(s):
                    tmp[j] = alpha[t - 1, j] + log_a[j, k]
                    if tmp[j] > top:
                        top = tmp[j]
                if top == -np.inf:
                    alpha[t, k] = -np.inf
                else:
                    acc = 0.0
                    for j in range(s):
                        acc += math.exp(tmp[j] - top)
                    alpha[t, k] = top + math.log(acc) + log_b[start + t, k]
        top = -np.inf
        for k in range(s):
            if alpha[t_len - 1, k] > top:
                top = alpha[t_len - 1, k]
        if top == -np.inf:
            log_marginal[i] = -np.inf
            for t in range(t_len):
                for k in range(s):
                    gamma[start + t, k] = 1.0 / s
            continue
        acc = 0.0
        for k in range(s):
            acc += math.exp(alpha[t_len - 1, k] - top)
        lm = top + math.log(acc)
        log_marginal[i] = lm
        for t in range(t_len - 2, -1, -1):
            for j in range(s):
                top = -np.inf
                for k in range(s):
                    tmp[k] = log_a[j, k] + log_b[start + t + 1, k] + beta[t + 1, k]
                    if tmp[k] > top:
                        top = tmp[k]
                if top == -np.inf:
                    beta[t, j] = -np.inf
                else:
                    acc = 0.0
                    for k in range(s):
                        acc += math.exp(tmp[k] - top)
                    beta[t, j] = top + math.log(acc)
        ent = 0.0
        for t in range(t_len):
            for k in range(s):
                g = math.exp(alpha[t, k] + beta[t, k] - lm)
                gamma[start + t, k] = g
                if t >= 1 and t <= t_len - 2 and g > 0.0:
                    ent += g * math.log(g)
        if t_len == 1:
            for k in range(s):
                g = gamma[start, k]
                if g > 0.0:
                    ent -= g * math.log(g)
        for t in range(t_len - 1):
            for j in range(s):
                for k in range(s):
                    xi = math.exp(
                        alpha[t, j] + log_a[j, k] + log_b[start + t + 1, k] + beta[t + 1, k] - lm
                    )
                    trans[i, j, k] += xi
                    if xi > 0.0:
                        ent -= xi * math.log(xi)
        entropy[i] = ent
    return gamma, trans, entropy, log_marginal


@functools.cache
def _compiled() -> Any:
    import numba  # noqa: PLC0415  (lazy: only when the kernel is used)

    return numba.njit(cache=True, error_model="numpy")(_kernel_source)


def forward_backward(
    log_pi: np.ndarray,
    log_a: np.ndarray,
    log_b: np.ndarray,
    offsets: np.ndarray,
    lengths: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Log-space forward–backward of every sequence.

    Parameters
    ----------
    log_pi : (S,)
        Log initial probabilities.
    log_a : (S, S)
        Log transition matrix.
    log_b : (n_steps, S)
        Log emission densities of the concatenated steps.
    offsets, lengths : (n_seq,)
        First step and length of every sequence.

    Returns
    -------
    gamma : (n_steps, S)
        State marginals (uniform for a sequence of probability zero).
    transitions : (n_seq, S, S)
        Summed pair marginals.
    entropy : (n_seq,)
        Entropy of each posterior chain.
    log_marginal : (n_seq,)
        ``log p(x_i)``.
    """
    return _compiled()(
        np.ascontiguousarray(log_pi, dtype=float),
        np.ascontiguousarray(log_a, dtype=float),
        np.ascontiguousarray(log_b, dtype=float),
        np.ascontiguousarray(offsets, dtype=np.int64),
        np.ascontiguousarray(lengths, dtype=np.int64),
    )
