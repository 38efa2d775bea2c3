"""The Monitor: a small local web dashboard for paper/live runs, and the JSON API behind it.

``MonitorServer`` serves one page and a JSON API over the standard library's
``ThreadingHTTPServer`` (the stack the KIS emulator already uses: no framework, no build step, full
control over status codes and headers). It knows nothing about KIS or backtrader: it asks a
*source* for data and hands it commands:

* ``source.state() -> dict`` — account, positions, Trade Target progress ("Data2"), open orders,
  today's fills, the intraday equity curve, reconciliation status, feed states, the event log;
* ``source.equity() -> DataFrame`` — for the equity chart (drawn by ``analysis.charts``, so the
  dashboard and the backtest report share their look with ``analysis.styles``);
* ``source.command(name, args) -> dict`` — ``cancel`` (one order), ``cancel_all``, ``stop``;
  sources that only read (a journal after the fact) refuse them.

The page refreshes itself by short polling (``poll_ms``) — no page reload. The API and the controls
need the token printed at start-up (``X-Monitor-Token`` header or ``?token=``); every control asks
for a confirmation in the page first. The server binds to 127.0.0.1 unless configured otherwise.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

import pandas as pd

from analysis import styles

log = logging.getLogger("krx.monitor")


class DashboardSource(Protocol):
    read_only: bool

    def state(self) -> dict[str, Any]: ...

    def equity(self) -> pd.DataFrame: ...

    def command(self, name: str, args: dict[str, Any]) -> dict[str, Any]: ...


class MonitorServer:
    """Dashboard + JSON API for one source. ``start()`` returns at once; ``url`` includes the token."""

    def __init__(self, source: DashboardSource, *, host: str = "127.0.0.1", port: int = 0, poll_ms: int = 1000,
                 token: str | None = None, title: str = "krx-trader monitor", chart_every_s: float = 10.0) -> None:
        self.source = source
        self.poll_ms = poll_ms
        self.token = token or secrets.token_urlsafe(24)
        self.title = title
        self.chart_every_s = chart_every_s
        self._chart: tuple[float, bytes] | None = None
        self._chart_lock = threading.Lock()
        handler = type("_Handler", (_Handler,), {"monitor": self})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def url(self) -> str:
        """The page's address with the token: what the user opens (printed at start-up)."""
        return f"{self.base_url}/?token={self.token}"

    def start(self) -> "MonitorServer":
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="monitor-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def authorised(self, supplied: str | None) -> bool:
        return bool(supplied) and hmac.compare_digest(str(supplied), self.token)

    def chart_png(self) -> bytes:
        """The intraday equity chart, redrawn at most every ``chart_every_s`` (matplotlib is slow)."""
        from analysis.charts import equity_chart, placeholder_chart

        with self._chart_lock:
            now = time.monotonic()
            if self._chart is None or now - self._chart[0] >= self.chart_every_s:
                eq = self.source.equity()
                png = equity_chart(eq) if len(eq) >= 2 else placeholder_chart("waiting for equity points",
                                                                               "Intraday equity")
                self._chart = (now, png)
            return self._chart[1]

    def page(self) -> str:
        return PAGE.replace("%%CSS%%", styles.CSS + PAGE_CSS).replace("%%TITLE%%", self.title) \
            .replace("%%POLL%%", str(int(self.poll_ms)))


