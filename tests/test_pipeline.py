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

from asymbench.tasks import load_registry

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


def jobs(counts: dict[str, int], rule: str) -> int:
    """Jobs of ``rule``, summed over per-task copies of it ("train_walker_stand") if the
    workflow defines one rule per task."""
    ids = [re.sub(r"\W", "_", task) for task in load_registry()]
    return counts.get(rule, 0) + sum(counts.get(f"{rule}_{i}", 0) for i in ids)


def commands(output: str, start: str) -> list[str]:
    """The shell commands of a dry run (-p) that start with ``start``."""
    return [c.strip() for c in re.findall(r"^\s*(?:Shell command: )?(" + re.escape(start) + r".*)$", output, re.M)]


@pytest.mark.parametrize("override, field, message", [
    ("seeds=[]", "seeds", "should be non-empty"),
    ("seeds=[0, -1]", "seeds", "less than the minimum of 0"),
    ("seeds=3", "seeds", "is not of type 'array'"),
    ("tasks=[Swimmer, Hopper]", "tasks", "unknown task(s) Hopper"),
    ("lambda={Swimmer: -1e-3}", "lambda", "less than the minimum of 0"),
    ("lambda={Walker: 1e-3}", "lambda", "unknown task(s) Walker"),
    ("scale=huge", "scale", "unknown scale 'huge'"),
    ("pareto={lambda_factors: [1, -1]}", "pareto", "less than the minimum of 0"),
    ("scale=smoke  scales={smoke: {per_task: {Hopper: {seeds: [0]}}}}", "scales.smoke.per_task",
     "unknown task(s) Hopper"),
    ("scales={smoke: {per_task: {Swimmer: {lambda: 1}}}}", "scales", "Additional properties are not allowed"),
    ("scale=smoke  scales={smoke: {milestones: [200, 100]}}", "scales.smoke.milestones",
     "strictly increasing env steps below its budget of 300"),
    ("scale=smoke  scales={smoke: {milestones: [100, 300]}}", "scales.smoke.milestones",
     "strictly increasing env steps below its budget of 300"),
    ("scale=smoke  scales={smoke: {per_task: {Swimmer: {milestones: [400]}}}}",
     "scales.smoke.per_task.Swimmer.milestones", "below its budget of 300"),
    ("scale=smoke  scales={smoke: {milestones: [1.5]}}", "scales", "is not of type 'integer'"),
    ("scale=verify  grid={name: g, task: MountainCarContinuous, scales: [verify, short]}", "grid.scales",
     "the grid's scales must agree on them"),
    ("grid={name: g, task: MountainCarContinuous, scales: [verify, huge]}", "grid.scales",
     "unknown scale 'huge'"),
    ("grid={name: g, task: MountainCarContinuous, scales: [verify], seeds: 0}", "grid",
     "less than the minimum of 1"),
    ("grid={name: g, task: MountainCarContinuous, scales: [verify], variants: [noisy]}", "grid",
     "is not one of ['dropped', 'as_sac']"),
    ("pareto={lambda_factors: []}", "pareto", "should be non-empty"),
    ("pareto={lambda_factors: [1, ten]}", "pareto", "is not of type 'number'"),
    ("pareto={lambda_factors: [1, inf]}", "pareto.lambda_factors.1", "expected a finite number"),
    ("pareto={lambda_factors: [nan]}", "pareto.lambda_factors.0", "expected a finite number"),
    ("pareto={lambda_factors: [1], variant: noisy}", "pareto", "is not one of ['dropped', 'as_sac']"),
    ("scales={smoke: {gpu_slots: 0}}", "scales", "['gpu_slots']:\n    0"),
    ("scales={smoke: {gpu_slots: -2}}", "scales", "-2 is less than the minimum of 1"),
    ("scales={smoke: {gpu_slots: 1.5}}", "scales", "1.5 is not of type 'integer'"),
    ("scales={smoke: {env_workers: -1}}", "scales", "['env_workers']:\n    -1"),
])
def test_bad_config_is_rejected_naming_the_field(override, field, message):
    result = snakemake("-n", "--cores", "1", "--config", *override.split("  "))
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
    # One job per task and method (l_only, ours, fit) and segment: every seed of a task in one
    # job; segments end at 100k, 200k, 500k and 1M, then at the budget (MountainCar: 50k, 100k).
    assert jobs(counts, "train") == 3 * 6
    assert jobs(counts, "train_segment") == 3 * (5 * 4 + 1)
    assert {rule: n for rule, n in counts.items() if not rule.startswith("train")} == {
        "expert": runs, "distill": 2 * runs,      # bc, gail
        "evaluate": 4 * runs,                     # l_only, fit, bc, gail
        "evaluate_asym": runs,                    # ours
        "table": 1}


