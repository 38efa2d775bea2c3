"""Trade Target Manager: Data1 loading/validation and Data2 progress arithmetic."""

import math
from pathlib import Path

import pytest

from strategies.targets import TargetBook, TargetFileError, TargetProgress, TargetStatus, TradeTarget, load_targets

HEADER = "code,target_buy_price,target_return_pct,max_capital,stop_loss_pct\n"


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_csv_and_yaml_load_the_same_targets(tmp_path):
    csv_path = write(tmp_path, "t.csv", HEADER + "005930,70000,10,5000000,5\n000660,120000,15.5,3000000,\n")
    yaml_path = write(tmp_path, "t.yaml", "targets:\n"
                      "  - {code: '005930', target_buy_price: 70000, target_return_pct: 10, max_capital: 5000000, stop_loss_pct: 5}\n"
                      "  - {code: '000660', target_buy_price: 120000, target_return_pct: 15.5, max_capital: 3000000}\n")
    a, b = load_targets(csv_path), load_targets(yaml_path)
    assert a.codes == b.codes == ["005930", "000660"]
    assert a.get("000660").stop_loss_pct is None and a.get("005930").stop_loss_pct == 5
    assert a.frame().equals(b.frame())


@pytest.mark.parametrize("row,needle", [
    ("005930,-5,10,5000000,", "row 2: field 'target_buy_price' value '-5'"),
    ("005930,70000,abc,5000000,", "row 2: field 'target_return_pct' value 'abc'"),
    ("5930,70000,10,5000000,", "row 2: field 'code' value '5930'"),
    ("005930,70000,10,0,", "row 2: field 'max_capital' value '0'"),
    ("005930,70000,10,5000000,150", "row 2: field 'stop_loss_pct' value '150'"),
    ("005930,70000.5,10,5000000,", "field 'target_buy_price' value '70000.5'"),
])
def test_csv_errors_name_file_row_field_value(tmp_path, row, needle):
    path = write(tmp_path, "bad.csv", HEADER + row + "\n")
    with pytest.raises(TargetFileError) as err:
        load_targets(path)
    assert str(path) in str(err.value) and needle in str(err.value)


def test_csv_missing_column_and_duplicates(tmp_path):
    with pytest.raises(TargetFileError, match=r"missing column\(s\) \['max_capital'\]"):
        load_targets(write(tmp_path, "a.csv", "code,target_buy_price,target_return_pct\n005930,1,1\n"))
    with pytest.raises(TargetFileError, match="row 3: field 'code' value '005930': duplicate of row 2"):
        load_targets(write(tmp_path, "b.csv", HEADER + "005930,1,1,1,\n005930,2,2,2,\n"))


def test_yaml_errors(tmp_path):
    with pytest.raises(TargetFileError, match="read as a number"):
        load_targets(write(tmp_path, "a.yaml", "- {code: 660, target_buy_price: 1, target_return_pct: 1, max_capital: 1}\n"))
    with pytest.raises(TargetFileError, match="expected a list"):
        load_targets(write(tmp_path, "b.yaml", "code: '005930'\n"))
    with pytest.raises(TargetFileError, match="unknown|Extra inputs"):
        load_targets(write(tmp_path, "c.yaml", "- {code: '005930', target_buy_price: 1, target_return_pct: 1, "
                                                "max_capital: 1, colour: red}\n"))
    with pytest.raises(TargetFileError, match="not found"):
        load_targets(tmp_path / "missing.csv")
    with pytest.raises(TargetFileError, match="unsupported extension"):
        load_targets(write(tmp_path, "t.json", "[]"))


def test_progress_fills_prices_and_returns():
    book = TargetBook([TradeTarget(code="005930", target_buy_price=70_000, target_return_pct=10,
                                   max_capital=1_000_000)])
    p = TargetProgress(book)
    p.on_fill("005930", 10, 70_000, costs=98)
    p.on_fill("005930", 4, 68_500, costs=38)
    row = p.frame().loc["005930"]
    assert row["shares"] == 14 and row["capital_used"] == 974_000   # 700,000 + 274,000
    assert row["avg_price"] == pytest.approx(974_000 / 14, abs=0.01)
    assert p.capital_left("005930") == 26_000
    p.on_price("005930", 75_000)
    row = p.frame().loc["005930"]
    assert row["current_return_pct"] == pytest.approx((75_000 / (974_000 / 14) - 1) * 100)
    assert row["absolute_return"] == 14 * 75_000 - 974_000 - 98 - 38     # unrealised minus costs paid
    p.on_fill("005930", -14, 77_000, costs=2_300)
    row = p.frame().loc["005930"]
    assert row["shares"] == 0 and row["status"] == TargetStatus.DONE.value
    assert row["absolute_return"] == 14 * 77_000 - 974_000 - 98 - 38 - 2_300
    assert math.isnan(row["current_return_pct"])


def test_progress_marks_a_loss_exit_as_stopped():
    book = TargetBook([TradeTarget(code="005930", target_buy_price=70_000, target_return_pct=10, max_capital=10**6)])
    p = TargetProgress(book)
    p.on_fill("005930", 10, 70_000, costs=0)
    p.on_fill("005930", -10, 65_000, costs=0)
    assert p.status("005930") == TargetStatus.STOPPED
