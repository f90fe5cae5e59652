"""Waiting in async tests for something a real relay, client or Qt app does."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


async def until(condition: Callable[[], Any], timeout: float = 15.0, what: str = "") -> Any:
    """Let the loop (and so Qt, under qasync) run until ``condition()`` is truthy, and
    return that value; fail naming ``what`` (or the condition) after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (value := condition()):
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await asyncio.sleep(0.02)
    return value
