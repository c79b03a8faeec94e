"""fp4ref.buffers: large outputs come back from a cache once dropped, never while in use,
and the front doors give the same bytes from reused memory as from fresh memory."""

import ctypes
import gc
from types import SimpleNamespace

import ml_dtypes
import numpy as np
import pytest

import fp4ref
from fp4ref import buffers

from .helpers import bits

BIG = (buffers.CACHED_BYTES // 4 + 1024,)  # float32 elements just over the threshold


@pytest.fixture(autouse=True)
def _empty_cache(monkeypatch):
    monkeypatch.delenv("FP4REF_BUFFER_CACHE", raising=False)
    buffers.release()
    yield
    buffers.release()


@pytest.mark.parametrize("shape, dtype", [((3, 5), np.float32), ((0,), np.uint8), (BIG, np.float32),
                                          ((2, BIG[0]), ml_dtypes.bfloat16)])
def test_empty_is_a_writeable_contiguous_array_on_a_cache_line(shape, dtype):
    a = buffers.empty(shape, dtype)
    assert a.shape == shape and a.dtype == np.dtype(dtype)
    assert a.flags.c_contiguous and a.flags.writeable
    assert a.size == 0 or a.ctypes.data % buffers.LINE_BYTES == 0
    a[...] = 1  # every byte is writeable
    assert a.size == 0 or a.reshape(-1)[-1] == 1


def test_a_dropped_output_is_handed_out_again():
    a = buffers.empty(BIG, np.float32)
    address = a.ctypes.data
    assert address % buffers.HUGE_PAGE == 0
    del a
    gc.collect()
    assert buffers.cached_bytes() >= BIG[0] * 4
    b = buffers.empty(BIG, np.uint32)
    assert b.ctypes.data == address and buffers.cached_bytes() == 0


def test_memory_in_use_is_never_handed_out_twice():
    a = buffers.empty(BIG, np.float32)
    view = a[10:20]  # a view keeps the memory in use after the array goes
    del a
    gc.collect()
    assert buffers.cached_bytes() == 0
    b = buffers.empty(BIG, np.float32)
    assert not np.may_share_memory(b, view)
    assert b.ctypes.data + b.nbytes <= view.ctypes.data or view.ctypes.data < b.ctypes.data
    del view, b
    gc.collect()
    assert buffers.cached_bytes() >= 2 * BIG[0] * 4


def test_a_buffer_too_large_for_the_request_is_not_used():
    a = buffers.empty((4 * BIG[0],), np.float32)
    del a
    gc.collect()
    b = buffers.empty(BIG, np.float32)  # a quarter of the cached one: allocated anew
    assert buffers.cached_bytes() >= 4 * BIG[0] * 4
    del b


def test_the_cache_keeps_at_most_its_limit(monkeypatch):
    monkeypatch.setenv("FP4REF_BUFFER_CACHE", str(3 * buffers.CACHED_BYTES))
    arrays = [buffers.empty(BIG, np.float32) for _ in range(4)]  # 6 MiB each
    del arrays
    gc.collect()
    assert 0 < buffers.cached_bytes() <= 3 * buffers.CACHED_BYTES
    buffers.release()
    assert buffers.cached_bytes() == 0


def test_a_zero_limit_turns_the_cache_off(monkeypatch):
    monkeypatch.setenv("FP4REF_BUFFER_CACHE", "0")
    a = buffers.empty(BIG, np.float32)
    assert a.ctypes.data % buffers.HUGE_PAGE == 0
    del a
    gc.collect()
    assert buffers.cached_bytes() == 0


def test_a_bad_limit_is_named(monkeypatch):
    monkeypatch.setenv("FP4REF_BUFFER_CACHE", "lots")
    with pytest.raises(ValueError, match="FP4REF_BUFFER_CACHE must be a number of bytes"):
        buffers.empty(BIG, np.float32)


def test_dequantize_into_reused_memory_gives_the_bytes_of_fresh_memory():
    rng = np.random.default_rng(1)
    rows, k = 64, BIG[0] // 64 * 2  # float32 output over the cache threshold
    nan_blocks = np.zeros((rows, k // 2), np.uint8), np.full((rows, k // 32), 0xFF, np.uint8)
    blocks = rng.integers(0, 256, (rows, k // 2), dtype=np.uint8)
    scales = rng.integers(100, 150, (rows, k // 32), dtype=np.uint8)
    scales[::7, ::3] = 0xFF  # NaN blocks among them
    expected = np.empty((rows, k), np.float32)
    fp4ref.dequantize(blocks, scales, out=expected)
    stale = fp4ref.dequantize(*nan_blocks)  # all NaN, then dropped: its memory is reused
    address = stale.ctypes.data
    del stale
    gc.collect()
    got = fp4ref.dequantize(blocks, scales)
    assert got.ctypes.data == address
    assert np.array_equal(bits(got), bits(expected))


def test_quantize_into_reused_memory_gives_the_bytes_of_fresh_memory():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((256, 32 * 1024), np.float32)  # 4 MiB of packed blocks
    stale = fp4ref.quantize(np.full_like(x, -5.0))
    address = stale.blocks.ctypes.data
    del stale
    gc.collect()
    got = fp4ref.quantize(x)
    assert got.blocks.ctypes.data == address
    oracle = fp4ref.quantize(x[-1:], backend="python")  # the last row, written last
    assert np.array_equal(got.blocks[-1:], oracle.blocks)
    assert np.array_equal(got.scales[-1:], oracle.scales)


class _FakeDeviceArray:
    """A stand-in for a numba device array over host memory, keeping its owner alive as
    numba's arrays keep a ``__cuda_array_interface__`` owner."""

    def __init__(self, array, owner=None):
        self.array, self.owner = array, owner
        self.nbytes, self.shape, self.dtype = array.nbytes, array.shape, array.dtype
        self.__cuda_array_interface__ = {"data": (array.ctypes.data, False)}

    def view(self, dtype):
        return _FakeDeviceArray(self.array.view(dtype), self.owner)

    def reshape(self, *shape):
        return _FakeDeviceArray(self.array.reshape(*shape), self.owner)


@pytest.fixture
def fake_device(monkeypatch):
    """numba.cuda with host memory for device memory and a selectable current device."""
    from numba import cuda

    current = {"id": 0}
    allocations = []

    def device_array(shape, dtype):
        allocations.append(shape)
        return _FakeDeviceArray(np.empty(shape, dtype))

    def as_cuda_array(owner):
        data, _ = owner.__cuda_array_interface__["data"]
        (size,) = owner.__cuda_array_interface__["shape"]
        memory = np.ctypeslib.as_array((ctypes.c_uint8 * size).from_address(data))
        return _FakeDeviceArray(memory, owner)

    monkeypatch.setattr(cuda.config, "ENABLE_CUDASIM", False, raising=False)
    monkeypatch.setattr(cuda, "device_array", device_array, raising=False)
    monkeypatch.setattr(cuda, "as_cuda_array", as_cuda_array, raising=False)
    monkeypatch.setattr(cuda, "get_current_device", lambda: SimpleNamespace(id=current["id"]),
                        raising=False)
    return current, allocations


def test_device_buffers_are_reused_once_dropped_and_only_on_their_device(fake_device):
    current, allocations = fake_device
    a = buffers.device_empty(BIG, np.float32)
    start = a.__cuda_array_interface__["data"][0]
    view = a.reshape(-1)
    del a
    gc.collect()
    assert buffers.cached_bytes(device=True) == 0  # the view still uses it
    del view
    gc.collect()
    assert buffers.cached_bytes(device=True) >= BIG[0] * 4
    current["id"] = 1  # another device: not handed out there
    b = buffers.device_empty(BIG, np.float32)
    assert b.__cuda_array_interface__["data"][0] != start and len(allocations) == 2
    current["id"] = 0
    c = buffers.device_empty((2, BIG[0] // 2), np.uint32)
    assert c.__cuda_array_interface__["data"][0] == start and len(allocations) == 2
    assert c.shape == (2, BIG[0] // 2) and c.dtype == np.uint32
    assert buffers.device_empty((16,), np.uint8).shape == (16,)  # small: plain allocation
    assert len(allocations) == 3
    del b, c
