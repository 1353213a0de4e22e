"""Plain EM versus SQUAREM: E-step passes and wall time to the same log-likelihood.

Run from the repository root::

    PYTHONPATH=. python benchmarks/bench_squarem.py [--repeat 3]

For every problem a reference ``L*`` is the best of plain EM and SQUAREM run to
``tol=1e-13``; each method then starts from the same initial parameters and is timed
until its objective first reaches ``L* - 1e-8 |L*|`` (a callback stops the fit there).
E-step passes are counted by the models themselves (in ``posterior``, or in the fused
``e_step`` of the Gaussian mixture), not taken from the driver. Wall times are the minimum over
``--repeat`` runs. Problems:

* ``poisson-hasselblad``: the classic slow example of Varadhan & Roland (2008),
  Hasselblad's (1969) death-notice counts (1096 days);
* ``poisson-close``: two-component Poisson mixture, rates 3 and 4 (slow: the
  components overlap almost completely);
* ``gmm-overlap``: two-component bivariate Gaussian mixture, means one SD apart;
* ``exponential-close``: the two-exponential mixture of :mod:`latent_em.protocols`
  with means 1 and 2 (a custom model);
* ``hmm-gallery``: the categorical hidden Markov model of ``models/hidden_markov.py``
  (200 sequences of length 20);
* ``gmm-separated``: three well-separated bivariate Gaussians (fast: EM converges in a
  handful of steps).
"""

from __future__ import annotations

import argparse
import os

# one BLAS thread: the problems are small and the machine is shared
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Any, NamedTuple  # noqa: E402

import numpy as np  # noqa: E402
from scipy.special import gammaln, logsumexp  # noqa: E402

import latent_em  # noqa: E402
from latent_em.constraints import Positive, Simplex  # noqa: E402

TARGET_RTOL = 1e-8


class MixParams(NamedTuple):
    weights: np.ndarray  # (K,)
    rates: np.ndarray  # (K,)


class MixStats(NamedTuple):
    counts: np.ndarray  # Σ_n w_n r_nk
    sum_x: np.ndarray  # Σ_n w_n r_nk x_n


