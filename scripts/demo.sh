#!/usr/bin/env bash
# Set up a virtualenv from the project's own files and run the demo platform:
# writes flowmap-traces.jsonl and reports/risk-map.html.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -c scripts/constraints.txt -e .  # the versions the suite last passed with
exec .venv/bin/flowmap demo "$@"
