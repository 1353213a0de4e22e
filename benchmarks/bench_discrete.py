"""Benchmark: EM iterations of the discrete mixtures, compiled kernels against the NumPy path.

Run from a checkout (needs threadpoolctl, from the ``test`` extra)::

    PYTHONPATH=. python benchmarks/bench_discrete.py                # everything
    PYTHONPATH=. python benchmarks/bench_discrete.py --quick        # smaller, smoke test
    PYTHONPATH=. python benchmarks/bench_discrete.py --only speed   # or: compile, small

What is measured
----------------
* speed: three problems of N = 200 000 rows drawn from a mixture of K = 10 components:
  a Bernoulli mixture with D = 50 binary items, a categorical mixture (latent class
  model) with 20 items of 4 categories, a Poisson mixture with D = 20 count columns.
  The same data and the same initial parameters for every path; ``tol=0`` and a fixed
  number of iterations. "compiled" is the models' fused ``e_step`` as shipped
  (``N·K ≥ COMPILED_MIN_SIZE``); "numpy" is the same model with ``COMPILED_MIN_SIZE``
  raised above ``N·K`` (``log_weighted_densities`` + ``posterior_from_table`` +
  ``expected_stats``, BLAS products), as shipped: the model's ``fit_context`` holds
  BLAS at one thread; "numpy-blas" (2 threads only) bypasses ``fit_context`` so that
  BLAS may use the thread limit. Under a thread limit of 1 and 2 (``--threads``):
  ``LATENT_EM_NUM_THREADS`` for the kernels and threadpoolctl's limit on BLAS.
  Seconds per iteration: one run is ``1 + --iters`` iterations; its value is the
  median wall time of its iterations after the first, between consecutive E-steps (the
  driver's ``callback``: one M-step + one E-step + the driver's bookkeeping).
  ``--runs`` runs of the paths alternate; the table gives the median over runs with
  the range [min-max], the per-run ratio to the compiled path, and the CPU seconds per
  iteration (``time.process_time``, all threads of the process; on a shared machine
  this counts the work, not the waiting for a core).
* compile: the first-call cost of each kernel (``first E-step - a later one``,
  N = 20 000, one thread), each model in a fresh process, cold (an empty
  ``NUMBA_CACHE_DIR``) and from Numba's cache (a second process, same directory), and
  ``import numba`` alone. The first use of Numba in a process costs ~0.1-0.2 s whatever
  the kernel (Numba loads its registries, importing scipy.linalg); a third process
  runs another cached kernel first to give the kernel's own load from the cache.
  Bernoulli and Poisson share one kernel (the same compiled specialization), so in a
  process that ran one the other costs nothing.
* small: CPU seconds per E-step of both paths for N·K from 10⁴ to 10⁵ at one thread,
  which is where the threshold ``COMPILED_MIN_SIZE`` sits.

The machine is shared: the load average is printed before and after each part.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

import latent_em
from latent_em import compiled
from latent_em.models import (
    BernoulliMixtureModel,
    CategoricalMixtureModel,
    PoissonMixtureModel,
)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_gmm import machine_description  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
K = 10


def make_problem(name: str, n: int, seed: int = 0):
    """``(model, data checked by the model, initial parameters)`` of a named problem."""
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.full(K, 5.0))
    z = rng.choice(K, size=n, p=weights)
    if name == "bernoulli":
        probs = rng.uniform(0.1, 0.9, size=(K, 50))
        x = (rng.random((n, 50)) < probs[z]).astype(np.int8)
        model = BernoulliMixtureModel(K)
    elif name == "categorical":
        tables = [rng.dirichlet(np.ones(4), size=K) for _ in range(20)]
        cdfs = [np.cumsum(t, axis=1) for t in tables]
        u = rng.random((n, 20))
        x = np.stack([(u[:, j, None] > cdfs[j][z]).sum(axis=1) for j in range(20)], axis=1)
        x = np.minimum(x, 3)
        model = CategoricalMixtureModel(K, n_categories=(4,) * 20)
    elif name == "poisson":
        rates = rng.gamma(2.0, 2.0, size=(K, 20))
        x = rng.poisson(rates[z])
        model = PoissonMixtureModel(K)
    else:
        raise ValueError(name)
    x = model.check_data(x)
    return model, x, model.initialize(x, np.random.default_rng(seed + 1))


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def _thread_limit(threads: int):
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=threads)


#: the paths timed: the compiled kernels; the NumPy path as shipped (the model's
#: ``fit_context`` holds BLAS at one thread); the NumPy path with BLAS free to use the
#: thread limit (``fit_context`` bypassed), its best case on an idle machine
PATHS = ("compiled", "numpy", "numpy-blas")


def time_fit(model, x, start, iters: int, path: str, threads: int) -> tuple[float, float]:
    """Median wall and CPU seconds per iteration of one run (the first iteration left out)."""
    compiled.COMPILED_MIN_SIZE = 100_000 if path == "compiled" else np.inf
    os.environ[compiled.THREADS_VARIABLE] = str(threads)
    wall: list[float] = []
    cpu: list[float] = []

    def stamp(*_):
        wall.append(time.perf_counter())
        cpu.append(time.process_time())

    cls = type(model)
    shipped = cls.fit_context
    if path == "numpy-blas":
        cls.fit_context = lambda self: contextlib.nullcontext()
    try:
        with _thread_limit(threads), warnings.catch_warnings():
            warnings.simplefilter("ignore", latent_em.ConvergenceWarning)
            latent_em.fit(model, x, params=start, max_iter=iters + 1, tol=0.0, callback=stamp)
    finally:
        cls.fit_context = shipped
    if path == "numpy-blas":
        # OpenBLAS threads woken by this run spin for ~0.1 s (THREAD_TIMEOUT) and would
        # be counted in the CPU time of the next run
        time.sleep(0.5)
    return float(np.median(np.diff(wall)[1:])), float(np.median(np.diff(cpu)[1:]))


def _spread(values) -> str:
    values = np.asarray(values)
    return f"{np.median(values):.4f} [{values.min():.4f}-{values.max():.4f}]"


def bench_speed(args) -> None:
    print(f"\nspeed: seconds per EM iteration, N = {args.n}, K = {K}; {load()}")
    print(
        "wall s/iter: median [min-max] over runs; ratio: per run, the path's time / the "
        "compiled time; cpu: median CPU s/iter (process_time, all threads)"
    )
    print(
        f"{'problem':12s} {'thr':>3s} {'path':11s} {'wall s/iter':>24s} "
        f"{'ratio to compiled':>20s} {'cpu s/iter':>10s}"
    )
    for name in ("bernoulli", "categorical", "poisson"):
        model, x, start = make_problem(name, args.n)
        time_fit(model, x, start, 1, "compiled", 1)  # compile (or load) before timing
        wall = {(t, p): [] for t in args.threads for p in PATHS}
        cpu = {(t, p): [] for t in args.threads for p in PATHS}
        for _ in range(args.runs):
            for threads in args.threads:
                for path in PATHS:
                    if path == "numpy-blas" and threads == 1:
                        continue  # the same as "numpy"
                    w, c = time_fit(model, x, start, args.iters, path, threads)
                    wall[threads, path].append(w)
                    cpu[threads, path].append(c)
        for threads in args.threads:
            base = np.asarray(wall[threads, "compiled"])
            for path in PATHS:
                if not wall[threads, path]:
                    continue
                ratio = np.asarray(wall[threads, path]) / base
                print(
                    f"{name:12s} {threads:3d} {path:11s} {_spread(wall[threads, path]):>24s} "
                    f"{np.median(ratio):7.2f} [{ratio.min():.2f}-{ratio.max():.2f}] "
                    f"{np.median(cpu[threads, path]):10.4f}",
                    flush=True,
                )
        if len(args.threads) > 1:
            first, second = args.threads[:2]
            gain = np.asarray(wall[first, "compiled"]) / np.asarray(wall[second, "compiled"])
            print(
                f"{'':12s} compiled, {first} -> {second} threads: {np.median(gain):.2f}x "
                f"[{gain.min():.2f}-{gain.max():.2f}] faster (per run pair)"
            )
    compiled.COMPILED_MIN_SIZE = 100_000
    print(f"after speed: {load()}")


_COMPILE = r"""
import json, sys, time
t = time.perf_counter()
import numba
import_numba = time.perf_counter() - t
sys.path.insert(0, sys.argv[2])
import numpy as np
if sys.argv[3] == "1":
    # Numba already initialized in this process (by another cached kernel): the load of
    # this model's kernel alone
    from latent_em.compiled import exp_nonpositive
    exp_nonpositive(np.zeros(1))
