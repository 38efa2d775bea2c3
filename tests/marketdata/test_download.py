"""Whole-market download against the emulator over real sockets: everything, then nothing; an
interruption in the middle and a resume; gap filling; adjusted and original series apart; the quality
guard (halts vs missing data, strict mode, a refused code); the shared rate budget with zero EGW00201."""

from __future__ import annotations

import threading
from datetime import date

import pandas as pd

from feeds.cache import BarCache
from feeds.download import Downloader, subtract_ranges, windows
from feeds.master import StockMaster

from market_helpers import HALT, MARKET_START, client_for

START, END = MARKET_START, date(2024, 12, 26)     # the emulator stands on the morning of MARKET_END


def expected(small_market, code: str, start: date = START, end: date = END) -> pd.DataFrame:
    return small_market.bars[code].loc[pd.Timestamp(start):pd.Timestamp(end)]


def assert_complete(cache: BarCache, small_market, codes, start: date = START, end: date = END,
                    adjusted: bool = True) -> None:
    for code in codes:
        got = cache.read(code, adjusted=adjusted)
        want = expected(small_market, code, start, end)
        assert list(got.index) == list(want.index), code
        assert (got.to_numpy() == want.to_numpy()).all(), code


def test_ranges_and_windows():
    assert subtract_ranges((date(2024, 1, 1), date(2024, 12, 31)),
                           [(date(2024, 3, 1), date(2024, 3, 31)), (date(2024, 6, 1), date(2025, 1, 31))]) == [
        (date(2024, 1, 1), date(2024, 2, 29)), (date(2024, 4, 1), date(2024, 5, 31))]
    assert subtract_ranges((date(2024, 1, 1), date(2024, 1, 31)), [(date(2023, 1, 1), date(2024, 2, 1))]) == []
    w = windows(date(2024, 1, 1), date(2024, 12, 31))
    assert w[0][0] == date(2024, 1, 2) and w[-1][1] == date(2024, 12, 31) and len(w) == 3   # 244 sessions
    assert windows(date(2024, 2, 10), date(2024, 2, 12)) == [(date(2024, 2, 10), date(2024, 2, 12))]  # no session


def test_whole_market_then_nothing_left(market_emulator, small_market, db_url, tmp_path):
    emu = market_emulator()
    client = client_for(emu, tmp_path / "token.json")
    with BarCache(db_url) as cache:
        first = Downloader(client, cache, workers=3).run(small_market.codes, START, END)
        assert sorted(first.written) == small_market.codes and not first.failures and not first.interrupted
        assert first.bars == sum(len(expected(small_market, c)) for c in small_market.codes) == cache.row_count()
        assert_complete(cache, small_market, small_market.codes)
        assert first.rate_limited == 0
        assert cache.coverage("990001") == {"990001": [(START, END)]}
        again = Downloader(client, cache, workers=3).run(small_market.codes, START, END)
        assert again.requests == 0 and sorted(again.skipped) == small_market.codes and again.bars == 0
        assert "8 already cached" in again.describe()


def test_interruption_in_the_middle_then_resume(market_emulator, small_market, new_db_url, tmp_path):
    emu = market_emulator()
    client = client_for(emu, tmp_path / "token.json")
    url = new_db_url("resume")
    stop = threading.Event()
    written: list[str] = []

    def after_code(code: str, n: int) -> None:
        written.append(code)
        if len(written) == 3:
            stop.set()                                  # as if Ctrl-C came after the third code

    with BarCache(url) as cache:
        cut = Downloader(client, cache, workers=2, stop=stop, on_code=after_code).run(small_market.codes, START, END)
        assert cut.interrupted and "INTERRUPTED" in cut.describe()
        assert 3 <= len(cut.written) < 8 and sorted(cut.written) == sorted(written)
        assert cache.codes() == sorted(cut.written)            # exactly the codes written, each complete
        assert_complete(cache, small_market, cut.written)
        left = [c for c in small_market.codes if c not in cut.written]
        resumed = Downloader(client, cache, workers=2).run(small_market.codes, START, END)
        assert sorted(resumed.written) == left and sorted(resumed.skipped) == sorted(cut.written)
        assert resumed.requests == sum(len(windows(START, END)) for _ in left)   # nothing fetched twice
        assert not resumed.interrupted
        assert_complete(cache, small_market, small_market.codes)


