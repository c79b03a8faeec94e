"""Each real implementation beside the fp4ref profile named after it, block by block, on
the probes' edge classes and seeded N(0, 1) matrices (``pytest -m peers``;
:mod:`fp4ref.conformance.peers.probing`).

``test_profile_reproduces`` wants zero disagreements. Where the profile does not yet
reproduce its implementation it is a strict xfail, and ``test_known_disagreements`` pins the
exact edge classes that still differ (so a fix, or a new difference, shows up as a failure
to update ``KNOWN``).
"""

import functools

import numpy as np
import pytest

from fp4ref.conformance.peers import (
    comfy,
    compressed_tensors,
    fouroversix,
    ggml,
    gguf,
    mistralrs,
    mlx,
    modelopt,
    probing,
    quark,
    qwantize,
    torchao,
    vllm,
)

from .helpers import require_peer

pytestmark = pytest.mark.peers

#: (module to require, adapter class) by peer name.
ADAPTERS = {
    "mlx": ("mlx.core", mlx.Mlx),
    "comfy-kitchen": ("comfy_kitchen", comfy.Comfy),
    "quark": ("quark", quark.Quark),
    "vllm": (None, vllm.Vllm),
    "vllm-round-down": (None, vllm.VllmRoundDown),
    "vllm-triton": (None, vllm.VllmTriton),
    "ggml": (None, ggml.Ggml),
    "gguf": ("gguf", gguf.Gguf),
    "mistralrs": ("mistralrs", mistralrs.MistralRs),
    "torchao": ("torchao", torchao.Torchao),
    "torchao-rceil": ("torchao", torchao.TorchaoRceil),
    "qwantize": ("qwantize", qwantize.Qwantize),
    "modelopt": ("modelopt.torch.quantization.qtensor", modelopt.ModelOpt),
    "compressed-tensors": ("compressed_tensors", compressed_tensors.CompressedTensors),
    "fouroversix": ("fouroversix", fouroversix.Fouroversix),
}
CASES = [(name, fmt) for name, (_, cls) in ADAPTERS.items() for fmt in cls.profiles]

#: The (probe label/what) keys where a profile still departs from its implementation.
KNOWN: dict[tuple[str, str], set[str]] = {}


@functools.cache
def adapter(name):
    module, cls = ADAPTERS[name]
    if module is not None:
        require_peer(module)
    try:
        return cls()
    except ImportError as error:
        import os

        if os.environ.get("FP4REF_REQUIRE_PEERS") == "1":
            raise
        pytest.skip(str(error))


@functools.cache
def comparison(name, fmt):
    return probing.compare(adapter(name), fmt)


@pytest.mark.parametrize("name,fmt", CASES)
def test_profile_reproduces(name, fmt, request):
    known = KNOWN.get((name, fmt))
    if known:
        request.applymarker(pytest.mark.xfail(
            strict=True, reason=f"profile departs on {sorted(known)}"))
    result = comparison(name, fmt)
    assert result.random > 0 and result.edge > 0
    assert not result.failed, result.summary() + "\n" + "\n".join(result.examples)


@pytest.mark.parametrize("name,fmt", [case for case in CASES if KNOWN.get(case)])
def test_known_disagreements(name, fmt):
    assert set(comparison(name, fmt).disagreements) == KNOWN[(name, fmt)]


def test_mistralrs_reads_fp4ref_uqff_and_refuses_generation_0(tmp_path):
    """fp4ref writes the same tensors mistral.rs wrote (generation 1), and mistral.rs loads
    that file; a generation-0 file is refused."""
    from fp4ref.io import uqff
    from fp4ref.io.safetensors_file import SafetensorsReader

    peer = adapter("mistralrs")
    x = np.random.default_rng(3).standard_normal(mistralrs.CAPACITY).astype(np.float32)
    theirs = peer.write_uqff(x, tmp_path)
    layers = uqff.read(theirs)
    ours = tmp_path / "fp4ref.uqff"
    uqff.write(ours, {key: layers[key] for key in layers})
    a, b = SafetensorsReader(str(theirs)), SafetensorsReader(str(ours))
    assert set(a.tensors) == set(b.tensors)
    for name in a.tensors:
        assert np.array_equal(a.read(name), b.read(name)), name
    assert peer.run(tmp_path, from_uqff=str(ours)) is not None
    old = tmp_path / "old.uqff"
    uqff.write(old, {i: layers[key] for i, key in enumerate(layers)}, generation=0)
    with pytest.raises(Exception, match="Pre-1.0 UQFF"):
        peer.run(tmp_path, from_uqff=str(old))
