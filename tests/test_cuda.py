"""The CUDA backend: its tests in ``tests/cuda`` run in a process of their own, on the GPU
when ``numba.cuda`` finds one and in numba's simulator otherwise; and fp4ref without it."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fp4ref.kernels.options import HIGH_FIRST, LOW_FIRST, SPLIT_HALF
from fp4ref.kernels.scalar import byte_elements, element_nibble

TESTS = Path(__file__).parent
HAS_NUMBA_CUDA = importlib.util.find_spec("numba_cuda") is not None


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)


def _has_gpu() -> bool:
    probe = _python("from numba import cuda; print(cuda.is_available())",
                    NUMBA_ENABLE_CUDASIM="0")
    return probe.stdout.strip() == "True"


@pytest.mark.skipif(not HAS_NUMBA_CUDA, reason="numba-cuda is not installed (fp4ref[cuda])")
def test_cuda_kernels_on_the_gpu_or_the_simulator():
    env = {**os.environ, "FP4REF_CUDA_TESTS": "1"}
    if not _has_gpu():
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(TESTS / "cuda")],
        capture_output=True, text=True, env=env, cwd=TESTS.parent, timeout=600,
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]


@pytest.mark.skipif(not HAS_NUMBA_CUDA, reason="numba-cuda is not installed (fp4ref[cuda])")
def test_cuda_without_a_gpu_is_a_clear_error():
    if _has_gpu():
        pytest.skip("a GPU is present")
    run = _python("import numpy, fp4ref\n"
                  "assert 'cuda' not in fp4ref.available_backends()\n"
                  "fp4ref.decode_e2m1(numpy.zeros(2, numpy.uint8), backend='cuda')",
                  NUMBA_ENABLE_CUDASIM="0")
    assert "RuntimeError" in run.stderr and "NUMBA_ENABLE_CUDASIM=1" in run.stderr, run.stderr


def test_fp4ref_works_without_numba_cuda():
    run = _python("import sys\n"
                  "sys.modules['numba.cuda'] = None  # as if numba-cuda were not installed\n"
                  "import numpy, fp4ref\n"
                  "assert fp4ref.available_backends() == ['python', 'numba']\n"
                  "assert fp4ref.decode_e2m1(numpy.arange(16, dtype=numpy.uint8)).size == 16\n"
                  "fp4ref.decode_e2m1(numpy.zeros(2, numpy.uint8), backend='cuda')")
    assert "RuntimeError" in run.stderr and "fp4ref[cuda]" in run.stderr, run.stderr


@pytest.mark.parametrize("order", [LOW_FIRST, HIGH_FIRST, SPLIT_HALF])
@pytest.mark.parametrize("block_size", [16, 32])
def test_element_nibble_inverts_byte_elements(order, block_size):
    for i in range(2 * block_size // 2):  # two blocks' worth of bytes
        low, high = byte_elements(i, order, block_size)
        assert element_nibble(low, order, block_size) == (i, 0)
        assert element_nibble(high, order, block_size) == (i, 4)
