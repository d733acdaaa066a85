"""Checks shared by the tests of tables and figures the pipeline builds (tests/test_outputs.py)
and of the committed ones (tests/test_committed_artefacts.py): one interval per quantity, short
captions, and the budget in every figure's title."""

import math
import re
from pathlib import Path

import pandas as pd

from asymbench import figures, tables


def caption_of(md_text: str) -> str:
    """The bold first line of a table's .md (its caption), without the asterisks."""
    first = md_text.splitlines()[0]
    assert first.startswith("**") and first.endswith("**"), f"no caption line: {first[:80]}"
    return first[2:-2]


def tex_caption_of(tex_text: str) -> str:
    match = re.search(r"\\caption\{(.*)\}\s*$", tex_text, re.M)
    assert match, "no \\caption"
    return match[1]


def caption_problems(md_text: str) -> list[str]:
    text = caption_of(md_text)
    return [] if len(text) <= tables.MAX_CAPTION else [f"caption of {len(text)} characters: {text}"]


def _same(a, b) -> bool:
    return all((math.isnan(x) and math.isnan(y)) or math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12)
               for x, y in zip(a, b))


def duplicate_intervals(csv: pd.DataFrame) -> list[str]:
    """Pairs of columns holding the same quantity (the same means on every row) with different
    95% intervals: ``<a>_mean/_low/_high`` against ``<b>_mean/_low/_high``."""
    stems = [c[:-5] for c in csv.columns if c.endswith("_mean")
             and {c[:-5] + "_low", c[:-5] + "_high"} <= set(csv.columns)]
    values = {s: [csv[f"{s}_{p}"].astype(float).tolist() for p in ("mean", "low", "high")] for s in stems}
    found = []
    for i, a in enumerate(stems):
        for b in stems[i + 1:]:
            if (_same(values[a][0], values[b][0]) and not all(math.isnan(v) for v in values[a][0])
                    and not (_same(values[a][1], values[b][1]) and _same(values[a][2], values[b][2]))):
                found.append(f"{a} and {b}: one quantity, two intervals")
    return found


def verdict_cells_reuse_column_intervals(md_text: str) -> list[str]:
    """In the mean view, verdict (b)'s "mean (low, high)" is the Ours % FLOPs reduction cell."""
    lines = [line for line in md_text.splitlines() if line.startswith("| ")]
    header = next((line for line in lines if tables.CLAIM_LABELS["flops"] in line), None)
    if header is None:
        return []
    names = [c.strip() for c in header.strip("|").split("|")]
    label = tables.TABLES["table3"].columns["ours_flops_reduction_pct"][2]
    if label not in names:
        return []
    column, verdict = names.index(label), names.index(tables.CLAIM_LABELS["flops"])
    problems = []
    for line in lines[lines.index(header) + 1:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) != len(names):
            break  # the next table
        if "(" in cells[column] and ": " in cells[verdict] and cells[column] not in cells[verdict]:
            problems.append(f"{cells[0]}: column {cells[column]!r}, verdict {cells[verdict]!r}")
    return problems


def figure_title_problems(png: Path) -> list[str]:
    title = figures.png_title(png)
    if not title:
        return ["no title in the PNG's metadata"]
    return [] if "paper's budget" in title else [f"title names no budget fraction: {title}"]
