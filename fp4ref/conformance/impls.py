"""Implementations the checker runs: fp4ref's own backends, and a user's ``--impl``.

An implementation is any object with methods (or a module with functions) named after
the suites' operations; each is called as ``operation(*inputs, **params)``:

=================  ==========================================================================
operation          signature
=================  ==========================================================================
decode_e2m1        ``(codes: uint8[n]) -> float32[n]``
encode_e2m1        ``(x: float32[n], *, rounding) -> uint8[n]``
decode_e8m0        ``(codes: uint8[n]) -> float32[n]``
decode_e4m3        ``(codes: uint8[n]) -> float32[n]``
encode_e4m3        ``(x: float32[n], *, rounding, saturate) -> uint8[n]``
pack               ``(codes: uint8[r, k], *, order, block_size) -> uint8[r, k/2]``
unpack             ``(packed: uint8[r, k/2], *, order, block_size) -> uint8[r, k]``
dequantize_mxfp4   ``(blocks: uint8[N, K/2], scales: uint8[N, K/32], *, nibble_order, dtype,
                   e8m0_decode)``
dequantize_nvfp4   ``(blocks, scales: uint8[N, K/16], tensor_scale: float32[], *,
                   nibble_order, dtype)``
swizzle            ``(scales: uint8[R, C], *, layout) -> uint8[Rpad * Cpad]``
unswizzle          ``(stored: uint8[Rpad * Cpad], *, rows, cols, layout) -> uint8[R, C]``
quantize_mxfp4     ``(x: float32[N, K], *, scale_rule, rounding) -> (blocks, scales)``
quantize_nvfp4     ``(x, tensor_scale: float32[], *, tensor_scale_direction) -> (blocks, scales)``
quantize_profile   ``(x, tensor_scale: float32[][, activations], *, format, profile
                   [, scale_rule])
                   -> (blocks, scales)``
dequantize_profile ``(blocks, scales, tensor_scale: float32[], *, format, profile)
                   -> float32[N, K]`` (bytes stored as the profile stores them)
decode_uqff_blob   ``(blob: uint8[n]) -> (blocks, scales[, bias])``
encode_uqff_blob   ``(blocks, scales[, bias]) -> uint8[n]``
read_uqff_layer    ``(file: uint8[n], *, layer) -> (blocks, scales[, bias])``
=================  ==========================================================================

Operations given malformed bytes (UQFF cases with an ``error``) must raise ``ValueError``.
Results must have the expected shape and dtype: dequantize results are arrays of ``dtype``
(``"float32"``, ``"bfloat16"`` as ``ml_dtypes.bfloat16``, ``"float16"``) or their bits as
uint32/uint16; codes and bytes are uint8. An operation that cannot honour a parameter
raises ``NotImplementedError``: the case is skipped, not failed, and counted as skipped.
Missing operations skip their suites.

The signature is read with :func:`inspect.signature`: a keyword parameter in
:data:`DEFAULTS` may be left out of it, and the cases asking for its default value then
run without it (``f(blocks, scales)`` implements ``dequantize_mxfp4`` for ``dtype
"float32"`` and ``nibble_order "low-first"``); cases asking for another value, or for a
parameter outside :data:`DEFAULTS` the function does not take, are skipped with the reason.

A user's implementation (``--impl``) runs in a child process (:class:`Isolated`), imported
with the current folder first on ``sys.path``; each case has a time limit, and an
implementation that exits, crashes or hangs fails that case, not the checker. The manifest
of the vectors lists every suite's operation and signature (``fp4ref conformance check
--list``).
"""

from __future__ import annotations

import importlib
import inspect
import multiprocessing
import os
import signal
import sys
from typing import Any

import numpy as np

from .. import api, layouts
from ..profiles import profiles
from ..quantize import quantize


