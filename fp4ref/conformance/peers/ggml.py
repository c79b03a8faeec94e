"""The ggml C adapter (see :mod:`fp4ref.conformance.peers`): llama.cpp's ggml as vendored
by the llama-cpp-python 0.3.36 sdist, built by ``.ci/peers/ggml.sh`` into
``peers_dir()/llama-cpp-python-0.3.36/libggml-fp4ref.so`` and driven through ctypes:
``ggml_quantize_chunk`` (which runs ``quantize_mxfp4`` / ``quantize_nvfp4``, the reference
row quantizers) and ``ggml_get_type_traits(type)->to_float``.

Records, as ggml stores them: MXFP4 (type 39) ``block_mxfp4`` of 32 elements, the E8M0
byte then 16 bytes, split-half (element j low nibble, j + 16 high); NVFP4 (type 40)
``block_nvfp4`` of 64 elements, 4 UE4M3 bytes (one per 16) then 32 bytes, split-half within
each 16. The glue here regroups those bytes into fp4ref's ``blocks``/``scales`` and back.
"""

from __future__ import annotations

import ctypes

import numpy as np

from .base import Peer, peers_dir

VERSION = "0.3.36"
MXFP4, NVFP4 = 39, 40
#: (ggml type, elements per record, scale bytes per record) per format.
_TYPES = {"mxfp4": (MXFP4, 32, 1), "nvfp4": (NVFP4, 64, 4)}


class _Traits(ctypes.Structure):
    _fields_ = [
        ("type_name", ctypes.c_char_p),
        ("blck_size", ctypes.c_int64),
        ("blck_size_interleave", ctypes.c_int64),
        ("type_size", ctypes.c_size_t),
        ("is_quantized", ctypes.c_bool),
        ("to_float", ctypes.c_void_p),
        ("from_float_ref", ctypes.c_void_p),
    ]


_TO_FLOAT = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)


def library_path():
    """Where ``.ci/peers/ggml.sh`` puts the shared library."""
    return peers_dir() / f"llama-cpp-python-{VERSION}" / "libggml-fp4ref.so"


class Ggml(Peer):
    name, module = "ggml", "ctypes"
    own = (f"ggml C (llama-cpp-python {VERSION} sdist, x86-64): ggml_quantize_chunk "
           "(quantize_row_mxfp4_ref / quantize_row_nvfp4_ref) and to_float for MXFP4 (type 39) "
           "and NVFP4 (type 40); profile ggml")
    profiles = {"mxfp4": "ggml", "nvfp4": "ggml"}

    def __init__(self) -> None:
        path = library_path()
        if not path.is_file():
            raise ImportError(f"ggml is not built at {path} (run .ci/peers/ggml.sh)")
        super().__init__()
        self.c = ctypes.CDLL(str(path))
        self.c.ggml_quantize_chunk.restype = ctypes.c_size_t
        self.c.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
                                               ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
                                               ctypes.c_void_p]
        self.c.ggml_get_type_traits.restype = ctypes.POINTER(_Traits)
        self.c.ggml_get_type_traits.argtypes = [ctypes.c_int]

    @property
    def version(self) -> str:
        return VERSION

    def records(self, x: np.ndarray, type_: int) -> np.ndarray:
        """``ggml_quantize_chunk`` of float32 ``x`` [rows, K] as one uint8 array of records."""
        x = np.ascontiguousarray(x, np.float32)
        traits = self.c.ggml_get_type_traits(type_).contents
        rows, k = x.shape
        out = np.zeros(rows * k // traits.blck_size * traits.type_size, np.uint8)
        written = self.c.ggml_quantize_chunk(type_, x.ctypes.data, out.ctypes.data, 0, rows, k,
                                             None)
        assert written == out.size
        return out

    def to_float(self, records: np.ndarray, type_: int, count: int) -> np.ndarray:
        """``traits->to_float`` of ``count`` elements' records."""
        traits = self.c.ggml_get_type_traits(type_).contents
        records = np.ascontiguousarray(records, np.uint8)
        out = np.empty(count, np.float32)
        _TO_FLOAT(traits.to_float)(records.ctypes.data, out.ctypes.data, count)
        return out

    def quantize_probe(self, x, format, tensor_scale):
        if tensor_scale is not None:
            raise NotImplementedError("ggml's quantizers take no tensor scale")
        type_, per_record, n_scales = _TYPES[format]
        rows, block = x.shape[0], per_record // n_scales
        # blocks are independent (no tensor scale): zero blocks fill the last record
        flat = np.zeros(-(-x.size // per_record) * per_record, np.float32)
        flat[: x.size] = x.reshape(-1)
        records = self.records(flat.reshape(-1, per_record), type_)
        records = records.reshape(-1, n_scales + per_record // 2)
        scales = records[:, :n_scales].reshape(-1)[: x.size // block]
        blocks = records[:, n_scales:].reshape(-1)[: x.size // 2]
        return blocks.reshape(rows, -1), scales.reshape(rows, -1), None

    def dequantize_probe(self, blocks, scales, stored, format, dtype):
        type_, per_record, n_scales = _TYPES[format]
        count = blocks.size * 2
        records = -(-count // per_record)
        s = np.zeros(records * n_scales, np.uint8)
        s[: scales.size] = np.asarray(scales, np.uint8).reshape(-1)
        q = np.zeros(records * per_record // 2, np.uint8)
        q[: blocks.size] = np.asarray(blocks, np.uint8).reshape(-1)
        data = np.concatenate([s.reshape(records, -1), q.reshape(records, -1)], 1)
        out = self.to_float(data, type_, records * per_record)[:count]
        return out.reshape(blocks.shape[0], -1)
