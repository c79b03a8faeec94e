"""The bytes of the conformance files: deterministic safetensors and the hex text twin.

Safetensors (https://huggingface.co/docs/safetensors): a u64 little-endian header length
``n``, ``n`` bytes of UTF-8 JSON, then the data buffer. fp4ref writes it so that the same
tensors always give the same bytes: tensors in sorted name order, laid end to end from
offset 0 in that order, JSON with sorted keys and no spaces, the header padded with spaces
to a multiple of 8 bytes, and ``__metadata__`` holding only fixed strings.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping

import numpy as np

from ..errors import FormatError
from ..io.safetensors_file import dtype_name, read_bytes

#: The safetensors dtypes (of :data:`fp4ref.io.safetensors_file.DTYPES`) the vectors use.
VECTOR_DTYPES = ("U8", "U16", "U32", "F16", "BF16", "F32")


def _dtype_name(dtype: np.dtype) -> str:
    try:
        name = dtype_name(dtype)
    except ValueError:
        name = None
    if name not in VECTOR_DTYPES:
        raise ValueError(
            f"conformance tensors must have one of the dtypes {list(VECTOR_DTYPES)}; got {dtype}"
        )
    return name


def safetensors_bytes(tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str]) -> bytes:
    """The deterministic safetensors encoding of ``tensors`` (see the module docstring)."""
    header: dict[str, object] = {"__metadata__": dict(metadata)} if metadata else {}
    chunks, offset = [], 0
    for name in sorted(tensors):
        array = np.asarray(tensors[name])
        data = array.tobytes()
        header[name] = {
            "dtype": _dtype_name(array.dtype),
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def read_safetensors(data: bytes, where: str) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """(metadata, tensors) of safetensors ``data``, read by fp4ref's one safetensors parser
    (:func:`fp4ref.io.safetensors_file.read_bytes`); ``FormatError`` naming ``where`` if bad,
    including a tensor of a dtype the vectors do not use."""
    metadata, tensors = read_bytes(data, where)
    for name, array in tensors.items():
        if dtype_name(array.dtype) not in VECTOR_DTYPES:
            raise FormatError(f"{where}: tensor {name!r} has dtype {dtype_name(array.dtype)}, "
                              f"not one of the vectors' {list(VECTOR_DTYPES)}")
    return metadata, tensors


def hex_cell(array: np.ndarray, index: int) -> str:
    """Element ``index`` of the flattened ``array`` as upper-case hex of its bits."""
    item = np.ascontiguousarray(array).reshape(-1)[index : index + 1]
    width = item.dtype.itemsize
    bits = item.view({1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[width])[0]
    return f"{int(bits):0{2 * width}X}"


def text_twin(suite: Mapping, tensors: Mapping[str, np.ndarray]) -> str:
    """The line-oriented hex text of an elementwise suite: one line per element.

    Each line is ``<case> <param>=<value>... <input>=<hex>... <output>=<hex>...``: the
    parameters in sorted order, then inputs and expected outputs as the hex of their bits
    (float32 as 8 digits, uint8 as 2), all whitespace-separated; a case that expects a
    refusal (``error``) ends each line in ``error=refused`` instead of results.
    """
    lines = [
        f"# fp4ref conformance suite {suite['name']}: {suite['operation']}{suite['signature']}",
        "# <case> <param>=<value>... <input>=<hex bits>... <expected>=<hex bits>...",
    ]
    for case in suite["cases"]:
        params = [f"{k}={_param_text(v)}" for k, v in sorted(case["params"].items())]
        columns = [(arg, tensors[name]) for arg, name in case["inputs"]]
        columns += [(arg, tensors[name]) for arg, name in case["expected"]]
        for i in range(columns[0][1].size):
            cells = [f"{arg}={hex_cell(array, i)}" for arg, array in columns]
            refused = ["error=refused"] if case.get("error") else []
            lines.append(" ".join([case["name"], *params, *cells, *refused]))
    return "\n".join(lines) + "\n"


def _param_text(value: object) -> str:
    return json.dumps(value) if not isinstance(value, str) else value
