"""The tables and figures committed under paper_tables/ and results/: one interval per quantity,
captions of at most 300 characters, every figure's title (PNG metadata) naming its budget as a
fraction of the paper's. These hold for files the pipeline wrote with the current code; a file
made by an older version fails here until the pipeline rebuilds it (or it is removed)."""

import subprocess
from pathlib import Path

import pandas as pd
import pytest

from artefact_checks import (caption_problems, duplicate_intervals, figure_title_problems,
                             verdict_cells_reuse_column_intervals)

ROOT = Path(__file__).resolve().parents[1]


def committed(*patterns):
    """Tracked files matching the git pathspecs (relative to the repository root)."""
    out = subprocess.run(["git", "ls-files", "--", *patterns], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout.split()
    return [ROOT / p for p in out]


def ids(paths):
    return [str(p.relative_to(ROOT)) for p in paths]


TABLE_MDS = [p for p in committed("paper_tables/**.md") if p.name != "README.md"]
TABLE_CSVS = [p for p in committed("paper_tables/**.csv") if p.name != "runs.csv"]
FIGURES = committed("results/**.png", "paper_tables/**.png")


@pytest.mark.parametrize("md", TABLE_MDS, ids=ids(TABLE_MDS))
def test_committed_table_captions_are_short(md):
    text = md.read_text()
    assert caption_problems(text) == []
    assert verdict_cells_reuse_column_intervals(text) == []


@pytest.mark.parametrize("csv", TABLE_CSVS, ids=ids(TABLE_CSVS))
def test_committed_tables_have_one_interval_per_quantity(csv):
    assert duplicate_intervals(pd.read_csv(csv)) == []


@pytest.mark.parametrize("png", FIGURES, ids=ids(FIGURES))
def test_committed_figure_titles_name_their_budget_fraction(png):
    assert figure_title_problems(png) == []


def test_every_committed_scale_has_runs_csv():
    scales = {p.parent for p in committed("paper_tables/**table3.csv") if "milestones" not in p.parts}
    scales = {s.parent if s.name == "stochastic" else s for s in scales}
    assert all((s / "runs.csv") in committed(str((s / "runs.csv").relative_to(ROOT)))
                          for s in scales), sorted(map(str, scales))
