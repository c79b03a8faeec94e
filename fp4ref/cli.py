"""The ``fp4ref`` command. Each subcommand lives in the module that owns its work and
registers itself here through a ``add_parser(subparsers)`` function.

Errors reach the user as one line on stderr, ``fp4ref <command>: error: <what>``, with exit
status 2 (``--debug``, anywhere on the line, adds the traceback); SIGINT and SIGTERM end a
command with one line and status 130 / 143, after its outputs' temporary files are removed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import traceback
import warnings
from collections.abc import Iterator

from . import __version__


def _check_backends(names: list[str] | None) -> None:
    """``ValueError`` unless each ``--backend`` value names a backend that can run here."""
    from . import backends

    here = backends.available()
    for name in names or ():
        if name not in here:
            known = [b for b in backends.BACKENDS if b != "auto"]
            why = "not available here" if name in known else f"not one of {known}"
            raise ValueError(f"--backend {name!r}: {why} (available: {here})")


def _selftest(args: argparse.Namespace) -> int:
    from . import selftest
    from ._table import format_table

    _check_backends(args.backend)
    notes: list[str] = []
    names, rows = selftest.run(args.backend or None, notes)
    print(format_table(["check", *names], [[label, *results] for label, results in rows]))
    for note in notes:
        print(note)
    failed = sum(r != "pass" for _, results in rows for r in results)
    print(f"\n{len(rows) * len(names) - failed} passed, {failed} failed")
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``fp4ref`` command (importing the subcommands' modules:
    :func:`main` does it where an environment problem, such as a bad ``NUMBA_NUM_THREADS``
    breaking numba's import, becomes one error line)."""
    from . import bench
    from .conformance import cli as conformance_cli
    from .io import commands as io_commands
    from .verify import cli as verify_cli

    parser = argparse.ArgumentParser(
        prog="fp4ref", description="The reference codec for MXFP4 and NVFP4."
    )
    parser.add_argument("--version", action="version", version=f"fp4ref {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error (accepted anywhere on the line)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("selftest", help="check every available backend against the spec tables")
    p.add_argument("--backend", action="append", help="only this backend (repeatable)")
    p.set_defaults(run=_selftest)
    bench.add_parser(sub)
    io_commands.add_parser(sub)
    conformance_cli.add_parser(sub)
    verify_cli.add_parser(sub)
    return parser


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that ``finally`` blocks and writers clean up."""


@contextlib.contextmanager
def _terminate_as_exception() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` meanwhile (the default would kill the process
    with its temporary files left behind)."""
    def raise_terminated(number: int, frame: object) -> None:
        raise Terminated

    try:
        previous = signal.signal(signal.SIGTERM, raise_terminated)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _one_line(error: Exception) -> str:
    """The error as one line: its message, led by its type unless that is a plain
    ``ValueError`` / ``TypeError`` / ``OSError`` (whose messages say what went wrong)."""
    text = " ".join(str(error).split())
    if isinstance(error, (ValueError, TypeError, OSError)) and text:
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning as one line (its first), ``fp4ref: warning: <Category>: <text>``; a
    library's warning may carry a whole traceback in its text (numba's do)."""
    text = str(message).strip().splitlines()
    print(f"fp4ref: warning: {category.__name__}: {text[0] if text else ''}",
          file=file or sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``fp4ref`` command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    shown = warnings.showwarning
    if not debug:
        warnings.showwarning = _show_warning
    try:
        return _run(argv, debug)
    finally:
        warnings.showwarning = shown


def _run(argv: list[str], debug: bool) -> int:
    """Parse ``argv`` and run the command, each error reported as one line."""
    try:
        parser = build_parser()
    except Exception as error:  # the environment breaks an import (numba's settings...)
        if debug:
            traceback.print_exc()
        print(f"fp4ref: error: cannot start: {_one_line(error)} (check the environment: "
              f"NUMBA_* variables, the installation)", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    name = " ".join(filter(None, (args.command, getattr(args, "conformance_command", None))))
    try:
        with _terminate_as_exception():
            status = args.run(args)
            sys.stdout.flush()  # a closed pipe shows here, not at the interpreter's exit
            return status
    except KeyboardInterrupt:
        print(f"fp4ref {name}: interrupted (SIGINT)", file=sys.stderr)
        return 128 + signal.SIGINT
    except Terminated:
        print(f"fp4ref {name}: terminated (SIGTERM)", file=sys.stderr)
        return 128 + signal.SIGTERM
    except BrokenPipeError:  # the reader of stdout went away (| head): nothing to report
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as error:
        if debug:
            traceback.print_exc()
        expected = isinstance(error, (ValueError, TypeError, OSError))
        hint = "" if debug or expected else " (--debug shows the traceback)"
        print(f"fp4ref {name}: error: {_one_line(error)}{hint}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
