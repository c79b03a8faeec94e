"""fp4ref verify: the oracle's step tables, the CI subset of every sweep on numba (and on
cuda in the simulator), and planted bugs that the sweeps catch."""

import dataclasses
import importlib.util
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fp4ref
import fp4ref.verify
from fp4ref.cli import main
from fp4ref.profiles import E8M0_DECODES
from fp4ref.verify import cpu, decoders, runner, sweeps
from fp4ref.verify.steps import discover, segments

ROOT = Path(__file__).parent.parent
SWEEPS = sweeps.all_sweeps()
BY_NAME = {s.name: s for s in SWEEPS}


def bits_of(x: float) -> int:
    return int(np.array(x, np.float32).view(np.uint32))


def test_segments_cover_every_pattern_once():
    parts = segments(0, 1 << 32)
    assert parts[0][0] == 0 and parts[-1][1] == (1 << 32) - 1
    assert all(b + 1 == c for (_, b), (c, _) in zip(parts, parts[1:], strict=False))
    # +0, -0, +Inf, -Inf alone; each sign's NaNs one segment
    for u in (0, 1 << 31, 0x7F800000, 0xFF800000):
        assert (u, u) in parts
    assert (0x7F800001, 0x7FFFFFFF) in parts and (0xFF800001, 0xFFFFFFFF) in parts


def test_discover_finds_the_steps_of_a_monotone_function():
    cuts = [5, 17, 1 << 23, (1 << 23) + 3, 0x40000000]
    steps = discover(lambda u: sum(u >= c for c in cuts), 0, 0x7F800000)
    assert steps.starts.tolist() == [0, *cuts] and steps.values.tolist() == list(range(6))
    probe = np.array([0, 4, 5, 16, 17, (1 << 23) - 1, 0x3FFFFFFF, 0x40000000, 0x7F7FFFFF])
    assert steps.expected(probe).tolist() == [sum(u >= c for c in cuts) for u in probe]


def test_discover_rejects_an_oracle_that_is_not_monotone_on_a_segment():
    # equal at every segment's ends, alternating inside: the samples find it
    with pytest.raises(AssertionError, match="not monotone"):
        discover(lambda u: (u >> 12) & 1 if u & 0x7FFFFF not in (0, 0x7FFFFF) else 0,
                 0, 1 << 24)


def _hand_e2m1_starts(tie: str) -> list[int]:
    """First positive pattern of each E2M1 code, from the midpoints by hand: a tie goes up
    under "away", and under "even" where the code below is odd (0.75, 1.75, 3.5)."""
    up = {"even": (0, 1, 0, 1, 0, 1, 0), "away": (1,) * 7, "zero": (0,) * 7}[tie]
    mids = (0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0)
    return [bits_of(m) + (0 if u else 1) for m, u in zip(mids, up, strict=True)]


@pytest.mark.parametrize("tie", ["even", "away", "zero"])
def test_e2m1_decision_points_are_the_midpoints(tie):
    steps = runner.oracle_steps(BY_NAME[f"e2m1 encode, ties {tie}"])[0]
    points = steps.decision_points().tolist()
    positive = _hand_e2m1_starts(tie)
    negative = [u | 1 << 31 for u in positive]
    # codes 0..7, then the positive NaNs (code 0), -0 (code 8), 9..15, the negative NaNs
    assert points == [*positive, 0x7F800001, 1 << 31, *negative, 0xFF800001]


def test_e4m3_table_has_every_code_once_per_sign():
    steps = runner.oracle_steps(BY_NAME["e4m3 encode, ties even, overflow to NaN"])[0]
    positive = steps.values[steps.starts < 0x7F800001].tolist()
    assert positive == list(range(0x80))  # 0x00..0x7E, then 0x7F from 464 (past 448) on


@pytest.mark.parametrize("sweep", SWEEPS[::3], ids=lambda s: s.name)
def test_step_tables_agree_with_the_oracle_at_random_patterns(sweep):
    steps = runner.oracle_steps(sweep)[0]
    rng = random.Random(sweep.name)
    picks = [rng.randrange(sweep.lo, sweep.hi) for _ in range(300)]
    assert steps.expected(np.array(picks)).tolist() == [sweep.oracle(u) for u in picks]


def test_mx_floor_table_is_the_exponent_rule():
    # OCP MX 6.3 by hand: floor(log2 amax) - 2, clamped at -127, from the exponent field
    steps = runner.oracle_steps(BY_NAME["mxfp4 scale floor"])[0]
    for e in range(0, 255):
        for u in (e << 23, (e << 23) | 0x7FFFFF):
            want = 0 if u == 0 else max(e - 2, 0) if e else 0
            assert int(steps.expected(np.array([u]))[0]) == want, hex(u)


def test_ci_subset_of_every_sweep_agrees_on_numba():
    families = tuple(f for f in fp4ref.verify.ALL_FAMILIES if f != "quantize")
    report = fp4ref.verify.run(backends=["numba"], families=families, progress=None)
    assert report.ok, report.table()
    names = {r.sweep for r in report.results}
    singles = [s for s in SWEEPS if s.family != "quantize"]
    decoder_rows = 3 + len(E8M0_DECODES) + len(decoders.tensor_multipliers())
    assert len(names) == len(singles) + decoder_rows
    assert all(r.covered > 0 for r in report.results)