def test_all_and_ablation_targets_per_scale():
    result = snakemake("-n", "--cores", "2", "--config", "scale=short", "tasks=[Swimmer]")
    assert result.returncode == 0, result.stderr
    counts = job_counts(result.stdout)
    # s/l-only, ours, ours_no_cost, fit (3 seeds each), each in two segments (to 20k, then 50k)
    assert jobs(counts, "train") == jobs(counts, "train_segment") == 5 and counts["table"] == 3
    assert counts["timeline"] == counts["learning_curves"] == counts["tradeoff"] == 1
    assert "paper_tables/short/table3.csv" in result.stdout
    assert "paper_tables/table3.csv" not in result.stdout  # never the paper scale's files
    ablation = snakemake("ablation_no_cost", "-n", "-p", "--cores", "1", "--config", "scale=short",
                         "tasks=[Swimmer]").stdout
    assert "--steps 50000" in ablation and "--lam 0 " in ablation
    assert job_counts(ablation)["table"] == 1


def test_verify_scale_honours_per_task_seeds_and_budgets():
    """verify: MountainCarContinuous at the paper's budget with 10 seeds, walker-stand and
    finger-spin at the scale's reduced budget with 5 and 20 episodes; every method of Tables 3-5.
    (--forceall: the plan must not depend on which results this checkout already holds.)"""
    result = snakemake("-n", "-p", "--forceall", "--cores", "2", "--config", "scale=verify")
    assert result.returncode == 0, result.stderr[-3000:]
    train = [c for c in commands(result.stdout, "asymbench train") if "--until" not in c]
    car = [c for c in train if "--task MountainCarContinuous" in c]
    walker = [c for c in train if "--task walker-stand" in c]
    assert car and walker and len(car) == len(walker) == 5  # s_only, l_only, ours, ours_no_cost, fit
    assert all("--segment-start 50000" in c for c in car) and all("--segment-start 10000" in c for c in walker)
    assert all("--seeds 0 1 2 3 4 5 6 7 8 9 " in c and "--steps" not in c for c in car)
    assert all("--seeds 0 1 2 3 4 " in c and "--steps 20000" in c for c in walker)
    evaluations = commands(result.stdout, "asymbench evaluate")
    assert all(("--episodes 200" if "MountainCarContinuous/" in c else "--episodes 20 ") in c
               for c in evaluations)
    assert any("MountainCarContinuous/gail/seed9/" in c for c in evaluations)
    assert not any("walker-stand/" in c and "/seed5/" in c for c in evaluations)
    counts = job_counts(result.stdout)
    assert counts["table"] == 3 and counts["tradeoff"] == 3


