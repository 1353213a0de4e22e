"""The estimators' ``fit(..., callback=...)``: what the callback sees, over every estimator.

Laws: the callback is called after every E-step of every restart, with ``iteration``
counting 0, 1, 2, ... in each of the ``n_init`` restarts; the best restart's objectives are
the fit's ``history_``; a callback observes and does not change the fit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import latent_em
from latent_em.datasets import load_carcinoma, load_faithful


def _counts() -> np.ndarray:
    rng = np.random.default_rng(5)
    rates = np.array([[1.0, 6.0], [8.0, 2.0]])
    return rng.poisson(rates[rng.integers(0, 2, size=200)])


#: (estimator class, data): every built-in estimator with data it accepts
ESTIMATORS: list[tuple[type, Callable[[], Any]]] = [
    (latent_em.GaussianMixture, load_faithful),
    (latent_em.BernoulliMixture, lambda: load_carcinoma() - 1),
    (latent_em.CategoricalMixture, load_carcinoma),
    (latent_em.PoissonMixture, _counts),
]
IDS = [cls.__name__ for cls, _ in ESTIMATORS]


def _split_restarts(calls: list[tuple[int, float]]) -> list[list[tuple[int, float]]]:
    runs: list[list[tuple[int, float]]] = []
    for iteration, objective in calls:
        if iteration == 0:
            runs.append([])
        runs[-1].append((iteration, objective))
    return runs


@pytest.mark.parametrize(("cls", "data"), ESTIMATORS, ids=IDS)
def test_callback_sees_every_e_step_of_every_restart(cls, data):
    x = data()
    calls: list[tuple[int, float]] = []

    def record(iteration: int, params: Any, objective: float) -> None:
        assert isinstance(params, tuple) and hasattr(params, "_fields")
        calls.append((iteration, objective))

    est = cls(2, n_init=3, random_state=0).fit(x, callback=record)
    runs = _split_restarts(calls)
    assert calls[0][0] == 0 and len(runs) == 3
    for run in runs:
        assert [i for i, _ in run] == list(range(len(run)))
    best = runs[est.result_.best_restart]
    assert len(best) == est.n_iter_ + 1
    np.testing.assert_array_equal([obj for _, obj in best], est.history_)


@pytest.mark.parametrize(("cls", "data"), ESTIMATORS, ids=IDS)
def test_callback_does_not_change_the_fit(cls, data):
    x = data()
    plain = cls(2, n_init=2, random_state=1).fit(x)
    seen: list[int] = []
    labels = cls(2, n_init=2, random_state=1).fit_predict(
        x, callback=lambda i, params, objective: seen.append(i)
    )
    assert seen.count(0) == 2
    np.testing.assert_array_equal(labels, plain.predict(x))


def test_callback_is_not_a_constructor_parameter(faithful, tmp_path):
    # a callable is neither a hyper-parameter nor saveable: it stays out of get_params
    est = latent_em.GaussianMixture(2, random_state=0)
    est.fit(faithful, callback=lambda *args: None)
    assert "callback" not in est.get_params()
    est.save(tmp_path / "gm.json")
