"""KIS app credentials and account number, loaded from the environment or a ``.env`` file.

Why a separate module: credentials are the one object that holds secrets, so its ``repr`` masks
them, its loader names a missing *variable* but never a value, and nothing else in the adapter
needs to know where they came from. ``client.py`` re-exports ``Credentials``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from brokers.kis import protocol as P
from brokers.kis.errors import KISConfigError

__all__ = ["Credentials", "mask_key", "mask_account", "read_env_file"]


def mask_key(value: str) -> str:
    """``PS12…(36)``: enough to tell two keys apart in a log, not enough to use one."""
    if not value:
        return "-"
    return f"{value[:4]}…({len(value)})"


def mask_account(cano: str, product_code: str) -> str:
    """``1234****-01``."""
    head = cano[:4] if len(cano) >= 4 else ""
    return f"{head}{'*' * max(len(cano) - len(head), 4)}-{product_code}"


_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines (``#`` comments, optional quotes, optional ``export``)."""
    out: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _LINE.match(line)
        if not m:
            continue
        value = m.group(2)
        if len(value) >= 2 and value[0] == value[-1] and value[0] in ("'", '"'):
            value = value[1:-1]
        out[m.group(1)] = value
    return out


@dataclass(frozen=True)
class Credentials:
    """App key/secret (앱키/앱시크릿), account (CANO 8 digits + product code 2 digits) and HTS ID.

    The HTS ID (the KIS login id) is the ``tr_key`` of execution-notice subscriptions (§4.2).
    ``repr``/``str`` mask every secret.
    """

    app_key: str = field(repr=False)
    app_secret: str = field(repr=False)
    cano: str = field(repr=False)
    product_code: str = P.ACNT_PRDT_CD_STOCK
    hts_id: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        if not self.app_key or not self.app_secret:
            raise KISConfigError("app key and app secret must not be empty")
        if not (self.cano.isdigit() and len(self.cano) == P.CANO_LENGTH):
            raise KISConfigError(f"account number (CANO) must be {P.CANO_LENGTH} digits")
        if not (self.product_code.isdigit() and len(self.product_code) == P.ACNT_PRDT_CD_LENGTH):
            raise KISConfigError(f"account product code must be {P.ACNT_PRDT_CD_LENGTH} digits")

    @property
    def account(self) -> str:
        """``ACNT_NO`` as notices carry it: CANO + product code, 10 digits."""
        return self.cano + self.product_code

    def __repr__(self) -> str:
        hts = (self.hts_id[:2] + "…") if self.hts_id else ""
        return (f"Credentials(app_key={mask_key(self.app_key)!r}, app_secret='***', "
                f"account={mask_account(self.cano, self.product_code)!r}, hts_id={hts!r})")

    __str__ = __repr__

    @staticmethod
    def parse_account(text: str, variable: str = "KIS_ACCOUNT") -> tuple[str, str]:
        """``"12345678-01"``, ``"1234567801"`` or ``"12345678"`` (product 01) → (cano, product)."""
        t = text.strip().replace(" ", "")
        if "-" in t:
            cano, _, prdt = t.partition("-")
        elif len(t) == P.CANO_LENGTH + P.ACNT_PRDT_CD_LENGTH:
            cano, prdt = t[:P.CANO_LENGTH], t[P.CANO_LENGTH:]
        else:
            cano, prdt = t, P.ACNT_PRDT_CD_STOCK
        if not (cano.isdigit() and len(cano) == P.CANO_LENGTH and prdt.isdigit()
                and len(prdt) == P.ACNT_PRDT_CD_LENGTH):
            raise KISConfigError(f"{variable} must look like 12345678-01 (8 digits, dash, 2 digits) or 10 digits")
        return cano, prdt

    @classmethod
    def from_env(cls, env_file: Path | None = None, *, prefix: str = "KIS_",
                 environ: Mapping[str, str] | None = None) -> "Credentials":
        """From ``{prefix}APP_KEY``, ``APP_SECRET``, ``ACCOUNT``, ``HTS_ID`` (optional).

        Process environment variables win over ``env_file`` (a ``KEY=VALUE`` file; a missing file is
        fine). ``prefix`` lets real and paper keys live side by side (e.g. ``KIS_PAPER_``).
        """
        values: dict[str, str] = {}
        if env_file is not None:
            p = Path(env_file).expanduser()
            if p.is_file():
                values.update(read_env_file(p))
        values.update({k: v for k, v in (os.environ if environ is None else environ).items() if k.startswith(prefix)})
        names = {k: prefix + k for k in ("APP_KEY", "APP_SECRET", "ACCOUNT", "HTS_ID")}
        missing = [names[k] for k in ("APP_KEY", "APP_SECRET", "ACCOUNT") if not values.get(names[k], "").strip()]
        if missing:
            where = f" (looked in the environment and {env_file})" if env_file is not None else " (environment)"
            raise KISConfigError(f"missing {', '.join(missing)}{where}")
        cano, prdt = cls.parse_account(values[names["ACCOUNT"]], names["ACCOUNT"])
        return cls(values[names["APP_KEY"]].strip(), values[names["APP_SECRET"]].strip(), cano, prdt,
                   values.get(names["HTS_ID"], "").strip())

    @classmethod
    def from_mapping(cls, m: Mapping[str, Any]) -> "Credentials":
        """From a dict such as the emulator banner / ``Credentials.as_dict()`` (``appkey``,
        ``appsecret``, ``account``, ``hts_id``) or this class's own field names."""
        key = str(m.get("app_key") or m.get("appkey") or "")
        secret = str(m.get("app_secret") or m.get("appsecret") or "")
        if m.get("cano"):
            cano, prdt = str(m["cano"]), str(m.get("product_code") or m.get("acnt_prdt_cd") or P.ACNT_PRDT_CD_STOCK)
        else:
            cano, prdt = cls.parse_account(str(m.get("account") or ""), "account")
        return cls(key, secret, cano, prdt, str(m.get("hts_id") or ""))
