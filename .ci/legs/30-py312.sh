#!/usr/bin/env bash
# Python 3.12 leg: the whole test suite, bridges included, under PyMC 6 + ArviZ 1.x (the
# main leg ran it under the default Python: PyMC 5 + ArviZ 0.2x). Skips with a message
# where no Python 3.12 is available (pyenv provides 3.12.1 on the CI machines).
set -euo pipefail
cd "$(dirname "$0")/../.."
if PYENV_VERSION=3.12.1 python3.12 -c 'import sys' >/dev/null 2>&1; then
    PYENV_VERSION=3.12.1 BRIDGES_VENV=.ci-venv-py312 BRIDGES_MARK="" bash .ci/bridges.sh python3.12
else
    echo "CI: Python 3.12 leg SKIPPED: no Python 3.12 interpreter (PYENV_VERSION=3.12.1 python3.12)"
fi
