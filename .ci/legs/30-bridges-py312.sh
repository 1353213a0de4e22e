#!/usr/bin/env bash
# Bridge leg: the PyMC/ArviZ tests under Python 3.12 (PyMC 6 + ArviZ 1.x); the main leg
# already ran them under the default Python (PyMC 5 + ArviZ 0.2x). Skips with a message
# where no Python 3.12 is available (pyenv provides 3.12.1 on the CI machines).
set -euo pipefail
cd "$(dirname "$0")/../.."
if PYENV_VERSION=3.12.1 python3.12 -c 'import sys' >/dev/null 2>&1; then
    PYENV_VERSION=3.12.1 BRIDGES_VENV=.ci-venv-bridges312 bash .ci/bridges.sh python3.12
else
    echo "CI: bridges leg SKIPPED: no Python 3.12 interpreter (PYENV_VERSION=3.12.1 python3.12)"
fi
