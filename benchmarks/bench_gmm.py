"""Benchmark: Gaussian mixture EM, latent_em against scikit-learn, plus compile time,
scaling and out-of-core memory.

Run from a checkout (needs scikit-learn and threadpoolctl, from the ``test`` extra)::

    PYTHONPATH=. python benchmarks/bench_gmm.py                 # everything
    PYTHONPATH=. python benchmarks/bench_gmm.py --quick         # smaller, for a smoke test
    PYTHONPATH=. python benchmarks/bench_gmm.py --only speed    # or: compile, phases,
                                                                #     scaling, ooc

What is measured
----------------
* speed: N = 200 000, D = 16, K = 16, covariance "full" and "diag", float64 and float32,
  under a thread limit of 1 and 2 (``--threads``; "default" = all cores). Same data and
  same initial parameters for both libraries (scikit-learn gets them as
  ``weights_init``/``means_init``/``precisions_init``), ``tol=0`` and a fixed number of
  iterations. Both run under the same limit: threadpoolctl limits every native thread
  pool (BLAS, OpenMP) to it for scikit-learn, and latent_em gets it as ``n_threads``
  (its compiled kernel runs that many threads; BLAS stays at one thread). Seconds per
  iteration: one run is ``1 + --iters`` iterations; its value is the median of the
  wall times of its iterations after the first, as each library measures them: between
  consecutive E-steps (the driver's ``callback``) for latent_em, scikit-learn's own
  "time lapse" (``verbose=2``). ``--runs`` runs of each library alternate, and the
  table gives the median over runs with the range [min-max] over runs, for the times
  and for the per-run ratio (scikit-learn / latent_em). The machine is shared: the load
  average is printed before and after. "GFLOP/s" divides the textbook algorithm's work
  (full: 4·N·K·D² + 3·N·K·D; diag: 8·N·K·D + 3·N·K, what scikit-learn does and, up to
  O(N·K·D), latent_em's compiled kernel too) by latent_em's time. Finally, the speed-up
  of latent_em from the first to the second thread setting, per run pair.
* cpu: CPU seconds (``time.process_time``) of one E-step + M-step at one thread, both
  libraries from the same parameters (scikit-learn's ``_e_step`` and ``_m_step``),
  alternating: on a shared machine this counts the work, not the waiting for a core.
* compile: the first-call cost of the compiled kernel that one fit needs (each covariance
  type and dtype in a fresh process; ``first E-step - second E-step`` on N = 20 000),
  cold (an empty ``NUMBA_CACHE_DIR``) and from Numba's cache (a second process, same
  directory), and ``import numba`` alone.
* phases: where an iteration's time goes at one thread (E-step kernel, M-step, rest).
* scaling: seconds per iteration and the peak of memory allocated during one iteration
  (tracemalloc, beyond the data) for N = 10⁴ .. 10⁶ with ``chunk_size=65 536``.
* ooc: a float32 ``.npy`` file of N = 10⁷ rows x 8 columns is written by one child
  process and fitted from its path by another (``K = 8``, full, float32); the child's
  peak resident memory (``VmHWM``) is printed. The data alone are 320 MB on disk.

OpenBLAS on some processors here honours OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE, which
slow a current NumPy; unset both together for the benchmark command only
(``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python ...``). The kernel actually used
is printed from threadpoolctl.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
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
        with open("/proc/cpuinfo") as f:
            flags = next(line for line in f if line.startswith("flags")).split()
        info["simd"] = [f for f in ("avx2", "fma", "avx512f", "avx512dq") if f in flags]
    except (OSError, StopIteration):
        pass
    try:
        import numba

        info["numba"] = numba.__version__
    except ImportError:
        info["numba"] = "not installed"
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
    # scikit-learn's update (additive reg_covar), so that both libraries do the same M-step
    model = GaussianMixtureModel(
        start.means.shape[0],
        covariance_type,
        dtype=dtype,
        n_threads=n_threads,
        covariance_regularization="additive",
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

    return threadpool_limits(limits=threads)  # BLAS and OpenMP


def _spread(values) -> str:
    v = np.asarray(values, dtype=float)
    return f"{np.median(v):.4f} [{v.min():.4f}-{v.max():.4f}]"


def bench_speed(args) -> list[dict]:
    n, d, k = args.n, 16, 16
    x = make_data(n, d, k)
    starts = {cov: start_params(x, k, cov) for cov in ("full", "diag")}
    rows = []
    for threads in args.threads:
        with _thread_limit(threads):
            print(
                f"\nthread limit = {threads or 'default (all cores)'}: scikit-learn under "
                "threadpool_limits, latent_em with n_threads (BLAS at one thread); "
                f"load average {os.getloadavg()[0]:.2f}\n"
                f"{'cov':5s} {'dtype':8s} {'latent_em s/it [range]':>26s} "
                f"{'scikit-learn s/it [range]':>26s} {'ratio [range]':>22s} {'GFLOP/s':>8s}"
            )
            for cov in ("full", "diag"):
                for dtype in (np.float64, np.float32):
                    ours, theirs = [], []
                    for _ in range(args.runs):
                        ours.append(
                            time_latent_em(
                                x, starts[cov], cov, dtype, args.iters, 1, n_threads=threads
                            )
                        )
                        theirs.append(time_sklearn(x, starts[cov], cov, dtype, args.iters, 1))
                        # OpenBLAS threads woken by scikit-learn spin for ~0.1 s after its
                        # last product (THREAD_TIMEOUT) and would take a core from the
                        # next run of latent_em: let them sleep first
                        time.sleep(0.5)
                    ratio = np.array(theirs) / np.array(ours)
                    gflops = flops_per_iteration(n, d, k, cov) / np.median(ours) / 1e9
                    print(
                        f"{cov:5s} {np.dtype(dtype).name:8s} {_spread(ours):>26s} "
                        f"{_spread(theirs):>26s} "
                        f"{np.median(ratio):6.1f}x [{ratio.min():.1f}-{ratio.max():.1f}]"
                        f"{'':4s} {gflops:8.1f}",
                        flush=True,
                    )
                    rows.append(
                        dict(
                            threads=threads,
                            cov=cov,
                            dtype=np.dtype(dtype).name,
                            latent_em=ours,
                            sklearn=theirs,
                        )
                    )
    if len(args.threads) > 1:
        first, second = args.threads[:2]
        print(
            f"\nlatent_em, thread limit {first or 'default'} -> {second or 'default'}: "
            "speed-up per run pair, median [range]"
        )
        for cov in ("full", "diag"):
            for dtype in ("float64", "float32"):
                a, b = (
                    np.array(r["latent_em"])
                    for r in rows
                    if r["cov"] == cov and r["dtype"] == dtype and r["threads"] in (first, second)
                )
                gain = a / b
                print(
                    f"  {cov:5s} {dtype:8s} {np.median(gain):.2f}x "
                    f"[{gain.min():.2f}-{gain.max():.2f}]"
                )
        # on a shared machine scikit-learn with more BLAS threads can be much slower
        # than with one: compare every latent_em setting with its best setting too
        print("\nlatent_em against scikit-learn at its best thread setting (median of runs)")
        for cov in ("full", "diag"):
            for dtype in ("float64", "float32"):
                mine = [r for r in rows if r["cov"] == cov and r["dtype"] == dtype]
                best = min(mine, key=lambda r: np.median(r["sklearn"]))
                parts = ", ".join(
                    f"{r['threads'] or 'default'} thread(s): "
                    f"{np.median(best['sklearn']) / np.median(r['latent_em']):.1f}x"
                    for r in mine
                )
                print(
                    f"  {cov:5s} {dtype:8s} scikit-learn best with {best['threads'] or 'default'}"
                    f" thread(s), {np.median(best['sklearn']):.4f} s/it; latent_em {parts}"
                )
    print(f"load average after: {os.getloadavg()}")
    return rows


def bench_cpu(args) -> None:
    """CPU seconds (``time.process_time``) of one iteration (E-step + M-step) at one
    thread, both libraries, from the same parameters: less sensitive than wall time to
    other processes on a shared machine (time spent waiting for a core is not counted;
    cache and memory-bandwidth contention still are)."""
    from sklearn.mixture import GaussianMixture

    n, d, k = args.n, 16, 16
    x = make_data(n, d, k)
    w = np.ones(n)
    print(
        "\nCPU seconds per iteration (E-step + M-step), one thread, median [range] of "
        f"{args.cpu_repeats} alternating repeats; load average {os.getloadavg()[0]:.2f}\n"
        f"{'cov':5s} {'dtype':8s} {'latent_em':>24s} {'scikit-learn':>24s} {'ratio':>7s}"
    )
    with _thread_limit(1):
        for cov in ("full", "diag"):
            start = start_params(x, k, cov)
            for dtype in (np.float64, np.float32):
                model = GaussianMixtureModel(
                    k, cov, dtype=dtype, n_threads=1, covariance_regularization="additive"
                )
                xw = model.check_data(x)
                cv = start.covariances
                sk = GaussianMixture(
                    k,
                    covariance_type=cov,
                    weights_init=start.weights,
                    means_init=start.means,
                    precisions_init=np.linalg.inv(cv) if cov == "full" else 1.0 / cv,
                )
                sk._initialize_parameters(xw, np.random.RandomState(0))
                ours, theirs = [], []
                with model.fit_context():
                    for _ in range(args.cpu_repeats + 1):
                        t = time.process_time()
                        stats, _ = model.e_step(start, xw, w)
                        model.m_step(start, stats)
                        ours.append(time.process_time() - t)
                        t = time.process_time()
                        _, log_resp = sk._e_step(xw)
                        sk._m_step(xw, log_resp)
                        theirs.append(time.process_time() - t)
                        # the same parameters every time for scikit-learn too
                        sk._initialize_parameters(xw, np.random.RandomState(0))
                ours, theirs = ours[1:], theirs[1:]
                print(
                    f"{cov:5s} {np.dtype(dtype).name:8s} {_spread(ours):>24s} "
                    f"{_spread(theirs):>24s} {np.median(theirs) / np.median(ours):6.1f}x",
                    flush=True,
                )


_COMPILE = """
import json, sys, time
t = time.perf_counter()
import numba
import_numba = time.perf_counter() - t
import numpy as np
from latent_em.models import GaussianMixtureModel
cov, dtype = sys.argv[1], sys.argv[2]
x = np.random.default_rng(0).normal(size=(20_000, 16)).astype(dtype)
model = GaussianMixtureModel(16, cov, dtype=dtype, n_threads=1, init_params="random")
params = model.initialize(x[:2_000], np.random.default_rng(1))
w = np.ones(len(x))
times = []
for _ in range(3):
    t = time.perf_counter()
    model.e_step(params, x, w)
    times.append(time.perf_counter() - t)
