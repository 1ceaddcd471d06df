#!/usr/bin/env bash
# Install mixopt and its test tools into the current Python (3.11+).
#
# torch comes first, pinned, from an index chosen on purpose: from the default index (PyPI) Linux gets the
# CUDA build, several GB of NVIDIA wheels, whether or not the machine has a GPU.
#   - MIXOPT_TORCH_INDEX set: torch from that index (e.g. https://download.pytorch.org/whl/cu128);
#   - no NVIDIA GPU (no nvidia-smi): the CPU build from PyTorch's CPU index, when it answers within 5 s;
#   - otherwise (a GPU, or a machine that reaches only its own package mirror): the default index.
# A torch of the pinned version already installed (any build) is kept; `pip uninstall torch` to switch.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH_VERSION=2.13.0
CPU_INDEX=https://download.pytorch.org/whl/cpu

pip_install() {
  "$PY" -m pip install -q --disable-pip-version-check "$@"
}

# The index to install torch from; empty for the default one.
torch_index() {
  if [ -n "${MIXOPT_TORCH_INDEX:-}" ]; then
    echo "$MIXOPT_TORCH_INDEX"
  elif ! command -v nvidia-smi >/dev/null 2>&1 \
      && "$PY" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5)' \
         "$CPU_INDEX/torch/" >/dev/null 2>&1; then
    echo "$CPU_INDEX"
  fi
}

if "$PY" -c 'import importlib.metadata as m, sys; sys.exit(m.version("torch").split("+")[0] != sys.argv[1])' \
    "$TORCH_VERSION" >/dev/null 2>&1; then
  echo "install: torch $TORCH_VERSION is already installed; keeping it" >&2
else
  index=$(torch_index)
  if [ -n "$index" ]; then
    echo "install: torch $TORCH_VERSION from $index" >&2
    pip_install --index-url "$index" "torch==$TORCH_VERSION"
  else
    echo "install: torch $TORCH_VERSION from the default index" >&2
    pip_install "torch==$TORCH_VERSION"
  fi
fi
pip_install -e ./client
pip_install -e ".[test]"
