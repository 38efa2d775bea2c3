"""KIS-format stock master files for the emulator's codes, served like KIS's download host serves them.

KIS publishes ``kospi_code.mst.zip``, ``kosdaq_code.mst.zip`` and ``konex_code.mst.zip`` every morning
(``brokers.kis.master.MASTER_BASE_URL``). The emulator builds the same files from its reference data
(``reference.py``: names, markets, kinds, sectors, shares, par value, listing dates, dated designations,
published statements) and its bars (기준가 = the previous close, 전일거래량), as of the emulated day, and
serves them with plain GETs (no token: KIS's host needs none) under ``master_files.path`` on every REST
port — so ``run.py data master --from <emulator>/common/master`` is tested offline.

Field by field (layout and units in ``brokers/kis/master.py``): group code from the kind (ST, EF, EN,
RT, …), SPAC and preferred flags, 거래정지 / 정리매매 / 관리종목 / 투자주의·경고·위험 / 불성실공시 /
단기과열 from the designations in force that day, shares in thousands, market cap in 억원, and the
latest annual statement published by that day in the finance fields (억원, clipped to the field widths).
"""

from __future__ import annotations

import threading
from datetime import date
from typing import Callable

from brokers.kis.emulator.marketdata import BarStore
from brokers.kis.emulator.reference import GROUP_CODE, ReferenceData
from brokers.kis.master import CAP_UNIT, MASTER_FILES, SHARES_UNIT, write_file, zip_file

WARNING_CODES = (("risk", "03"), ("warning", "02"), ("caution", "01"))
EOK = 100_000_000


def _eok(v: int | None) -> int:
    return int(round((v or 0) / EOK))


class MasterFiles:
    """The three zips of one emulated day, built on first request and kept until the day changes."""

    def __init__(self, reference: ReferenceData, store: BarStore, current_day: Callable[[], date]) -> None:
        self.reference = reference
        self.store = store
        self.current_day = current_day
        self._lock = threading.Lock()
        self._built: tuple[date, dict[str, bytes]] | None = None

    def records(self, day: date) -> dict[str, list[dict[str, object]]]:
        """market → wire-named field values of every code listed on ``day`` in that market."""
        out: dict[str, list[dict[str, object]]] = {m: [] for m in MASTER_FILES}
        for code in sorted(self.reference.securities):
            snap = self.reference.snapshot(code, day)
            sec = self.reference.get(code)
            if snap is None or sec is None or not snap.listed or snap.market not in out:
                continue
            prev = self.store.previous_close(code, day) if self.store.knows(code) else None
            base = self.store.base_price(code, day) if self.store.knows(code) else None
            base = base or (prev[0] if prev else 0)
            annual = self.reference.statements(code, "annual", day)
            st = annual[-1] if annual else None
            d = snap.designations
            warn = next((c for k, c in WARNING_CODES if k in d), "00")
            roe = (st.net_income or 0) / st.total_equity * 100 if st and st.total_equity else 0.0
            sector = snap.sector
            out[snap.market].append({
                "mksc_shrn_iscd": code, "stnd_iscd": sec.isin, "hts_kor_isnm": snap.name,
                "scrt_grp_cls_code": GROUP_CODE.get(snap.kind, "ST") if snap.market != "KONEX" or snap.kind != "stock"
                else "KN",
                "avls_scal_cls_code": "0",
                "bstp_larg_div_code": sector.code.zfill(4) if sector else "0000",
                "bstp_medm_div_code": (sector.medium_code or "").zfill(4) if sector else "0000",
                "bstp_smal_div_code": (sector.small_code or "").zfill(4) if sector else "0000",
                "kospi200_apnt_cls_code": "9" if sec.kospi200 else "0",
                "etp_prod_cls_code": {"etf": "1", "etn": "3"}.get(snap.kind, "0"),
                "etpr_undt_objt_co_yn": snap.kind == "spac",
                "short_over_cls_code": "2" if "overheated" in d else "0",
                "krx_issu_yn": True, "kospi_issu_yn": snap.market == "KOSPI",
                "stck_sdpr": int(base), "frml_mrkt_deal_qty_unit": 1, "ovtm_mrkt_deal_qty_unit": 1,
                "trht_yn": "halted" in d, "sltr_yn": "liquidation" in d, "mang_issu_yn": "admin_issue" in d,
                "mrkt_alrm_cls_code": warn, "mrkt_alrm_risk_adnt_yn": False,
                "insn_pbnt_yn": "unfaithful_disclosure" in d, "byps_lstn_yn": False,
                "flng_cls_code": "00", "fcam_mod_cls_code": "00", "icic_cls_code": "00", "marg_rate": 40,
                "crdt_able": True, "crdt_days": 150, "prdy_vol": int(prev[1]) if prev else 0,
                "stck_fcam": snap.par_value, "stck_lstn_date": sec.listing_date,
                "lstn_stcn": snap.shares_listed // SHARES_UNIT, "cpfn": snap.capital,
                "stac_month": f"{sec.fiscal_month:02d}", "po_prc": sec.ipo_price or 0,
                "prst_cls_code": "2" if snap.kind == "preferred" else "0",
                "ssts_hot_yn": False, "stange_runup_yn": False, "krx300_issu_yn": False,
                "sale_account": _eok(st.revenue) if st else 0, "bsop_prfi": _eok(st.operating_income) if st else 0,
                "op_prfi": _eok(st.ordinary_income) if st else 0, "thtr_ntin": _eok(st.net_income) if st else 0,
                "roe": round(roe * 100) if st else 0,      # hundredths of a percent, as the file's 9 digits hold
                "base_date": st.period_end if st else "",
                "prdy_avls_scal": int(base) * snap.shares_listed // CAP_UNIT,
                "grp_code": "000", "co_crdt_limt_over_yn": False, "secu_lend_able_yn": True, "stln_able_yn": False,
            })
        return out

    def files(self) -> dict[str, bytes]:
        """file name (``kospi_code.mst.zip`` …) → zip bytes of the current emulated day."""
        day = self.current_day()
        with self._lock:
            if self._built is None or self._built[0] != day:
                recs = self.records(day)
                self._built = (day, {f"{MASTER_FILES[m]}.zip": zip_file(write_file(rows, m), MASTER_FILES[m])
                                     for m, rows in recs.items()})
            return self._built[1]


__all__ = ["MasterFiles"]
