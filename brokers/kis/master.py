"""KIS's stock master files (종목마스터): ``kospi_code.mst``, ``kosdaq_code.mst``, ``konex_code.mst``.

KIS publishes them daily as ``<name>.mst.zip`` under ``MASTER_BASE_URL``: one fixed-width CP949 record
per listed code. The layout is KIS's own (``stocks_info/종목마스터정보(코스피|코스닥|코넥스).h`` of the
open-trading-api repository); a record is

* a head: 단축코드 (9 bytes: the 6-character code and padding), 표준코드 (12: the ISIN), then the Korean
  name (``SZ_KORNAME``; its width differs between generations of the file, so it is taken as
  *whatever lies between the head and the tail*, exactly as KIS's sample reads it);
* a tail of fixed-width ASCII fields, different per market (``LAYOUTS``: 227 bytes KOSPI, 221 KOSDAQ,
  184 KONEX), read from the end of the line.

The parser works on bytes (the widths are bytes, and only the name is not ASCII). This module is the one
home of the layout: the emulator writes its files with ``write_record`` (``brokers/kis/emulator``) and
``feeds/master.py`` reads them with ``parse_file``; ``tests/marketdata/test_master_format.py`` checks
the parser against the header files' field table transcribed independently, never against the writer
alone. Units as the headers say: 상장주수 in thousands of shares, 시가총액 in 억원 (10^8 KRW).
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from datetime import date
from typing import Iterable, Mapping

MASTER_BASE_URL = "https://new.real.download.dws.co.kr/common/master"
"""Where KIS publishes the master zips (``{base}/kospi_code.mst.zip`` …), as its sample code downloads them."""
MASTER_FILES = {"KOSPI": "kospi_code.mst", "KOSDAQ": "kosdaq_code.mst", "KONEX": "konex_code.mst"}
ENCODING = "cp949"
CODE_WIDTH = 9        # SZ_SHRNCODE
ISIN_WIDTH = 12       # SZ_STNDCODE
NAME_WIDTH = 40       # SZ_KORNAME of the current files (the parser does not depend on it)
SHARES_UNIT = 1_000   # lstn_stcn: 상장 주수(천)
CAP_UNIT = 100_000_000  # prdy_avls_scal: 전일기준 시가총액 (억)

_COMMON_TAIL: tuple[tuple[str, int], ...] = (
    ("stck_sdpr", 9), ("frml_mrkt_deal_qty_unit", 5), ("ovtm_mrkt_deal_qty_unit", 5), ("trht_yn", 1),
    ("sltr_yn", 1), ("mang_issu_yn", 1), ("mrkt_alrm_cls_code", 2), ("mrkt_alrm_risk_adnt_yn", 1),
    ("insn_pbnt_yn", 1), ("byps_lstn_yn", 1), ("flng_cls_code", 2), ("fcam_mod_cls_code", 2),
    ("icic_cls_code", 2), ("marg_rate", 3), ("crdt_able", 1), ("crdt_days", 3), ("prdy_vol", 12),
    ("stck_fcam", 12), ("stck_lstn_date", 8), ("lstn_stcn", 15), ("cpfn", 21), ("stac_month", 2),
    ("po_prc", 7), ("prst_cls_code", 1), ("ssts_hot_yn", 1), ("stange_runup_yn", 1), ("krx300_issu_yn", 1),
)
_FINANCE_TAIL: tuple[tuple[str, int], ...] = (
    ("sale_account", 9), ("bsop_prfi", 9), ("op_prfi", 9), ("thtr_ntin", 5), ("roe", 9), ("base_date", 8),
    ("prdy_avls_scal", 9),
)
_SECTORS = (("scrt_grp_cls_code", 2), ("avls_scal_cls_code", 1), ("bstp_larg_div_code", 4),
            ("bstp_medm_div_code", 4), ("bstp_smal_div_code", 4))
_YN = 1

LAYOUTS: dict[str, tuple[tuple[str, int], ...]] = {
    "KOSPI": (*_SECTORS, ("mnin_cls_code_yn", _YN), ("low_current_yn", _YN), ("sprn_strr_nmix_issu_yn", _YN),
              ("kospi200_apnt_cls_code", 1), ("kospi100_issu_yn", _YN), ("kospi50_issu_yn", _YN),
              ("krx_issu_yn", _YN), ("etp_prod_cls_code", 1), ("elw_pblc_yn", _YN), ("krx100_issu_yn", _YN),
              ("krx_car_yn", _YN), ("krx_smcn_yn", _YN), ("krx_bio_yn", _YN), ("krx_bank_yn", _YN),
              ("etpr_undt_objt_co_yn", _YN), ("krx_enrg_chms_yn", _YN), ("krx_stel_yn", _YN),
              ("short_over_cls_code", 1), ("krx_medi_cmnc_yn", _YN), ("krx_cnst_yn", _YN),
              ("krx_fnnc_svc_yn", _YN), ("krx_scrt_yn", _YN), ("krx_ship_yn", _YN), ("krx_insu_yn", _YN),
              ("krx_trnp_yn", _YN), ("sri_nmix_yn", _YN), *_COMMON_TAIL, ("kospi_issu_yn", _YN), *_FINANCE_TAIL,
              ("grp_code", 3), ("co_crdt_limt_over_yn", _YN), ("secu_lend_able_yn", _YN), ("stln_able_yn", _YN)),
    "KOSDAQ": (*_SECTORS, ("vntr_issu_yn", _YN), ("low_current_yn", _YN), ("krx_issu_yn", _YN),
               ("etp_prod_cls_code", 1), ("krx100_issu_yn", _YN), ("krx_car_yn", _YN), ("krx_smcn_yn", _YN),
               ("krx_bio_yn", _YN), ("krx_bank_yn", _YN), ("etpr_undt_objt_co_yn", _YN), ("krx_enrg_chms_yn", _YN),
               ("krx_stel_yn", _YN), ("short_over_cls_code", 1), ("krx_medi_cmnc_yn", _YN), ("krx_cnst_yn", _YN),
               ("invt_alrm_yn", _YN), ("krx_scrt_yn", _YN), ("krx_ship_yn", _YN), ("krx_insu_yn", _YN),
               ("krx_trnp_yn", _YN), ("ksq150_nmix_yn", _YN), *_COMMON_TAIL, *_FINANCE_TAIL,
               ("grp_code", 3), ("co_crdt_limt_over_yn", _YN), ("secu_lend_able_yn", _YN), ("stln_able_yn", _YN)),
    "KONEX": (("scrt_grp_cls_code", 2), *_COMMON_TAIL, *_FINANCE_TAIL,
              ("co_crdt_limt_over_yn", _YN), ("secu_lend_able_yn", _YN), ("stln_able_yn", _YN)),
}
"""Per market, the tail's fields (wire names of the header files) and their widths in bytes."""
TAIL_WIDTH = {m: sum(w for _, w in fields) for m, fields in LAYOUTS.items()}

