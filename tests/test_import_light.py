"""``import latent_em`` stays light: no scipy submodule (scipy.linalg, special and optimize
were most of a 0.75 s import), no Numba, PyMC or ArviZ; they are imported where used."""

from __future__ import annotations

import os
import subprocess
import sys

HEAVY = ("scipy", "numba", "pymc", "arviz", "pytensor", "matplotlib", "sklearn")


def test_import_latent_em_imports_no_heavy_dependency():
    code = (
        "import sys, latent_em\n"
        f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_lazy_names_work_and_import_on_first_use():
    code = (
        "import sys, numpy as np\n"
        "from latent_em.constraints import expit\n"
        "from latent_em.models.gaussian import covariance\n"
        "assert 'scipy.special' not in sys.modules and 'scipy.linalg' not in sys.modules\n"
        "assert expit(0.0) == 0.5 and 'scipy.special' in sys.modules\n"
        "chol = covariance.linalg.cholesky(np.eye(2) * 4.0, lower=True)\n"
        "assert np.allclose(chol, 2.0 * np.eye(2))\n"
        "assert covariance.linalg.LinAlgError is np.linalg.LinAlgError\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_fit_context_limits_every_blas_even_those_loaded_lazily():
    # scipy.linalg (with its own OpenBLAS) is no longer imported by ``import latent_em``;
    # the BLAS limit of the Gaussian mixture's fit must still cover it
    code = (
        "import latent_em\n"
        "from threadpoolctl import threadpool_info\n"
        "with latent_em.GaussianMixtureModel(2).fit_context():\n"
        "    import scipy.linalg  # as the E-step's Cholesky factors do, lazily\n"
        "    threads = [p['num_threads'] for p in threadpool_info() if p['user_api'] == 'blas']\n"
        "assert threads and all(t == 1 for t in threads), threads\n"
    )
    # BLAS libraries start with 2 threads (the test session sets 1 for PyMC's sake)
    env = dict(os.environ, OPENBLAS_NUM_THREADS="2", MKL_NUM_THREADS="2")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
