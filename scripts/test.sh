#!/bin/sh
# Quick start, command 2: install the dev extras, then ruff, mypy and the whole pytest suite.
# Any failure (including pytest's exit 5, "no tests collected") fails the script.
set -eu
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e ".[dev,review]"
"$VENV/bin/python" -m ruff check proxy tests bench run_proxy.py
"$VENV/bin/python" -m ruff format --check proxy tests bench run_proxy.py
"$VENV/bin/python" -m mypy
"$VENV/bin/python" -m pytest "$@"
