"""Which conventions does an implementation follow? (``fp4ref conformance identify``)

:func:`identify` drives an implementation's quantizer or dequantizer on the probes of
:mod:`fp4ref.conformance.probes` (one edge class each) and on seeded N(0, 1) matrices,
runs fp4ref under every named profile on the same inputs, and searches the profile fields
for the configuration that agrees on the most blocks: from the closest profiles, one field
at a time, each step the single change that removes the most disagreements, until no
change helps. The fields and their choices are read from :mod:`fp4ref.profiles`
(:data:`~fp4ref.profiles.CHOICES`, and for the valued fields the values the named
profiles use), so a new field or choice is searched without a change here. The answer is
"profile X, with field Y = v", followed by every edge class that still disagrees with its
smallest disagreeing input and both outputs.

The implementation is a Python callable (or ``"module:function"``) with one of these
signatures; arrays are numpy (torch CPU tensors are accepted back):

``quantize(x, *, format, tensor_scale) -> (blocks, scales[, stored_tensor_scale])``
    ``x`` float32 ``[rows, K]``, K a multiple of the block size (32 MXFP4, 16 NVFP4);
    ``format`` ``"mxfp4"`` or ``"nvfp4"``; ``tensor_scale`` None (compute your own NVFP4
    tensor scale, or use none) or a float to use as your tensor-scale argument, in your own
    direction. Return the packed codes uint8 ``[rows, K/2]`` in your nibble order, the
    scale bytes uint8 as you store them (linear ``[rows, K/B]``, or your swizzled layout:
    any shape with that layout's byte count), and for NVFP4 the tensor scale as you store
    it (or None). Raise ``NotImplementedError`` for an input you do not take (a format, a
    given tensor scale): that probe is skipped.

``dequantize(blocks, scales, *, format, tensor_scale, dtype) -> values``
    ``blocks`` uint8 ``[rows, K/2]`` (your nibble order), ``scales`` uint8 ``[rows, K/B]``
    (linear: convert to your layout in the glue), ``tensor_scale`` None or a float in
    your stored direction (NVFP4), ``dtype`` ``"float32"``, ``"bfloat16"`` or
    ``"float16"``. Return ``[rows, K]`` in that dtype (an ml_dtypes bfloat16 array or a
    torch tensor); raise ``NotImplementedError`` for a dtype you do not produce.

The search is deterministic (fixed probes and seeds, fields and choices in the profiles'
order) and runs fp4ref's numba backend.
"""

from __future__ import annotations

import dataclasses
import importlib
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import probes as _probes

#: fp4ref.profiles the module (the package's ``profiles`` attribute is the function).
_profiles = importlib.import_module("fp4ref.profiles")

_BLOCK = {"mxfp4": 32, "nvfp4": 16}
_BITS = {"float32": np.uint32, "bfloat16": np.uint16, "float16": np.uint16}
OPERATIONS = ("quantize", "dequantize")
FORMATS = ("mxfp4", "nvfp4")
#: A configuration is "close" when it agrees on at least this share of the N(0, 1) blocks
#: and on at least half of the edge classes.
CLOSE_RANDOM = 0.9

#: Tensor scales (decode direction for the probes' bytes) the NVFP4 decoders are given.
_DECODE_TENSOR_SCALES = (None, 0.3)


@dataclass(frozen=True)
class Case:
    """One input the implementation ran on: ``label`` names its edge class."""

    label: str
    inputs: dict
    output: Any
    random: bool = False


@dataclass
class Disagreement:
    """An edge class that still differs: ``blocks`` of ``total`` blocks, with the smallest
    disagreeing input found and both outputs (as text)."""

    label: str
    blocks: int
    total: int
    input: str = ""
    implementation: str = ""
    fp4ref: str = ""

    def text(self) -> str:
        out = f"{self.label}: {self.blocks} of {self.total} blocks differ"
        if self.input:
            out += (f"\n      input          {self.input}\n      implementation "
                    f"{self.implementation}\n      fp4ref         {self.fp4ref}")
        return out


@dataclass
class Identification:
    """What :func:`identify` found for one operation and format.

    Attributes
    ----------
    operation, format : str
    profile : str
        The named profile the closest configuration starts from.
    changes : dict
        The fields changed from it, in the order the search chose them.
    configuration : fp4ref.profiles.Profile
        The profile with the changes applied.
    close : bool
        Whether the configuration is close (:data:`CLOSE_RANDOM`, half the classes);
        False reads "no close configuration".
    agree, total : int
        Blocks (edge and random) agreeing / compared.
    classes : int
        Edge classes compared (random matrices count as one class each).
    disagreements : list of Disagreement
        Every class that still differs.
    skipped : list of str
        Probes the implementation declined, and why.
    seconds : float
        Wall time of the search.
    evaluated : int
        Configurations fp4ref ran on every case.
    equivalent : list of str
        When a named profile agrees everywhere as it is: the other named profiles that do
        too (a decoder's conventions are shared by many profiles), in the profiles' order.
    """

    operation: str
    format: str
    profile: str
    changes: dict
    configuration: _profiles.Profile
    close: bool
    agree: int
    total: int
    classes: int
    disagreements: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    seconds: float = 0.0
    evaluated: int = 0
    equivalent: list = field(default_factory=list)

    @property
    def answer(self) -> str:
        """``profile X, with field Y = v`` (or ``no close configuration (nearest: ...)``)."""
        text = f"profile {self.profile!r}"
        if self.changes:
            text += ", with " + ", ".join(f"{k} = {v!r}" for k, v in self.changes.items())
        return text if self.close else f"no close configuration (nearest: {text})"

    def report(self) -> str:
        """The answer, the agreement counts, and each remaining disagreement."""
        bad = len(self.disagreements)
        lines = [f"{self.format} {self.operation}: {self.answer}",
                 f"  agrees on {self.agree} of {self.total} blocks, "
                 f"{self.classes - bad} of {self.classes} classes ({self.seconds:.1f} s, "
                 f"{self.evaluated} configurations run)"]
        if self.equivalent:
            lines.append("  as exact: " + ", ".join(repr(n) for n in self.equivalent))
        if self.disagreements:
            lines.append(f"  remaining disagreements ({bad} classes):")
            lines += ["    " + d.text() for d in self.disagreements]
        else:
            lines.append("  no disagreements")
        if self.skipped:
            lines.append(f"  skipped (the implementation declined): {len(self.skipped)} probes: "
                         + "; ".join(self.skipped[:4]) + (" ..." if len(self.skipped) > 4 else ""))
        return "\n".join(lines)