@pytest.mark.parametrize("fmt", ["mxfp4", "nvfp4"])
def test_ci_subset_of_the_ocp_quantizers_agrees_on_numba(fmt):
    # the other profiles' quantizer sweeps take as long each (their oracle tables): they
    # run in `fp4ref verify`
    report = fp4ref.verify.run(backends=["numba"], families=("quantize",), progress=None,
                               match=f"{fmt} quantize as ocp ")
    assert len(report.results) == 1 and report.ok, report.table()


def test_quantizer_blocks_hold_their_patterns_and_the_pin():
    per, pin = sweeps.QUANTIZE_BLOCKS["mxfp4"]
    bits = np.array([5, 40, (1 << 32) - 1], np.uint32)
    blocks, where = cpu.quantizer_blocks(bits, per, pin)
    assert blocks.shape == (3, per + 1) and (blocks[:, per] == pin).all()
    assert blocks[0, :per].tolist() == list(range(per)) and blocks[1, 0] == per
    last = (1 << 32) - 1 - ((1 << 32) - 1) % per
    assert blocks[2, :per].tolist()[:4] == [last, last + 1, last + 2, last + 3]
    assert (blocks[2, 4:per] == 0).all()  # +0.0 past the last pattern
    assert blocks.ravel()[where].tolist() == bits.tolist()
    whole = np.arange(2 * per, 4 * per, dtype=np.uint32)
    blocks, where = cpu.quantizer_blocks(whole, per, pin)
    assert where is None and blocks[:, :per].ravel().tolist() == whole.tolist()


def test_quantizer_sweep_of_one_binade_agrees():
    sweep = BY_NAME["nvfp4 quantize as modelopt (modelopt, ties even, zero quotient)"]
    lo = 0x40800000 - 0x40800000 % sweep.block  # [4, 8): block scales 1 and up
    part = dataclasses.replace(sweep, lo=lo, hi=lo + sweep.block * 20000)
    result = runner.run_sweep(part, cpu, "numba", full=True, chunk=sweep.block * 4096)
    assert (result.covered, result.disagreements) == (sweep.block * 20000, 0)


def test_cli_prints_the_table_and_fails_on_a_disagreement(capsys, monkeypatch):
    assert main(["verify", "--only", "mx-scale", "--quiet", "--stride", str(1 << 22)]) == 0
    out = capsys.readouterr().out
    rules = len(sweeps.scale_rules.MX_RULES)
    assert "mxfp4 scale ggml" in out and f"{rules} sweeps agree, 0 disagree" in out
    monkeypatch.setattr(cpu, "mx_scale", lambda bits, rule: np.zeros(bits.size, np.uint8))
    assert main(["verify", "--only", "mx-scale", "--quiet", "--stride", str(1 << 22)]) == 1
    assert "first disagreements" in capsys.readouterr().out


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="families"):
        fp4ref.verify.run(families=("e2m2",))
    with pytest.raises(ValueError, match="backend"):
        fp4ref.verify.run(backends=["python"])
    with pytest.raises(ValueError, match="stride"):
        fp4ref.verify.run(stride=0)


# Planted bugs. Each kernel below is the real numba kernel with one mistake of a kind the
# issue names; the sweep reports it with both answers.

def _wrong_threshold(bits, tie, zero_sign):
    """The element encoder with its 4 | 6 threshold one float32 too high (5.0 -> next)."""
    out = cpu.element_code(bits, tie, zero_sign)
    x = np.abs(bits.view(np.float32))
    out[(x > 5.0) & (x <= np.nextafter(np.float32(5.0), np.float32(6))) & (out & 7 == 7)] -= 1
    return out


def _flushed(bits, rule):
    """An MXFP4 rule whose inputs are flushed to zero when subnormal (DAZ)."""
    flushed = np.where(bits & 0x7F800000 == 0, np.uint32(0), bits)
    return cpu.mx_scale(flushed, rule)


def _fma_divide(bits, recipe, tensor, clamp, zero_scale):
    """The ModelOpt recipe (no clamp, no zero scale) with its division amax / (6 s_t) done
    the fast GPU way: q = amax * (1 / b), then one refinement q + fma(-q, b, amax) / b by
    fused multiply-adds (each a float64 expression rounded once to float32, as an FMA
    rounds). Where amax * (1 / b) overflows the refinement gives Inf - Inf = NaN."""
    f32 = np.float32
    a = bits.view(f32)
    b = f32(6) * f32(tensor)
    r = f32(1) / b
    with np.errstate(all="ignore"):
        q = a * r
        e = (a.astype(np.float64) - q.astype(np.float64) * float(b)).astype(f32)
        y = (e.astype(np.float64) * float(r) + q.astype(np.float64)).astype(f32)
    return fp4ref.encode_e4m3(np.abs(y), backend="numba")


