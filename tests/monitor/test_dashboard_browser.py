"""The dashboard in headless Chromium, on a paper run against the emulator.

A trader runs ``target_buy`` on 1-minute bars against the in-process emulator; its dashboard is
opened in Debian's Chromium through Playwright. The test watches a fill appear and the Trade
Target progress move on the page, presses "Stop trading", accepts the confirmation, and checks at
the emulator that every open order was cancelled. Screenshots go to ``test-artifacts/``; alerts go
to a local webhook receiver.
"""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest

from analysis.alerts import AlertRouter, WebhookSink
from configs.schema import DemoDataConfig
from engine.monitoring import attach_monitor
from feeds.demo import generate_demo_market
from harness import app_config, at, make_emulator, start_trader

playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
DAY = date(2025, 3, 5)
CHROME_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync"]


def test_fill_progress_and_stop_trading_in_the_browser(tmp_path, receiver):
    demo = generate_demo_market(DemoDataConfig(codes=2, start=date(2024, 9, 2), end=DAY, seed=11))
    a, b = list(demo.bars)
    emu = make_emulator(demo.bars, demo.markets, at(DAY, 9, 0))
    try:
        close = {c: float(demo.bars[c]["close"].iloc[-2]) for c in (a, b)}
        targets = tmp_path / "targets.csv"
        # A: a target above the market fills at once; B: far below the market, it rests
        targets.write_text("code,target_buy_price,target_return_pct,max_capital,stop_loss_pct\n"
                           f"{a},{int(close[a] * 1.05)},50,3000000,\n{b},{int(close[b] * 0.75)},50,3000000,\n")
        cfg = app_config({"name": "target_buy", "targets": str(targets)}, [a, b],
                         broker={"mode": "paper", "kis": {"bar": "1min", "order_window": "extended",
                                                          "reconcile_every_s": 3600}},
                         monitor={"poll_ms": 200})
        trader = start_trader(emu, cfg, tmp_path, until=at(DAY, 15, 40))
        router = AlertRouter([WebhookSink(receiver.url)], secrets=[emu.credentials("paper").appkey])
        server, source, _ = attach_monitor(trader.session, cfg, router=router)
        try:
            trader.step_to(at(DAY, 9, 1, ) .replace(second=5))
            trader.step_to(at(DAY, 9, 2).replace(second=5))      # orders out at the first live bar
            trader.step_to(at(DAY, 9, 3).replace(second=5))      # A fills at the next prints
            ARTIFACTS.mkdir(exist_ok=True)
            with playwright.sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 1600})
                page.goto(server.url)
                page.wait_for_selector("#fills tbody tr", timeout=20_000)
                row = page.locator(f"#targets tbody tr[data-code='{a}']")
                row.wait_for(timeout=10_000)
                used = row.locator("td").nth(3).inner_text()
                assert not used.startswith("0 "), f"capital used should have moved: {used!r}"
                assert page.locator(f"#orders tbody tr").count() >= 1, "B's limit order rests"
                page.screenshot(path=str(ARTIFACTS / "dashboard-after-fill.png"), full_page=True)

                page.on("dialog", lambda d: d.accept())
                page.click("#stop-trading")
                page.wait_for_selector("#stopped-banner:not([hidden])", timeout=20_000)
                trader.settle()                                  # the cancels reach KIS and come back
                # (the page's CSP forbids eval, so no wait_for_function: Playwright's own assertions)
                playwright.expect(page.locator("#orders tbody tr")).to_have_count(0, timeout=20_000)
                page.screenshot(path=str(ARTIFACTS / "dashboard-after-stop.png"), full_page=True)
                browser.close()
            orders = emu.account_summary("paper")["orders"]
            placed = [o for o in orders if o["kind"] == "new"]
            assert placed and all(o["open"] == 0 for o in placed), f"every open order cancelled at KIS: {orders}"
            assert any(o["kind"] == "cancel" and o["code"] == b for o in orders)
            assert trader.session.cerebro.runningstrats[0].trading_stopped
            assert router.flush()
            kinds = {body["kind"] for _, body in receiver.drain()}
            assert {"fill", "kill_switch"} <= kinds
        finally:
            server.stop()
            router.close()
    finally:
        for t in list(__import__("harness").RUNNING):
            t.close()
        emu.stop()
