#!/usr/bin/env bash
# Build the documentation site with warnings as errors (mkdocs build --strict).
# Needs the "docs" extra (pip install -e ".[docs]"). Usage: bash .ci/docs.sh [PYTHON]
# The Python code blocks of the pages are executed by tests/test_docs_examples.py.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${1:-${PYTHON:-python}}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" -m mkdocs build --strict --clean \
  --config-file mkdocs.yml --site-dir "$out/site"
echo "docs: built with --strict ($(find "$out/site" -name '*.html' | wc -l) HTML pages)"
