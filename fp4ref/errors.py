"""The exceptions fp4ref raises beyond the built-in ones."""

from __future__ import annotations


class FormatError(ValueError):
    """Bytes that do not follow their file format: truncated, inconsistent or unknown.

    Raised by every parser of untrusted bytes (UQFF blobs and files, safetensors headers,
    checkpoints); the message names what was wrong and where (offset or tensor name).
    """
