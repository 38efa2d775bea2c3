"""Whole-market daily-bar download from KIS into the bar cache: resumable, gap-filling, rate-saturating.

Why this shape (a whole-market 10-year download is ~2,500 codes × ~25 pages: an hour at KIS's 18
requests/s, most of a day at paper's 1/s):

* **Plan from coverage.** For each code the wanted window (``start..end``, cut to its listing and
  delisting days when the stock master knows them) minus the ranges ``bar_coverage`` says are already
  fetched gives the *missing ranges*: a first run fetches everything, a second run nothing, a run after
  an interruption only what was not written, a run with a wider window only the new edges and the
  holes between earlier windows (gap filling).
* **One transaction per code.** A code's fetched ranges are written with their coverage in one
  transaction as soon as the code is complete (``BarCache.write_ranges``): an interruption loses at
  most the codes in flight, never a written one, and never leaves half a code behind.
* **Several codes in flight, one rate budget.** ``workers`` threads fetch different codes through one
  ``KISClient``, whose token bucket (``brokers/kis/ratelimit.py``, shared per app key) paces every
  request: while one request waits for its reply the next one is already sent, so the bucket — not the
  round trip — sets the pace (``bench/data.py`` measures the share of the limit reached, goal ≥ 95 %
  with zero ``EGW00201``).
* **Page by page.** Each missing range is cut into windows of at most one page of sessions (100 rows,
  ``protocol.DAILY_CHART_MAX_ROWS``), one request each, so progress and the ETA count requests exactly
  and a stop takes effect between two requests.
* **The quality guard** (``feeds.quality``) checks each code's series (cached + new) before it is
  written: errors are refused (the code is a failure, with the reason), warnings are reported, strict
  mode refuses those too; halts known to the stock master are told apart from missing data.
* **Adjusted and original prices** are separate series (``adjusted``), each with its own coverage.

Stopping: ``stop`` (a ``threading.Event``) or Ctrl-C stops new requests; codes already complete are
written, the others are left for the next run. ``DownloadSummary.interrupted`` says so.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import date, datetime, time as dtime
from typing import Callable, Iterable, Mapping, Sequence

import pandas as pd

from brokers.kis import protocol as P
from brokers.kis.errors import KISError
from feeds.cache import BarCache, merge_ranges
from feeds.quality import HaltIntervals, QualityReport, check_bars
from market.calendar import KST, krx_calendar

log = logging.getLogger(__name__)

PAGE_SESSIONS = P.DAILY_CHART_MAX_ROWS
"""Sessions per request window: one page of the daily chart TR."""
DAY_COMPLETE_AT = dtime(16, 0)
"""After this (KST) today's daily bar is final; before it, the last complete session is the previous one."""


def last_complete_session(now: datetime | None = None) -> date:
    """The newest session whose daily bar is final at ``now`` (KST)."""
    now = (now or datetime.now(KST)).astimezone(KST)
    cal = krx_calendar()
    d = now.date()
    if cal.is_trading_day(d) and now.time() >= DAY_COMPLETE_AT:
        return d
    return cal.previous_trading_day(d)


def subtract_ranges(want: tuple[date, date], have: Sequence[tuple[date, date]]) -> list[tuple[date, date]]:
    """Parts of ``want`` (inclusive days) not inside any range of ``have``."""
    from datetime import timedelta

    first, last = want
    out = []
    cur = first
    for a, b in merge_ranges(have):
        if b < cur:
            continue
        if a > last:
            break
        if a > cur:
            out.append((cur, min(last, a - timedelta(days=1))))
        cur = max(cur, b + timedelta(days=1))
        if cur > last:
            break
    if cur <= last:
        out.append((cur, last))
    return out


def windows(first: date, last: date, sessions: int = PAGE_SESSIONS) -> list[tuple[date, date]]:
    """The request windows of ``first..last``: at most ``sessions`` trading days each, each starting on a
    session (a range with no session is one window: it is still asked once, so its coverage gets
    recorded; coverage is always the whole range)."""
    days = krx_calendar().trading_days(first, last)
    if not days:
        return [(first, last)]
    out = []
    for i in range(0, len(days), sessions):
        chunk = days[i:i + sessions]
        # a window starts on a session: the chart TR pages back until a row reaches the start, so a
        # window starting on a holiday would cost a second, empty request
        b = last if i + sessions >= len(days) else chunk[-1]
        out.append((chunk[0], b))
    return out


@dataclass
class CodePlan:
    code: str
    ranges: list[tuple[date, date]]
    windows: list[tuple[date, date]] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return len(self.windows)


@dataclass
class Failure:
    code: str
    reason: str


