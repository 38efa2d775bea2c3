"""KIS (한국투자증권) Open API wire facts for domestic stocks — the single source of truth.

Both the emulator (``brokers/kis/emulator``) and the project's KIS client import this module, so a
fact written here is the same on both sides of the wire. Everything is pure data or a pure function
(no I/O, no clock, no randomness); every fact cites the section of ``shared/kis/PROTOCOL.md`` it
comes from. Where the spec marks a fact **unconfirmed** the entry says so, and the emulator makes
the behaviour configurable.

Contents, in order:

1. environments, hosts, key lengths (§1.1)
2. REST paths and the TR-id table per API × env (real/paper) × generation (new/old), with lookups
   both ways (§3.0)
3. paging, rate-limit and token defaults per env (§2.1, §3.1, §5.1)
4. ``ORD_DVSN`` (주문구분, order type) and exchange tables with the paper-allowed set (§3.3)
5. message codes with real and paper texts (§1.4, §5.2, §5.3) and WebSocket control codes (§4.3)
6. WebSocket frames: field lists (``H0STCNT0`` 46, ``H0STASP0`` 59/62, ``H0STCNI0`` 26,
   ``H0STCNI9`` 23, ``H0STMKO0`` 11), frame encode/parse with multi-record chunking (§4.4) and
   AES-256-CBC (§4.5)

Notes beyond PROTOCOL.md (issue 10; evidence from clients written for real KIS):

* Real-host business codes where sources disagree live in ONE table, ``REAL_BUSINESS_CODES``: real-host
  logs show ``APBK0506`` (tick error), ``APBK0918`` "장운영시간이 아닙니다." (outside the order window,
  before the open and after the close alike) and ``APBK0400`` (sell quantity over holdings); third-party
  captures and clients had ``40030000``, ``APBK0919`` and nothing (``EMU00002``). ``MESSAGES`` defaults to
  the real-host evidence; the emulator switches with ``rest.business_codes``; clients should match any
  code ``known_codes(reason)`` lists, never one.
* Reference, fundamental and ranking TRs (``search-info``, ``search-stock-info``, ``finance/*``,
  ``volume-rank``, ``ranking/*``) and ``H0STMKO0`` are real-only ([OTA] legacy README), with paths and TR ids
  from [OTA] ``domestic_stock_functions.py``; the value sets the catalogue does not spell out (VI codes,
  finance units, ranking depth) are marked unconfirmed where defined.
* Inputs real KIS must accept because python-kis sends them: ``FID_INPUT_DATE_1=00000101`` (from the
  beginning) and ``FID_INPUT_HOUR_1=000000`` (the latest rows) — ``DATE_INPUT_EARLIEST``,
  ``HOUR_INPUT_LATEST``.
* Header spelling (KIS's sample namedtuples the lower-case reply header names): ``Content-Type``
  capitalised, ``tr_id``/``tr_cont``/``gt_uid`` lower case on every ``/uapi`` reply.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from enum import Enum
from typing import Iterable, Mapping, Sequence

# --------------------------------------------------------------------------------------------
# 1. Environments and hosts (§1.1)
# --------------------------------------------------------------------------------------------


class Env(str, Enum):
    """실전 (real) or 모의투자 (paper, "VTS"): separate hosts, keys, accounts and TR ids."""

    REAL = "real"
    PAPER = "paper"


REST_BASE_URL: Mapping[Env, str] = {
    Env.REAL: "https://openapi.koreainvestment.com:9443",
    Env.PAPER: "https://openapivts.koreainvestment.com:29443",
}
WS_BASE_URL: Mapping[Env, str] = {
    Env.REAL: "ws://ops.koreainvestment.com:21000",
    Env.PAPER: "ws://ops.koreainvestment.com:31000",
}
WS_PATH = "/tryitout"
"""Path the current official client uses; the server accepts any path (§1.1)."""

APPKEY_LENGTH = 36
APPSECRET_LENGTH = 180
CANO_LENGTH = 8
ACNT_PRDT_CD_LENGTH = 2
ACNT_PRDT_CD_STOCK = "01"
"""Account product code of a 종합 (stock) account; 03 F&O, 08 overseas F&O, 22/29 pensions (§1.1)."""

# --------------------------------------------------------------------------------------------
# 2. REST paths and TR ids (§2, §3.0)
# --------------------------------------------------------------------------------------------

PATH_TOKEN = "/oauth2/tokenP"
PATH_REVOKE = "/oauth2/revokeP"
PATH_APPROVAL = "/oauth2/Approval"
PATH_HASHKEY = "/uapi/hashkey"
DOMESTIC_PREFIX = "/uapi/domestic-stock/v1"


class Api(str, Enum):
    """One logical API; ``order-cash`` is two (buy/sell) because the TR id carries the side."""

    ORDER_CASH_BUY = "order_cash_buy"
    ORDER_CASH_SELL = "order_cash_sell"
    ORDER_RVSECNCL = "order_rvsecncl"
    INQUIRE_PSBL_RVSECNCL = "inquire_psbl_rvsecncl"
    INQUIRE_BALANCE = "inquire_balance"
    INQUIRE_DAILY_CCLD = "inquire_daily_ccld"
    INQUIRE_DAILY_CCLD_OLD = "inquire_daily_ccld_before_3m"
    INQUIRE_PSBL_ORDER = "inquire_psbl_order"
    INQUIRE_PSBL_SELL = "inquire_psbl_sell"
    ORDER_CREDIT_BUY = "order_credit_buy"
    ORDER_CREDIT_SELL = "order_credit_sell"
    ORDER_RESV = "order_resv"
    INQUIRE_PRICE = "inquire_price"
    INQUIRE_ASKING_PRICE = "inquire_asking_price_exp_ccn"
    INQUIRE_CCNL = "inquire_ccnl"
    INQUIRE_DAILY_ITEMCHARTPRICE = "inquire_daily_itemchartprice"
    INQUIRE_TIME_ITEMCHARTPRICE = "inquire_time_itemchartprice"
    INQUIRE_TIME_DAILYCHARTPRICE = "inquire_time_dailychartprice"
    CHK_HOLIDAY = "chk_holiday"
    SEARCH_INFO = "search_info"
    SEARCH_STOCK_INFO = "search_stock_info"
    FINANCE_BALANCE_SHEET = "finance_balance_sheet"
    FINANCE_INCOME_STATEMENT = "finance_income_statement"
    FINANCE_FINANCIAL_RATIO = "finance_financial_ratio"
    VOLUME_RANK = "volume_rank"
    MARKET_CAP_RANK = "market_cap"
    FLUCTUATION_RANK = "fluctuation"


class Generation(str, Enum):
    """KIS renamed order/inquiry TRs ("신TR"); the old ids still work and are still sent (§3.0)."""

    NEW = "new"
    OLD = "old"


@dataclass(frozen=True)
class ApiSpec:
    """Method, path and TR ids of one API. ``None`` = not offered in that env/generation."""

    api: Api
    method: str
    path: str
    tr_real: str
    tr_paper: str | None
    tr_real_old: str | None = None
    tr_paper_old: str | None = None
    paper_supported: bool | None = True
    """False: paper answers ``EGW02006``; None: unconfirmed (§3.0)."""

    @property
    def full_path(self) -> str:
        return DOMESTIC_PREFIX + "/" + self.path


API_SPECS: tuple[ApiSpec, ...] = (
    ApiSpec(Api.ORDER_CASH_BUY, "POST", "trading/order-cash", "TTTC0012U", "VTTC0012U", "TTTC0802U", "VTTC0802U"),
    ApiSpec(Api.ORDER_CASH_SELL, "POST", "trading/order-cash", "TTTC0011U", "VTTC0011U", "TTTC0801U", "VTTC0801U"),
    ApiSpec(Api.ORDER_RVSECNCL, "POST", "trading/order-rvsecncl", "TTTC0013U", "VTTC0013U", "TTTC0803U", "VTTC0803U"),
    ApiSpec(Api.INQUIRE_PSBL_RVSECNCL, "GET", "trading/inquire-psbl-rvsecncl", "TTTC0084R", None, "TTTC8036R",
            None, paper_supported=False),
    ApiSpec(Api.INQUIRE_BALANCE, "GET", "trading/inquire-balance", "TTTC8434R", "VTTC8434R"),
    ApiSpec(Api.INQUIRE_DAILY_CCLD, "GET", "trading/inquire-daily-ccld", "TTTC0081R", "VTTC0081R", "TTTC8001R",
            "VTTC8001R"),
    ApiSpec(Api.INQUIRE_DAILY_CCLD_OLD, "GET", "trading/inquire-daily-ccld", "CTSC9215R", "VTSC9215R", "CTSC9115R",
            "VTSC9115R"),
    ApiSpec(Api.INQUIRE_PSBL_ORDER, "GET", "trading/inquire-psbl-order", "TTTC8908R", "VTTC8908R"),
    ApiSpec(Api.INQUIRE_PSBL_SELL, "GET", "trading/inquire-psbl-sell", "TTTC8408R", None, paper_supported=False),
    ApiSpec(Api.ORDER_CREDIT_BUY, "POST", "trading/order-credit", "TTTC0052U", None, "TTTC0852U", None,
            paper_supported=False),
    ApiSpec(Api.ORDER_CREDIT_SELL, "POST", "trading/order-credit", "TTTC0051U", None, "TTTC0851U", None,
            paper_supported=False),
    ApiSpec(Api.ORDER_RESV, "POST", "trading/order-resv", "CTSC0008U", None, paper_supported=False),
    ApiSpec(Api.INQUIRE_PRICE, "GET", "quotations/inquire-price", "FHKST01010100", "FHKST01010100"),
    ApiSpec(Api.INQUIRE_ASKING_PRICE, "GET", "quotations/inquire-asking-price-exp-ccn", "FHKST01010200",
            "FHKST01010200"),
    ApiSpec(Api.INQUIRE_CCNL, "GET", "quotations/inquire-ccnl", "FHKST01010300", "FHKST01010300"),
    ApiSpec(Api.INQUIRE_DAILY_ITEMCHARTPRICE, "GET", "quotations/inquire-daily-itemchartprice", "FHKST03010100",
            "FHKST03010100"),
    ApiSpec(Api.INQUIRE_TIME_ITEMCHARTPRICE, "GET", "quotations/inquire-time-itemchartprice", "FHKST03010200",
            "FHKST03010200"),
    ApiSpec(Api.INQUIRE_TIME_DAILYCHARTPRICE, "GET", "quotations/inquire-time-dailychartprice", "FHKST03010230",
            "FHKST03010230", paper_supported=None),
    ApiSpec(Api.CHK_HOLIDAY, "GET", "quotations/chk-holiday", "CTCA0903R", None, paper_supported=False),
    # Reference data, fundamentals and rankings: [OTA] examples_user/domestic_stock/domestic_stock_functions.py
    # (paths and TR ids); real only — [OTA] legacy/README.md leaves their "모의투자 제공" cell empty.
    ApiSpec(Api.SEARCH_INFO, "GET", "quotations/search-info", "CTPF1604R", None, paper_supported=False),
    ApiSpec(Api.SEARCH_STOCK_INFO, "GET", "quotations/search-stock-info", "CTPF1002R", None, paper_supported=False),
    ApiSpec(Api.FINANCE_BALANCE_SHEET, "GET", "finance/balance-sheet", "FHKST66430100", None, paper_supported=False),
    ApiSpec(Api.FINANCE_INCOME_STATEMENT, "GET", "finance/income-statement", "FHKST66430200", None,
            paper_supported=False),
    ApiSpec(Api.FINANCE_FINANCIAL_RATIO, "GET", "finance/financial-ratio", "FHKST66430300", None,
            paper_supported=False),
    ApiSpec(Api.VOLUME_RANK, "GET", "quotations/volume-rank", "FHPST01710000", None, paper_supported=False),
    ApiSpec(Api.MARKET_CAP_RANK, "GET", "ranking/market-cap", "FHPST01740000", None, paper_supported=False),
    ApiSpec(Api.FLUCTUATION_RANK, "GET", "ranking/fluctuation", "FHPST01700000", None, paper_supported=False),
)
API_SPEC: Mapping[Api, ApiSpec] = {s.api: s for s in API_SPECS}


@dataclass(frozen=True)
class TrInfo:
    """What a TR id means: which API, for which env (``None`` = both, quotation TRs), which generation."""

    tr_id: str
    api: Api
    env: Env | None
    generation: Generation


def _build_tr_index() -> dict[str, TrInfo]:
    index: dict[str, TrInfo] = {}
    for s in API_SPECS:
        shared = s.tr_real == s.tr_paper
        for tr, env, gen in ((s.tr_real, Env.REAL, Generation.NEW), (s.tr_paper, Env.PAPER, Generation.NEW),
                             (s.tr_real_old, Env.REAL, Generation.OLD), (s.tr_paper_old, Env.PAPER, Generation.OLD)):
            if tr is None or tr in index:
                continue
            index[tr] = TrInfo(tr, s.api, None if shared else env, gen)
    return index


TR_INDEX: Mapping[str, TrInfo] = _build_tr_index()


def tr_id_for(api: Api | str, env: Env | str, generation: Generation | str = Generation.NEW) -> str:
    """The TR id to send for ``api`` in ``env``; ``ValueError`` if that env/generation has none."""
    spec = API_SPEC[Api(api)]
    env, generation = Env(env), Generation(generation)
    if generation is Generation.NEW:
        tr = spec.tr_real if env is Env.REAL else spec.tr_paper
    else:
        tr = spec.tr_real_old if env is Env.REAL else spec.tr_paper_old
    if tr is None:
        raise ValueError(f"{spec.api.value} has no {generation.value} TR id for {env.value}")
    return tr


def lookup_tr(tr_id: str) -> TrInfo | None:
    """Reverse lookup: ``TTTC0802U`` → (order_cash_buy, real, old). Unknown ids give ``None``."""
    return TR_INDEX.get(tr_id.strip().upper()) if tr_id else None


def specs_for_path(path: str) -> tuple[ApiSpec, ...]:
    """Every API served at a path (``order-cash`` has two, ``inquire-daily-ccld`` two)."""
    path = path.rstrip("/")
    return tuple(s for s in API_SPECS if s.full_path == path)


def paper_tr_from_real(tr_id: str) -> str:
    """[OTA] ``_url_fetch`` rule: paper TR = real TR with a leading ``T``/``J``/``C`` replaced by ``V``."""
    return "V" + tr_id[1:] if tr_id[:1] in ("T", "J", "C") else tr_id


# --------------------------------------------------------------------------------------------
# 3. Paging, rate-limit and token defaults (§2.1, §3.1, §5.1)
# --------------------------------------------------------------------------------------------

PAGE_SIZE: Mapping[Api, Mapping[Env, int]] = {
    Api.INQUIRE_BALANCE: {Env.REAL: 50, Env.PAPER: 20},
    Api.INQUIRE_DAILY_CCLD: {Env.REAL: 100, Env.PAPER: 15},
    Api.INQUIRE_DAILY_CCLD_OLD: {Env.REAL: 100, Env.PAPER: 15},
    Api.INQUIRE_PSBL_RVSECNCL: {Env.REAL: 50, Env.PAPER: 50},
}
"""Rows per page of the ``tr_cont``-paged TRs (§3.1)."""

DAILY_CHART_MAX_ROWS = 100
"""``inquire-daily-itemchartprice``: at most 100 rows a call, newest first (§3.10)."""
TIME_CHART_MAX_ROWS = 30
"""``inquire-time-itemchartprice``: 30 one-minute rows a call, today only, newest first (§3.11)."""
CTX_AREA_LENGTH = 100
"""``ctx_area_fk100``/``ctx_area_nk100`` are space-padded to 100 characters (§1.4)."""

MARKET_DIV_KRX = "J"
"""``FID_COND_MRKT_DIV_CODE`` of KRX quotations (``NX`` NXT, ``UN`` unified; §3.3)."""
PRDT_TYPE_STOCK = "300"
"""``PRDT_TYPE_CD`` of domestic stocks/ETF/ETN/ELW in ``search-info``/``search-stock-info`` ([OTA] docstrings)."""
DATE_INPUT_EARLIEST = "00000101"
"""``FID_INPUT_DATE_1`` meaning "from the first day there is": python-kis ``daily_chart`` sends it by
default ([PK] ``api/stock/daily_chart.py``), so real KIS accepts it."""
HOUR_INPUT_LATEST = "000000"
"""``FID_INPUT_HOUR_1`` python-kis sends on its first ``inquire-time-itemchartprice`` call and then pages
back from the oldest row ([PK] ``api/stock/day_chart.py``): real KIS answers it with the latest rows."""
FINANCE_PERIOD_YEAR = "0"
FINANCE_PERIOD_QUARTER = "1"
"""``FID_DIV_CLS_CODE`` of the ``finance/*`` TRs: 0 annual (년), 1 quarterly (분기) ([OTA] docstrings)."""
FINANCE_AMOUNT_UNIT = 100_000_000
"""Amounts of ``finance/balance-sheet`` and ``income-statement`` are read as 억원 (100 million KRW) with
two decimals, as KIS's HTS statements show them — **unconfirmed** (no capture with values)."""
RANK_SCREEN_CODE: Mapping[Api, str] = {
    Api.VOLUME_RANK: "20171", Api.MARKET_CAP_RANK: "20174", Api.FLUCTUATION_RANK: "20170"}
"""``FID_COND_SCR_DIV_CODE`` each ranking TR requires ([OTA] sample functions raise on any other value)."""
RANK_MAX_ROWS = 30
"""Rows a ranking TR answers (top 30, no paging) — **unconfirmed**."""

TR_CONT_MORE = ("F", "M")
TR_CONT_LAST = ("D", "E")
TR_CONT_NEXT_REQUEST = "N"

REST_RATE_LIMIT_PER_SEC: Mapping[Env, float] = {Env.REAL: 18.0, Env.PAPER: 1.0}
"""Per-app-key REST limit per the KIS notice of 2026-04-20 (§5.1): real 18/s, paper 1/s."""
REST_RATE_LIMIT_HISTORICAL_PER_SEC: Mapping[Env, float] = {Env.REAL: 20.0, Env.PAPER: 2.0}
"""The limits before that notice (still what python-kis and the official samples pace for)."""

TOKEN_LIFETIME_S = 86_400
"""Access token validity for individuals: 1 day (§2.1)."""
TOKEN_REUSE_WINDOW_S = 6 * 3600
"""A ``tokenP`` request within 6 hours of issuance returns the same token (§2.1)."""
TOKEN_ISSUE_INTERVAL_S = 60
"""At most one ``tokenP`` issuance per minute per app key, else ``EGW00133`` / HTTP 403 (§2.1)."""
TOKEN_EXPIRY_FORMAT = "%Y-%m-%d %H:%M:%S"
"""``access_token_token_expired`` format, KST (§2.1)."""

WS_MAX_REGISTRATIONS = 41
"""Registrations per WebSocket session, notices included; the 42nd gets ``OPSP0008`` (§4.7)."""
WS_CLIENT_REGISTRATION_BUDGET = 40
"""What the official samples and python-kis allow themselves (one below the server cap)."""

# --------------------------------------------------------------------------------------------
# 4. Order types and exchanges (§3.3)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrdDvsn:
    """One ``ORD_DVSN`` code; ``paper`` is None where no source settles paper support."""

    code: str
    name: str
    gloss: str
    krx: bool
    nxt: bool
    sor: bool
    paper: bool | None
    market_price: bool = False
    """Sent with ``ORD_UNPR "0"`` (market-type order)."""
    condition: str = "0"
    """``ODER_COND`` in notices: 0 none, 1 IOC, 2 FOK."""


ORD_DVSN: Mapping[str, OrdDvsn] = {o.code: o for o in (
    OrdDvsn("00", "지정가", "limit", True, True, True, True),
    OrdDvsn("01", "시장가", "market", True, False, True, True, market_price=True),
    OrdDvsn("02", "조건부지정가", "conditional limit (market at the closing auction)", True, False, False, True),
    OrdDvsn("03", "최유리지정가", "best limit", True, True, True, True, market_price=True),
    OrdDvsn("04", "최우선지정가", "top-priority limit", True, True, True, True, market_price=True),
    OrdDvsn("05", "장전 시간외", "pre-market off-hours at the previous close", True, False, False, False,
            market_price=True),
    OrdDvsn("06", "장후 시간외", "post-market off-hours at the close", True, False, False, False, market_price=True),
    OrdDvsn("07", "시간외 단일가", "after-hours single price", True, False, False, False),
    OrdDvsn("11", "IOC지정가", "IOC limit", True, True, True, False, condition="1"),
    OrdDvsn("12", "FOK지정가", "FOK limit", True, True, True, False, condition="2"),
    OrdDvsn("13", "IOC시장가", "IOC market", True, True, True, False, market_price=True, condition="1"),
    OrdDvsn("14", "FOK시장가", "FOK market", True, True, True, False, market_price=True, condition="2"),
    OrdDvsn("15", "IOC최유리", "IOC best", True, True, True, False, market_price=True, condition="1"),
    OrdDvsn("16", "FOK최유리", "FOK best", True, True, True, False, market_price=True, condition="2"),
    OrdDvsn("21", "중간가", "mid-price", True, True, False, None),
    OrdDvsn("22", "스톱지정가", "stop-limit (CNDT_PRIC)", True, True, False, None),
    OrdDvsn("23", "중간가IOC", "mid-price IOC", True, True, False, None, condition="1"),
    OrdDvsn("24", "중간가FOK", "mid-price FOK", True, True, False, None, condition="2"),
)}
PAPER_ORD_DVSN: frozenset[str] = frozenset(c for c, o in ORD_DVSN.items() if o.paper)
"""``00``–``04``: the order types 모의투자 accepts ([PK] order map; §3.3)."""

EXCHANGES: tuple[str, ...] = ("KRX", "NXT", "SOR")
PAPER_EXCHANGES: frozenset[str] = frozenset({"KRX"})
"""``EXCG_ID_DVSN_CD`` (blank = KRX); paper is KRX only (§3.2)."""

SELL = "01"
BUY = "02"
"""``SLL_BUY_DVSN_CD`` / notice ``SELN_BYOV_CLS``: 01 sell (매도), 02 buy (매수)."""
RVSE = "01"
CNCL = "02"
"""``RVSE_CNCL_DVSN_CD``: 01 정정 (revise), 02 취소 (cancel)."""

PRICE_SIGN_UPPER_LIMIT = "1"
PRICE_SIGN_UP = "2"
PRICE_SIGN_FLAT = "3"
PRICE_SIGN_LOWER_LIMIT = "4"
PRICE_SIGN_DOWN = "5"
"""``PRDY_VRSS_SIGN`` (전일 대비 부호) values (§3.9, §4.8)."""

# --------------------------------------------------------------------------------------------
# 5. Messages (§1.4, §2, §5.2, §5.3) and WebSocket control codes (§4.3)
# --------------------------------------------------------------------------------------------

PAPER_PREFIX = "모의투자 "


@dataclass(frozen=True)
class Message:
    """A business or gateway message with its real and paper code/text.

    ``http``: status it arrives with (200 for business answers, 500 for gateway errors, 403 for
    OAuth errors). ``confirmed`` is False where PROTOCOL.md has no capture for that code or text:
    a client must compare on ``rt_cd`` and trimmed substrings there, never on the exact code.
    Codes starting ``EMU`` are the emulator's own, used where no source names a code at all.
    """

    key: str
    real_code: str
    real_text: str
    paper_code: str
    paper_text: str
    rt_cd: str = "1"
    http: int = 200
    confirmed: bool = True

    def code(self, env: Env | str) -> str:
        return self.paper_code if Env(env) is Env.PAPER else self.real_code

    def text(self, env: Env | str) -> str:
        return self.paper_text if Env(env) is Env.PAPER else self.real_text

    def envelope(self, env: Env | str, **extra: object) -> dict[str, object]:
        """``{"rt_cd", "msg_cd", "msg1"}`` plus ``extra`` (e.g. ``output``)."""
        body: dict[str, object] = {"rt_cd": self.rt_cd, "msg_cd": self.code(env), "msg1": self.text(env)}
        body.update(extra)
        return body


def _same(key: str, code: str, text: str, rt_cd: str = "1", http: int = 200, confirmed: bool = True,
          paper_prefix: bool = False) -> Message:
    return Message(key, code, text, code, (PAPER_PREFIX + text) if paper_prefix else text, rt_cd, http, confirmed)


@dataclass(frozen=True)
class CodeChoice:
    """One candidate (``msg_cd``, ``msg1``) for a real-host business rejection, with its evidence."""

    code: str
    text: str
    evidence: str


BUSINESS_CODE_SOURCES: tuple[str, ...] = ("real_host", "third_party")
DEFAULT_BUSINESS_CODE_SOURCE = "real_host"
REAL_BUSINESS_CODES: Mapping[str, Mapping[str, CodeChoice]] = {
    "tick_error": {
        "real_host": CodeChoice("APBK0506", "주식주문호가단위 오류입니다.",
                                "[3P] production logs and incident notes of several public trading bots on the "
                                "real host (2026): off-tick limit prices rejected with APBK0506 (호가단위 오류)"),
        "third_party": CodeChoice("40030000", "주식주문호가단위 오류입니다.",
                                  "the paper code 40030000 [3P several] reused for real; real text per §5.3"),
    },
    "market_closed": {
        "real_host": CodeChoice("APBK0918", "장운영시간이 아닙니다.",
                                "[3P] real-host order logs: APBK0918 \"장운영시간이 아닙니다.(단,주간거래시간이면 …)\" "
                                "outside the order window"),
        "third_party": CodeChoice("APBK0919", "장종료 입니다.",
                                  "[PK] maps APBK0919 to \"market not open\"; text from the paper capture"),
    },
    "market_not_open": {
        "real_host": CodeChoice("APBK0918", "장운영시간이 아닙니다.", "as market_closed: one code for both sides"),
        "third_party": CodeChoice("APBK0919", "장시작전 입니다.",
                                  "[PK] maps APBK0919 to \"market not open\"; text from the paper capture"),
    },
    "sell_qty_exceeded": {
        "real_host": CodeChoice("APBK0400", "주문 가능한 수량을 초과했습니다.",
                                "[3P] real-host logs of several public bots: selling more than is held answers "
                                "APBK0400 \"주문 가능한 수량을 초과했습니다.\""),
        "third_party": CodeChoice("EMU00002", "주문가능수량을 초과 했습니다.",
                                  "the emulator's own code from before (no source named one)"),
    },
}
"""Real-host codes where sources disagree — the ONE table behind ``MESSAGES`` and the emulator's
``rest.business_codes`` switch. Default: the real-host evidence (issue 10); ``third_party`` restores the
codes of third-party captures/clients. Paper codes are not in dispute (§5.3 captures) and stay fixed.
Clients must not rely on either: ``known_codes`` lists every code a reason may arrive with."""


def _business(key: str, paper_code: str, paper_text: str) -> Message:
    choice = REAL_BUSINESS_CODES[key][DEFAULT_BUSINESS_CODE_SOURCE]
    return Message(key, choice.code, choice.text, paper_code, paper_text, confirmed=False)


MESSAGES: Mapping[str, Message] = {m.key: m for m in (
    # success (§1.4)
    _same("inquiry_done", "KIOK0510", "조회가 완료되었습니다", rt_cd="0"),
    _same("inquiry_more", "KIOK0500", "조회가 계속됩니다..다음버튼을 Click 하십시오.", rt_cd="0"),
    _same("inquiry_last", "KIOK0460", "조회 되었습니다. (마지막 자료)", rt_cd="0"),
    _same("quote_ok", "MCA00000", "정상처리 되었습니다!", rt_cd="0"),
    Message("order_buy_ok", "APBK0013", "주문 전송 완료 되었습니다.", "40600000", "모의투자 매수주문이 완료 되었습니다.", "0"),
    Message("order_sell_ok", "APBK0013", "주문 전송 완료 되었습니다.", "40590000", "모의투자 매도주문이 완료 되었습니다.", "0"),
    Message("revise_ok", "APBK0013", "주문 전송 완료 되었습니다.", "40620000", "모의투자 정정주문이 완료 되었습니다.", "0"),
    Message("cancel_ok", "APBK0013", "주문 전송 완료 되었습니다.", "40630000", "모의투자 취소주문이 완료 되었습니다.", "0"),
    # business rejections, HTTP 200 (§5.3). Real codes for these are unconfirmed: the paper code is reused.
    _business("tick_error", "40030000", "모의투자 주문처리가 안되었습니다(호가단위 오류)"),
    Message("band_error", "40270000", "상/하한가 오류", "40270000", "모의투자 상/하한가 오류", confirmed=False),
    Message("insufficient_cash", "APBK0952", "주문가능금액을 초과 했습니다", "40250000",
            "모의투자 주문가능금액이 부족합니다.", confirmed=False),
    _same("nothing_to_revise", "40330000", "정정/취소할 수량이 없습니다.", paper_prefix=True),
    _business("market_closed", "40580000", "모의투자 장종료 입니다."),
    _business("market_not_open", "40570000", "모의투자 장시작전 입니다."),
    _same("paper_unsupported", "90000000", "모의투자에서는 해당업무가 제공되지 않습니다."),
    Message("stock_not_found", "APBK0656", "해당 종목정보가 없습니다.", "APBK0656",
            "모의투자 주문처리가 안되었습니다(매매불가 종목)", confirmed=False),
    _same("bad_quantity", "EMU00001", "주문 수량을 확인해주세요.", confirmed=False),
    _business("sell_qty_exceeded", "EMU00002", "모의투자 주문가능수량을 초과 했습니다."),
    _same("rvsecncl_qty_exceeded", "EMU00003", "정정/취소 가능수량을 초과 했습니다.", confirmed=False,
          paper_prefix=True),
    _same("ord_dvsn_unsupported", "EMU00004", "에뮬레이터가 지원하지 않는 주문구분입니다.", confirmed=False),
    _same("ccld_changed", "EMU00005", "조회이후에 자료가 변경되었습니다.(다시 조회하세요)", confirmed=False),
    _same("emulator_unsupported", "EMU00006", "에뮬레이터가 지원하지 않는 업무입니다.", confirmed=False),
    _same("no_data", "EMU00008", "조회할 자료가 없습니다.", rt_cd="7", confirmed=False),
    _same("bad_request", "EMU00400", "요청 형식이 올바르지 않습니다.", http=400, confirmed=False),
    # gateway errors, HTTP 500 with the same envelope (§1.4, §5.1, §5.2)
    _same("rate_limited", "EGW00201", "초당 거래건수를 초과하였습니다.", http=500),
    _same("token_expired", "EGW00123", "기간이 만료된 token 입니다.", http=500),
    _same("token_invalid", "EGW00121", "유효하지 않은 token 입니다.", http=500, confirmed=False),
    _same("appkey_invalid", "EGW00103", "유효하지 않은 AppKey입니다.", http=500),
    _same("appsecret_invalid", "EGW00105", "유효하지 않은 AppSecret입니다.", http=500, confirmed=False),
    _same("paper_key_on_real", "EGW02004", "실전투자 도메인은 모의투자 앱키로 호출하실 수 없습니다.", http=500),
    _same("not_paper_tr", "EGW02006", "모의투자 TR 이 아닙니다.", http=500),
    _same("real_key_on_paper", "EGW02007", "해당 앱키는 모의투자용 앱키가 아닙니다", http=500, confirmed=False),
    _same("service_not_found", "MCA00124", "해당 서비스를 찾을수 없습니다.", http=500, confirmed=False),
    _same("gateway_error", "EGW00203", "OPS라우팅 중 오류가 발생했습니다.", http=500, confirmed=False),
    _same("ledger_rate_limited", "EGW00215", "원장에서 허용 가능한 초당 거래건수를 초과하였습니다.", http=500),
)}


def message(key: str) -> Message:
    return MESSAGES[key]


def business_messages(source: str = DEFAULT_BUSINESS_CODE_SOURCE,
                      overrides: Mapping[str, tuple[str, str]] | None = None) -> dict[str, Message]:
    """``MESSAGES`` with the real codes of ``REAL_BUSINESS_CODES`` taken from ``source``, then any
    per-reason ``overrides`` (``{key: (msg_cd, msg1)}``, real env only) — what the emulator answers."""
    from dataclasses import replace

    if source not in BUSINESS_CODE_SOURCES:
        raise ValueError(f"business code source must be one of {BUSINESS_CODE_SOURCES}, got {source!r}")
    out = dict(MESSAGES)
    for key, choices in REAL_BUSINESS_CODES.items():
        c = choices[source]
        out[key] = replace(out[key], real_code=c.code, real_text=c.text)
    for key, (code, text) in (overrides or {}).items():
        if key not in out:
            raise ValueError(f"unknown message key {key!r}")
        out[key] = replace(out[key], real_code=code, real_text=text)
    return out


def known_codes(key: str) -> frozenset[str]:
    """Every ``msg_cd`` a reason may arrive with (all real-host candidates and the paper code)."""
    m = MESSAGES[key]
    codes = {m.real_code, m.paper_code}
    codes.update(c.code for c in REAL_BUSINESS_CODES.get(key, {}).values())
    return frozenset(codes)


def input_invalid(field: str) -> dict[str, str]:
    """``OPSQ2001`` input validation answer, ``rt_cd "2"`` ([ISS] python-kis #81; §5.3)."""
    return {"rt_cd": "2", "msg_cd": "OPSQ2001", "msg1": f"ERROR : INPUT INVALID_CHECK_{field.upper()}"}


def oauth_error(code: str, description: str) -> dict[str, str]:
    """OAuth endpoints answer errors flat, without the ``rt_cd`` envelope (§2.1)."""
    return {"error_description": description, "error_code": code}


OAUTH_TOKEN_THROTTLED = ("EGW00133", "접근토큰 발급 잠시 후 다시 시도하세요(1분당 1회)")
"""HTTP 403 on a second ``tokenP`` within a minute (§2.1)."""
OAUTH_APPKEY_INVALID = ("EGW00103", "유효하지 않은 AppKey입니다.")
OAUTH_APPSECRET_INVALID = ("EGW00105", "유효하지 않은 AppSecret입니다.")
"""Code/text not in PROTOCOL.md (unconfirmed)."""
OAUTH_TOKEN_INVALID = ("EGW00121", "유효하지 않은 token 입니다.")
REVOKE_OK = {"code": 200, "message": "접근토큰 폐기에 성공하였습니다"}


@dataclass(frozen=True)
class WsCode:
    """A WebSocket control answer code (§4.3)."""

    code: str
    rt_cd: str
    msg1: str


WS_SUBSCRIBED = WsCode("OPSP0000", "0", "SUBSCRIBE SUCCESS")
WS_UNSUBSCRIBED = WsCode("OPSP0001", "0", "UNSUBSCRIBE SUCCESS")
WS_ALREADY_SUBSCRIBED = WsCode("OPSP0002", "1", "ALREADY IN SUBSCRIBE")
WS_NOT_SUBSCRIBED = WsCode("OPSP0003", "1", "UNSUBSCRIBE ERROR(not found!)")
WS_INTERNAL_ERROR = WsCode("OPSP0007", "1", "SUBSCRIBE ERROR")
WS_MAX_SUBSCRIBE = WsCode("OPSP0008", "1", "MAX SUBSCRIBE OVER")
WS_INVALID_APPROVAL = WsCode("OPSP0011", "1", "invalid approval : NOT FOUND")
WS_APPKEY_IN_USE = WsCode("OPSP8996", "9", "ALREADY IN USE appkey")
WS_MALFORMED = WsCode("EMU00007", "1", "JSON PARSING ERROR")
"""The emulator's answer to a frame that is not a usable JSON object (no source shows KIS's; unconfirmed)."""
WS_CODES: Mapping[str, WsCode] = {c.code: c for c in (
    WS_SUBSCRIBED, WS_UNSUBSCRIBED, WS_ALREADY_SUBSCRIBED, WS_NOT_SUBSCRIBED, WS_INTERNAL_ERROR, WS_MAX_SUBSCRIBE,
    WS_INVALID_APPROVAL, WS_APPKEY_IN_USE, WS_MALFORMED)}
"""msg1 texts of 0003/0007 are not in any source (unconfirmed); compare on ``msg_cd``."""

WS_TR_TYPE_SUBSCRIBE = "1"
WS_TR_TYPE_UNSUBSCRIBE = "2"
PINGPONG = "PINGPONG"

# --------------------------------------------------------------------------------------------
# 6. WebSocket data frames (§4.4 – §4.10)
# --------------------------------------------------------------------------------------------

WS_TR_TRADE = "H0STCNT0"
WS_TR_BOOK = "H0STASP0"
WS_TR_NOTICE: Mapping[Env, str] = {Env.REAL: "H0STCNI0", Env.PAPER: "H0STCNI9"}
WS_TR_MARKET_STATUS = "H0STMKO0"
"""장운영정보 (market status, KRX): one frame per code when a VI starts or ends or a halt begins/ends
([OTA] ``domestic_stock_functions_ws.py`` ``market_status_krx``); real only per [OTA] legacy README."""

H0STCNT0_FIELDS: tuple[str, ...] = (
    "MKSC_SHRN_ISCD", "STCK_CNTG_HOUR", "STCK_PRPR", "PRDY_VRSS_SIGN", "PRDY_VRSS", "PRDY_CTRT",
    "WGHN_AVRG_STCK_PRC", "STCK_OPRC", "STCK_HGPR", "STCK_LWPR", "ASKP1", "BIDP1", "CNTG_VOL", "ACML_VOL",
    "ACML_TR_PBMN", "SELN_CNTG_CSNU", "SHNU_CNTG_CSNU", "NTBY_CNTG_CSNU", "CTTR", "SELN_CNTG_SMTN",
    "SHNU_CNTG_SMTN", "CCLD_DVSN", "SHNU_RATE", "PRDY_VOL_VRSS_ACML_VOL_RATE", "OPRC_HOUR",
    "OPRC_VRSS_PRPR_SIGN", "OPRC_VRSS_PRPR", "HGPR_HOUR", "HGPR_VRSS_PRPR_SIGN", "HGPR_VRSS_PRPR", "LWPR_HOUR",
    "LWPR_VRSS_PRPR_SIGN", "LWPR_VRSS_PRPR", "BSOP_DATE", "NEW_MKOP_CLS_CODE", "TRHT_YN", "ASKP_RSQN1",
    "BIDP_RSQN1", "TOTAL_ASKP_RSQN", "TOTAL_BIDP_RSQN", "VOL_TNRT", "PRDY_SMNS_HOUR_ACML_VOL",
    "PRDY_SMNS_HOUR_ACML_VOL_RATE", "HOUR_CLS_CODE", "MRKT_TRTM_CLS_CODE", "VI_STND_PRC",
)
"""Real-time trade (체결가), KRX, same TR on real and paper: 46 fields (§4.8)."""

H0STASP0_FIELDS: tuple[str, ...] = (
    ("MKSC_SHRN_ISCD", "BSOP_HOUR", "HOUR_CLS_CODE")
    + tuple(f"ASKP{i}" for i in range(1, 11)) + tuple(f"BIDP{i}" for i in range(1, 11))
    + tuple(f"ASKP_RSQN{i}" for i in range(1, 11)) + tuple(f"BIDP_RSQN{i}" for i in range(1, 11))
    + ("TOTAL_ASKP_RSQN", "TOTAL_BIDP_RSQN", "OVTM_TOTAL_ASKP_RSQN", "OVTM_TOTAL_BIDP_RSQN", "ANTC_CNPR",
       "ANTC_CNQN", "ANTC_VOL", "ANTC_CNTG_VRSS", "ANTC_CNTG_VRSS_SIGN", "ANTC_CNTG_PRDY_CTRT", "ACML_VOL",
       "TOTAL_ASKP_RSQN_ICDC", "TOTAL_BIDP_RSQN_ICDC", "OVTM_TOTAL_ASKP_ICDC", "OVTM_TOTAL_BIDP_ICDC",
       "STCK_DEAL_CLS_CODE")
)
"""Real-time 10-level book (호가), KRX: 59 fields per [OTA] (§4.9)."""
H0STASP0_EXTRA_FIELDS: tuple[str, ...] = ("KMID_PRC", "KMID_TOTAL_RSQN", "KMID_CLS_CODE")
"""Three trailing mid-price fields of a 2026 real capture (62 in all); parse 0–58 and tolerate these."""

H0STCNI0_FIELDS: tuple[str, ...] = (
    "CUST_ID", "ACNT_NO", "ODER_NO", "OODER_NO", "SELN_BYOV_CLS", "RCTF_CLS", "ODER_KIND", "ODER_COND",
    "STCK_SHRN_ISCD", "CNTG_QTY", "CNTG_UNPR", "STCK_CNTG_HOUR", "RFUS_YN", "CNTG_YN", "ACPT_YN", "BRNC_NO",
    "ODER_QTY", "ACNT_NAME", "ORD_COND_PRC", "ORD_EXG_GB", "POPUP_YN", "FILLER", "CRDT_CLS", "CRDT_LOAN_DATE",
    "CNTG_ISNM40", "ODER_PRC",
)
"""Real execution notice (체결통보), current official 26-field layout (§4.10, fixed 2026-02-12)."""

H0STCNI9_FIELDS: tuple[str, ...] = H0STCNI0_FIELDS[:18] + (
    "CNTG_ISNM", "CRDT_CLS", "CRDT_LOAN_DATE", "CNTG_ISNM40", "ODER_PRC",
)
"""Older 23-field layout (still on paper): fields 0–17 as in H0STCNI0, then this tail (§4.10).
Paper captures carry a merged exchange+popup flag such as ``1Y`` at #18 instead of a name."""

H0STMKO0_FIELDS: tuple[str, ...] = (
    "MKSC_SHRN_ISCD", "TRHT_YN", "TR_SUSP_REAS_CNTT", "MKOP_CLS_CODE", "ANTC_MKOP_CLS_CODE", "MRKT_TRTM_CLS_CODE",
    "DIVI_APP_CLS_CODE", "ISCD_STAT_CLS_CODE", "VI_CLS_CODE", "OVTM_VI_CLS_CODE", "EXCH_CLS_CODE",
)
"""Market status (장운영정보) frame: 11 fields per the KIS catalogue (spec CSV ``market_status_krx``)."""
VI_NONE, VI_STATIC, VI_DYNAMIC, VI_BOTH = "N", "1", "2", "3"
"""``VI_CLS_CODE``: N none, 1 static, 2 dynamic, 3 both — **unconfirmed** value set (the catalogue only names
the field); clients should treat anything but ``N``/``0``/empty as "VI in force"."""
ISCD_STAT_HALTED = "58"
ISCD_STAT_ADMIN = "51"
ISCD_STAT_NORMAL = "55"
"""``iscd_stat_cls_code`` (종목상태구분코드): 51 관리종목, 58 거래정지, 55 신용가능 (normal) — as KIS's
``inquire-price`` documentation lists them (unconfirmed in captures)."""

NOTICE_COMMON_FIELDS = 18
"""Fields 0–17 have the same meaning in both layouts: parse those by position (§4.10)."""

FIELD_COUNTS: Mapping[str, int] = {
    WS_TR_TRADE: len(H0STCNT0_FIELDS),
    WS_TR_BOOK: len(H0STASP0_FIELDS),
    "H0STCNI0": len(H0STCNI0_FIELDS),
    "H0STCNI9": len(H0STCNI9_FIELDS),
    WS_TR_MARKET_STATUS: len(H0STMKO0_FIELDS),
}

NOTICE_FIELD_WIDTHS: Mapping[str, int] = {
    "ACNT_NO": 10, "ODER_NO": 10, "CNTG_QTY": 10, "CNTG_UNPR": 9, "BRNC_NO": 5, "ODER_QTY": 9, "ODER_PRC": 9,
}
"""Zero-padded widths of numeric notice fields ([WB] examples, §4.10)."""

# notice flag values (§4.10)
RFUS_ACCEPTED, RFUS_REFUSED = "0", "1"
CNTG_ACK, CNTG_FILL = "1", "2"
ACPT_RECEIVED, ACPT_CONFIRMED, ACPT_KILLED = "1", "2", "3"
RCTF_NORMAL, RCTF_REVISE, RCTF_CANCEL = "0", "1", "2"
ORD_EXG_KRX = "1"

FIELD_SEPARATOR = "^"
FRAME_SEPARATOR = "|"


@dataclass(frozen=True)
class Frame:
    """One data frame ``<enc>|<TR_ID>|<count>|<payload>``; ``payload`` still encrypted when ``encrypted``."""

    encrypted: bool
    tr_id: str
    count: int
    payload: str


def is_control_message(text: str) -> bool:
    """JSON control messages (acks, PINGPONG) start with ``{``; data frames with ``0``/``1`` (§4.4)."""
    return text.lstrip().startswith("{")


def encode_frame(tr_id: str, records: Sequence[Sequence[object]]) -> str:
    """Plain frame with ``len(records)`` records concatenated by ``^`` (§4.4)."""
    if not records:
        raise ValueError("a frame needs at least one record")
    if len(records) > 999:
        raise ValueError("a frame holds at most 999 records (3-digit count)")
    payload = FIELD_SEPARATOR.join(FIELD_SEPARATOR.join(str(v) for v in rec) for rec in records)
    return f"0|{tr_id}|{len(records):03d}|{payload}"


def encode_encrypted_frame(tr_id: str, record: Sequence[object], key: str, iv: str) -> str:
    """Encrypted one-record frame ``1|TR|001|<base64 AES-256-CBC>`` as notices are sent (§4.10)."""
    plaintext = FIELD_SEPARATOR.join(str(v) for v in record)
    return f"1|{tr_id}|001|{aes_encrypt(plaintext, key, iv)}"


def parse_frame(text: str) -> Frame:
    """Split a data frame into its four parts; ``ValueError`` on control JSON or a malformed frame."""
    if is_control_message(text):
        raise ValueError("control message, not a data frame")
    parts = text.split(FRAME_SEPARATOR, 3)
    if len(parts) != 4 or parts[0] not in ("0", "1") or not parts[2].isdigit():
        raise ValueError(f"malformed frame: {text[:40]!r}")
    return Frame(parts[0] == "1", parts[1], int(parts[2]), parts[3])


def split_records(payload: str, count: int, field_count: int | None = None) -> list[list[str]]:
    """Chunk a ``^``-joined payload into ``count`` records.

    Tolerant as the spec asks (§4.9, §4.10): when the field total divides evenly by ``count`` the
    records are chunked by that size, so a 62-field book or a 26-field notice parse as well as the
    59/23 layouts. ``field_count`` is only the fallback when the total is not a multiple of ``count``.
    """
    fields = payload.split(FIELD_SEPARATOR)
    if count <= 0:
        raise ValueError("count must be positive")
    if len(fields) % count == 0:
        size = len(fields) // count
    elif field_count and len(fields) >= field_count * count:
        size = field_count
    else:
        raise ValueError(f"{len(fields)} fields cannot be split into {count} records")
    return [fields[i * size:(i + 1) * size] for i in range(count)]


def record_dict(names: Sequence[str], values: Sequence[str]) -> dict[str, str]:
    """Name the leading values (extra trailing values are kept under ``_extra_<i>``)."""
    out = dict(zip(names, values))
    for i, v in enumerate(values[len(names):]):
        out[f"_extra_{i}"] = v
    return out


# ---- AES-256-CBC (§4.5) ---------------------------------------------------------------------

AES_KEY_LENGTH = 32
AES_IV_LENGTH = 16


def _cipher(key: str, iv: str):  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    k, v = key.encode("utf-8"), iv.encode("utf-8")
    if len(k) != AES_KEY_LENGTH or len(v) != AES_IV_LENGTH:
        raise ValueError("AES-256-CBC needs a 32-byte key and a 16-byte iv (UTF-8 text as sent in the ack)")
    return Cipher(algorithms.AES(k), modes.CBC(v))


def aes_encrypt(plaintext: str, key: str, iv: str) -> str:
    """UTF-8 → PKCS#7 → AES-256-CBC → base64, the inverse of what clients do (§4.5)."""
    from cryptography.hazmat.primitives import padding

    padder = padding.PKCS7(128).padder()
    data = padder.update(plaintext.encode("utf-8")) + padder.finalize()
    enc = _cipher(key, iv).encryptor()
    return base64.b64encode(enc.update(data) + enc.finalize()).decode("ascii")


def aes_decrypt(b64: str, key: str, iv: str) -> str:
    """base64 → AES-256-CBC → strip PKCS#7 → UTF-8. Key and iv are used as text, not hex (§4.5)."""
    from cryptography.hazmat.primitives import padding

    dec = _cipher(key, iv).decryptor()
    data = dec.update(base64.b64decode(b64)) + dec.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return (unpadder.update(data) + unpadder.finalize()).decode("utf-8")


# ---- control messages (§4.2, §4.3, §4.6) ----------------------------------------------------


def subscribe_request(approval_key: str, tr_id: str, tr_key: str, subscribe: bool = True,
                      custtype: str = "P") -> dict[str, object]:
    """Client → server registration message (``tr_type`` 1 register, 2 unregister)."""
    return {"header": {"approval_key": approval_key, "custtype": custtype,
                       "tr_type": WS_TR_TYPE_SUBSCRIBE if subscribe else WS_TR_TYPE_UNSUBSCRIBE,
                       "content-type": "utf-8"},
            "body": {"input": {"tr_id": tr_id, "tr_key": tr_key}}}


def control_answer(tr_id: str, tr_key: str, code: WsCode, *, encrypt: bool = False, key: str | None = None,
                   iv: str | None = None) -> dict[str, object]:
    """Server → client answer to a registration; success acks carry ``output.iv``/``output.key``."""
    body: dict[str, object] = {"rt_cd": code.rt_cd, "msg_cd": code.code, "msg1": code.msg1}
    if key is not None and iv is not None:
        body["output"] = {"iv": iv, "key": key}
    return {"header": {"tr_id": tr_id, "tr_key": tr_key, "encrypt": "Y" if encrypt else "N"}, "body": body}


def pingpong_message(datetime_yyyymmddhhmmss: str) -> str:
    """The server's heartbeat text; clients echo it back verbatim (§4.6)."""
    return json.dumps({"header": {"tr_id": PINGPONG, "datetime": datetime_yyyymmddhhmmss}})


def zero_pad(value: int | str, width: int) -> str:
    """Zero-padded decimal as notices carry it (``1`` → ``0000000001`` for width 10)."""
    return str(int(value)).zfill(width)


def same_order_number(a: str | int, b: str | int) -> bool:
    """Order numbers are compared numerically: padding differs between REST, notices and envs (§7.1)."""
    try:
        return int(str(a).strip() or "0") == int(str(b).strip() or "0")
    except ValueError:
        return False


def notice_tr_for(env: Env | str) -> str:
    return WS_TR_NOTICE[Env(env)]


def notice_fields_for(tr_id: str) -> tuple[str, ...]:
    return H0STCNI0_FIELDS if tr_id == "H0STCNI0" else H0STCNI9_FIELDS


def iter_tr_ids() -> Iterable[TrInfo]:
    return TR_INDEX.values()
