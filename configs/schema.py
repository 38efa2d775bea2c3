"""The one config file of a run, validated by pydantic: the only place a mode is chosen.

``broker.mode`` (backtest | paper | live) is the single switch between backtrader's simulator and
KIS; every other section means the same thing in every mode. Unknown keys are errors (a typo must
not silently fall back to a default), and every error names the key, the value and what is allowed
(``ConfigError``).

Relative paths inside a config file are resolved against the folder holding that file, so a
config works from any working directory.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from market.ticks import Market

CODE_PATTERN = r"^[0-9A-Z]{6}$"


class StrictModel(BaseModel):
    """Base for every config section: unknown keys are refused, values are not coerced silently."""

    model_config = ConfigDict(extra="forbid", validate_default=True)


class DemoDataConfig(StrictModel):
    """The deterministic synthetic market (offline default; always labelled synthetic)."""

    seed: int = 20240101
    codes: int = Field(30, ge=1, le=1000, description="number of synthetic codes")
    start: date = date(2021, 1, 4)
    end: date = date(2025, 12, 30)

    @model_validator(mode="after")
    def _ordered(self) -> "DemoDataConfig":
        if self.end <= self.start:
            raise ValueError(f"end {self.end} must be after start {self.start}")
        return self


class DataConfig(StrictModel):
    """Where bars come from and which slice of them a run uses."""

    source: Literal["demo", "csv", "cache"] = "demo"
    path: Path | None = Field(None, description="csv: folder of CODE.csv files")
    cache_url: str = Field("sqlite:///data/cache/bars.sqlite",
                           description="SQLAlchemy URL of the bar cache (source: cache)")
    timeframe: Literal["daily", "5min", "1min"] = "daily"
    start: date | None = None
    end: date | None = None
    universe: list[str] | None = Field(None, description="codes to load; all available when omitted")
    markets_file: Path | None = Field(
        None, description="CSV with columns code,market (e.g. shared/data/krx/tickers.csv)")
    default_market: Market = Market.KOSPI
    adjusted: bool = Field(True, description="prices are back-adjusted (not on the tick grid)")
    clamp_adjusted_high: bool = Field(
        False, description="raise high/lower low by up to 5 KRW to cover open/close (adjusted data)")
    indicators: list[str] = Field(default_factory=list,
                                  description="extra indicator specs, e.g. sma_20, rsi_14, macd_12_26_9")
    demo: DemoDataConfig = Field(default_factory=DemoDataConfig)

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
        import re
        bad = [c for c in codes if not re.match(CODE_PATTERN, str(c))]
        if bad:
            raise ValueError(f"codes must be 6 characters like '005930' (quote them in YAML); got {bad}")
        if len(set(codes)) != len(codes):
            raise ValueError("codes must not repeat")
        return [str(c) for c in codes]

    @model_validator(mode="after")
    def _source_needs(self) -> "DataConfig":
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
    order_window: Literal["regular", "extended"] = Field(
        "regular", description="regular 09:00-15:30 (what 모의투자 accepts) or extended from 08:30")
    reconcile_every_s: float = Field(60.0, gt=0)
    stop_on_mismatch: bool = False
    cash_tolerance_krw: int = Field(1_000, ge=0)
    unknown_order_timeout_s: float = Field(
        60.0, gt=0, description="an order KIS did not answer clearly stays UNKNOWN (its code and side blocked) until "
                                "KIS shows it, or shows nothing in reads this long after")
    order_workers: int = Field(2, ge=1, le=8, description="order POSTs in flight at once; the rest wait, cancellable")
    order_timeout_s: float = Field(10.0, gt=0, le=60, description="an order POST without a reply this long has an "
                                                                  "unknown outcome: looked up at KIS, never re-sent")
    env_file: Path | None = Field(Path(".env"), description="KEY=VALUE file with KIS_APP_KEY etc. (optional)")
    clock: Literal["system", "emulator"] = Field(
        "system", description="exchange time: the machine clock, or the emulator's via admin_url")
    admin_url: str | None = Field(None, description="the emulator's admin endpoint (clock: emulator)")

    @model_validator(mode="after")
    def _clock_needs_admin(self) -> "KISConfig":
        if self.clock == "emulator" and not self.admin_url:
            raise ValueError("clock 'emulator' needs admin_url (printed by run.py emulator)")
        return self


class BrokerConfig(StrictModel):
    """How orders are executed. ``mode`` is the switch; the rest applies to every mode."""

    mode: Literal["backtest", "paper", "live"] = "backtest"
    cash: int = Field(10_000_000, gt=0, description="starting cash, KRW (backtest)")
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
    name: str = Field(..., description="built-in example name or 'package.module:ClassName'")
    params: dict[str, Any] = Field(default_factory=dict)
    targets: Path | None = Field(None, description="Trade targets (Data1) as CSV or YAML")


class SizerConfig(StrictModel):
    kind: Literal["fixed_fraction", "equal_weight", "atr", "fixed_size"] = "equal_weight"
    fraction: float = Field(0.1, gt=0, le=1, description="fixed_fraction: share of equity per entry")
    risk_fraction: float = Field(0.01, gt=0, le=0.2, description="atr: equity risked per entry")
    atr_multiple: float = Field(2.0, gt=0, description="atr: stop distance in ATRs")
    atr_period: int = Field(14, ge=2)
    size: int = Field(1, ge=1, description="fixed_size: shares per order")
    slots: int | None = Field(None, ge=1, description="equal_weight: positions to split equity into")


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
    disconnect_after_s: float = Field(30.0, gt=0, description="alert when the WebSocket stays down this long")
    telegram_bot_token_env: str | None = Field(None, description="name of the variable holding the bot token")
    telegram_chat_id: str | None = None
    telegram_api_url: str = "https://api.telegram.org"
    slack_webhook_env: str | None = Field(None, description="name of the variable holding the Slack webhook URL")
    webhook_url_env: str | None = Field(None, description="name of the variable holding a generic webhook URL")


class MonitorConfig(StrictModel):
    """The live dashboard every paper/live run serves (and ``run.py monitor`` for a journal)."""

    enabled: bool = True
    host: str = Field("127.0.0.1", description="bind address; anything but 127.0.0.1 exposes the controls")
    port: int = Field(0, ge=0, le=65535, description="0 = any free port (printed at start-up)")
    poll_ms: int = Field(1000, ge=100, le=60_000, description="how often the page refreshes its data")
    snapshot_every_s: float = Field(10.0, gt=0, description="how often the state is written to the journal")
    token: str | None = Field(None, min_length=16, description="fixed control token; default: random per run")
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)


class AppConfig(StrictModel):
    """A whole run: data, broker (with the mode switch), strategy, risk and report."""

    name: str = Field("run", pattern=r"^[A-Za-z0-9_.-]+$")
    broker: BrokerConfig = Field(default_factory=BrokerConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    strategy: StrategyConfig
    risk: RiskConfig = Field(default_factory=RiskConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)

    @property
    def mode(self) -> str:
        return self.broker.mode


class ConfigError(ValueError):
    """A config file that cannot be used; the message names file, key, value and what is allowed."""


def _describe(err: dict[str, Any]) -> str:
    loc = ".".join(str(p) for p in err.get("loc", ())) or "(top level)"
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


def format_validation_error(exc: ValidationError, source: str) -> str:
    lines = [f"{source}: {exc.error_count()} problem(s)"]
    lines += ["  - " + _describe(e) for e in exc.errors(include_url=False)]
    return "\n".join(lines)


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
    return cfg.model_copy(update={"data": data, "strategy": strategy, "report": report, "broker": broker})


def read_yaml(path: str | Path) -> tuple[Any, Path]:
    """(parsed YAML, the file's folder) — ``ConfigError`` when missing or not YAML."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")), path.resolve().parent
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None


def parse_config(raw: Any, source: str = "<config>", base: Path | None = None) -> AppConfig:
    """Validate an already-parsed mapping; paths are resolved against ``base`` when given."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: top level must be a mapping of sections, got {type(raw).__name__}")
    try:
        cfg = AppConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None
    return _resolve_paths(cfg, base) if base is not None else cfg


def load_config(path: str | Path) -> AppConfig:
    """Read and validate a YAML config file."""
    raw, base = read_yaml(path)
    return parse_config(raw, str(path), base=base)
