"""The Snakemake pipeline: config validation, the paper-scale DAG, lint, and one smoke run end to end.

Snakemake runs as a subprocess from the repository root (or a copy of the workflow), with the
venv's bin/ on PATH so that the rules' `asymbench` resolves.
"""

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SNAKEMAKE = BIN / "snakemake"
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}


def snakemake(*args, cwd=ROOT, timeout=120):
    return subprocess.run([str(SNAKEMAKE), *args], cwd=cwd, env=ENV, capture_output=True,
                          text=True, timeout=timeout)


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run: rule -> number of jobs."""
    table = output.split("Job stats:")[1].split("total")[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


@pytest.mark.parametrize("override, field, message", [
    ("seeds=[]", "seeds", "should be non-empty"),
    ("seeds=[0, -1]", "seeds", "less than the minimum of 0"),
    ("seeds=3", "seeds", "is not of type 'array'"),
    ("tasks=[Swimmer, Hopper]", "tasks", "unknown task(s) Hopper"),
    ("lambda={Swimmer: -1e-3}", "lambda", "less than the minimum of 0"),
    ("lambda={Walker: 1e-3}", "lambda", "unknown task(s) Walker"),
    ("scale=huge", "scale", "unknown scale 'huge'"),
])
def test_bad_config_is_rejected_naming_the_field(override, field, message):
    result = snakemake("-n", "--cores", "1", "--config", override)
    assert result.returncode != 0
    out = result.stdout + result.stderr
    assert message in out
    assert f"instance['{field}']" in out or f"config field '{field}'" in out
    assert "Job stats" not in out  # refused before any job was planned


def test_paper_table4_dag_counts():
    result = snakemake("-n", "--cores", "16", "paper_tables/table4.csv")
    assert result.returncode == 0, result.stderr
    counts = job_counts(result.stdout)
    runs = 6 * 5  # tasks x seeds of the paper scale
    assert counts == {"train": 2 * runs,          # l_only and ours
                      "train_fit": runs, "expert": runs, "distill": 2 * runs,  # bc, gail
                      "evaluate": 4 * runs,       # l_only, fit, bc, gail
                      "evaluate_asym": runs,      # ours
                      "table": 1}


def test_all_and_ablation_targets_per_scale():
    result = snakemake("-n", "--cores", "2", "--config", "scale=short", "tasks=[Swimmer]")
    assert result.returncode == 0, result.stderr
    counts = job_counts(result.stdout)
    assert counts["train"] == 4 * 3 and counts["table"] == 3  # s/l-only, ours, ours_no_cost x 3 seeds
    assert counts["timeline"] == counts["learning_curves"] == 1
    assert "paper_tables/short/table3.csv" in result.stdout
    assert "paper_tables/table3.csv" not in result.stdout  # never the paper scale's files
    ablation = snakemake("ablation_no_cost", "-n", "-p", "--cores", "1", "--config", "scale=short",
                         "tasks=[Swimmer]").stdout
    assert "--steps 50000" in ablation and "--lam 0 " in ablation
    assert job_counts(ablation)["table"] == 1


def test_lint_is_clean():
    result = snakemake("--lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations" in result.stdout + result.stderr


@pytest.mark.skipif(not (ROOT / "asymbench" / "training.py").exists(), reason="needs asymbench train")
def test_smoke_dag_end_to_end(tmp_path):
    """Every rule of the smoke scale on one task, in a copy of the workflow, then the report."""
    for name in ("Snakefile", "workflow", "config"):
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy)(ROOT / name, tmp_path / name)
    start = time.time()
    result = snakemake("--workflow-profile", "workflow/profiles/local", "--cores", "2", "--config",
                       "scale=smoke", "tasks=[MountainCarContinuous]", cwd=tmp_path, timeout=600)
    elapsed = time.time() - start
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    print(f"smoke DAG (1 task, 1 seed) took {elapsed:.0f} s")
    for table in ("table3", "table4", "table5"):
        df = pd.read_csv(tmp_path / "paper_tables" / "smoke" / f"{table}.csv")
        assert df["scale"].tolist() == ["smoke"] and df["n_seeds"].tolist() == [1]
        assert df["train_steps"].tolist() == [300] and df["eval_episodes"].tolist() == [2]
    figures = tmp_path / "results" / "smoke" / "figures"
    for kind in ("timeline", "curves"):
        for ext in ("png", "pdf"):
            assert (figures / f"{kind}_MountainCarContinuous.{ext}").stat().st_size > 5000
    assert not (tmp_path / "paper_tables" / "table3.csv").exists()
    report = snakemake("--config", "scale=smoke", "tasks=[MountainCarContinuous]",
                       "--report", "report.html", cwd=tmp_path)
    assert report.returncode == 0, report.stderr[-3000:]
    assert (tmp_path / "report.html").stat().st_size > 10000
