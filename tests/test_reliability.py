"""No lost work and no misleading failure, whatever happens to the Snakemake process, a checkpoint
or an input file (docs/contract.md, "When things go wrong"). Each case goes through the path a
user takes: `snakemake` in a copy of the workflow, or the `asymbench` command line.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from asymbench.tasks import REGISTRY_PATH

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "MUJOCO_GL": "egl"}
MCC = "MountainCarContinuous"
SMOKE = ["scale=smoke", f"tasks=[{MCC}]"]
# One S-only run at the smoke scale's settings, as its training rule would run it.
TRAIN = ["train", "--task", MCC, "--method", "s_only", "--seeds", "0", "--steps", "300", "--learning-starts",
         "100", "--max-episode-steps", "100", "--checkpoint-every", "100", "--quiet"]


def snakemake(workspace: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "snakemake"),
                           "--cores", "1", *args], cwd=workspace, env=ENV, capture_output=True,
                          text=True, timeout=timeout)


def asymbench(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "asymbench"), *args], env=ENV, capture_output=True, text=True,
                          timeout=timeout)


def workflow_copy(tmp_path: Path) -> Path:
    for name in ("Snakefile", "workflow", "config", "profiles"):
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy)(ROOT / name, tmp_path / name)
    return tmp_path


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text()


def test_a_job_that_outlives_a_killed_snakemake_leaves_a_run_the_rerun_accepts(tmp_path):
    """kill -9 of snakemake alone while the final segment trains: the job finishes on its own;
    the rerun (which deletes run.json as incomplete) accepts the run and trains nothing; the
    group's train.log keeps the lines of both jobs."""
    ws = workflow_copy(tmp_path)
    group = ws / "results" / "smoke" / MCC / "s_only"
    target = f"results/smoke/{MCC}/s_only/seed0/run.json"
    config = ["--config", *SMOKE, "scales={smoke: {steps: 1500}}"]
    log = ws / "results" / "smoke" / "logs" / MCC / "s_only" / "train.log"
    with open(tmp_path / "snakemake.out", "w") as out:
        head = subprocess.Popen([str(BIN / "snakemake"),
                                 "--cores", "1", target, *config], cwd=ws, env=ENV, stdout=out,
                                stderr=subprocess.STDOUT)
        try:
            # The final segment (150 -> 1500) is under way: it checkpointed past the milestone.
            started = re.compile(r"checkpoint at step [\d,]+ of 1,500")
            wait_for(lambda: log.exists() and started.search(log.read_text()), 300,
                     "the final segment's first checkpoint")
            job = json.loads((group / "train.lock").read_text())["pid"]
        finally:
            head.kill()
            head.wait()
    assert alive(job), "the training job ended with snakemake; this test needs it to outlive it"
    wait_for(lambda: not alive(job), 300, "the orphaned training job")
    finished = (group / "seed0" / "run.json").read_text()
    first_log = log.read_text()
    assert "finished 1 seeds x 1500 steps" in first_log

    assert snakemake(ws, "--unlock", *config).returncode == 0  # what snakemake asks after a kill -9
    rerun = snakemake(ws, target, *config)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert (group / "seed0" / "run.json").read_text() == finished  # the same run, not a new one
    assert "run.json written back" in log.read_text()
    assert "resuming" not in log.read_text() and "finished 1 seeds" not in log.read_text()
    history = (group / "train.log").read_text()  # the group's own log keeps both jobs' lines
    assert "finished 1 seeds x 1500 steps" in history and history.endswith(log.read_text())
    again = snakemake(ws, target, *config, "-n")
    assert "Nothing to be done" in again.stdout + again.stderr


def test_a_damaged_latest_checkpoint_falls_back_to_the_previous_one(tmp_path):
    """`asymbench train` as the second segment's rule runs it: a truncated group_checkpoint.pt
    is no reason to restart while group_checkpoint.previous.pt is intact; when both are
    damaged, one line names both and asks for a restart."""
    out = tmp_path / "g"
    first = asymbench(*TRAIN, "--out", str(out), "--until", "250")
    assert first.returncode == 0, first.stderr
    latest, previous = out / "group_checkpoint.pt", out / "group_checkpoint.previous.pt"
    assert previous.exists()
    intact_previous = previous.read_bytes()
    latest.write_bytes(latest.read_bytes()[:1000])
    resumed = asymbench(*TRAIN, "--out", str(out), "--segment-start", "250")
    assert resumed.returncode == 0, resumed.stderr
    fallback = [line for line in resumed.stderr.splitlines() if "previous checkpoint" in line]
    assert len(fallback) == 1 and str(latest) in fallback[0] and "step 200" in fallback[0]
    assert (out / "seed0" / "run.json").exists()

    # A finished run is never trained again: its run.json, deleted, comes back from the group's
    # record; without the record (a run of an earlier asymbench) the command refuses.
    (out / "seed0" / "run.json").unlink()
    again = asymbench(*TRAIN, "--out", str(out), "--segment-start", "250")
    assert again.returncode == 0 and "run.json written back" in again.stdout, again.stderr
    (out / "seed0" / "run.json").unlink()
    (out / "group_finished.json").unlink()
    kept = asymbench(*TRAIN, "--out", str(out))
    assert kept.returncode == 2 and "delete" in kept.stderr and "run.json files are missing" in kept.stderr
    assert not (out / "group_checkpoint.pt").exists()

    both = tmp_path / "both"
    shutil.copytree(out / "milestones", both / "milestones")  # a group whose two checkpoints are damaged
    (both / "seed0").mkdir(parents=True)
    shutil.copy(out / "seed0" / "config.json", both / "seed0" / "config.json")
    (both / "group_checkpoint.pt").write_bytes(b"PK\x03\x04 truncated")
    (both / "group_checkpoint.previous.pt").write_bytes(intact_previous[:500])
    refused = asymbench(*TRAIN, "--out", str(both), "--segment-start", "250")
    assert refused.returncode == 2
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in refused.stderr
    assert "group_checkpoint.pt" in lines[0] and "group_checkpoint.previous.pt" in lines[0]
    assert "restart" in lines[0]


