"""A peer beside its fp4ref profile on random and edge inputs, block by block.

For each format a peer has a profile for (:attr:`Peer.profiles`), :func:`compare` runs the
peer's quantizer (:meth:`Peer.quantize_probe`) and ``fp4ref.quantize`` under the profile on
every probe of :mod:`fp4ref.conformance.probes` and on seeded N(0, 1) matrices, and
compares the codes and scale byte of every block and the tensor scale; then it decodes the
peer's own bytes, and every (scale byte, packed byte) pair, with the peer's decoder
(:meth:`Peer.dequantize_probe`) and with ``fp4ref.dequantize`` under the profile, and
compares the output bits of every block, in every dtype the peer decodes to. A block counts
once per comparison; a disagreement names its probe, so it names its edge class.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ... import api
from ...profiles import get as get_profile
from ...quantize import quantize
from .. import probes
from .base import Peer

_BLOCK = {"mxfp4": 32, "nvfp4": 16}
_BITS = {"float32": np.uint32, "bfloat16": np.uint16, "float16": np.uint16}


@dataclass
class Comparison:
    """What :func:`compare` found for one peer and format.

    ``random`` and ``edge`` count the block comparisons made on the N(0, 1) matrices and on
    the probes (stored-byte decodes count as edge); ``disagreements`` counts the blocks
    that differ, by ``"<probe label>/<what>"``; ``examples`` shows the first of each; ``skipped``
    names the probes the peer cannot take, and why."""

    peer: str
    format: str
    profile: str
    random: int = 0
    edge: int = 0
    disagreements: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return sum(self.disagreements.values())

    def summary(self) -> str:
        text = (f"{self.peer} {self.format} vs profile {self.profile!r}: {self.random} random "
                f"and {self.edge} edge block comparisons, {self.failed} disagree")
        if self.disagreements:
            text += ": " + ", ".join(f"{k} {v}" for k, v in sorted(self.disagreements.items()))
        return text


def _note(result: Comparison, label: str, what: str, bad: np.ndarray, random: bool) -> int:
    """Count the comparisons in ``bad``; the index of the first disagreement, or -1 if the
    caller has no example to add."""
    if random:
        result.random += bad.size
    else:
        result.edge += bad.size
    if not bad.any():
        return -1
    first = f"{label}/{what}" not in result.disagreements
    result.disagreements[f"{label}/{what}"] += int(bad.sum())
    return int(np.flatnonzero(bad)[0]) if first else -1


def _cases(format: str, seeds: int, shape: tuple[int, int]):
    for probe in probes.probes(format):
        yield probe.label, probe.x, probe.tensor_scale, False
    for seed in range(seeds):
        yield f"normal-seed{seed}", probes.gaussian(shape, seed), None, True


def _decode_bits(result, label, random, block, ours, theirs, dtype, nan):
    kind = _BITS[dtype]
    a = np.ascontiguousarray(ours).view(kind).reshape(-1, block)
    theirs = np.asarray(theirs)
    if theirs.dtype.name != dtype:  # the peer ignored the dtype asked for
        _note(result, label, f"decode-{dtype}-returned-{theirs.dtype.name}",
              np.ones(a.shape[0], bool), random)
        return
    b = np.ascontiguousarray(theirs).view(kind).reshape(-1, block)
    differ = a != b
    if nan == "any":  # a NaN the arithmetic makes (Inf * 0) has the hardware's bits
        differ &= ~(np.isnan(np.asarray(ours).reshape(-1, block))
                    & np.isnan(theirs.reshape(-1, block)))
    bad = differ.any(1)
    i = _note(result, label, f"decode-{dtype}", bad, random)
    if i >= 0:
        result.examples.append(f"{label}/decode-{dtype} block {i}: fp4ref "
                               f"{[hex(v) for v in a[i][:4]]} peer {[hex(v) for v in b[i][:4]]}")


def compare(peer: Peer, format: str, *, seeds: int = 3, shape: tuple[int, int] = (64, 256),
            stored_bytes: bool = True) -> Comparison:
    """Compare ``peer`` with its fp4ref profile for ``format`` (see the module text)."""
    name = peer.profiles[format]
    profile = get_profile(name)
    block = _BLOCK[format]
    result = Comparison(peer.name, format, name)
    for label, x, given, random in _cases(format, seeds, shape):
        if peer.input_dtype != "float32":  # what the peer takes, for both sides
            with np.errstate(over="ignore"):
                x = x.astype(peer.input_dtype).astype(np.float32)
        try:
            blocks, scales, stored = peer.quantize_probe(x, format, given)
        except NotImplementedError as error:  # e.g. a tensor scale where the peer takes none
            result.skipped.append(f"{label}: {error}")
            continue
        if given is not None and not profile.tensor_scale:  # the peer takes one, fp4ref not
            _note(result, label, "profile-has-no-tensor-scale",
                  np.ones(x.size // block, bool), random)
            continue
        ours = quantize(x, format=format, profile=profile, tensor_scale=given,
                        scale_layout="linear")
        a = api.unpack(ours.blocks, profile.nibble_order, block_size=block).reshape(-1, block)
        b = api.unpack(np.asarray(blocks, np.uint8), profile.nibble_order,
                       block_size=block).reshape(-1, block)
        sa, sb = ours.scales.reshape(-1), np.asarray(scales).reshape(-1)
        if format == "nvfp4" and peer.nan_scale_sign == "any":  # either NaN byte
            sb = np.where((sa & 0x7F == 0x7F) & (sb & 0x7F == 0x7F), sa, sb)
        bad = (a != b).any(1) | (sa != sb)
        if format == "nvfp4":
            want, got = ours.stored_tensor_scale, stored
            same = (want is None and got is None) or (
                want is not None and got is not None
                and np.float32(want).view(np.uint32) == np.float32(got).view(np.uint32))
            bad = bad | (not same)
        i = _note(result, label, "quantize", bad, random)
        if i >= 0:
            where = np.flatnonzero(a[i] != b[i])[:3]
            result.examples.append(
                f"{label}/quantize block {i}: x {x.reshape(-1, block)[i][where].tolist()} "
                f"fp4ref scale {sa[i]:#04x} codes {a[i][where].tolist()} tensor "
                f"{ours.stored_tensor_scale}; peer {int(sb[i]):#04x} {b[i][where].tolist()} "
                f"{stored}")
        for dtype in peer.decode_dtypes:
            theirs = peer.dequantize_probe(blocks, scales, stored, format, dtype)
            mine = api.dequantize(np.asarray(blocks, np.uint8), np.asarray(scales, np.uint8),
                                  format=format, profile=profile, tensor_scale=stored,
                                  scale_layout="linear", dtype=dtype)
            _decode_bits(result, label, random, block, mine, theirs, dtype, peer.nan_bits)
    if stored_bytes:
        packed, scale = probes.stored_bytes()
        blocks = np.repeat(packed, block // 2, axis=1)
        for dtype in peer.decode_dtypes:
            theirs = peer.dequantize_probe(blocks, scale.reshape(-1, 1), None, format, dtype)
            mine = api.dequantize(blocks, scale.reshape(-1, 1), format=format, profile=profile,
                                  scale_layout="linear", dtype=dtype)
            _decode_bits(result, "stored-bytes", False, block, mine, theirs, dtype,
                         peer.nan_bits)
    return result