def test_pareto_target_sweeps_the_cost_weight():
    result = snakemake("pareto", "-n", "-p", "--cores", "1", "--config", "scale=smoke", "tasks=[Swimmer]")
    assert result.returncode == 0, result.stderr[-3000:]
    counts = job_counts(result.stdout)
    # factors 0.1, 0.333, 3, 10 train and evaluate; 1 is Ours and 0 Ours without cost term
    assert counts["evaluate_pareto"] == 4 and counts["pareto_figure"] == 1
    train = " ".join(commands(result.stdout, "asymbench train"))
    lam = load_registry()["Swimmer"].cost_weight  # 1e-4
    for factor, folder in ((0.1, "ours_lam0.1"), (0.333, "ours_lam0.333"), (3, "ours_lam3"), (10, "ours_lam10")):
        assert re.search(rf"--method asym --seeds 0 --out results/smoke/Swimmer/{folder} .*--lam "
                         rf"{re.escape(format(float(f'{factor * lam:.12g}')))} ", train), folder
    figure = commands(result.stdout, "asymbench figures pareto")[0]
    assert "--point 1 results/smoke/Swimmer/ours/seed0/eval.json" in figure
    assert "--point 0 results/smoke/Swimmer/ours_no_cost/seed0/eval.json" in figure
    assert "--gail results/smoke/Swimmer/gail/seed0/eval.json" in figure
    assert "--csv results/smoke/figures/pareto_Swimmer.csv" in figure
    other = snakemake("pareto", "-n", "-p", "--cores", "1", "--config", "scale=smoke", "tasks=[Swimmer]",
                      "pareto={lambda_factors: [2]}")
    assert other.returncode == 0, other.stderr[-3000:]
    assert "--out results/smoke/Swimmer/ours_lam2 " in other.stdout and "--lam 0.0002 " in other.stdout


def test_mcc_grid_trains_ours_with_both_noise_settings_at_both_budgets():
    """mcc_grid (scale verify): S-only, L-only, Ours and Ours with noise as SAC at the verify
    scale's 100k and verify_200k's 200k, the grid's 20 seeds, both protocols, one grid table
    built from all of them."""
    result = snakemake("mcc_grid", "-n", "-p", "--forceall", "--cores", "2", "--config", "scale=verify")
    assert result.returncode == 0, result.stderr[-3000:]
    train = [c for c in commands(result.stdout, "asymbench train") if "--until" not in c]
    assert len(train) == 2 * 4
    for scale, steps in (("verify", ""), ("verify_200k", "--steps 200000 ")):
        for method in ("s_only", "l_only", "ours", "ours_as_sac"):
            [command] = [c for c in train if f"--out results/{scale}/MountainCarContinuous/{method} " in c]
            assert steps in command and f"--seeds {' '.join(map(str, range(20)))} " in command
            assert ("--asym-action-noise as_sac" in command) == (method == "ours_as_sac"), command
    counts = job_counts(result.stdout)
    assert counts["evaluate_noise_variant"] == 2 * 20 and counts["noise_budget_grid"] == 1
    assert all("--protocol both" in c for c in commands(result.stdout, "asymbench evaluate"))
    [grid] = commands(result.stdout, "asymbench tables grid")
    assert "--out paper_tables/verify/variants/mcc_grid.csv" in grid and "--scale 'verify + verify_200k'" in grid
    for scale in ("verify", "verify_200k"):
        assert f"results/{scale}/MountainCarContinuous/ours_as_sac/seed19/eval.json" in grid
        assert f"results/{scale}/MountainCarContinuous/s_only/seed0/eval.json" in grid


def test_one_grid_cell_with_its_own_seed_count():
    """`grid.seeds` and `grid.variants` pick one cell: Ours as SAC at 200k against S-only and
    L-only of the same seeds; Ours with its noise dropped is neither trained nor read."""
    grid = "grid={name: cell, task: MountainCarContinuous, scales: [verify_200k], seeds: 3, variants: [as_sac]}"
    result = snakemake("mcc_grid", "-n", "-p", "--forceall", "--cores", "2", "--config",
                       "scale=verify_200k", grid)
    assert result.returncode == 0, result.stderr[-3000:]
    train = [c for c in commands(result.stdout, "asymbench train") if "--until" not in c]
    folders = sorted(re.search(r"--out results/verify_200k/MountainCarContinuous/(\w+) ", c)[1] for c in train)
    assert folders == ["l_only", "ours_as_sac", "s_only"]
    assert all("--seeds 0 1 2 --out" in c for c in train)
    [table] = commands(result.stdout, "asymbench tables grid")
    assert "--out paper_tables/verify_200k/variants/cell.csv" in table
    assert "/ours/" not in table and "ours_as_sac/seed2/eval.json" in table


