"""fp4ref's four-over-six rules against the ``fouroversix`` 1.0.5 package's pytorch backend,
run (``.ci/peers/fouroversix.sh`` installs it), byte for byte on every NVFP4 probe and on
N(0, 1) matrices; and ``identify`` names its profile."""

import numpy as np
import pytest

import fp4ref
from fp4ref.conformance import identify, probes
from fp4ref.conformance.identification import peer_functions

from .helpers import require_peer

pytestmark = pytest.mark.peers

RULES = ("fouroversix", "fouroversix-mae", "fouroversix-abs-max", "fouroversix-static-6",
         "fouroversix-static-4")


def cases():
    for probe in probes.probes("nvfp4"):
        yield probe.label, probe.x, probe.tensor_scale
    for seed in range(2):
        yield f"normal-seed{seed}", probes.gaussian((256, 512), seed), None


@pytest.mark.parametrize("backend", ["python", "numba"])
@pytest.mark.parametrize("rule", RULES)
def test_bytes_equal_the_package(rule, backend):
    require_peer("fouroversix")
    from fp4ref.conformance.peers.fouroversix import Fouroversix

    peer = Fouroversix(rule)
    compared = 0
    for label, x, given in cases():
        if backend == "python" and x.size > 4096:
            x = x[:8]
        blocks, scales, amax = peer.quantize_probe(x, "nvfp4", given)
        q = fp4ref.quantize(x, format="nvfp4", profile="fouroversix", scale_rule=rule,
                            tensor_scale=given, backend=backend)
        assert np.array_equal(np.asarray(q.blocks), blocks), (rule, label)
        assert np.array_equal(np.asarray(q.scales), scales), (rule, label)
        assert np.float32(q.stored_tensor_scale).tobytes() == np.float32(amax).tobytes() or (
            np.isnan(amax) and np.isnan(q.stored_tensor_scale)), (rule, label)
        compared += scales.size
    assert compared > (500 if backend == "python" else 1000)  # python: the small cases


def test_identify_names_the_profile():
    require_peer("fouroversix")
    from fp4ref.conformance.peers.fouroversix import Fouroversix

    result = identify(peer_functions(Fouroversix())["quantize"], format="nvfp4", seeds=1)
    assert (result.profile, result.changes, result.disagreements) == ("fouroversix", {}, []), (
        result.report())
