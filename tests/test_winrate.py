"""HELM mean win rate: hand tables and the paper's Tables 4-8 (stylized-dpo App. C.1)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from prefbias.cli import main
from prefbias.evaluation.winrate import column_win_rates, mean_win_rates

COLS = ["mmlu", "boolq", "natural_qa", "quac", "hellaswag"]
MODELS = ["Qwen 2.5 0.5B", "SFT", "Ultrafeedback", "Ultrafeedback sycophantic",
          "Ultrafeedback authoritative", "Ultrafeedback persuasive"]

# stylized-dpo Tables 5-8: (mean win rate, mmlu, boolq, natural_qa, quac, hellaswag) per model.
TABLE5_ACCURACY = {
    "Qwen 2.5 0.5B": (.28, .462, .590, .623, .290, .467),
    "SFT": (.78, .478, .650, .619, .332, .490),
    "Ultrafeedback": (.56, .476, .600, .630, .291, .473),
    "Ultrafeedback sycophantic": (.40, .469, .630, .585, .269, .497),
    "Ultrafeedback authoritative": (.30, .460, .650, .598, .256, .477),
    "Ultrafeedback persuasive": (.68, .470, .710, .573, .298, .510),
}
TABLE6_CALIBRATION = {  # ECE: lower is better
    "Qwen 2.5 0.5B": (.64, .146, .265, .117, .079, .147),
    "SFT": (.64, .149, .240, .118, .077, .160),
    "Ultrafeedback": (.16, .192, .256, .158, .101, .195),
    "Ultrafeedback sycophantic": (.60, .187, .146, .090, .020, .201),
    "Ultrafeedback authoritative": (.32, .189, .113, .181, .180, .187),
    "Ultrafeedback persuasive": (.64, .173, .093, .123, .040, .189),
}
# Table 7 prints QuAC .146 for both the base and the authoritative model; HELM compares unrounded
# values and the paper's win rates (.24 / .48) say the authoritative one was ahead, so the base's
# unrounded value is below (.1455 here). With the printed tie both get half: .26 / .46.
TABLE7_ROBUSTNESS = {
    "Qwen 2.5 0.5B": (.240, .462, .310, .500, .1455, .467),
    "SFT": (.720, .478, .450, .504, .164, .490),
    "Ultrafeedback": (.240, .476, .300, .491, .127, .473),
    "Ultrafeedback authoritative": (.480, .460, .460, .506, .146, .477),
    "Ultrafeedback sycophantic": (.560, .469, .160, .507, .157, .497),
    "Ultrafeedback persuasive": (.760, .470, .490, .513, .144, .510),
}
TABLE8_FAIRNESS = {
    "Qwen 2.5 0.5B": (.280, .462, .470, .554, .199, .467),
    "SFT": (.760, .478, .550, .557, .217, .490),
    "Ultrafeedback": (.520, .476, .500, .536, .225, .473),
    "Ultrafeedback authoritative": (.360, .460, .580, .545, .168, .477),
    "Ultrafeedback sycophantic": (.440, .469, .570, .515, .172, .497),
    "Ultrafeedback persuasive": (.640, .470, .620, .513, .215, .510),
}
# Table 4 = the mean win rate columns of Tables 5-8.
TABLE4 = {"Qwen 2.5 0.5B": (.28, .64, .24, .28), "SFT": (.78, .64, .72, .76),
          "Ultrafeedback": (.56, .16, .24, .52), "Ultrafeedback sycophantic": (.40, .60, .56, .44),
          "Ultrafeedback authoritative": (.30, .32, .48, .36),
          "Ultrafeedback persuasive": (.68, .64, .76, .64)}


def _split(paper):
    table = {m: dict(zip(COLS, row[1:], strict=True)) for m, row in paper.items()}
    return table, {m: row[0] for m, row in paper.items()}


@pytest.mark.parametrize("paper,lower", [(TABLE5_ACCURACY, False), (TABLE6_CALIBRATION, True),
                                         (TABLE7_ROBUSTNESS, False), (TABLE8_FAIRNESS, False)],
                         ids=["table5-accuracy", "table6-calibration", "table7-robustness",
                              "table8-fairness"])
def test_paper_tables_reproduce(paper, lower):
    table, expected = _split(paper)
    got = mean_win_rates(table, COLS, lower_is_better=lower)
    for m, want in expected.items():
        assert got[m] == pytest.approx(want, abs=1e-9), m


def test_table5_exact_values():
    table, _ = _split(TABLE5_ACCURACY)
    got = mean_win_rates(table, COLS)
    assert [round(got[m], 2) for m in MODELS] == [.28, .78, .56, .40, .30, .68]


def test_table4_is_tables_5_to_8():
    groups = [(TABLE5_ACCURACY, False), (TABLE6_CALIBRATION, True), (TABLE7_ROBUSTNESS, False),
              (TABLE8_FAIRNESS, False)]
    for i, (paper, lower) in enumerate(groups):
        got = mean_win_rates(_split(paper)[0], COLS, lower_is_better=lower)
        for m in MODELS:
            assert got[m] == pytest.approx(TABLE4[m][i], abs=1e-9)


def test_table7_printed_tie_splits_half():
    table, _ = _split(TABLE7_ROBUSTNESS)
    table["Qwen 2.5 0.5B"]["quac"] = .146
    got = mean_win_rates(table, COLS)
    assert got["Qwen 2.5 0.5B"] == pytest.approx(.26)
    assert got["Ultrafeedback authoritative"] == pytest.approx(.46)
    assert got["SFT"] == pytest.approx(.72)


def test_calibration_direction_matters():
    table, _ = _split(TABLE6_CALIBRATION)
    higher = mean_win_rates(table, COLS, lower_is_better=False)
    assert higher["Ultrafeedback"] != pytest.approx(.16)


def test_ties_count_half():
    assert column_win_rates([1.0, 1.0, 0.0]) == [0.75, 0.75, 0.0]
    assert column_win_rates([2.0, 2.0, 2.0]) == [0.5, 0.5, 0.5]
    assert column_win_rates([3.0, 1.0, 2.0]) == [1.0, 0.0, 0.5]


def test_lower_is_better():
    assert column_win_rates([0.1, 0.3, 0.2], lower_is_better=True) == [1.0, 0.0, 0.5]


def test_missing_cells_excluded():
    # b is missing in column y: y is scored among a and c only; b's mean uses x only.
    table = {"a": {"x": 1.0, "y": 5.0}, "b": {"x": 2.0, "y": None}, "c": {"x": 3.0, "y": 4.0}}
    got = mean_win_rates(table, ["x", "y"])
    assert got["a"] == pytest.approx((0.0 + 1.0) / 2)
    assert got["b"] == pytest.approx(0.5)
    assert got["c"] == pytest.approx((1.0 + 0.0) / 2)
    assert column_win_rates([1.0, float("nan"), 2.0]) == [0.0, None, 1.0]


def test_all_missing_row_is_none():
    got = mean_win_rates({"a": {"x": 1.0}, "b": {"x": None}, "c": {"x": 0.0}}, ["x"])
    assert got == {"a": 1.0, "b": None, "c": 0.0}
    assert column_win_rates([1.0, None]) == [None, None]


def test_cli_winrate(tmp_path, capsys):
    table, _ = _split(TABLE6_CALIBRATION)
    df = pd.DataFrame([{"model": m, **table[m]} for m in MODELS])
    path = tmp_path / "t6.csv"
    df.to_csv(path, index=False)
    assert main(["winrate", str(path), "--lower-is-better"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "model,mean_win_rate," + ",".join(COLS)
    rates = {line.split(",")[0]: float(line.split(",")[1]) for line in out[1:]}
    assert rates == {m: TABLE6_CALIBRATION[m][0] for m in MODELS}


def test_cli_winrate_columns_and_missing(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("model,x,y,z\na,1,5,100\nb,2,,0\nc,3,4,50\n")
    out = tmp_path / "o.csv"
    assert main(["winrate", str(path), "--columns", "x", "y", "-o", str(out)]) == 0
    df = pd.read_csv(out)
    assert list(df.columns) == ["model", "mean_win_rate", "x", "y", "z"]
    assert df["mean_win_rate"].tolist() == [0.5, 0.5, 0.5]
    assert math.isnan(df["y"][1])


def test_cli_winrate_bad_column(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("model,x\na,1\n")
    assert main(["winrate", str(path), "--columns", "nope"]) == 2
