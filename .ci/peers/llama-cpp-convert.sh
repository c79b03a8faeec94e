#!/usr/bin/env bash
# llama.cpp's own HF -> GGUF converter from the llama-cpp-python 0.3.36 sdist (which vendors
# llama.cpp): convert_hf_to_gguf.py, its conversion/ package and its gguf-py, unpacked for
# tests/test_gguf_llamacpp.py (nothing is built or installed).
set -euo pipefail
version=0.3.36
dir="${FP4REF_PEERS_DIR:-$HOME/.cache/fp4ref/peers}/llama-cpp-python-$version"
[ -e "$dir/llama.cpp/convert_hf_to_gguf.py" ] && { echo "llama.cpp converter: $dir exists"; exit 0; }
mkdir -p "$dir"
work="$(mktemp -d)"
python -m pip download -q --no-deps --no-binary :all: "llama-cpp-python==$version" -d "$work"
tar xzf "$work/llama_cpp_python-$version.tar.gz" -C "$work" --wildcards \
  '*/vendor/llama.cpp/convert_hf_to_gguf.py' '*/vendor/llama.cpp/conversion/*' \
  '*/vendor/llama.cpp/gguf-py/*'
rm -rf "$dir/llama.cpp.tmp"
mv "$work/llama_cpp_python-$version/vendor/llama.cpp" "$dir/llama.cpp.tmp"
mv "$dir/llama.cpp.tmp" "$dir/llama.cpp"
rm -rf "$work"
echo "llama.cpp converter: unpacked into $dir/llama.cpp"