def test_pareto_sweep_of_ours_as_sac_trains_its_own_folders():
    """`pareto.variant: as_sac`: every factor but 1 trains Ours with the noise as SAC's in
    ours_as_sac_lam<f> (factor 0 too: ours_no_cost drops the noise), factor 1 reuses ours_as_sac,
    and the figure is pareto_<task>_as_sac."""
    result = snakemake("pareto", "-n", "-p", "--forceall", "--cores", "1", "--config", "scale=smoke",
                       "tasks=[Swimmer]", "pareto={lambda_factors: [0, 1, 3], variant: as_sac}")
    assert result.returncode == 0, result.stderr[-3000:]
    train = [c for c in commands(result.stdout, "asymbench train") if "--until" not in c]
    lam = load_registry()["Swimmer"].cost_weight
    for folder, weight in (("ours_as_sac_lam0", 0.0), ("ours_as_sac_lam3", float(f"{3 * lam:.12g}"))):
        [command] = [c for c in train if f"/Swimmer/{folder} " in c]
        assert f"--lam {weight} " in command and "--asym-action-noise as_sac" in command
    [figure] = commands(result.stdout, "asymbench figures pareto")
    assert "--point 1 results/smoke/Swimmer/ours_as_sac/seed0/eval.json" in figure
    assert "--point 0 results/smoke/Swimmer/ours_as_sac_lam0/seed0/eval.json" in figure
    assert "--variant as_sac" in figure and "--csv results/smoke/figures/pareto_Swimmer_as_sac.csv" in figure
    assert "ours_no_cost" not in figure


def test_milestone_table_trains_and_evaluates_the_segments_up_to_it():
    """paper_tables/paper/milestones/200000/{,stochastic/}table3.csv: the segments to 100k and
    200k of S-only, L-only and Ours (each resuming its predecessor's checkpoint), every snapshot
    evaluated once (both protocols), one table per protocol; nothing trained past the milestone."""
    result = snakemake("paper_tables/paper/milestones/200000/table3.csv",
                       "paper_tables/paper/milestones/200000/stochastic/table3.csv", "-n", "-p", "--forceall",
                       "--cores", "2", "--config", "tasks=[walker-stand]")
    assert result.returncode == 0, result.stderr[-3000:]
    train = commands(result.stdout, "asymbench train")
    assert len(train) == 3 * 2
    assert sum("--until 100000 " in c and "--segment-start" not in c for c in train) == 3
    assert sum("--until 200000 --segment-start 100000 " in c for c in train) == 3
    counts = job_counts(result.stdout)
    assert counts["evaluate_milestone"] == 3 * 5 and counts["milestone_table"] == 2
    assert all("--protocol both " in c for c in commands(result.stdout, "asymbench evaluate"))
    tables = {re.search(r"--protocol (\w+)", c).group(1): c for c in commands(result.stdout, "asymbench tables")}
    assert "--out paper_tables/paper/milestones/200000/table3.csv " in tables["deterministic"]
    assert "--out paper_tables/paper/milestones/200000/stochastic/table3.csv " in tables["stochastic"]
    assert "milestones/200000/seed4/eval.json" in result.stdout
    missing = snakemake("paper_tables/paper/milestones/300000/table3.csv", "-n", "--cores", "1",
                        "--config", "tasks=[walker-stand]")
    assert missing.returncode != 0
    assert "no task of scale 'paper' has a milestone at step 300,000" in missing.stdout + missing.stderr


