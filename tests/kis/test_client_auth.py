"""Access tokens, the shared disk cache, the one-per-minute rule, expiry, approval key, credentials."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from brokers.kis import protocol as P
from brokers.kis.client import Credentials
from brokers.kis.errors import KISConfigError
from brokers.kis.tokencache import TokenCache



def test_token_cache_shared_by_two_clients_one_issuance(kit, emu, vt, tmp_path: Path, emu_log) -> None:
    cache = tmp_path / "cache" / "kis-token.json"
    a = kit.make_client(emu, "paper", vt, token_cache=cache)
    token = a.access_token()
    assert a.access_token() == token  # memory
    b = kit.make_client(emu, "paper", vt, token_cache=cache)
    assert b.access_token() == token  # disk, no issuance
    b.quote("005930")  # the cached token is accepted by the server
    assert len(emu_log.settled(emu, P.PATH_TOKEN)) == 1
    assert (a.stats.tokens_issued, b.stats.tokens_issued, b.stats.tokens_from_cache) == (1, 0, 1)
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert stat.S_IMODE(cache.parent.stat().st_mode) == 0o700
    text = cache.read_text()
    assert token in text and a.creds.app_key not in text and a.creds.app_secret not in text


def test_one_issuance_per_minute_when_the_token_expires(kit, emu, vt, tmp_path: Path, emu_log) -> None:
    """EGW00123 right after an issuance: invalidate, wait out the minute, re-issue once, retry once."""
    client = kit.make_client(emu, "paper", vt, token_cache=tmp_path / "t.json")
    old = client.access_token()
    assert emu.expire_tokens() == 1
    bal = client.balance()  # EGW00123 → re-issue (after waiting) → retried
    assert bal.holdings
    new = client.access_token()
    assert new != old
    assert client.stats.reauths == 1 and client.stats.tokens_issued == 2 and client.stats.token_waits == 1
    assert any(s >= P.TOKEN_ISSUE_INTERVAL_S for s in vt.sleeps)
    assert len(emu_log.settled(emu, P.PATH_TOKEN)) == 2
    assert not emu_log.settled(emu, " 403 ")  # never hammered tokenP into EGW00133
    assert len(emu_log.settled(emu, "EGW00123")) == 1


def test_server_throttle_egw00133_is_waited_out_not_hammered(kit, emu, vt, tmp_path: Path, emu_log) -> None:
    """A second process with its own cache file does not know about the first issuance."""
    a = kit.make_client(emu, "paper", vt, token_cache=tmp_path / "a.json")
    b = kit.make_client(emu, "paper", vt, token_cache=tmp_path / "b.json")
    token = a.access_token()
    assert b.access_token() == token  # KIS answers the same token within 6 h, after the minute
    assert b.stats.token_waits == 1 and b.stats.tokens_issued == 1
    assert len(emu_log.settled(emu, " 403 ")) == 1
    assert max(vt.sleeps) >= P.TOKEN_ISSUE_INTERVAL_S


def test_token_renewed_before_expiry(kit, make_emulator, tmp_path: Path, emu_log) -> None:
    emu = make_emulator(token={"lifetime_s": 7200, "reuse_window_s": 3600})
    vt = kit.VirtualTime(emu)
    client = kit.make_client(emu, "real", vt, token_cache=tmp_path / "t.json")
    first = client.access_token()
    emu.advance(timedelta(minutes=100))
    assert client.access_token() == first  # 20 min left: still fine
    emu.advance(timedelta(minutes=11))  # 9 min left < 10 min margin
    second = client.access_token()
    assert second != first
    assert client.stats.tokens_issued == 2 and client.stats.token_waits == 0
    client.quote("005930")
    assert len(emu_log.settled(emu, P.PATH_TOKEN)) == 2


def test_token_expiry_uses_expires_in_when_clocks_disagree(kit, emu, tmp_path: Path) -> None:
    """A client on the real wall clock against an emulator on 2025 time must not think every token
    is already expired (that would loop into EGW00133)."""
    vt = kit.VirtualTime(emu)
    c = emu.credentials("paper")
    from brokers.kis.client import KISClient

    client = KISClient(Credentials.from_mapping(c.as_dict()), "paper", c.rest_url, token_cache=tmp_path / "t.json",
                       clock=vt.monotonic, sleep=vt.sleep)  # default wallclock: now in Seoul
    t = client.access_token()
    assert client.access_token() == t
    assert client.stats.tokens_issued == 1


def test_revoke_then_reissue(kit, emu, vt, tmp_path: Path) -> None:
    client = kit.make_client(emu, "paper", vt, token_cache=tmp_path / "t.json")
    old = client.access_token()
    client.revoke()
    assert TokenCache(tmp_path / "t.json").load(client._cache_key).token is None
    vt.sleep(61)
    assert client.access_token() != old
    client.quote("005930")


def test_stale_cached_token_from_a_restarted_server_is_replaced(kit, make_emulator, tmp_path: Path, market_bars) -> None:
    """EGW00121 (unknown token, e.g. cached against a previous emulator run with the same key)."""
    appkey = "PS" + "k" * 34
    secret = "s" * 180
    cfg = {"paper": {"appkey": appkey, "appsecret": secret}}
    emu1 = make_emulator(**cfg)
    vt1 = kit.VirtualTime(emu1)
    cache = tmp_path / "t.json"
    c1 = kit.make_client(emu1, "paper", vt1, token_cache=cache)
    c1.access_token()
    port = emu1.rest_url("paper").rsplit(":", 1)[1]
    emu1.stop()
    emu2 = make_emulator(paper={"appkey": appkey, "appsecret": secret}, ports={"rest_paper": int(port)})
    vt2 = kit.VirtualTime(emu2)
    c2 = kit.make_client(emu2, "paper", vt2, token_cache=cache)
    assert c2.quote("005930").price > 0
    assert c2.stats.reauths == 1 and c2.stats.tokens_issued == 1


def test_approval_key_cached_and_refreshable(kit, emu, vt) -> None:
    client = kit.make_client(emu, "paper", vt)
    k1 = client.approval_key()
    assert len(k1) == 36 and client.approval_key() == k1
    k2 = client.approval_key(refresh=True)
    assert k2 != k1


def test_token_cache_lock_is_shared_across_processes(kit, tmp_path: Path) -> None:
    """The flock really excludes another process (the parent waits until the child lets go)."""
    path = tmp_path / "tok.json"
    root = Path(__file__).resolve().parents[2]
    child = subprocess.Popen(
        [sys.executable, "-c",
         "import sys; sys.path.insert(0, sys.argv[2]);"
         "from brokers.kis.tokencache import TokenCache;"
         "c = TokenCache(sys.argv[1]);\n"
         "with c.locked():\n"
         "    print('locked', flush=True); sys.stdin.readline()\n",
         str(path), str(root)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline().strip() == "locked"
        got = threading.Event()

        def grab() -> None:
            with TokenCache(path).locked():
                got.set()

        th = threading.Thread(target=grab)
        th.start()
        assert not got.wait(0.3)  # blocked by the child's lock
        child.stdin.write("\n")
        child.stdin.flush()
        assert got.wait(5.0)
        th.join(5.0)
    finally:
        child.kill()
        child.wait(5)


# ---- credentials -----------------------------------------------------------------------------


def test_credentials_from_env_file_and_masking(kit, tmp_path: Path) -> None:
    key, secret = "PS" + "a" * 34, "z" * 180
    f = tmp_path / ".env"
    f.write_text(f"# comment\nKIS_APP_KEY={key}\nexport KIS_APP_SECRET='{secret}'\nKIS_ACCOUNT=12345678-01\n"
                 "KIS_HTS_ID=myhts\n", encoding="utf-8")
    c = Credentials.from_env(f, environ={})
    assert (c.app_key, c.app_secret, c.cano, c.product_code, c.hts_id) == (key, secret, "12345678", "01", "myhts")
    text = repr(c) + str(c)
    assert key not in text and secret not in text and "12345678" not in text and "myhts" not in text
    assert "PSaa…(36)" in text and "1234****-01" in text
    # the process environment wins over the file; 10-digit accounts are accepted
    c2 = Credentials.from_env(f, environ={"KIS_ACCOUNT": "8765432103"})
    assert (c2.cano, c2.product_code) == ("87654321", "03")


def test_credentials_missing_variable_named_value_never_shown(kit, tmp_path: Path) -> None:
    with pytest.raises(KISConfigError) as ei:
        Credentials.from_env(None, environ={"KIS_APP_KEY": "PS" + "b" * 34})
    msg = str(ei.value)
    assert "KIS_APP_SECRET" in msg and "KIS_ACCOUNT" in msg and "b" * 10 not in msg
    with pytest.raises(KISConfigError) as ei:
        Credentials.from_env(None, environ={"KIS_APP_KEY": "k", "KIS_APP_SECRET": "s", "KIS_ACCOUNT": "99-secret-9"})
    assert "KIS_ACCOUNT" in str(ei.value) and "secret" not in str(ei.value).replace("KIS_APP_SECRET", "")
    env = {"KIS_PAPER_APP_KEY": "k" * 36, "KIS_PAPER_APP_SECRET": "s" * 180, "KIS_PAPER_ACCOUNT": "50000001"}
    assert Credentials.from_env(None, prefix="KIS_PAPER_", environ=env).product_code == "01"
    assert os.environ.get("KIS_APP_KEY") is None or True  # never touched the real environment
