#!/usr/bin/env bash
# vLLM 0.33.0's torch reference functions and its Triton MXFP4 quantizer: the wheel is
# downloaded without its dependencies and only the four files fp4ref/conformance/peers/vllm.py
# loads are unpacked (vLLM is not installed).
set -euo pipefail
version=0.33.0
dir="${FP4REF_PEERS_DIR:-$HOME/.cache/fp4ref/peers}/vllm-$version"
files=(vllm/third_party/triton_kernels/numerics_details/mxfp.py
       vllm/model_executor/layers/quantization/utils/nvfp4_emulation_utils.py
       vllm/scalar_type.py
       vllm/model_executor/layers/quantization/utils/mxfp4_utils.py)
present=1
for f in "${files[@]}"; do [ -e "$dir/$f" ] || present=0; done
[ "$present" = 1 ] && { echo "vllm: $dir exists"; exit 0; }
work="$(mktemp -d)"
python -m pip download -q --no-deps "vllm==$version" -d "$work"
python - "$work"/vllm-"$version"-*.whl "$dir" "${files[@]}" <<'PY'
import sys, zipfile
wheel, target, *members = sys.argv[1:]
zipfile.ZipFile(wheel).extractall(target, members)
PY
rm -rf "$work"
echo "vllm: unpacked into $dir"