def test_lint_is_clean():
    result = snakemake("--lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations" in result.stdout + result.stderr


@pytest.mark.skipif(not (ROOT / "asymbench" / "train_config.py").exists(), reason="needs asymbench train")
def test_smoke_dag_end_to_end(tmp_path):
    """Every rule of the smoke scale on one task, in a copy of the workflow, then the report."""
    for name in ("Snakefile", "workflow", "config", "profiles"):
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy)(ROOT / name, tmp_path / name)
    start = time.time()
    result = snakemake("--cores", "2", "--config",
                       "scale=smoke", "tasks=[MountainCarContinuous]", cwd=tmp_path, timeout=600)
    elapsed = time.time() - start
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    print(f"smoke DAG (1 task, 1 seed) took {elapsed:.0f} s")
    for table in ("table3", "table4", "table5"):
        df = pd.read_csv(tmp_path / "paper_tables" / "smoke" / f"{table}.csv")
        assert df["scale"].tolist() == ["smoke"] and df["n_seeds"].tolist() == [1]
        assert df["train_steps"].tolist() == [300] and df["eval_episodes"].tolist() == [2]
    figures = tmp_path / "results" / "smoke" / "figures"
    for kind in ("timeline", "curves", "tradeoff"):
        for ext in ("png", "pdf"):
            assert (figures / f"{kind}_MountainCarContinuous.{ext}").stat().st_size > 5000
    assert not (tmp_path / "paper_tables" / "table3.csv").exists()
    # runs.csv beside the tables; one task cannot make an aggregate, so none is written
    runs = pd.read_csv(tmp_path / "paper_tables" / "smoke" / "runs.csv")
    assert set(runs["task"]) == {"MountainCarContinuous"} and set(runs["protocol"]) == {"deterministic", "stochastic"}
    assert not list((tmp_path / "paper_tables" / "smoke").glob("aggregate.*"))
    assert not list((tmp_path / "paper_tables" / "smoke").glob("performance_profile.*"))
    # Every milestone reached: the snapshot at 150 steps (half the budget) and the budget itself.
    milestones = snakemake("--cores", "2", "milestones",
                           "--config", "scale=smoke", "tasks=[MountainCarContinuous]", cwd=tmp_path,
                           timeout=600)
    assert milestones.returncode == 0, milestones.stdout[-3000:] + milestones.stderr[-3000:]
    for step in (150, 300):
        for table in ("table3", "table5"):
            df = pd.read_csv(tmp_path / "paper_tables" / "smoke" / "milestones" / str(step) / f"{table}.csv")
            assert df["train_steps"].tolist() == [step]
            assert df["scale"].tolist() == [f"smoke at {step} env steps ({100 * step // 300}% of the budget)"]
    report = snakemake("--config", "scale=smoke", "tasks=[MountainCarContinuous]",
                       "--report", "report.html", cwd=tmp_path, timeout=600)
    assert report.returncode == 0, report.stderr[-3000:]
    assert (tmp_path / "report.html").stat().st_size > 10000


def train_jobs(output: str) -> list[dict]:
    """The training jobs of a dry run (-p): method, threads, resources and shell command each."""
    found = []
    for block in re.split(r"\n(?=(?:local)?rule )", output):
        if not re.match(r"rule train(_segment)?_", block):
            continue
        threads = re.search(r"^\s*threads: (\d+)$", block, re.M)
        resources = re.search(r"^\s*resources: (.*)$", block, re.M).group(1)
        found.append({"method": re.search(r"method=(\w+)", block).group(1),
                      "task": re.search(r"task=([\w-]+)", block).group(1),
                      "threads": int(threads.group(1)) if threads else 1,
                      "resources": dict(kv.split("=", 1) for kv in resources.split(", ")),
                      "command": commands(block, "asymbench train")[0]})
    return found


def test_train_threads_and_device_reach_the_training_jobs():
    """A scale's `train_threads` and `device`, per result folder: the job's threads (and SLURM's
    cpus_per_task), `--threads`, and on cuda `--device cuda` with the resource gpu=1."""
    result = snakemake("-n", "-p", "--forceall", "--cores", "16", "--config", "scale=smoke",
                       "scales={smoke: {train_threads: {ours: 3}, device: {fit: cuda}}}")
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = train_jobs(result.stdout)
    assert len(jobs) == 2 * 5 * 2  # tasks x methods x segments
    for job in jobs:
        threads = 3 if job["method"] == "ours" else 1
        assert job["threads"] == threads and f"--threads {threads} " in job["command"]
        assert job["resources"]["cpus_per_task"] == str(threads)
        cuda = job["method"] == "fit"
        assert job["resources"]["gpu"] == str(int(cuda))
        assert ("--device cuda" in job["command"]) == cuda, job["command"]
    # by default: one thread, the CPU, and commands as before
    default = train_jobs(snakemake("-n", "-p", "--forceall", "--cores", "16", "--config", "scale=smoke").stdout)
    assert {(j["threads"], j["resources"]["gpu"]) for j in default} == {(1, "0")}
    assert not any("--device" in j["command"] for j in default)


