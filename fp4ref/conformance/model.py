"""What a conformance suite is: an operation with a documented signature, and its cases.

A suite plugs in as one :class:`Suite` whose ``build`` returns its :class:`Case` list; the
generator, the checker, the text twin and the matrix need nothing else. A case calls the
operation as ``operation(*inputs, **params)`` and compares what comes back, bit for bit,
with ``expected`` (one array, or a tuple of arrays in the order of ``expected``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Case:
    """One conformance case.

    Parameters
    ----------
    name : str
        Unique within its suite; letters, digits, ``_`` and ``-``.
    tests : str
        What it tests, in a sentence.
    pins : str
        The spec clause or the peer behaviour whose answer it pins.
    inputs : dict of str to numpy.ndarray
        The positional arguments, in order (keys are the argument names).
    expected : dict of str to numpy.ndarray
        The expected results, in the order the operation returns them.
    params : dict
        Keyword arguments (str, int, bool): the choices the case runs under.
    profile : str
        The named convention the expected values follow (``"ocp"`` unless a suite pins a
        peer's profile).
    error : str, optional
        For inputs that must be refused: what the operation must do instead of returning
        (``expected`` is then empty). In Python: raise a ``ValueError``.
    """

    name: str
    tests: str
    pins: str
    inputs: dict[str, np.ndarray]
    expected: dict[str, np.ndarray]
    params: dict[str, object] = field(default_factory=dict)
    profile: str = "ocp"
    error: str | None = None


@dataclass(frozen=True)
class Suite:
    """An operation, its documented signature, and how to build its cases.

    Parameters
    ----------
    name : str
        The suite name; also its file name (``<name>.safetensors``).
    operation : str
        The name of the function an implementation provides for it.
    signature : str
        ``(arguments) -> results`` with dtypes and shapes, as documented to implementers.
    description : str
        One line for tables and the README.
    build : callable
        ``build() -> list[Case]``, deterministic: fixed seeds, expected values from the
        oracle (:mod:`fp4ref.spec`) only.
    ocp : dict of str to tuple
        For each parameter, the values the OCP specs allow; a case whose parameters all lie
        in these sets is an OCP case (the matrix's "OCP" column).
    elementwise : bool
        Inputs and outputs are flat arrays of one length: the suite gets a hex text twin.
    """

    name: str
    operation: str
    signature: str
    description: str
    build: Callable[[], list[Case]]
    ocp: Mapping[str, tuple] = field(default_factory=dict)
    elementwise: bool = False


def is_ocp(params: Mapping[str, object], ocp: Mapping[str, tuple]) -> bool:
    """Whether every parameter value lies in the OCP-allowed set (unlisted ones do)."""
    return all(value in ocp.get(key, (value,)) for key, value in params.items())
