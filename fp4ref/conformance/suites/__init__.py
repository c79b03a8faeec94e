"""The registry of conformance suites, in file order.

Each module contributes a ``SUITES`` list of :class:`~fp4ref.conformance.model.Suite`;
a new suite (quantize, UQFF, a profile) plugs in by adding its module here.
"""

from __future__ import annotations

from ..model import Suite
from . import blocks, layouts, profile_decode, quantize, scalars, uqff

SUITES: list[Suite] = [
    *scalars.SUITES,
    *blocks.SUITES,
    *layouts.SUITES,
    *quantize.SUITES,
    *profile_decode.SUITES,
    *uqff.SUITES,
]