def test_a_scales_compile_setting_reaches_its_training_jobs():
    """engine.compile: a scale without the key runs the CLI's default (auto: no flag); `off` (the
    verify scales, whose committed cells ran eager) and `on` are passed on."""
    def flags(*config):
        out = snakemake("-n", "-p", "--forceall", "--cores", "16", "--config", *config)
        assert out.returncode == 0, out.stderr[-3000:]
        return {re.search(r"--compile \w+|$", j["command"]).group(0) for j in train_jobs(out.stdout)}

    assert flags("scale=smoke") == {""}
    assert flags("scale=smoke", "scales={smoke: {compile: 'on'}}") == {"--compile on"}
    assert flags("scale=verify_200k") == {"--compile off"}


def test_gpu_slots_let_training_groups_share_a_gpu():
    """`gpu_slots: 4`: every cuda training job asks for one gpu_slot (a quarter of a GPU: local
    --resources gpu_slot=<GPUs x 4>) and, for SLURM, one GPU shard instead of a whole GPU; CPU
    jobs ask for neither. `env_workers` reaches the commands."""
    result = snakemake("-n", "-p", "--forceall", "--cores", "16", "--config", "scale=smoke",
                       "scales={smoke: {device: {ours: cuda}, gpu_slots: 4, env_workers: 2}}")
    assert result.returncode == 0, result.stderr[-3000:]
    found = train_jobs(result.stdout)
    assert len(found) == 2 * 5 * 2
    for job in found:
        cuda = job["method"] == "ours"
        assert job["resources"]["gpu_slot"] == str(int(cuda)) and job["resources"]["gpu"] == "0"
        assert job["resources"].get("gres") == ("shard:1" if cuda else None), job
        assert "--env-workers 2 " in job["command"]
    alone = train_jobs(snakemake("-n", "-p", "--forceall", "--cores", "16", "--config", "scale=smoke",
                                 "scales={smoke: {device: {ours: cuda}}}").stdout)
    assert {(j["method"] == "ours", j["resources"]["gpu"], j["resources"]["gpu_slot"], "gres" in j["resources"])
            for j in alone} == {(True, "1", "1", False), (False, "0", "0", False)}
    assert not any("--env-workers" in j["command"] for j in alone)


def _blocks(output: str, rule_prefix: str) -> list[str]:
    return [b for b in re.split(r"\n(?=(?:local)?rule )", output) if re.match(rf"(?:local)?rule {rule_prefix}", b)]


def test_student_width_paper_trains_fit_bc_and_gail_at_the_paper_width_without_waiting_for_ours():
    """`student_width: paper`: fit's segments and BC / GAIL get `--width` the registry's
    paper_fit_width (MountainCar: 46) and no input from Ours; by default `--width-from` Ours'
    evaluations, which are their inputs."""
    base = ("-n", "-p", "--forceall", "--cores", "16", "--config", "scale=smoke", "tasks=[MountainCarContinuous]")
    evals = {m: f"results/smoke/MountainCarContinuous/{m}/seed0/eval.json" for m in ("ours", "ours_as_sac")}
    for setting, width in (("paper", "--width 46 "), ("ours", f"--width-from {evals['ours']} "),
                           ("ours_as_sac", f"--width-from {evals['ours_as_sac']} ")):
        result = snakemake(*base, f"scales={{smoke: {{student_width: {setting}}}}}")
        assert result.returncode == 0, result.stderr[-3000:]
        fit = [b for b in _blocks(result.stdout, "train") if "method=fit" in b]
        students = fit + _blocks(result.stdout, "distill")
        assert len(fit) == 2 and len(students) == 4  # two segments; BC and GAIL
        for block in students:
            assert width in commands(block, "asymbench")[0], block
            for method, path in evals.items():
                assert (path in block.split("output:")[0]) == (setting == method), block
        # ours_as_sac: its runs are trained for the width, with the sub-policy noise as SAC's
        as_sac = [b for b in _blocks(result.stdout, "train") if "method=ours_as_sac" in b]
        assert bool(as_sac) == (setting == "ours_as_sac")
        assert all("--asym-action-noise as_sac" in commands(b, "asymbench")[0] for b in as_sac)
    bad = snakemake(*base, "scales={smoke: {student_width: large}}")
    assert bad.returncode != 0 and "student_width" in bad.stdout + bad.stderr


