"""`asymbench tables` and `asymbench figures curves` refuse wrong inputs with one line naming the
file and what to do (issue 38, items 4 and 5): the same run given twice, a run given for another
method's role, runs of another registry's widths or of another budget, values that disagree with
themselves, an eval.json holding a list, NaN or text, and a garbled progress.csv. Each case runs
the command as a user does, in a subprocess."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ASYMBENCH = str(Path(sys.executable).parent / "asymbench")  # the venv's, as CI runs it (not on PATH)
SCORES = {"s_only": [10.0, 12.0, 14.0], "l_only": [80.0, 90.0, 85.0], "ours": [88.0, 84.0, 86.0]}
ROLE = {"s_only": "s_only", "l_only": "l_only", "ours": "asym"}


def write_eval(path, method, ret, steps=300, flops_l_only=1000.0, **extra):
    """An eval.json as `asymbench evaluate` writes it (the fields the tables read)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    share = {"s_only": 0.0, "l_only": 1.0}.get(method, 0.4)
    flops = flops_l_only if method == "l_only" else 300.0
    path.write_text(json.dumps({
        "task": "walker-stand", "method": ROLE.get(method, method), "run": str(path.parent),
        "seed": 1000, "episodes": 2, "total_steps": steps, "returns": [ret, ret], "mean_return": ret,
        "success_rate": None, "large_share": share, "flops_per_inf": flops, "flops_l_only": flops_l_only,
        "flops_reduction_pct": 100 * (1 - flops / flops_l_only), **extra}))
    return path


def evals(root):
    return {m: [write_eval(root / m / f"seed{s}" / "eval.json", m, v) for s, v in enumerate(values)]
            for m, values in SCORES.items()}


def tables_cli(paths, out, table="table3"):
    args = [ASYMBENCH, "tables", table, "--scale", "smoke", "--out", str(out)]
    for method, files in paths.items():
        args += [f"--{method.replace('_', '-')}", *map(str, files)]
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


def assert_refused(result, *needles):
    assert result.returncode == 2, result.stdout + result.stderr
    err = result.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


def test_well_formed_inputs_are_accepted(tmp_path):
    result = tables_cli(evals(tmp_path), tmp_path / "t3.csv")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "t3.md").exists()


def test_one_file_as_three_methods_is_refused(tmp_path):
    one = write_eval(tmp_path / "ours" / "seed0" / "eval.json", "ours", 88.0)
    paths = {"s_only": [one], "l_only": [one], "ours": [one]}
    assert_refused(tables_cli(paths, tmp_path / "t3.csv"), str(one))
    assert not (tmp_path / "t3.csv").exists()


def test_one_run_twice_within_a_method_is_refused(tmp_path):
    paths = evals(tmp_path)
    paths["ours"][2] = paths["ours"][0]
    assert_refused(tables_cli(paths, tmp_path / "t3.csv"), "pass each run's eval.json once")


def test_evaluations_given_for_another_role_are_refused(tmp_path):
    paths = evals(tmp_path)
    swapped = {"s_only": paths["l_only"], "l_only": paths["s_only"], "ours": paths["ours"]}
    assert_refused(tables_cli(swapped, tmp_path / "a.csv"), "is of method 'l_only'", "--s-only")
    as_ours = {"s_only": paths["s_only"], "l_only": paths["l_only"], "ours": paths["l_only"]}
    assert_refused(tables_cli(as_ours, tmp_path / "b.csv"), "--ours")


def test_an_ours_of_another_registry_is_refused(tmp_path):
    paths = evals(tmp_path)
    paths["ours"] = [write_eval(tmp_path / "other" / f"seed{s}" / "eval.json", "ours", 88.0,
                                flops_l_only=4000.0) for s in range(3)]
    assert_refused(tables_cli(paths, tmp_path / "t3.csv"), "another registry's widths", "other/seed")


def test_runs_of_another_budget_are_refused(tmp_path):
    paths = evals(tmp_path)
    paths["ours"] = [write_eval(tmp_path / "long" / f"seed{s}" / "eval.json", "ours", 88.0, steps=600)
                     for s in range(3)]
    assert_refused(tables_cli(paths, tmp_path / "t3.csv"), "one budget", "600")


@pytest.mark.parametrize("change, needle", [
    ({"mean_return": 500.0}, "is not the mean of its returns"),
    ({"large_share": 1.7}, "outside [0, 1]"),
    ({"mean_return": float("nan"), "returns": [float("nan")] * 2}, "not a finite number"),
    ({"flops_per_inf": "fast"}, "'flops_per_inf' is 'fast'"),
])
def test_values_that_disagree_or_are_not_numbers_are_refused(tmp_path, change, needle):
    paths = evals(tmp_path)
    bad = paths["ours"][1]
    bad.write_text(json.dumps({**json.loads(bad.read_text()), **change}))
    assert_refused(tables_cli(paths, tmp_path / "t3.csv"), str(bad), needle, "delete it and rerun")


def test_an_eval_holding_a_list_is_refused(tmp_path):
    paths = evals(tmp_path)
    bad = paths["l_only"][0]
    bad.write_text(json.dumps([json.loads(bad.read_text())]))
    assert_refused(tables_cli(paths, tmp_path / "t3.csv"), str(bad), "holds a list", "delete it and rerun")


def test_runs_csv_refuses_the_same_inputs(tmp_path):
    one = write_eval(tmp_path / "ours" / "seed0" / "eval.json", "ours", 88.0)
    assert_refused(tables_cli({"s_only": [one], "ours": [one]}, tmp_path / "runs.csv", "runs"), str(one))


# ----------------------------------------------------------------------------- progress.csv
def write_run(folder, method, seed, steps=1000):
    folder.mkdir(parents=True, exist_ok=True)
    ends = np.arange(50, steps + 1, 50)
    pd.DataFrame({"step": ends, "episode": np.arange(len(ends)), "episode_return": 0.1 * ends + seed,
                  "large_share": 0.5}).to_csv(folder / "progress.csv", index=False)
    (folder / "config.json").write_text(json.dumps({"task": "Swimmer", "method": method, "seed": seed,
                                                    "total_steps": steps, "paper_total_steps": 1000}))
    (folder / "run.json").write_text(json.dumps({"steps": steps}))
    return folder / "run.json"


def curves_cli(runs, out):
    args = [ASYMBENCH, "figures", "curves", "--task", "Swimmer", "--scale", "smoke", "--out", str(out)]
    for method, files in runs.items():
        args += [f"--{method.replace('_', '-')}", *map(str, files)]
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("garble, needle", [
    (lambda text: "", "is empty"),
    (lambda text: "when,what\nyesterday,nothing\n", "no 'step' column"),
    (lambda text: text[:-9], "cut mid-line"),
    (lambda text: text + "1050,21\n", "line 22 has 2 fields"),
    (lambda text: text.replace("\n100,", "\nabc,", 1), "no number in 'step'"),
])
def test_a_garbled_progress_csv_is_refused(tmp_path, garble, needle):
    runs = {m: [write_run(tmp_path / m / f"seed{s}", m, s) for s in (0, 1)] for m in ("s_only", "ours")}
    progress = runs["ours"][1].parent / "progress.csv"
    progress.write_text(garble(progress.read_text()))
    out = tmp_path / "curves.png"
    assert_refused(curves_cli(runs, out), str(progress), needle, "delete the run folder")
    assert not out.exists()
