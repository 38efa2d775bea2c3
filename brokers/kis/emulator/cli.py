"""``run.py emulator --config FILE``: run the emulator until SIGINT/SIGTERM.

The first line on stdout is one JSON object a script (or a human) can read the connection from::

    {"env": "paper", "rest_url": "http://127.0.0.1:53211", "ws_url": "ws://127.0.0.1:53212",
     "appkey": "PS…", "appsecret": "…", "account": "50000001-01", "hts_id": "emuuser",
     "admin_url": "http://127.0.0.1:53213", "admin_token": "…", "clock": "accelerated", "now": "…",
     "other_env": {…}}

then request log lines follow (method, path, TR id, masked key, status, message code, latency —
never secrets or tokens). Market data comes from the config's ``data:`` section through
``feeds.history.load_market_data`` — the only place the emulator depends on ``feeds``.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Callable

from brokers.kis.emulator.reference import ReferenceError
from configs.emulator_schema import EmulatorConfig, load_emulator_config
from configs.schema import ConfigError, DataConfig

Loader = Callable[[DataConfig], Any]


def load_bars(data: DataConfig) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """(bars, markets, names) from the project's feeds layer."""
    from feeds.history import load_market_data

    md = load_market_data(data)
    return dict(md.bars), dict(getattr(md, "markets", {}) or {}), dict(getattr(md, "names", {}) or {})


def build_emulator(cfg: EmulatorConfig, loader: Callable[[DataConfig], tuple[dict, dict, dict]] = load_bars):
    from brokers.kis.emulator.server import Emulator

    bars, markets, names = loader(cfg.data)
    if not bars:
        raise ConfigError("the data section produced no bars: nothing to replay")
    return Emulator(cfg, bars=bars, markets=markets, names=names)


def banner(emu: Any) -> dict[str, Any]:
    creds = emu.credentials()
    out: dict[str, Any] = creds.as_dict()
    out["admin_url"] = emu.admin_url
    out["admin_token"] = emu.admin_token
    out["clock"] = emu.clock.mode
    out["now"] = emu.now().isoformat()
    others = [e for e in emu.envs if e is not emu.primary_env]
    if others:
        out["other_env"] = emu.credentials(others[0]).as_dict()
    return out


def write_env_file(emu: Any, path: Path) -> None:
    """KIS_APP_KEY & co. for ``run.py paper`` (file mode 0600: the keys are secrets, even emulated)."""
    c = emu.credentials()
    text = (f"KIS_APP_KEY={c.appkey}\nKIS_APP_SECRET={c.appsecret}\n"
            f"KIS_ACCOUNT={c.cano}-{c.acnt_prdt_cd}\nKIS_HTS_ID={c.hts_id}\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.touch(mode=0o600)
    tmp.chmod(0o600)
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def main(config_path: str, *, stop_event: threading.Event | None = None,
         loader: Callable[[DataConfig], tuple[dict, dict, dict]] = load_bars, env_file: Path | None = None) -> int:
    """Start, print the banner line, serve until SIGINT/SIGTERM (or ``stop_event``), stop cleanly."""
    try:
        cfg = load_emulator_config(Path(config_path))
        emu = build_emulator(cfg, loader)
    except (ConfigError, ReferenceError) as exc:
        print(f"emulator: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:
        print(f"emulator: cannot load market data ({exc})", file=sys.stderr)
        return 2
    stop = stop_event or threading.Event()
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger = logging.getLogger("krx_trader.emulator")
    try:
        emu.start()
        if env_file is not None:
            write_env_file(emu, env_file)
        sys.stdout.write(json.dumps(banner(emu), ensure_ascii=False) + "\n")
        sys.stdout.flush()
        logger.addHandler(handler)  # only after the banner: it must stay the first line
        logger.setLevel(logging.INFO)
        while not stop.wait(0.5):
            pass
        return 0
    finally:
        emu.stop()
        logger.removeHandler(handler)
        for sig, prev in previous.items():
            signal.signal(sig, prev)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(sys.argv[1] if len(sys.argv) > 1 else "configs/emulator.yaml"))
