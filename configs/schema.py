"""The one config file of a run, validated by pydantic: the only place a mode is chosen.

``broker.mode`` (backtest | paper | live) is the single switch between backtrader's simulator and
KIS; every other section means the same thing in every mode. Unknown keys are errors (a typo must
not silently fall back to a default), and every error names the key, the value and what is allowed
(``ConfigError``).

Relative paths inside a config file are resolved against the folder holding that file, so a
config works from any working directory.
"""

from __future__ import annotations

import enum
import re
import types
import typing
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import (BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, ValidationInfo, field_validator,
                      model_validator)

from configs.database import check_db_url
from configs.errors import InputError
from configs.files import load_yaml, shown
from market.calendar import CALENDAR_END, CALENDAR_START
from market.ticks import Market

CODE_PATTERN = r"^[0-9A-Z]{6}$"
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"


_NUMBER_KINDS = frozenset({int, float, Decimal})
_TIME_KINDS = frozenset({date, datetime, time})


def _scalar_kinds(annotation: Any) -> frozenset[type]:
    """The scalar types a field annotation admits (Optional/Union/Annotated/Literal unwrapped);
    containers and models count as ``object`` (nothing to say about them here)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _scalar_kinds(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return frozenset().union(*(_scalar_kinds(a) for a in typing.get_args(annotation)))
    if origin is Literal:
        return frozenset(type(v) for v in typing.get_args(annotation))
    if origin is not None or annotation is Any:
        return frozenset({object})
    if isinstance(annotation, type):
        if issubclass(annotation, (enum.Enum, Path)):
            return frozenset({str})
        if annotation is type(None):
            return frozenset()
        if annotation in _NUMBER_KINDS or annotation in _TIME_KINDS or annotation in (str, bool):
            return frozenset({annotation})
    return frozenset({object})


class StrictModel(BaseModel):
    """Base for every config section: unknown keys are refused, values are not coerced silently.

    Pydantic's lax mode turns ``True`` into 1, ``"0777"`` into 777 and an integer into a date (seconds
    since 1970); YAML 1.1 would have turned ``1:30:00`` into 5,400 before pydantic saw it (configs/files.py
    stops that). ``_no_silent_coercion`` runs before every field of every section and refuses a value whose
    *kind* differs from the field's: a boolean for a number, text for a number, a number for a date or a
    time. What remains of lax mode is harmless (``"2025-01-02"`` → a date, ``10`` → ``10.0``,
    ``"KOSPI"`` → the enum), so this is strict mode wherever a coercion could change meaning.
    """

    model_config = ConfigDict(extra="forbid", validate_default=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_silent_coercion(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        if field is None or value is None:
            return value
        kinds = _scalar_kinds(field.annotation)
        if object in kinds:
            return value
        numeric = bool(kinds & _NUMBER_KINDS)
        if isinstance(value, bool):
            if bool not in kinds:
                raise ValueError(f"{str(value).lower()} is a boolean; expected "
                                 + ("a number" if numeric else "a value of the field's kind"))
            return value
        if bool in kinds and not (kinds - {bool}) and not isinstance(value, bool):
            raise ValueError(f"{value!r} is not a boolean; write true or false (yes/no/on/off/1/0 are refused: "
                             "YAML versions disagree on them)")
        if isinstance(value, str) and numeric and not (kinds & {str}):
            raise ValueError(f"{value!r} is text, not a number (write digits only: no quotes, leading zeros, "
                             "colons or words)")
        if isinstance(value, (int, float, Decimal)) and kinds & _TIME_KINDS and not (kinds & _NUMBER_KINDS):
            raise ValueError(f"{value!r} is a number, not a date or time (write YYYY-MM-DD)")
        return value


class DemoDataConfig(StrictModel):
    """The deterministic synthetic market (offline default; always labelled synthetic)."""

    seed: int = Field(20240101, ge=0, le=2**63 - 1)
    codes: int = Field(30, ge=1, le=5000, description="number of synthetic codes (2,500 ≈ the whole KRX market)")
    start: date = date(2021, 1, 4)
    end: date = date(2025, 12, 30)

    @field_validator("start", "end")
    @classmethod
    def _in_calendar(cls, d: date) -> date:
        return check_calendar_range(d)

    @model_validator(mode="after")
    def _ordered(self) -> "DemoDataConfig":
        if self.end <= self.start:
            raise ValueError(f"end {self.end} must be after start {self.start}")
        return self


class UniverseRule(StrictModel):
    """A universe by rule, resolved against the stock master (``feeds/universe.py``): written in a config
    as ``data.universe: {market: KOSPI, exclude: [etf, spac, preferred, 관리종목], min_market_cap: 100000000000}``."""

    market: list[Literal["KOSPI", "KOSDAQ", "KONEX"]] | None = Field(
        None, description="listing markets to keep (one name or a list); default: all")
    exclude: list[str] = Field(default_factory=list,
                               description="kinds (etf, etn, spac, preferred, reit, fund, ...) and designations "
                                           "(관리종목/admin_issue, 거래정지/halted, 투자경고/warning, ...) to leave out")
    min_market_cap: int | None = Field(None, ge=0, le=10**16, description="KRW, on the rule's day (close x shares)")
    as_of: date | None = Field(None, description="the day designations and market caps are taken on; "
                                                 "default: data.start (else the newest data)")

    @field_validator("as_of")
    @classmethod
    def _in_calendar(cls, d: date | None) -> date | None:
        return None if d is None else check_calendar_range(d)

    @field_validator("market", mode="before")
    @classmethod
    def _one_or_list(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("exclude")
    @classmethod
    def _known_tags(cls, tags: list[str]) -> list[str]:
        from feeds.universe import EXCLUDE_TAGS   # feeds imports this module: import late

        bad = [t for t in tags if t not in EXCLUDE_TAGS]
        if bad:
            raise ValueError(f"unknown exclude tag(s) {bad}; allowed: {', '.join(sorted(EXCLUDE_TAGS))}")
        return tags


class DataConfig(StrictModel):
    """Where bars come from and which slice of them a run uses."""

    source: Literal["demo", "csv", "cache"] = "demo"
    path: Path | None = Field(None, description="csv: folder of CODE.csv files")
    cache_url: str = Field("sqlite:///data/cache/bars.sqlite",
                           description="SQLAlchemy URL of the bar cache (source: cache)")
    timeframe: Literal["daily", "5min", "1min"] = "daily"
    start: date | None = None
    end: date | None = None
    universe: list[str] | None = Field(None, description="codes to load; all available when omitted; or a rule "
                                                         "(a mapping: see universe_rule)")
    universe_rule: UniverseRule | None = Field(
        None, description="a universe by rule; written as data.universe: {market: ..., exclude: [...], ...}")
    markets_file: Path | None = Field(
        None, description="CSV with columns code,market (e.g. shared/data/krx/tickers.csv)")
    default_market: Market = Market.KOSPI
    adjusted: bool = Field(True, description="prices are back-adjusted (not on the tick grid); source cache: the "
                                             "series read where a code has both (false: original prices)")
    clamp_adjusted_high: bool = Field(
        False, description="raise high/lower low by up to 5 KRW to cover open/close (adjusted data)")
    indicators: list[str] = Field(default_factory=list,
                                  description="extra indicator specs, e.g. sma_20, rsi_14, macd_12_26_9")
    demo: DemoDataConfig = Field(default_factory=DemoDataConfig)

    @model_validator(mode="before")
    @classmethod
    def _rule_from_universe(cls, raw: Any) -> Any:
        """``universe: {market: KOSPI, ...}`` is a rule: it moves to ``universe_rule``."""
        if isinstance(raw, dict) and isinstance(raw.get("universe"), dict):
            if raw.get("universe_rule") is not None:
                raise ValueError("give the universe either as a rule under 'universe' or as 'universe_rule', not both")
            raw = {**raw, "universe_rule": raw["universe"]}
            raw.pop("universe")
        return raw

    @field_validator("universe", mode="before")
    @classmethod
    def _codes_as_text(cls, codes: Any) -> Any:
        if isinstance(codes, list):
            numbers = [c for c in codes if isinstance(c, int)]
            if numbers:
                raise ValueError(f"codes {numbers} were read as numbers: quote every code in YAML, "
                                 "e.g. '000660' (an unquoted 000660 is the octal number 432)")
        return codes

    @field_validator("universe")
    @classmethod
    def _codes(cls, codes: list[str] | None) -> list[str] | None:
        if codes is None:
            return None
        bad = [c for c in codes if not re.match(CODE_PATTERN, str(c))]
        if bad:
            raise ValueError(f"codes must be 6 characters like '005930' (quote them in YAML); got {bad}")
        if len(set(codes)) != len(codes):
            raise ValueError("codes must not repeat")
        return [str(c) for c in codes]

    @field_validator("start", "end")
    @classmethod
    def _in_calendar(cls, d: date | None) -> date | None:
        return None if d is None else check_calendar_range(d)

    @field_validator("cache_url")
    @classmethod
    def _db_url(cls, url: str) -> str:
        return check_db_url(url)

    @field_validator("indicators")
    @classmethod
    def _indicator_specs(cls, specs: list[str]) -> list[str]:
        from feeds.columns import split_columns   # feeds imports this module: import late

        for spec in specs:          # indicator specs and point-in-time fields (per, pbr, roe, market_cap, ...)
            split_columns([spec])
        return specs

    @model_validator(mode="after")
    def _source_needs(self) -> "DataConfig":
        if self.universe is not None and self.universe_rule is not None:
            raise ValueError("give data.universe either as a list of codes or as a rule (a mapping), not both")
        if self.source == "csv" and self.path is None:
            raise ValueError("source 'csv' needs 'path' (a folder of CODE.csv files)")
        if self.start and self.end and self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self


class KISConfig(StrictModel):
    """How paper/live runs reach KIS. The environment follows ``broker.mode`` (paper → 모의투자, live →
    실전); credentials never live here: they come from environment variables or ``env_file``."""

    rest_url: str | None = Field(None, description="override, e.g. the emulator's http://127.0.0.1:PORT")
    ws_url: str | None = Field(None, description="override, e.g. the emulator's ws://127.0.0.1:PORT")
    use_old_tr_ids: bool = False
    token_cache: Path = Path("~/.cache/krx-trader/kis-token.json")
    journal_url: str = "sqlite:///data/journal.sqlite"
    requests_per_second: float | None = Field(None, gt=0, le=50, description="override the spec's default")
    bar: str = Field("daily", pattern=r"^(daily|[1-9][0-9]?min)$", description="live bar size: daily or <N>min")
    bar_close_grace_s: float = Field(
        0.0, ge=0, le=60, description="an intraday bar no tick has closed is closed this many exchange seconds "
                                      "after its end (raise it when ticks stamped in a bar's last second arrive "
                                      "after the end and are dropped as late)")
    order_window: Literal["regular", "extended"] = Field(
        "regular", description="regular 09:00-15:30 (what 모의투자 accepts) or extended from 08:30")
    reconcile_every_s: float = Field(60.0, gt=0, le=86_400)
    stop_on_mismatch: bool = False
    cash_tolerance_krw: int = Field(1_000, ge=0, le=10**12)
    unknown_order_timeout_s: float = Field(
        60.0, gt=0, le=86_400, description="an order KIS did not answer clearly stays UNKNOWN (its code and side "
                                           "blocked) until KIS shows it, or shows nothing in reads this long after")
    order_workers: int = Field(2, ge=1, le=8, description="order POSTs in flight at once; the rest wait, cancellable")
    order_timeout_s: float = Field(10.0, gt=0, le=60, description="an order POST without a reply this long has an "
                                                                  "unknown outcome: looked up at KIS, never re-sent")
    env_file: Path | None = Field(Path(".env"), description="KEY=VALUE file with KIS_APP_KEY etc. (optional)")
    clock: Literal["system", "emulator"] = Field(
        "system", description="exchange time: the machine clock, or the emulator's via admin_url")
    admin_url: str | None = Field(None, description="the emulator's admin endpoint (clock: emulator)")

    @field_validator("rest_url", "admin_url")
    @classmethod
    def _http(cls, url: str | None) -> str | None:
        return None if url is None else check_url(url, ("http", "https"))

    @field_validator("ws_url")
    @classmethod
    def _ws(cls, url: str | None) -> str | None:
        return None if url is None else check_url(url, ("ws", "wss"))

    @field_validator("journal_url")
    @classmethod
    def _db_url(cls, url: str) -> str:
        return check_db_url(url)

    @model_validator(mode="after")
    def _clock_needs_admin(self) -> "KISConfig":
        if self.clock == "emulator" and not self.admin_url:
            raise ValueError("clock 'emulator' needs admin_url (printed by run.py emulator)")
        return self


class BrokerConfig(StrictModel):
    """How orders are executed. ``mode`` is the switch; the rest applies to every mode."""

    mode: Literal["backtest", "paper", "live"] = "backtest"
    cash: int = Field(10_000_000, gt=0, le=10**15, description="starting cash, KRW (backtest)")
    commission_pct: Decimal = Field(Decimal("0.0140527"), ge=0, lt=1,
                                    description="broker commission in percent of trade value, both sides")
    sell_tax_pct: Decimal | None = Field(
        None, ge=0, lt=1, description="flat sell-tax override in percent; default: dated KRX table")
    price_rounding: Literal["round", "reject"] = Field(
        "round", description="off-grid limit/stop prices: round (buy down, sell up) or reject")
    market_buy_reserve: Literal["upper_limit", "last_close"] = Field(
        "upper_limit", description="price a market buy must be covered at (KIS: the upper limit)")
    volume_cap_pct: float | None = Field(None, gt=0, le=100,
                                         description="max share of a bar's volume one order may take")
    slippage_ticks: int = Field(0, ge=0, le=50)
    order_validity: Literal["day", "gtc"] = Field(
        "day", description="day: unfilled orders expire at the close, as KIS cancels them overnight")
    kis: KISConfig = Field(default_factory=KISConfig)


class StrategyConfig(StrictModel):
    name: str = Field(..., min_length=1, max_length=300, pattern=r"^[A-Za-z_][\w.]*(:[A-Za-z_]\w*)?$",
                      description="built-in example name or 'package.module:ClassName'")
    params: dict[str, Any] = Field(default_factory=dict)
    targets: Path | None = Field(None, description="Trade targets (Data1) as CSV or YAML")


class SizerConfig(StrictModel):
    kind: Literal["fixed_fraction", "equal_weight", "atr", "fixed_size"] = "equal_weight"
    fraction: float = Field(0.1, gt=0, le=1, description="fixed_fraction: share of equity per entry")
    risk_fraction: float = Field(0.01, gt=0, le=0.2, description="atr: equity risked per entry")
    atr_multiple: float = Field(2.0, gt=0, le=100, description="atr: stop distance in ATRs")
    atr_period: int = Field(14, ge=2, le=1000)
    size: int = Field(1, ge=1, le=10**9, description="fixed_size: shares per order")
    slots: int | None = Field(None, ge=1, le=10_000, description="equal_weight: positions to split equity into")


class LimitsConfig(StrictModel):
    max_position_pct: float | None = Field(25.0, gt=0, le=100, description="max value of one code, % of equity")
    max_exposure_pct: float | None = Field(100.0, gt=0, le=100, description="max invested, % of equity")
    daily_loss_limit_pct: float | None = Field(None, gt=0, le=100,
                                               description="equity drop in a day that trips the kill switch")
    stop_loss_pct: float | None = Field(None, gt=0, le=100, description="default stop-loss for every position")


class RiskConfig(StrictModel):
    sizer: SizerConfig = Field(default_factory=SizerConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)


class ReportConfig(StrictModel):
    out: Path | None = Field(None, description="report folder; default runs/<name>")
    benchmark: Literal["equal_weight", "none"] | Path = Field(
        "equal_weight", description="equal_weight (buy-and-hold of the universe), none, or an index CSV")
    risk_free_pct: float = Field(0.0, ge=0, le=20, description="annual risk-free rate for Sharpe/Sortino")


class AlertsConfig(StrictModel):
    """Where alerts go besides the log. Secrets (bot token, webhook URLs) are read from the
    environment variables named here, never written in the config."""

    kinds: list[Literal["fill", "rejection", "reconcile_mismatch", "kill_switch", "disconnect", "error"]] = Field(
        default_factory=lambda: ["fill", "rejection", "reconcile_mismatch", "kill_switch", "disconnect", "error"])
    max_per_minute: int = Field(6, ge=1, le=600, description="per kind; the rest is summarised later")
    disconnect_after_s: float = Field(30.0, gt=0, le=86_400, description="alert when the WebSocket stays down this long")
    telegram_bot_token_env: str | None = Field(None, pattern=ENV_NAME, description="name of the variable holding the bot token")
    telegram_chat_id: str | None = Field(None, pattern=r"^(-?[0-9]{1,20}|@[A-Za-z0-9_]{4,64})$",
                                         description="numeric chat id or @channel")
    telegram_api_url: str = "https://api.telegram.org"
    slack_webhook_env: str | None = Field(None, pattern=ENV_NAME, description="name of the variable holding the Slack webhook URL")
    webhook_url_env: str | None = Field(None, pattern=ENV_NAME, description="name of the variable holding a generic webhook URL")

    @field_validator("telegram_api_url")
    @classmethod
    def _api_url(cls, url: str) -> str:
        return check_url(url, ("https", "http"))


class MonitorConfig(StrictModel):
    """The live dashboard every paper/live run serves (and ``run.py monitor`` for a journal)."""

    enabled: bool = True
    host: str = Field("127.0.0.1", min_length=1, max_length=255, pattern=r"^[^\s/]+$",
                      description="bind address; anything but 127.0.0.1 exposes the controls "
                                  "('' or 0.0.0.0 would bind every interface: refused / warned)")
    port: int = Field(0, ge=0, le=65535, description="0 = any free port (printed at start-up)")
    poll_ms: int = Field(1000, ge=100, le=60_000, description="how often the page refreshes its data")
    snapshot_every_s: float = Field(10.0, gt=0, le=86_400, description="how often the state is written to the journal")
    token: str | None = Field(None, min_length=16, description="fixed control token; default: random per run")
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)


SWEEP_METRICS = ("total_return", "cagr", "annual_volatility", "sharpe", "sortino", "max_drawdown", "calmar",
                 "final_equity", "fills", "commission", "tax", "turnover", "exposure")
"""What a sweep computes per point (``research.sweep.point_metrics``) and may rank by."""
GRID_KEY = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_RAY_ADDRESS = re.compile(r"^(auto|(ray://)?[A-Za-z0-9][A-Za-z0-9.-]*:[0-9]{1,5})$")


def check_ray_address(address: str) -> str:
    """``address`` when it names a Ray cluster (ray://HOST:PORT through the Ray client, HOST:PORT of a head
    on this network, or auto); ``ValueError`` otherwise."""
    if not _RAY_ADDRESS.match(address):
        raise ValueError(f"{address[:80]!r} is not a Ray cluster address; e.g. ray://HOST:10001 (Ray client), "
                         "HOST:6379, or auto")
    return address


class SweepConfig(StrictModel):
    """A parameter sweep on the fast engine (``run.py sweep``); ``--grid`` on the command line adds
    to or replaces ``grid`` entries."""

    grid: dict[str, list[Any]] = Field(
        default_factory=dict, description="parameter -> values; a bare name is a strategy param (top_n), a "
                                          "dotted one a config key (risk.limits.stop_loss_pct)")
    metric: str = Field("sharpe", description="metric to rank points by (a key of metrics.json, e.g. sharpe, "
                                              "cagr, total_return, max_drawdown, calmar)")
    heatmap: list[str] | None = Field(None, min_length=2, max_length=2,
                                      description="the two grid parameters of the heat map (default: the first two)")
    walk_forward: date | float | None = Field(
        None, description="in-sample end: a date, or the in-sample share of sessions (0 < x < 1); "
                          "points are ranked in-sample and scored out-of-sample")
    out: Path | None = Field(None, description="results folder; default runs/<name>-sweep")
    address: str | None = Field(None, description="an existing Ray cluster, e.g. ray://HOST:10001; "
                                                  "default: a local Ray on this machine's cores")
    num_cpus: int | None = Field(None, ge=1, description="cores of the local Ray (default: all)")

    @field_validator("grid")
    @classmethod
    def _grid(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for name, values in grid.items():
            if not GRID_KEY.match(name):
                raise ValueError(f"grid parameter {name!r} is neither a strategy parameter name (top_n) nor a "
                                 "dotted config key (risk.limits.stop_loss_pct)")
            if not values:
                raise ValueError(f"grid parameter {name!r} has no values")
        return grid

    @field_validator("address")
    @classmethod
    def _address(cls, address: str | None) -> str | None:
        return None if address is None else check_ray_address(address)

    @field_validator("metric")
    @classmethod
    def _metric(cls, metric: str) -> str:
        if metric not in SWEEP_METRICS:
            raise ValueError(f"metric {metric!r} is not one the sweep computes; allowed: {', '.join(SWEEP_METRICS)}")
        return metric

    @field_validator("walk_forward")
    @classmethod
    def _split(cls, v: Any) -> Any:
        if isinstance(v, float) and not 0 < v < 1:
            raise ValueError(f"walk_forward as a share must be between 0 and 1, got {v}")
        return v


class ResearchConfig(StrictModel):
    """The fast engine and sweeps (``research``)."""

    engine: Literal["event", "fast"] = Field(
        "event", description="engine of run.py backtest: event (backtrader, every strategy) or fast "
                             "(declared strategies on daily bars, the whole market in seconds)")
    panel_cache: Path | None = Field(
        None, description="folder of cached panels; default $KRX_PANEL_CACHE or ~/.cache/krx-trader/panels; "
                          "'none' switches the cache off")
    sweep: SweepConfig = Field(default_factory=SweepConfig)


class AppConfig(StrictModel):
    """A whole run: data, broker (with the mode switch), strategy, risk and report."""

    name: str = Field("run", pattern=r"^[A-Za-z0-9_.-]+$", max_length=100)
    broker: BrokerConfig = Field(default_factory=BrokerConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    strategy: StrategyConfig
    risk: RiskConfig = Field(default_factory=RiskConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)
    research: ResearchConfig = Field(default_factory=ResearchConfig)

    _source: str = PrivateAttr("<config>")

    @property
    def mode(self) -> str:
        return self.broker.mode

    @property
    def source(self) -> str:
        """The file this config was read from (for messages)."""
        return self._source


def check_calendar_range(d: date) -> date:
    """Dates outside the KRX calendar's range would fail (or hang) deep inside a run: refuse them here."""
    if isinstance(d, datetime):
        d = d.date()
    if not CALENDAR_START <= d <= CALENDAR_END:
        raise ValueError(f"{d} is outside the KRX calendar ({CALENDAR_START}..{CALENDAR_END})")
    return d