@dataclass
class Progress:
    """What the download has done so far (given to the ``progress`` callback after every request)."""

    codes_total: int
    codes_done: int = 0
    codes_skipped: int = 0
    requests_planned: int = 0
    requests: int = 0
    bars: int = 0
    failures: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def rate(self) -> float:
        """Requests per second so far."""
        return self.requests / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left at the rate so far (None before the first request)."""
        if self.requests == 0:
            return None
        return max(self.requests_planned - self.requests, 0) / max(self.rate, 1e-9)


@dataclass
class DownloadSummary:
    codes: int
    written: list[str]
    skipped: list[str]
    failures: list[Failure]
    bars: int
    requests: int
    seconds: float
    rate_limit: float
    rate_limited: int
    interrupted: bool
    quality: QualityReport
    adjusted: bool

    @property
    def share_of_limit(self) -> float:
        """Requests per second reached, as a share of the client's rate limit."""
        return (self.requests / self.seconds / self.rate_limit) if self.seconds > 0 and self.rate_limit else 0.0

    def describe(self) -> str:
        kind = "back-adjusted" if self.adjusted else "original (unadjusted)"
        head = ("INTERRUPTED — run the same command again to resume\n" if self.interrupted else "")
        lines = [head + f"downloaded {self.bars:,} {kind} daily bars: {len(self.written)} code(s) written, "
                 f"{len(self.skipped)} already cached, {len(self.failures)} failed, "
                 f"{self.codes - len(self.written) - len(self.skipped) - len(self.failures)} left; "
                 f"{self.requests:,} requests in {self.seconds:,.1f}s = {self.requests / max(self.seconds, 1e-9):.1f}/s "
                 f"({self.share_of_limit * 100:.0f} % of {self.rate_limit:g}/s), {self.rate_limited} rate-limit replies"]
        for f in self.failures[:50]:
            lines.append(f"  failed {f.code}: {f.reason}")
        if len(self.failures) > 50:
            lines.append(f"  ... {len(self.failures) - 50} more failures")
        problems = {c: fs for c, fs in self.quality.findings.items() if any(f.severity == "warning" for f in fs)}
        if problems:
            lines.append(f"  quality warnings in {len(problems)} code(s) (run.py data quality for the table)")
        return "\n".join(lines)


def run_pool(items: Sequence[object], fn: Callable[[object], object], workers: int, stop: threading.Event,
             on_result: Callable[[object, object], None] | None = None) -> bool:
    """``fn(item)`` for every item, ``workers`` at a time, ``on_result(item, result)`` in this thread as each
    finishes. Stops submitting when ``stop`` is set or on Ctrl-C (then waits for those in flight);
    returns True when it stopped before every item ran. Exceptions of ``fn`` propagate."""
    pending = iter(items)
    running: dict[Future, object] = {}
    interrupted = False
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kis-fetch") as pool:
        try:
            while True:
                while len(running) < workers and not stop.is_set():
                    nxt = next(pending, None)
                    if nxt is None:
                        break
                    running[pool.submit(fn, nxt)] = nxt
                if not running:
                    break
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for fut in done:
                    item = running.pop(fut)
                    result = fut.result()
                    if on_result is not None:
                        on_result(item, result)
        except KeyboardInterrupt:
            interrupted = True
            stop.set()
            for fut, item in running.items():
                if fut.cancel():
                    continue
                try:
                    result = fut.result()
                except Exception:  # noqa: BLE001 - shutting down: that item simply did not finish
                    continue
                if on_result is not None:
                    on_result(item, result)
    return interrupted or (stop.is_set() and next(pending, None) is not None)


