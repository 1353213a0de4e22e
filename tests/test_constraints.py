"""Parameter constraints: round trips, domains, vector-Jacobian products, flattening.

Oracles: the defining properties of each set (a simplex sums to one, a Cholesky product
is symmetric positive definite, ...) and central finite differences for the VJPs.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest

from latent_em.constraints import (
    CholeskyCov,
    Interval,
    Ordered,
    Positive,
    PositiveDefinite,
    Real,
    Simplex,
    count_free_parameters,
    flatten_params,
    unflatten_params,
    unflatten_params_vjp,
)

CASES = [
    (Real(), (3, 2)),
    (Positive(), (4,)),
    (Interval(-2.0, 5.0), (3,)),
    (Simplex(), (4,)),
    (Simplex(), (3, 5)),  # a batch of 3 probability vectors
    (PositiveDefinite(), (3, 3)),
    (CholeskyCov(), (2, 3, 3)),
    (Ordered(), (5,)),
    (Ordered(), (2, 4)),
]


@pytest.mark.parametrize(("constraint", "shape"), CASES, ids=lambda c: repr(c))
def test_round_trip_from_free_values(constraint, shape, rng):
    for _ in range(5):
        u = rng.normal(scale=1.5, size=constraint.free_size(shape))
        value = constraint.constrain(u, shape)
        assert value.shape == shape
        np.testing.assert_allclose(constraint.unconstrain(value), u, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(("constraint", "shape"), CASES, ids=lambda c: repr(c))
def test_values_lie_in_the_constrained_set(constraint, shape, rng):
    u = rng.normal(scale=2.0, size=constraint.free_size(shape))
    v = constraint.constrain(u, shape)
    if isinstance(constraint, Positive):
        assert np.all(v > 0)
    elif isinstance(constraint, Interval):
        assert np.all((v > constraint.low) & (v < constraint.high))
    elif isinstance(constraint, Simplex):
        assert np.all(v > 0)
        np.testing.assert_allclose(v.sum(axis=-1), 1.0, rtol=1e-12)
    elif isinstance(constraint, PositiveDefinite):
        np.testing.assert_allclose(v, np.swapaxes(v, -1, -2), rtol=1e-12)
        assert np.all(np.linalg.eigvalsh(v) > 0)
    elif isinstance(constraint, Ordered):
        assert np.all(np.diff(v, axis=-1) > 0)


def test_round_trip_from_constrained_values():
    p = np.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    np.testing.assert_allclose(Simplex().constrain(Simplex().unconstrain(p), p.shape), p)
    cov = np.array([[2.0, 0.3], [0.3, 1.0]])
    back = PositiveDefinite().constrain(PositiveDefinite().unconstrain(cov), cov.shape)
    np.testing.assert_allclose(back, cov, rtol=1e-12)
    x = np.array([-1.0, 0.5, 4.0])
    np.testing.assert_allclose(Ordered().constrain(Ordered().unconstrain(x), x.shape), x)


@pytest.mark.parametrize(
    ("constraint", "shape", "free"),
    [
        (Simplex(), (3, 5), 12),
        (PositiveDefinite(), (4, 4), 10),
        (Ordered(), (6,), 6),
        (Positive(), (2, 3), 6),
    ],
)
def test_free_size(constraint, shape, free):
    assert constraint.free_size(shape) == free


def _numeric_vjp(constraint, u, shape, g, h=1e-6):
    out = np.empty_like(u)
    for i in range(u.size):
        up, down = u.copy(), u.copy()
        up[i] += h
        down[i] -= h
        out[i] = np.sum(g * (constraint.constrain(up, shape) - constraint.constrain(down, shape)))
        out[i] /= 2 * h
    return out


@pytest.mark.parametrize(("constraint", "shape"), CASES, ids=lambda c: repr(c))
def test_vjp_matches_finite_differences(constraint, shape, rng):
    u = rng.normal(size=constraint.free_size(shape))
    g = rng.normal(size=shape)
    np.testing.assert_allclose(
        constraint.constrain_vjp(u, shape, g),
        _numeric_vjp(constraint, u, shape, g),
        rtol=1e-6,
        atol=1e-7,
    )


class _Params(NamedTuple):
    weights: np.ndarray
    tables: tuple
    fixed: np.ndarray


def test_flatten_unflatten_and_vjp_over_a_parameter_tree(rng):
    constraints = {"weights": Simplex(), "tables": Simplex()}
    params = _Params(
        np.array([0.2, 0.8]),
        (np.array([[0.5, 0.5], [0.1, 0.9]]), np.array([[0.2, 0.3, 0.5], [0.3, 0.3, 0.4]])),
        np.array([7.0]),
    )
    u = flatten_params(params, constraints)
    assert u.size == count_free_parameters(params, constraints) == 1 + 2 + 4
    back = unflatten_params(u, params, constraints)
    np.testing.assert_allclose(back.weights, params.weights)
    np.testing.assert_allclose(back.tables[1], params.tables[1])
    assert back.fixed is params.fixed  # unconstrained fields are copied, not changed

    # a scalar f(θ) = Σ c ⊙ θ has gradient c w.r.t. θ: the VJP must equal ∂f/∂u numerically
    cot = {
        "weights": rng.normal(size=2),
        "tables": (rng.normal(size=(2, 2)), rng.normal(size=(2, 3))),
    }

    def f(v):
        p = unflatten_params(v, params, constraints)
        return float(
            cot["weights"] @ p.weights
            + np.sum(cot["tables"][0] * p.tables[0])
            + np.sum(cot["tables"][1] * p.tables[1])
        )

    h = 1e-6
    numeric = np.array([(f(u + h * e) - f(u - h * e)) / (2 * h) for e in np.eye(u.size)])
    np.testing.assert_allclose(
        unflatten_params_vjp(u, params, constraints, cot), numeric, rtol=1e-6, atol=1e-8
    )


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="low < high"):
        Interval(1.0, 0.0)
    with pytest.raises(ValueError, match="expected 2 free values"):
        Simplex().constrain(np.zeros(3), (3,))
    with pytest.raises(ValueError, match="cotangent must have shape"):
        Positive().constrain_vjp(np.zeros(2), (2,), np.zeros(3))
    with pytest.raises(ValueError, match="at least 2 dimension"):
        PositiveDefinite().free_size((3,))
    with pytest.raises(ValueError, match="square"):
        PositiveDefinite().free_size((2, 3))
