"""A local KIS Open API (REST + WebSocket + admin) for tests and offline paper trading.

``Emulator`` (server.py) is the entry point; see README.md beside this file. Exports are lazy so
``import brokers.kis.emulator.protocol``-style imports of single modules stay cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["AcceleratedClock", "Credentials", "Emulator", "RealClock", "SteppedClock"]


def __getattr__(name: str) -> Any:
    if name in ("Emulator", "Credentials"):
        from brokers.kis.emulator import server

        return getattr(server, name)
    if name in ("AcceleratedClock", "RealClock", "SteppedClock"):
        from brokers.kis.emulator import clock

        return getattr(clock, name)
    raise AttributeError(name)
