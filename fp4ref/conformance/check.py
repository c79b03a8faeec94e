"""``fp4ref conformance check``: run implementations against the vectors, bit for bit."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import numpy as np

from ..io.safetensors_file import DTYPES
from .files import hex_cell
from .manifest import Vectors
from .model import is_ocp

FLOAT_DTYPES = {DTYPES["F32"], DTYPES["BF16"], DTYPES["F16"]}
#: How many mismatching elements a failed case reports.
SHOWN = 3


@dataclass
class CaseResult:
    """One case run: status ``"pass"``, ``"fail"``, ``"error"`` or ``"skip"``."""

    suite: str
    case: str
    status: str
    detail: list[str] = field(default_factory=list)


@dataclass
class SuiteResult:
    suite: str
    cases: list[CaseResult]

    def count(self, status: str) -> int:
        return sum(c.status == status for c in self.cases)

    @property
    def ran(self) -> int:
        return len(self.cases) - self.count("skip")

    @property
    def status(self) -> str:
        """``"pass n/m"``, ``"FAIL k/m"`` (k cases failed or crashed), or ``"skip"``."""
        bad = self.count("fail") + self.count("error")
        if bad:
            return f"FAIL {bad}/{self.ran}"
        return f"pass {self.ran}/{self.ran}" if self.ran else "skip"

    @property
    def summary(self) -> str:
        """:attr:`status` with the skipped cases counted: ``"pass 4/4, 2 skipped"``."""
        skipped = self.count("skip")
        if not self.ran:
            return f"skip {skipped}"
        return f"{self.status}, {skipped} skipped" if skipped else self.status

    @property
    def failed(self) -> bool:
        return self.status.startswith("FAIL")

    def first_failure(self) -> CaseResult | None:
        return next((c for c in self.cases if c.status in ("fail", "error")), None)


def _bits(array: np.ndarray) -> np.ndarray:
    return array.view(f"<u{array.dtype.itemsize}").reshape(-1)


#: Results that hold swizzled scale bytes when 1-D in the vectors: implementations hand
#: them back flat or as the padded tile, so only their element count must match.
SWIZZLED = ("stored", "scales")


def compare(
    expected: np.ndarray, got: np.ndarray, nan: str = "exact", flat: bool = False,
    integer_values: bool = False,
) -> tuple[np.ndarray | None, str]:
    """(per-element equality, problem): equality of ``got`` with ``expected`` bit for bit.

    The shape must be the expected one (``flat``: only the element count must match); float
    results may come as the expected dtype or as unsigned integers of its width (the bits),
    other results as the expected dtype (``integer_values``: any integers, compared by
    value; for fp4ref's peer adapters, whose glue is int16). ``nan="any"`` lets any NaN
    match any NaN. A shape or dtype mismatch gives ``(None, problem)``.
    """
    if got.shape != expected.shape and not (flat and got.size == expected.size):
        return None, f"got shape {got.shape}, expected {expected.shape}"
    if expected.dtype in FLOAT_DTYPES:
        width = expected.dtype.itemsize
        if got.dtype != expected.dtype and got.dtype != np.dtype(f"u{width}"):
            return (
                None,
                f"got dtype {got.dtype}, expected {expected.dtype} (or uint{8 * width} bits)",
            )
        want, have = (
            _bits(expected),
            _bits(np.ascontiguousarray(got).astype(got.dtype.newbyteorder("<"))),
        )
        same = want == have
        if nan == "any":
            exponent = {4: 0x7F800000, 2: 0x7F80 if expected.dtype == DTYPES["BF16"] else 0x7C00}[
                width
            ]
            mantissa = {4: 0x007FFFFF, 2: 0x007F if expected.dtype == DTYPES["BF16"] else 0x03FF}[
                width
            ]

            def isnan(b):
                return ((b & exponent) == exponent) & ((b & mantissa) != 0)

            same |= isnan(want) & isnan(have)
        return same, ""
    if integer_values and got.dtype.kind in "iu":
        return got.reshape(-1).astype(np.int64) == expected.reshape(-1).astype(np.int64), ""
    if got.dtype != expected.dtype:
        return None, f"got dtype {got.dtype}, expected {expected.dtype}"
    return got.reshape(-1) == expected.reshape(-1), ""


def _describe(name: str, array: np.ndarray, index: int, out_shape: tuple) -> str:
    """Input ``name`` as seen by output element ``index`` (its element, its row, or all)."""
    if array.size == int(np.prod(out_shape)):
        return f"{name}=0x{hex_cell(array, index)}{_value(array, index)}"
    if (
        array.ndim >= 1
        and len(out_shape) >= 1
        and array.shape[0] == out_shape[0]
        and array.ndim > 1
    ):
        row = index // int(np.prod(out_shape[1:]))
        cells = " ".join(hex_cell(array[row], j) for j in range(min(array[row].size, 32)))
        more = " ..." if array[row].size > 32 else ""
        return f"{name}[row {row}]=[{cells}{more}]"
    if array.size <= 16:
        return f"{name}=[{' '.join(hex_cell(array, j) for j in range(array.size))}]"
    return f"{name}: shape {array.shape}"


def _value(array: np.ndarray, index: int) -> str:
    if array.dtype in FLOAT_DTYPES:
        return f" ({float(array.reshape(-1)[index])!r})"
    return ""


def run_case(vectors: Vectors, suite: dict, case: dict, impl, nan: str = "exact") -> CaseResult:
    """Run one case of ``suite`` on ``impl`` (an implementation, or a runner such as
    :class:`~fp4ref.conformance.impls.Isolated`)."""
    from .impls import InProcess

    runner = impl if hasattr(impl, "provides") and hasattr(impl, "call") else InProcess(impl)

    def result(status: str, *detail: str) -> CaseResult:
        return CaseResult(suite["name"], case["name"], status, list(detail))

    if not runner.provides(suite["operation"]):
        return result("skip", "operation not provided")
    inputs = vectors.arrays(suite, case, "inputs")
    expected = vectors.arrays(suite, case, "expected")
    refuse = case.get("error")
    kind, value = runner.call(suite["operation"], [array.copy() for _, array in inputs],
                              dict(case["params"]), 0 if refuse else len(expected))
    if kind == "skip":
        return result("skip", value)
    if kind == "refused":
        return result("pass") if refuse else result("error", value)
    if kind != "results":
        return result("error", value)
    if refuse:
        return result("fail", f"returned instead of refusing the input ({refuse})")
    results = value
    detail = []
    for (name, want), got in zip(expected, results, strict=True):
        same, problem = compare(want, got, nan, flat=name in SWIZZLED and want.ndim == 1,
                                integer_values=getattr(impl, "integer_glue", False))
        if same is None:
            detail.append(f"{name}: {problem}")
            continue
        for index in np.flatnonzero(~same)[:SHOWN]:
            index = int(index)
            where = np.unravel_index(index, want.shape) if want.ndim else ()
            context = ", ".join(_describe(arg, a, index, want.shape) for arg, a in inputs)
            detail.append(
                f"{name}{list(map(int, where))}: expected 0x{hex_cell(want, index)}"
                f"{_value(want, index)}, got 0x{hex_cell(got, index)}"
                f"{_value(got, index) if got.dtype == want.dtype else ''}; inputs: {context}"
            )
        if (~same).sum() > SHOWN:
            detail.append(f"{name}: {int((~same).sum())} of {same.size} elements differ")
    return CaseResult(suite["name"], case["name"], "fail" if detail else "pass", detail)


def run(
    vectors: Vectors,
    impl,
    suites: list[str] | None = None,
    nan: str = "exact",
    ocp_only: bool = False,
) -> list[SuiteResult]:
    """Every (selected) suite on ``impl``; ``ocp_only`` skips cases outside the OCP choices."""
    out = []
    for suite in vectors.suites():
        if suites and suite["name"] not in suites:
            continue
        cases = []
        for case in suite["cases"]:
            if ocp_only and not is_ocp(
                case["params"], {k: tuple(v) for k, v in suite["ocp"].items()}
            ):
                cases.append(CaseResult(suite["name"], case["name"], "skip", ["not an OCP case"]))
            else:
                cases.append(run_case(vectors, suite, case, impl, nan))
        out.append(SuiteResult(suite["name"], cases))
    return out


def totals(results: dict[str, list[SuiteResult]]) -> dict[str, int]:
    """Cases passed, failed (errors included) and skipped over every implementation."""
    cases = [c for suites in results.values() for s in suites for c in s.cases]
    return {"passed": sum(c.status == "pass" for c in cases),
            "failed": sum(c.status in ("fail", "error") for c in cases),
            "skipped": sum(c.status == "skip" for c in cases)}


def report(results: dict[str, list[SuiteResult]], stream=None) -> bool:
    """Print the per-suite table (skips counted), why cases were skipped, the first
    mismatches, and the totals; True when nothing failed."""
    from .._table import format_table

    stream = stream or sys.stdout
    names = list(results)
    suites = [r.suite for r in next(iter(results.values()))] if results else []
    rows = [[suite, *(results[name][i].summary for name in names)]
            for i, suite in enumerate(suites)]
    print(format_table(["suite", *names], rows), file=stream)
    ok = True
    for name in names:
        for suite in results[name]:
            reasons = sorted({c.detail[0] for c in suite.cases
                              if c.status == "skip" and c.detail})
            if reasons and suite.ran:
                print(f"\n{name}: {suite.suite}: {suite.count('skip')} skipped: "
                      + "; ".join(reasons[:3]) + (" ..." if len(reasons) > 3 else ""),
                      file=stream)
        for suite in results[name]:
            for case in (c for c in suite.cases if c.status in ("fail", "error")):
                ok = False
                print(f"\n{name}: {suite.suite}/{case.case} {case.status.upper()}", file=stream)
                for line in case.detail:
                    print(f"  {line}", file=stream)
    count = totals(results)
    print(f"\ncases: {count['passed']} passed, {count['failed']} failed, "
          f"{count['skipped']} skipped", file=stream)
    return ok