class _Counted:
    """Counts E-steps: the driver calls ``posterior`` once per pass over the data."""

    def __init__(self) -> None:
        self.calls = 0

    def log_table(self, params: Any, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def posterior(self, params: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.calls += 1
        table = self.log_table(params, x)
        lm = logsumexp(table, axis=1)
        return np.exp(table - lm[:, None]), lm

    def latent_support(self) -> np.ndarray:
        return np.arange(2)

    def log_joint(self, params: Any, x: np.ndarray, z: np.ndarray) -> np.ndarray:
        return self.log_table(params, x)[np.arange(len(x)), z]

    @property
    def constraints(self) -> dict[str, Any]:
        return {"weights": Simplex(), "rates": Positive()}

    def expected_stats(
        self, params: Any, x: np.ndarray, posterior: np.ndarray, weights: np.ndarray
    ) -> MixStats:
        r = posterior * weights[:, None]
        return MixStats(r.sum(axis=0), r.T @ x)


class PoissonMixture(_Counted):
    """``p(x) = Σ_k φ_k Poisson(x; λ_k)``; M-step ``λ_k = Σ r x / Σ r``."""

    def initialize(self, x: np.ndarray, rng: np.random.Generator) -> MixParams:
        return MixParams(np.array([0.5, 0.5]), np.quantile(x, [0.25, 0.75]) + 0.1)

    def log_table(self, params: MixParams, x: np.ndarray) -> np.ndarray:
        lam = params.rates
        return np.log(params.weights) + x[:, None] * np.log(lam) - lam - gammaln(x + 1)[:, None]

    def m_step(self, params: MixParams, stats: MixStats) -> MixParams:
        return MixParams(stats.counts / stats.counts.sum(), stats.sum_x / stats.counts)


class ExponentialMixture(_Counted):
    """``p(x) = Σ_k φ_k λ_k exp(-λ_k x)``; M-step ``λ_k = Σ r / Σ r x``."""

    def initialize(self, x: np.ndarray, rng: np.random.Generator) -> MixParams:
        return MixParams(np.array([0.5, 0.5]), 1.0 / np.quantile(x, [0.25, 0.75]))

    def log_table(self, params: MixParams, x: np.ndarray) -> np.ndarray:
        lam = params.rates
        return np.log(params.weights) + np.log(lam) - x[:, None] * lam

    def m_step(self, params: MixParams, stats: MixStats) -> MixParams:
        return MixParams(stats.counts / stats.counts.sum(), stats.counts / stats.sum_x)


class CountedGMM(latent_em.GaussianMixtureModel):
    """The built-in Gaussian mixture with an E-step counter.

    The driver runs its fused E-step (``e_step``) once per pass over the data (on the
    first pass it is the check against ``posterior`` + ``expected_stats``), so counting
    ``e_step`` counts passes.
    """

    def e_step(self, params: Any, x: np.ndarray, weights: np.ndarray) -> Any:
        object.__setattr__(self, "calls", getattr(self, "calls", 0) + 1)
        return super().e_step(params, x, weights)


def _gallery_hmm() -> tuple[Any, np.ndarray]:
    """The categorical hidden Markov model of ``models/hidden_markov.py``, counted."""
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
    import hidden_markov

    class CountedHMM(hidden_markov.CategoricalHMM):
        def posterior(self, params: Any, x: Any) -> Any:
            object.__setattr__(self, "calls", getattr(self, "calls", 0) + 1)
            return super().posterior(params, x)

    model = CountedHMM(2, 3)
    x, _ = model.sample(hidden_markov.TRUE_PARAMS, 200, np.random.default_rng(5), length=20)
    return model, x


def problems() -> dict[str, tuple[Any, np.ndarray]]:
    rng = np.random.default_rng(2026)
    poisson = np.concatenate([rng.poisson(3.0, 1200), rng.poisson(4.0, 800)]).astype(float)
    overlap = np.concatenate([rng.normal(size=(1000, 2)), rng.normal(size=(1000, 2)) + [1.0, 0.0]])
    expo = np.concatenate([rng.exponential(1.0, 1000), rng.exponential(2.0, 1000)])
    separated = np.concatenate(
        [rng.normal(size=(500, 2)) * 0.5 + c for c in ([0, 0], [6, 0], [0, 6])]
    )
    # Hasselblad (1969): deaths per day, expanded to one row per day
    hasselblad = np.repeat(np.arange(10.0), [162, 267, 271, 185, 111, 61, 27, 8, 3, 1])
    return {
        "poisson-hasselblad": (PoissonMixture(), hasselblad),
        "poisson-close": (PoissonMixture(), poisson),
        "gmm-overlap": (CountedGMM(2, covariance_type="full"), overlap),
        "exponential-close": (ExponentialMixture(), expo),
        "hmm-gallery": _gallery_hmm(),
        # random data points as initial means, so that EM has some work to do
        "gmm-separated": (
            CountedGMM(3, covariance_type="full", init_params="random_from_data"),
            separated,
        ),
    }


class _Reached(Exception):
    pass


def time_to_target(
    model: Any, x: np.ndarray, start: Any, target: float, accelerate: Any
) -> tuple[int, float]:
    """E-step passes and seconds until the objective first reaches ``target``."""

    def stop_at_target(iteration: int, params: Any, objective: float) -> None:
        if objective >= target:
            raise _Reached

    object.__setattr__(model, "calls", 0)
    t0 = time.perf_counter()
    try:
        latent_em.fit(
            model,
            x,
            params=start,
            tol=0.0,
            max_iter=1_000_000,
            accelerate=accelerate,
            callback=stop_at_target,
            warn_not_converged=False,
        )
    except _Reached:
        return int(model.calls), time.perf_counter() - t0
    raise RuntimeError("the target log-likelihood was not reached")


def machine() -> str:
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    return (
        f"{platform.node()} | {platform.platform()} | {platform.processor() or platform.machine()}"
        f" | {os.cpu_count()} CPUs | load {load[0]:.2f} | Python {sys.version.split()[0]} | "
        f"numpy {np.__version__}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="timing repeats (min is kept)")
    args = parser.parse_args(argv)
    print(f"machine: {machine()}")
    print(f"target: L* - {TARGET_RTOL:g} |L*|, same start for both methods")
    header = (
        f"{'problem':<19} {'L*':>14} {'EM evals':>9} {'SQ evals':>9} {'ratio':>7} "
        f"{'EM s':>8} {'SQ s':>8} {'speedup':>8}"
    )
    print(header)
    for name, (model, x) in problems().items():
        start = model.initialize(x, np.random.default_rng(1))
        refs = [
            latent_em.fit(
                model, x, params=start, tol=1e-13, max_iter=1_000_000, accelerate=acc
            ).log_likelihood
            for acc in (None, "squarem")
        ]
        best = max(refs)
        target = best - TARGET_RTOL * abs(best)
        results = {}
        for acc in (None, "squarem"):
            runs = [time_to_target(model, x, start, target, acc) for _ in range(args.repeat)]
            results[acc] = (runs[0][0], min(t for _, t in runs))
        (em_n, em_t), (sq_n, sq_t) = results[None], results["squarem"]
        print(
            f"{name:<19} {best:14.6f} {em_n:9d} {sq_n:9d} {em_n / sq_n:7.1f} "
            f"{em_t:8.4f} {sq_t:8.4f} {em_t / sq_t:8.1f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
