"""The ``comfy`` profile's NVFP4 quirks (comfy-kitchen 0.2.40's eager ``quantize_nvfp4``):
each quirk's minimal input with its bytes derived by hand (and seen from comfy-kitchen
itself, ``docs/findings.md`` 7-8), on every backend; and the oracle, numba and the GPU
kernel (simulator) agreeing on the edge-class probes.

Inputs are one row of 16 (a block), zero after the values shown; packed bytes are
high-nibble first (comfy's ``hi_first``).
"""

import warnings

import numpy as np
import pytest

import fp4ref
from fp4ref.conformance import probes
from fp4ref.profiles import Profile
from fp4ref.spec import nvfp4

from .helpers import BACKENDS

F32 = np.float32


def _block(*values) -> np.ndarray:
    x = np.zeros((1, 16), F32)
    x[0, : len(values)] = values
    return x


def _quantize(x, backend, tensor_scale=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        q = fp4ref.quantize(x, format="nvfp4", profile="comfy", tensor_scale=tensor_scale,
                            scale_layout="linear", backend=backend)
    blocks = q.blocks if isinstance(q.blocks, np.ndarray) else q.blocks.copy_to_host()
    scales = q.scales if isinstance(q.scales, np.ndarray) else q.scales.copy_to_host()
    return scales.reshape(-1).tolist(), blocks.reshape(-1).tolist()


#: (name, x, given tensor scale, scale bytes, packed bytes).
CASES = [
    # f32(f32(0.359375 / 6) / f32(1/3)) = 0.17968749, one ulp below the E4M3 tie 0.1796875:
    # 0x23 (0.171875); one division, 0.359375 / f32(6 * f32(1/3)), is the tie: 0x24.
    # 0.359375 / f32(f32(1/3) * 0.171875) = 6.27 -> code 7, in the high nibble
    ("two-roundings", _block(0.359375), float(F32(1 / 3)), [0x23], [0x70] + [0] * 7),
    # s_t = 1000 / 2688; block 2: (2^-10 / 6) / s_t = 4.4e-4 < 2^-10 -> byte 0, so
    # f32(s_t * 0) = 0 and every code +0 (OCP: 2^-10 / 0 = Inf -> code 7)
    ("scale-0-block", np.concatenate([_block(1000.0), _block(2.0**-10)], 1), None,
     [0x7E, 0x00], [0x70] + [0] * 15),
    # s_t = 0 / 2688 = 0; 0 / 0 is x86's default NaN 0xFFC00000 -> byte 0xFF, which torch
    # widens to 0xFFF00000; x / NaN keeps it: payload bit 21 set -> code 4, sign -> 0xC
    ("zero-tensor", _block(), None, [0xFF], [0xCC] * 8),
    # s_t = NaN (0x7FC00000, positive); the block: 0x7F; x / NaN: bit 21 clear -> code 3
    ("nan-element", _block(np.nan, 1.0), None, [0x7F], [0x33] * 8),
    # given s_t = Inf: (1/6) / Inf = 0 -> byte 0; Inf * 0 = 0xFFC00000 -> code 0xB
    ("tensor-scale-inf", _block(1.0), float("inf"), [0x00], [0xBB] * 8),
    # given s_t = 0: (1/6) / 0 = Inf -> min(Inf, 448) -> 0x7E; 0 * 448 = 0 -> +0 codes
    ("tensor-scale-0", _block(1.0), 0.0, [0x7E], [0x00] * 8),
    # s_t = Inf: Inf / 6 / Inf = 0xFFC00000 -> 0xFF, codes 0xC as the zero tensor
    ("infinity", _block(np.inf, 1.0), None, [0xFF], [0xCC] * 8),
    # -0.0 keeps its sign (code 0x8): 6 / 1 = 6 -> 7 in the high nibble, -0 in the low
    ("negative-zero", _block(6.0, -0.0), 1.0, [0x38], [0x78] + [0] * 7),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name,x,given,scales,packed", CASES, ids=[c[0] for c in CASES])
def test_minimal_inputs(name, x, given, scales, packed, backend):
    assert _quantize(x, backend, given) == (scales, packed)


def test_nan_code_by_payload():
    """``_f32_to_floatx_unpacked``'s normal path on NaN bits: quiet NaNs give 3, or 4 with
    payload bit 21; the sign bit is kept."""
    assert nvfp4.comfy_nan_code(0x7FC00000) == 3
    assert nvfp4.comfy_nan_code(0xFFC00000) == 0xB
    assert nvfp4.comfy_nan_code(0x7FF00000) == 4  # torch's widening of E4M3 0x7F
    assert nvfp4.comfy_nan_code(0xFFF00000) == 0xC
    assert nvfp4.comfy_nan_code(0x7FDFFFFF) == 3


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "python"])
def test_probes_agree_with_the_oracle(backend):
    """Every NVFP4 probe (zero, NaN, Inf, huge and tiny tensors, given tensor scales) by
    the oracle and by ``backend``."""
    for probe in probes.nvfp4():
        want = _quantize(probe.x, "python", probe.tensor_scale)
        assert _quantize(probe.x, backend, probe.tensor_scale) == want, probe.label


def test_nan_policies_of_the_comfy_recipe():
    """With the recipe under ``nonfinite="nan-scale"`` a NaN or Inf block is 0x7F with zero
    codes; ``"comfy"`` is refused for another recipe; the recipe has no search."""
    x = np.concatenate([_block(np.inf, 1.0), _block(2.0)], 1)
    profile = fp4ref.profiles()["comfy"].with_options(nonfinite="nan-scale")
    for backend in BACKENDS:
        q = fp4ref.quantize(x, format="nvfp4", profile=profile, tensor_scale=1.0,
                            scale_layout="linear", backend=backend)
        scales = q.scales if isinstance(q.scales, np.ndarray) else q.scales.copy_to_host()
        assert scales.reshape(-1).tolist() == [0x7F, 0x2B], backend
    with pytest.raises(ValueError, match="nonfinite"):
        Profile("x", "x", nonfinite="comfy", nvfp4_recipe="modelopt")
    with pytest.raises(ValueError, match="no scale search"):
        fp4ref.quantize(x, format="nvfp4", profile="comfy", scale_rule="optimal")


def test_flashinfer_is_marked_not_run():
    from fp4ref.profiles import NOT_RUN, PROFILES, get, verified

    assert not verified("flashinfer") and "UNVERIFIED" in get("flashinfer").description
    assert verified("comfy") and verified("modelopt") and verified("compressed-tensors")
    assert set(NOT_RUN) <= set(PROFILES)