class Backend:
    """An fp4ref backend (``"python"``, ``"numba"``, ...) seen as an implementation."""

    def __init__(self, backend: str) -> None:
        self.backend = backend

    def decode_e2m1(self, codes):
        return api.decode_e2m1(codes, backend=self.backend)

    def decode_e8m0(self, codes):
        return api.decode_e8m0(codes, backend=self.backend)

    def decode_e4m3(self, codes):
        return api.decode_e4m3(codes, backend=self.backend)

    def encode_e2m1(self, x, *, rounding, zero_sign="keep", nan="sign"):
        return api.encode_e2m1(x, rounding, zero_sign=zero_sign, nan=nan, backend=self.backend)

    def encode_e4m3(self, x, *, rounding, saturate, nan_byte="sign"):
        return api.encode_e4m3(x, rounding, saturate, nan=nan_byte, backend=self.backend)

    def pack(self, codes, *, order, block_size):
        return api.pack(codes, order, block_size=block_size, backend=self.backend)

    def unpack(self, packed, *, order, block_size):
        return api.unpack(packed, order, block_size=block_size, backend=self.backend)

    def dequantize_mxfp4(self, blocks, scales, *, nibble_order, dtype, e8m0_decode="ocp"):
        return api.dequantize(
            blocks,
            scales,
            format="mxfp4",
            nibble_order=nibble_order,
            dtype=dtype,
            e8m0_decode=e8m0_decode,
            backend=self.backend,
        )

    def dequantize_nvfp4(self, blocks, scales, tensor_scale, *, nibble_order, dtype):
        return api.dequantize(
            blocks,
            scales,
            format="nvfp4",
            tensor_scale=tensor_scale[()],
            nibble_order=nibble_order,
            dtype=dtype,
            backend=self.backend,
        )

    def swizzle(self, scales, *, layout):
        return layouts.swizzle(scales, layout, backend=self.backend)

    def unswizzle(self, stored, *, rows, cols, layout):
        return layouts.unswizzle(stored, rows=rows, cols=cols, layout=layout, backend=self.backend)

    def _quantize(self, x, **options):
        q = quantize(x, backend=self.backend, **options)
        return q.blocks, q.scales

    def quantize_mxfp4(self, x, *, scale_rule, rounding, nonfinite="nan-scale"):
        profile = profiles()["ocp"].with_options(nonfinite=nonfinite)
        return self._quantize(x, format="mxfp4", profile=profile, scale_rule=scale_rule,
                              rounding=rounding)

    def quantize_nvfp4(self, x, tensor_scale, *, tensor_scale_direction):
        profile = profiles()["ocp"].with_options(tensor_scale_direction=tensor_scale_direction)
        return self._quantize(x, format="nvfp4", profile=profile, tensor_scale=tensor_scale[()])

    def quantize_profile(
        self, x, tensor_scale, activations=None, *, format, profile, scale_rule=None
    ):
        has_tensor_scale = format == "nvfp4" and profiles()[profile].tensor_scale
        return self._quantize(
            x,
            format=format,
            profile=profile,
            scale_rule=scale_rule,
            tensor_scale=tensor_scale[()] if has_tensor_scale else None,
            hessian=activations,
        )

    def dequantize_profile(self, blocks, scales, tensor_scale, *, format, profile):
        nvfp4 = format == "nvfp4"
        return api.dequantize(blocks, scales, format=format, profile=profile,
                              tensor_scale=tensor_scale[()] if nvfp4 else None,
                              backend=self.backend)

    def decode_uqff_blob(self, blob):
        from ..io import uqff

        layer = uqff.decode_mxfp4_blob(blob.tobytes())
        return _layer(layer.blocks, layer.scales, layer.bias)

    def encode_uqff_blob(self, blocks, scales, bias=None):
        from ..io import uqff

        return np.frombuffer(uqff.encode_mxfp4_blob(blocks, scales, bias), np.uint8)

    def read_uqff_layer(self, file, *, layer):
        import tempfile

        from ..io import uqff

        with tempfile.TemporaryDirectory() as directory:
            path = f"{directory}/model.uqff"
            with open(path, "wb") as f:
                f.write(file.tobytes())
            shard = uqff.read(path)
            key = int(layer) if shard.generation == 0 else layer
            if key not in shard:
                raise ValueError(f"no layer {layer!r} in the file")
            found = shard[key]
            return _layer(found.blocks, found.scales, getattr(found, "bias", None))


def _layer(blocks, scales, bias):
    return (blocks, scales) if bias is None else (blocks, scales, bias)


class Single:
    """One function standing for one operation."""

    def __init__(self, operation: str, function) -> None:
        setattr(self, operation, function)


