#!/usr/bin/env bash
# Docs leg: build the MkDocs site with warnings as errors, in the venv of the main leg.
set -euo pipefail
cd "$(dirname "$0")/../.."
.venv/bin/pip install -q ".[docs]"
bash .ci/docs.sh .venv/bin/python
