"""Probe inputs that separate the conventions real implementations disagree on.

Each :class:`Probe` is a small float32 tensor ``[rows, K]`` of one *edge class* (the
classes of ``docs/wild.md`` and the profiles issue: signed zeros and underflow, subnormal
elements and scales, E2M1 midpoints and their float32 neighbours, block maxima at powers of
two and at 6 * 2^k, zero blocks and tensors, float32 max, infinities, NaNs of either sign,
E8M0 bytes near 0x00 and 0xFE, NVFP4 block scales that underflow or saturate, tensor
scales 0, Inf, tiny and huge), labelled so that a disagreement names its class. MXFP4
blocks are independent, so a class is any number of rows; NVFP4 blocks share the tensor
amax, so tensor-level classes are tensors of their own.

The peers tests run each implementation and fp4ref's profile for it on every probe and on
seeded N(0, 1) matrices (:func:`gaussian`), and compare bytes and decoded bits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .suites import _inputs
from .suites.quantize import _TIES, mx_blocks, nv_blocks

F32 = np.float32


@dataclass(frozen=True)
class Probe:
    """One edge class: ``x`` float32 ``[rows, K]`` with K a multiple of the block size;
    ``tensor_scale`` (NVFP4) the value given to the implementation's tensor-scale argument
    in its own convention, or None to let it compute (or omit) one."""

    label: str
    format: str
    x: np.ndarray
    tensor_scale: float | None = None


def _rows(block: int, *rows) -> np.ndarray:
    """Blocks of ``block`` float32 values, each given as a sequence padded with zeros."""
    out = np.zeros((len(rows), block), F32)
    for i, row in enumerate(rows):
        values = np.asarray(row, F32).reshape(-1)
        out[i, : values.size] = values
    return out


def _element_classes(block: int, unit: float) -> dict[str, np.ndarray]:
    """Classes of element values inside blocks whose maximum is ``6 * unit`` (so that the
    element scale is ``unit`` under the floor and rceil rules alike)."""
    top = F32(6 * unit)
    ties = np.array(_TIES, np.float64) * unit
    mids = _inputs.float32(ties)
    neighbours = _inputs.neighbours(mids)
    tiny = _inputs.from_bits([0x00000001, 0x007FFFFF, 0x00800000, 0x80000001])
    underflow = _inputs.float32([unit * 2.0**-30, -unit * 2.0**-30, unit / 8, -unit / 8])
    return {
        "midpoints": _rows(block, [top, *mids], [top, *(-mids)]),
        "midpoint-neighbours": _rows(block, [top, *neighbours[: block - 1]],
                                     [-top, *(-neighbours[: block - 1])]),
        "signed-zeros": _rows(block, [top, 0.0, -0.0, 0.0, -0.0], [-top, -0.0, -0.0]),
        "underflow-to-zero": _rows(block, [top, *underflow], [-top, *(-underflow)]),
        "subnormal-elements": _rows(block, [top, *tiny]),
    }


def mxfp4() -> list[Probe]:
    """MXFP4 probes (blocks of 32)."""
    block = 32
    probes = [Probe("adversarial-blocks", "mxfp4", mx_blocks())]
    for label, x in _element_classes(block, 1.0).items():
        probes.append(Probe(label, "mxfp4", x))
    small = _element_classes(block, 2.0**-127)
    probes.append(Probe("elements-at-scale-2^-127", "mxfp4", small["midpoints"]))
    powers = [F32(2.0**k) for k in (-149, -133, -128, -127, -126, -125, -1, 0, 1, 127)]
    amax = []
    for p in powers:
        amax += [p, np.nextafter(p, F32(0)), np.nextafter(p, F32(np.inf))]
    for k in (-130, -127, -2, 0, 3, 125):
        six = F32(6 * 2.0**k)
        amax += [six, np.nextafter(six, F32(0)), np.nextafter(six, F32(np.inf))]
    probes.append(Probe("block-max-powers-and-6x2^k", "mxfp4",
                        _rows(block, *[[a, -a / 2] for a in amax])))
    big = np.finfo(F32).max
    probes += [
        Probe("zero-blocks", "mxfp4", _rows(block, [0.0], [-0.0] * block)),
        Probe("float32-max", "mxfp4", _rows(block, [big, 1.0, -big], [-big] * block)),
        Probe("infinities", "mxfp4", _rows(block, [np.inf, 1.0, -2.0], [-np.inf, 3.0],
                                          [np.inf, -np.inf], [np.inf] * block)),
        Probe("nans", "mxfp4", _rows(block, [np.nan, 1.0, -2.0],
                                    _inputs.from_bits([0xFFC00000, 0x3F800000]),
                                    _inputs.from_bits([0x7F800001, 0x40000000]),
                                    [np.nan, np.inf, 1.0])),
        Probe("e8m0-near-0x00", "mxfp4", _rows(block, *[[F32(2.0**k) * 6, F32(2.0**k)]
                                                        for k in (-133, -130, -129, -128)])),
        Probe("e8m0-near-0xfe", "mxfp4", _rows(block, *[[F32(2.0**k) * 1.5, F32(2.0**k)]
                                                        for k in (125, 126, 127)])),
    ]
    return probes


def nvfp4() -> list[Probe]:
    """NVFP4 probes (blocks of 16); tensor-level classes are tensors of their own."""
    block = 16
    probes = [Probe("adversarial-blocks", "nvfp4", nv_blocks(1.0 / 2688))]
    for label, x in _element_classes(block, 1.0).items():
        probes.append(Probe(label, "nvfp4", x))
    # with a large tensor amax, small blocks' scales underflow E4M3; with a small one none
    # saturate, so one block at the tensor max and others far below it
    spread = _rows(block, [1000.0, 1.0], [2.0**-10], [2.0**-16], [2.0**-20, 2.0**-21],
                   [1e-30], [0.0])
    probes += [
        Probe("block-scales-underflow", "nvfp4", spread),
        Probe("zero-tensor", "nvfp4", np.zeros((2, 2 * block), F32)),
        Probe("negative-zero-tensor", "nvfp4", np.full((1, 2 * block), -0.0, F32)),
        Probe("float32-max", "nvfp4", _rows(block, [np.finfo(F32).max, 1.0], [1.0, -1.0])),
        Probe("infinities", "nvfp4", _rows(block, [np.inf, 1.0], [-np.inf, 2.0], [3.0, 1.0])),
        Probe("nans", "nvfp4", _rows(block, [np.nan, 1.0],
                                    _inputs.from_bits([0xFFC00000, 0x3F800000]), [3.0, 1.0])),
        Probe("subnormal-tensor", "nvfp4", _rows(block, _inputs.from_bits(
            [0x00000001, 0x00000003, 0x007FFFFF]), [F32(2.0**-140)])),
        Probe("huge-tensor", "nvfp4", _rows(block, [F32(2.0**120), F32(2.0**100)], [1.0])),
    ]
    rows = nv_blocks(1.0 / 2688)[:4]
    for value in (0.0, np.inf, float(np.finfo(F32).tiny), 2.0**-140, 2.0**100):
        probes.append(Probe(f"given-tensor-scale-{value:g}", "nvfp4", rows, tensor_scale=value))
    return probes


def probes(format: str) -> list[Probe]:
    """Every probe of ``format`` (``"mxfp4"`` or ``"nvfp4"``)."""
    if format not in ("mxfp4", "nvfp4"):
        raise ValueError(f"format must be 'mxfp4' or 'nvfp4'; got {format!r}")
    return mxfp4() if format == "mxfp4" else nvfp4()


def gaussian(shape: tuple[int, int], seed: int) -> np.ndarray:
    """A seeded N(0, 1) float32 matrix (numpy's PCG64, which is stable across versions for
    ``standard_normal``)."""
    return np.random.default_rng(seed).standard_normal(shape).astype(F32)


def stored_bytes() -> np.ndarray:
    """Every (scale byte, packed byte) pair as one block each: ``blocks`` uint8 ``[65536,
    1]`` and ``scales`` uint8 ``[65536]``, for driving a decoder over every stored byte."""
    scale, packed = np.divmod(np.arange(65536), 256)
    return packed.astype(np.uint8).reshape(-1, 1), scale.astype(np.uint8)
