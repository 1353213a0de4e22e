"""End-to-end: the README's main job (``latent-em demo``) and the import promise."""

from __future__ import annotations

import subprocess
import sys

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "latent_em", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


def test_demo_prints_bic_table_and_writes_png(tmp_path):
    out = tmp_path / "plots" / "faithful.png"
    proc = _run("demo", "--kmax", "4", "--n-init", "3", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert "BIC = -2 log L + p log n" in text
    # the BIC-best model on Old Faithful is mclust's EEE (our 'tied') with K = 3
    assert "Best: covariance_type='tied', K=3" in text
    assert "2314.30*" in text  # the starred best BIC in the table
    for k in range(1, 5):
        assert any(line.split()[:1] == [str(k)] for line in text.splitlines())
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert out.stat().st_size > 10_000


def test_demo_user_error_exit_code_2_without_traceback(tmp_path):
    proc = _run("demo", "--kmax", "0", "--out", str(tmp_path / "x.png"))
    assert proc.returncode == 2
    assert "--kmax must be >= 1" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_help_lists_commands():
    proc = _run("--help")
    assert proc.returncode == 0
    assert "demo" in proc.stdout


def test_import_is_light():
    code = (
        "import sys, latent_em; "
        "heavy = [m for m in ('pymc', 'arviz', 'matplotlib', 'dask', 'pytensor', 'sklearn') "
        "if m in sys.modules]; print(heavy)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
