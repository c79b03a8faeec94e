"""A quantized layer as the readers return it and the writers take it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True, eq=False)
class QuantizedLayer:
    """One quantized weight, with what it takes to decode it.

    :func:`fp4ref.dequantize` takes it directly: ``fp4ref.dequantize(layer, dtype=...)``
    uses its ``format``, ``tensor_scale``, ``nibble_order`` and ``scale_layout``.

    Attributes
    ----------
    blocks : numpy.ndarray of uint8, ``[..., N, K/2]``
        Packed E2M1 codes, two per byte, in ``nibble_order``.
    scales : numpy.ndarray of uint8
        Scale bytes (E8M0 for MXFP4, E4M3 for NVFP4) stored in ``scale_layout``:
        ``[..., N, K/B]`` when ``"linear"``.
    format : {"mxfp4", "nvfp4"}
    bias : numpy.ndarray, optional
        ``[..., N]`` in its stored dtype; not applied by ``dequantize``.
    tensor_scale : numpy.float32, optional
        NVFP4's decode multiplier (ModelOpt ``weight_scale_2``).
    nibble_order, scale_layout : str
        As in :func:`fp4ref.dequantize`.
    extras : mapping of str to numpy.ndarray
        Tensors a convention keeps beside the weight (``input_scale``, the stored global
        scale, ...), by the suffix they were stored under; writers of that convention put
        them back.
    """

    blocks: np.ndarray
    scales: np.ndarray
    format: str = "mxfp4"
    bias: np.ndarray | None = None
    tensor_scale: Any = None
    nibble_order: str = "low-first"
    scale_layout: str = "linear"
    extras: Mapping[str, np.ndarray] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the decoded weight, ``[..., N, K]``."""
        return (*self.blocks.shape[:-1], 2 * self.blocks.shape[-1])
