"""``fp4ref conformance identify`` on every real implementation of the peers extra
(``pytest -m peers``; ``FP4REF_REQUIRE_PEERS=1`` makes a missing peer an error).

The expected answer of each adapter is the profile its ``profiles`` dict names for the
format (the profile that ``tests/test_peers_profiles.py`` shows reproduces the peer block
for block): identify, which knows nothing of the adapter, must name that profile with no
field changed, agree with the peer on every block, and take under a minute (the issue's
bound on 2 cores). A decoder's conventions are shared by many profiles: there the profile
named must agree on every block and the adapter's profile must be among the equally exact
named profiles. Where a profile still departs from its peer (``KNOWN`` of
``test_peers_profiles``) the test pins what identify says instead.
"""

import functools
import time

import pytest

from fp4ref.conformance.identification import identify_peer
from fp4ref.conformance.peers import fouroversix

from .helpers import require_peer
from .test_peers_profiles import ADAPTERS, KNOWN

pytestmark = pytest.mark.peers

PEERS = {**ADAPTERS, "fouroversix": ("fouroversix", fouroversix.Fouroversix)}
QUANTIZE = [(name, fmt) for name, (_, cls) in PEERS.items() for fmt in cls.profiles]
DECODE = [(name, fmt) for name, (_, cls) in PEERS.items() for fmt in cls.profiles
          if cls.decode_dtypes]

#: The issue's bound for one implementation on 2 cores (seconds).
BOUND = 60.0

#: Decoders no profile reproduces yet (peer, format): why.
KNOWN_DECODE: dict[tuple[str, str], str] = {}


@functools.cache
def adapter(name, *args):
    module, cls = PEERS[name]
    if module is not None:
        require_peer(module)
    try:
        return cls(*args)
    except ImportError as error:
        import os

        if os.environ.get("FP4REF_REQUIRE_PEERS") == "1":
            raise
        pytest.skip(str(error))


def timed(peer, operation, fmt):
    began = time.perf_counter()
    result = identify_peer(peer, operation=operation, format=fmt)
    return result, time.perf_counter() - began


@pytest.mark.parametrize("name,fmt", QUANTIZE)
def test_quantizer_is_named(name, fmt, request):
    if KNOWN.get((name, fmt)):  # the profile departs from its peer (test_peers_profiles)
        request.applymarker(pytest.mark.xfail(
            strict=True, reason=f"profile departs on {sorted(KNOWN[(name, fmt)])}"))
    peer = adapter(name)
    result, seconds = timed(peer, "quantize", fmt)
    expected = peer.profiles[fmt]
    assert (result.profile, result.changes) == (expected, {}), result.report()
    assert result.close and not result.disagreements, result.report()
    assert seconds < BOUND, result.report()


@pytest.mark.parametrize("name,fmt", DECODE)
def test_decoder_is_named(name, fmt, request):
    if (name, fmt) in KNOWN_DECODE:
        request.applymarker(pytest.mark.xfail(strict=True, reason=KNOWN_DECODE[(name, fmt)]))
    peer = adapter(name)
    result, seconds = timed(peer, "dequantize", fmt)
    assert result.close and not result.disagreements and not result.changes, result.report()
    assert peer.profiles[fmt] in (result.profile, *result.equivalent), result.report()
    assert seconds < BOUND, result.report()


@pytest.mark.parametrize("rule", ["fouroversix-mae", "fouroversix-abs-max",
                                  "fouroversix-static-6", "fouroversix-static-4"])
def test_fouroversix_variants_are_named_by_their_field(rule):
    """The package's other scale rules: profile fouroversix with the one field that says
    which (the package's option, run; fp4ref's name for it is the expected answer)."""
    peer = adapter("fouroversix", rule)
    result, seconds = timed(peer, "quantize", "nvfp4")
    assert (result.profile, result.changes) == ("fouroversix", {"nvfp4_scale_rule": rule}), (
        result.report())
    assert not result.disagreements and seconds < BOUND, result.report()