from bench_discrete import make_problem
model, x, params = make_problem(sys.argv[1], 20_000)
w = np.ones(len(x))
times = []
for _ in range(3):
    t = time.perf_counter()
    model.e_step(params, x, w)
    times.append(time.perf_counter() - t)
print(json.dumps({"first": times[0], "steady": min(times[1:]), "import_numba": import_numba}))
"""


def bench_compile(args) -> None:
    env = dict(
        os.environ,
        PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
        LATENT_EM_NUM_THREADS="1",
    )
    print(
        "\ncompile time of the kernel one fit needs (first E-step minus a later one, "
        f"N = 20 000, K = {K}, one thread), each in a fresh process; {load()}"
    )
    print(
        "(cached: includes Numba's first use in the process, which loads its registries "
        "and imports scipy.linalg; the last column is the kernel's own load from the cache, "
        "in a process where another cached kernel ran first)"
    )
    print(
        f"{'problem':12s} {'cold s':>8s} {'cached s':>9s} {'import numba s':>15s} "
        f"{'cached s, kernel alone':>23s}"
    )
    here = os.path.dirname(os.path.abspath(__file__))
    for name in ("bernoulli", "categorical", "poisson"):
        colds, cacheds, warms = [], [], []
        for _ in range(args.compile_repeats):
            with tempfile.TemporaryDirectory() as cache:
                out = []
                for pre in ("0", "0", "1"):  # cold, then from the cache (twice)
                    proc = subprocess.run(
                        [sys.executable, "-c", _COMPILE, name, here, pre],
                        env=dict(env, NUMBA_CACHE_DIR=cache),
                        check=True,
                        capture_output=True,
                        text=True,
                    )
                    out.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            colds.append(out[0]["first"] - out[0]["steady"])
            cacheds.append(out[1]["first"] - out[1]["steady"])
            warms.append(out[2]["first"] - out[2]["steady"])
        print(
            f"{name:12s} {np.median(colds):8.2f} {np.median(cacheds):9.3f} "
            f"{out[1]['import_numba']:15.3f} {np.median(warms):23.3f}   (median of "
            f"{len(colds)}; cold {min(colds):.2f}-{max(colds):.2f}, cached "
            f"{min(cacheds):.3f}-{max(cacheds):.3f}, {min(warms):.3f}-{max(warms):.3f})",
            flush=True,
        )
    print(f"after compile: {load()}")


def bench_small(args) -> None:
    print(f"\nsmall: CPU seconds per E-step at one thread, K = {K}; {load()}")
    print(
        f"{'problem':12s} {'N':>7s} {'N·K':>8s} {'compiled s':>11s} {'numpy s':>9s} {'ratio':>6s}"
    )
    os.environ[compiled.THREADS_VARIABLE] = "1"
    with _thread_limit(1):
        for name in ("bernoulli", "categorical", "poisson"):
            for n in (1_000, 3_000, 10_000):
                model, x, params = make_problem(name, n)
                w = np.ones(n)
                out = []
                for use_kernel in (True, False):
                    compiled.COMPILED_MIN_SIZE = 0 if use_kernel else np.inf
                    model.e_step(params, x, w)
                    times = []
                    for _ in range(args.small_repeats):
                        t = time.process_time()
                        model.e_step(params, x, w)
                        times.append(time.process_time() - t)
                    out.append(float(np.median(times)))
                print(
                    f"{name:12s} {n:7d} {n * K:8d} {out[0]:11.2e} {out[1]:9.2e} "
                    f"{out[1] / out[0]:6.1f}",
                    flush=True,
                )
    compiled.COMPILED_MIN_SIZE = 100_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (smoke test)")
    parser.add_argument("--only", choices=["speed", "compile", "small"], default=None)
    parser.add_argument("--iters", type=int, default=5, help="timed EM iterations per run")
    parser.add_argument("--runs", type=int, default=3, help="alternating runs per path")
    parser.add_argument("--compile-repeats", type=int, default=2)
    parser.add_argument("--small-repeats", type=int, default=21)
    parser.add_argument(
        "--threads",
        type=lambda s: [int(t) for t in s.split(",")],
        default=[1, 2],
        help="thread limits to run the speed test under, e.g. 1,2",
    )
    args = parser.parse_args()
    args.n = 20_000 if args.quick else 200_000
    print(time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()))
    print("machine:", json.dumps(machine_description(), indent=1))
    print(f"latent_em {latent_em.__version__}, COMPILED_MIN_SIZE = {compiled.COMPILED_MIN_SIZE}")
    if args.only in (None, "speed"):
        bench_speed(args)
    if args.only in (None, "compile"):
        bench_compile(args)
    if args.only in (None, "small"):
        bench_small(args)


if __name__ == "__main__":
    main()
