#!/usr/bin/env bash
# fouroversix 1.0.5 (four-over-six NVFP4 scaling), its pytorch backend on the CPU: the
# package builds CUDA extensions unless SKIP_CUDA_BUILD=1, and needs the torch already
# installed (no build isolation), which a pip extra cannot express.
set -euo pipefail
version=1.0.5
if python -c "import importlib.metadata as m, sys; sys.exit(m.version('fouroversix') != '$version')" 2>/dev/null; then
  echo "fouroversix: $version installed"; exit 0
fi
SKIP_CUDA_BUILD=1 python -m pip install -q --no-build-isolation "fouroversix==$version"
echo "fouroversix: $version installed"
