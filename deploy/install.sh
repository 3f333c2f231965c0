#!/bin/sh
# The one install of neurofit: `make` (and so CI) and the Dockerfile both run this script.
#   PYTHON         interpreter that creates the environment (default python3; 3.10 or newer)
#   VENV           where the environment goes (default .venv)
#   EXTRAS         optional dependencies, comma-separated (default test: what `make test` needs)
#   EDITABLE       yes: install the checkout in place (development, CI); no: a regular install (image)
#   TORCH_VARIANT  default: torch from the package index as configured; cpu: the CPU-only build
#                  (small image); cuda: the CUDA build (needs an NVIDIA driver on the host)
set -eu
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
EXTRAS=${EXTRAS:-test}
EDITABLE=${EDITABLE:-yes}
TORCH_VARIANT=${TORCH_VARIANT:-default}
TORCH_VERSION=2.13.0

"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 10), "neurofit needs Python 3.10 or newer; run: make PYTHON=python3.11 ..."'
"$PYTHON" -m venv "$VENV"
# torch first, pinned: a looser request pulls the newest (CUDA, several GB) build on CPU machines.
case "$TORCH_VARIANT" in
  default) "$VENV/bin/python" -m pip install --quiet --no-cache-dir "torch==$TORCH_VERSION" ;;
  cpu) "$VENV/bin/python" -m pip install --quiet --no-cache-dir "torch==$TORCH_VERSION" \
         --index-url "${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}" ;;
  cuda) "$VENV/bin/python" -m pip install --quiet --no-cache-dir "torch==$TORCH_VERSION" ;;
  *) echo "TORCH_VARIANT=$TORCH_VARIANT: use default, cpu or cuda" >&2; exit 2 ;;
esac
if [ "$EDITABLE" = yes ]; then
  "$VENV/bin/python" -m pip install --quiet --no-cache-dir -e ".[$EXTRAS]"
else
  "$VENV/bin/python" -m pip install --quiet --no-cache-dir ".[$EXTRAS]"
fi
