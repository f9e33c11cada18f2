#!/usr/bin/env bash
# Set up a virtualenv from the project's own files and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]' \
  -e instrumentations/flowmap-instrumentation-redis \
  -e 'instrumentations/flowmap-instrumentation-sqlite-vec[pysqlite3]' \
  -e 'instrumentations/flowmap-instrumentation-langgraph[test]'
exec .venv/bin/python -m pytest -q "$@"