def resolve(target: str, operation: str | None = None):
    """The implementation named by ``target`` (``package.module`` or ``package.module:name``).

    A module or an instance is used as it is; a class is instantiated without arguments; a
    function implements ``operation`` (default: the function's own name).
    """
    module_name, _, attribute = target.partition(":")
    try:
        obj = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"--impl {target!r}: cannot import {module_name!r} ({error})") from None
    for part in filter(None, attribute.split(".")):
        if not hasattr(obj, part):
            raise ValueError(f"--impl {target!r}: {module_name!r} has no attribute {part!r}")
        obj = getattr(obj, part)
    if inspect.isclass(obj):
        return obj()
    if (
        inspect.isfunction(obj)
        or inspect.isbuiltin(obj)
        or (callable(obj) and not inspect.ismodule(obj) and operation)
    ):
        return Single(operation or obj.__name__, obj)
    return obj


def as_array(value: Any) -> np.ndarray:
    """A result as a numpy array (torch tensors of any dtype through
    :func:`fp4ref.arrays.to_numpy`, bfloat16 and the float8 kinds included)."""
    from ..arrays import is_torch, to_numpy

    if is_torch(value):
        value = to_numpy(value.detach().cpu(), "the result")[0]
    return np.asarray(value)


#: Keyword parameters an implementation may leave out, and the value it then implements.
DEFAULTS = {"dtype": "float32", "nibble_order": "low-first", "order": "low-first",
            "rounding": "even", "scale_rule": "floor", "block_size": 32,
            "zero_sign": "keep", "nan": "sign", "nan_byte": "sign", "nonfinite": "nan-scale",
            "e8m0_decode": "ocp"}


