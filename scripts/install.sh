#!/usr/bin/env bash
# Install mixopt and its test tools into the current Python (3.11+). CPU torch is pinned first: an
# unpinned torch would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
"$PY" -m pip install -q --disable-pip-version-check "torch==2.13.0"
"$PY" -m pip install -q --disable-pip-version-check -e ./client
"$PY" -m pip install -q --disable-pip-version-check -e ".[test]"
