"""``import latent_em`` stays light: no scipy submodule (scipy.linalg, special and optimize
were most of a 0.75 s import), no Numba, PyMC or ArviZ; they are imported where used."""

from __future__ import annotations

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
