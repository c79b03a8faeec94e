#!/bin/bash
# The one device call behind docs/benchmarks.md's evening H200 tables (issue 19): main
# (the checkout's root, "before") and this branch (.gpu-speed, "after") in one call, then
# the branch's sweep and GPU tests. Run from the root of a checkout of main holding the
# branch's files in .gpu-speed; writes to $OUT.
ROOT=$PWD
before() { (cd "$ROOT" && PYTHONPATH=/tmp/site:$ROOT timeout "$@"); }
after() { (cd "$ROOT/.gpu-speed" && PYTHONPATH=/tmp/site:$ROOT/.gpu-speed timeout "$@"); }
T="env FP4REF_CUDA_TESTS=1 python3 -m pytest -p no:cacheprovider"
before 75 python3 -m fp4ref bench dequantize --backend cuda --repeat 5 > $OUT/before_dq.txt 2>&1
after 75 python3 -m fp4ref bench dequantize --backend cuda --repeat 5 > $OUT/after_dq.txt 2>&1
before 45 python3 .gpu-speed/docs/scripts/h200_calls.py before quantize-only > $OUT/before_calls.txt 2>&1
after 45 python3 docs/scripts/h200_calls.py after quantize-only > $OUT/after_calls.txt 2>&1
after 130 python3 docs/scripts/h200_pipe.py dequantize > $OUT/sweep.txt 2>&1
before 30 $T -x -q --tb=short tests/cuda/test_quantize.py -k "by_threshold_or_by_division and ocp-0.02" > $OUT/before_test.txt 2>&1
after 140 $T -v --tb=short tests/cuda/test_codec.py tests/cuda/test_quantize.py -k "not optimal and not hessian" > $OUT/after_tests.txt 2>&1
for f in $OUT/*.txt; do echo "== $f"; grep -v "Warning\|warn(\|PASSED" "$f" | tail -12; done
