"""The ``fp4ref`` command. Each subcommand lives in the module that owns its work and
registers itself here through a ``add_parser(subparsers)`` function."""

from __future__ import annotations

import argparse
import sys

from . import __version__, bench, selftest
from ._table import format_table
from .conformance import cli as conformance_cli
from .io import commands as io_commands
from .verify import cli as verify_cli


def _selftest(args: argparse.Namespace) -> int:
    notes: list[str] = []
    names, rows = selftest.run(args.backend or None, notes)
    print(format_table(["check", *names], [[label, *results] for label, results in rows]))
    for note in notes:
        print(note)
    failed = sum(r != "pass" for _, results in rows for r in results)
    print(f"\n{len(rows) * len(names) - failed} passed, {failed} failed")
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``fp4ref`` command."""
    parser = argparse.ArgumentParser(
        prog="fp4ref", description="The reference codec for MXFP4 and NVFP4."
    )
    parser.add_argument("--version", action="version", version=f"fp4ref {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("selftest", help="check every available backend against the spec tables")
    p.add_argument("--backend", action="append", help="only this backend (repeatable)")
    p.set_defaults(run=_selftest)
    bench.add_parser(sub)
    io_commands.add_parser(sub)
    conformance_cli.add_parser(sub)
    verify_cli.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``fp4ref`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
