"""Issue 17: seeded fuzzing of every file parser. Thousands of mutated UQFF shards (both
generations) and 0.x blobs, safetensors files, checkpoints (their headers and ComfyUI's
``_quantization_metadata``) and conformance manifests are read as a user's command would
read them; the only error allowed is :class:`fp4ref.FormatError`.

``python -m tests.test_fuzz_parsers [COUNT [SEED]]`` runs the campaign on its own and prints
its figures (inputs, outcomes by error type, peak memory).
"""

from __future__ import annotations

import json
import random
import resource
import struct
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
from safetensors.numpy import save

import fp4ref
from fp4ref.io import checkpoints, uqff
from fp4ref.io.safetensors_file import SafetensorsReader, read_bytes

#: Mutated inputs per parser in the test suite.
COUNT = 2000
#: Replacement values for header fields: wrong types, extremes, deep nesting.
ODD_VALUES = [-1, 0, 1, 2**31, 2**32, 2**63, 2**64, 1.5, float("inf"), "U8", "F8_E5M2", "U16",
              "BOGUS", "", None, True, [], {}, [0], [1, 2, 3], [2**40, 2**40], [-1, 4],
              [[[[]]]], {"a": 1}, "[" * 50]


def _seeds() -> dict[str, bytes]:
    """Valid files to mutate: UQFF 0.x and 1.x shards, and the four checkpoint conventions."""
    rng = np.random.default_rng(0)
    blocks = rng.integers(0, 256, (4, 32), dtype=np.uint8)
    scales = rng.integers(120, 135, (4, 2), dtype=np.uint8)
    bias = rng.normal(size=4).astype(np.float32)
    blob = np.frombuffer(uqff.encode_mxfp4_blob(blocks, scales, bias), np.uint8)
    v1 = {f"uqff.version.{part}": np.array(number, np.uint32)
          for part, number in (("major", 1), ("minor", 2), ("patch", 0))}
    v1.update({"l.weight.format": np.array(6, np.uint8), "l.weight": blocks,
               "l.weight.scales": scales, "l.bias": bias})
    e4m3 = rng.integers(0x20, 0x60, (128, 4), dtype=np.uint8).view(ml_dtypes.float8_e4m3fn)
    nv = {"x.weight": rng.integers(0, 256, (128, 32), dtype=np.uint8), "x.weight_scale": e4m3,
          "x.weight_scale_2": np.array(0.5, np.float32), "x.input_scale": np.array(2.0, np.float32)}
    comfy = {**nv, "x.comfy_quant": np.frombuffer(b'{"format": "nvfp4"}', np.uint8)}
    ct = {"x.weight_packed": nv["x.weight"], "x.weight_scale": e4m3,
          "x.weight_global_scale": np.array(2.0, np.float32)}
    gpt = {"b.mlp1_blocks": blocks.reshape(4, 2, 16), "b.mlp1_scales": scales,
           "b.mlp1_bias": bias, "b.norm": np.ones(3, np.float32)}
    layers = json.dumps({"layers": {"x": {"format": "nvfp4"}}})
    return {
        "uqff0": save({"0": blob, "1": blob}),
        "uqff1": save(v1, metadata={"uqff.producer": "fp4ref"}),
        "modelopt": save(nv),
        "comfyui": save(comfy),
        "comfyui-metadata": save(nv, metadata={"_quantization_metadata": layers}),
        "compressed-tensors": save(ct),
        "gpt-oss": save(gpt),
    }


def _mutate_bytes(data: bytes, rnd: random.Random) -> bytes:
    data = bytearray(data)
    for _ in range(rnd.randint(1, 4)):
        kind = rnd.randrange(5)
        at = rnd.randrange(len(data)) if data else 0
        if kind == 0 and data:  # flip a bit
            data[at] ^= 1 << rnd.randrange(8)
        elif kind == 1 and data:  # an extreme byte
            data[at] = rnd.choice((0, 0x7F, 0x80, 0xFF))
        elif kind == 2:  # truncate
            del data[rnd.randrange(len(data) + 1):]
        elif kind == 3:  # insert junk
            data[at:at] = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 16)))
        elif data:  # an extreme u32/u64 at a random place (lengths, dims, offsets)
            value = rnd.choice((0, 1, 2**31, 2**32 - 1, 2**63, 2**64 - 1))
            fmt = "<Q" if value > 2**32 - 1 or rnd.random() < 0.5 else "<I"
            end = min(len(data), at + struct.calcsize(fmt))
            data[at:end] = struct.pack(fmt, value)[: end - at]
    return bytes(data)


