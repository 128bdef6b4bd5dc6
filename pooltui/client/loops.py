"""The fastest event loop available: uvloop where it is installed (not on Windows), else asyncio's."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any


def loop_name() -> str:
    """What to tell uvicorn: ``uvloop`` when it can be imported, else ``asyncio``."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def runner() -> Callable[[Coroutine[Any, Any, Any]], Any]:
    """``uvloop.run`` where uvloop is installed, else ``asyncio.run``."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run
