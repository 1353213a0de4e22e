"""Benchmark: Gaussian mixture EM, latent_em against scikit-learn, plus scaling and
out-of-core memory.

Run from a checkout (needs scikit-learn and threadpoolctl, from the ``test`` extra)::

    PYTHONPATH=. python benchmarks/bench_gmm.py            # everything (~5 min on 2 cores)
    PYTHONPATH=. python benchmarks/bench_gmm.py --quick    # smaller, for a smoke test
    PYTHONPATH=. python benchmarks/bench_gmm.py --only speed   # or: scaling, ooc, profile

What is measured
----------------
* speed: N = 200 000, D = 16, K = 16, covariance "full" and "diag", float64 and float32.
  Same data and same initial parameters for both libraries (scikit-learn gets them as
  ``weights_init``/``means_init``/``precisions_init`` with the cheap
  ``init_params="random_from_data"``), ``tol=0`` and a fixed number of iterations.
  Seconds per iteration: the median, over ``--repeats`` runs of ``1 + --iters``
  iterations with the first iteration of each run left out, of the wall time of one
  iteration (M-step + E-step), as each library measures it: between consecutive
  E-steps (the driver's ``callback``) for latent_em, scikit-learn's own per-iteration
  "time lapse" (``verbose=2, verbose_interval=1``). Initialization, input validation
  and final E-steps are outside both. (Earlier versions subtracted a 1-iteration fit
  from a longer one; on this shared machine the 1-iteration fit alone varied by
  ±0.3 s, which made per-iteration numbers unreliable.) Both libraries run under the
  same BLAS thread limit (1 thread and the machine's default). "GFLOP/s" and
  "% matmul" count the floating-point work latent_em's kernels actually do
  (``flops_done``: 4·N·K·P for the two products, with P = (D+1)(D+2)/2 rows for full
  and 2D+1 for diag, plus features and normalization), all in float64 whatever the
  data's dtype, against the float64 matrix-multiply throughput measured in the same
  run and thread setting. "effective" divides the textbook algorithm's work (full:
  4·N·K·D² + 3·N·K·D; diag: 8·N·K·D + 3·N·K, what scikit-learn does) by our time: it
  is not a throughput, and is printed only to compare with earlier reports.
* scaling: seconds per iteration and the peak of memory allocated during one iteration
  (tracemalloc, beyond the data) for N = 10⁴ .. 10⁶ with ``chunk_size=65 536``.
* ooc: a float32 ``.npy`` file of N = 10⁷ rows x 8 columns is written by one child
  process and fitted from its path by another (``K = 8``, full, float32); the child's
  peak resident memory (``VmHWM``) is printed. The data alone are 320 MB on disk.
* profile: cProfile of latent_em's E-step phases (features + density product in
  ``table`` and ``_features``, normalization in ``log_normalize``, the moment product
  in ``accumulate``).

OpenBLAS on some processors here honours OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE, which
slow a current NumPy; unset both together for the benchmark command only
(``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python ...``). The kernel actually used
is printed from threadpoolctl.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import os
import platform
import pstats
import re
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
import warnings

import numpy as np

import latent_em
from latent_em.models import GaussianMixtureModel

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ----------------------------------------------------------------------- machine


def machine_description() -> dict:
    info: dict = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        info["cpu"] = platform.processor()
    try:
        info["load_average"] = os.getloadavg()
    except OSError:
        pass
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS"):
        info[var] = os.environ.get(var, "(unset)")
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = [
            {k: p.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
            for p in threadpool_info()
            if p.get("user_api") == "blas"
        ]
    except ImportError:
        info["blas"] = "threadpoolctl not installed"
    return info


def matmul_gflops(dtype: type, n: int = 1500, repeats: int = 5) -> float:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2.0 * n**3 / best / 1e9


# ----------------------------------------------------------------------- data


def make_data(n: int, d: int, k: int, seed: int = 0) -> np.ndarray:
    """K Gaussian clusters with random correlated covariances (overlapping a little)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=2.0, size=(k, d))
    factors = rng.normal(scale=0.3, size=(k, d, d)) + np.eye(d)
    labels = rng.integers(k, size=n)
    x = np.empty((n, d))
    for j in range(k):
        rows = labels == j
        x[rows] = centers[j] + rng.standard_normal((int(rows.sum()), d)) @ factors[j]
    return x


def start_params(x: np.ndarray, k: int, covariance_type: str):
    # one cheap initialization shared by both libraries (random data points as means)
    model = GaussianMixtureModel(k, covariance_type, init_params="random_from_data")
    return model.initialize(x[:50_000], np.random.default_rng(1))


