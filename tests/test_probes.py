"""The probe inputs: well-formed, labelled uniquely, and holding the values their class names."""

import numpy as np
import pytest

from fp4ref.conformance import probes


@pytest.mark.parametrize("fmt, block", [("mxfp4", 32), ("nvfp4", 16)])
def test_probes_are_float32_blocks_with_unique_labels(fmt, block):
    found = probes.probes(fmt)
    labels = [p.label for p in found]
    assert len(set(labels)) == len(labels)
    for p in found:
        assert p.format == fmt
        assert p.x.dtype == np.float32 and p.x.ndim == 2 and p.x.shape[1] % block == 0


@pytest.mark.parametrize("fmt", ["mxfp4", "nvfp4"])
def test_classes_hold_what_they_name(fmt):
    found = {p.label: p.x for p in probes.probes(fmt)}
    bits = {k: v.view(np.uint32) for k, v in found.items()}
    assert np.isnan(found["nans"]).any()
    assert (bits["nans"][np.isnan(found["nans"])] >> 31).any()  # a negative NaN
    assert np.isinf(found["infinities"]).any()
    assert (bits["signed-zeros"] == 0x80000000).any()
    assert (found["float32-max"] == np.finfo(np.float32).max).any()
    tiny = bits["subnormal-elements"]
    assert ((tiny & 0x7F800000 == 0) & (tiny & 0x7FFFFF != 0)).any()


def test_unknown_format_is_refused():
    with pytest.raises(ValueError, match="format must be"):
        probes.probes("mxfp8")


def test_stored_bytes_cover_every_pair():
    blocks, scales = probes.stored_bytes()
    pairs = scales.astype(np.int64) * 256 + blocks[:, 0]
    assert np.array_equal(np.sort(pairs), np.arange(65536))