def load(spec: str) -> Callable:
    """The callable ``module:function`` (``module:Class.method`` and ``module:object``
    work too)."""
    module, _, name = spec.partition(":")
    if not module or not name:
        raise ValueError(f"--impl must be MODULE:FUNCTION; got {spec!r}")
    target: Any = importlib.import_module(module)
    for part in name.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"{spec} is not callable")
    return target


def _numpy(value: Any) -> np.ndarray:
    """numpy view of an array the implementation returned (torch tensors included)."""
    if hasattr(value, "detach") and hasattr(value, "dtype"):
        from .peers.base import _to_numpy

        return _to_numpy(value.detach().cpu())
    return np.asarray(value)


# ---------------------------------------------------------------- the candidates


def field_values(name: str) -> tuple:
    """The values the search tries for field ``name``: its choices where
    :data:`fp4ref.profiles.CHOICES` has them, else the values the named profiles use (and
    the field's default), in a fixed order."""
    if name in _profiles.CHOICES:
        return tuple(_profiles.CHOICES[name])
    default = next(f.default for f in dataclasses.fields(_profiles.Profile) if f.name == name)
    seen = [default]
    for profile in _profiles.PROFILES.values():
        value = getattr(profile, name)
        if value not in seen:
            seen.append(value)
    return tuple(seen)


def _replace(profile: _profiles.Profile, changes: dict) -> _profiles.Profile | None:
    try:
        return dataclasses.replace(profile, **changes)
    except (ValueError, TypeError):
        return None


# ---------------------------------------------------------------- running both sides


def _quantize_bad_any_nan(profile, fmt, case) -> np.ndarray:
    """:func:`_quantize_bad` with either NVFP4 NaN scale byte matching the other."""
    if fmt != "nvfp4" or isinstance(case.output, Refused):
        return _quantize_bad(profile, fmt, case)
    blocks, scales, stored = case.output
    try:
        ours = np.asarray(_quantize_ours(profile, fmt, case).scales, np.uint8).reshape(-1)
    except (ValueError, TypeError):
        return _quantize_bad(profile, fmt, case)
    theirs = scales.reshape(-1)
    if theirs.size == ours.size:
        nan = ((ours & 0x7F) == 0x7F) & ((theirs & 0x7F) == 0x7F)
        theirs = np.where(nan, ours, theirs).reshape(scales.shape)
    return _quantize_bad(profile, fmt, dataclasses.replace(case, output=(blocks, theirs, stored)))


def _call_quantizer(impl, x, fmt, given):
    """``impl`` on ``x``: (codes uint8, the scale bytes as it stores them, the stored tensor
    scale as float32 or None)."""
    out = tuple(impl(np.array(x), format=fmt, tensor_scale=given))
    blocks = _numpy(out[0]).astype(np.uint8, copy=False)
    scales = _numpy(out[1])
    scales = (scales.view(np.uint8) if scales.dtype.itemsize == 1 else scales).astype(
        np.uint8, copy=False)
    stored = out[2] if len(out) > 2 else None
    stored = None if stored is None else np.float32(_numpy(stored).reshape(-1)[0])
    return blocks, scales, stored


def _rounded(x, input_dtype):
    """``x`` rounded to the dtype the implementation takes (float32 again), for both sides."""
    if input_dtype == "float32":
        return x
    with np.errstate(over="ignore"):
        return np.asarray(x, np.float32).astype(input_dtype).astype(np.float32)


@dataclass(frozen=True)
class Refused:
    """The implementation raised on a probe (not ``NotImplementedError``): fp4ref agrees
    where it refuses the input too (``ValueError``, as gfloat's NaN)."""

    error: str


def extra_probes(fmt: str) -> list:
    """Edge classes identify adds to :func:`fp4ref.conformance.probes.probes`: inputs on
    which choices that agree on every probe still differ (found by the one-field sweep of
    ``tests/test_identify.py``): negative elements whose float32 quotient underflows to -0
    (zero_sign ``"quotient"`` against ``"negative"``), NaN blocks with negative elements
    (MLX's argmin codes their signs), and NVFP4 NaN/Inf blocks under a given tensor scale
    (ggml keeps NaN out of the block max)."""
    block = _BLOCK[fmt]
    big = np.float32(6 * 2.0**100)
    tiny = [-(2.0**-100), 2.0**-100, -(2.0**-126), -0.0, -1.0, 2.0**-149, -(2.0**-149)]
    nan_rows = [[np.nan, -1.0, -2.0, 3.0, -0.0, -6.0], [np.nan, -np.inf, -1.0, 0.5],
                [np.float32(-np.nan), -0.5, 1.0, -4.0]]
    out = [_probes.Probe("quotient-underflow", fmt, _probes._rows(block, [big, *tiny],
                                                                   [-big, *tiny])),
           _probes.Probe("nan-with-negatives", fmt, _probes._rows(block, *nan_rows))]
    if fmt == "nvfp4":
        given = _probes._rows(block, *nan_rows, [np.inf, -1.0, 2.0], [-np.inf, np.nan], [3.0])
        out.append(_probes.Probe("nonfinite-given-tensor-scale-1", fmt, given,
                                 tensor_scale=1.0))
    return out


