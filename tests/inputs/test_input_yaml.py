"""The safe YAML loader and the strict config schema: every case the fuzzer found, as a named test.

Each test feeds what a user could really write and checks the one thing that matters: the run does not
start on a value that means something else than it looks like, and the message names the file, the
line or key, and the value.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from configs.errors import InputError
from configs.files import MAX_YAML_NODES, load_yaml, parse_yaml
from configs.schema import ConfigError, load_config

BASE = """\
name: t
data:
  source: demo
  demo: {codes: 3, start: 2024-01-02, end: 2024-06-28}
strategy:
  name: buy_and_hold
"""


def write(tmp_path: Path, text: str | bytes, name: str = "c.yaml") -> Path:
    p = tmp_path / name
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text, encoding="utf-8")
    return p


def refused(tmp_path: Path, text: str | bytes, *needles: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(InputError) as err:
        load_config(path)
    message = str(err.value)
    assert "c.yaml" in message, message
    for needle in needles:
        assert needle in message, message
    assert "Traceback" not in message
    return message


def test_the_base_config_is_valid(tmp_path):
    cfg = load_config(write(tmp_path, BASE))
    assert cfg.source.endswith("c.yaml") and cfg.data.demo.codes == 3


def test_duplicate_section_is_an_error_naming_both_lines(tmp_path):
    text = BASE + "risk:\n  limits: {stop_loss_pct: 3, max_position_pct: 10}\nreport: {risk_free_pct: 1}\n" \
                  "risk:\n  sizer: {kind: equal_weight}\n"
    msg = refused(tmp_path, text, "'risk'", "line 10", "line 7")
    assert "twice" in msg


def test_duplicate_key_inside_a_flow_mapping(tmp_path):
    refused(tmp_path, BASE + "broker: {cash: 1000000, cash: 2000000}\n", "'cash'", "twice")


@pytest.mark.parametrize("value, shown", [
    ("1:30:00", "'1:30:00'"),      # YAML 1.1: 5,400 (base 60)
    ("0777", "'0777'"),            # YAML 1.1: 511 (octal)
    ("yes", "'yes'"),              # YAML 1.1: True -> 1 KRW
    ("0x1F", "'0x1F'"),            # hex
    ("1,000,000", "'1,000,000'"),  # thousands separators
    ("'5000000'", "'5000000'"),    # quoted: text
    (".nan", "'.nan'"),
])
def test_cash_refuses_values_that_yaml_11_or_pydantic_would_reinterpret(tmp_path, value, shown):
    refused(tmp_path, BASE + f"broker:\n  cash: {value}\n", "broker.cash", shown)


def test_booleans_are_not_numbers(tmp_path):
    refused(tmp_path, BASE + "broker: {cash: true}\n", "broker.cash", "boolean")
    refused(tmp_path, BASE + "risk: {sizer: {kind: fixed_fraction, fraction: true}}\n", "risk.sizer.fraction",
            "boolean")


def test_numbers_are_not_dates(tmp_path):
    # pydantic's lax mode reads 20240102 as seconds since 1970
    refused(tmp_path, BASE.replace("start: 2024-01-02", "start: 20240102"), "data.demo.start", "not a date")


def test_invalid_calendar_date_names_the_line(tmp_path):
    refused(tmp_path, BASE.replace("start: 2024-01-02", "start: 2024-13-02"), "line 4", "2024-13-02")


def test_dates_outside_the_krx_calendar_are_refused(tmp_path):
    refused(tmp_path, BASE.replace("start: 2024-01-02", "start: 1900-01-02"), "data.demo.start", "calendar")


def test_huge_numbers_are_refused_before_python_builds_them(tmp_path):
    refused(tmp_path, BASE + "broker: {cash: " + "9" * 400 + "}\n", "400-digit")
    refused(tmp_path, BASE + "broker: {cash: 100000000000000000}\n", "broker.cash")


def test_alias_bomb_is_refused_quickly(tmp_path):
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8))
    started = time.perf_counter()
    refused(tmp_path, bomb + BASE, "aliases expand", f"{MAX_YAML_NODES:,}")
    assert time.perf_counter() - started < 5


def test_many_aliases_are_refused(tmp_path):
    text = "x: &x 1\nl: [" + ", ".join(["*x"] * 150) + "]\n"
    with pytest.raises(InputError, match="more than 100 aliases"):
        parse_yaml(text, "t.yaml")


def test_a_few_aliases_still_work():
    assert parse_yaml("a: &v 5\nb: *v\n", "t.yaml") == {"a": 5, "b": 5}


def test_deep_nesting_is_an_error_not_a_recursion_error(tmp_path):
    refused(tmp_path, "a: " + "[" * 5000 + "]" * 5000 + "\n", "nested")
    refused(tmp_path, "a:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 200)), "nested")


def test_merge_keys_are_refused():
    with pytest.raises(InputError, match="merge keys"):
        parse_yaml("base: &b {x: 1}\nother:\n  !!merge <<: *b\n", "t.yaml")


@pytest.mark.parametrize("data, needle", [
    (b"\x00\x01\x02binary", "binary file"),
    ("name: 한국\n".encode("cp949"), "CP949"),
    (b"name: \xff\xfe\n", "not UTF-8"),
])
def test_unreadable_bytes_name_the_file(tmp_path, data, needle):
    refused(tmp_path, data, needle)


def test_missing_file_folder_and_over_long_names(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(InputError, match="is a folder"):
        load_config(tmp_path)
    with pytest.raises(InputError, match="too long") as err:
        load_config(tmp_path / ("x" * 5000 + ".yaml"))
    assert len(str(err.value)) < 300          # the message stays one readable line


def test_oversized_file_is_refused(tmp_path):
    with pytest.raises(InputError, match="larger than"):
        load_yaml(write(tmp_path, "a: 1\n" + "#" * (2 << 20)))


def test_codes_stay_text_and_numbers_in_the_universe_are_refused(tmp_path):
    cfg = load_config(write(tmp_path, BASE.replace("source: demo", "source: demo\n  universe: [000660]")))
    assert cfg.data.universe == ["000660"]      # not the octal number 432
    refused(tmp_path, BASE.replace("source: demo", "source: demo\n  universe: [5930]"), "data.universe")


@pytest.mark.parametrize("url", ["nope://x", "postgresql+nodriver://h/db", "not a url", "sqlite:"])
def test_database_urls_are_checked_when_the_config_is_read(tmp_path, url):
    text = BASE.replace("source: demo", f"source: demo\n  cache_url: '{url}'")
    refused(tmp_path, text, "data.cache_url")


def test_passwords_in_database_urls_are_hidden(tmp_path):
    text = BASE.replace("source: demo", "source: demo\n  cache_url: 'nodialect://user:s3cret@host/db'")
    msg = refused(tmp_path, text, "data.cache_url")
    assert "s3cret" not in msg


@pytest.mark.parametrize("host, needle", [("''", "monitor.host"), ("'a b'", "monitor.host")])
def test_monitor_host_must_not_be_empty(tmp_path, host, needle):
    refused(tmp_path, BASE + f"monitor: {{host: {host}}}\n", needle)


def test_kis_urls_need_a_scheme_and_a_host(tmp_path):
    refused(tmp_path, BASE + "broker: {kis: {rest_url: '127.0.0.1:29443'}}\n", "broker.kis.rest_url")
    refused(tmp_path, BASE + "broker: {kis: {ws_url: 'http://127.0.0.1:1'}}\n", "broker.kis.ws_url")


def test_config_error_is_an_input_error():
    assert issubclass(ConfigError, InputError)


def test_emulator_config_goes_through_the_same_loader(tmp_path):
    from configs.emulator_schema import load_emulator_config

    path = write(tmp_path, "env: paper\nenv: real\n", "emu.yaml")
    with pytest.raises(InputError, match="'env' appears twice"):
        load_emulator_config(path)


def test_a_postgresql_url_for_a_driver_not_installed_names_the_url_to_write():
    """``postgresql://`` means psycopg2 to SQLAlchemy; the project installs psycopg (3)."""
    from configs.database import open_engine
    from configs.errors import InputError

    with pytest.raises(InputError) as ei:
        open_engine("postgresql+pg8000://bob:s3cret@127.0.0.1:1/krx", "data.cache_url")
    msg = str(ei.value)
    assert "data.cache_url" in msg and "'pg8000' is not installed" in msg and "postgresql+psycopg://" in msg
    assert "s3cret" not in msg