#: Stands for JSON nested deeper than Python's parser recurses (put in as text).
DEEP = "__fuzz_deep__"


def _odd(rnd: random.Random) -> object:
    return DEEP if rnd.random() < 0.05 else rnd.choice(ODD_VALUES)


def _mutate_header(data: bytes, rnd: random.Random) -> bytes:
    """Change one field of the JSON header (or the metadata) and re-encode it correctly,
    so the mutation gets past the length and JSON checks."""
    length = struct.unpack_from("<Q", data)[0]
    header = json.loads(data[8:8 + length])
    name = rnd.choice(sorted(header))
    entry = header[name]
    if name == "__metadata__":
        key = rnd.choice(sorted(entry) or ["_quantization_metadata"])
        entry[key] = rnd.choice([json.dumps(_odd(rnd)), "[" * 100000, "{", '{"layers": 5}',
                                 '{"layers": {"x": 1}}', "null", str(_odd(rnd))])
    elif rnd.random() < 0.2:
        header[name] = _odd(rnd)
    elif rnd.random() < 0.1:
        header[name + rnd.choice((".weight", "_blocks", ".weight_scale", ".bias"))] = entry
    else:
        field = rnd.choice(("dtype", "shape", "data_offsets"))
        if field == "shape" and isinstance(entry.get("shape"), list) and entry["shape"] \
                and rnd.random() < 0.5:
            entry["shape"][rnd.randrange(len(entry["shape"]))] = _odd(rnd)
        else:
            entry[field] = _odd(rnd)
    deep = rnd.choice(("[" * 100000 + "]" * 100000, "[" * 100000, "{\"a\":" * 5000))
    text = json.dumps(header).replace(f'"{DEEP}"', deep).encode()
    return struct.pack("<Q", len(text)) + text + data[8 + length:]


def _read_all(path: Path, kind: str) -> None:
    """Read ``path`` the way the commands do: open it, then every layer and tensor."""
    if kind.startswith("uqff"):
        shard = uqff.read(path)
        for key in shard:
            layer = shard[key]
            fp4ref.dequantize(layer.blocks, layer.scales)
        return
    checkpoint = checkpoints.read(path)
    for key in checkpoint:
        checkpoint.layer(key)
        checkpoint.layer(key, rows=(0, 1))
    for name in checkpoint.others:
        checkpoint.file.read(name)


def _blob_seed() -> bytes:
    rng = np.random.default_rng(1)
    return uqff.encode_mxfp4_blob(rng.integers(0, 256, (2, 3, 16), dtype=np.uint8),
                                  rng.integers(120, 135, (2, 3, 1), dtype=np.uint8),
                                  rng.normal(size=(2, 3)).astype(ml_dtypes.bfloat16))


def _vectors_seed() -> dict[str, bytes]:
    from fp4ref.conformance import generate

    return generate.build(generate.SUITES[:3])


def _poke(value: object, rnd: random.Random) -> object:
    """``value`` (JSON data) with one element somewhere inside replaced by an odd value."""
    if isinstance(value, dict) and value and rnd.random() < 0.8:
        key = rnd.choice(sorted(value))
        return {**value, key: _poke(value[key], rnd)}
    if isinstance(value, list) and value and rnd.random() < 0.8:
        index = rnd.randrange(len(value))
        return [*value[:index], _poke(value[index], rnd), *value[index + 1:]]
    odd = _odd(rnd)
    return [[[[[]]]]] if odd == DEEP else odd


