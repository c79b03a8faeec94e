"""The ``fp4ref conformance`` subcommands: generate, check, identify, matrix."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import backends
from ..io import atomic


def _generate(args: argparse.Namespace) -> int:
    from .generate import generate

    out = generate(args.directory)
    size = sum(len(data) for data in out.values())
    print(f"wrote {len(out)} files, {size} bytes, to {args.directory}")
    return 0


def _operation(name: str | None, suites: list[dict]) -> tuple[str | None, str | None]:
    """(operation, suite) for ``--operation NAME``: an operation, or a suite's name (which
    stands for its operation and selects that suite); ``ValueError`` for anything else."""
    if name is None:
        return None, None
    operations = sorted({s["operation"] for s in suites})
    if name in operations:
        return name, None
    for suite in suites:
        if suite["name"] == name:
            return suite["operation"], name
    raise ValueError(f"--operation must be an operation {operations} or a suite name "
                     f"(fp4ref conformance check --list); got {name!r}")


def _check(args: argparse.Namespace) -> int:
    from . import check, impls, locate
    from .manifest import load

    vectors = load(locate(args.dir))
    if args.list:
        print("operation(inputs, *, parameters): a keyword parameter in "
              f"{sorted(impls.DEFAULTS)} may be left out; cases asking for its default "
              f"{impls.DEFAULTS} then run without it, the others are skipped\n")
        for suite in vectors.suites():
            print(
                f"{suite['name']:18} {suite['operation']}{suite['signature']}  "
                f"[{len(suite['cases'])} cases]"
            )
        return 0
    names = [s["name"] for s in vectors.suites()]
    unknown = [name for name in args.suite or () if name not in names]
    if unknown:
        raise ValueError(f"--suite: no suite {unknown[0]!r}; the suites are {names}")
    for option in ("timeout", "import_timeout"):
        if not getattr(args, option) > 0:
            raise ValueError(f"--{option.replace('_', '-')} must be a positive number of "
                             f"seconds; got {getattr(args, option)}")
    selected = args.suite
    if args.impl is not None:
        if not args.impl.partition(":")[0].strip():
            raise ValueError(f"--impl must name a module (package.module[:name]); got "
                             f"{args.impl!r}")
        operation, suite = _operation(args.operation, vectors.suites())
        selected = selected or ([suite] if suite else None)
        operations = sorted({s["operation"] for s in vectors.suites()})
        chosen = {args.impl: impls.Isolated(args.impl, operation, operations, args.timeout,
                                            args.import_timeout)}
    else:
        if args.operation:
            raise ValueError("--operation names what a function given to --impl implements; "
                             "there is no --impl")
        for name in args.backend or ():
            if name not in backends.available():
                raise ValueError(f"--backend {name!r} cannot run here (available: "
                                 f"{backends.available()})")
        chosen = {name: impls.Backend(name) for name in (args.backend or backends.available())}
    print(f"vectors: {vectors.directory} ({vectors.manifest['generator']})")
    try:
        results = {
            name: check.run(vectors, impl, selected, args.nan, args.ocp)
            for name, impl in chosen.items()
        }
    finally:
        for impl in chosen.values():
            if isinstance(impl, impls.Isolated):
                impl.close()
    ok = check.report(results)
    count = check.totals(results)
    if not count["passed"] and not count["failed"]:
        wanted = {s["operation"] for s in vectors.suites() if not selected
                  or s["name"] in selected}
        if args.impl is not None and not wanted & set(chosen[args.impl].provided):
            why = ("the implementation provides none of the selected suites' operations "
                   "(a function is taken to implement the operation it is named after, or "
                   "--operation)")
        else:
            why = "every case was skipped"
        print(f"\nFAILED: no case ran: {why}")
        return 1
    print("\nall suites pass" if ok else "\nFAILED")
    return 0 if ok else 1


def _matrix(args: argparse.Namespace) -> int:
    from . import locate, matrix
    from .manifest import load

    if args.list_peers:
        print("\n".join(matrix.names()))
        return 0
    if args.update and not (args.markdown and args.output and args.peer):
        raise ValueError("--update replaces the --peer sections of the --markdown page given "
                         "by --output; it needs all three")
    vectors = load(locate(args.dir))
    table = matrix.build(vectors, args.peer, args.nan)
    text = matrix.markdown(table) if args.markdown else matrix.plain(table)
    if args.update and Path(args.output).exists():
        text = matrix.update(Path(args.output).read_text("utf-8"), table)
    if args.output:
        atomic.write_bytes(args.output, text.encode("utf-8"))
        print(f"wrote {args.output}")
    else:
        sys.stdout.write(text)
    return 0


def _identify(args: argparse.Namespace) -> int:
    from .identification import FORMATS, identify, load

    fn = load(args.impl)
    formats = [args.format] if args.format else list(FORMATS)
    found = []
    for fmt in formats:
        try:
            result = identify(fn, operation=args.operation, format=fmt, seeds=args.seeds,
                              minimize=not args.no_minimize, input_dtype=args.input_dtype)
        except ValueError as error:
            if args.format or "took none" not in str(error):
                raise
            print(f"{fmt} {args.operation}: the implementation declined every probe")
            continue
        found.append(result)
        print(result.report())
    if not found:
        print(f"FAILED: {args.impl} took no {args.operation} probe of {formats}")
        return 1
    return 0 if all(r.close for r in found) else 1


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``fp4ref conformance`` with its subcommands."""
    parser = sub.add_parser("conformance", help="golden vectors: generate, check, matrix")
    commands = parser.add_subparsers(dest="conformance_command", required=True)

    p = commands.add_parser("generate", help="write the vectors into DIR (deterministic)")
    p.add_argument("directory", metavar="DIR")
    p.set_defaults(run=_generate)

    p = commands.add_parser(
        "check",
        help="run fp4ref's backends, or --impl, against the vectors",
        description="Exit status 1 if any case fails. Operations and signatures: --list.",
    )
    p.add_argument("--dir", help="vectors directory (default: found automatically)")
    p.add_argument(
        "--impl",
        help="package.module[:name]: a module, class, object or function "
        "providing operations named after the suites",
    )
    p.add_argument(
        "--operation",
        help="the operation a function given to --impl implements (default: its name); an "
        "operation or a suite name (mxfp4_dequantize: that suite's operation, that suite)",
    )
    p.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                   help="time limit per case of an --impl, which runs in a child process "
                   "(default 60)")
    p.add_argument("--import-timeout", type=float, default=120.0, metavar="SECONDS",
                   help="time limit for importing an --impl (default 120)")
    p.add_argument("--backend", action="append", help="only this fp4ref backend (repeatable)")
    p.add_argument("--suite", action="append", help="only this suite (repeatable)")
    p.add_argument("--ocp", action="store_true", help="only the cases inside the OCP choices")
    p.add_argument(
        "--nan",
        choices=("exact", "any"),
        default="exact",
        help="compare NaN bits exactly (default) or let any NaN match",
    )
    p.add_argument("--list", action="store_true", help="list suites and signatures")
    p.set_defaults(run=_check)

    p = commands.add_parser(
        "identify",
        help="which profile and fields an implementation follows, and what still differs",
        description="Runs MODULE:FUNCTION on the probes of every edge class and on N(0, 1) "
        "matrices, searches fp4ref's profile fields for the closest configuration, and "
        "prints it ('profile X, with field Y = v') with each remaining disagreement (its "
        "smallest input and both outputs). The callable signatures: "
        "docs/guide/identify.md. Exit status 1 when no configuration is close.",
    )
    p.add_argument("--impl", required=True, metavar="MODULE:FUNCTION",
                   help="the quantizer or dequantizer (signature: docs/guide/identify.md)")
    p.add_argument("--operation", choices=("quantize", "dequantize"), default="quantize",
                   help="what FUNCTION does (default quantize)")
    p.add_argument("--format", choices=("mxfp4", "nvfp4"),
                   help="only this format (default: each format the function takes)")
    p.add_argument("--seeds", type=int, default=2, help="N(0, 1) matrices beside the probes")
    p.add_argument("--input-dtype", choices=("float32", "float16", "bfloat16"),
                   default="float32",
                   help="the dtype the quantizer takes: each probe is rounded to it first, "
                   "for it and fp4ref alike (default float32)")
    p.add_argument("--no-minimize", action="store_true",
                   help="show the first disagreeing block as it is, without shrinking it")
    p.set_defaults(run=_identify)

    p = commands.add_parser("matrix", help="which suites each installed peer library passes")
    p.add_argument("--dir", help="vectors directory (default: found automatically)")
    p.add_argument("--peer", action="append",
                   help="only this peer (repeatable); the names: python -m fp4ref conformance "
                   "matrix --list-peers")
    p.add_argument("--update", action="store_true",
                   help="with --markdown -o FILE --peer NAME...: replace only those peers' "
                   "sections of FILE, keeping the others")
    p.add_argument("--markdown", action="store_true", help="markdown, for docs/")
    p.add_argument("--nan", choices=("exact", "any"), default="any",
                   help="let any NaN match (default) or compare NaN bits")
    p.add_argument("--output", "-o", help="write to this file instead of stdout")
    p.add_argument("--list-peers", action="store_true", help="print the peers' names and stop")
    p.set_defaults(run=_matrix)