def _quantize_cases(impl, fmt, seeds, shape, skipped, input_dtype="float32"):
    cases = []
    inputs = [(p.label, p.x, p.tensor_scale, False)
              for p in [*_probes.probes(fmt), *extra_probes(fmt)]]
    inputs += [(f"normal-seed{s}", _probes.gaussian(shape, s), None, True) for s in range(seeds)]
    for label, x, given, random in inputs:
        x = _rounded(x, input_dtype)
        try:
            out = _call_quantizer(impl, x, fmt, given)
        except NotImplementedError as error:
            skipped.append(f"{label}: {error}")
            continue
        except Exception as error:  # noqa: BLE001 - a refusal is compared with fp4ref's
            out = Refused(f"raised {type(error).__name__}: {str(error)[:120]}")
        cases.append(Case(label, {"x": x, "tensor_scale": given, "format": fmt}, out, random))
    return cases


def _linear_scales(scales, rows, cols, layout):
    """The scale bytes ``scales`` (any shape) read as stored in ``layout``: linear ``[rows,
    cols]``, or None when their count is not that layout's for the matrix."""
    from ..layouts import padded_shape, unswizzle

    flat = np.ascontiguousarray(scales, np.uint8).reshape(-1)
    if layout == "linear":
        return flat.reshape(rows, cols) if flat.size == rows * cols else None
    rpad, cpad = padded_shape(rows, cols, layout)
    if flat.size != rpad * cpad:
        return None
    return np.asarray(unswizzle(flat, rows=rows, cols=cols, layout=layout), np.uint8)