class Downloader:
    """Fills a ``BarCache`` from a ``KISClient`` (see the module docstring)."""

    def __init__(self, client, cache: BarCache, *, adjusted: bool = True, workers: int = 4,
                 strict: bool = False, halts: Mapping[str, HaltIntervals] | None = None,
                 listing: Mapping[str, tuple[date | None, date | None]] | None = None,
                 progress: Callable[[Progress], None] | None = None,
                 on_code: Callable[[str, int], None] | None = None,
                 stop: threading.Event | None = None, source: str | None = None) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.client = client
        self.cache = cache
        self.adjusted = adjusted
        self.workers = workers
        self.strict = strict
        self.halts = dict(halts or {})
        self.listing = dict(listing or {})
        self.progress_cb = progress
        self.on_code = on_code
        self.stop = stop or threading.Event()
        self.source = source or f"kis-{getattr(getattr(client, 'env', None), 'value', 'kis')}"
        self._lock = threading.Lock()

    # --- planning --------------------------------------------------------------------------
    def plan(self, codes: Iterable[str], start: date, end: date) -> list[CodePlan]:
        covered = self.cache.coverage(None, "daily", self.adjusted)
        out = []
        for code in codes:
            first, last = start, end
            listed, delisted = self.listing.get(code, (None, None))
            if listed is not None:
                first = max(first, listed)
            if delisted is not None:
                last = min(last, delisted)
            ranges = subtract_ranges((first, last), covered.get(code, [])) if first <= last else []
            out.append(CodePlan(code, ranges, [w for a, b in ranges for w in windows(a, b)]))
        return out

    # --- one code ----------------------------------------------------------------------------
    def _fetch(self, plan: CodePlan, prog: Progress) -> list[tuple[pd.DataFrame, date, date]] | None:
        """Every missing range of one code, window by window (None when stopped before the last one)."""
        pieces = []
        for a, b in plan.ranges:
            frames = []
            for wa, wb in windows(a, b):
                if self.stop.is_set():
                    return None
                frames.append(self.client.daily_bars(plan.code, wa, wb, adjusted=self.adjusted))
                with self._lock:
                    prog.requests += 1
                self._report(prog)
            frame = pd.concat(frames)
            frame = frame[~frame.index.duplicated(keep="last")].sort_index()
            frame.index = pd.DatetimeIndex(frame.index, name="datetime")
            pieces.append((frame, a, b))
        return pieces

    def _check(self, code: str, pieces: list[tuple[pd.DataFrame, date, date]]) -> list:
        """The quality guard on the code's whole series as it will be after the write."""
        old = self.cache.read(code, "daily", adjusted=self.adjusted)
        new = [p[0] for p in pieces if len(p[0])]
        if old.empty and not new:
            return []
        keep = old
        for _, a, b in pieces:
            if len(keep):
                idx = keep.index
                keep = keep[(idx < pd.Timestamp(a)) | (idx > pd.Timestamp(b) + pd.Timedelta(days=1) - pd.Timedelta(seconds=1))]
        full = pd.concat([keep, *new]).sort_index() if new else keep
        return check_bars(full, code, self.halts.get(code, ()))

    def _one(self, plan: CodePlan, prog: Progress, report: QualityReport) -> tuple[str, int, str | None]:
        """(code, bars written, failure reason or None); ("", 0, None) when stopped first."""
        try:
            pieces = self._fetch(plan, prog)
        except KISError as exc:
            return plan.code, 0, f"KIS: {exc}"
        if pieces is None:
            return "", 0, None
        findings = self._check(plan.code, pieces)
        with self._lock:
            report.add(plan.code, findings)
        refused = report.refusal(plan.code)
        if refused is not None:
            return plan.code, 0, f"refused by the quality guard{' (strict)' if self.strict else ''}: " \
                                 f"{refused.kind}: {refused.message}"
        n = self.cache.write_ranges(plan.code, pieces, timeframe="daily", adjusted=self.adjusted, source=self.source)
        return plan.code, n, None

    def _report(self, prog: Progress) -> None:
        if self.progress_cb is not None:
            self.progress_cb(prog)

    # --- the whole download ----------------------------------------------------------------------
    def run(self, codes: Sequence[str], start: date, end: date) -> DownloadSummary:
        """Download ``codes`` for ``start..end`` (see the module docstring); never raises for one code."""
        t0 = time.monotonic()
        stats0 = (self.client.stats.requests, self.client.stats.rate_limited)
        plans = self.plan(codes, start, end)
        todo = [p for p in plans if p.windows]
        skipped = [p.code for p in plans if not p.windows]
        prog = Progress(codes_total=len(plans), codes_skipped=len(skipped), codes_done=len(skipped),
                        requests_planned=sum(p.requests for p in todo))
        report = QualityReport({}, strict=self.strict)
        written: list[str] = []
        failures: list[Failure] = []
        self._report(prog)

        def finished(plan: CodePlan, result: tuple[str, int, str | None]) -> None:
            code, n, reason = result
            with self._lock:
                if reason is not None:
                    failures.append(Failure(plan.code, reason))
                    prog.failures += 1
                    prog.codes_done += 1
                    log.warning("download %s failed: %s", plan.code, reason)
                elif code:
                    written.append(code)
                    prog.codes_done += 1
                    prog.bars += n
                    log.info("written %s: %d bars", code, n)
            if code and reason is None and self.on_code is not None:
                self.on_code(code, n)
            self._report(prog)

        interrupted = run_pool(todo, lambda p: self._one(p, prog, report), self.workers, self.stop, finished)
        interrupted = interrupted or len(written) + len(failures) < len(todo)
        return DownloadSummary(
            codes=len(plans), written=written, skipped=skipped, failures=failures, bars=prog.bars,
            requests=self.client.stats.requests - stats0[0], seconds=time.monotonic() - t0,
            rate_limit=float(self.client.bucket.rate), rate_limited=self.client.stats.rate_limited - stats0[1],
            interrupted=interrupted, quality=report, adjusted=self.adjusted)


__all__ = ["CodePlan", "DownloadSummary", "Downloader", "Failure", "PAGE_SESSIONS", "Progress",
           "last_complete_session", "run_pool", "subtract_ranges", "windows"]
