"""Shared fixtures of the research tests: a private panel cache, the real-data folder, a comparer.

The panel cache points at a temporary folder for the whole session (``KRX_PANEL_CACHE``), so tests
never read or write the user's ``~/.cache/krx-trader/panels``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "krx"


def needs_shared(fn):
    """Run only when ../shared/data/krx (real KRX bars) sits beside the repository."""
    return pytest.mark.shared_data(pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data/krx not present")(fn))


@pytest.fixture(autouse=True, scope="session")
def _panel_cache(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("KRX_PANEL_CACHE", str(tmp_path_factory.mktemp("panels")))
    yield
    mp.undo()


def fills(frame: pd.DataFrame) -> list[tuple]:
    """(date, code, side, qty, price, commission, tax) of every fill, sorted."""
    return sorted((r.datetime.date(), r.code, r.side, int(r.qty), float(r.price), int(r.commission), int(r.tax))
                  for r in frame.itertuples())


ORDER_KEYS = ["ref", "code", "side", "type", "qty", "status", "filled_qty", "reason"]
REFUSAL_KEYS = ["created", "code", "side", "qty", "reason"]


def assert_same_run(event, fast) -> None:
    """Fill for fill, equity and cash to the won, and the same orders and refusals."""
    assert fills(event.trades) == fills(fast.trades)
    pd.testing.assert_frame_equal(event.equity, fast.equity)
    eo, fo = event.orders, fast.orders
    pd.testing.assert_frame_equal(eo[eo.status != "Refused"][ORDER_KEYS].astype(str).reset_index(drop=True),
                                  fo[fo.status != "Refused"][ORDER_KEYS].astype(str).reset_index(drop=True))
    pd.testing.assert_frame_equal(eo[eo.status == "Refused"][REFUSAL_KEYS].astype(str).reset_index(drop=True),
                                  fo[fo.status == "Refused"][REFUSAL_KEYS].astype(str).reset_index(drop=True))
