"""Signs of life on stderr while numba compiles fp4ref's kernels.

A fresh install compiles each kernel on its first use (numba then caches it on disk), which
can take tens of seconds with nothing else to show. :func:`install` listens to numba's
``numba:compile`` events: once compiling has gone on for :data:`AFTER` seconds, one line
says so; when it is over (no compile for :data:`QUIET` seconds), a second line says how long
it took. Nothing is printed for the short compiles of a warm cache. ``FP4REF_PROGRESS=0``
silences it.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

#: Seconds of compiling before the first line is printed.
AFTER = 1.0
#: Seconds without a compile that end a busy period.
QUIET = 0.5

MESSAGE = "fp4ref: compiling numba kernels (first use, cached afterwards)..."

_lock = threading.Lock()
_state = {"installed": False, "depth": 0, "start": 0.0, "last": 0.0, "shown": False,
          "timer": None}


def note(line: str) -> None:
    """Print one progress line on stderr (unless ``FP4REF_PROGRESS=0``)."""
    if os.environ.get("FP4REF_PROGRESS", "1") != "0":
        print(line, file=sys.stderr, flush=True)


@contextmanager
def stage(label: str) -> Iterator[None]:
    """Say ``label...`` on stderr if the block runs longer than :data:`AFTER` seconds, and
    how long it took when it ends."""
    start, shown = time.monotonic(), []
    timer = threading.Timer(AFTER, lambda: (shown.append(True), note(f"{label}...")))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        _settle()
        if shown:
            note(f"{label}: done ({time.monotonic() - start:.1f} s)")


def _arm(delay: float) -> None:
    timer = threading.Timer(delay, lambda: _tick(timer))
    timer.daemon = True
    _state["timer"] = timer
    timer.start()


def _tick(timer: threading.Timer) -> None:
    """Runs :data:`AFTER` seconds into a busy period, then every :data:`QUIET` seconds
    until the period ends (a timer the period no longer holds does nothing)."""
    with _lock:
        if _state["timer"] is not timer:
            return
        now = time.monotonic()
        busy = _state["depth"] > 0 or now - _state["last"] < QUIET
        if busy:
            if not _state["shown"]:
                _state["shown"] = True
                note(MESSAGE)
            _arm(QUIET)
            return
        _finish()


def _finish() -> None:
    """End a busy period (under the lock): the closing line if the first was printed."""
    if _state["shown"]:
        note(f"fp4ref: kernels ready ({_state['last'] - _state['start']:.1f} s)")
    _state.update(shown=False, timer=None)


def _settle() -> None:
    """End a busy period now if no compile is running (its closing line then comes before
    whatever the caller prints next)."""
    with _lock:
        if _state["timer"] is not None and _state["depth"] == 0:
            _state["timer"].cancel()
            _finish()


def _on_start(event) -> None:
    with _lock:
        if _state["depth"] == 0 and _state["timer"] is None:
            _state["start"] = time.monotonic()
            _arm(AFTER)
        _state["depth"] += 1


def _on_end(event) -> None:
    with _lock:
        _state["depth"] -= 1
        _state["last"] = time.monotonic()


def install() -> None:
    """Listen to numba's compile events (once per process; imports numba)."""
    if _state["installed"]:
        return
    from numba.core import event

    listener = type("CompileListener", (event.Listener,), {
        "on_start": staticmethod(_on_start), "on_end": staticmethod(_on_end)})
    event.register("numba:compile", listener())
    atexit.register(_settle)
    _state["installed"] = True
