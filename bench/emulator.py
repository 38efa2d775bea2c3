"""Benchmark of the KIS emulator: REST requests/s (vs the real environment's limit) and WebSocket
frames/s with 40 subscriptions streaming, and whether the emulator kept up with its clock.

    .venv/bin/python bench/emulator.py [--keys 20] [--seconds 5] [--day-seconds 60] [--codes 40]

Three phases, all over real loopback sockets:

1. **paced** — ``--keys`` app keys, each with a client thread pacing ``inquire-price`` calls at the
   real environment's per-key limit (18/s, PROTOCOL §5.1); the emulator's own token buckets are on.
   Reports sustained successful req/s against ``keys × 18``, the share answered ``EGW00201``, and
   latency percentiles.
2. **capacity** — the rate limit off, a few threads as fast as they can: the ceiling of the REST
   server on this machine.
3. **stream** — one WebSocket session with 40 ``H0STCNT0`` registrations on an accelerated clock
   (a trading day in ``--day-seconds``); counts frames/records received per second, and measures
   the engine's lag behind its clock (pump) and how stale the newest received print is.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import threading
import time
from datetime import datetime, time as dtime
from pathlib import Path

import requests
import websockets

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from brokers.kis.emulator.clock import AcceleratedClock  # noqa: E402
from brokers.kis.emulator.server import Emulator  # noqa: E402
from configs.emulator_schema import EmulatorConfig  # noqa: E402
from market.calendar import KST  # noqa: E402

REAL_LIMIT_PER_KEY = 18.0
PRICE = "/uapi/domestic-stock/v1/quotations/inquire-price"


def load_bars(codes: int) -> tuple[dict, dict, dict]:
    """Demo market from the project's feeds (synthetic, deterministic)."""
    from configs.schema import DataConfig
    from feeds.history import load_market_data

    md = load_market_data(DataConfig(source="demo", demo={"codes": codes, "start": "2025-01-02",
                                                          "end": "2025-06-30"}))
    return dict(md.bars), dict(md.markets), dict(md.names)


def token(creds) -> str:
    r = requests.post(creds.rest_url + "/oauth2/tokenP", json={
        "grant_type": "client_credentials", "appkey": creds.appkey, "appsecret": creds.appsecret}, timeout=10)
    return r.json()["access_token"]