def test_a_thread_plan_of_the_estimate_sets_the_threads_of_its_scale_capped_by_cores(tmp_path):
    plan = tmp_path / "plan.json"
    plan.write_text('{"scale": {"name": "smoke"}, "thread_plan": ['
                    '{"task": "Swimmer", "method": "ours", "threads": 4, "device": "cpu"}]}')
    for cores, expected in (("16", 4), ("2", 2)):
        result = snakemake("-n", "-p", "--forceall", "--cores", cores, "--config", "scale=smoke",
                           f"thread_plan={plan}", "scales={smoke: {train_threads: 2}}")
        assert result.returncode == 0, result.stderr[-3000:]
        for job in train_jobs(result.stdout):
            threads = expected if (job["task"], job["method"]) == ("Swimmer", "ours") else min(2, int(cores))
            assert job["threads"] == threads and f"--threads {threads} " in job["command"], (cores, job)
    plan.write_text('{"thread_plan": [{"task": "Swimmer", "method": "ours", "threads": 0}]}')
    bad = snakemake("-n", "--cores", "2", "--config", "scale=smoke", f"thread_plan={plan}")
    assert bad.returncode != 0 and "config field 'thread_plan'" in bad.stdout + bad.stderr


CAMPAIGN_ENV = {**ENV, "CAMPAIGN_SCALE": "smoke", "CAMPAIGN_TASKS": "MountainCarContinuous",
                "CAMPAIGN_STEPS": "150 300", "CAMPAIGN_CORES": "2"}


