"""The adapter base class and the layout helpers every adapter shares."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import numpy as np

#: E2M1 values of codes 0..15.
E2M1 = np.array([0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.0, -0.5, -1, -1.5, -2, -3, -4, -6], np.float32)
#: Marks an element the peer refused or could not produce (never equal to a valid code).
SENTINEL = -1


def peers_dir() -> Path:
    """Where the peers that pip cannot install are unpacked or built (``.ci/peers/*.sh``):
    ``$FP4REF_PEERS_DIR``, else ``~/.cache/fp4ref/peers``."""
    default = Path.home() / ".cache" / "fp4ref" / "peers"
    return Path(os.environ.get("FP4REF_PEERS_DIR", default))


def _codes(values) -> np.ndarray:
    """E2M1 codes (int16) of exact E2M1 float values; the sign bit of zero is kept;
    anything else (NaN, non-E2M1) becomes :data:`SENTINEL`."""
    values = np.asarray(values, np.float32)
    magnitude = np.searchsorted(E2M1[:8], np.abs(values)).clip(0, 7)
    exact = E2M1[magnitude] == np.abs(values)
    codes = magnitude.astype(np.int16) | (np.signbit(values).astype(np.int16) << 3)
    return np.where(exact, codes, SENTINEL).astype(np.int16)


def _pack(codes, order: str = "low-first", block: int = 32) -> np.ndarray:
    """Pack int codes [..., K] into bytes (glue; sentinels become 0xFF bytes... as ints)."""
    codes = np.asarray(codes, np.int16)
    if order == "split-half":
        shaped = codes.reshape(*codes.shape[:-1], -1, block)
        low, high = shaped[..., : block // 2], shaped[..., block // 2 :]
        return (low & 0xF | (high & 0xF) << 4).reshape(*codes.shape[:-1], -1)
    even, odd = codes[..., 0::2], codes[..., 1::2]
    first, second = (even, odd) if order == "low-first" else (odd, even)
    return (first & 0xF) | ((second & 0xF) << 4)


def _unpack(packed, order: str = "low-first", block: int = 32) -> np.ndarray:
    packed = np.asarray(packed, np.uint8)
    low, high = packed & 0xF, packed >> 4
    if order == "split-half":
        shaped = lambda a: a.reshape(*packed.shape[:-1], -1, block // 2)  # noqa: E731
        return np.concatenate([shaped(low), shaped(high)], -1).reshape(*packed.shape[:-1], -1)
    first, second = (low, high) if order == "low-first" else (high, low)
    return np.stack([first, second], -1).reshape(*packed.shape[:-1], -1)


def _torch():
    import torch

    return torch


def _to_numpy(tensor) -> np.ndarray:
    torch = _torch()
    if tensor.dtype == torch.bfloat16:
        import ml_dtypes

        return tensor.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return tensor.detach().cpu().numpy()


class Peer:
    """Base adapter: ``native`` conventions and ``capabilities`` per parameter."""

    name = ""
    module = ""
    #: What the "own" column means for this peer, in words.
    own = ""
    native: dict[str, tuple] = {}
    capabilities: dict[str, tuple] = {}
    #: The adapters hand back integer codes as int16 glue (with :data:`SENTINEL` marks),
    #: so the checker compares their integer results by value, not by dtype.
    integer_glue = True
    #: The fp4ref profile the peer's default quantizer is compared against, by format
    #: (:mod:`fp4ref.conformance.peers.probing`); empty when it has none.
    profiles: dict[str, str] = {}
    #: Suites (by name) whose own column may fail because the peer is not deterministic
    #: there, with the reason the matrix prints in the row (empty: none).
    nondeterministic: dict[str, str] = {}
    #: Output dtypes its decoder produces (probing compares each).
    decode_dtypes: tuple[str, ...] = ("float32",)
    #: How probing compares decoded NaNs: ``"exact"`` bits, or ``"any"`` where the peer's
    #: NaNs come from float arithmetic (Inf * 0), whose sign and payload are the hardware's
    #: (x86 gives 0xFFC00000, Arm 0x7FC00000), not the implementation's.
    nan_bits: str = "exact"
    #: How probing compares NVFP4 NaN scale bytes: ``"exact"``, or ``"any"`` where the
    #: sign of the peer's NaN byte (0x7F or 0xFF) is the position of the block in torch's
    #: vectorized loop, not a function of the block (vLLM: G * a with both NaN).
    nan_scale_sign: str = "exact"
    #: The float dtype the peer's quantizer takes: probing rounds each probe to it (for the
    #: peer and for fp4ref alike) when it is not float32.
    input_dtype: str = "float32"

    def __init__(self) -> None:
        self.lib = importlib.import_module(self.module)
        self.lenient = False

    @property
    def version(self) -> str:
        top = importlib.import_module(self.module.split(".")[0])
        return str(getattr(top, "__version__", "?"))

    def choose(self, **params):
        """The values to run with: capabilities must be met; conventions must be native
        unless ``lenient`` (then the peer's first native value is used). A value of None
        (a parameter the case does not name) is passed on unchecked."""
        chosen = []
        for key, value in params.items():
            if value is None:
                chosen.append(value)
                continue
            if key in self.capabilities and value not in self.capabilities[key]:
                raise NotImplementedError(f"{self.name} cannot do {key}={value!r}")
            if key in self.native and value not in self.native[key]:
                if not self.lenient:
                    raise NotImplementedError(f"{self.name} does not do {key}={value!r}")
                value = self.native[key][0]
            chosen.append(value)
        return chosen[0] if len(chosen) == 1 else chosen

    def quantize_probe(self, x: np.ndarray, format: str, tensor_scale: float | None):
        """Run the peer's quantizer as its users call it.

        Returns ``(blocks, scales, stored)``: packed codes ``[rows, K/2]`` in the nibble
        order of the profile named in :attr:`profiles`, scale bytes ``[rows, K/B]`` in the
        linear layout, and the tensor scale in the profile's stored direction (None where
        the peer has none). ``tensor_scale`` is given to the peer's own tensor-scale argument
        as is (None: the peer computes one, or none)."""
        raise NotImplementedError(f"{self.name} has no quantizer adapted for probing")

    def dequantize_probe(self, blocks, scales, stored, format: str, dtype: str) -> np.ndarray:
        """Decode what :meth:`quantize_probe` returns with the peer's decoder."""
        raise NotImplementedError(f"{self.name} has no decoder adapted for probing")

    def _own_profile(self, format: str, profile: str):
        if self.profiles.get(format) != profile:
            raise NotImplementedError(f"{self.name} is compared with profile "
                                      f"{self.profiles.get(format)!r} for {format}")
        from ...profiles import get

        return get(profile)

    def quantize_profile(
        self, x, tensor_scale, activations=None, *, format, profile, scale_rule=None
    ):
        """The profile suites' quantize through :meth:`quantize_probe` (the glue: the
        suite's scales in the profile's layout)."""
        prof = self._own_profile(format, profile)
        if scale_rule is not None:
            raise NotImplementedError(f"{self.name} has no optimal scale search")
        given = (float(np.float32(tensor_scale)) if prof.tensor_scale and format == "nvfp4"
                 else None)  # MXFP4 has no tensor scale
        blocks, scales, _ = self.quantize_probe(np.ascontiguousarray(x), format, given)
        if prof.scale_layout != "linear":
            from ...layouts import swizzle

            scales = swizzle(np.asarray(scales, np.uint8), prof.scale_layout)
        return blocks, scales

    def dequantize_profile(self, blocks, scales, tensor_scale, *, format, profile):
        """The profile suites' decode through :meth:`dequantize_probe`, float32."""
        prof = self._own_profile(format, profile)
        if "float32" not in self.decode_dtypes:
            raise NotImplementedError(f"{self.name} has no decoder adapted")
        if prof.scale_layout != "linear":
            from ...layouts import unswizzle

            scales = unswizzle(scales, rows=blocks.shape[0], cols=blocks.shape[1] * 2 // 16,
                               layout=prof.scale_layout)
        stored = (float(np.float32(tensor_scale)) if prof.tensor_scale and format == "nvfp4"
                  else None)  # MXFP4 has no tensor scale
        return self.dequantize_probe(blocks, np.asarray(scales).reshape(blocks.shape[0], -1),
                                     stored, format, "float32")
