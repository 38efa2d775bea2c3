"""Strategy parameters are typed and range-checked before a run starts, in every mode."""

from __future__ import annotations

import math

import pytest

from configs.schema import parse_config
from engine.backtest import check_strategy_params, load_inputs
from strategies.base import TargetStrategy
from strategies.examples import EXAMPLES
from strategies.params import Param, ParamError, describe_rules, validate_params

MOMENTUM = EXAMPLES["screen_momentum"]


def cfg_with(params: dict, name: str = "screen_momentum", mode: str = "backtest"):
    raw = {"name": "p", "strategy": {"name": name, "params": params}, "broker": {"mode": mode},
           "data": {"source": "demo", "demo": {"codes": 3, "start": "2024-01-02", "end": "2024-03-29"},
                    "universe": None}}
    return parse_config(raw, "p.yaml")


@pytest.mark.parametrize("name, value, needle", [
    ("top_n", "5", "text, not a number"),
    ("top_n", 0, "out of range"),
    ("top_n", 2.5, "not a whole number"),
    ("top_n", True, "a boolean, not a number"),
    ("top_n", None, "empty (null), not a number"),
    ("top_n", [5], "a list, not a number"),
    ("rebalance_every", 0, "out of range"),           # was a ZeroDivisionError inside on_bar
    ("rebalance_every", -3, "out of range"),
    ("rsi_max", math.nan, "not a finite number"),
    ("rsi_max", math.inf, "not a finite number"),
    ("rsi_max", 120.0, "out of range"),
    ("min_turnover_krw", -1.0, "out of range"),
    ("min_turnover_krw", 10**400, "implausibly large"),
    ("fast", {"a": 1}, "a mapping, not a number"),
])
def test_bad_values_name_parameter_value_and_what_is_allowed(name, value, needle):
    with pytest.raises(ParamError) as err:
        check_strategy_params(cfg_with({name: value}), MOMENTUM)
    msg = str(err.value)
    assert "p.yaml" in msg and f"{name} = {value!r}" in msg and needle in msg and "allowed:" in msg, msg


def test_every_problem_is_listed_at_once():
    with pytest.raises(ParamError) as err:
        validate_params(MOMENTUM, {"top_n": "5", "rebalance_every": 0, "colour": "red"})
    msg = str(err.value)
    assert "3 problem(s)" in msg and "'colour' is not a parameter" in msg


def test_cross_parameter_rule():
    with pytest.raises(ParamError, match="fast = 60 must be shorter than slow = 20"):
        validate_params(MOMENTUM, {"fast": 60, "slow": 20})


def test_internal_parameters_cannot_be_set_from_the_config():
    with pytest.raises(ParamError, match="'targets' is set from the config's strategy.targets file"):
        validate_params(MOMENTUM, {"targets": "x.csv"})
    with pytest.raises(ParamError, match="risk section"):
        validate_params(MOMENTUM, {"limits": {}})


def test_valid_values_pass_and_ints_are_accepted_for_floats():
    assert validate_params(MOMENTUM, {"top_n": 3, "rsi_max": 70, "check_after_bars": 2}) == \
        {"top_n": 3, "rsi_max": 70, "check_after_bars": 2}


def test_booleans_of_the_other_examples():
    with pytest.raises(ParamError, match="topup = 'yes' is text, not true/false"):
        validate_params(EXAMPLES["buy_and_hold"], {"topup": "yes"})
    with pytest.raises(ParamError, match="repeat = 1 is a number, not true/false"):
        validate_params(EXAMPLES["target_buy"], {"repeat": 1})


class UserStrategy(TargetStrategy):
    """A user's strategy that declares nothing: its defaults type its parameters."""

    params = (("lookback", 20), ("threshold", 0.5), ("label", "x"), ("enabled", True), ("anything", None))

    def on_bar(self) -> None:  # pragma: no cover - never run here
        pass


def test_undeclared_parameters_are_typed_by_their_defaults():
    validate_params(UserStrategy, {"lookback": 5, "threshold": 1, "label": "y", "enabled": False,
                                   "anything": [1, 2]})
    with pytest.raises(ParamError) as err:
        validate_params(UserStrategy, {"lookback": "5", "threshold": "0.5", "label": 3, "enabled": "no"})
    assert "4 problem(s)" in str(err.value)


def test_declared_rules_refine_along_the_class_hierarchy():
    class Child(UserStrategy):
        param_rules = {"lookback": Param(int, ge=2, le=10)}

    with pytest.raises(ParamError, match="lookback = 50 is out of range; allowed: a whole number >= 2 and <= 10"):
        validate_params(Child, {"lookback": 50})
    with pytest.raises(ParamError, match="check_after_bars"):
        validate_params(Child, {"check_after_bars": 0})        # the base class's rule still applies
    assert dict((n, a) for n, _d, a in describe_rules(Child))["lookback"] == "a whole number >= 2 and <= 10"


def test_checked_before_any_data_is_loaded(monkeypatch):
    import engine.backtest as eb

    monkeypatch.setattr(eb, "load_market_data", lambda *a, **k: pytest.fail("data loaded before the check"))
    with pytest.raises(ParamError):
        load_inputs(cfg_with({"rebalance_every": 0}))


def test_paper_sessions_check_parameters_before_connecting(tmp_path):
    from engine.live import build_live_session

    class NoNetwork:
        def __getattr__(self, name):
            pytest.fail(f"client.{name} used before the parameters were checked")

    cfg = cfg_with({"top_n": "5"}, mode="paper")
    with pytest.raises(ParamError, match="top_n = '5'"):
        build_live_session(cfg, client=NoNetwork(), ws_factory=lambda **_: None, credentials=object(),
                           now=lambda: None)
