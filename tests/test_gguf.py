"""GGUF MXFP4/NVFP4 tensors: fp4ref's reader and writer against gguf-py's (the writer,
``GGUFReader`` and ``gguf.quants.dequantize``), record bytes derived by hand from
ggml-common.h, and a seeded fuzz of the header parser."""

from __future__ import annotations

import os
import struct

import numpy as np
import pytest

import fp4ref
from fp4ref.errors import FormatError
from fp4ref.io import gguf as G
from fp4ref.io.layer import QuantizedLayer

gguf = pytest.importorskip("gguf")
from gguf.quants import dequantize as gguf_dequantize  # noqa: E402
from gguf.quants import quantize as gguf_quantize  # noqa: E402

Q = gguf.GGMLQuantizationType


def bits(x):
    return np.asarray(x, np.float32).view(np.uint32)


def write_with_gguf_py(path, tensors, title="fp4ref test", **options):
    """A GGUF file written by gguf-py itself: name -> (array, raw ggml type or None);
    ``options`` go to its ``GGUFWriter`` (``split_max_tensors``)."""
    writer = gguf.GGUFWriter(str(path), "test", **options)
    writer.add_string("general.name", title)
    for name, (array, raw) in tensors.items():
        writer.add_tensor(name, array, raw_dtype=raw)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def nvfp4_records(rng, lead, k, wild=False):
    """Random NVFP4 records; scale bytes below 0x7F unless ``wild``."""
    records = rng.integers(0, 256, (*lead, k // 64, 36), dtype=np.uint8)
    if not wild:
        records[..., :4] = rng.integers(0, 0x7F, (*lead, k // 64, 4))
    return records.reshape(*lead, -1)


@pytest.fixture
def peer_file(tmp_path):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((3 * 4, 96)) * 4).astype(np.float32)
    x[0, :32] = 0
    x[1, 5] = 1e-30
    mx = gguf_quantize(x, Q.MXFP4).reshape(3, 4, -1)
    mx[2, 3, 17] = 0xFF  # a 0xFF scale: ggml reads 2^128
    tensors = {
        "blk.0.ffn_down_exps.weight": (mx, Q.MXFP4),
        "blk.0.ffn_down_exps.bias": (rng.standard_normal((3, 4)).astype(np.float32), None),
        "nv.weight": (nvfp4_records(rng, (5,), 128), Q.NVFP4),
        "nv.scale": (np.array([0.37], np.float32), None),
        "nv.input_scale": (np.array([2.5], np.float32), None),
        "wild.weight": (nvfp4_records(rng, (2, 3), 128, wild=True), Q.NVFP4),
        "wild.scale": (np.array([0.5, -2], np.float32), None),
        "norm": (np.arange(7, dtype=np.float32), None),
        "emb.weight": (gguf_quantize(x[:2, :64], Q.Q8_0), Q.Q8_0),
    }
    write_with_gguf_py(tmp_path / "peer.gguf", tensors)
    return tmp_path / "peer.gguf", tensors


def test_reads_gguf_py_file(peer_file):
    path, tensors = peer_file
    f = G.read(path)
    assert list(f) == ["blk.0.ffn_down_exps", "nv", "wild"]
    assert f.others == ["norm", "emb.weight"]
    assert f.entries["nv"] == {"weight": "nv.weight", "scale": "nv.scale",
                               ".input_scale": "nv.input_scale"}
    assert f.metadata["general.name"] == "fp4ref test"
    mx = f["blk.0.ffn_down_exps"]
    assert mx.format == "mxfp4" and mx.shape == (3, 4, 96) and mx.nibble_order == "split-half"
    assert np.array_equal(mx.bias, tensors["blk.0.ffn_down_exps.bias"][0])
    nv = f["nv"]
    assert nv.format == "nvfp4" and nv.shape == (5, 128) and nv.tensor_scale == np.float32(0.37)
    assert nv.extras[".input_scale"].tolist() == [2.5]
    assert np.array_equal(f.read("norm"), np.arange(7, dtype=np.float32))
    assert np.array_equal(f.read("emb.weight"), gguf_dequantize(tensors["emb.weight"][0],
                                                                 Q.Q8_0))


def test_dequantize_equals_gguf_py(peer_file):
    """Bit for bit, signed zeros, Inf and NaN included, against gguf-py's dequantizer times
    the tensor scale (llama.cpp's ggml_mul)."""
    path, tensors = peer_file
    f = G.read(path)
    with np.errstate(over="ignore"):
        got = G.dequantize(f["blk.0.ffn_down_exps"])
        ref = gguf_dequantize(tensors["blk.0.ffn_down_exps.weight"][0], Q.MXFP4)
    assert np.array_equal(bits(got), bits(ref))
    assert np.isinf(got).any()
    ref = gguf_dequantize(tensors["nv.weight"][0], Q.NVFP4) * np.float32(0.37)
    assert np.array_equal(bits(G.dequantize(f["nv"])), bits(ref))
    ref = gguf_dequantize(tensors["wild.weight"][0], Q.NVFP4) * np.array(
        [0.5, -2], np.float32)[:, None, None]
    got = G.dequantize(f["wild"])
    assert np.array_equal(bits(got), bits(ref))
    assert (bits(got) == 0x80000000).any()  # -0 from the negative expert scale
    rows = G.dequantize(f.layer("wild", rows=(1, 2)))
    assert np.array_equal(bits(rows), bits(ref[1:2]))


def test_records_by_hand():
    """ggml-common.h: block_mxfp4 = e, qs[16] with qs[j] = x[j] | x[j+16] << 4;
    block_nvfp4 = d[4], qs[32] with qs[8s+j] = x[16s+j] | x[16s+j+8] << 4."""
    codes = (np.arange(64) % 16).astype(np.uint8)[None]
    layer = QuantizedLayer(fp4ref.pack(codes), np.array([[120, 7]], np.uint8), "mxfp4")
    rec = G._records(layer, "t")
    expect = []
    for b in range(2):
        c = codes[0, 32 * b:32 * b + 32]
        expect += [[120, 7][b]] + [int(c[j] | (c[j + 16] << 4)) for j in range(16)]
    assert rec.tolist() == [expect]
    layer = QuantizedLayer(fp4ref.pack(codes), np.array([[1, 2, 3, 0x7E]], np.uint8), "nvfp4")
    c = codes[0]
    expect = [1, 2, 3, 0x7E] + [int(c[16 * s + j] | (c[16 * s + j + 8] << 4))
                                for s in range(4) for j in range(8)]
    assert G._records(layer, "t").tolist() == [expect]


def test_write_read_back_by_gguf_py(tmp_path):
    rng = np.random.default_rng(2)
    w = rng.standard_normal((2, 8, 128)).astype(np.float32)
    mx = fp4ref.quantize(w)
    nv = fp4ref.quantize(w[0], format="nvfp4", profile="modelopt")
    layers = {
        "mx": QuantizedLayer(mx.blocks, mx.scales, "mxfp4",
                             bias=rng.standard_normal((2, 8)).astype(fp4ref.io.gguf.ml_dtypes
                                                                     .bfloat16)),
        "nv": QuantizedLayer(nv.blocks, nv.scales.view(np.uint8), "nvfp4",
                             tensor_scale=np.float32(nv.tensor_scale),
                             extras={".input_scale": np.array([3.0], np.float32)}),
    }
    G.write(tmp_path / "o.gguf", layers, {"norm": np.ones(3, np.float16)},
            metadata={G.SOURCE_KEY: "test"})
    reader = gguf.GGUFReader(str(tmp_path / "o.gguf"))
    found = {t.name: t for t in reader.tensors}
    assert list(found) == ["mx.weight", "mx.bias", "nv.weight", "nv.scale", "nv.input_scale",
                           "norm"]
    assert found["mx.weight"].tensor_type == Q.MXFP4 and found["nv.weight"].tensor_type == Q.NVFP4
    assert found["mx.bias"].tensor_type == Q.BF16
    ref = gguf_dequantize(np.asarray(found["mx.weight"].data), Q.MXFP4)
    ours = fp4ref.dequantize(mx.blocks, mx.scales, e8m0_decode="ggml")
    assert np.array_equal(bits(ref), bits(ours))
    ref = gguf_dequantize(np.asarray(found["nv.weight"].data), Q.NVFP4) * np.float32(
        found["nv.scale"].data[0])
    ours = fp4ref.dequantize(nv.blocks, nv.scales, format="nvfp4",
                             tensor_scale=nv.tensor_scale)
    ours = np.where(fp4ref.unpack(nv.blocks) == 8, np.float32(0), ours)  # ggml: code 8 = +0
    assert np.array_equal(bits(ref), bits(ours))
    text = bytes(reader.fields[G.SOURCE_KEY].parts[-1]).decode()
    assert text == "test"
    back = G.read(tmp_path / "o.gguf")
    assert back.metadata[G.SOURCE_KEY] == "test"
    assert np.array_equal(fp4ref.unpack(back["mx"].blocks, "split-half"),
                          fp4ref.unpack(mx.blocks))
    assert np.array_equal(back["mx"].scales, mx.scales)
    assert np.array_equal(back["mx"].bias.view(np.uint16), layers["mx"].bias.view(np.uint16))
    assert back["nv"].tensor_scale == np.float32(nv.tensor_scale)


def test_rewrite_is_byte_identical(peer_file, tmp_path):
    path, tensors = peer_file
    f = G.read(path)
    G.write(tmp_path / "again.gguf", f, {n: f.read(n) for n in f.others if n != "emb.weight"})
    g = G.read(tmp_path / "again.gguf")
    for key in f:
        assert np.array_equal(f.records(f.entries[key]["weight"]),
                              g.records(g.entries[key]["weight"]))


@pytest.mark.parametrize("layer, message", [
    (QuantizedLayer(np.zeros((1, 32), np.uint8), np.full((1, 4), 0x7F, np.uint8), "nvfp4"),
     "0x7F..0xFF"),
    (QuantizedLayer(np.zeros((1, 16), np.uint8), np.full((1, 2), 0x38, np.uint8), "nvfp4"),
     "whole 64-element records"),
])
def test_write_refuses(tmp_path, layer, message):
    with pytest.raises(ValueError, match=message):
        G.write(tmp_path / "x.gguf", {"k": layer})
    assert not list(tmp_path.iterdir())  # nothing left behind
    with pytest.raises(ValueError, match="longer than ggml's 63"):
        G.write(tmp_path / "x.gguf", {}, {"n" * 64: np.ones(1, np.float32)})


# --- the header parser --------------------------------------------------------------


def s(text: bytes) -> bytes:
    return struct.pack("<Q", len(text)) + text


def header(kv=b"", n_kv=0, infos=b"", n_tensors=0, version=3) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, n_tensors, n_kv) + kv + infos


def info(name=b"t", ne=(32,), kind=0, offset=0) -> bytes:
    return (s(name) + struct.pack("<I", len(ne)) + struct.pack(f"<{len(ne)}Q", *ne)
            + struct.pack("<IQ", kind, offset))


def padded(head: bytes, data: bytes) -> bytes:
    return head + b"\0" * (-len(head) % 32) + data


@pytest.mark.parametrize("data, message", [
    (b"GGML" + bytes(20), "not a GGUF file"),
    (header(version=1), "version 1 not supported"),
    (header(version=3 << 24), "big-endian"),
    (header(n_kv=1 << 60), "truncated"),
    (header(s(b"k") + struct.pack("<I", 8) + struct.pack("<Q", 1 << 40), 1), "claims"),
    (header(s(b"k") + struct.pack("<IIQ", 9, 0, 1 << 40), 1), "truncated"),  # gguf-py loops
    (header(s(b"k") + struct.pack("<II", 4, 1) + s(b"k") + struct.pack("<II", 4, 1), 2),
     "given twice"),
    (header(s(b"k") + struct.pack("<I", 13), 1), "unknown value type 13"),
    (header(s(b"k") + struct.pack("<IIQ", 9, 9, 1), 1), "arrays of unknown type 9"),
    (header(s(b"\xff") + struct.pack("<II", 4, 1), 1), "not UTF-8"),
    (header(s(b"general.alignment") + struct.pack("<II", 4, 24), 1), "power of two"),
    (padded(header(infos=info(ne=(31,), kind=39), n_tensors=1), bytes(64)), "multiple of 32"),
    (padded(header(infos=info(ne=(2,) * 5), n_tensors=1), bytes(64)), "5 dimensions"),
    (padded(header(infos=info(kind=999), n_tensors=1), bytes(64)), "unknown ggml type 999"),
    (padded(header(infos=info(offset=8), n_tensors=1), bytes(256)), "not a multiple"),
    (padded(header(infos=info(ne=(64,)), n_tensors=1), bytes(128)), "truncated: tensor"),
    (padded(header(infos=info() + info(), n_tensors=2), bytes(256)), "given twice"),
    (padded(header(infos=info(b"a", ne=(64,)) + info(b"b", offset=128), n_tensors=2),
            bytes(512)), "overlaps"),
])
def test_malformed_headers(tmp_path, data, message):
    path = tmp_path / "bad.gguf"
    path.write_bytes(data.ljust(24, b"\0"))
    with pytest.raises(FormatError, match=message):
        G.read(path)


def test_every_truncation(peer_file, tmp_path):
    data = peer_file[0].read_bytes()
    last = max(t.start + t.nbytes for t in G.read(peer_file[0]).tensors.values())
    for cut in list(range(0, 600)) + list(range(600, last, 37)):
        (tmp_path / "cut.gguf").write_bytes(data[:cut])
        with pytest.raises(FormatError):
            G.read(tmp_path / "cut.gguf")


WORDS = [0, 1, 0xFF, 1 << 31, (1 << 64) - 1, 1 << 40]


def test_fuzz(peer_file, tmp_path):
    """3000 seeded mutations (flipped bytes, header words set to extremes, truncations) of a
    gguf-py file and of one fp4ref wrote (with its JSON metadata): each either reads, every
    layer and tensor decodable, or raises FormatError."""
    ours = tmp_path / "ours.gguf"
    f = G.read(peer_file[0])
    G.write(ours, {"nv": f["nv"], "mx": f["blk.0.ffn_down_exps"]},
            {"ids": np.arange(5, dtype=np.uint8), "step": np.array(3, np.int64)},
            metadata={G.METADATA_KEY: '{"format": "pt"}', G.SOURCE_KEY: "test"})
    assert G.read(ours).read("step").shape == ()
    rng = np.random.default_rng(21)
    path = tmp_path / "fuzz.gguf"
    outcomes = {"read": 0, "refused": 0}
    for source in (peer_file[0], ours):
        data = bytearray(source.read_bytes())
        head = G.read(source).data_start
        for _ in range(1500):
            mutated = bytearray(data)
            for _ in range(rng.integers(1, 4)):
                at = int(rng.integers(0, head))
                if rng.random() < 0.5:
                    mutated[at] = int(rng.integers(0, 256))
                else:
                    word = WORDS[int(rng.integers(0, len(WORDS)))]
                    mutated[at:at + 8] = word.to_bytes(8, "little")
            if rng.random() < 0.2:
                mutated = mutated[: int(rng.integers(0, len(mutated)))]
            path.write_bytes(bytes(mutated))
            try:
                g = G.read(path)
                g.safetensors_metadata()
                with np.errstate(all="ignore"):
                    for key in g:
                        G.dequantize(g[key])
                    for name in g.others:
                        np.asarray(G.LazyGgufTensor(g, name))
                outcomes["read"] += 1
            except FormatError:
                outcomes["refused"] += 1
    assert outcomes["read"] > 100 and outcomes["refused"] > 1000, outcomes


@pytest.mark.peers
def test_dequantize_equals_ggml_c(peer_file):
    """ggml's own C to_float (``.ci/peers/ggml.sh`` builds it, driven by
    fp4ref.conformance.peers.ggml) on every FP4 tensor's records, bit for bit, with the
    tensor scale multiplied in afterwards as llama.cpp's graph does."""
    from fp4ref.conformance.peers import ggml

    try:
        c = ggml.Ggml()
    except ImportError as error:
        if os.environ.get("FP4REF_REQUIRE_PEERS") == "1":
            raise  # a skipped comparison proves nothing
        pytest.skip(str(error))
    f = G.read(peer_file[0])
    for key in f:
        info = f.tensors[f.entries[key]["weight"]]
        layer = f[key]
        ref = c.to_float(np.asarray(f.records(info.name)), info.ggml_type,
                         int(np.prod(info.shape))).reshape(info.shape)
        if layer.tensor_scale is not None:
            ts = np.asarray(layer.tensor_scale, np.float32)
            ref = ref * (ts[:, None, None] if ts.ndim else ts)
        with np.errstate(over="ignore"):
            got = G.dequantize(layer)
        assert np.array_equal(bits(got), bits(ref)), key


def test_split_gguf_reads_whole(peer_file, tmp_path):
    """A GGUF split by gguf-py's writer (split_max_tensors, as llama.cpp's gguf-split names
    the files) opens from any of its files with every tensor."""
    _, tensors = peer_file
    write_with_gguf_py(tmp_path / "m.gguf", tensors, "split", split_max_tensors=3)
    files = sorted(p.name for p in tmp_path.glob("m-*.gguf"))
    assert files == [f"m-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    whole = G.read(tmp_path / "m-00002-of-00003.gguf")
    assert whole.metadata["general.name"] == "split"
    assert list(whole.tensors) == list(tensors)
    assert {t.shard for t in whole.tensors.values()} == {0, 1, 2}
    alone = G.read(peer_file[0])
    for key in alone:
        assert np.array_equal(bits(G.dequantize(whole[key])), bits(G.dequantize(alone[key])))
    (tmp_path / "m-00003-of-00003.gguf").unlink()
    with pytest.raises(OSError):
        G.read(tmp_path / "m-00001-of-00003.gguf")
    (tmp_path / "m-00001-of-00003.gguf").rename(tmp_path / "renamed.gguf")
    with pytest.raises(FormatError, match="split.count 3 does not match"):
        G.read(tmp_path / "renamed.gguf")


def test_ue4m3_by_hand():
    """ggml-impl.h ggml_ue4m3_to_fp32 (times 2): exponent bits 6..3 of bias 7, mantissa
    2..0, bit 7 ignored, 0x00 and 0x7F zero."""
    raw = np.array([0x00, 0x01, 0x07, 0x08, 0x38, 0x3C, 0x7E, 0x7F, 0x80, 0xB8, 0xFF],
                   np.uint8)
    expect = [0, 2.0 ** -9, 7 * 2.0 ** -9, 2.0 ** -6, 1, 1.5, 448, 0, 0, 1, 480]
    assert G.ue4m3(raw).tolist() == expect
