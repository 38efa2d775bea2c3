"""A wrong app secret in paper mode is one clear message and exit status 2, not a ``KISAuthError`` traceback;
the secrets themselves appear nowhere in the output."""

from __future__ import annotations

import yaml

import run


def test_wrong_app_secret_in_paper_mode(emu, tmp_path, capsys, monkeypatch):
    good = emu.credentials("paper")
    wrong = "W" * len(good.appsecret)
    (tmp_path / "kis.env").write_text(f"KIS_APP_KEY={good.appkey}\nKIS_APP_SECRET={wrong}\n"
                                      f"KIS_ACCOUNT={good.account}\nKIS_HTS_ID={good.hts_id}\n")
    for name in ("KIS_APP_KEY", "KIS_APP_SECRET", "KIS_ACCOUNT", "KIS_HTS_ID"):
        monkeypatch.delenv(name, raising=False)
    cfg = {"name": "wrong-secret", "broker": {"mode": "paper", "kis": {
        "rest_url": good.rest_url, "ws_url": good.ws_url, "env_file": str(tmp_path / "kis.env"),
        "token_cache": str(tmp_path / "token.json"), "journal_url": f"sqlite:///{tmp_path / 'j.sqlite'}"}},
        "data": {"universe": ["005930"]}, "strategy": {"name": "buy_and_hold"}, "monitor": {"enabled": False}}
    (tmp_path / "paper.yaml").write_text(yaml.safe_dump(cfg))
    code = run.main(["paper", "--config", str(tmp_path / "paper.yaml"), "--out", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and lines[0].startswith("error: KIS:"), err
    assert "Traceback" not in out + err
    for secret in (good.appkey, good.appsecret, wrong):
        assert secret not in out + err