def flops_per_iteration(n: int, d: int, k: int, covariance_type: str) -> float:
    """The textbook algorithm's work (what scikit-learn does): the *nominal* FLOP."""
    if covariance_type == "full":
        # whitening product 2NKD² + squared norms 2NKD; weighting NKD; moments 2NKD²
        return 4.0 * n * k * d * d + 3.0 * n * k * d
    # diag: distance product 2NK(2D) + moment product 2NK(2D); exp/normalize ~3NK
    return 8.0 * n * k * d + 3.0 * n * k


def flops_done(n: int, d: int, k: int, covariance_type: str) -> float:
    """The floating-point work latent_em's kernels actually do per iteration.

    Both kernels write a block as P rows ``[x - c, 1, features]`` and do two products
    ``(K, P) @ (P, B)`` and ``(K, B) @ (B, P)``: 4·N·K·P; plus forming the features and
    ~6·N·K for the normalization (max, subtract, clip, exp, sum, scale).
    """
    if covariance_type == "full":
        p, features = (d + 1) * (d + 2) // 2, d * (d + 1) // 2
    else:
        p, features = 2 * d + 1, d
    return 4.0 * n * k * p + n * (features + d) + 6.0 * n * k


# ----------------------------------------------------------------------- timing


def _per_iteration(lapses: list[float]) -> float:
    """Median seconds per iteration, the first iteration of every run left out."""
    return float(np.median(lapses))


def time_latent_em(
    x, start, covariance_type, dtype, n_iter, repeats, chunk_size=None, n_threads=None
):
    """Seconds per EM iteration: the wall time between consecutive E-steps (the
    driver's ``callback``), i.e. one M-step plus one E-step plus the driver's
    bookkeeping; initialization, validation and the final E-step are outside."""
    model = GaussianMixtureModel(
        start.means.shape[0], covariance_type, dtype=dtype, n_threads=n_threads
    )
    xw = model.check_data(x)  # conversion to the working dtype is not timed
    lapses: list[float] = []
    for _ in range(repeats):
        stamps: list[float] = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", latent_em.ConvergenceWarning)
            latent_em.fit(
                model,
                xw,
                params=start,
                max_iter=n_iter + 1,
                tol=0.0,
                chunk_size=chunk_size,
                callback=lambda *_, stamps=stamps: stamps.append(time.perf_counter()),
            )
        lapses += np.diff(stamps)[1:].tolist()
    return _per_iteration(lapses)


_SKLEARN_LAPSE = re.compile(r"Iteration\s+(\d+)\s+time lapse\s+([0-9.]+)s")


def time_sklearn(x, start, covariance_type, dtype, n_iter, repeats):
    """Seconds per EM iteration as scikit-learn itself reports them (``verbose=2``,
    ``verbose_interval=1``: the time between the ends of consecutive iterations)."""
    from sklearn.mixture import GaussianMixture

    xw = np.ascontiguousarray(x, dtype=dtype)
    cov = start.covariances
    precisions = np.linalg.inv(cov) if covariance_type == "full" else 1.0 / cov
    lapses: list[float] = []
    for _ in range(repeats):
        out = io.StringIO()
        with warnings.catch_warnings(), contextlib.redirect_stdout(out):
            warnings.simplefilter("ignore")  # ConvergenceWarning at tol=0
            GaussianMixture(
                start.means.shape[0],
                covariance_type=covariance_type,
                weights_init=start.weights,
                means_init=start.means,
                precisions_init=precisions,
                init_params="random_from_data",
                max_iter=n_iter + 1,
                tol=0.0,
                verbose=2,
                verbose_interval=1,
            ).fit(xw)
        found = [(int(i), float(t)) for i, t in _SKLEARN_LAPSE.findall(out.getvalue())]
        if len(found) != n_iter + 1:
            raise RuntimeError(f"could not read scikit-learn's iteration times: {found}")
        lapses += [t for i, t in found if i > 1]
    return _per_iteration(lapses)


def _thread_limit(threads):
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=threads, user_api="blas")


