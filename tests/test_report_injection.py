"""issue 23 item 8: config text never acts as markup in the report: RST on the landing page is
escaped, Markdown tables escape HTML, CSV string cells that a spreadsheet would run as formulas are
neutralised (numbers, negative ones included, stay numbers)."""

from __future__ import annotations

import copy
import csv

import pandas as pd
import pytest

from prefbias.config import ConfigError, validate_config
from prefbias.report.html import landing_page
from prefbias.report.render import to_html, to_markdown, write_csv

EVIL_RST = "Evil\n\n.. raw:: html\n\n   <script>alert(1)</script>\n\nafter `x <javascript:y>`_"


def _render(rst: str) -> str:
    from docutils.core import publish_parts

    return publish_parts(rst, writer="html", settings_overrides={
        "halt_level": 5, "report_level": 5, "raw_enabled": True})["body"]


def test_landing_page_escapes_display_names(tiny_config, repo_root):
    c = copy.deepcopy(tiny_config)  # landing_page is the boundary: not validated here
    c["models"]["smollm2-135m-instruct"]["display_name"] = EVIL_RST
    rst = landing_page(c, repo_root)
    assert "\n.. raw::" not in rst
    html = _render(rst)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # shown as text
    assert 'href="javascript' not in html
    # the ordinary names still read as before
    assert "SmolLM2" in _render(landing_page(tiny_config, repo_root))


def test_display_name_must_be_one_line_without_markup(tiny_config):
    for bad in (EVIL_RST, "a\nb", "x `y`_", "<b>x</b>"):
        c = copy.deepcopy(tiny_config)
        c["models"]["smollm2-135m-instruct"]["display_name"] = bad
        with pytest.raises(ConfigError, match="models.smollm2-135m-instruct.display_name"):
            validate_config(c)
    c = copy.deepcopy(tiny_config)
    c["models"]["smollm2-135m-instruct"]["display_name"] = "SmolLM2 (tiny, 4 steps) & co."
    validate_config(c)


def test_markdown_tables_escape_html_and_line_breaks():
    md = to_markdown(["Model", "Score"],
                     [["<img src=x onerror=alert(1)>", "0.5"], ["a\nb | c", "-0.25"]],
                     caption="<script>x</script> table", note="n < 3 & more")
    assert "<img" not in md and "<script>" not in md
    assert "&lt;img src=x onerror=alert(1)&gt;" in md
    assert "| a b \\| c | -0.25 |" in md  # one row per line, the pipe escaped
    assert "n &lt; 3 &amp; more" in md
    assert "<img" not in to_html(["Model"], [["<img src=x>"]])


def test_csv_formula_prefixes_are_neutralised_but_numbers_are_not(tmp_path):
    df = pd.DataFrame({
        "label": ["=HYPERLINK(\"http://x\",\"y\")", "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)",
                  "\tx", "plain"],
        "text_number": ["-0.5", "+1e-3", "-inf", "1", "nan", "-"],
        "value": [-0.5, 1.0, -3.25, 0.0, float("nan"), -1e-9],
        "n": [-1, 2, 3, 4, 5, 6],
    })
    write_csv(tmp_path / "t.csv", df)
    with open(tmp_path / "t.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["label"] for r in rows] == ["'=HYPERLINK(\"http://x\",\"y\")",
                                          "'+cmd|' /C calc'!A0", "'-2+3", "'@SUM(A1)", "'\tx",
                                          "plain"]
    assert [r["text_number"] for r in rows] == ["-0.5", "+1e-3", "-inf", "1", "nan", "'-"]
    assert [r["value"] for r in rows][:3] == ["-0.5", "1", "-3.25"]
    assert [r["n"] for r in rows][0] == "-1"
    back = pd.read_csv(tmp_path / "t.csv")
    assert back["value"].iloc[0] == -0.5 and back["n"].iloc[0] == -1
    assert list(df["label"])[0].startswith("=")  # the caller's frame is not changed
    from prefbias.report.render import csv_safe

    assert csv_safe(-0.5) == -0.5 and csv_safe("=1") == "'=1"