GROUP_KINDS = {"ST": "stock", "EF": "etf", "FE": "etf", "EN": "etn", "RT": "reit", "MF": "fund", "IF": "infra",
               "DR": "dr", "FS": "foreign", "SC": "fund", "BC": "fund", "EW": "elw", "SW": "warrant", "SR": "warrant",
               "KN": "stock"}
"""증권그룹구분코드 → kind (ST 주권, EF ETF, FE 해외ETF, EN ETN, RT 리츠, MF 투자회사, IF 인프라, DR 예탁증서,
FS 외국주권, SC 선박투자회사, BC 수익증권, EW ELW, SW/SR 신주인수권, KN 코넥스 주권)."""


class MasterFormatError(ValueError):
    """A master file that is not in KIS's layout; the message names the file, the line and the field."""


@dataclass(frozen=True)
class MasterRecord:
    """One code of a master file, in the project's units (KRW, shares, dates, booleans)."""

    code: str
    isin: str
    name: str
    market: str                 # KOSPI / KOSDAQ / KONEX
    group_code: str             # 증권그룹구분코드
    sector_large: str = ""
    sector_medium: str = ""
    sector_small: str = ""
    base_price: int = 0         # 기준가
    halted: bool = False        # 거래정지
    liquidation: bool = False   # 정리매매
    admin_issue: bool = False   # 관리종목
    market_warning: str = "00"  # 00 / 01 투자주의 / 02 투자경고 / 03 투자위험
    warning_notice: bool = False
    unfaithful_disclosure: bool = False
    spac: bool = False
    etp_code: str = "0"         # 0 none, 1/2 ETF forms, 3 ETN, 4 loss-limited ETN, 5 listed fund
    overheated: str = "0"       # 단기과열: 0 none, 1 notice, 2 designated, 3 extended
    prev_volume: int = 0
    par_value: int = 0
    listing_date: date | None = None
    shares_listed: int = 0      # shares (the file has thousands)
    capital: int = 0
    fiscal_month: int | None = None
    ipo_price: int | None = None
    preferred_code: str = "0"   # 0 common, 1 old-type preferred, 2 new-type preferred
    kospi200_sector: str = "0"
    market_cap: int = 0         # KRW (the file has 억원)
    raw: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def kind(self) -> str:
        k = GROUP_KINDS.get(self.group_code, self.group_code.lower() or "stock")
        if k == "stock" and self.preferred_code not in ("", "0"):
            return "preferred"
        if k == "stock" and self.spac:
            return "spac"
        if k == "etf" and self.etp_code in ("3", "4"):
            return "etn"
        return k

    @property
    def preferred(self) -> bool:
        return self.preferred_code not in ("", "0")


