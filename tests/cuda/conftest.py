"""The CUDA tests need ``numba.cuda`` in a mode chosen before it is first imported (a GPU,
or ``NUMBA_ENABLE_CUDASIM=1``), so they run in a process of their own:
``tests/test_cuda.py`` starts ``pytest tests/cuda`` with ``FP4REF_CUDA_TESTS=1`` (and the
simulator where there is no GPU). Without that variable this folder is not collected."""

import os

if os.environ.get("FP4REF_CUDA_TESTS") != "1":
    collect_ignore_glob = ["test_*.py"]