def test_gaps_between_earlier_windows_are_filled(market_emulator, small_market, db_url, tmp_path):
    emu = market_emulator()
    client = client_for(emu, tmp_path / "token.json")
    codes = ["990001", "990002"]
    with BarCache(db_url) as cache:
        Downloader(client, cache).run(codes, date(2023, 1, 2), date(2023, 6, 30))
        Downloader(client, cache).run(codes, date(2024, 1, 2), date(2024, 6, 28))
        fill = Downloader(client, cache).run(codes, date(2023, 1, 2), date(2024, 6, 28))
        # only the hole 2023-07-01..2024-01-01 is asked for: two windows of <= 100 sessions per code
        assert fill.requests == 2 * len(windows(date(2023, 7, 1), date(2024, 1, 1)))
        assert cache.coverage("990001")["990001"] == [(date(2023, 1, 2), date(2024, 6, 28))]
        assert_complete(cache, small_market, codes, date(2023, 1, 2), date(2024, 6, 28))


def test_adjusted_and_original_series_are_kept_apart(market_emulator, small_market, db_url, tmp_path):
    emu = market_emulator()
    client = client_for(emu, tmp_path / "token.json")
    with BarCache(db_url) as cache:
        Downloader(client, cache, adjusted=True).run(["990001"], START, END)
        orig = Downloader(client, cache, adjusted=False).run(["990001"], START, END)
        assert orig.written == ["990001"] and orig.requests > 0     # its own coverage: fetched again
        assert cache.series_kinds()["990001"] == {True, False}
        assert cache.coverage("990001", adjusted=False) == {"990001": [(START, END)]}
        assert_complete(cache, small_market, ["990001"], adjusted=False)


def test_quality_guard_halts_strict_mode_and_a_refused_code(market_emulator, small_market, new_db_url, tmp_path):
    bars = dict(small_market.bars)
    bad = bars["990001"].copy()
    i = bad.index.get_loc(pd.Timestamp("2024-03-05"))
    bad.iloc[i, [0, 1, 2, 3]] = (bad.iloc[i, [0, 1, 2, 3]] * 10).astype("int64")   # a x10 typo, taken back next day
    bars["990001"] = bad
    emu = market_emulator(bars=bars)
    client = client_for(emu, tmp_path / "token.json")
    codes = ["990001", "990007"]
    with BarCache(new_db_url("plain")) as cache:
        result = Downloader(client, cache).run(codes, START, END)
        assert result.written == ["990007"] and [f.code for f in result.failures] == ["990001"]
        assert "spike" in result.failures[0].reason and "failed 990001: refused by the quality guard" in result.describe()
        assert cache.codes() == ["990007"]                          # the refused code is not written
        kinds = {f.kind for f in result.quality.findings["990007"]}
        assert "gap" in kinds                                       # no master: the halt looks like missing data
    with BarCache(new_db_url("strict")) as cache:
        strict = Downloader(client, cache, strict=True).run(["990007"], START, END)
        assert strict.written == [] and "strict" in strict.failures[0].reason and "gap" in strict.failures[0].reason
    url = new_db_url("master")
    with StockMaster(url) as master:
        master.add_flag_intervals([("990007", "halted", HALT[0], HALT[1])], "reference")
        halts = master.halts()
    with BarCache(url) as cache:
        known = Downloader(client, cache, strict=True, halts=halts).run(["990007"], START, END)
        assert known.written == ["990007"]
        found = {f.kind: f for f in known.quality.findings["990007"]}
        assert "gap" not in found and found["halt"].severity == "info" and "3 session(s)" in found["halt"].message


def test_several_codes_in_flight_use_the_rate_budget(market_emulator, small_market, tmp_path):
    rate = 30.0
    emu = market_emulator(rate=rate)                               # the emulator enforces the same limit
    client = client_for(emu, tmp_path / "token.json", rate=rate)
    client.access_token()                                          # the token is not part of the download
    in_flight, most = [0], [0]
    lock = threading.Lock()
    send = client._http

    def counting(*args, **kwargs):
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        try:
            return send(*args, **kwargs)
        finally:
            with lock:
                in_flight[0] -= 1

    client._http = counting
    # replies take 80 ms, longer than the bucket's 33 ms between requests: one code at a time could not
    # reach the limit, several in flight can
    emu.faults.delay(0.08, count=10_000, path="inquire-daily-itemchartprice", before=True)
    with BarCache(f"sqlite:///{tmp_path / 'rate.sqlite'}") as cache:
        result = Downloader(client, cache, workers=4).run(small_market.codes, START, END)
    assert result.rate_limited == 0 and not result.failures        # zero EGW00201
    assert most[0] >= 2                                             # the next request leaves before a reply is in
    # (no wall-clock throughput assertion here: on a loaded machine the in-process server itself slows
    # down; overlapping requests are the mechanism, the share of the limit is the benchmark's figure)
    # the share itself is measured by bench/data.py on a long run (goal >= 95 %; 99 % measured at 18/s): a
    # 1.5-second run on a loaded 2-core machine, server in the same process, only has to be in its range
    assert result.share_of_limit >= 0.5, result.describe()