class Planted:
    """The numba sweep module with one kernel replaced."""

    def __init__(self, **kernels):
        self.__dict__.update({"device": cpu.device, "host": cpu.host, **kernels})

    def __getattr__(self, name):
        return getattr(cpu, name)


def test_a_wrong_threshold_is_caught():
    sweep = BY_NAME["element code, ties even, zero keep"]
    result = runner.run_sweep(sweep, Planted(element_code=_wrong_threshold), "numba",
                              full=False)
    assert result.disagreements == 2  # +5.0000005 and -5.0000005
    assert result.examples[0] == (bits_of(np.nextafter(np.float32(5), np.float32(6))), 6, 7)


def test_flushed_subnormals_are_caught():
    sweep = BY_NAME["mxfp4 scale ggml"]
    result = runner.run_sweep(sweep, Planted(mx_scale=_flushed), "numba", full=False)
    assert result.disagreements > 0
    u, got, want = result.examples[0]
    assert 0 < u < 0x800000 and got == 0 and want != 0


def test_an_fma_refined_division_is_caught():
    sweep = next(s for s in SWEEPS
                 if s.name.startswith("nvfp4 scale modelopt as ocp, tensor amax 1"))
    result = runner.run_sweep(sweep, Planted(nv_scale=_fma_divide), "numba", full=False)
    assert result.disagreements > 0
    u, got, want = result.examples[0]
    assert (got, want) == (0x7F, 0x7E) and sweeps.value(u) > 7e35  # NaN where 448 is due


def test_a_wrong_answer_far_from_any_decision_point_needs_the_full_sweep():
    sweep = BY_NAME["e2m1 encode, ties away"]
    lonely = 0x3F123457  # 0.571...: code 1, deep inside its run

    def one_wrong(bits, tie):
        out = cpu.encode_e2m1(bits, tie)
        out[bits == lonely] = 2
        return out

    planted = Planted(encode_e2m1=one_wrong)
    assert runner.run_sweep(sweep, planted, "numba", full=False).disagreements == 0
    binade = dataclasses.replace(sweep, lo=0x3F000000, hi=0x3F800000)
    full = runner.run_sweep(binade, planted, "numba", full=True, chunk=1 << 21)
    assert (full.covered, full.disagreements) == (1 << 23, 1)
    assert full.examples == [(lonely, 2, 1)]


def test_full_sweep_of_one_binade_agrees_and_counts_every_pattern():
    sweep = dataclasses.replace(BY_NAME["e4m3 encode, ties even, saturate"],
                                lo=0x43000000, hi=0x43800000)  # [128, 256)
    result = runner.run_sweep(sweep, cpu, "numba", full=True, chunk=1 << 20)
    assert (result.covered, result.disagreements) == (1 << 23, 0)


HAS_NUMBA_CUDA = importlib.util.find_spec("numba_cuda") is not None
_SIMULATED = """
import dataclasses, numpy as np
import fp4ref
import fp4ref.verify
from fp4ref.profiles import E8M0_DECODES
from fp4ref.verify import cuda, runner, sweeps
report = fp4ref.verify.run(backends=["cuda"], stride=1 << 26, radius=0, progress=None,
                           families=("e2m1", "element", "e4m3", "mx-scale", "nv-scale"))
assert report.ok, report.table()
for s in sweeps.all_sweeps(("quantize",))[::8]:  # fp4ref.quantize on device arrays
    lo = 0x40800000 - 0x40800000 % s.block
    part = dataclasses.replace(s, lo=lo, hi=lo + 4 * s.block)
    r = runner.run_sweep(part, cuda, "cuda", full=True, chunk=2 * s.block)  # built there
    assert (r.covered, r.disagreements) == (4 * s.block, 0), r
    r = runner.run_sweep(part, cuda, "cuda", full=False, stride=7, radius=0)  # on the host
    assert r.covered > 4 and r.disagreements == 0, r
for s in sweeps.all_sweeps()[::6]:  # the device judge, on a range of 48 patterns
    small = dataclasses.replace(s, lo=0x3E7FFFE8, hi=0x3E800018)
    r = runner.run_sweep(small, cuda, "cuda", full=True, chunk=16)
    assert (r.covered, r.disagreements) == (48, 0), (s.name, r)
plant = dataclasses.replace(sweeps.all_sweeps(("e2m1",))[0], lo=0x3E7FFFE8, hi=0x3E800018,
                            kernel=lambda m, bits: m.mx_scale(bits, "floor"))
r = runner.run_sweep(plant, cuda, "cuda", full=True, chunk=16)
assert r.disagreements == 48 and len(r.examples) == 5, r
print("ok", len(report.results))
"""


@pytest.mark.skipif(not HAS_NUMBA_CUDA, reason="numba-cuda is not installed (fp4ref[cuda])")
def test_cuda_sweeps_in_the_simulator():
    run = subprocess.run([sys.executable, "-c", _SIMULATED], capture_output=True, text=True,
                         env={**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}, cwd=ROOT,
                         timeout=300)
    assert run.returncode == 0 and "ok" in run.stdout, run.stdout[-3000:] + run.stderr[-3000:]