def check_url(url: str, schemes: tuple[str, ...]) -> str:
    """A URL with one of ``schemes`` and a host, e.g. ``http://127.0.0.1:29443``."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as exc:
        raise ValueError(f"{url!r} is not a URL ({exc})") from None
    if parts.scheme not in schemes or not parts.hostname:
        raise ValueError(f"{url!r} is not a {'/'.join(schemes)} URL with a host, e.g. {schemes[0]}://127.0.0.1:8080")
    return url


class ConfigError(InputError):
    """A config file that cannot be used; the message names file, key, value and what is allowed."""


def _describe(err: dict[str, Any], aliases: dict[tuple[str, ...], tuple[str, ...]] | None = None) -> str:
    path = tuple(str(p) for p in err.get("loc", ()))
    for internal, written in (aliases or {}).items():      # the key as the file spells it
        if path[:len(internal)] == internal:
            path = written + path[len(internal):]
    loc = ".".join(path) or "(top level)"
    kind = err.get("type", "")
    value = err.get("input")
    if kind == "extra_forbidden":
        return f"{loc}: unknown key (value {value!r}); check the spelling against configs/schema.py"
    if kind == "missing":
        return f"{loc}: required key is missing"
    allowed = ""
    ctx = err.get("ctx") or {}
    if "expected" in ctx:
        allowed = f"; allowed: {ctx['expected']}"
    return f"{loc}: {value!r} is not valid: {err.get('msg', '')}{allowed}"


_URL_PASSWORD = re.compile(r"(\w[\w+.-]*://[^:/@\s]*:)[^@\s]+@")


def format_validation_error(exc: ValidationError, source: str,
                            aliases: dict[tuple[str, ...], tuple[str, ...]] | None = None) -> str:
    lines = [f"{source}: {exc.error_count()} problem(s)"]
    lines += ["  - " + _describe(e, aliases) for e in exc.errors(include_url=False)]
    return _URL_PASSWORD.sub(r"\1***@", "\n".join(lines))   # a database password never reaches a message


def resolve_path(p: Path | None, base: Path) -> Path | None:
    """``p`` with ``~`` expanded and, when relative, anchored at ``base`` (the config file's folder)."""
    if p is None:
        return None
    p = p.expanduser()
    return p if p.is_absolute() else (base / p).resolve()


def resolve_sqlite_url(url: str, base: Path) -> str:
    """A relative SQLite file URL anchored at ``base``; other URLs unchanged."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////") and url != "sqlite:///:memory:":
        return "sqlite:///" + str(resolve_path(Path(url[len("sqlite:///"):]), base))
    return url


def resolve_data_paths(data: DataConfig, base: Path) -> DataConfig:
    """The data section with its folder, markets file and cache URL anchored at ``base``."""
    return data.model_copy(update={"path": resolve_path(data.path, base),
                                   "markets_file": resolve_path(data.markets_file, base),
                                   "cache_url": resolve_sqlite_url(data.cache_url, base)})


def _resolve_paths(cfg: AppConfig, base: Path) -> AppConfig:
    def fix(p: Path | None) -> Path | None:
        return resolve_path(p, base)

    data = resolve_data_paths(cfg.data, base)
    kis = cfg.broker.kis.model_copy(update={"journal_url": resolve_sqlite_url(cfg.broker.kis.journal_url, base),
                                            "env_file": fix(cfg.broker.kis.env_file),
                                            "token_cache": fix(cfg.broker.kis.token_cache)})
    broker = cfg.broker.model_copy(update={"kis": kis})
    strategy = cfg.strategy.model_copy(update={"targets": fix(cfg.strategy.targets)})
    report = cfg.report
    if isinstance(report.benchmark, Path):
        report = report.model_copy(update={"benchmark": fix(report.benchmark)})
    if report.out is not None:
        report = report.model_copy(update={"out": fix(report.out)})
    research = cfg.research
    if research.panel_cache is not None and str(research.panel_cache).lower() != "none":
        research = research.model_copy(update={"panel_cache": fix(research.panel_cache)})
    if research.sweep.out is not None:
        research = research.model_copy(update={"sweep": research.sweep.model_copy(update={"out": fix(research.sweep.out)})})
    return cfg.model_copy(update={"data": data, "strategy": strategy, "report": report, "broker": broker,
                                  "research": research})


def _check_input_paths(cfg: AppConfig, source: str) -> None:
    """Files and folders a run reads must exist when the config is read, not an hour into it."""
    wanted: list[tuple[str, Path | None, str]] = [
        ("data.path", cfg.data.path if cfg.data.source == "csv" else None, "folder"),
        ("data.markets_file", cfg.data.markets_file, "file"),
        ("strategy.targets", cfg.strategy.targets, "file"),
        ("report.benchmark", cfg.report.benchmark if isinstance(cfg.report.benchmark, Path) else None, "file"),
    ]
    problems = []
    for key, path, kind in wanted:
        if path is None:
            continue
        try:
            ok = path.is_dir() if kind == "folder" else path.is_file()
        except OSError as exc:      # e.g. a name too long for the file system
            ok, kind = False, f"{kind} ({exc.strerror})"
        if not ok:
            problems.append(f"  - {key}: {shown(path)} is not an existing {kind}")
    if problems:
        raise ConfigError("\n".join([f"{source}: {len(problems)} problem(s)"] + problems))


def read_yaml(path: str | Path) -> tuple[Any, Path]:
    """(parsed YAML, the file's folder); every problem (missing, binary, not UTF-8, duplicate keys, alias
    bombs, ...) is one ``InputError`` naming the file (``configs/files.py``)."""
    raw = load_yaml(path, "config file")
    return raw, Path(path).resolve().parent


def parse_config(raw: Any, source: str = "<config>", base: Path | None = None) -> AppConfig:
    """Validate an already-parsed mapping; paths are resolved against ``base`` when given."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: top level must be a mapping of sections, got {type(raw).__name__}")
    try:
        cfg = AppConfig.model_validate(raw)
    except ValidationError as exc:
        data = raw.get("data")
        rule_as_universe = isinstance(data, dict) and isinstance(data.get("universe"), dict)
        aliases = {("data", "universe_rule"): ("data", "universe")} if rule_as_universe else None
        raise ConfigError(format_validation_error(exc, source, aliases)) from None
    if base is not None:
        cfg = _resolve_paths(cfg, base)
        _check_input_paths(cfg, source)
    cfg._source = source
    return cfg


def load_config(path: str | Path) -> AppConfig:
    """Read and validate a YAML config file."""
    raw, base = read_yaml(path)
    return parse_config(raw, shown(path), base=base)
