"""Shared fixtures: a real relay on a loopback port, on SQLite or on the machine's
PostgreSQL, and real HTTP and WebSocket clients."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