def hammer(creds, code: str, seconds: float, pace: float | None, out: dict) -> None:
    """One client: GET inquire-price for ``seconds``, paced at ``pace`` req/s (None = flat out)."""
    http = requests.Session()
    headers = {"authorization": f"Bearer {token(creds)}", "appkey": creds.appkey, "appsecret": creds.appsecret,
               "tr_id": "FHKST01010100", "custtype": "P"}
    params = {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": code}
    ok = limited = other = 0
    lat: list[float] = []
    start = time.perf_counter()
    n = 0
    while True:
        now = time.perf_counter()
        if now - start >= seconds:
            break
        if pace:
            if n / pace >= seconds:      # exactly seconds × pace requests, evenly spaced
                break
            due = start + n / pace
            if due > now:
                time.sleep(due - now)
        n += 1
        t0 = time.perf_counter()
        r = http.get(creds.rest_url + PRICE, headers=headers, params=params, timeout=10)
        lat.append(time.perf_counter() - t0)
        if r.status_code == 200 and r.json()["rt_cd"] == "0":
            ok += 1
        elif r.status_code == 500 and r.json().get("msg_cd") == "EGW00201":
            limited += 1
        else:
            other += 1
    out.update(ok=ok, limited=limited, other=other, lat=lat, elapsed=time.perf_counter() - start)


def run_clients(creds_list, code: str, seconds: float, pace: float | None) -> dict:
    results = [dict() for _ in creds_list]
    threads = [threading.Thread(target=hammer, args=(c, code, seconds, pace, results[i]))
               for i, c in enumerate(creds_list)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = max(r["elapsed"] for r in results)
    lat = sorted(x for r in results for x in r["lat"])
    return {"ok": sum(r["ok"] for r in results), "limited": sum(r["limited"] for r in results),
            "other": sum(r["other"] for r in results), "elapsed": elapsed,
            "p50_ms": 1000 * lat[len(lat) // 2] if lat else 0.0,
            "p99_ms": 1000 * lat[int(len(lat) * 0.99)] if lat else 0.0}


def rest_phase(bars, markets, names, keys: int, seconds: float) -> None:
    start = datetime(2025, 6, 2, 10, 0, tzinfo=KST)
    cfg = EmulatorConfig.model_validate({"env": "real", "real": {"extra_apps": keys - 1}, "log_requests": False,
                                         "ws": {"ping_interval_s": None}})
    code = sorted(bars)[0]
    with Emulator(cfg, bars=bars, markets=markets, names=names,
                  clock=AcceleratedClock(start, day_seconds=86_400)) as emu:
        creds = emu.all_credentials()
        res = run_clients(creds, code, seconds, REAL_LIMIT_PER_KEY)
        rate = res["ok"] / max(res["elapsed"], seconds)
        target = keys * REAL_LIMIT_PER_KEY
        total = res["ok"] + res["limited"] + res["other"]
        print(f"REST paced   : {keys} keys x {REAL_LIMIT_PER_KEY:.0f} req/s (real-env limit per key) -> "
              f"{rate:7.1f} req/s sustained of {target:.0f} offered "
              f"({100 * rate / target:5.1f} %), EGW00201 {100 * res['limited'] / max(total, 1):.1f} %, "
              f"other errors {res['other']}, p50 {res['p50_ms']:.1f} ms, p99 {res['p99_ms']:.1f} ms")
    cfg = EmulatorConfig.model_validate({"env": "real", "real": {"extra_apps": 3}, "log_requests": False,
                                         "rate_limit": {"enabled": False}, "ws": {"ping_interval_s": None}})
    with Emulator(cfg, bars=bars, markets=markets, names=names,
                  clock=AcceleratedClock(start, day_seconds=86_400)) as emu:
        res = run_clients(emu.all_credentials(), code, seconds, None)
        rate = res["ok"] / res["elapsed"]
        print(f"REST capacity: 4 clients flat out, rate limit off -> {rate:7.1f} req/s "
              f"(= {rate / REAL_LIMIT_PER_KEY:.0f} keys at the real limit), p50 {res['p50_ms']:.1f} ms, "
              f"p99 {res['p99_ms']:.1f} ms")


def stream_phase(bars, markets, names, seconds: float, day_seconds: float) -> None:
    codes = sorted(bars)[:40]
    cfg = EmulatorConfig.model_validate({"env": "real", "log_requests": False, "ws": {"ping_interval_s": None},
                                         "clock": {"pump_interval_s": 0.02}})
    start = datetime(2025, 6, 2, 9, 0, tzinfo=KST)
    clock = AcceleratedClock(start, day_seconds=day_seconds)
    with Emulator(cfg, bars=bars, markets=markets, names=names, clock=clock) as emu:
        creds = emu.credentials()
        approval = requests.post(creds.rest_url + "/oauth2/Approval", json={
            "grant_type": "client_credentials", "appkey": creds.appkey, "secretkey": creds.appsecret}).json()[
            "approval_key"]
        stats: dict = {"frames": 0, "records": 0, "stale": []}

        async def go() -> None:
            async with websockets.connect(creds.ws_url + "/tryitout", ping_interval=None, max_size=None) as ws:
                for code in codes:
                    await ws.send(json.dumps({"header": {"approval_key": approval, "custtype": "P", "tr_type": "1",
                                                         "content-type": "utf-8"},
                                              "body": {"input": {"tr_id": "H0STCNT0", "tr_key": code}}}))
                acks = 0
                stats["t0"] = time.monotonic()
                t_end = stats["t0"] + seconds
                while time.monotonic() < t_end:
                    try:
                        raw = await asyncio.wait_for(ws.recv(), max(0.01, t_end - time.monotonic()))
                    except asyncio.TimeoutError:
                        break
                    if raw.startswith("{"):
                        acks += 1
                        continue
                    _, tr, count, payload = raw.split("|", 3)
                    n = int(count)
                    stats["frames"] += 1
                    stats["records"] += n
                    last_time = payload.split("^")[46 * (n - 1) + 1]
                    now = clock.now()
                    printed = datetime.combine(now.date(), dtime(int(last_time[:2]), int(last_time[2:4]),
                                                                 int(last_time[4:])), KST)
                    emu_s = (now - printed).total_seconds()
                    stats["stale"].append(emu_s * day_seconds / clock._window_len)  # wall seconds
                stats["t1"] = time.monotonic()
                assert acks == len(codes), f"{acks} acks for {len(codes)} registrations"

        asyncio.run(go())
        elapsed = stats["t1"] - stats["t0"]
        st = emu.status()
    stale = sorted(stats["stale"]) or [0.0]
    p99 = stale[int(len(stale) * 0.99)]
    to_wall = day_seconds / clock._window_len
    lag_wall = st["pump"]["max_lag_s"] * to_wall
    kept_up = lag_wall < 0.25 and p99 < 0.25
    interval = 20 * to_wall  # wall seconds between two prints of one code (tick_interval_s 20)
    print(f"WS stream    : {len(codes)} subscriptions, a trading day in {day_seconds:.0f} s -> "
          f"{stats['frames'] / elapsed:7.1f} frames/s, {stats['records'] / elapsed:7.1f} prints/s "
          f"({stats['records'] / max(stats['frames'], 1):.1f} per frame)")
    print(f"clock        : engine lag max {lag_wall * 1000:.0f} ms wall ({st['pump']['max_lag_s']:.1f} s emulated), busy max "
          f"{st['pump']['max_busy_s'] * 1000:.0f} ms per pump; newest print age p50 "
          f"{statistics.median(stale) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms wall (one print per code every "
          f"{interval * 1000:.0f} ms) -> kept up with its clock: {'yes' if kept_up else 'NO'}")


def main() -> int:
    ap = argparse.ArgumentParser(description="KIS emulator benchmark")
    ap.add_argument("--keys", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--day-seconds", type=float, default=60.0)
    ap.add_argument("--codes", type=int, default=40)
    args = ap.parse_args()
    bars, markets, names = load_bars(max(args.codes, 40))
    rest_phase(bars, markets, names, args.keys, args.seconds)
    stream_phase(bars, markets, names, args.seconds, args.day_seconds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
