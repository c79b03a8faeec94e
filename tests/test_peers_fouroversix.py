"""fp4ref's four-over-six rules against the ``fouroversix`` 1.0.5 package's pytorch backend,
run (``.ci/peers/fouroversix.sh`` installs it), byte for byte on every NVFP4 probe and on
N(0, 1) matrices; and ``identify`` names its profile."""

import numpy as np
import pytest

import fp4ref
from fp4ref.conformance import identify, probes
from fp4ref.conformance.identification import peer_functions

from .helpers import require_peer

pytestmark = pytest.mark.peers

RULES = ("fouroversix", "fouroversix-mae", "fouroversix-abs-max", "fouroversix-static-6",
         "fouroversix-static-4")


def cases():
    for probe in probes.probes("nvfp4"):
        yield probe.label, probe.x, probe.tensor_scale
    for seed in range(2):
        yield f"normal-seed{seed}", probes.gaussian((256, 512), seed), None


@pytest.mark.parametrize("backend", ["python", "numba"])
@pytest.mark.parametrize("rule", RULES)
def test_bytes_equal_the_package(rule, backend):
    require_peer("fouroversix")
    from fp4ref.conformance.peers.fouroversix import Fouroversix

    peer = Fouroversix(rule)
    compared = 0
    for label, x, given in cases():
        if backend == "python" and x.size > 4096:
            x = x[:8]
        blocks, scales, amax = peer.quantize_probe(x, "nvfp4", given)
        q = fp4ref.quantize(x, format="nvfp4", profile="fouroversix", scale_rule=rule,
                            tensor_scale=given, backend=backend)
        assert np.array_equal(np.asarray(q.blocks), blocks), (rule, label)
        assert np.array_equal(np.asarray(q.scales), scales), (rule, label)
        assert np.float32(q.stored_tensor_scale).tobytes() == np.float32(amax).tobytes() or (
            np.isnan(amax) and np.isnan(q.stored_tensor_scale)), (rule, label)
        compared += scales.size
    assert compared > (500 if backend == "python" else 1000)  # python: the small cases


def test_identify_names_the_profile():
    require_peer("fouroversix")
    from fp4ref.conformance.peers.fouroversix import Fouroversix

    result = identify(peer_functions(Fouroversix())["quantize"], format="nvfp4", seeds=1)
    assert (result.profile, result.changes, result.disagreements) == ("fouroversix", {}, []), (
        result.report())


#: Stored amax values the decode is driven with: none, ordinary, tiny (the product
#: underflows before the division), subnormal, huge (f32(P * s_b * A) overflows), 0, Inf.
AMAXES = (None, 1.0, float(np.uint32(0x44C00001).view(np.float32)), 3.0, 1e-30, 2.0**-140,
          float(np.uint32(1).view(np.float32)), 7e30, float(np.finfo(np.float32).max), 0.0,
          -0.0, float("inf"))


def same_decode(mine, theirs):
    """Bit equality, a NaN on both sides counting as equal (the package's NaNs are torch's
    conversions', fp4ref's the canonical NaN: the adapter's nan_bits)."""
    mine, theirs = np.asarray(mine), np.asarray(theirs)
    kind = np.uint32 if mine.dtype.itemsize == 4 else np.uint16
    nan = np.isnan(mine.astype(np.float32)) & np.isnan(theirs.astype(np.float32))
    return int(((mine.view(kind) != theirs.view(kind)) & ~nan).sum()), int(nan.sum())


@pytest.mark.parametrize("backend", ["python", "numba"])
@pytest.mark.parametrize("rule", RULES)
def test_decode_equals_the_package_on_every_stored_byte(rule, backend):
    # numba: every (scale byte, packed byte) pair; python: every code under every scale
    require_peer("fouroversix")
    from fp4ref.conformance.peers.fouroversix import Fouroversix

    peer = Fouroversix(rule)
    if backend == "numba":
        packed, scale = probes.stored_bytes()
        blocks, scales = np.repeat(packed, 8, axis=1), scale.reshape(-1, 1)
    else:
        codes = np.tile(np.arange(16, dtype=np.uint8), (256, 1))
        blocks, scales = fp4ref.pack(codes), np.arange(256, dtype=np.uint8).reshape(-1, 1)
    profile = fp4ref.profiles()["fouroversix"].with_options(nvfp4_scale_rule=rule)
    for amax in AMAXES if rule == "fouroversix" else AMAXES[:4]:  # the others: their D
        for dtype in ("float32", "bfloat16", "float16"):
            theirs = peer.dequantize_probe(blocks, scales, amax, "nvfp4", dtype)
            mine = fp4ref.dequantize(blocks, scales, format="nvfp4", profile=profile,
                                     tensor_scale=amax, dtype=dtype, backend=backend)
            bad, nans = same_decode(mine, theirs)
            assert bad == 0, (rule, amax, dtype)
            assert nans >= 32 * (blocks.shape[0] // 256)  # scale bytes 0x7F, 0xFF at least


@pytest.mark.parametrize("rule", RULES)
def test_a_quantized_tensor_decodes_as_the_package(rule):
    # fp4ref.dequantize(q) of fp4ref's quantization (its stored amax and rule) against the
    # package's dequantize of its own QuantizedTensor, for every output dtype
    require_peer("fouroversix")
    import torch
    from fouroversix.quantize import dequantize

    from fp4ref.conformance.peers.fouroversix import Fouroversix

    peer = Fouroversix(rule)
    for x in (probes.gaussian((128, 256), 3), probes.probes("nvfp4")[0].x):
        theirs_q = peer.frontend(torch.from_numpy(x.copy()), peer.config)
        q = fp4ref.quantize(x, format="nvfp4", profile="fouroversix", scale_rule=rule)
        for dtype in ("float32", "bfloat16", "float16"):
            theirs = dequantize(theirs_q, getattr(torch, dtype), backend=peer.backend)
            theirs = theirs.view(torch.int16 if dtype != "float32" else torch.int32).numpy()
            theirs = theirs.view(np.float32 if dtype == "float32" else
                                 (np.float16 if dtype == "float16" else np.uint16))
            mine = np.asarray(fp4ref.dequantize(q, dtype=dtype))
            if dtype == "bfloat16":
                theirs = theirs.view(mine.dtype)
            assert same_decode(mine, theirs)[0] == 0, (rule, dtype)