def _in_layout(cases, fmt, layout):
    """The quantize cases with the implementation's scale bytes read in ``layout`` (linear
    again), or None when some case's byte count does not fit it."""
    out = []
    for case in cases:
        if isinstance(case.output, Refused):
            out.append(case)
            continue
        rows, k = case.inputs["x"].shape
        blocks, scales, stored = case.output
        linear = _linear_scales(scales, rows, k // _BLOCK[fmt], layout)
        if linear is None:
            return None
        out.append(dataclasses.replace(case, output=(blocks, linear, stored)))
    return out


def _same_float(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    a, b = np.float32(a), np.float32(b)
    return bool(a.view(np.uint32) == b.view(np.uint32) or (np.isnan(a) and np.isnan(b)))


def _quantize_ours(profile, fmt, case):
    from ..quantize import quantize

    x, given = case.inputs["x"], case.inputs["tensor_scale"]
    return quantize(x, format=fmt, profile=profile, tensor_scale=given, backend="numba",
                    scale_layout="linear")


def _quantize_bad(profile, fmt, case) -> np.ndarray:
    """Per block of ``case``: whether fp4ref under ``profile`` differs from the
    implementation (codes, scale byte read in the implementation's layout, and for NVFP4
    the stored tensor scale)."""
    block = _BLOCK[fmt]
    x = case.inputs["x"]
    rows, k = x.shape
    n = rows * k // block
    try:
        ours = _quantize_ours(profile, fmt, case)
    except (ValueError, TypeError):  # e.g. a given tensor scale the profile has none for
        return np.full(n, not isinstance(case.output, Refused))
    if isinstance(case.output, Refused):
        return np.ones(n, bool)
    blocks, scales, stored = case.output
    ob = np.asarray(ours.blocks, np.uint8).reshape(rows, -1)
    if blocks.size != ob.size:
        return np.ones(n, bool)
    bad = (blocks.reshape(rows, -1) != ob).reshape(n, -1).any(1)
    bad |= scales.reshape(-1) != np.asarray(ours.scales, np.uint8).reshape(-1)
    if fmt == "nvfp4" and not _same_float(ours.stored_tensor_scale, stored):
        bad[:] = True
    return bad


def _decode_cases(impl, fmt, seeds, shape, skipped):
    """Inputs for a decoder: every (scale byte, packed byte) pair, one byte in each position
    of a block, and the bytes fp4ref (OCP) makes of every probe and N(0, 1) matrix, with a
    few tensor scales; each in every dtype the decoder produces. Blocks decode on their
    own, so each (tensor scale, dtype) is one call of ``impl`` on one stack of blocks, each
    block labelled with its class (``Case.inputs["labels"]``)."""
    from ..quantize import quantize

    block = _BLOCK[fmt]
    # every (scale byte, packed byte) pair once: per scale byte, the 256 packed bytes
    # spread over 256 / (B/2) blocks
    per = 256 // (block // 2)
    stored = np.tile(np.arange(256, dtype=np.uint8).reshape(per, block // 2), (256, 1))
    rows = [("stored-bytes", stored, np.repeat(np.arange(256, dtype=np.uint8), per))]
    # one byte per block, in each position, the other pairs 0x00: the nibble order shows
    positions = np.zeros((block // 2, 256, block // 2), np.uint8)
    for j in range(block // 2):
        positions[j, :, j] = np.arange(256)
    rows.append(("byte-positions", positions.reshape(-1, block // 2),
                 np.full(positions.shape[0] * 256, 0x7F if fmt == "mxfp4" else 0x38, np.uint8)))
    inputs = [(p.label, p.x) for p in _probes.probes(fmt) if p.tensor_scale is None]
    inputs += [(f"normal-seed{s}", _probes.gaussian(shape, s)) for s in range(seeds)]
    for label, x in inputs:
        with np.errstate(all="ignore"):
            q = quantize(x, format=fmt, scale_layout="linear", backend="numba")
        rows.append((label, np.asarray(q.blocks, np.uint8).reshape(-1, block // 2),
                     np.asarray(q.scales, np.uint8).reshape(-1)))
    blocks = np.concatenate([r[1] for r in rows])
    scales = np.concatenate([r[2] for r in rows]).reshape(-1, 1)
    codes = np.concatenate([np.full(r[2].size, k) for k, r in enumerate(rows)])
    cases = []
    for dtype in _BITS:
        for given in (_DECODE_TENSOR_SCALES if fmt == "nvfp4" else (None,)):
            tag = dtype if given is None else f"{dtype}, tensor scale {given:.4g}"
            try:
                out = impl(blocks.copy(), scales.copy(), format=fmt, tensor_scale=given,
                           dtype=dtype)
            except NotImplementedError as error:
                skipped.append(f"{tag}: {error}")
                continue
            except Exception as error:  # noqa: BLE001
                skipped.append(f"{tag}: raised {type(error).__name__}: {error}")
                continue
            names = [f"{r[0]} ({tag})" for r in rows]
            cases.append(Case(tag, {"blocks": blocks, "scales": scales, "tensor_scale": given,
                                    "dtype": dtype, "labels": codes, "names": names},
                              _numpy(out)))
    return cases


def _decode_ours(profile, fmt, case):
    from ..api import dequantize

    i = case.inputs
    return dequantize(i["blocks"], i["scales"], format=fmt, profile=profile,
                      tensor_scale=i["tensor_scale"], scale_layout="linear", dtype=i["dtype"],
                      backend="numba")


def _decode_bad(profile, fmt, case) -> np.ndarray:
    block = _BLOCK[fmt]
    i = case.inputs
    n = i["scales"].size
    theirs = case.output
    if theirs.dtype.name != i["dtype"] or theirs.size != n * block:
        return np.ones(n, bool)
    try:
        with np.errstate(all="ignore"):
            ours = np.asarray(_decode_ours(profile, fmt, case))
    except (ValueError, TypeError):
        return np.ones(n, bool)
    kind = _BITS[i["dtype"]]
    a = np.ascontiguousarray(ours).view(kind).reshape(-1)
    b = np.ascontiguousarray(theirs).view(kind).reshape(-1)
    differ = np.flatnonzero(a != b)
    if differ.size:  # any NaN matches any NaN (a NaN's bits are the hardware's)
        with np.errstate(all="ignore"):
            nan = (np.isnan(ours.reshape(-1)[differ].astype(np.float32))
                   & np.isnan(theirs.reshape(-1)[differ].astype(np.float32)))
        differ = differ[~nan]
    bad = np.zeros(n, bool)
    bad[differ // block] = True
    return bad


# ---------------------------------------------------------------- the search


@dataclass(frozen=True)
class _Score:
    classes: int  # edge classes (and random matrices) with a disagreeing block
    blocks: int  # disagreeing blocks in all

    def key(self):
        return (self.classes, self.blocks)


def _signature(profile, fmt, cases, bad_of) -> tuple[_Score, bytes]:
    """The score of ``profile`` and its pattern of disagreeing blocks (two configurations
    with the same pattern are the same answer on these inputs)."""
    masks = [bad_of(profile, fmt, case) for case in cases]
    per = 0
    for case, bad in zip(cases, masks, strict=True):
        labels = case.inputs.get("labels")
        per += (1 if bad.any() else 0) if labels is None else np.unique(labels[bad]).size
    total = sum(int(b.sum()) for b in masks)
    return _Score(per, total), np.packbits(np.concatenate(masks)).tobytes()


def _evaluate(profile, fmt, cases, bad_of) -> tuple[_Score, dict]:
    """The score of ``profile`` and, by class, (case, that class's blocks' bad mask,
    their indices in the case)."""
    per = {}
    for case in cases:
        bad = bad_of(profile, fmt, case)
        if not bad.any():
            continue
        labels = case.inputs.get("labels")
        if labels is None:
            per[case.label] = (case, bad, np.arange(bad.size))
            continue
        for code in np.unique(labels[bad]).tolist():
            where = np.flatnonzero(labels == code)
            per[case.inputs["names"][code]] = (case, bad[where], where)
    return _Score(len(per), sum(int(b.sum()) for _, b, _ in per.values())), per


class _Scorer:
    """Scores configurations on one set of cases, each configuration once.

    Configurations that differ only in name and description are one; for a quantizer the
    scale layout is the implementation's, read once (:func:`_in_layout`), so it is not part
    of a configuration's score either."""

    def __init__(self, fmt, cases, bad_of):
        self.fmt, self.cases, self.bad_of = fmt, cases, bad_of
        self.seen: dict = {}

    @staticmethod
    def _key(profile):
        return dataclasses.replace(profile, name="", description="", scale_layout="linear")

    def signature(self, profile) -> tuple[_Score, bytes]:
        key = self._key(profile)
        if key not in self.seen:
            self.seen[key] = _signature(profile, self.fmt, self.cases, self.bad_of)
        return self.seen[key]

    def score(self, profile) -> _Score:
        return self.signature(profile)[0]

    def neighbours(self, profile, fields):
        """Every valid one-field change of ``profile``: (field, value, configuration), in the
        fields' and choices' order; and the changes that are invalid alone (a choice that
        needs another field changed with it) as (field, value, None)."""
        for name in fields:
            for value in field_values(name):
                if value != getattr(profile, name):
                    yield name, value, _replace(profile, {name: value})


#: The most one-field changes (the best-scoring among those that change any block) that
#: the pair step combines two at a time.
PAIR_WIDTH = 24


def _descend(scorer, start, fields, limit, changes=None):
    """Greedy descent from ``start``: each step the single field change that lowers the
    score most (ties: the earlier field and choice), until none does or ``limit`` fields
    are changed."""
    changes = dict(changes or {})
    current = start
    score = scorer.score(current)
    while len(changes) < limit and score.classes:
        best = None
        for name, value, candidate in scorer.neighbours(current, fields):
            if candidate is None:
                continue
            s = scorer.score(candidate)
            if s.key() < score.key() and (best is None or s.key() < best[0].key()):
                best = (s, name, value, candidate)
        if best is None:
            break
        score, name, value, current = best
        changes[name] = value
    return score, changes, current


def _pair_step(scorer, current, fields):
    """The best two-field change of ``current`` that lowers its score, or None: pairs of the
    :data:`PAIR_WIDTH` best one-field changes that alter which blocks disagree, and of the
    choices invalid alone (a convention that needs another field with it)."""
    score, pattern = scorer.signature(current)
    moving, lonely = [], []
    for name, value, candidate in scorer.neighbours(current, fields):
        if candidate is None:
            lonely.append((name, value))
            continue
        s, p = scorer.signature(candidate)
        if p != pattern:
            moving.append((s.key(), len(moving), name, value))
    moving = [(n, v) for *_, n, v in sorted(moving)[:PAIR_WIDTH]]
    singles = moving + lonely
    best = None
    for i, (n1, v1) in enumerate(singles):
        for n2, v2 in singles[i + 1:]:
            if n1 == n2:
                continue
            candidate = _replace(current, {n1: v1, n2: v2})
            if candidate is None:
                continue
            s = scorer.score(candidate)
            if s.key() < score.key() and (best is None or s.key() < best[0].key()):
                best = (s, {n1: v1, n2: v2}, candidate)
    return best


def _prune(scorer, start, changes):
    """``changes`` without those whose removal does not raise the score (the fewest fields
    that give the same agreement)."""
    changes = dict(changes)
    score = scorer.score(_replace(start, changes))
    for name in list(changes):
        rest = {k: v for k, v in changes.items() if k != name}
        candidate = _replace(start, rest)
        if candidate is not None and scorer.score(candidate).key() <= score.key():
            changes = rest
    return changes


def _search(scorer, start, fields, limit, first=None):
    """From profile ``start`` (with the changes ``first`` made): greedy one-field steps;
    where they stop short of an exact match, a two-field step and greedy again; then the
    changes that do not help dropped."""
    first = dict(first or {})
    score, changes, current = _descend(scorer, _replace(start, first), fields, limit, first)
    while score.classes and len(changes) + 2 <= limit:
        pair = _pair_step(scorer, current, fields)
        if pair is None:
            break
        _, step, current = pair
        changes.update(step)
        score, changes, current = _descend(scorer, current, fields, limit, changes)
    changes = _prune(scorer, start, changes)
    current = _replace(start, changes)
    return scorer.score(current), changes, current


@contextmanager
def _one_thread():
    """numba's kernels on one thread while the search runs: its inputs are a few hundred
    blocks, and waking the thread pool for each of its thousands of calls costs more than
    the work (on a loaded machine, most of the time)."""
    try:
        import numba

        before = numba.get_num_threads()
        numba.set_num_threads(1)
    except (ImportError, ValueError, RuntimeError):
        yield
        return
    try:
        yield
    finally:
        numba.set_num_threads(before)


def identify(
    impl: Callable | str,
    *,
    operation: str = "quantize",
    format: str = "mxfp4",
    seeds: int = 2,
    shape: tuple[int, int] = (16, 256),
    starts: int | None = 3,
    max_changes: int = 4,
    minimize: bool = True,
    input_dtype: str = "float32",
    nan_scale_sign: str = "exact",
) -> Identification:
    """The fp4ref configuration closest to ``impl``, and what still differs.

    Parameters
    ----------
    impl : callable or str
        The implementation's quantizer or dequantizer, with the signature of the module
        text, or ``"module:function"``.
    operation : {"quantize", "dequantize"}
    format : {"mxfp4", "nvfp4"}
    seeds, shape : int, (int, int)
        The seeded N(0, 1) matrices beside the probes.
    starts : int or None
        How many of the closest named profiles (those agreeing and disagreeing alike count
        once) the field search starts from, beside ``"ocp"`` (None: all), when no named
        profile agrees everywhere. On equal scores the answer with fewer changes wins, then
        the profile listed first.
    max_changes : int
        The most fields changed from a profile (the scale layout, read from the
        implementation's bytes, is not counted).
    minimize : bool
        Shrink each remaining disagreement to its smallest input (quantize: zeroing one
        element at a time while the two sides still differ; more calls of ``impl``).
    input_dtype : {"float32", "float16", "bfloat16"}
        The dtype the quantizer takes: every probe is rounded to it first (for ``impl``
        and fp4ref alike).
    nan_scale_sign : {"exact", "any"}
        NVFP4 quantize: ``"any"`` lets either NaN scale byte (0x7F, 0xFF) match the other,
        for an implementation whose NaN byte's sign is not a function of the block (vLLM:
        the position in torch's vectorized loop).

    Returns
    -------
    Identification
        Its :meth:`~Identification.report` is what the command prints.

    Raises
    ------
    ValueError
        For an unknown operation, format or input dtype, an implementation that takes none
        of the probes, or scale bytes whose count fits no layout.
    """
    if operation not in OPERATIONS:
        raise ValueError(f"operation must be one of {OPERATIONS}; got {operation!r}")
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}; got {format!r}")
    if nan_scale_sign not in ("exact", "any"):
        raise ValueError(f"nan_scale_sign must be 'exact' or 'any'; got {nan_scale_sign!r}")
    if input_dtype not in _BITS:
        raise ValueError(f"input_dtype must be one of {tuple(_BITS)}; got {input_dtype!r}")
    if isinstance(max_changes, bool) or not isinstance(max_changes, int) or max_changes < 0:
        raise ValueError(f"max_changes must be an int >= 0; got {max_changes!r}")
    fn = load(impl) if isinstance(impl, str) else impl
    with np.errstate(all="ignore"), _one_thread():
        return _identify(fn, operation, format, seeds, shape, starts, max_changes, minimize,
                         input_dtype, nan_scale_sign)


def native_profiles(fmt: str) -> set:
    """The profiles of real implementations of ``fmt``: those the peer adapters
    (:mod:`fp4ref.conformance.peers`) name for it, and ``ocp``. On equal answers identify
    prefers them (profile fouroversix's MXFP4 fields are searched, but an MXFP4 quantizer
    is not named after an NVFP4 implementation when ocp does as well)."""
    from .peers import PEERS

    def walk(cls):
        yield cls
        for sub in cls.__subclasses__():
            yield from walk(sub)

    names = {"ocp"}
    for cls in PEERS:
        for adapter in walk(cls):
            if fmt in adapter.profiles:
                names.add(adapter.profiles[fmt])
    return names


def _layout_cases(raw, fmt, named):
    """(layout, cases): the implementation's scale bytes read in the layout their counts
    fit; where several fit every case, the one under which a named profile agrees best
    (ties: the layouts' order)."""
    readings = {}
    for layout in _profiles.CHOICES["scale_layout"]:
        cases = _in_layout(raw, fmt, layout)
        if cases is not None:
            readings[layout] = cases
    if not readings:
        case = next(c for c in raw if not isinstance(c.output, Refused))
        rows, k = case.inputs["x"].shape
        raise ValueError(
            f"probe {case.label!r}: the implementation returned {case.output[1].size} scale "
            f"bytes for a [{rows}, {k // _BLOCK[fmt]}] scale matrix (or the probes' counts "
            f"differ in layout); no layout of {_profiles.CHOICES['scale_layout']} stores that")
    if len(readings) == 1:
        return next(iter(readings.items()))
    best = None
    for rank, (layout, cases) in enumerate(readings.items()):
        scorer = _Scorer(fmt, cases, _quantize_bad)
        key = (min(scorer.score(p).key() for p in named), rank)
        if best is None or key < best[0]:
            best = (key, layout, cases)
    return best[1], best[2]


def _identify(fn, operation, format, seeds, shape, starts, max_changes, minimize,
              input_dtype, nan_scale_sign="exact"):
    began = time.perf_counter()
    skipped: list[str] = []
    if operation == "quantize":
        cases = _quantize_cases(fn, format, seeds, shape, skipped, input_dtype)
        bad_of = _quantize_bad if nan_scale_sign == "exact" else _quantize_bad_any_nan
    else:
        cases = _decode_cases(fn, format, seeds, shape, skipped)
        bad_of = _decode_bad
    if not cases:
        raise ValueError(f"the implementation took none of the {format} {operation} probes: "
                         + "; ".join(skipped[:3]))
    named = [p for p in _profiles.PROFILES.values()
             if not (format == "nvfp4" and operation == "quantize" and p.nvfp4_recipe is None)]
    layout = None  # a decoder is given linear scales (its glue converts them)
    if operation == "quantize":
        layout, cases = _layout_cases(cases, format, named)
    scorer = _Scorer(format, cases, bad_of)
    native = native_profiles(format)
    order = {p.name: (p.name not in native, i)
             for i, p in enumerate(_profiles.PROFILES.values())}

    def moved(profile):  # the layout as a change of the profile's (a quantizer's only)
        return {} if layout in (None, profile.scale_layout) else {"scale_layout": layout}

    ranked = sorted(named, key=lambda p: (scorer.score(p).key(), len(moved(p)), order[p.name]))
    fields = [f for f in _profiles.FIELDS if f != "scale_layout"
              and (f in _profiles.CHOICES or len(field_values(f)) > 1)]
    equivalent = []
    # keys: (score, changes, not native, the start profile's own score, its place, the
    # change's place)
    best = ((scorer.score(ranked[0]).key(), len(moved(ranked[0])), order[ranked[0].name][0],
             scorer.score(ranked[0]).key(), order[ranked[0].name]),
            ranked[0], {}, ranked[0], scorer.score(ranked[0]))
    if best[4].blocks == 0:  # a named profile agrees everywhere
        equivalent = [p.name for p in named if p is not ranked[0] and not moved(p)
                      and scorer.score(p).blocks == 0]
    else:  # every named profile with each one-field change: the exact answers of one change
        ring, seen = [], set()
        for profile in named:
            for i, (name, value, candidate) in enumerate(scorer.neighbours(profile, fields)):
                if candidate is not None:
                    s = scorer.score(candidate)
                    ring.append(((s.key(), 1 + len(moved(profile)), order[profile.name][0],
                                  scorer.score(profile).key(), order[profile.name], i),
                                 profile, {name: value}, candidate, s))
        ring.sort(key=lambda entry: entry[0])
        if ring and ring[0][0] < best[0]:
            best = ring[0]
        if best[4].blocks:  # none: greedy from the closest (configurations alike count once)
            pool = sorted([((scorer.score(p).key(), len(moved(p)), order[p.name][0],
                             scorer.score(p).key(), order[p.name], -1), p, {}, p,
                            scorer.score(p)) for p in named]
                          + ring, key=lambda e: e[0])
            chosen = []
            for entry in pool:
                sig = scorer.signature(entry[3])[1]
                if sig not in seen:
                    seen.add(sig)
                    chosen.append(entry)
                    if starts is not None and len(chosen) == starts:
                        break
            if not any(entry[1] is named[0] and not entry[2] for entry in chosen):
                chosen.append((None, named[0], {}, named[0], None))  # the reference, always
            for _, start, first, _, _ in chosen:
                limit = max_changes
                if best[4].blocks == 0:  # only an exact answer with fewer changes could win
                    limit = len(best[2]) - 1
                    if limit < len(first):
                        continue
                score, changes, config = _search(scorer, start, fields, limit, first)
                key = (score.key(), len(changes) + len(moved(start)), order[start.name][0],
                       scorer.score(start).key(), order[start.name])
                if key < best[0]:
                    best = (key, start, changes, config, score)
    _, start, changes, config, score = best
    changes = {**moved(start), **changes}
    if layout is not None:
        config = dataclasses.replace(config, scale_layout=layout)
    _, per = _evaluate(config, format, cases, bad_of)
    classes = _classes(cases)
    total = sum(classes.values())
    random_total = sum(n for label, n in classes.items() if label.startswith("normal-"))
    random_bad = sum(int(b.sum()) for label, (_, b, _) in per.items()
                     if label.startswith("normal-"))
    close = (random_total == 0 or random_bad <= (1 - CLOSE_RANDOM) * random_total) and (
        2 * len(per) <= len(classes))
    result = Identification(operation, format, start.name, changes, config, close,
                            total - score.blocks, total, len(classes), skipped=skipped,
                            evaluated=len(scorer.seen), equivalent=equivalent)
    for label in classes:
        if label in per:
            case, bad, where = per[label]
            d = Disagreement(label, int(bad.sum()), bad.size)
            _example(d, fn, config, format, operation, case,
                     int(where[np.flatnonzero(bad)[0]]), minimize and close, layout,
                     input_dtype)
            result.disagreements.append(d)
    result.seconds = time.perf_counter() - began
    return result


def _classes(cases) -> dict:
    """Blocks compared, by class, in the cases' order."""
    out: dict = {}
    for case in cases:
        labels = case.inputs.get("labels")
        if labels is None:
            out[case.label] = case.inputs["x"].size // _BLOCK[case.inputs["format"]]
            continue
        for code, count in zip(*np.unique(labels, return_counts=True), strict=True):
            out[case.inputs["names"][code]] = int(count)
    return out


# ---------------------------------------------------------------- minimal inputs


def _hexes(values) -> str:
    return "[" + " ".join(f"{int(v):x}" for v in values) + "]"


def _describe_block(blocks, scales, stored, i, fmt, rows, k):
    """Block ``i`` of a quantizer's output (scales linear ``[rows, K/B]``) as text."""
    block = _BLOCK[fmt]
    per_row = k // block
    r, j = divmod(i, per_row)
    data = np.asarray(blocks, np.uint8).reshape(rows, -1)[r, j * block // 2:(j + 1) * block // 2]
    s = np.asarray(scales, np.uint8).reshape(-1)
    text = f"scale {int(s[r * per_row + j]):#04x} bytes {_hexes(data)}"
    if fmt == "nvfp4":
        text += f" tensor scale {stored!r}"
    return text


def _example(d, fn, config, fmt, operation, case, i, minimize, layout, input_dtype):
    """Fill ``d`` with block ``i`` of ``case``: its input (shrunk when ``minimize``) and
    both outputs."""
    block = _BLOCK[fmt]
    if operation == "dequantize":
        inp = case.inputs
        theirs = case.output.reshape(-1, block)[i]
        ours = np.asarray(_decode_ours(config, fmt, case)).reshape(-1, block)[i]
        kind = _BITS[inp["dtype"]]
        row_bytes = block // 2
        blocks = np.asarray(inp["blocks"], np.uint8).reshape(-1)
        d.input = (f"scale {int(inp['scales'].reshape(-1)[i]):#04x} bytes "
                   f"{_hexes(blocks[i * row_bytes:(i + 1) * row_bytes])}"
                   + (f" tensor scale {inp['tensor_scale']!r}" if fmt == "nvfp4" else "")
                   + f" -> {inp['dtype']}")
        d.implementation = "bits " + _hexes(np.ascontiguousarray(theirs).view(kind))
        d.fp4ref = "bits " + _hexes(np.ascontiguousarray(ours).view(kind))
        return
    x = case.inputs["x"]
    given = case.inputs["tensor_scale"]
    rows, k = x.shape
    if isinstance(case.output, Refused):  # one side refused the whole probe
        d.input = (f"the probe ({rows}x{k}), block {i}: x = {x.reshape(-1, block)[i].tolist()}"
                   + (f", tensor_scale={given!r}" if given is not None else ""))
        d.implementation = case.output.error
        ours = _quantize_ours(config, fmt, case)
        d.fp4ref = _describe_block(ours.blocks, ours.scales, ours.stored_tensor_scale, i, fmt,
                                   rows, k)
        return
    one = np.ascontiguousarray(x.reshape(-1, block)[i:i + 1])
    run = _Runner(fn, config, fmt, given, layout)
    if minimize and run.differs(one):  # (an NVFP4 block alone has its own tensor amax)
        for j in range(block):
            if one[0, j] != 0:
                trial = one.copy()
                trial[0, j] = 0
                if run.differs(trial):
                    one = trial
        nonzero = {j: float(v) for j, v in enumerate(one[0]) if v != 0 or np.signbit(v)}
        d.input = (f"one block, x[j] = {nonzero} (others +0)"
                   + (f", tensor_scale={given!r}" if given is not None else "")
                   + (f", as {input_dtype}" if input_dtype != "float32" else ""))
        theirs, ours = run.both(one)
        d.implementation = _describe_block(*theirs, 0, fmt, 1, block)
        d.fp4ref = _describe_block(ours.blocks, ours.scales, ours.stored_tensor_scale, 0, fmt,
                                   1, block)
        return
    d.input = (f"block {i} of the probe ({rows}x{k}): x = {x.reshape(-1, block)[i].tolist()}"
               + (f", tensor_scale={given!r}" if given is not None else ""))
    blocks, scales, stored = case.output
    d.implementation = _describe_block(blocks, scales, stored, i, fmt, rows, k)
    try:
        ours = _quantize_ours(config, fmt, case)
    except (ValueError, TypeError) as error:
        d.fp4ref = f"raised {type(error).__name__}: {str(error)[:120]}"
        return
    d.fp4ref = _describe_block(ours.blocks, ours.scales, ours.stored_tensor_scale, i, fmt,
                               rows, k)


class _Runner:
    """Both sides on a one-block input (for shrinking a disagreement); the
    implementation's scale bytes read in ``layout``."""

    def __init__(self, fn, config, fmt, given, layout):
        self.fn, self.config, self.fmt, self.given = fn, config, fmt, given
        self.layout = layout

    def both(self, x):
        blocks, scales, stored = _call_quantizer(self.fn, x, self.fmt, self.given)
        linear = _linear_scales(scales, x.shape[0], x.shape[1] // _BLOCK[self.fmt],
                                self.layout)
        if linear is None:
            raise ValueError(f"{scales.size} scale bytes do not fit layout {self.layout!r}")
        case = Case("", {"x": x, "tensor_scale": self.given}, None)
        with np.errstate(all="ignore"):
            ours = _quantize_ours(self.config, self.fmt, case)
        return (blocks, linear, stored), ours

    def differs(self, x) -> bool:
        try:
            theirs = self.both(x)[0]
            case = Case("", {"x": x, "tensor_scale": self.given}, theirs)
            with np.errstate(all="ignore"):
                return bool(_quantize_bad(self.config, self.fmt, case).any())
        except Exception:  # noqa: BLE001 - the shrunk input is refused: keep the last one
            return False


def identify_all(impl, *, operation="quantize", formats=FORMATS, **options):
    """:func:`identify` for each format the implementation takes (a format whose every
    probe it declines is left out)."""
    out = []
    for fmt in formats:
        try:
            out.append(identify(impl, operation=operation, format=fmt, **options))
        except ValueError as error:
            if "took none" not in str(error):
                raise
    return out


def peer_functions(peer) -> dict:
    """A peer adapter (:mod:`fp4ref.conformance.peers`) as the two callables
    :func:`identify` takes, by operation (the glue of its ``quantize_probe`` and
    ``dequantize_probe``)."""

    from .peers.base import Peer

    probing = type(peer).quantize_probe is not Peer.quantize_probe
    own = dict(peer.profiles)
    if not probing:  # a suites-only adapter: its quantize_profile under its own profile
        for name in peer.native.get("profile", ()):
            for fmt in FORMATS:
                own.setdefault(fmt, name)

    def quantize(x, *, format, tensor_scale):
        if format not in own:
            raise NotImplementedError(f"{peer.name} has no {format} quantizer adapted")
        if probing:  # the adapter hands back linear scales: store them as the peer does
            blocks, scales, stored = peer.quantize_probe(x, format, tensor_scale)
            layout = _profiles.get(own[format]).scale_layout
            if layout != "linear":
                from ..layouts import swizzle

                scales = swizzle(np.asarray(scales, np.uint8).reshape(x.shape[0], -1), layout)
            return blocks, scales, stored
        from ..quantize import quantize as ours

        profile = _profiles.get(own[format])
        stored = None
        if format == "nvfp4" and profile.tensor_scale:  # the glue computes the tensor
            stored = tensor_scale if tensor_scale is not None else ours(  # scale the
                x, format="nvfp4", profile=profile).stored_tensor_scale  # suites pass
            if tensor_scale is None and stored is None:
                stored = 1.0
        elif tensor_scale is not None:
            raise NotImplementedError(f"{peer.name} takes no tensor scale")
        out = peer.quantize_profile(x, np.asarray(stored if stored is not None else 1.0,
                                                  np.float32), format=format,
                                    profile=own[format])
        return out[0], out[1], (None if stored is None else np.float32(stored))

    def dequantize(blocks, scales, *, format, tensor_scale, dtype):
        if format not in peer.profiles or dtype not in peer.decode_dtypes:
            raise NotImplementedError(f"{peer.name} has no {format} {dtype} decoder adapted")
        if tensor_scale is not None and not _profiles.get(peer.profiles[format]).tensor_scale:
            raise NotImplementedError(f"{peer.name}'s {format} decoder takes no tensor scale")
        return peer.dequantize_probe(blocks, scales, tensor_scale, format, dtype)

    return {"quantize": quantize, "dequantize": dequantize}


def identify_peer(peer, *, operation="quantize", format="mxfp4", **options) -> Identification:
    """:func:`identify` on a peer adapter (:func:`peer_functions`), its probes rounded to
    the dtype its quantizer takes (:attr:`~fp4ref.conformance.peers.base.Peer.input_dtype`).
    """
    options.setdefault("input_dtype", peer.input_dtype)
    if operation == "quantize":
        options.setdefault("nan_scale_sign", peer.nan_scale_sign)
    return identify(peer_functions(peer)[operation], operation=operation, format=format,
                    **options)
