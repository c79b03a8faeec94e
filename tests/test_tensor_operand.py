"""The kernels' NVFP4 tensor scale and operand of a tensor amax
(:func:`fp4ref.kernels.scale_rules.nvfp4_tensor_scale` and
:func:`~fp4ref.kernels.scale_rules.nvfp4_tensor_operand`, which the GPU computes from its
own amax) against the front door's (``fp4ref.quantize._tensor_scales``, plain Python and
numpy float32 steps), bit for bit, for every profile with a computed tensor scale and amaxes
from zero and subnormals through float32 max and Inf (NaN for the encode direction, whose
stored scale is then 1)."""

import numpy as np
import pytest

import fp4ref
from fp4ref.kernels.scale_rules import nvfp4_tensor_operand, nvfp4_tensor_scale
from fp4ref.profiles import get as get_profile
from fp4ref.quantize import _tensor_scales

#: Profiles whose tensor scale the GPU may compute (fp4ref.quantize's device-operand path).
PROFILES = [p for p in fp4ref.profiles()
            if get_profile(p).tensor_scale and get_profile(p).tensor_scale_direction != "amax"
            and get_profile(p).nvfp4_recipe not in ("vllm", None)]


def _amaxes() -> np.ndarray:
    rng = np.random.default_rng(3)
    special = np.array([0.0, 1e-45, 1e-40, 1.1754942e-38, 1.1754944e-38, 2688.0, 1.0,
                        6.0, 448.0, 3.4028235e38, np.inf], np.float32)
    spread = (rng.uniform(1, 2, 400) * 2.0 ** rng.integers(-149, 128, 400)).astype(np.float32)
    return np.concatenate([special, spread[np.isfinite(spread)]])


@pytest.mark.parametrize("profile", PROFILES)
def test_tensor_operand_as_the_front_door(profile):
    prof = get_profile(profile)
    encode = prof.tensor_scale_direction == "encode"
    ct = prof.nvfp4_recipe == "compressed-tensors"
    amaxes = list(_amaxes()) + ([np.float32(np.nan)] if encode else [])
    for amax in amaxes:
        operand, _, stored = _tensor_scales(prof, None, amax=lambda a=amax: float(a))
        kernel_stored = nvfp4_tensor_scale(float(amax), encode)
        kernel_operand = nvfp4_tensor_operand(kernel_stored, ct, encode)
        assert np.float32(kernel_stored).view(np.uint32) == np.float32(stored).view(
            np.uint32), (profile, amax)
        assert np.float64(kernel_operand).view(np.uint64) == np.float64(operand).view(
            np.uint64), (profile, amax)


def test_profiles_cover_both_directions():
    directions = {get_profile(p).tensor_scale_direction for p in PROFILES}
    assert directions == {"decode", "encode"}, PROFILES
