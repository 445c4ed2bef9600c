#!/usr/bin/env bash
# Installs what gunlearn needs into a Python virtualenv: PyPI torch==2.11.0 (its libtorch is what
# we link against), plus NumPy, scikit-learn and safetensors as reference oracles for the tests.
# The venv lives in a per-user cache keyed by the torch version, so fresh clones and CI reuse it;
# the project's `.venv` is a link to it. Override the location with GUNLEARN_VENV.
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH_VERSION=2.11.0
venv="${GUNLEARN_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/gunlearn/venv-torch-$TORCH_VERSION}"
if [ ! -f "$venv/.gunlearn-complete" ]; then
  echo "setup: creating $venv (PyPI torch==$TORCH_VERSION with its CUDA libraries: ~5 GB, a few minutes)" >&2
  python=$(command -v python3 || true)
  [ -n "$python" ] || { echo "setup: python3 not found; install Python 3.10+ first" >&2; exit 1; }
  # A venv cannot be moved (its scripts hard-code their folder), so it is built in place and
  # only counts as installed once the marker file is written at the very end.
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "torch==$TORCH_VERSION" "numpy>=2" "scikit-learn>=1.5" "safetensors>=0.4"
  touch "$venv/.gunlearn-complete"
fi
# Real CIFAR-10/100 test images (20 each, PNG) ship inside foolbox; the tests read them.
# --no-deps: only its data files are used, never its code.
if [ ! -d "$venv/lib/python3."*/site-packages/foolbox/data ] 2>/dev/null; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps foolbox==3.3.4
fi
if [ ! -e .venv ] || [ -L .venv ]; then
  ln -sfn "$venv" .venv
fi
.venv/bin/python -c "import torch, sklearn; assert torch.__version__.split('+')[0] == '$TORCH_VERSION', torch.__version__" \
  || { echo "setup: $venv is broken; delete it and run again" >&2; exit 1; }
