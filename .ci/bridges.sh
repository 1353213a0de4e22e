#!/usr/bin/env bash
# Run the PyMC/ArviZ bridge tests under the given interpreter in a fresh venv.
#
#   .ci/bridges.sh PYTHON        e.g.  PYENV_VERSION=3.12.1 .ci/bridges.sh python3.12
#
# Creates the venv in $BRIDGES_VENV (default: a temporary directory), installs the project
# with its test extra (PyMC/ArviZ versions are whatever pip resolves for that Python:
# PyMC 5 + ArviZ 0.2x on 3.11, PyMC 6 + ArviZ 1.x on >= 3.12), and runs the tests marked
# `bridges`. Exits 0 with a clear message when PYTHON is not available.
set -euo pipefail

PYTHON="${1:?usage: .ci/bridges.sh PYTHON}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"

if ! command -v "$PYTHON" >/dev/null 2>&1 || ! "$PYTHON" -c 'import sys' >/dev/null 2>&1; then
    echo "bridges: SKIPPED: interpreter '$PYTHON' not available on this machine" >&2
    exit 0
fi

VENV="${BRIDGES_VENV:-$(mktemp -d -t latent-em-bridges-XXXXXX)}"
"$PYTHON" -m venv --clear "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "$ROOT[test]"
"$VENV/bin/python" -c 'import sys, pymc, arviz; print(f"bridges: Python {sys.version.split()[0]}, PyMC {pymc.__version__}, ArviZ {arviz.__version__}")'

# multi-chain sampling on few cores is ~3x slower with threaded BLAS (pymc-notes)
export OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
cd "$ROOT"
# BRIDGES_MARK selects the tests (default: only the bridge tests; empty: the whole suite)
MARK="${BRIDGES_MARK-bridges}"
if [ -n "$MARK" ]; then
    exec "$VENV/bin/python" -m pytest tests -m "$MARK" -q -p no:cacheprovider
fi
exec "$VENV/bin/python" -m pytest tests -q -p no:cacheprovider
