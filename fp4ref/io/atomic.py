"""Output files that appear whole or not at all.

Every file fp4ref writes goes to a temporary file ``.fp4ref-*.tmp`` in the target's folder
(same file system, so the final rename is atomic), is moved onto the target with
``os.replace`` only once complete, and is removed on every failure path, signals included
(the command line turns SIGTERM into an exception so that these paths run). Several outputs
of one command (a UQFF shard and its residual, the conformance vectors) are committed
together by an :func:`outputs` block.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import tempfile
from collections.abc import Iterator
from typing import IO

#: The outputs of the innermost :func:`outputs` block: (temporary, target) pairs.
_PENDING: contextvars.ContextVar[list[tuple[str, str]] | None] = contextvars.ContextVar(
    "fp4ref_pending_outputs", default=None)


@contextlib.contextmanager
def outputs() -> Iterator[list[tuple[str, str]]]:
    """Files committed inside the block move into place only when it ends well.

    If anything fails, or a signal arrives, before the block ends, every temporary file is
    removed and no target changes; otherwise all targets are replaced at the end.
    """
    pending: list[tuple[str, str]] = []
    token = _PENDING.set(pending)
    try:
        yield pending
    except BaseException:
        for temp, _ in pending:
            remove(temp)
        raise
    finally:
        _PENDING.reset(token)
    for index, (temp, target) in enumerate(pending):
        try:
            _replace(temp, target)
        except BaseException:
            for later, _ in pending[index:]:
                remove(later)
            raise


def remove(path: str) -> None:
    """Remove ``path`` if it is there."""
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


def _replace(temp: str, target: str) -> None:
    """Move ``temp`` onto ``target``; an error names ``target``, not the temporary file."""
    try:
        os.replace(temp, target)
    except OSError as error:
        remove(temp)
        raise type(error)(error.errno, f"cannot write {target}: {error.strerror}") from None


def temporary(path: str) -> tuple[IO[bytes], str]:
    """(open binary file, its name): the temporary file for output ``path``.

    Raises
    ------
    ValueError
        An empty ``path``.
    OSError
        ``path`` is a folder, exists but is not a regular file (a device such as /dev/null,
        a FIFO), or its folder is missing or not writable; the message names ``path``.
    """
    if not path:
        raise ValueError("the output path is empty")
    if os.path.isdir(path):
        raise IsADirectoryError(21, "is a folder; give the output file's name", path)
    if os.path.exists(path) and not os.path.isfile(path):
        # replacing it would swap a device (/dev/null) or FIFO for a plain file
        raise FileExistsError(17, "exists and is not a regular file; fp4ref replaces regular "
                              "files only", path)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        handle, temp = tempfile.mkstemp(prefix=".fp4ref-", suffix=".tmp", dir=directory)
    except OSError as error:
        raise type(error)(error.errno, f"cannot write there ({error.strerror})", path) from None
    return os.fdopen(handle, "wb"), temp


def commit(temp: str, path: str) -> None:
    """Give the closed temporary file ``temp`` the mode ``open()`` would, and move it onto
    ``path`` (at the end of the enclosing :func:`outputs` block, if there is one)."""
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temp, 0o666 & ~umask)  # mkstemp makes 0600
    except BaseException:
        remove(temp)
        raise
    pending = _PENDING.get()
    if pending is None:
        _replace(temp, path)
    else:
        pending.append((temp, path))


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see the module docstring)."""
    path = os.fspath(path)
    file, temp = temporary(path)
    try:
        with file:
            file.write(data)
    except BaseException:
        remove(temp)
        raise
    commit(temp, path)
