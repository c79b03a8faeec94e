"""``fp4ref.quantize`` on the GPU bit for bit against the numba CPU backend and the oracle.

Every profile, every MXFP4 scale rule, the optimal searches, each tie rule / sign of zero /
nibble order, on small matrices holding zero blocks, subnormals, element ties, NaN and Inf
(the simulator runs every GPU thread as a Python thread).
"""

import warnings

import ml_dtypes
import numpy as np
import pytest
from numba import cuda
from numba.cuda import config

import fp4ref
from fp4ref import _device
from fp4ref.profiles import get as get_profile
from fp4ref.spec.scale_rules import MX_RULES

PROFILES = tuple(fp4ref.profiles())
NV_PROFILES = tuple(p for p in PROFILES if get_profile(p).nvfp4_recipe is not None)
#: Element options not all profiles cover: (rounding, zero sign, nibble order).
ELEMENT_OPTIONS = (("away", "drop", "split-half"), ("zero", "keep", "high-first"),
                   ("even", "negative", "split-half"))


@pytest.fixture(autouse=True)
def _quiet_overflow():
    with warnings.catch_warnings():  # the simulator computes float32 overflow in numpy
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _special(nan: bool) -> np.ndarray:
    """6 x 64 float32: a zero block (signed zeros), subnormals, E2M1 ties at scale 1
    (amax 6), a block with Inf (and with NaN if ``nan``), huge and random values."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((6, 64)).astype(np.float32)
    x[0, :32] = 0.0
    x[0, 1::3] = -0.0
    x[1, :32] = np.float32(1e-40) * np.arange(-16, 16, dtype=np.float32)
    x[1, 32:48] = np.float32(2.0**-126) * rng.standard_normal(16).astype(np.float32)
    ties = np.array([6, .25, .75, 1.25, 1.75, 2.5, 3.5, 5, 0.5, 1, 1.5, 2, 3, 4, .1, 0],
                    np.float32)
    x[2, :16], x[2, 16:32] = ties, -ties
    x[2, 32:48], x[2, 48:] = ties * 2.0**-8, ties * 2.0**20
    x[3, 3] = np.inf
    x[3, 40] = np.nan if nan else -np.inf
    x[4] *= np.float32(1e37)
    x[5] *= np.float32(2.0) ** rng.integers(-30, 30, 64).astype(np.float32)
    return x


def _same(got, expected, label: str) -> None:
    blocks = got.blocks if isinstance(got.blocks, np.ndarray) else got.blocks.copy_to_host()
    scales = got.scales if isinstance(got.scales, np.ndarray) else got.scales.copy_to_host()
    assert np.array_equal(blocks, expected.blocks), label
    assert np.array_equal(scales, expected.scales), label
    for name in ("tensor_scale", "stored_tensor_scale"):
        a, b = getattr(got, name), getattr(expected, name)
        assert (a is None) == (b is None), (label, name)
        if a is not None:
            assert np.float32(a).view(np.uint32) == np.float32(b).view(np.uint32) or (
                np.isnan(a) and np.isnan(b)), (label, name, a, b)


def _check(x: np.ndarray, oracle: bool = True, **options) -> None:
    """GPU (device in, device out) against numba and, if ``oracle``, the python backend."""
    label = repr(options)
    expected = fp4ref.quantize(x, backend="numba", **options)
    got = fp4ref.quantize(cuda.to_device(x), **options)
    assert _device.is_device(got.blocks) and _device.is_device(got.scales), label
    _same(got, expected, label)
    if oracle:
        _same(expected, fp4ref.quantize(x, backend="python", **options), label)


@pytest.mark.parametrize("profile", PROFILES)
def test_mxfp4_every_profile(profile):
    _check(_special(nan=True), profile=profile)


@pytest.mark.parametrize("profile", NV_PROFILES)
def test_nvfp4_every_profile_with_a_given_tensor_scale(profile):
    prof = get_profile(profile)
    tensor_scale = (0.01 if prof.tensor_scale_direction == "decode" else 100.0) \
        if prof.tensor_scale else None
    _check(_special(nan=True), format="nvfp4", profile=profile, tensor_scale=tensor_scale)


@pytest.mark.parametrize("profile", NV_PROFILES)
def test_nvfp4_tensor_scale_reduced_on_the_device(profile):
    _check(_special(nan=False), oracle=False, format="nvfp4", profile=profile)


@pytest.mark.parametrize(("profile", "data", "on_device"), [
    ("ocp", "finite", True), ("flashinfer", "finite", True),
    ("compressed-tensors", "finite", True), ("torchao-floor", "finite", True),
    ("ocp", "zeros", False), ("ocp", "inf", False), ("ocp", "nan", False),
    ("compressed-tensors", "zeros", True), ("ocp", "subnormal", True),
    ("qwantize", "finite", False)])
def test_nvfp4_operand_found_on_the_device(monkeypatch, profile, data, on_device):
    """With no tensor scale given, the amax's operand and its tables are built on the GPU
    (:func:`fp4ref.kernels.cuda.quantize.quantize_nv_by_device_amax`) where the tables
    hold; an all-zero tensor (operand 0) or one holding NaN falls back to the host's
    operand (an Inf amax makes it Inf), and profiles without a tensor scale never take
    that path. Bytes and tensor scales against the CPU either way."""
    from fp4ref.kernels.cuda import quantize as kernels

    calls = []
    real = kernels.quantize_nv_by_device_amax

    def spy(*args):
        found = real(*args)
        calls.append(found is not None)
        return found

    monkeypatch.setattr(kernels, "quantize_nv_by_device_amax", spy)
    finite = _special(nan=False)
    finite[~np.isfinite(finite)] = np.float32(-3e38)
    x = {"finite": finite, "zeros": np.zeros((2, 32), np.float32),
         "inf": _special(nan=False), "nan": _special(nan=True),
         "subnormal": np.float32(2.0**-140) * finite}[data]
    _check(x, oracle=False, format="nvfp4", profile=profile)
    assert any(calls) == on_device, calls


@pytest.mark.parametrize(("profile", "amax"), [
    ("ocp", 7.5), ("ocp", 3e-30), ("ocp", 3.4028235e38), ("ocp", 0.0),
    ("compressed-tensors", 7.5), ("compressed-tensors", 1e-41), ("flashinfer", 1e30),
    ("torchao-floor", 0.02)])
def test_operand_tables_as_the_host_builds_them(profile, amax):
    """The device's operand and tables of a tensor amax (the largest of the partial maxima)
    against the host's: the operand of ``fp4ref.quantize``'s front door, the divisors
    (:func:`fp4ref.kernels.scale_rules.nvfp4_divisor`), reciprocal rows and scale bounds
    with their usability (:func:`fp4ref.kernels.scale_rules.nvfp4_scale_bounds`)."""
    import math

    from fp4ref.kernels.cuda import quantize as kernels
    from fp4ref.kernels.options import QuantizeOptions
    from fp4ref.kernels.scale_rules import SCALE_BOUNDS, nvfp4_divisor, nvfp4_scale_bounds
    from fp4ref.quantize import _tensor_scales

    prof = get_profile(profile)
    encode = prof.tensor_scale_direction == "encode"
    o = QuantizeOptions("nvfp4", None, prof, math.nan).kernel
    bits = int(np.float32(amax).view(np.uint32))
    partial = cuda.to_device(np.array([0, bits, bits // 2, min(bits, 7)], np.int32))
    record = cuda.device_array(3, np.float64)
    divisors = cuda.device_array(256, np.float64)
    pairs = cuda.device_array(kernels.RECIPROCAL_TABLE, np.float32)
    bounds = cuda.device_array(SCALE_BOUNDS, np.int32)
    kernels._operand_tables[1, 256](partial, encode, prof.nvfp4_recipe == "compressed-tensors",
                                    o.nvfp4_recipe, o.clamp_low, o.clamp_high, o.zero_block,
                                    o.zero_block_scale, True, record, divisors, pairs, bounds)
    got = record.copy_to_host()
    operand = _tensor_scales(prof, None, amax=lambda: float(np.float32(amax)))[0]
    assert got[0] == bits
    assert np.float64(got[1]).view(np.uint64) == np.float64(operand).view(np.uint64)
    expected = np.array([nvfp4_divisor(b, o.nvfp4_recipe, operand)[0] for b in range(256)])
    assert np.array_equal(divisors.copy_to_host().view(np.uint64), expected.view(np.uint64))
    rows, _ = kernels._reciprocal_rows(o.nvfp4_recipe, operand)
    assert np.array_equal(pairs.copy_to_host().view(np.uint32), rows.view(np.uint32))
    table, usable = nvfp4_scale_bounds(o.nvfp4_recipe, operand, o.clamp_low, o.clamp_high,
                                       o.zero_block, o.zero_block_scale)
    assert got[2] == float(usable), (profile, amax)
    if usable:
        assert np.array_equal(bounds.copy_to_host(), table)


@pytest.mark.parametrize("profile", ["ocp", "compressed-tensors"])
def test_nvfp4_tensor_amax_with_nan(profile):
    x = _special(nan=True)
    _check(x[3:4], oracle=False, format="nvfp4", profile=profile)


@pytest.mark.parametrize("rule", [*MX_RULES, "optimal"])
def test_mxfp4_every_scale_rule(rule):
    _check(_special(nan=True), scale_rule=rule)


@pytest.mark.parametrize("profile", ["qwantize", "ocp", "ggml", "mistralrs"])
def test_mxfp4_optimal_from_each_start(profile):
    _check(_special(nan=True)[1:], oracle=profile == "qwantize", profile=profile,
           scale_rule="optimal")


@pytest.mark.parametrize("profile", ["qwantize", "ocp", "compressed-tensors"])
def test_nvfp4_optimal(profile):
    _check(_special(nan=False)[1:], oracle=profile == "qwantize", format="nvfp4",
           profile=profile, scale_rule="optimal")


@pytest.mark.parametrize("fmt", ["mxfp4", "nvfp4"])
@pytest.mark.parametrize("options", ELEMENT_OPTIONS)
def test_element_options(fmt, options):
    rounding, zero_sign, order = options
    profile = get_profile("ocp").with_options(zero_sign=zero_sign, nibble_order=order)
    _check(_special(nan=True), format=fmt, profile=profile, rounding=rounding,
           tensor_scale=0.02 if fmt == "nvfp4" else None)


@pytest.mark.parametrize(("fmt", "order"), [
    ("mxfp4", "low-first"), ("mxfp4", "high-first"), ("mxfp4", "split-half"),
    ("nvfp4", "split-half")])
def test_rule_kernels_over_several_warp_steps(fmt, order):
    """75 blocks: 3 steps of a warp's 32 blocks, the last part-full, over more steps than
    the simulator launches warps (grid-stride); NaN, Inf and scales over a wide range."""
    block = 32 if fmt == "mxfp4" else 16
    rng = np.random.default_rng(8)
    x = rng.standard_normal((3, 25 * block)).astype(np.float32)
    x *= np.float32(2.0) ** rng.integers(-40, 40, (3, 25, 1)).repeat(block, 2).reshape(x.shape)
    x[1, 5], x[2, 100] = np.nan, np.inf
    profile = get_profile("ocp").with_options(nibble_order=order)
    _check(x, oracle=False, format=fmt, profile=profile,
           tensor_scale=0.02 if fmt == "nvfp4" else None)


def test_largest_magnitude_in_quads_and_the_tail():
    from fp4ref.kernels.cuda.quantize import largest_magnitude

    rng = np.random.default_rng(6)
    bits = rng.integers(0, 2**30, 4 * 37 + 3, dtype=np.uint32)
    bits[::3] |= np.uint32(0x80000000)  # signs are ignored
    for where in (5, 4 * 37 + 1):  # read by a 16-byte load, or in the last 3
        data = bits.copy()
        data[where] = 0xFF000000  # -2^127: the largest magnitude once the sign is cleared
        expected = int((data & np.uint32(0x7FFFFFFF)).max())
        assert expected == 0x7F000000
        assert largest_magnitude(cuda.to_device(data)) == expected


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_16_bit_device_input_widens_exactly(dtype):
    x = _special(nan=True)
    x[4] = np.float32(1e-6) * x[5]  # float16 subnormals
    narrow = x.astype(ml_dtypes.bfloat16 if dtype == "bfloat16" else np.float16)
    for fmt in ("mxfp4", "nvfp4"):
        expected = fp4ref.quantize(narrow, format=fmt, tensor_scale=None if fmt == "mxfp4"
                                   else 0.5, backend="numba")
        device = cuda.to_device(narrow.view(np.uint16)).view(narrow.dtype)
        got = fp4ref.quantize(device, format=fmt, tensor_scale=None if fmt == "mxfp4" else 0.5)
        _same(got, expected, f"{dtype} {fmt}")


def test_host_input_with_backend_cuda_gives_numpy():
    x = _special(nan=True)
    got = fp4ref.quantize(x, backend="cuda", profile="mistralrs")
    assert isinstance(got.blocks, np.ndarray) and isinstance(got.scales, np.ndarray)
    _same(got, fp4ref.quantize(x, backend="numba", profile="mistralrs"), "host")


def test_unaligned_device_input():
    x = _special(nan=True).reshape(-1)
    base = cuda.to_device(np.concatenate([np.zeros(1, np.float32), x]))
    got = fp4ref.quantize(base[1:].reshape(6, 64))
    _same(got, fp4ref.quantize(x.reshape(6, 64), backend="numba"), "unaligned")


@pytest.mark.parametrize("profile", ["comfy", "flashinfer"])
def test_swizzled_scales_on_the_device(profile):
    x = np.random.default_rng(2).standard_normal((2, 130, 32)).astype(np.float32)
    _check(x, oracle=False, format="nvfp4", profile=profile)


def test_empty_and_leading_shapes():
    for shape in [(0, 32), (3, 0), (2, 1, 32)]:
        x = np.ones(shape, np.float32)
        _check(x, oracle=False)
        _check(x, oracle=False, format="nvfp4")


def test_device_input_errors():
    with pytest.raises(ValueError, match="multiple of the block size 32"):
        fp4ref.quantize(cuda.to_device(np.zeros((2, 48), np.float32)))
    with pytest.raises(TypeError, match="x must be a device array of dtype"):
        fp4ref.quantize(cuda.to_device(np.zeros((2, 32), np.float64)))
    with pytest.raises(TypeError, match="backend 'numba' runs on host arrays"):
        fp4ref.quantize(cuda.to_device(np.zeros((2, 32), np.float32)), backend="numba")


@pytest.mark.skipif(bool(config.ENABLE_CUDASIM), reason="torch tensors need a real GPU")
def test_torch_in_torch_out():
    torch = pytest.importorskip("torch")
    x = _special(nan=True)
    for dtype in ("float32", "bfloat16"):
        host = x.astype(ml_dtypes.bfloat16) if dtype == "bfloat16" else x
        tensor = torch.from_numpy(x).cuda().to(getattr(torch, dtype))
        for fmt in ("mxfp4", "nvfp4"):
            got = fp4ref.quantize(tensor, format=fmt, profile="qwantize")
            expected = fp4ref.quantize(host, format=fmt, profile="qwantize", backend="numba")
            for name in ("blocks", "scales"):
                array = getattr(got, name)
                assert isinstance(array, torch.Tensor) and array.is_cuda, (dtype, fmt, name)
                assert np.array_equal(array.cpu().numpy(), getattr(expected, name)), (dtype, fmt)


#: The rule kernel's three ways to an NVFP4 element's code: (by_reciprocal, by_threshold).
CODE_FORMS = {"reciprocal": (True, True), "threshold": (False, True),
              "division": (False, False)}


@pytest.mark.parametrize("form", list(CODE_FORMS))
@pytest.mark.parametrize(("profile", "tensor_scale"), [
    ("ocp", 0.02), ("ocp", 3e38), ("ocp", 2.0**-110), ("ocp", 2.0**-140),
    ("compressed-tensors", 100.0), ("qwantize", None)])
def test_nvfp4_codes_by_each_form(monkeypatch, form, profile, tensor_scale):
    """The rule kernel's three ways to an element's code (the quotient from the block's
    divisor and reciprocal, decision thresholds of the divisor, or the division), each
    against the CPU. A tensor scale of 3e38 makes the divisors of the larger scale bytes
    infinite, and 2^-110 and 2^-140 put the smaller ones below the reciprocal's range
    (2^-140: subnormal products): those blocks divide."""
    from fp4ref.kernels.cuda import quantize as kernels

    by_reciprocal, by_threshold = CODE_FORMS[form]
    monkeypatch.setitem(kernels.RULE_SHAPE, "by_reciprocal", by_reciprocal)
    monkeypatch.setitem(kernels.RULE_SHAPE, "by_threshold", by_threshold)
    _check(_special(nan=True), oracle=False, format="nvfp4", profile=profile,
           tensor_scale=tensor_scale)


@pytest.mark.parametrize("form", list(CODE_FORMS))
@pytest.mark.parametrize(("fmt", "profile"), [("mxfp4", "ocp"), ("mxfp4", "torchao-floor"),
                                              ("nvfp4", "ocp"), ("nvfp4", "torchao-floor")])
def test_rule_kernels_pipelined(monkeypatch, form, fmt, profile):
    """The rule kernels with ``pipeline`` (a warp's next step's loads issued before this
    step's work) against the CPU, over several steps a warp and a part-full last step (the
    special rows repeated: 120 x 64 floats, 7.5 MXFP4 and 15 NVFP4 steps of a warp)."""
    from fp4ref.kernels.cuda import quantize as kernels

    monkeypatch.setitem(kernels.RULE_SHAPE, "pipeline", True)
    monkeypatch.setitem(kernels.RULE_SHAPE, "mx_resident", 2)
    by_reciprocal, by_threshold = CODE_FORMS[form]
    monkeypatch.setitem(kernels.RULE_SHAPE, "by_reciprocal", by_reciprocal)
    monkeypatch.setitem(kernels.RULE_SHAPE, "by_threshold", by_threshold)
    x = np.tile(_special(nan=True), (20, 1))
    _check(x, oracle=False, format=fmt, profile=profile)
