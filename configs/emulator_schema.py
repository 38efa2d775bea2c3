"""The emulator's config file (``run.py emulator --config FILE``), validated by pydantic.

One YAML file chooses the environment the emulator speaks (real 실전 / paper 모의투자), where its
prices come from (the same ``data:`` section as a backtest: demo | csv | cache), how its clock runs,
the starting account, and every knob the spec leaves unconfirmed (documented defaults below).
Unknown keys are errors, as in ``configs/schema.py``. See ``configs/emulator.yaml`` for an example.
"""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from configs.files import shown
from configs.schema import (ConfigError, DataConfig, StrictModel, format_validation_error, read_yaml,
                            resolve_data_paths, resolve_path)


class ClockConfig(StrictModel):
    """How emulated time runs (``brokers/kis/emulator/clock.py``)."""

    mode: Literal["real", "accelerated", "stepped"] = "accelerated"
    start: datetime | None = Field(
        None, description="first emulated moment (KST if naive); default: real → now, others → the last "
                          "data day at 08:50")
    day_seconds: float = Field(390.0, gt=0, description="accelerated: wall seconds per trading day")
    window: tuple[time, time] = Field((time(8, 30), time(15, 40)),
                                      description="accelerated: part of each trading day that is replayed")
    pump_interval_s: float = Field(0.02, gt=0, le=1, description="real/accelerated: how often the market is "
                                                                 "replayed up to the clock")


class HoldingConfig(StrictModel):
    code: str = Field(..., pattern=r"^[0-9A-Z]{6}$")
    qty: int = Field(..., gt=0)
    avg_price: int = Field(..., gt=0, description="purchase average price, KRW")

    @field_validator("code", mode="before")
    @classmethod
    def _text(cls, v: Any) -> Any:
        if isinstance(v, int):
            raise ValueError("quote codes in YAML, e.g. '005930'")
        return v


class AccountConfig(StrictModel):
    """The account behind an environment's app keys. CANO defaults differ per env."""

    cano: str | None = Field(None, pattern=r"^[0-9]{8}$", description="8-digit account number")
    acnt_prdt_cd: str = Field("01", pattern=r"^[0-9]{2}$")
    hts_id: str = Field("emuuser", min_length=1, max_length=16, description="tr_key of execution notices")
    holder: str = Field("홍길동", description="ACNT_NAME in notices")
    cash: int = Field(10_000_000, ge=0, description="settled cash (D+0 예수금) at start, KRW")
    holdings: list[HoldingConfig] = Field(default_factory=list)


class EnvConfig(StrictModel):
    """Per-environment settings; None means the spec's default for that environment."""

    account: AccountConfig = Field(default_factory=AccountConfig)
    appkey: str | None = Field(None, min_length=36, max_length=36, description="fixed app key (default: random)")
    appsecret: str | None = Field(None, min_length=180, max_length=180)
    extra_apps: int = Field(0, ge=0, le=1000, description="more app keys on the same account")
    rate_limit_per_sec: float | None = Field(None, gt=0, description="default real 18, paper 1 (PROTOCOL §5.1)")
    rate_limit_burst: float | None = Field(None, gt=0, description="bucket size; default = the rate (1 s worth)")
    notice_fields: Literal[23, 26] | None = Field(None, description="default real 26, paper 23 (PROTOCOL §4.10)")
    branch: str | None = Field(None, pattern=r"^[0-9]{5}$",
                               description="KRX_FWDG_ORD_ORGNO; default real 06010, paper 00950")
    order_window: Literal["order_entry", "regular"] | None = Field(
        None, description="when orders are accepted: order_entry 08:30–15:30 (real default) or regular "
                          "09:00–15:30 (paper default; exact paper window unconfirmed)")
    odno_padded: bool = Field(True, description="ODNO as 10 zero-padded digits (paper was also seen unpadded)")


class RateLimitConfig(StrictModel):
    enabled: bool = True
    time_base: Literal["auto", "wall", "clock"] = Field(
        "auto", description="auto: the clock's own base (emulated seconds on a stepped clock, wall seconds "
                            "otherwise); wall: real seconds whatever the clock (a client pacing on its own "
                            "wall clock against a stepped emulator); clock: always the emulator clock")


