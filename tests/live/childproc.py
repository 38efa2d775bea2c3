"""Child processes whose output the tests follow line by line.

Both pipes are drained continuously by reader threads into a queue: a child that writes more
than the OS pipe buffer (64 KiB) to a stream nobody is reading at that moment would otherwise
block inside a log call, and a test would see a hang that the product does not have.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
import time

WAIT = 60.0


class Child:
    def __init__(self, args: list[str], cwd, follow: str = "stdout") -> None:
        self.p = subprocess.Popen(args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
        self.follow = follow
        self.lines: "queue.Queue[str | None]" = queue.Queue()
        self.seen: list[str] = []
        self.other: list[str] = []
        self._threads = [threading.Thread(target=self._pump, args=(name,), daemon=True)
                         for name in ("stdout", "stderr")]
        for t in self._threads:
            t.start()

    def _pump(self, name: str) -> None:
        stream = getattr(self.p, name)
        for line in iter(stream.readline, ""):
            if name == self.follow:
                self.lines.put(line)
            else:
                self.other.append(line)
        if name == self.follow:
            self.lines.put(None)

    def until(self, predicate, what: str) -> str:
        deadline = time.monotonic() + WAIT
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(0.0, remaining))
            except queue.Empty:
                break
            if line is None:
                raise AssertionError(f"process ended while waiting for {what}: {''.join(self.other[-30:])}")
            self.seen.append(line)
            if predicate(line):
                return line
        if self.p.poll() is None and hasattr(signal, "SIGUSR1"):
            os.kill(self.p.pid, signal.SIGUSR1)           # run.py prints every thread's stack on SIGUSR1
        self.stop()
        raise AssertionError(f"timed out waiting for {what}; last lines:\n{''.join(self.seen[-20:])}\n"
                             f"other stream:\n{''.join(self.other[-60:])}")

    def rest(self) -> str:
        """Everything both streams produced (after the process ended)."""
        for t in self._threads:
            t.join(WAIT)
        pending = []
        while not self.lines.empty():
            line = self.lines.get_nowait()
            if line is not None:
                pending.append(line)
        return "".join(self.seen + pending + self.other)

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.terminate()
            self.p.wait(WAIT)
