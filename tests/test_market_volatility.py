"""VI (변동성완화장치) triggers of one day's prints (``market.volatility``, RULES.md §7)."""

from __future__ import annotations

from market.volatility import VI_DURATION_S, vi_events


def day(prices: list[int], step: float = 60.0, auction_first: bool = True) -> tuple[list[float], list[int], list[bool]]:
    times = [1_000.0 + i * step for i in range(len(prices))]
    auction = [auction_first and i == 0 for i in range(len(prices))]
    return times, prices, auction


def test_static_vi_at_ten_percent_from_the_open_then_from_the_vi_price() -> None:
    t, p, a = day([10_000, 10_500, 10_900, 11_000, 11_050, 11_100, 11_200, 12_100, 12_200])
    ev = vi_events(t, p, a, base=9_800)
    assert [(e.index, e.kind, e.reference) for e in ev] == [(3, "static", 10_000), (7, "dynamic", 11_200)]
    assert ev[0].end - ev[0].start == VI_DURATION_S
    # print 4 falls inside the VI; print 5 (at its end) is the new static reference, print 7 jumps 8 % (dynamic)


def test_dynamic_thresholds_depend_on_kospi200_membership() -> None:
    t, p, a = day([50_000, 51_600])                          # +3.2 % in one print
    assert vi_events(t, p, a, base=50_000) == []            # 6 % for other stocks
    assert [e.kind for e in vi_events(t, p, a, base=50_000, kospi200=True)] == ["dynamic"]


def test_static_reference_is_the_base_when_the_open_did_not_trade() -> None:
    t, p, a = day([10_400, 10_700, 11_000], auction_first=False)
    ev = vi_events(t, p, a, base=10_000)
    assert [(e.index, e.reference) for e in ev] == [(2, 10_000)]


def test_auction_prints_and_empty_days_never_trigger() -> None:
    assert vi_events([], [], [], base=10_000) == []
    t, p, _ = day([10_000, 12_000])
    assert vi_events(t, p, [True, True], base=10_000) == []