def _int(text: str) -> int:
    t = text.strip()
    if not t:
        return 0
    try:
        return int(t)
    except ValueError:
        return int(float(t))


def _ymd(text: str) -> date | None:
    t = text.strip()
    if len(t) != 8 or not t.isdigit() or t == "00000000":
        return None
    try:
        return date(int(t[:4]), int(t[4:6]), int(t[6:]))
    except ValueError:
        return None


def split_record(line: bytes, market: str) -> dict[str, str]:
    """The raw text fields of one record (no line end) of ``market``'s file, by wire name."""
    layout = LAYOUTS[market]
    tail_w = TAIL_WIDTH[market]
    if len(line) < CODE_WIDTH + ISIN_WIDTH + tail_w:
        raise MasterFormatError(f"{len(line)} bytes, shorter than a {market} record "
                                f"({CODE_WIDTH + ISIN_WIDTH} + name + {tail_w})")
    head, tail = line[:-tail_w], line[-tail_w:]
    try:
        fields = {"mksc_shrn_iscd": head[:CODE_WIDTH].decode("ascii").strip(),
                  "stnd_iscd": head[CODE_WIDTH:CODE_WIDTH + ISIN_WIDTH].decode("ascii").strip(),
                  "hts_kor_isnm": head[CODE_WIDTH + ISIN_WIDTH:].decode(ENCODING, errors="replace").strip()}
        text = tail.decode("ascii")
    except UnicodeDecodeError as exc:
        raise MasterFormatError(f"non-ASCII byte at {exc.start} where KIS's layout has codes and numbers "
                                "(not a master file of this market?)") from None
    pos = 0
    for name, width in layout:
        fields[name] = text[pos:pos + width]
        pos += width
    return fields


def parse_record(line: bytes, market: str) -> MasterRecord:
    """One record → ``MasterRecord`` (units converted: shares × 1,000, market cap × 억)."""
    f = split_record(line, market)
    code = f["mksc_shrn_iscd"]
    if not code or not code.isascii() or not code.isalnum():
        raise MasterFormatError(f"단축코드 {code!r} is not a code")
    month = _int(f["stac_month"])
    ipo = _int(f["po_prc"])
    return MasterRecord(
        code=code, isin=f["stnd_iscd"], name=f["hts_kor_isnm"], market=market,
        group_code=f["scrt_grp_cls_code"].strip(), sector_large=f.get("bstp_larg_div_code", "").strip(),
        sector_medium=f.get("bstp_medm_div_code", "").strip(), sector_small=f.get("bstp_smal_div_code", "").strip(),
        base_price=_int(f["stck_sdpr"]), halted=f["trht_yn"] == "Y", liquidation=f["sltr_yn"] == "Y",
        admin_issue=f["mang_issu_yn"] == "Y", market_warning=f["mrkt_alrm_cls_code"].strip() or "00",
        warning_notice=f["mrkt_alrm_risk_adnt_yn"] == "Y", unfaithful_disclosure=f["insn_pbnt_yn"] == "Y",
        spac=f.get("etpr_undt_objt_co_yn", "N") == "Y", etp_code=f.get("etp_prod_cls_code", "0").strip() or "0",
        overheated=f.get("short_over_cls_code", "0").strip() or "0", prev_volume=_int(f["prdy_vol"]),
        par_value=_int(f["stck_fcam"]), listing_date=_ymd(f["stck_lstn_date"]),
        shares_listed=_int(f["lstn_stcn"]) * SHARES_UNIT, capital=_int(f["cpfn"]),
        fiscal_month=month if 1 <= month <= 12 else None, ipo_price=ipo or None,
        preferred_code=f["prst_cls_code"].strip() or "0", kospi200_sector=f.get("kospi200_apnt_cls_code", "0").strip() or "0",
        market_cap=_int(f["prdy_avls_scal"]) * CAP_UNIT, raw=f)