def _mutate_manifest(files: dict[str, bytes], rnd: random.Random) -> dict[str, bytes]:
    """The vectors with their manifest changed in one place and its hash recomputed (so
    the change reaches the structure checks), or its bytes mutated."""
    from fp4ref.conformance import manifest

    files = dict(files)
    if rnd.random() < 0.8:
        index = _poke(json.loads(files[manifest.MANIFEST]), rnd)
        try:
            files[manifest.MANIFEST] = manifest.dumps(index if isinstance(index, dict) else
                                                      {"suites": index})
        except (TypeError, ValueError):  # not JSON-encodable (a NaN key...): leave it
            pass
    else:
        files[manifest.MANIFEST] = _mutate_bytes(files[manifest.MANIFEST], rnd)
    return files


def _check_all(vectors: Any) -> None:
    """Run the checker over accepted vectors (an implementation of one operation, OCP cases
    only, the report written), as ``fp4ref conformance check`` would."""
    import io

    from fp4ref.conformance import check

    class One:
        def decode_e2m1(self, codes):
            return fp4ref.decode_e2m1(codes)

    results = {"one": check.run(vectors, One(), ocp_only=True)}
    check.report(results, io.StringIO())


def campaign(count: int, folder: Path, seed: int = 17) -> dict[str, Counter]:
    """``count`` mutated inputs per parser; returns the outcome counts by parser. Raises
    AssertionError at the first error that is not a FormatError."""
    rnd = random.Random(seed)
    seeds = _seeds()
    from fp4ref.conformance import manifest

    vectors = _vectors_seed()
    seeds["blob"] = _blob_seed()
    parsers: dict[str, Callable[[Any, Path], None]] = {
        "safetensors": lambda data, path: (read_bytes(data, "fuzz"), SafetensorsReader(path)),
        "uqff": lambda data, path: _read_all(path, "uqff"),
        "uqff-blob": lambda data, path: uqff.decode_mxfp4_blob(data),
        "checkpoints": lambda data, path: _read_all(path, "checkpoint"),
        "manifest": lambda files, path: _check_all(manifest.parse(files, folder)),
    }
    sources = {"safetensors": [k for k in seeds if k != "blob"], "uqff": ["uqff0", "uqff1"],
               "uqff-blob": ["blob"], "manifest": ["vectors"],
               "checkpoints": ["modelopt", "comfyui", "comfyui-metadata", "compressed-tensors",
                               "gpt-oss"]}
    outcomes: dict[str, Counter] = {}
    path = folder / "fuzz.safetensors"
    for parser, read in parsers.items():
        tally = outcomes[parser] = Counter()
        for index in range(count):
            source = rnd.choice(sources[parser])
            if parser == "manifest":
                data: Any = _mutate_manifest(vectors, rnd)
            elif parser == "uqff-blob" or rnd.random() >= 0.5:
                data = _mutate_bytes(seeds[source], rnd)
            else:
                data = _mutate_header(seeds[source], rnd)
            if isinstance(data, bytes):
                path.write_bytes(data)
            try:
                read(data, path)
                tally["accepted"] += 1
            except fp4ref.FormatError:
                tally["FormatError"] += 1
            except Exception as error:
                raise AssertionError(
                    f"{parser} input {index} (from {source}, seed {seed}) raised "
                    f"{type(error).__name__}: {error}") from error
    return outcomes


def test_mutated_files_give_only_format_errors(tmp_path):
    outcomes = campaign(COUNT, tmp_path)
    for parser, tally in outcomes.items():
        assert sum(tally.values()) == COUNT
        assert tally["FormatError"] > COUNT // 4, (parser, tally)  # the mutations do bite


if __name__ == "__main__":
    import tempfile
    import time

    count = int(sys.argv[1]) if len(sys.argv) > 1 else COUNT
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 17
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        result = campaign(count, Path(folder), seed)
    seconds = time.perf_counter() - start
    for parser, tally in result.items():
        print(f"{parser:12} {sum(tally.values())} inputs: {dict(tally)}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{len(result) * count} inputs in {seconds:.1f} s; peak RSS {peak:.0f} MiB")