def test_campaign_plan_prioritizes_the_long_groups_of_each_milestone_in_turn():
    result = subprocess.run(["bash", "workflow/campaign.sh", "plan"], cwd=ROOT, env=CAMPAIGN_ENV,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    stages = result.stdout.splitlines()
    assert len(stages) == 3   # milestone 150, the budget 300, then the verdict figure
    # a milestone's snapshots, then the finished runs' folders at the budget
    for line, step, marker in zip(stages, (150, 300), ("milestones/150/seed0/snapshot.json", "seed0/run.json")):
        prio = line.split("--prioritize ")[1].split(" -- ")[0].split()
        assert prio == [f"results/smoke/MountainCarContinuous/{m}/{marker}" for m in ("ours", "l_only")]
        assert line.endswith(f"-- paper_tables/smoke/milestones/{step}/table3.csv "
                             f"paper_tables/smoke/milestones/{step}/stochastic/table3.csv")
    assert stages[2].endswith("-- results/smoke/figures/verdict_MountainCarContinuous.png")


@pytest.mark.skipif(not (ROOT / "asymbench" / "train_config.py").exists(), reason="needs asymbench train")
def test_campaign_run_leaves_the_tables_of_every_milestone_and_the_verdict_figure(tmp_path):
    """`run` at the smoke scale, then `status`, then `collect` into another checkout, where the
    tables are rebuilt from the collected records alone (config `from_records`)."""
    for name in ("Snakefile", "workflow", "config", "profiles"):
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy)(ROOT / name, tmp_path / name)
    result = subprocess.run(["bash", "workflow/campaign.sh", "run"], cwd=tmp_path, env=CAMPAIGN_ENV,
                            capture_output=True, text=True, timeout=600)
    logs = tmp_path / "results" / "smoke" / "logs" / "campaign"
    assert result.returncode == 0, result.stderr + (logs / "stage-300.log").read_text()[-3000:]
    reached = [line.split()[2] for line in (logs / "campaign.log").read_text().splitlines()
               if line.endswith("reached")]
    assert reached == ["150", "300"]
    for step in (150, 300):
        for protocol in ("", "stochastic/"):
            df = pd.read_csv(tmp_path / "paper_tables" / "smoke" / "milestones" / str(step) / f"{protocol}table3.csv")
            assert df["train_steps"].tolist() == [step]
    figure = pd.read_csv(tmp_path / "results" / "smoke" / "figures" / "verdict_MountainCarContinuous.csv")
    assert sorted(set(figure.loc[figure["kind"] == "milestone", "step"])) == [150, 300]
    status = subprocess.run(["bash", "workflow/campaign.sh", "status"], cwd=tmp_path, env=CAMPAIGN_ENV,
                            capture_output=True, text=True, timeout=60)
    assert "paper_tables/smoke/milestones/300/table3.csv" in status.stdout
    # collect: every run's records into another checkout
    checkout = tmp_path / "checkout"
    subprocess.run(["git", "init", "-q", str(checkout)], check=True)
    collect = subprocess.run(["bash", "workflow/campaign.sh", "collect", str(checkout)], cwd=tmp_path,
                             env=CAMPAIGN_ENV, capture_output=True, text=True, timeout=60)
    assert collect.returncode == 0, collect.stderr
    records = checkout / "results/smoke/records/MountainCarContinuous"
    for method in ("s_only", "l_only", "ours"):
        for folder in (records / method / "milestones/150/seed0", records / method / "seed0"):
            assert (folder / "eval.json").exists() and (folder / "progress.csv").exists()
    assert not list(records.rglob("*.pt")) and not list(records.rglob("*.zip"))
    # ... from which the milestone tables and the figure are rebuilt, with no run folder
    for name in ("Snakefile", "workflow", "config", "profiles"):
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy)(ROOT / name, checkout / name)
    rebuilt = snakemake("milestones", "--cores", "1", "--config", "scale=smoke", "tasks=[MountainCarContinuous]",
                        "from_records=True", cwd=checkout)
    assert rebuilt.returncode == 0, rebuilt.stdout[-3000:] + rebuilt.stderr[-3000:]
    assert not (checkout / "results/smoke/MountainCarContinuous").exists()   # nothing trained
    for made in ("paper_tables/smoke/milestones/150/table3.csv", "paper_tables/smoke/milestones/300/table3.md",
                 "paper_tables/smoke/milestones/300/stochastic/table3.csv",
                 "results/smoke/figures/verdict_MountainCarContinuous.csv"):
        assert (checkout / made).read_bytes() == (tmp_path / made).read_bytes()


def test_a_pareto_figure_from_records_trains_nothing_and_names_the_missing_evaluations():
    """With `from_records`, the cost-weight figure reads the collected records: a factor without
    any (7 x lambda) is named as missing before any job runs, and nothing is trained."""
    figure = "results/verify_200k/figures/pareto_MountainCarContinuous_as_sac.png"  # committed: forced
    result = snakemake("-n", "--cores", "1", "--force", figure, "--config", "scale=verify_200k",
                       "from_records=True", "seeds=[0, 1]", "pareto={lambda_factors: [1, 7], variant: as_sac}")
    assert result.returncode != 0
    out = result.stdout + result.stderr
    assert "Missing input files for rule pareto_figure" in out
    assert "results/verify_200k/records/MountainCarContinuous/ours_as_sac_lam7/seed1/eval.json" in out
    assert "asymbench train" not in out and "results/verify_200k/MountainCarContinuous/" not in out


def test_a_grid_from_records_names_the_missing_evaluations():
    """With `from_records`, nothing is trained: a grid asked for with seeds that have no
    collected evaluation names the missing eval.json files before any job runs."""
    grid = "grid={name: cell, task: MountainCarContinuous, scales: [verify_200k], seeds: 99, variants: [as_sac]}"
    result = snakemake("mcc_grid", "-n", "--cores", "1", "--config", "scale=verify_200k",
                       "from_records=True", grid)  # 99 seeds: more than any collected
    assert result.returncode != 0
    out = result.stdout + result.stderr
    assert "Missing input files for rule noise_budget_grid" in out
    for method in ("s_only", "l_only", "ours_as_sac"):
        assert f"results/verify_200k/records/MountainCarContinuous/{method}/seed98/eval.json" in out
    assert "asymbench train" not in out
