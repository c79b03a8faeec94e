"""The ``fp4ref verify`` subcommand."""

from __future__ import annotations

import argparse
import platform
import sys

from . import ALL_FAMILIES


def _verify(args: argparse.Namespace) -> int:
    from . import run

    report = run(full=args.full, backends=args.backend, families=tuple(args.only or ALL_FAMILIES),
                 match=args.match, stride=args.stride, radius=args.radius,
                 progress=None if args.quiet else sys.stderr)
    print(f"fp4ref verify {'--full' if args.full else '(CI subset)'} on {_machine()}")
    print(report.table())
    failed = sum(r.disagreements > 0 for r in report.results)
    print(f"\n{len(report.results) - failed} sweeps agree, {failed} disagree")
    return 0 if report.ok else 1


def _machine() -> str:
    """The CPU and core count (and the GPU, where numba sees one), for the record."""
    import os

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def add_parser(subparsers) -> None:
    """Register ``fp4ref verify``."""
    p = subparsers.add_parser(
        "verify", help="sweep every float32 input and stored byte through every kernel",
        description="Every float32 bit pattern through the E2M1 and E4M3 encoders, the "
        "element encoder and fp4ref.quantize under every profile, every non-negative block "
        "maximum through every scale rule and NVFP4 recipe, every stored byte through every "
        "decoder, on numba (and cuda), against the spec layer (docs/verify.md). Without "
        "--full: the CI subset.")
    p.add_argument("--full", action="store_true",
                   help="every input (about a minute a sweep on a 2-core CPU)")
    p.add_argument("--backend", action="append", choices=("numba", "cuda"),
                   help="only this backend (repeatable; default numba, and cuda on a GPU)")
    p.add_argument("--only", action="append", choices=ALL_FAMILIES,
                   help="only this family of sweeps (repeatable)")
    p.add_argument("--match", metavar="TEXT",
                   help="only the sweeps whose name contains TEXT (e.g. 'ties even')")
    p.add_argument("--stride", type=int, default=1 << 16,
                   help="CI subset: every STRIDE-th pattern (default 65536)")
    p.add_argument("--radius", type=int, default=4,
                   help="CI subset: patterns either side of each decision point (default 4)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_verify)