def bench_speed(args) -> list[dict]:
    n, d, k = args.n, 16, 16
    x = make_data(n, d, k)
    rows = []
    for threads in args.threads:
        with _thread_limit(threads):
            peak = {dt: matmul_gflops(dt) for dt in (np.float64, np.float32)}
            print(
                f"\nthreads = {threads or 'default'} (scikit-learn: BLAS threads; latent_em: "
                "n_threads, BLAS single-threaded per block): measured matmul "
                f"{peak[np.float64]:.1f} GFLOP/s (float64), {peak[np.float32]:.1f} (float32)"
            )
            header = (
                f"{'cov':5s} {'dtype':8s} {'latent_em s/it':>15s} {'sklearn s/it':>13s} "
                f"{'speed-up':>9s} {'GFLOP/s':>8s} {'% matmul':>9s} {'effective':>10s}"
            )
            print(header)
            for cov in ("full", "diag"):
                start = start_params(x, k, cov)
                for dtype in (np.float64, np.float32):
                    ours = time_latent_em(
                        x, start, cov, dtype, args.iters, args.repeats, n_threads=threads
                    )
                    theirs = time_sklearn(x, start, cov, dtype, args.iters, args.repeats)
                    # work actually done, in float64 whatever the data's dtype
                    gflops = flops_done(n, d, k, cov) / ours / 1e9
                    pct = 100.0 * gflops / peak[np.float64]
                    effective = flops_per_iteration(n, d, k, cov) / ours / 1e9
                    print(
                        f"{cov:5s} {np.dtype(dtype).name:8s} {ours:15.4f} {theirs:13.4f} "
                        f"{theirs / ours:8.1f}x {gflops:8.1f} {pct:8.0f}% {effective:10.1f}",
                        flush=True,
                    )
                    rows.append(
                        dict(
                            threads=threads,
                            cov=cov,
                            dtype=np.dtype(dtype).name,
                            latent_em=ours,
                            sklearn=theirs,
                            speedup=theirs / ours,
                            gflops=gflops,
                            effective_gflops=effective,
                            matmul_gflops=peak[np.float64],
                        )
                    )
    return rows


def bench_scaling(args) -> None:
    d, k = 16, 16
    sizes = [10_000, 30_000, 100_000, 300_000, 1_000_000]
    if args.quick:
        sizes = sizes[:3]
    x_all = make_data(sizes[-1], d, k, seed=2)
    start = start_params(x_all, k, "full")
    model = GaussianMixtureModel(k, "full")
    print("\nscaling (full, float64, D = K = 16, chunk_size = 65 536)")
    print(
        f"{'N':>9s} {'s/iter':>9s} {'us/row':>8s} {'iteration MB':>13s} {'data MB':>8s}"
        "   (iteration MB: peak memory allocated by one steady-state iteration)"
    )
    for n in sizes:
        x = x_all[:n]
        per_iter = time_latent_em(x, start, "full", np.float64, 3, 2, chunk_size=65_536)
        # memory allocated during one steady-state iteration (M-step, then E-step over
        # all chunks), beyond the data: between the callbacks after E-steps 1 and 2
        peaks: list[int] = []

        def window(iteration, params, objective, peaks=peaks):
            if iteration == 1:
                tracemalloc.reset_peak()
                peaks.append(tracemalloc.get_traced_memory()[0])  # alive already (weights)
            elif iteration == 2:
                peaks.append(tracemalloc.get_traced_memory()[1] - peaks[0])

        tracemalloc.start()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", latent_em.ConvergenceWarning)
            latent_em.fit(
                model, x, params=start, max_iter=2, tol=0.0, chunk_size=65_536, callback=window
            )
        tracemalloc.stop()
        peak = peaks[1]
        print(
            f"{n:9d} {per_iter:9.4f} {1e6 * per_iter / n:8.3f} {peak / 1e6:13.1f} "
            f"{x.nbytes / 1e6:8.1f}",
            flush=True,
        )


_WRITE = """
import numpy as np, sys
path, n, d = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
centers = rng.normal(scale=3.0, size=(8, d))
with open(path, "wb") as f:
    np.lib.format.write_array_header_1_0(
        f, {"descr": "<f4", "fortran_order": False, "shape": (n, d)})
    step = 1_000_000
    for s in range(0, n, step):
        m = min(step, n - s)
        x = centers[rng.integers(8, size=m)] + rng.standard_normal((m, d))
        f.write(x.astype("<f4").tobytes())
"""

# peak resident set of the child itself (VmHWM; ru_maxrss would include the parent's
# resident set at fork time)
_BASELINE = """
import latent_em
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(int(hwm) / 1024)
"""

