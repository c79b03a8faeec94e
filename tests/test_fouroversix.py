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


def decode_backends():
    return BACKENDS + (("cuda",) if "cuda" in fp4ref.available_backends() else ())


def decode(code, scale, amax, backend, dtype="float32", **options):
    # one block: element 0 is ``code``, the rest code 0, under E4M3 byte ``scale``
    blocks = np.zeros((1, 8), np.uint8)
    blocks[0, 0] = code
    out = fp4ref.dequantize(blocks, np.array([[scale]], np.uint8), format="nvfp4",
                            profile="fouroversix", tensor_scale=amax, dtype=dtype,
                            backend=backend, **options)
    bits = np.asarray(out).view(np.uint32 if dtype == "float32" else np.uint16)
    return [int(b) for b in bits.reshape(-1)[:2]]


@pytest.mark.parametrize("backend", decode_backends())
def test_decode_rounds_twice(backend):
    # A = 1536 + 2^-13 (0x44C00001) = 2^10 (1.5 + 2^-23); code 3 (1.5) under 0x38 (1.0):
    # f32(1.5 * A) = 2^11 (1.125 + 0.75 * 2^-23) -> 2^11 (1.125 + 2^-23); / 1536 =
    # 1.5 + (4/3) 2^-23 -> 1.5 + 2^-23 = 0x3FC00001 (one multiplier A / 1536 = 1 + (2/3)
    # 2^-23 -> 1 + 2^-23 would give 1.5 + 1.5 * 2^-23, a tie, 0x3FC00002); code 0 is +0
    amax = np.uint32(0x44C00001).view(np.float32)
    assert decode(0x3, 0x38, amax, backend) == [0x3FC00001, 0]
    assert decode(0xB, 0x38, amax, backend) == [0xBFC00001, 0]
    assert decode(0x3, 0x38, amax, backend, "bfloat16") == [0x3FC0, 0]
    assert decode(0x3, 0x38, amax, backend, "float16") == [0x3E00, 0]


@pytest.mark.parametrize("backend", decode_backends())
def test_decode_subnormal_product_then_divisor(backend):
    # A = 2^-149: code 7 (6) under 0x7E (448): 2688 * 2^-149 is exact (2688 ulps), / 1536 =
    # 1.75 ulps -> 2 ulps = 0x00000002 (one multiplier f32(2^-149 / 1536) is 0 and gives 0);
    # code 1 (0.5) under 0x01 (2^-9): 2^-159 -> +0, / 1536 -> +0; code 0x8 (-0) -> -0
    tiny = np.uint32(1).view(np.float32)
    assert decode(0x7, 0x7E, tiny, backend) == [0x00000002, 0]
    assert decode(0x1, 0x01, tiny, backend) == [0, 0]
    assert decode(0x8, 0x7E, tiny, backend) == [0x80000000, 0]


@pytest.mark.parametrize("backend", decode_backends())
def test_decode_without_an_amax_and_at_inf(backend):
    # no stored amax: the package skips the tensor-scale step, P * s_b: 6 * 448 = 2688
    # (0x45280000); A = Inf: 6 * 448 * Inf / 1536 = Inf, 0 * Inf = NaN (canonical here)
    assert decode(0x7, 0x7E, None, backend) == [0x45280000, 0]
    assert decode(0xF, 0x7E, np.inf, backend) == [0xFF800000, 0x7FC00000]


@pytest.mark.parametrize("backend", decode_backends())
def test_a_quantized_tensor_decodes_by_its_rule(backend):
    # x = [4, 3]: A = 4 is stored; static-4 (M * S = 4 * 448 = 1792): enc = 1792 / 4 = 448,
    # y = (4 / 4) * 448 = 448 (0x7E), codes 4 -> 4 (6), 3 -> 3 (5); decoded
    # f32(4 * 448 * 4) / 1792 = 4 and f32(3 * 448 * 4) / 1792 = 3 (dividing by 1536 would
    # give 4.667 and 3.5)
    x = one_block([4.0, 3.0])
    q = fp4ref.quantize(x, format="nvfp4", profile="fouroversix",
                        scale_rule="fouroversix-static-4", backend=backend)
    assert int(np.asarray(q.scales).reshape(-1)[0]) == 0x7E and codes(q)[:2] == [6, 5]
    assert np.asarray(fp4ref.dequantize(q, backend=backend)).reshape(-1)[:3].tolist() == [
        4.0, 3.0, 0.0]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_numba_decode_equals_the_oracle_on_every_scale_byte(dtype):
    codes16 = np.tile(np.arange(16, dtype=np.uint8), (256, 1))
    blocks, scales = fp4ref.pack(codes16), np.arange(256, dtype=np.uint8)[:, None]
    for amax in (None, np.uint32(0x44C00001).view(np.float32), np.float32(2.0**-149),
                 np.float32(2.0**-140), np.float32(3.0e38), np.float32(0.0), np.inf):
        a, b = (np.asarray(fp4ref.dequantize(blocks, scales, format="nvfp4",
                                             profile="fouroversix", tensor_scale=amax,
                                             dtype=dtype, backend=backend))
                for backend in BACKENDS)
        assert a.tobytes() == b.tobytes(), amax


@pytest.mark.parametrize("backend", decode_backends())
def test_a_nan_tensor_stores_x86_torch_max_nan(backend):
    # x.abs().max() of a tensor holding NaN on x86 (one torch thread): 0xFFFFFFFF whatever
    # the NaN's bits; enc = 1536 / A keeps it, so every block scale is the negative NaN 0xFF
    x = np.ones((1, 32), np.float32)
    x[0, 20] = np.uint32(0x7FC00001).view(np.float32)
    q = fp4ref.quantize(x, format="nvfp4", profile="fouroversix", backend=backend)
    assert int(np.float32(q.stored_tensor_scale).view(np.uint32)) == 0xFFFFFFFF
    assert np.asarray(q.scales).reshape(-1).tolist() == [0xFF, 0xFF]


@pytest.mark.parametrize("backend", decode_backends())
def test_an_inf_tensor_gives_the_inf_block_x86s_default_nan(backend):
    # A = Inf: enc = 1536 / Inf = 0; the Inf block's y = (Inf / 6) * 0 is x86's default NaN
    # 0xFFC00000 (negative): byte 0xFF, its values NaN, code_of(NaN) = 0xB; the other
    # block's y = (2 / 6) * 0 = 0: byte 0x00, codes 0 (fouroversix 1.0.5 run: the same; a
    # GPU's own Inf * 0 is positive, so the kernel writes x86's NaN explicitly)
    x = np.ones((1, 32), np.float32)
    x[0, 3], x[0, 20] = np.inf, 2.0
    q = fp4ref.quantize(x, format="nvfp4", profile="fouroversix", backend=backend)
    assert np.asarray(q.scales).reshape(-1).tolist() == [0xFF, 0x00]
    assert np.asarray(q.blocks).reshape(-1).tolist() == [0xBB] * 8 + [0] * 8
