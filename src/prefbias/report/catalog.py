"""Every table and figure of the report stage, in one place (import-light: the Snakefile reads it).

``ITEMS``: name -> (paper, display name, kind); the rules make one target per item
(``R/tables/<name>.*`` or ``R/figures/<name>.*``), the HTML report groups them by paper, and
``prefbias report-table`` / ``report-figure`` accept exactly these names.
"""

from __future__ import annotations

ITEMS: dict[str, tuple[str, str, str]] = {
    "table3": ("stylized-dpo", "Table 3", "table"),
    # companion of Table 3: reward win rates of reward_winrate.pairs (§3.3.1: DPO vs SFT, ...)
    "table3_pairs": ("stylized-dpo", "Table 3 companion: further win-rate pairs", "table"),
    "table4": ("stylized-dpo", "Table 4", "table"),
    "table5": ("stylized-dpo", "Table 5", "table"),
    "table6": ("stylized-dpo", "Table 6", "table"),
    "table7": ("stylized-dpo", "Table 7", "table"),
    "table8": ("stylized-dpo", "Table 8", "table"),
    "judge_scores": ("stylized-dpo", "Judge scores (Figure 3 data)", "table"),
    "sycophancy_answer": ("saa-orpo", "Answer Suggestion (Figures 2, 4 data)", "table"),
    "sycophancy_are_you_sure": ("saa-orpo", "Are You Sure (Figures 3, 5 data)", "table"),
    "stylized_figure2": ("stylized-dpo", "Figure 2", "figure"),
    "stylized_figure3": ("stylized-dpo", "Figure 3", "figure"),
    "saa_figure2": ("saa-orpo", "Figure 2", "figure"),
    "saa_figure3": ("saa-orpo", "Figure 3", "figure"),
    "saa_figure4": ("saa-orpo", "Figure 4", "figure"),
    "saa_figure5": ("saa-orpo", "Figure 5", "figure"),
}
TABLES = tuple(n for n, (_, _, kind) in ITEMS.items() if kind == "table")
FIGURES = tuple(n for n, (_, _, kind) in ITEMS.items() if kind == "figure")
# stylized-dpo Tables 5-8: one HELM metric group each
HELM_TABLES = {"table5": "accuracy", "table6": "calibration", "table7": "robustness",
               "table8": "fairness"}
