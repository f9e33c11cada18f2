#!/usr/bin/env bash
# Set up a virtualenv from the project's own files and run the whole test suite.
# The browser tests need Debian's chromium and the redis tests a redis-server: when they
# are missing and apt-get can be used (root), they are installed first.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
if [ ${#need[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "installing ${need[*]} (apt-get)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "warning: ${need[*]} not installed; the tests that need them will fail" >&2
  fi
fi
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -c scripts/constraints.txt -e '.[test]' \
  -e 'instrumentations/flowmap-instrumentation-redis[instruments]' \
  -e 'instrumentations/flowmap-instrumentation-sqlite-vec[instruments,pysqlite3]' \
  -e 'instrumentations/flowmap-instrumentation-langgraph[instruments,test]' \
  -e 'instrumentations/flowmap-instrumentation-celery[instruments]'
export FLOWMAP_NO_SKIPS=1  # a skipped test fails the run (tests/conftest.py)
exec .venv/bin/python -m pytest -q -rs "$@"
