"""What the Monitor shows and controls, for a running paper/live session or a journal after the fact.

``LiveSource`` hooks into a running ``LiveSession``: at the end of each broker turn (cerebro's
thread, where backtrader objects may be touched) it runs queued dashboard commands, forwards
events to the alert router, and at most every ``publish_s`` builds a fresh state dict that the
HTTP threads only read. Every ``snapshot_every_s`` that state also goes into the journal, so
``run.py monitor --journal URL`` (``JournalSource``) can show the same page after the run — or
after a crash.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from analysis.alerts import Alert, AlertRouter
from brokers.kis.journal import Journal
from market.calendar import KST

EVENT_LIMIT = 150
JOURNAL_EVENT_KINDS = ("start", "alert", "reconcile", "rejected", "recovered", "ws", "timeout", "duplicate",
                       "queued", "error", "control")


def _num(v: Any) -> Any:
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None
    if hasattr(v, "item"):
        return _num(v.item())
    return v


def _iso(ts: Any) -> str | None:
    if ts is None:
        return None
    if isinstance(ts, datetime):
        return (ts if ts.tzinfo else ts.replace(tzinfo=KST)).astimezone(KST).isoformat(timespec="seconds")
    return str(ts)


class _Fills:
    """Today's fills from the journal, cached briefly (HTTP threads ask once per poll)."""

    def __init__(self, journal: Journal, ttl: float = 0.3) -> None:
        self.journal, self.ttl = journal, ttl
        self._at, self._day, self._rows = 0.0, None, []

    def today(self, day) -> list[dict[str, Any]]:
        if self._day != day or time.monotonic() - self._at > self.ttl:
            since = datetime(day.year, day.month, day.day, tzinfo=KST)
            self._rows = [{"time": f["ts"].astimezone(KST).strftime("%H:%M:%S"), "code": f["code"], "side": f["side"],
                           "qty": f["qty"], "price": f["price"], "commission": f["commission"], "tax": f["tax"],
                           "odno": f["odno"], "source": f["source"]}
                          for f in self.journal.all_fills(since=since)]
            self._day, self._at = day, time.monotonic()
        return self._rows