_FIT = """
import json, sys, time, warnings
import numpy as np
import latent_em
from latent_em.models import GaussianMixtureModel
path, iters = sys.argv[1], int(sys.argv[2])
model = GaussianMixtureModel(8, "full", dtype=np.float32)
t = time.perf_counter()
with warnings.catch_warnings():
    warnings.simplefilter("ignore", latent_em.ConvergenceWarning)
    result = latent_em.fit(model, path, random_state=0, max_iter=iters, tol=0.0)
elapsed = time.perf_counter() - t
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(json.dumps({
    "seconds": elapsed, "n_evaluations": result.n_evaluations,
    "mean_log_likelihood": result.mean_log_likelihood,
    "peak_rss_mb": int(hwm) / 1024,
}))
"""


def bench_out_of_core(args) -> None:
    n = 1_000_000 if args.quick else 10_000_000
    d = 8
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "x.npy")
        env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
        subprocess.run([sys.executable, "-c", _WRITE, path, str(n), str(d)], check=True, env=env)
        size = os.path.getsize(path) / 1e6
        baseline = subprocess.run(
            [sys.executable, "-c", _BASELINE],
            check=True,
            env=env,
            capture_output=True,
            text=True,
        )
        out = subprocess.run(
            [sys.executable, "-c", _FIT, path, str(args.ooc_iters)],
            check=True,
            env=env,
            capture_output=True,
            text=True,
        )
        report = json.loads(out.stdout.strip().splitlines()[-1])
    print(
        f"\nout of core: N = {n:,} x {d} float32 ({size:.0f} MB on disk), K = 8 full, "
        f"{args.ooc_iters} iterations + final E-step\n"
        f"  total {report['seconds']:.1f} s ({report['n_evaluations']} passes over the file, "
        f"incl. init on a 100 000-row subsample); mean log-likelihood "
        f"{report['mean_log_likelihood']:.4f}\n"
        f"  peak RSS of the fitting process: {report['peak_rss_mb']:.0f} MB "
        f"(interpreter + imports alone: {float(baseline.stdout):.0f} MB; limit 500 MB)"
    )


def bench_profile(args) -> None:
    """cProfile of the E-step phases at the start and after 5 iterations (where, on this
    benchmark's data, some components have nearly collapsed and take the direct path)."""
    n, d, k = min(args.n, 200_000), 16, 16
    x = make_data(n, d, k)
    start = start_params(x, k, "full")
    # one thread: cProfile sees only the calling thread
    model = GaussianMixtureModel(k, "full", n_threads=1)
    weights = np.ones(n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", latent_em.ConvergenceWarning)
        later = latent_em.fit(model, x, params=start, max_iter=5, tol=0.0).params
    for label, params in (("at the start", start), ("after 5 iterations", later)):
        kernel = model._kernel(params, d)
        direct = set()
        for begin in range(0, n, kernel.rows):
            kernel.table(x[begin : begin + kernel.rows])
            direct.update(kernel.direct_components)
        smallest = [float(np.sqrt(np.linalg.eigvalsh(params.covariances[j])[0])) for j in direct]
        model.e_step(params, x, weights)
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(3):
            stats, _ = model.e_step(params, x, weights)
            model.m_step(params, stats)
        profiler.disable()
        buf = io.StringIO()
        pstats.Stats(profiler, stream=buf).sort_stats("tottime").print_stats(10)
        print(
            f"\nprofile of 3 fused E-steps + M-steps {label} (full, float64, one thread, "
            f"N = {n:,}, D = K = 16); components on the direct path: {len(direct)} of {k}"
            + (f" (smallest std {np.round(smallest, 4).tolist()})" if direct else "")
        )
        print(buf.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (smoke test)")
    parser.add_argument("--only", choices=["speed", "scaling", "ooc", "profile"], default=None)
    parser.add_argument("--iters", type=int, default=8, help="timed EM iterations per run")
    parser.add_argument("--repeats", type=int, default=2, help="runs per configuration")
    parser.add_argument("--ooc-iters", type=int, default=3)
    parser.add_argument(
        "--threads",
        type=lambda s: [None if t == "default" else int(t) for t in s.split(",")],
        default=[1, None],
        help="BLAS thread limits to run the speed test under, e.g. 1,default",
    )
    args = parser.parse_args()
    args.n = 20_000 if args.quick else 200_000
    print("machine:", json.dumps(machine_description(), indent=1))
    if args.only in (None, "speed"):
        bench_speed(args)
    if args.only in (None, "profile"):
        bench_profile(args)
    if args.only in (None, "scaling"):
        bench_scaling(args)
    if args.only in (None, "ooc"):
        bench_out_of_core(args)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nmax RSS of this process: {rss:.0f} MB")


if __name__ == "__main__":
    main()