def fit_params(function: Any, params: dict) -> tuple[dict, str]:
    """(the keyword arguments to pass, ``""``), or ``({}, why the case is skipped)``, for
    ``function``'s signature (see :data:`DEFAULTS`)."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):  # no signature to read (some builtins): pass them all
        return dict(params), ""
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return dict(params), ""
    taken = {p.name for p in parameters if p.kind in (
        inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)}
    passed = {}
    for name, value in params.items():
        if name in taken:
            passed[name] = value
        elif name not in DEFAULTS or DEFAULTS[name] != value:
            return {}, f"takes no {name!r} argument; the case needs {name}={value!r}"
    return passed, ""


#: A result may hold at most this many times its case's input bytes (plus 1 MiB): every
#: operation's output is within 8 times its input (4-bit codes to float32).
RESULT_FACTOR = 16


def call(impl: Any, operation: str, inputs: list, params: dict, count: int) -> tuple[str, Any]:
    """Run one case on ``impl``: ``("results", [arrays])`` (``count`` of them; none for a
    ``count`` of 0, a case expecting a refusal), ``("skip", reason)``, ``("refused",
    message)`` (a ``ValueError``) or ``("error", message)``."""
    function = getattr(impl, operation, None)
    if not callable(function):
        return "skip", "operation not provided"
    passed, why = fit_params(function, params)
    if why:
        return "skip", why
    try:
        result = function(*inputs, **passed)
    except NotImplementedError as error:
        return "skip", _text(error)
    except ValueError as error:
        return "refused", _text(error)
    except Exception as error:  # an implementation crashing is a failure, reported
        return "error", _text(error)
    if count == 0:  # a case that expects a refusal: whatever came back is wrong
        return "results", []
    results = result if count > 1 else (result,)
    if count > 1 and (not isinstance(result, (tuple, list)) or len(result) != count):
        return "error", f"expected a tuple of {count} results; got {type(result).__name__}"
    arrays = []
    most = RESULT_FACTOR * sum(np.asarray(a).nbytes for a in inputs) + (1 << 20)
    for index, value in enumerate(results):
        try:
            array = as_array(value)
        except Exception as error:
            return "error", f"result {index} is not an array ({_text(error)})"
        if array.dtype.hasobject:
            return "error", f"result {index} is not a numeric array (dtype object)"
        if array.nbytes > most:  # before it is copied or sent back (a broadcast view...)
            return "error", (f"result {index} holds {array.nbytes} bytes (shape "
                             f"{array.shape}), far more than any case's result")
        arrays.append(array)
    return "results", arrays


def _text(error: BaseException) -> str:
    """``Type: message`` on one line."""
    message = " ".join(str(error).split())
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


class InProcess:
    """An implementation called in this process (fp4ref's backends, peers, tests)."""

    def __init__(self, impl: Any) -> None:
        self.impl = impl

    def provides(self, operation: str) -> bool:
        return callable(getattr(self.impl, operation, None))

    def call(self, operation: str, inputs: list, params: dict, count: int) -> tuple[str, Any]:
        return call(self.impl, operation, inputs, params, count)


def _serve(connection: Any, target: str, operation: str | None, folder: str,
           operations: list[str]) -> None:
    """The child process of :class:`Isolated`: import ``target``, then answer calls."""
    sys.path.insert(0, folder)
    try:
        impl = resolve(target, operation)
    except BaseException as error:  # SystemExit and KeyboardInterrupt included
        connection.send(("import-error", _exit_text(error, "while importing")))
        return
    connection.send(("ready", [o for o in operations if callable(getattr(impl, o, None))]))
    while True:
        try:
            message = connection.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        try:
            answer = call(impl, *message)
        except BaseException as error:
            answer = "error", _exit_text(error, "")
        try:
            connection.send(answer)
        except Exception as error:
            connection.send(("error", f"the result cannot be sent back ({_text(error)})"))


def _exit_text(error: BaseException, when: str) -> str:
    if isinstance(error, SystemExit):
        return f"the implementation called sys.exit({error.code!r}) {when}".strip()
    if isinstance(error, ValueError) and str(error).startswith("--impl"):
        return str(error)
    return f"{_text(error)} {when}".strip()


class Isolated:
    """A user's implementation, imported and run in a child process.

    Parameters
    ----------
    target : str
        ``package.module[:name]`` (see :func:`resolve`), imported with ``folder`` (default:
        the current folder) first on ``sys.path``.
    operation : str, optional
        The operation a function given as ``target`` implements.
    operations : list of str
        The operations the vectors use (the child reports which ones ``target`` provides).
    timeout : float
        Seconds a case may take; after that the child is stopped, the case fails and the
        next case starts a fresh child.
    import_timeout : float
        Seconds the import may take.

    Raises
    ------
    ValueError
        If the import fails, exits or hangs (one line saying which).
    """

    def __init__(self, target: str, operation: str | None, operations: list[str],
                 timeout: float = 60.0, import_timeout: float = 120.0,
                 folder: str | None = None) -> None:
        self.target, self.operation, self.operations = target, operation, operations
        self.timeout, self.import_timeout = timeout, import_timeout
        self.folder = folder or os.getcwd()
        self._process: Any = None
        self.provided: list[str] = self._start()

    def _start(self) -> list[str]:
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        # not a daemon: an implementation may start processes of its own
        process = context.Process(target=_serve, args=(
            theirs, self.target, self.operation, self.folder, self.operations))
        process.start()
        theirs.close()
        self._process, self._connection = process, ours
        where = f"--impl {self.target}"
        if not ours.poll(self.import_timeout):
            self.close()
            raise ValueError(f"{where}: no answer within {self.import_timeout:g} s of "
                             f"importing it")
        try:
            kind, detail = ours.recv()
        except (EOFError, OSError):
            raise ValueError(f"{where}: its process ended while importing "
                             f"({self._ended()})") from None
        if kind == "import-error":
            self.close()
            raise ValueError(detail if detail.startswith("--impl") else f"{where}: {detail}")
        return detail

    def _ended(self) -> str:
        """How the child ended (it is reaped); the next call starts a fresh one."""
        process, self._process = self._process, None
        process.join(5)
        if process.exitcode is None:
            process.kill()
            process.join()
        code = process.exitcode
        if code is not None and code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exit status {code}"

    def provides(self, operation: str) -> bool:
        return operation in self.provided

    def call(self, operation: str, inputs: list, params: dict, count: int) -> tuple[str, Any]:
        if self._process is None:
            try:
                self._start()
            except ValueError as error:
                return "error", str(error)
        try:
            self._connection.send((operation, inputs, params, count))
            if not self._connection.poll(self.timeout):
                self.close()
                return "error", (f"no result within {self.timeout:g} s (the implementation's "
                                 f"process was stopped)")
            return self._connection.recv()
        except (EOFError, OSError):
            return "error", f"the implementation's process died ({self._ended()})"

    def close(self) -> None:
        """Stop the child process."""
        if self._process is not None:
            self._process.kill()
            self._process.join()
            self._process = None
            self._connection.close()
