"""Every figure of docs/hwmodel.md is what the model gives now: benchmarks/hwmodel_figures.py computes each block,
and a committed block that drifts from it (a constant, the calibration or an activity file changed without
re-running the script) fails here."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from hwmodel import validation

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import hwmodel_figures  # noqa: E402


def test_every_figure_block_of_the_docs_is_what_the_model_gives() -> None:
    text = hwmodel_figures.DOCS.read_text()
    blocks = {m.group("name") for m in hwmodel_figures.BLOCK.finditer(text)}
    assert blocks == set(hwmodel_figures.FIGURES)  # each figure is shown, and only those the script computes
    assert hwmodel_figures.render(text) == text, "docs/hwmodel.md drifted: run python benchmarks/hwmodel_figures.py"


def test_the_committed_validation_results_are_the_live_table() -> None:
    committed = json.loads((ROOT / "results/hwmodel/validation.json").read_text())
    live = validation.table()
    assert [r["target"] for r in committed] == [r["target"] for r in live]
    for old, new in zip(committed, live):
        assert old["ratio"] == pytest.approx(new["ratio"], rel=1e-9)
        assert old["ratio_uncalibrated"] == pytest.approx(new["ratio_uncalibrated"], rel=1e-9)