def market_of_name(name: str) -> str:
    """``kospi_code.mst`` / ``kosdaq_code.mst.zip`` … → KOSPI / KOSDAQ / KONEX."""
    low = name.lower().rsplit("/", 1)[-1]
    for market, file in MASTER_FILES.items():
        stem = file.split(".")[0]
        if low.startswith(stem):
            return market
    raise MasterFormatError(f"{name}: not a KIS master file name (expected one of "
                            f"{', '.join(MASTER_FILES.values())}, or the same with .zip)")


def parse_bytes(data: bytes, market: str, source: str = "<master>") -> list[MasterRecord]:
    """Every record of a master file's content; errors name ``source``, the line and the problem."""
    out = []
    for i, line in enumerate(data.split(b"\n"), 1):
        line = line.rstrip(b"\r")
        if not line.strip():
            continue
        try:
            out.append(parse_record(line, market))
        except MasterFormatError as exc:
            raise MasterFormatError(f"{source}, line {i}: {exc}") from None
    return out


def unzip_master(data: bytes, source: str) -> tuple[str, bytes]:
    """(member name, content) of a master zip (KIS's hold one ``*.mst``)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            members = [n for n in zf.namelist() if n.lower().endswith(".mst")]
            if not members:
                raise MasterFormatError(f"{source}: the zip holds no .mst file ({', '.join(zf.namelist()[:5])})")
            return members[0], zf.read(members[0])
    except zipfile.BadZipFile:
        raise MasterFormatError(f"{source}: not a zip file") from None


def parse_download(data: bytes, name: str) -> list[MasterRecord]:
    """A downloaded ``*.mst`` or ``*.mst.zip`` (by its name) → records."""
    if name.lower().endswith(".zip") or data[:2] == b"PK":
        member, data = unzip_master(data, name)
        return parse_bytes(data, market_of_name(member), f"{name}:{member}")
    return parse_bytes(data, market_of_name(name), name)


# ---- writing (the emulator's files) -----------------------------------------------------------

def _fit(value: object, width: int, name: str) -> str:
    """A value as the field's text: numbers right-aligned and zero-padded, clipped to what fits
    (a sign takes one place); text and flags left-aligned with spaces."""
    if isinstance(value, bool):
        text = "Y" if value else "N"
    elif isinstance(value, int):
        limit = 10 ** (width - (1 if value < 0 else 0)) - 1
        v = max(-limit, min(limit, value))
        text = (f"-{abs(v):0{width - 1}d}" if v < 0 else f"{v:0{width}d}")
    elif isinstance(value, date):
        text = value.strftime("%Y%m%d")
    else:
        text = str(value)
    if len(text) > width:
        raise MasterFormatError(f"field {name}: {text!r} is wider than {width}")
    return text.ljust(width)


def write_record(values: Mapping[str, object], market: str) -> bytes:
    """One record (no line end) from wire-named values; absent fields are blank (flags ``N``)."""
    head = (_fit(str(values.get("mksc_shrn_iscd", "")), CODE_WIDTH, "mksc_shrn_iscd")
            + _fit(str(values.get("stnd_iscd", "")), ISIN_WIDTH, "stnd_iscd")).encode("ascii")
    name = str(values.get("hts_kor_isnm", "")).encode(ENCODING, errors="replace")[:NAME_WIDTH]
    while True:   # never cut a double-byte character in half
        try:
            name.decode(ENCODING)
            break
        except UnicodeDecodeError:
            name = name[:-1]
    tail = []
    for fname, width in LAYOUTS[market]:
        v = values.get(fname)
        if v is None:
            v = False if fname.endswith("_yn") else ""
        tail.append(_fit(v, width, fname))
    return head + name.ljust(NAME_WIDTH, b" ") + "".join(tail).encode("ascii")


def write_file(records: Iterable[Mapping[str, object]], market: str) -> bytes:
    """A whole master file (CRLF line ends, as files made on KIS's side have)."""
    return b"".join(write_record(r, market) + b"\r\n" for r in records)


def zip_file(content: bytes, member: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(member, content)
    return buf.getvalue()


__all__ = ["CAP_UNIT", "GROUP_KINDS", "LAYOUTS", "MASTER_BASE_URL", "MASTER_FILES", "MasterFormatError",
           "MasterRecord", "SHARES_UNIT", "TAIL_WIDTH", "market_of_name", "parse_bytes", "parse_download",
           "parse_record", "split_record", "unzip_master", "write_file", "write_record", "zip_file"]
