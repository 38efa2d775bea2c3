"""A strategy driven by the test: each bar it runs the callables queued in ``commands``."""

from __future__ import annotations

import queue

from strategies.base import TargetStrategy


class Commands(TargetStrategy):
    params = (("commands", None), ("results", None))

    def on_bar(self) -> None:
        q: queue.Queue = self.p.commands
        while True:
            try:
                fn = q.get_nowait()
            except queue.Empty:
                return
            try:
                self.p.results.put(fn(self))
            except Exception as exc:  # noqa: BLE001 - handed to the test
                self.p.results.put(exc)