def test_a_changed_registry_entry_reruns_the_training_of_its_task_only(tmp_path):
    """registry=<file>: one width of one task changed in that file; the dry run retrains that
    task's runs and no other task's."""
    ws = workflow_copy(tmp_path)
    registry = tmp_path / "my_tasks.yaml"
    shutil.copy(REGISTRY_PATH, registry)
    targets = [f"results/smoke/{task}/s_only/seed0/run.json" for task in (MCC, "Swimmer")]
    config = ["--config", "scale=smoke", f"registry={registry}",
              "scales={smoke: {steps: 200, milestones: [], learning_starts: 50}}"]
    trained = snakemake(ws, *targets, *config)
    assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]
    unchanged = snakemake(ws, *targets, *config, "-n")
    assert "Nothing to be done" in unchanged.stdout + unchanged.stderr

    text = registry.read_text()
    block = text.index(f"  {MCC}:\n")
    width = re.compile(r"(\n    small: )8\b")
    registry.write_text(text[:block] + width.sub(r"\g<1>12", text[block:], count=1))
    dry = snakemake(ws, *targets, *config, "-n")
    assert dry.returncode == 0, dry.stderr[-3000:]
    jobs = re.findall(r"^\s*(train_\w+)\s+(\d+)$", dry.stdout.split("Job stats:")[1], re.M)
    assert dict(jobs) == {f"train_{MCC}": "1"}, dry.stdout


def test_a_full_disk_during_a_checkpoint_write_names_the_file_and_the_intact_checkpoint(tmp_path):
    """A resumed run on a filesystem with room for one checkpoint but not two: one line naming
    the checkpoint being written and the intact one left; resuming elsewhere works from it."""
    out = tmp_path / "g"
    first = asymbench(*TRAIN, "--out", str(out), "--until", "100")
    assert first.returncode == 0, first.stderr
    checkpoint = (out / "group_checkpoint.pt").stat().st_size
    small = tmp_path / "small"
    small.mkdir()
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(small)],
                           capture_output=True, text=True)
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill ({mount.stderr.strip()}): needs root")
    try:
        shutil.copytree(out, small / "g")
        fs = os.statvfs(small)
        used_kb = (fs.f_blocks - fs.f_bfree) * fs.f_frsize // 1024
        room_kb = used_kb + checkpoint // 2048 + 8  # the files, and half a checkpoint more
        subprocess.run(["mount", "-o", f"remount,size={room_kb}k", str(small)], check=True)
        full = asymbench(*TRAIN, "--out", str(small / "g"), "--segment-start", "100")
        assert full.returncode != 0
        lines = full.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in full.stderr and "enforce fail" not in full.stderr
        written = small / "g" / "group_checkpoint.pt"
        assert f"writing the checkpoint {written}" in lines[0]
        assert f"the last intact checkpoint is {written} (step 100)" in lines[0]
        shutil.copytree(small / "g", tmp_path / "moved")
    finally:
        subprocess.run(["umount", str(small)], check=True)
    resumed = asymbench(*TRAIN, "--out", str(tmp_path / "moved"), "--segment-start", "100")
    assert resumed.returncode == 0 and "resuming 1 seeds at step 100" in resumed.stdout, resumed.stderr


def test_a_corrupt_evaluation_stops_the_workflow_before_any_output_is_deleted(tmp_path):
    """A truncated eval.json: snakemake refuses before any job runs (so no finished output of a
    job reading it is deleted), naming the file and how to rebuild it; the command that reads
    it says the same."""
    ws = workflow_copy(tmp_path)
    evaluation = ws / "results" / "smoke" / MCC / "ours" / "seed0" / "eval.json"
    evaluation.parent.mkdir(parents=True)
    evaluation.write_text('{"method": "asym", "task": "MountainCarContinuous", "flops_per')
    table = ws / "paper_tables" / "smoke" / "table3.csv"
    table.parent.mkdir(parents=True)
    table.write_text("finished before\n")
    result = snakemake(ws, "paper_tables/smoke/table3.csv", "--config", *SMOKE)
    assert result.returncode != 0
    message = result.stdout + result.stderr
    assert f"results/smoke/{MCC}/ours/seed0/eval.json is corrupt" in message
    assert "delete it and rerun snakemake" in message
    assert table.read_text() == "finished before\n"

    fit = asymbench("train", "--task", MCC, "--method", "fit", "--seed", "0", "--out",
                    str(tmp_path / "fit"), "--width-from", str(evaluation))
    assert fit.returncode == 2 and len(fit.stderr.strip().splitlines()) == 1
    assert str(evaluation) in fit.stderr and "delete it and rerun" in fit.stderr