class TokenConfig(StrictModel):
    lifetime_s: int = Field(86_400, gt=0)
    reuse_window_s: int = Field(6 * 3600, ge=0, description="tokenP within this returns the same token")
    issue_interval_s: int = Field(60, ge=0, description="tokenP within this of the last one → 403 EGW00133")
    approval_lifetime_s: int = Field(86_400, gt=0, description="WS approval key validity (unconfirmed)")


class MatchingConfig(StrictModel):
    limit_fill: Literal["through", "touch"] = Field(
        "through", description="resting limits fill when a print trades through (or touches) the limit")
    participation: float = Field(1.0, gt=0, le=1, description="share of each print's volume our orders may take")
    tick_interval_s: float = Field(20.0, gt=0, description="at least one print per this many seconds of a bar")
    max_ticks_per_bar: int = Field(4000, ge=4)
    expiry_notice: bool = Field(False, description="send a notice (ACPT_YN 3) when a day order expires "
                                                   "(unconfirmed whether KIS does)")
    revise_confirm_notice: bool = Field(True, description="revise/cancel: ack (ACPT_YN 1) then confirmation "
                                                          "(ACPT_YN 2); unconfirmed whether both are sent")
    commission_pct: Decimal = Field(Decimal("0.0140527"), ge=0, lt=1)
    first_order_no: int = Field(10_001, ge=1)


class WsConfig(StrictModel):
    max_registrations: int = Field(41, ge=1, description="per session, notices included (OPSP0008 beyond)")
    ping_interval_s: float | None = Field(10.0, gt=0, description="PINGPONG period (unconfirmed); null = off")
    second_session: Literal["refuse", "kick"] = Field(
        "refuse", description="a second connection on the same app key: OPSP8996 and close it, or drop the first")
    book_fields: Literal[59, 62] = 59
    max_records_per_frame: int = Field(10, ge=1, le=999)
    accept_appkey_header: bool = Field(True, description="legacy subscribe header with appkey/appsecret "
                                                         "instead of approval_key (old mojito)")


class MessageOverride(StrictModel):
    code: str = Field(..., pattern=r"^[0-9A-Z]{8}$", description="msg_cd, 8 characters")
    text: str = Field(..., min_length=1, description="msg1")


class RestConfig(StrictModel):
    strict_string_values: bool = Field(True, description="POST values must be JSON strings (OPSQ2001 otherwise)")
    pad_msg1: bool = Field(False, description="right-pad msg1 with spaces to 80 characters like some captures")
    hold_timeout_s: float = Field(30.0, gt=0, description="how long a 'timeout' fault holds a request open")
    business_codes: Literal["real_host", "third_party"] = Field(
        "real_host", description="real-env codes where sources disagree (protocol.REAL_BUSINESS_CODES): real_host "
                                 "= APBK0506/APBK0918/APBK0400 as real-host logs show, third_party = the codes of "
                                 "third-party captures and clients (40030000/APBK0919/EMU00002)")
    message_overrides: dict[str, MessageOverride] = Field(
        default_factory=dict, description="per-reason real-env (msg_cd, msg1), e.g. {tick_error: {code, text}}")
    max_body_bytes: int = Field(1_048_576, ge=1024, description="larger request bodies are refused with 400")
    balance_by_stock: bool = Field(
        False, description="accept inquire-balance INQR_DVSN=02 (종목별) as KIS did before its 2026-02-10 notice; "
                           "default: OPSQ2001 as today (python-kis #81)")

    @field_validator("message_overrides")
    @classmethod
    def _known_reasons(cls, v: dict[str, MessageOverride]) -> dict[str, MessageOverride]:
        from brokers.kis.protocol import MESSAGES

        unknown = sorted(set(v) - set(MESSAGES))
        if unknown:
            raise ValueError(f"unknown message keys {unknown}; known: {sorted(MESSAGES)}")
        return v


