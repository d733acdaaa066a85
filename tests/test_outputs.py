"""What the pipeline writes, built here through the CLI from synthetic evaluations, run folders
and traces: one interval per quantity in every table, captions of at most 300 characters, every
figure's title (stored in the PNG's metadata) naming its budget as a fraction of the paper's,
and runs.csv rebuilding a Table 3 column."""

import json

import pandas as pd
import pytest

from artefact_checks import (caption_problems, duplicate_intervals, figure_title_problems,
                             tex_caption_of, verdict_cells_reuse_column_intervals)
from asymbench import tables
from asymbench.cli import main
from test_figures import sweep_files, write_run, write_trace
from test_tables import aggregate_evals, claim_evals, grid_evals, merged, write_eval


def options(paths):
    return [a for method, files in paths.items() for a in (f"--{method.replace('_', '-')}", *map(str, files))]


@pytest.fixture(scope="module")
def table_evals(tmp_path_factory):
    """walker-stand where Ours meets claim (a) with a FLOPs reduction that varies over seeds
    (claim (b) judged on an interval), plus every other method of Tables 4 and 5."""
    root = tmp_path_factory.mktemp("evals")
    scores = {"s_only": [10, 12, 14, 11, 13], "l_only": [90, 91, 89, 92, 90], "ours": [95, 96, 94, 97, 95],
              "ours_no_cost": [90, 91, 92, 90, 91], "fit": [60, 61, 62, 63, 64], "bc": [40, 41, 42, 43, 44],
              "gail": [30, 31, 32, 33, 34]}
    paths = claim_evals(root, scores, task="walker-stand", flops=150.0)
    for seed, path in enumerate(paths["ours"]):
        data = json.loads(path.read_text())
        flops = 100.0 + 40 * seed
        path.write_text(json.dumps({**data, "flops_per_inf": flops, "flops_reduction_pct": 100 * (1 - flops / 1000)}))
    return merged(paths, claim_evals(root / "fs", scores, task="finger-spin", flops=200.0))


@pytest.mark.parametrize("table", ["table3", "table4", "table5"])
def test_tables_have_one_interval_per_quantity_and_short_captions(table_evals, tmp_path, table):
    out = tmp_path / f"{table}.csv"
    assert main(["tables", table, "--scale", "smoke", "--out", str(out), *options(table_evals)]) == 0
    md = out.with_suffix(".md").read_text()
    assert duplicate_intervals(pd.read_csv(out)) == []
    assert verdict_cells_reuse_column_intervals(md) == []
    assert caption_problems(md) == []
    assert len(tex_caption_of(out.with_suffix(".tex").read_text())) <= tables.MAX_CAPTION


def test_the_flops_verdict_shows_the_columns_interval(table_evals, tmp_path):
    out = tmp_path / "table3.csv"
    assert main(["tables", "table3", "--scale", "smoke", "--out", str(out), *options(table_evals)]) == 0
    row = pd.read_csv(out).set_index("task").loc["walker-stand"]
    assert row["claim_flops_verdict"] in (tables.REPRODUCED, tables.INCONCLUSIVE, tables.NOT_REPRODUCED)
    assert "claim_flops_low" not in row.index  # the column's interval is the verdict's
    cell = f"{row['ours_flops_reduction_pct_mean']:.1f} ({row['ours_flops_reduction_pct_low']:.1f}, " \
           f"{row['ours_flops_reduction_pct_high']:.1f})"
    md = out.with_suffix(".md").read_text()
    assert md.count(cell) >= 2  # the column and verdict (b)
    assert "reproduced" not in md.replace("not reproduced", "")  # below the paper's budget: "met at"
    assert "met at 0.01% of the budget" in md


def test_grid_and_aggregate_captions_are_short(tmp_path):
    grid = tmp_path / "variants" / "mcc_grid.csv"
    assert main(["tables", "grid", "--scale", "verify", "--out", str(grid), *options(grid_evals(tmp_path / "g"))]) == 0
    assert caption_problems(grid.with_suffix(".md").read_text()) == []
    assert duplicate_intervals(pd.read_csv(grid)) == []
    agg = tmp_path / "aggregate.csv"
    assert main(["tables", "aggregate", "--scale", "smoke", "--out", str(agg),
                 *options(aggregate_evals(tmp_path / "a"))]) == 0
    assert caption_problems(agg.with_suffix(".md").read_text()) == []


def test_runs_csv_rebuilds_a_table3_column(table_evals, tmp_path):
    runs_csv, table3 = tmp_path / "runs.csv", tmp_path / "table3.csv"
    assert main(["tables", "runs", "--scale", "smoke", "--out", str(runs_csv), *options(table_evals)]) == 0
    assert main(["tables", "table3", "--scale", "smoke", "--out", str(table3), *options(table_evals)]) == 0
    runs = pd.read_csv(runs_csv)
    assert list(runs.columns) == list(tables.RUNS_COLUMNS)
    assert not runs.duplicated(["task", "method", "seed", "train_steps", "protocol"]).any()
    det = runs[runs["protocol"] == "deterministic"]
    score = det["success_rate"].where(det["success_rate"].notna(), det["return"])
    rebuilt = det.assign(score=score).query("method == 'ours'").groupby("task")["score"].mean()
    table = pd.read_csv(table3).set_index("task")["ours_return_mean"]
    pd.testing.assert_series_equal(rebuilt.sort_index(), table.sort_index(), check_names=False)
    share = det.query("method == 'ours'").groupby("task")["large_share"].mean() * 100
    pd.testing.assert_series_equal(share.sort_index(), pd.read_csv(table3).set_index("task")[
        "ours_large_usage_pct_mean"].sort_index(), check_names=False)


def figure_commands(root):
    """Every kind of figure the pipeline draws, as `asymbench figures` arguments."""
    trace = write_trace(root / "trace")
    runs = {m: [write_run(root / "runs" / m / f"seed{s}", m, s, share=m == "ours") for s in (0, 1)]
            for m in ("s_only", "l_only", "ours")}
    baselines, points = sweep_files(root / "sweep")
    claims = claim_evals(root / "claims", {"s_only": [1, 2, 3], "l_only": [9, 9, 8], "ours": [8, 9, 9]})
    return {
        "timeline": ["timeline", "--trace", str(trace / "trace.csv"), "--eval", str(trace / "eval.json"),
                     "--run-seed", "0", "--seed-choice", "learned"],
        "curves": ["curves", "--task", "Swimmer", *options(runs)],
        "tradeoff": ["tradeoff", "--task", "Swimmer", *options(baselines)],
        "pareto": ["pareto", "--task", "Swimmer", "--protocol", "deterministic", *options(baselines),
                   *[a for k, files in points.items() for a in ("--point", str(k), *map(str, files))]],
        "profile": ["profile", *options(aggregate_evals(root / "agg"))],
        "verdict": ["verdict", "--task", "walker-stand", *options(claims)],
    }


def test_every_figure_title_names_its_budget_fraction(tmp_path):
    for kind, args in figure_commands(tmp_path).items():
        png = tmp_path / f"{kind}.png"
        assert main(["figures", *args, "--scale", "smoke", "--out", str(png)]) == 0, kind
        assert figure_title_problems(png) == [], kind
    from asymbench.figures import png_title
    assert "noise as SAC" not in png_title(tmp_path / "timeline.png")
    assert "chosen because it learned" in png_title(tmp_path / "timeline.png")
    assert "BC, GAIL: distilled from L-only" in png_title(tmp_path / "tradeoff.png")
