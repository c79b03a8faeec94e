"""The ``fp4ref conformance`` subcommands: generate, check, matrix."""

from __future__ import annotations

import argparse
import sys

from .. import backends


def _generate(args: argparse.Namespace) -> int:
    from .generate import generate

    out = generate(args.directory)
    size = sum(len(data) for data in out.values())
    print(f"wrote {len(out)} files, {size} bytes, to {args.directory}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from . import check, impls, locate
    from .manifest import load

    vectors = load(locate(args.dir))
    if args.list:
        for suite in vectors.suites():
            print(
                f"{suite['name']:18} {suite['operation']}{suite['signature']}  "
                f"[{len(suite['cases'])} cases]"
            )
        return 0
    if args.impl:
        chosen = {args.impl: impls.resolve(args.impl, args.operation)}
    else:
        chosen = {name: impls.Backend(name) for name in (args.backend or backends.available())}
    print(f"vectors: {vectors.directory} ({vectors.manifest['generator']})")
    results = {
        name: check.run(vectors, impl, args.suite, args.nan, args.ocp)
        for name, impl in chosen.items()
    }
    ok = check.report(results)
    ran = sum(s.ran for r in results.values() for s in r)
    failed = any(s.failed for r in results.values() for s in r)
    if not ran:
        print("\nno case ran: the implementation provides none of the suites' operations")
        return 1
    print("\nall suites pass" if ok and not failed else "\nFAILED")
    return 0 if ok and not failed else 1


def _matrix(args: argparse.Namespace) -> int:
    from . import locate, matrix
    from .manifest import load

    vectors = load(locate(args.dir))
    table = matrix.build(vectors, args.peer, args.nan)
    text = matrix.markdown(table) if args.markdown else matrix.plain(table)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"wrote {args.output}")
    else:
        sys.stdout.write(text)
    return 0


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
        help="the operation a function given to --impl implements (default: its name)",
    )
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

    p = commands.add_parser("matrix", help="which suites each installed peer library passes")
    p.add_argument("--dir", help="vectors directory (default: found automatically)")
    p.add_argument("--peer", action="append", help="only this peer (repeatable)")
    p.add_argument("--markdown", action="store_true", help="markdown, for docs/")
    p.add_argument("--nan", choices=("exact", "any"), default="any",
                   help="let any NaN match (default) or compare NaN bits")
    p.add_argument("--output", "-o", help="write to this file instead of stdout")
    p.set_defaults(run=_matrix)
