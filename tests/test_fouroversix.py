"""Four-over-six (the ``fouroversix`` package's NVFP4 rules) on the python and numba
backends: hand-derived blocks, and the two backends against each other on the probes.
The package itself: ``tests/test_peers_fouroversix.py`` (``-m peers``)."""

import numpy as np
import pytest

import fp4ref
from fp4ref.conformance import probes
from fp4ref.spec.fouroversix import RULES

BACKENDS = ("python", "numba")


def one_block(values):
    x = np.zeros((1, 16), np.float32)
    x[0, : len(values)] = values
    return x


def codes(q):
    return fp4ref.unpack(q.blocks, "low-first").reshape(-1).tolist()


@pytest.mark.parametrize("backend", BACKENDS)
def test_six_kept_on_a_tie(backend):
    # A = 6: enc = 1536 / 6 = 256, y = 256 (0x78), y4 = 384 (0x7C); both decode 6 exactly:
    # equal errors, and 6 is kept
    q = fp4ref.quantize(one_block([6.0]), format="nvfp4", profile="fouroversix",
                        backend=backend)
    assert int(q.scales.reshape(-1)[0]) == 0x78
    assert codes(q) == [7] + [0] * 15
    assert float(q.stored_tensor_scale) == 6.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_four_wins(backend):
    # A = 4: y = (4/6) * 384 = 256 (0x78): 3 * 1.5 = 4.5 -> 4, decoded 2.667 (error 1/9);
    # y4 = 384 (0x7C): 4 -> 4, 3 -> 3 exactly (error 0): the 4-variant wins
    q = fp4ref.quantize(one_block([4.0, 3.0]), format="nvfp4", profile="fouroversix",
                        backend=backend)
    assert int(q.scales.reshape(-1)[0]) == 0x7C
    assert codes(q) == [6, 5] + [0] * 14
    static = fp4ref.quantize(one_block([4.0, 3.0]), format="nvfp4", profile="fouroversix",
                             scale_rule="fouroversix-static-6", backend=backend)
    # static_6: enc = 2688 / 4 = 672, y = (4/6) * 672 = 448 (0x7E), elements 6 and 4.5 -> 4
    assert int(static.scales.reshape(-1)[0]) == 0x7E
    assert codes(static) == [7, 6] + [0] * 14


@pytest.mark.parametrize("backend", BACKENDS)
def test_eight_under_a_subnormal_scale_is_code_8(backend):
    # A = 1536 given: enc = 1, y = x/6 = 1.4 * 2^-9 -> the subnormal 2^-9 (0x01); the
    # quotient x * 512 = 8.4 rounds to 8, packed by the package as code 0x8; the 4-variant
    # (2 * 2^-9, quotient 4.2 -> 4) decodes to the same 2^-6: a tie, 6 kept
    x = np.float32(8.4 / 512)
    q = fp4ref.quantize(one_block([x]), format="nvfp4", profile="fouroversix",
                        tensor_scale=1536.0, backend=backend)
    assert int(q.scales.reshape(-1)[0]) == 0x01
    assert codes(q)[0] == 0x8


@pytest.mark.parametrize("rule", RULES)
def test_numba_equals_the_oracle_on_the_probes(rule):
    for probe in probes.probes("nvfp4")[:6] + [probes.Probe(
            "normal", "nvfp4", probes.gaussian((4, 64), 0))]:
        a, b = (fp4ref.quantize(probe.x, format="nvfp4", profile="fouroversix", scale_rule=rule,
                                tensor_scale=probe.tensor_scale, backend=backend)
                for backend in BACKENDS)
        assert np.array_equal(a.blocks, b.blocks) and np.array_equal(a.scales, b.scales), (
            rule, probe.label)
        assert np.float32(a.stored_tensor_scale).tobytes() == np.float32(
            b.stored_tensor_scale).tobytes()


def test_cuda_equals_the_oracle():
    if "cuda" not in fp4ref.available_backends():
        pytest.skip("no cuda backend (numba-cuda or its simulator) here")
    x = np.concatenate([probes.probes("nvfp4")[0].x[:4], probes.gaussian((2, 16), 1)])
    for rule in RULES:
        a, b = (fp4ref.quantize(x, format="nvfp4", profile="fouroversix", scale_rule=rule,
                                backend=backend) for backend in ("python", "cuda"))
        assert np.array_equal(a.blocks, np.asarray(b.blocks)), rule
        assert np.array_equal(a.scales, np.asarray(b.scales)), rule
    q = fp4ref.quantize(one_block([np.float32(8.4 / 512)]), format="nvfp4",
                        profile="fouroversix", tensor_scale=1536.0, backend="cuda")
    assert int(np.asarray(q.scales).reshape(-1)[0]) == 0x01
    assert codes(q)[0] == 0x8


@pytest.mark.parametrize("backend", BACKENDS)
def test_quotient_past_2_63_under_a_given_amax(backend):
    # A = 1 given, x = 2^62: enc = 1536, y = 2^62 * 256 saturates to 448 (0x7E) in both
    # variants (equal errors: 6 kept); dec = f32(1/1536), r = 1 / f32(dec * 448) = 3.43,
    # q = 2^62 * r = 1.71 * 2^63 (no clamp, an integer: fake_quantize keeps it); its
    # bfloat16 bits: exponent 190, top mantissa bit 1 -> ((190 - 126) << 1 | 1) & 0xFF =
    # 0x81, packed as the whole byte (the numba kernel once rounded q through int64)
    q = fp4ref.quantize(one_block([2.0**62]), format="nvfp4", profile="fouroversix",
                        tensor_scale=1.0, backend=backend)
    assert int(q.scales.reshape(-1)[0]) == 0x7E
    assert int(q.blocks.reshape(-1)[0]) == 0x81