class _Handler(BaseHTTPRequestHandler):
    monitor: MonitorServer
    server_version = "krx-monitor"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet; the token is in URLs
        return

    def _send(self, status: int, body: bytes, ctype: str, cache: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store" if not cache else "max-age=5")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy",
                         "default-src 'self'; img-src 'self' data:; style-src 'unsafe-inline'; "
                         "script-src 'unsafe-inline'; connect-src 'self'")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj: Any) -> None:
        self._send(status, json.dumps(obj, ensure_ascii=False, default=str).encode("utf-8"),
                   "application/json; charset=utf-8")

    def _token_ok(self, query: dict[str, list[str]]) -> bool:
        supplied = self.headers.get("X-Monitor-Token") or (query.get("token") or [None])[0]
        return self.monitor.authorised(supplied)

    def do_GET(self) -> None:  # noqa: N802
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        if parts.path in ("/", "/index.html"):
            self._send(200, self.monitor.page().encode("utf-8"), "text/html; charset=utf-8")
            return
        if parts.path == "/api/health":
            self._json(200, {"ok": True})
            return
        if not self._token_ok(query):
            self._json(401, {"error": "token required: open the URL printed at start-up"})
            return
        try:
            if parts.path == "/api/state":
                state = dict(self.monitor.source.state())
                state["read_only"] = self.monitor.source.read_only
                state["served_wall_ms"] = time.time() * 1000
                self._json(200, state)
            elif parts.path == "/api/equity.png":
                self._send(200, self.monitor.chart_png(), "image/png", cache=True)
            else:
                self._json(404, {"error": f"no such resource {parts.path}"})
        except Exception as exc:  # noqa: BLE001 - the page shows the error, the process keeps running
            log.exception("monitor: %s failed", parts.path)
            self._json(500, {"error": type(exc).__name__})

    def do_POST(self) -> None:  # noqa: N802
        parts = urlsplit(self.path)
        if not self._token_ok(parse_qs(parts.query)):
            self._json(401, {"error": "token required"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        try:
            args = json.loads(self.rfile.read(length) or b"{}") if length else {}
        except json.JSONDecodeError:
            self._json(400, {"error": "body must be JSON"})
            return
        name = {"/api/cancel": "cancel", "/api/cancel_all": "cancel_all", "/api/stop": "stop"}.get(parts.path)
        if name is None:
            self._json(404, {"error": f"no such control {parts.path}"})
            return
        if self.monitor.source.read_only:
            self._json(409, {"error": "this dashboard reads a journal: there is no running trader to control"})
            return
        if not isinstance(args, dict):
            self._json(400, {"error": "body must be a JSON object"})
            return
        result = self.monitor.source.command(name, args)
        self._json(200 if not result.get("error") else 400, result)


PAGE_CSS = """
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 16px; }
.controls button { margin-right: 8px; padding: 6px 14px; border-radius: 6px; border: 1px solid #999; cursor: pointer; }
button.danger { background: #b91c1c; color: #fff; border-color: #7f1d1d; }
button.small { padding: 2px 8px; font-size: 12px; }
.status { font-size: 13px; color: #6b7280; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; background: #e5e7eb; }
.badge.ok { background: #dcfce7; color: #166534; } .badge.bad { background: #fee2e2; color: #991b1b; }
.bar { height: 8px; background: #e5e7eb; border-radius: 4px; overflow: hidden; min-width: 80px; }
.bar > span { display: block; height: 100%; background: #2e86ab; }
#events { max-height: 260px; overflow-y: auto; }
"""

PAGE = """<!doctype html>
<html lang="ko"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>%%TITLE%%</title><style>%%CSS%%</style></head>
<body><main>
<header><h1>%%TITLE%%</h1>
<p class="status"><span id="mode"></span> · exchange time <span id="clock">–</span> ·
 feed <span id="ws" class="badge">–</span> · reconciliation <span id="recon" class="badge">–</span>
 · <span id="updated">connecting…</span></p>
<div id="stopped-banner" class="banner-live" hidden></div>
<div class="controls"><button id="cancel-all">Cancel all orders</button>
<button id="stop-trading" class="danger">Stop trading</button> <span id="control-status" class="status"></span></div>
</header>
<section class="cards" id="cards"></section>
<div class="grid">
<section><h2>Positions</h2><table class="data" id="positions"><thead><tr><th>code</th><th>shares</th><th>avg</th><th>last</th>
<th>value</th><th>P&amp;L</th><th>%</th></tr></thead><tbody></tbody></table></section>
<section><h2>Trade Target progress (Data2)</h2><table class="data" id="targets"><thead><tr><th>code</th><th>status</th>
<th>shares</th><th>capital used</th><th>allocation</th><th>avg</th><th>return</th><th>to target</th><th>abs. return</th>
</tr></thead><tbody></tbody></table></section>
<section><h2>Open orders</h2><table class="data" id="orders"><thead><tr><th>ref</th><th>KIS no.</th><th>code</th><th>side</th>
<th>qty</th><th>filled</th><th>price</th><th>state</th><th></th></tr></thead><tbody></tbody></table></section>
<section><h2>Today's fills</h2><table class="data" id="fills"><thead><tr><th>time</th><th>code</th><th>side</th><th>qty</th>
<th>price</th><th>commission</th><th>tax</th></tr></thead><tbody></tbody></table></section>
<section><h2>Intraday equity</h2><img id="equity" alt="intraday equity chart" style="max-width:100%"></section>
<section><h2>Feeds and reconciliation</h2><table class="data" id="feeds"><thead><tr><th>code</th><th>state</th></tr></thead>
<tbody></tbody></table><p id="recon-detail" class="status"></p></section>
</div>
<section><h2>Event log</h2><div id="events"><table class="data"><thead><tr><th>time</th><th>kind</th><th>code</th><th>message</th>
</tr></thead><tbody></tbody></table></div></section>
</main>
<script>
"use strict";
const params = new URLSearchParams(location.search);
const TOKEN = params.get("token") || sessionStorage.getItem("krx-token") || "";
if (TOKEN) sessionStorage.setItem("krx-token", TOKEN);
const POLL = %%POLL%%;
window.__renders = [];
const krw = v => (v === null || v === undefined || Number.isNaN(v)) ? "–" : Math.round(v).toLocaleString("ko-KR");
const pct = v => (v === null || v === undefined || Number.isNaN(v)) ? "–" : v.toFixed(2) + "%";
function cell(tr, text, cls) { const td = document.createElement("td"); td.textContent = text; if (cls) td.className = cls; tr.appendChild(td); return td; }
function fill(id, rows, build) {
  const body = document.querySelector("#" + id + " tbody"); body.replaceChildren();
  for (const r of rows) { const tr = document.createElement("tr"); build(tr, r); body.appendChild(tr); }
}
const sign = v => v > 0 ? "pos" : (v < 0 ? "neg" : "");
function bar(tr, fraction) {
  const td = document.createElement("td"); const b = document.createElement("div"); b.className = "bar";
  const s = document.createElement("span"); s.style.width = Math.max(0, Math.min(100, fraction || 0)) + "%";
  b.appendChild(s); td.appendChild(b); td.title = pct(fraction); tr.appendChild(td);
}
async function control(path, body, question) {
  if (!confirm(question)) return;
  const status = document.getElementById("control-status");
  try {
    const r = await fetch(path, {method: "POST", headers: {"X-Monitor-Token": TOKEN, "Content-Type": "application/json"},
                                 body: JSON.stringify(body || {})});
    const j = await r.json(); status.textContent = r.ok ? ("sent: " + (j.message || "queued")) : ("refused: " + j.error);
  } catch (e) { status.textContent = "failed: " + e; }
}
document.getElementById("cancel-all").onclick = () => control("/api/cancel_all", {}, "Cancel every open order?");
document.getElementById("stop-trading").onclick = () =>
  control("/api/stop", {reason: "stopped from the dashboard"}, "Stop trading? All open orders are cancelled and no new entries are made.");
function render(s) {
  document.getElementById("mode").textContent = (s.name || "") + " · " + (s.mode || "");
  document.getElementById("clock").textContent = s.clock || "–";
  const ws = document.getElementById("ws"); ws.textContent = s.ws || "–"; ws.className = "badge " + (s.ws === "CONNECTED" ? "ok" : "bad");
  const rc = s.reconciliation || {}; const recon = document.getElementById("recon");
  recon.textContent = rc.ok === null || rc.ok === undefined ? "not yet" : (rc.ok ? "OK" : "MISMATCH");
  recon.className = "badge " + (rc.ok === false ? "bad" : (rc.ok ? "ok" : ""));
  document.getElementById("recon-detail").textContent = (rc.checked_at ? "last check " + rc.checked_at + " — " : "") + (rc.message || "");
  const a = s.account || {};
  const cards = [["Equity", krw(a.equity) + " KRW"], ["Cash", krw(a.cash) + " KRW"], ["D+2 cash (KIS)", krw(a.cash_d2) + " KRW"],
                 ["Day P&L", krw(a.day_pnl) + " KRW"]];
  const box = document.getElementById("cards"); box.replaceChildren();
  for (const [k, v] of cards) { const d = document.createElement("div"); d.className = "card";
    const t = document.createElement("div"); t.className = "label"; t.textContent = k;
    const n = document.createElement("div"); n.className = "value"; n.textContent = v; d.append(t, n); box.appendChild(d); }
  const banner = document.getElementById("stopped-banner");
  banner.hidden = !s.trading_stopped; banner.textContent = s.trading_stopped ? "TRADING STOPPED: " + (s.stop_reason || "") : "";
  fill("positions", s.positions || [], (tr, p) => { cell(tr, p.code); cell(tr, krw(p.shares)); cell(tr, krw(p.avg_price));
    cell(tr, krw(p.last)); cell(tr, krw(p.value)); cell(tr, krw(p.pnl), sign(p.pnl)); cell(tr, pct(p.pnl_pct), sign(p.pnl)); });
  fill("targets", s.targets || [], (tr, t) => { tr.dataset.code = t.code; cell(tr, t.code); cell(tr, t.status);
    cell(tr, krw(t.shares)); cell(tr, krw(t.capital_used) + " / " + krw(t.max_capital)); bar(tr, t.allocation_used_pct);
    cell(tr, krw(t.avg_price)); cell(tr, pct(t.current_return_pct), sign(t.current_return_pct)); bar(tr, t.target_progress_pct);
    cell(tr, krw(t.absolute_return), sign(t.absolute_return)); });
  fill("orders", s.orders || [], (tr, o) => { tr.dataset.ref = o.ref; cell(tr, o.ref); cell(tr, o.odno || "–"); cell(tr, o.code);
    cell(tr, o.side); cell(tr, krw(o.qty)); cell(tr, krw(o.filled)); cell(tr, o.price ? krw(o.price) : "market"); cell(tr, o.state);
    const td = document.createElement("td"); if (!s.read_only) { const b = document.createElement("button"); b.className = "small";
      b.textContent = "Cancel"; b.onclick = () => control("/api/cancel", {ref: o.ref}, "Cancel order " + o.ref + " (" + o.code + ")?");
      td.appendChild(b); } tr.appendChild(td); });
  fill("fills", s.fills || [], (tr, f) => { cell(tr, f.time); cell(tr, f.code); cell(tr, f.side, f.side === "buy" ? "side-BUY" : "side-SELL");
    cell(tr, krw(f.qty)); cell(tr, krw(f.price)); cell(tr, krw(f.commission)); cell(tr, krw(f.tax)); });
  fill("feeds", Object.entries(s.feeds || {}), (tr, [code, st]) => { cell(tr, code); cell(tr, st); });
  fill("events", (s.events || []).slice().reverse(), (tr, e) => { cell(tr, e.time); cell(tr, e.kind); cell(tr, e.code || ""); cell(tr, e.message); });
  for (const id of ["cancel-all", "stop-trading"]) document.getElementById(id).disabled = !!s.read_only;
  document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
  window.__renders.push({built: s.built_wall_ms, served: s.served_wall_ms, rendered: Date.now(), fills: (s.fills || []).length});
}
async function poll() {
  try {
    const r = await fetch("/api/state", {headers: {"X-Monitor-Token": TOKEN}});
    if (r.status === 401) { document.getElementById("updated").textContent = "token missing or wrong: open the URL printed at start-up"; }
    else if (r.ok) { render(await r.json()); }
  } catch (e) { document.getElementById("updated").textContent = "monitor unreachable: " + e; }
  setTimeout(poll, POLL);
}
function chart() { document.getElementById("equity").src = "/api/equity.png?token=" + encodeURIComponent(TOKEN) + "&t=" + Date.now();
  setTimeout(chart, 10000); }
poll(); chart();
</script></body></html>
"""