print(json.dumps({"import_numba": import_numba, "first": times[0], "steady": min(times[1:])}))
"""


def bench_compile(args) -> None:
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    print(
        "\ncompile time of the kernel one fit needs (first E-step minus a later one, "
        "N = 20 000, D = K = 16, one thread), each in a fresh process"
    )
    print(f"{'cov':10s} {'dtype':8s} {'cold s':>8s} {'cached s':>9s} {'import numba s':>15s}")
    for cov in ("full", "diag", "tied", "spherical"):
        for dtype in ("float64", "float32"):
            with tempfile.TemporaryDirectory() as cache:
                out = []
                for _ in range(2):  # cold, then from the cache
                    proc = subprocess.run(
                        [sys.executable, "-c", _COMPILE, cov, dtype],
                        env=dict(env, NUMBA_CACHE_DIR=cache),
                        check=True,
                        capture_output=True,
                        text=True,
                    )
                    out.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            cold, cached = (o["first"] - o["steady"] for o in out)
            print(
                f"{cov:10s} {dtype:8s} {cold:8.2f} {cached:9.3f} {out[1]['import_numba']:15.3f}",
                flush=True,
            )


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


def bench_phases(args) -> None:
    """Where an iteration's time goes at one thread, in CPU seconds (``process_time``,
    robust to a loaded machine): the compiled E-step (Cholesky of the precisions
    included), the M-step, and the rest of the driver's iteration (medians)."""
    n, d, k = args.n, 16, 16
    x = make_data(n, d, k)
    w = np.ones(n)
    print(f"\nphases of one iteration, one thread, CPU seconds, N = {n:,}, D = K = 16")
    for cov in ("full", "diag"):
        model = GaussianMixtureModel(k, cov, n_threads=1, covariance_regularization="additive")
        params = start_params(x, k, cov)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", latent_em.ConvergenceWarning)
            params = latent_em.fit(model, x, params=params, max_iter=3, tol=0.0).params
            stamps: list[float] = []
            latent_em.fit(
                model,
                x,
                params=params,
                max_iter=8,
                tol=0.0,
                callback=lambda *_, stamps=stamps: stamps.append(time.process_time()),
            )
        per_iter = float(np.median(np.diff(stamps)[1:]))
        e_times, m_times = [], []
        with model.fit_context():
            for _ in range(7):
                t = time.process_time()
                stats, _ = model.e_step(params, x, w)
                e_times.append(time.process_time() - t)
                t = time.process_time()
                model.m_step(params, stats)
                m_times.append(time.process_time() - t)
        e, m = float(np.median(e_times)), float(np.median(m_times))
        print(
            f"  {cov:5s} iteration {per_iter:.4f} s: E-step {e:.4f} s, M-step {m:.5f} s, "
            f"rest {per_iter - e - m:.4f} s; E-step {1e9 * e / (n * k):.1f} ns per row and "
            f"component, {flops_per_iteration(n, d, k, cov) / e / 1e9:.1f} GFLOP/s "
            "(textbook count)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (smoke test)")
    parser.add_argument(
        "--only", choices=["speed", "cpu", "compile", "phases", "scaling", "ooc"], default=None
    )
    parser.add_argument("--iters", type=int, default=4, help="timed EM iterations per run")
    parser.add_argument("--runs", type=int, default=3, help="alternating runs per library")
    parser.add_argument("--cpu-repeats", type=int, default=5, help="repeats of the CPU timing")
    parser.add_argument("--ooc-iters", type=int, default=3)
    parser.add_argument(
        "--threads",
        type=lambda s: [None if t == "default" else int(t) for t in s.split(",")],
        default=[1, 2],
        help="thread limits to run the speed test under, e.g. 1,2,default",
    )
    args = parser.parse_args()
    args.n = 20_000 if args.quick else 200_000
    print("machine:", json.dumps(machine_description(), indent=1))
    if args.only in (None, "speed"):
        bench_speed(args)
    if args.only in (None, "cpu"):
        bench_cpu(args)
    if args.only in (None, "compile"):
        bench_compile(args)
    if args.only in (None, "phases"):
        bench_phases(args)
    if args.only in (None, "scaling"):
        bench_scaling(args)
    if args.only in (None, "ooc"):
        bench_out_of_core(args)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nmax RSS of this process: {rss:.0f} MB")


if __name__ == "__main__":
    main()