class LiveSource:
    """The dashboard's view of a running session (and its controls)."""

    read_only = False

    def __init__(self, session, router: AlertRouter | None = None, *, publish_s: float = 0.2,
                 snapshot_every_s: float = 10.0, disconnect_after_s: float = 30.0) -> None:
        self.session = session
        self.store = session.store
        self.broker = session.broker
        self.journal: Journal = session.store.journal
        self.router = router
        self.publish_s = publish_s
        self.snapshot_every_s = snapshot_every_s
        self.disconnect_after_s = disconnect_after_s
        self._state: dict[str, Any] = {"name": session.cfg.name, "mode": session.cfg.broker.mode, "starting": True}
        self._equity: list[tuple[datetime, float]] = []
        self._commands: "queue.Queue[tuple[str, dict[str, Any], threading.Event, dict[str, Any]]]" = queue.Queue()
        self._fills = _Fills(self.journal)
        self._last_publish = 0.0
        self._dirty = True            # something happened: publish at the end of this broker turn
        self._last_snapshot = 0.0
        self._events_seen = 0
        self._down_since: float | None = None
        self._down_alerted = False
        self._day = None
        self._day_start: float | None = None
        self.store.on_loop.append(self._on_loop)
        self.broker.listeners.append(self._on_broker_event)

    # ------------------------------------------------------------------ cerebro's thread
    @property
    def strategy(self):
        strats = getattr(self.session.cerebro, "runningstrats", None) or []
        return strats[0] if strats else None

    def _on_loop(self) -> None:
        self._run_commands()
        strat = self.strategy
        if strat is not None:
            self._forward_strategy_events(strat)
        self._watch_disconnect()
        now = time.monotonic()
        if self._dirty or now - self._last_publish >= self.publish_s:
            self._dirty = False
            self._last_publish = now
            self._state = self._build(strat)
            if now - self._last_snapshot >= self.snapshot_every_s:
                self._last_snapshot = now
                self.journal.log("snapshot", "dashboard state", payload={
                    k: self._state.get(k) for k in ("clock", "account", "positions", "targets", "feeds", "ws",
                                                    "trading_stopped", "stop_reason", "name", "mode")})

    def _run_commands(self) -> None:
        while True:
            try:
                name, args, done, result = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                result.update(self._execute(name, args))
            except Exception as exc:  # noqa: BLE001 - reported to the page
                result["error"] = f"{type(exc).__name__}: {exc}"
            finally:
                self._dirty = True
                done.set()

    def _execute(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        strat = self.strategy
        if strat is None:
            return {"error": "the strategy has not started yet"}
        self.journal.log("control", f"dashboard: {name} {args}")
        if name == "stop":
            reason = str(args.get("reason") or "stopped from the dashboard")[:200]
            open_before = len(strat.open_orders)
            strat.stop_trading(reason)
            return {"message": f"trading stopped; cancel sent for {open_before} open order(s)"}
        if name == "cancel_all":
            cancelled = strat.cancel_all()
            return {"message": f"cancel sent for {len(cancelled)} order(s)"}
        if name == "cancel":
            try:
                ref = int(args.get("ref"))
            except (TypeError, ValueError):
                return {"error": f"ref must be an order ref number, got {args.get('ref')!r}"}
            order = strat.open_orders.get(ref)
            if order is None:
                return {"error": f"order {ref} is not open"}
            strat.cancel(order)
            strat._expect("cancel", order.data._name, ref, f"cancel of ref {ref} (dashboard)")
            return {"message": f"cancel sent for order {ref}"}
        return {"error": f"unknown control {name!r}"}

    def _forward_strategy_events(self, strat) -> None:
        events = strat.events
        for e in events[self._events_seen:]:
            kind = {"kill_switch": "kill_switch", "check_failed": "error"}.get(e["kind"])
            if kind and self.router is not None:
                self.router.notify(Alert(kind, e["kind"].replace("_", " "), f"{e.get('code') or ''} {e['message']}".strip(),
                                         at=self.store.now()))
        self._events_seen = len(events)

    def _on_broker_event(self, kind: str, data: dict[str, Any]) -> None:
        self._dirty = True
        if self.router is None:
            return
        at = self.store.now()
        if kind == "fill":
            self.router.notify(Alert("fill", f"fill {data['side']} {data['code']}",
                                     f"{data['qty']:,} sh @ {data['price']:,.0f} KRW (order {data['odno']})", at=at))
        elif kind == "rejection":
            self.router.notify(Alert("rejection", f"rejected {data['side']} {data['code']}",
                                     f"{data['qty']:,} sh: {data['reason']}", at=at))
        elif kind == "alert":
            mapped = "reconcile_mismatch" if data["alert_kind"] in ("reconcile_mismatch", "foreign_order") else "error"
            self.router.notify(Alert(mapped, data["alert_kind"].replace("_", " "), data["message"], at=at))

    def _watch_disconnect(self) -> None:
        state = getattr(self.broker, "ws_state", "")
        now = time.monotonic()
        if state == "CONNECTED":
            if self._down_alerted and self.router is not None:
                self.router.notify(Alert("disconnect", "WebSocket back",
                                         f"reconnected after {now - (self._down_since or now):.0f} s", at=self.store.now()))
            self._down_since, self._down_alerted = None, False
            return
        if state in ("DISCONNECTED", "CONNECTING") and self._ever_connected():
            if self._down_since is None:
                self._down_since = now
            elif not self._down_alerted and now - self._down_since >= self.disconnect_after_s:
                self._down_alerted = True
                if self.router is not None:
                    self.router.notify(Alert("disconnect", "WebSocket down",
                                             f"no connection to KIS for {now - self._down_since:.0f} s; "
                                             "fills will be recovered on reconnect", at=self.store.now()))

    def _ever_connected(self) -> bool:
        return self.store.connected.is_set() or self.store.reconnects > 0 or self.store.pings > 0 or \
            self._state.get("ws") == "CONNECTED"

    def _build(self, strat) -> dict[str, Any]:
        b = self.broker
        clock = self.store.now()
        equity = float(b.getvalue())
        if self._day != clock.date():
            self._day, self._day_start = clock.date(), equity
        if not self._equity or self._equity[-1][1] != equity or clock - self._equity[-1][0] >= timedelta(minutes=1):
            self._equity.append((clock, equity))
            del self._equity[:-5000]
        positions = []
        for code, pos in sorted(b.positions.items()):
            if not pos.size:
                continue
            last = b._price_of(code, pos.price)
            value = pos.size * last
            pnl = (last - pos.price) * pos.size
            positions.append({"code": code, "shares": int(pos.size), "avg_price": round(pos.price, 2), "last": last,
                              "value": round(value), "pnl": round(pnl),
                              "pnl_pct": (last / pos.price - 1) * 100 if pos.price else None})
        targets = []
        if strat is not None:
            frame = strat.progress.frame()
            for code, row in frame.iterrows():
                targets.append({"code": code, **{k: _num(v) for k, v in row.items()}})
        orders = [{"ref": lo.order.ref, "odno": lo.odno, "code": lo.code, "side": lo.side, "qty": lo.qty,
                   "filled": lo.filled, "price": lo.price, "state": lo.state}
                  for lo in b.open_live_orders()]
        check = self.store.account.last_check
        feeds = {}
        for data in self.session.cerebro.datas:
            feeds[data._name] = data._getstatusname(data._laststatus) if hasattr(data, "_laststatus") else "?"
        snap = self.store.account.last_snapshot
        events = []
        if strat is not None:
            for e in strat.events[-EVENT_LIMIT:]:
                events.append({"time": _iso(e["datetime"]), "kind": e["kind"], "code": e.get("code") or "",
                               "message": e["message"]})
        return {
            "name": self.session.cfg.name, "mode": self.session.cfg.broker.mode, "clock": _iso(clock),
            "account": {"cash": round(b.cash), "cash_d2": snap.cash if snap else None, "equity": round(equity),
                        "day_start_equity": round(self._day_start or equity),
                        "day_pnl": round(equity - (self._day_start or equity))},
            "positions": positions, "targets": targets, "orders": orders, "feeds": feeds,
            "ws": getattr(b, "ws_state", ""),
            "reconciliation": {"ok": check.ok if check else None, "checked_at": _iso(check.at) if check else None,
                               "message": check.describe() if check else "no check yet"},
            "trading_stopped": bool(strat.trading_stopped) if strat is not None else False,
            "stop_reason": strat.stop_reason if strat is not None else None,
            "equity": [[_iso(t), round(v)] for t, v in self._equity[-500:]],
            "events": events, "alerts": len(b.alerts), "built_wall_ms": time.time() * 1000,
        }

    # ------------------------------------------------------------------ HTTP threads
    def state(self) -> dict[str, Any]:
        state = dict(self._state)
        clock = self.store.now()
        state["fills"] = self._fills.today(clock.astimezone(KST).date())
        return state

    def equity(self) -> pd.DataFrame:
        points = list(self._equity)
        if not points:
            return pd.DataFrame(columns=["value"])
        return pd.DataFrame({"value": [v for _, v in points]},
                            index=pd.DatetimeIndex([t for t, _ in points], name="datetime"))

    def command(self, name: str, args: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        done, result = threading.Event(), {}
        self._commands.put((name, args, done, result))
        if not done.wait(timeout):
            return {"error": "the trader did not take the command in time (is it running?)"}
        return result


class JournalSource:
    """The dashboard from a journal alone (after the run, or of another process). Read-only."""

    read_only = True

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self._fills = _Fills(journal)

    def _snapshots(self, limit: int = 2000) -> list[dict[str, Any]]:
        return [e for e in self.journal.events(kinds=["snapshot"], limit=limit)]

    def state(self) -> dict[str, Any]:
        snaps = self._snapshots(1)
        last = snaps[-1]["payload"] if snaps else {}
        clock = last.get("clock")
        events = self.journal.events(kinds=JOURNAL_EVENT_KINDS, limit=EVENT_LIMIT)
        fills_all = self.journal.all_fills()
        day = datetime.fromisoformat(clock).date() if clock else (fills_all[-1]["ts"].date() if fills_all else None)
        recon = [e for e in events if e["kind"] == "reconcile"]
        orders = [{"ref": i.bt_ref, "odno": i.odno, "code": i.code, "side": i.side, "qty": i.qty,
                   "filled": i.filled_qty, "price": i.price, "state": i.state} for i in self.journal.open_intents()]
        return {
            "name": last.get("name", "journal"), "mode": f"{last.get('mode', '?')} (journal, read-only)",
            "clock": clock, "account": last.get("account", {}), "positions": last.get("positions", []),
            "targets": last.get("targets", []), "feeds": last.get("feeds", {}), "ws": last.get("ws", ""),
            "orders": orders, "fills": self._fills.today(day) if day else [],
            "reconciliation": {"ok": recon[-1]["payload"].get("ok") if recon else None,
                               "checked_at": _iso(recon[-1]["ts"]) if recon else None,
                               "message": recon[-1]["message"] if recon else "no check in the journal"},
            "trading_stopped": last.get("trading_stopped", False), "stop_reason": last.get("stop_reason"),
            "events": [{"time": _iso(e["ts"]), "kind": e["kind"], "code": "", "message": e["message"]}
                       for e in events],
            "built_wall_ms": time.time() * 1000,
        }

    def equity(self) -> pd.DataFrame:
        rows = [(datetime.fromisoformat(s["payload"]["clock"]), s["payload"]["account"]["equity"])
                for s in self._snapshots() if s["payload"].get("clock") and s["payload"].get("account")]
        if not rows:
            return pd.DataFrame(columns=["value"])
        return pd.DataFrame({"value": [v for _, v in rows]},
                            index=pd.DatetimeIndex([t for t, _ in rows], name="datetime"))

    def command(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        return {"error": "read-only: a journal cannot be controlled"}


def attach_monitor(session, cfg, secrets: list[str] = (), router: AlertRouter | None = None):
    """Start the dashboard (and alerts) for a session per ``cfg.monitor``; returns (server, source, router)."""
    from analysis.alerts import router_from_config
    from analysis.monitor import MonitorServer

    m = cfg.monitor
    router = router or router_from_config(m.alerts, secrets=secrets)
    source = LiveSource(session, router, snapshot_every_s=m.snapshot_every_s,
                        disconnect_after_s=m.alerts.disconnect_after_s)
    server = MonitorServer(source, host=m.host, port=m.port, poll_ms=m.poll_ms, token=m.token,
                           title=f"krx-trader · {cfg.name} ({cfg.broker.mode})").start()
    return server, source, router
