#!/usr/bin/env bash
# ggml's C code from the llama-cpp-python 0.3.36 sdist (which vendors llama.cpp): only the
# ggml core and its reference quantizers are compiled (ggml.c, ggml-quants.c, ggml-alloc.c and
# the three C++ files they link against), into one shared library that
# fp4ref/conformance/peers/ggml.py drives through ctypes. About 20 s on 2 cores.
set -euo pipefail
version=0.3.36
dir="${FP4REF_PEERS_DIR:-$HOME/.cache/fp4ref/peers}/llama-cpp-python-$version"
lib="$dir/libggml-fp4ref.so"
[ -e "$lib" ] && { echo "ggml: $lib exists"; exit 0; }
mkdir -p "$dir"
work="$(mktemp -d)"
python -m pip download -q --no-deps --no-binary :all: "llama-cpp-python==$version" -d "$work"
tar xzf "$work/llama_cpp_python-$version.tar.gz" -C "$work" --wildcards '*/vendor/llama.cpp/ggml/*'
src="$work/llama_cpp_python-$version/vendor/llama.cpp/ggml"
sed 's/@GGML_VERSION@/'"$version"'/; s/@GGML_BUILD_COMMIT@/llama-cpp-python-'"$version"'/' \
  "$src/src/ggml-version.h.in" > "$work/ggml-version.h"
cd "$work"
cc -c -O2 -fPIC -std=gnu11 -w -I"$src/include" -I"$src/src" -I"$work" \
  "$src/src/ggml.c" "$src/src/ggml-quants.c" "$src/src/ggml-alloc.c"
g++ -c -O2 -fPIC -std=c++17 -w -I"$src/include" -I"$src/src" \
  "$src/src/ggml-threading.cpp" "$src/src/ggml-backend.cpp" "$src/src/ggml-backend-meta.cpp"
g++ -shared ./*.o -o "$lib.tmp" -Wl,--no-undefined
mv "$lib.tmp" "$lib"
rm -rf "$work"
echo "ggml: built $lib"
