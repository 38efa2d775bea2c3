"""Helpers of the market-data suites: a small emulated market for the market-data suites: 8 codes, two years of daily bars, reference data
with every kind the stock master tells apart (KOSPI, KOSDAQ, KONEX, ETF, SPAC, preferred, 관리종목, a
halt, a delisting), served by the emulator over real sockets on the real environment (the finance
TRs are real-only) with a fast rate limit on the wall clock (the client paces on the wall clock)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from brokers.kis.client import KISClient
from brokers.kis.credentials import Credentials
from brokers.kis.protocol import Env
from brokers.kis.emulator.reference import (Designation, ReferenceData, ReferenceFile, generate_reference)
from brokers.kis.emulator.server import Emulator
from configs.emulator_schema import EmulatorConfig
from configs.schema import DemoDataConfig
from feeds.demo import generate_demo_market

MARKET_START = date(2023, 1, 2)
MARKET_END = date(2024, 12, 27)
HALT = (date(2024, 6, 3), date(2024, 6, 5))
DELISTED = date(2024, 11, 29)
LATE_STATEMENT = date(2024, 8, 20)
"""990002's 2024 Q2 statement is published late (legal deadline 2024-08-14): a backtest before this day
must not see it."""


@dataclass
class SmallMarket:
    bars: dict[str, pd.DataFrame]
    markets: dict[str, Any]
    names: dict[str, str]
    reference: ReferenceData

    @property
    def codes(self) -> list[str]:
        return sorted(self.bars)


def _build() -> SmallMarket:
    demo = generate_demo_market(DemoDataConfig(codes=8, start=MARKET_START, end=MARKET_END, seed=7))
    bars = {c: df.copy() for c, df in demo.bars.items()}
    # 990007: halted 2024-06-03..05 (no bars), 관리종목 from 2024-06-03; 990008 delisted 2024-11-29
    idx7 = bars["990007"].index
    bars["990007"] = bars["990007"][~((idx7 >= pd.Timestamp(HALT[0])) & (idx7 <= pd.Timestamp(HALT[1])))]
    bars["990008"] = bars["990008"][bars["990008"].index <= pd.Timestamp(DELISTED)]
    ref = generate_reference(bars, demo.markets, demo.names)
    secs = dict(ref.securities)

    def change(code: str, **kw: Any) -> None:
        secs[code] = secs[code].model_copy(update=kw)

    change("990003", kind="etf", name="데모 ETF")
    change("990004", kind="spac", name="데모스팩1호")
    change("990005", kind="preferred", name="데모우")
    change("990006", market="KONEX", name="코넥스데모")
    keep = [d for d in secs["990007"].designations if not (d.kind == "halted" and d.start <= HALT[1] and
                                                          (d.end or HALT[1]) >= HALT[0])]
    change("990007", name="관리데모", designations=keep + [
        Designation(kind="halted", start=HALT[0], end=HALT[1], reason="거래정지"),
        Designation(kind="admin_issue", start=HALT[0], end=None, reason="관리종목 지정")])
    change("990008", delisting_date=DELISTED)
    late = []
    for st in secs["990002"].financials:
        if st.period == "quarter" and st.period_end == date(2024, 6, 30):
            st = st.model_copy(update={"published": LATE_STATEMENT})
        late.append(st)
    change("990002", financials=late)
    parsed = ReferenceFile(format="krx-trader/reference", version=1, synthetic=True, securities=list(secs.values()))
    return SmallMarket(bars, dict(demo.markets), dict(demo.names), ReferenceData(parsed, "<small market>"))


def emulator_config(rate: float = 400.0, **extra: Any) -> EmulatorConfig:
    raw = {"env": "real", "log_requests": False, "ws": {"ping_interval_s": None},
           "real": {"rate_limit_per_sec": rate}, "rate_limit": {"time_base": "wall"}}
    raw.update(extra)
    return EmulatorConfig.model_validate(raw)


def client_for(emu: Emulator, token_cache: Path, rate: float | None = None) -> KISClient:
    """A client of the emulator's real environment (one token cache per test: one token issued)."""
    c = emu.credentials()
    return KISClient(Credentials(c.appkey, c.appsecret, c.cano, c.acnt_prdt_cd, c.hts_id), Env.REAL, c.rest_url,
                     token_cache=token_cache, requests_per_second=rate or emu.config.real.rate_limit_per_sec)


def env_file(emu: Emulator, path: Path) -> Path:
    c = emu.credentials()
    path.write_text(f"KIS_APP_KEY={c.appkey}\nKIS_APP_SECRET={c.appsecret}\nKIS_ACCOUNT={c.cano}-{c.acnt_prdt_cd}\n"
                    f"KIS_HTS_ID={c.hts_id}\n")
    path.chmod(0o600)
    return path
