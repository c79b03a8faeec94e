"""``fp4ref bench``: throughput measured against a memory-copy roofline in the same run.

One module per subcommand (:mod:`.dequantize`, :mod:`.quantize`, :mod:`.io`, :mod:`.ops`,
:mod:`.first_call`, with :mod:`.dequantize_cuda` and :mod:`.quantize_cuda` for
``--backend cuda``), the timing
helpers and rooflines in :mod:`.timing`. The benchmarks call fp4ref's public functions or
a backend's entry points, never private kernels; no module here imports this package.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from . import dequantize, first_call, io, ops, quantize

#: The benchmarks by name.
BENCHES: dict[str, Callable[[argparse.Namespace], int]] = {
    "dequantize": dequantize.bench_dequantize, "first-call": first_call.bench_first_call,
    "io": io.bench_io, "ops": ops.bench_ops, "quantize": quantize.bench_quantize}


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``fp4ref bench``."""
    p = sub.add_parser("bench", help="measure throughput against a memory-copy roofline")
    p.add_argument("which", choices=sorted(BENCHES), help="what to measure")
    p.add_argument("--size", type=int, default=None,
                   help="dequantize: matrix side (default 8192); io: file MiB (default 1024); "
                        "ops: hidden size (default 2880)")
    p.add_argument("--repeat", type=int, default=5, help="timed runs; the best counts")
    p.add_argument("--peer-rows", type=int, default=256,
                   help="rows timed on slow peers, scaled up (bench quantize)")
    p.add_argument("--backend", choices=("numba", "cuda"), default="numba",
                   help="numba (CPU, default) or cuda (GPU: --size rows, 1 GiB of output or input)")
    p.add_argument("--no-selftest", action="store_true",
                   help="first-call: leave out the whole-selftest row")
    p.set_defaults(run=lambda args: BENCHES[args.which](args))