class PortsConfig(StrictModel):
    """0 = a free port picked at start."""

    rest_real: int = Field(0, ge=0, le=65535)
    rest_paper: int = Field(0, ge=0, le=65535)
    ws_real: int = Field(0, ge=0, le=65535)
    ws_paper: int = Field(0, ge=0, le=65535)
    admin: int = Field(0, ge=0, le=65535)


class MasterFilesConfig(StrictModel):
    """KIS-format stock master files (``kospi_code.mst.zip`` …) built from the reference data and served
    on every REST port under ``path`` (KIS serves them from its download host, ``/common/master``)."""

    enabled: bool = True
    path: str = Field("/common/master", pattern=r"^(/[A-Za-z0-9_.-]+)+$",
                      description="URL path the zips are served under, e.g. /common/master")


def _default_real() -> EnvConfig:
    return EnvConfig(account=AccountConfig(cano="63000001"))


def _default_paper() -> EnvConfig:
    return EnvConfig(account=AccountConfig(cano="50000001"))


class EmulatorConfig(StrictModel):
    """The whole emulator: which env, which data, which clock, which account, which knobs."""

    env: Literal["real", "paper"] = "paper"
    serve_both: bool = Field(False, description="also serve the other environment (own keys, account, ports)")
    host: str = "127.0.0.1"
    data: DataConfig = Field(default_factory=DataConfig)
    clock: ClockConfig = Field(default_factory=ClockConfig)
    real: EnvConfig = Field(default_factory=_default_real)
    paper: EnvConfig = Field(default_factory=_default_paper)
    rate_limit: RateLimitConfig = Field(default_factory=RateLimitConfig)
    token: TokenConfig = Field(default_factory=TokenConfig)
    matching: MatchingConfig = Field(default_factory=MatchingConfig)
    ws: WsConfig = Field(default_factory=WsConfig)
    rest: RestConfig = Field(default_factory=RestConfig)
    ports: PortsConfig = Field(default_factory=PortsConfig)
    master_files: MasterFilesConfig = Field(default_factory=MasterFilesConfig)
    log_requests: bool = True
    reference_file: Path | None = Field(
        None, description="per-code reference data (reference.json, format in the emulator README); default: "
                          "data.path/reference.json when it exists, else generated from the bars")
    admin_token: str | None = Field(None, min_length=16, max_length=128, pattern=r"^[A-Za-z0-9_-]+$",
                                    description="token of the admin endpoint (default: random, printed in the banner)")

    @model_validator(mode="after")
    def _accounts_differ(self) -> "EmulatorConfig":
        if self.serve_both:
            a, b = self.real.account, self.paper.account
            if a.cano and b.cano and a.cano == b.cano:
                raise ValueError("real and paper accounts must differ (KIS keeps them apart)")
        return self

    def env_config(self, env: str) -> EnvConfig:
        return self.real if env == "real" else self.paper


def parse_emulator_config(raw: Any, source: str = "<emulator config>", base: Path | None = None) -> EmulatorConfig:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: top level must be a mapping, got {type(raw).__name__}")
    try:
        cfg = EmulatorConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None
    if base is not None:
        cfg = cfg.model_copy(update={"data": resolve_data_paths(cfg.data, base),
                                     "reference_file": resolve_path(cfg.reference_file, base)})
    return cfg


def load_emulator_config(path: str | Path) -> EmulatorConfig:
    raw, base = read_yaml(path)
    if raw is None:     # an empty file is a mistake, not a wish for every default (write `env: paper`)
        raise ConfigError(f"{shown(path)}: the emulator config is empty; write at least 'env: paper' "
                          "(see configs/emulator.yaml)")
    return parse_emulator_config(raw, shown(path), base=base)


__all__ = ["AccountConfig", "ClockConfig", "EmulatorConfig", "EnvConfig", "HoldingConfig", "MasterFilesConfig",
           "MatchingConfig", "MessageOverride",
           "PortsConfig", "RateLimitConfig", "RestConfig", "TokenConfig", "WsConfig", "load_emulator_config",
           "parse_emulator_config", "date"]
