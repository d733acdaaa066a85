"""Malformed input, as a new user would type it: every one must end in ONE clear line on stderr
(naming the bad value and what would be accepted), exit code 2, no traceback, and nothing that
looks finished. Drives the CLI's main() in-process (one tiny training run of a task that exists
only in a user's registry file), the Snakemake config check in-process (common.smk executed the
way the Snakefile includes it), and one real `snakemake -n` for the wiring.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from asymbench.cli import build_parser, main
from asymbench.runs import check_checkpoint, read_json, write_json
from asymbench.tasks import REGISTRY_PATH, RegistryError, get_task, task_from_config

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

USER_TASK = """
  Pendulum:
    env_id: Pendulum-v1   # [ours]
    small: 4              # [ours]
    large: 16             # [ours]
    lambda: 1.0e-3        # [ours]
"""
TINY = "--steps 60 --learning-starts 1000 --max-episode-steps 20 --quiet"


def _options(command: str, *sub: str) -> set[str]:
    parser = build_parser()
    for name in (command, *sub):
        parser = next(a for a in parser._actions if hasattr(a, "choices") and isinstance(a.choices, dict)
                      and name in a.choices).choices[name]
    return {s for a in parser._actions for s in a.option_strings}


TRAIN_OPTIONS = _options("train")
ENGINE = "--engine sb3" if "--engine" in TRAIN_OPTIONS else ""
COMMANDS = set(next(a for a in build_parser()._actions if hasattr(a, "choices")
                    and isinstance(a.choices, dict)).choices)


def fill(template: str, ws: dict[str, str]) -> str:
    """Replaces {name} by the workspace path ``name``; other braces (YAML) stay."""
    return re.sub(r"\{(\w+)\}", lambda m: ws.get(m.group(1), m.group(0)), template)


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


# ----------------------------------------------------------------------------- workspace
@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> dict[str, str]:
    """Paths the cases refer to: a user registry, a finished run of its own task, its evaluation,
    expert data, damaged copies of the run, damaged checkpoints, bad registries and JSONs."""
    root = tmp_path_factory.mktemp("cli_errors")
    p = {"ws": str(root)}
    reg = root / "reg.yaml"
    reg.write_text(REGISTRY_PATH.read_text() + USER_TASK)
    p["reg"] = str(reg)

    run = root / "run"
    argv = shlex.split(f"train --task Pendulum --registry {reg} --method l_only --seed 0 "
                       f"--out {run} {TINY} {ENGINE}")
    assert main(argv) == 0
    assert main(["evaluate", str(run), "--out", str(root / "eval.json"), "--episodes", "1"]) == 0
    assert main(["expert", "--teacher", str(run), "--out", str(root / "expert.npz"),
                 "--trajectories", "2", "--length", "5"]) == 0
    p.update(run=str(run), eval=str(root / "eval.json"), expert=str(root / "expert.npz"))

    (root / "afile.txt").write_text("not a folder\n")
    (root / "adir").mkdir()
    p.update(file=str(root / "afile.txt"), dir=str(root / "adir"))
    # A folder nobody may write in (root ignores permissions: /sys is read-only for it too).
    if os.geteuid() == 0:
        p["ro"] = "/sys/asymbench-out"
    else:
        ro = root / "readonly"
        ro.mkdir()
        ro.chmod(0o500)
        p["ro"] = str(ro / "out")

    # damaged copies of the finished run
    def damaged(name, change):
        folder = root / name
        shutil.copytree(run, folder)
        change(folder)
        p[name] = str(folder)

    damaged("no_model", lambda f: shutil.rmtree(f / "model"))
    damaged("unfinished", lambda f: (f / "run.json").unlink())
    damaged("bad_config", lambda f: (f / "config.json").write_text("{not json"))
    damaged("list_config", lambda f: (f / "config.json").write_text("[1, 2]"))
    damaged("no_task", lambda f: write_json(f / "config.json", {"method": "l_only"}))
    damaged("bad_summary", lambda f: (f / "run.json").write_text(""))
    damaged("trunc_model", lambda f: (f / "model" / "policy.zip").write_bytes(
        (f / "model" / "policy.zip").read_bytes()[:100]))
    damaged("bad_settings", lambda f: write_json(f / "config.json", dict(
        read_json(f / "config.json"), task_settings=dict(
            read_json(f / "config.json")["task_settings"], small=64))))
    damaged("asym_run", lambda f: write_json(f / "config.json", dict(
        read_json(f / "config.json"), method="asym")))

    # damaged checkpoints of a run to resume
    def checkpoint(name, latest, files):
        folder = root / name / "checkpoint"
        folder.mkdir(parents=True)
        (folder / "latest.json").write_text(latest)
        for rel, data in files.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_bytes(data)
        p[name] = str(root / name)

    whole = pickle.dumps({"step": 10}, protocol=4)
    checkpoint("ck_missing", '{"step": 10, "dir": "step0000000010"}', {})
    checkpoint("ck_trunc", '{"step": 10, "dir": "step0000000010"}',
               {"step0000000010/state.pkl": whole[:-3]})
    checkpoint("ck_latest", "[]", {})
    checkpoint("ck_zip", '{"step": 10, "dir": "step0000000010"}',
               {"step0000000010/policy.zip": b"PK\x03\x04 truncated"})
    (root / "ck_pt").mkdir()
    (root / "ck_pt" / "group_checkpoint.pt").write_bytes(b"\x00" * 10)
    p["ck_pt"] = str(root / "ck_pt")

    # --width-from sources
    def evaluation(name, data):
        path = root / f"{name}.json"
        path.write_text(data if isinstance(data, str) else json.dumps(data))
        p[name] = str(path)

    good = {"task": "Pendulum", "method": "asym", "flops_per_inf": 300.0}
    evaluation("wf_list", "[1, 2, 3]")
    evaluation("wf_noflops", {"task": "Pendulum", "method": "asym"})
    evaluation("wf_nan", dict(good, flops_per_inf=float("nan")))
    evaluation("wf_neg", dict(good, flops_per_inf=-5))
    evaluation("wf_method", dict(good, method="l_only"))
    evaluation("wf_task", dict(good, task="Swimmer"))
    evaluation("wf_corrupt", "{")
    (root / "bad.npz").write_bytes(b"not an npz")
    p["bad_npz"] = str(root / "bad.npz")

    # registries
    raw = yaml.safe_load(REGISTRY_PATH.read_text())

    def registry(name, text=None, change=None):
        path = root / f"reg_{name}.yaml"
        if change is not None:
            data = yaml.safe_load(REGISTRY_PATH.read_text())
            change(data)
            text = yaml.safe_dump(data, sort_keys=False)
        path.write_text(text)
        p[f"reg_{name}"] = str(path)

    def task(key, value, name="Swimmer"):
        return lambda d: d["tasks"][name].update({key: value})

    registry("syntax", "tasks:\n  Swimmer: [\n")
    registry("tabs", "tasks:\n\tSwimmer: {}\n")
    registry("empty", "")
    registry("list", "- Swimmer\n- Ant\n")
    registry("notasks", yaml.safe_dump({"defaults": raw["defaults"]}))
    registry("emptytasks", change=lambda d: d.update(tasks={}))
    registry("toplevel", change=lambda d: d.update(task=d.pop("tasks")))
    registry("dedent", REGISTRY_PATH.read_text() + "Pendulum:\n  env_id: Pendulum-v1\n")
    registry("duplicate", REGISTRY_PATH.read_text() + USER_TASK + USER_TASK)
    registry("lam_nan", change=task("lambda", float("nan")))
    registry("lam_inf", change=task("lambda", float("inf")))
    registry("lam_neg", change=task("lambda", -1.0e-3))
    registry("lam_text", REGISTRY_PATH.read_text().replace("lambda: 1.0e-4", "lambda: 1e-4"))
    registry("small_ge", change=task("small", 512))
    registry("small_eq", change=task("small", 256))
    registry("env_missing", change=task("env_id", "Swimer-v5"))
    registry("env_version", change=task("env_id", "Swimmer-v99"))
    registry("env_discrete", change=task("env_id", "CartPole-v1"))
    registry("env_empty", change=task("env_id", ""))
    registry("field", change=task("widht", 3))
    registry("nested", change=lambda d: d["tasks"]["Swimmer"]["sac"].update(lr=1.0))
    registry("missing", change=lambda d: d["tasks"]["Swimmer"].pop("large"))
    registry("nodefaults", change=lambda d: d.pop("defaults"))
    registry("defaults_key", change=lambda d: d["defaults"].update(macrolen=5))
    registry("defaults_list", change=lambda d: d.update(defaults=[1]))
    registry("entry_list", change=lambda d: d["tasks"].update(Swimmer=[1]))
    registry("name", change=lambda d: d["tasks"].update({"my task": d["tasks"]["Swimmer"]}))
    registry("ent_coef", change=lambda d: d["tasks"]["Swimmer"]["sac"].update(ent_coef="automatic"))
    registry("her", change=task("her", {"goal_selection_strategy": "future"}))
    registry("timeouts", change=task("timeouts", "truncate"))
    registry("gamma", change=lambda d: d["tasks"]["Swimmer"]["sac"].update(gamma=1.5))
    registry("hidden", change=lambda d: d["defaults"]["master"].update(hidden=[]))
    registry("lr_nan", change=lambda d: d["defaults"]["sac"].update(learning_rate=float("nan")))
    return p


# ----------------------------------------------------------------------------- CLI cases
T = "train --task Pendulum --registry {reg} --method l_only --out {ws}/t"  # a valid train prefix
TA = "train --task Pendulum --registry {reg} --method asym --out {ws}/t"
E = "evaluate {run} --out {ws}/e.json"
X = "expert --teacher {run} --out {ws}/x.npz"
D = "distill --method bc --teacher {run} --expert {expert} --out {ws}/d"
DW = D + " --width 4"
REG = "tasks --registry "

# (id, argv template, substrings the single error line must hold)
CASES = [
    # argparse: missing, unknown, malformed values
    ("no-command", "", ["required"]),
    ("unknown-command", "trian", ["invalid choice"]),
    ("train-missing-task", "train --method l_only --out {ws}/t", ["--task"]),
    ("train-missing-out", "train --task Pendulum --method l_only", ["--out"]),
    ("train-bad-method", "train --task Pendulum --method ppo --out {ws}/t", ["--method", "ppo"]),
    ("train-threads-text", T + " --threads two", ["--threads", "two"]),
    ("train-seed-text", T + " --seed 1.5", ["--seed", "1.5"]),
    ("train-lam-text", TA + " --lam small", ["--lam", "small"]),
    ("train-unknown-option", T + " --stepz 10", ["--stepz"]),
    ("evaluate-missing-out", "evaluate {run}", ["--out"]),
    ("evaluate-episodes-text", E + " --episodes many", ["--episodes"]),
    ("distill-bad-method", "distill --method dagger --teacher {run} --expert {expert} --out {ws}/d "
     "--width 4", ["--method", "dagger"]),
    ("distill-no-width", D, ["--width"]),
    ("tables-bad-table", "tables table9 --scale x --out {ws}/t.csv", ["table9"]),
    ("figures-no-kind", "figures", ["required"]),
    # numbers out of range
    ("train-threads-0", T + " --threads 0", ["--threads", "got 0", ">= 1"]),
    ("train-threads-neg", T + " --threads -1", ["--threads", "got -1", ">= 1"]),
    ("train-seed-neg", T + " --seed -1", ["--seed", "got -1", ">= 0"]),
    ("train-steps-0", T + " --steps 0", ["--steps", ">= 1"]),
    ("train-steps-neg", T + " --steps -5", ["--steps", ">= 1"]),
    ("train-learning-starts-neg", T + " --learning-starts -1", ["--learning-starts", ">= 0"]),
    ("train-master-ls-neg", TA + " --master-learning-starts -2", ["--master-learning-starts", ">= 0"]),
    ("train-max-episode-steps-0", T + " --max-episode-steps 0", ["--max-episode-steps", ">= 1"]),
    ("train-checkpoint-every-0", T + " --checkpoint-every 0", ["--checkpoint-every", ">= 1"]),
    ("train-env-workers-neg", T + " --env-workers -1", ["--env-workers", "got -1", ">= 0"]),
    # before anything is trained or written (a machine with a GPU trains instead)
    *([("train-cuda-without-gpu", T + " --device cuda", ["--device cuda", "no CUDA device"])]
      if not __import__("torch").cuda.is_available() else []),
    ("train-lam-nan", TA + " --lam nan", ["--lam", "nan", "finite"]),
    ("train-lam-inf", TA + " --lam inf", ["--lam", "inf", "finite"]),
    ("train-lam-minus-inf", TA + " --lam=-inf", ["--lam", "finite"]),
    ("train-lam-neg", TA + " --lam=-0.001", ["--lam", ">= 0"]),
    ("train-width-0", "train --task Pendulum --registry {reg} --method fit --width 0 --out {ws}/t",
     ["--width", ">= 1"]),
    ("evaluate-seed-neg", E + " --seed -1", ["--seed", ">= 0"]),
    ("evaluate-episodes-0", E + " --episodes 0", ["--episodes", ">= 1"]),
    ("evaluate-episodes-neg", E + " --episodes -3", ["--episodes", ">= 1"]),
    ("evaluate-max-steps-0", E + " --max-episode-steps 0", ["--max-episode-steps", ">= 1"]),
    ("evaluate-threads-0", E + " --threads 0", ["--threads", ">= 1"]),
    ("expert-trajectories-0", X + " --trajectories 0", ["--trajectories", ">= 1"]),
    ("expert-length-0", X + " --length 0", ["--length", ">= 1"]),
    ("expert-seed-neg", X + " --seed -1", ["--seed", ">= 0"]),
    ("expert-max-steps-0", X + " --max-episode-steps 0", ["--max-episode-steps", ">= 1"]),
    ("distill-width-0", D + " --width 0", ["--width", ">= 1"]),
    ("distill-epochs-0", DW + " --epochs 0", ["--epochs", ">= 1"]),
    ("distill-steps-0", DW + " --steps 0", ["--steps", ">= 1"]),
    ("distill-seed-neg", DW + " --seed -7", ["--seed", ">= 0"]),
    ("distill-threads-neg", DW + " --threads -1", ["--threads", ">= 1"]),
    ("estimate-cores-0", "estimate --scale smoke --cores 0", ["--cores", ">= 1"]),
    ("estimate-gpu-slots-0", "estimate --scale smoke --gpu-slots 0", ["--gpu-slots", ">= 1"]),
    ("figures-run-seed-neg", "figures timeline --trace {file} --eval {eval} --run-seed -1 "
     "--scale x --out {ws}/f.png", ["--run-seed", ">= 0"]),
    # options that do not apply to the method
    ("train-lam-s_only", "train --task Pendulum --registry {reg} --method s_only --lam 0.01 "
     "--out {ws}/t", ["--lam", "asym only"]),
    ("train-lam-l_only", T + " --lam 0", ["--lam", "asym only"]),
    ("train-width-asym", TA + " --width 32", ["--width", "fit only"]),
    ("train-width-l_only", T + " --width 32", ["--width", "fit only"]),
    ("train-width-from-asym", TA + " --width-from {eval}", ["--width-from", "fit only"]),
    ("train-fit-no-width", "train --task Pendulum --registry {reg} --method fit --out {ws}/t",
     ["--width"]),
    # --width-from sources
    *[(f"train-width-from-{name}", "train --task Pendulum --registry {reg} --method fit "
       f"--width-from {source} --out {{ws}}/t", expected)
      for name, source, expected in (
          ("missing", "{ws}/nope.json", ["--width-from", "does not exist"]),
          ("a-folder", "{dir}", ["--width-from", "folder"]),
          ("json-list", "{wf_list}", ["--width-from", "list"]),
          ("no-flops", "{wf_noflops}", ["--width-from", "flops_per_inf"]),
          ("nan-flops", "{wf_nan}", ["--width-from", "flops_per_inf", "positive"]),
          ("negative-flops", "{wf_neg}", ["--width-from", "flops_per_inf", "positive"]),
          ("wrong-method", "{wf_method}", ["--width-from", "l_only", "asym"]),
          ("wrong-task", "{wf_task}", ["--width-from", "Swimmer", "Pendulum"]),
          ("corrupt", "{wf_corrupt}", ["corrupt JSON"]),
          ("both-widths", "{wf_neg} --width 8", ["exactly one"]))],
    ("distill-width-from-list", D + " --width-from {wf_list}", ["not an evaluation"]),
    ("distill-width-from-task", D + " --width-from {wf_task}", ["Swimmer"]),
    # output paths
    ("train-out-is-file", "train --task Pendulum --registry {reg} --method l_only --out {file}",
     ["--out", "existing file", "folder"]),
    ("train-out-under-file", "train --task Pendulum --registry {reg} --method l_only "
     "--out {file}/run", ["--out", "is a file"]),
    ("train-out-unwritable", "train --task Pendulum --registry {reg} --method l_only --out {ro}",
     ["--out", "writable"]),
    ("distill-out-is-file", "distill --method bc --teacher {run} --expert {expert} --out {file} "
     "--width 4", ["--out", "existing file"]),
    ("distill-out-unwritable", "distill --method bc --teacher {run} --expert {expert} --out {ro} "
     "--width 4", ["--out", "writable"]),
    ("evaluate-out-is-dir", "evaluate {run} --out {dir}", ["--out", "is a folder", "file"]),
    ("evaluate-out-under-file", "evaluate {run} --out {file}/e.json", ["--out", "is a file"]),
    ("evaluate-out-unwritable", "evaluate {run} --out {ro}/e.json", ["--out", "writable"]),
    ("evaluate-trace-is-dir", E + " --trace {dir}", ["--trace", "is a folder"]),
    ("evaluate-frames-is-file", E + " --frames {file}", ["--frames", "existing file"]),
    ("expert-out-is-dir", "expert --teacher {run} --out {dir}", ["--out", "is a folder"]),
    ("expert-out-under-file", "expert --teacher {run} --out {file}/x.npz", ["--out", "is a file"]),
    ("expert-out-unwritable", "expert --teacher {run} --out {ro}/x.npz", ["--out", "writable"]),
    ("tables-out-is-dir", "tables table3 --scale x --out {dir} --l-only {eval}", ["--out", "folder"]),
    ("figures-out-is-dir", "figures timeline --trace {file} --eval {eval} --run-seed 0 --scale x "
     "--out {dir}", ["--out", "folder"]),
    ("estimate-out-is-dir", "estimate --scale smoke --out {dir}", ["--out", "folder"]),
    # input paths and run folders
    ("evaluate-run-missing", "evaluate {ws}/nothing --out {ws}/e.json", ["nothing", "does not exist"]),
    ("evaluate-run-is-file", "evaluate {file} --out {ws}/e.json", ["RUN", "is a file"]),
    ("evaluate-run-unfinished", "evaluate {unfinished} --out {ws}/e.json", ["unfinished"]),
    ("evaluate-run-no-model", "evaluate {no_model} --out {ws}/e.json", ["policy.zip", "missing"]),
    ("evaluate-run-corrupt-config", "evaluate {bad_config} --out {ws}/e.json", ["config.json"]),
    ("evaluate-run-config-list", "evaluate {list_config} --out {ws}/e.json", ["config.json", "list"]),
    ("evaluate-run-config-no-task", "evaluate {no_task} --out {ws}/e.json", ["config.json", "task"]),
    ("evaluate-run-corrupt-summary", "evaluate {bad_summary} --out {ws}/e.json", ["run.json"]),
    ("evaluate-run-truncated-model", "evaluate {trunc_model} --out {ws}/e.json",
     ["policy.zip", "damaged"]),
    ("evaluate-run-bad-task-settings", "evaluate {bad_settings} --out {ws}/e.json",
     ["small", "large"]),
    ("evaluate-run-models-of-asym", "evaluate {asym_run} --out {ws}/e.json", ["small.zip", "missing"]),
    ("expert-teacher-missing", "expert --teacher {ws}/none --out {ws}/x.npz", ["does not exist"]),
    ("expert-teacher-unfinished", "expert --teacher {unfinished} --out {ws}/x.npz", ["unfinished"]),
    ("expert-teacher-no-model", "expert --teacher {no_model} --out {ws}/x.npz", ["policy.zip"]),
    ("expert-teacher-not-l_only", "expert --teacher {asym_run} --out {ws}/x.npz", ["'asym' run"]),
    ("distill-expert-missing", "distill --method bc --teacher {run} --expert {ws}/no.npz "
     "--out {ws}/d --width 4", ["no.npz", "does not exist"]),
    ("distill-expert-is-dir", "distill --method bc --teacher {run} --expert {dir} --out {ws}/d "
     "--width 4", ["--expert", "folder"]),
    ("distill-expert-corrupt", "distill --method bc --teacher {run} --expert {bad_npz} "
     "--out {ws}/d --width 4", ["bad.npz", ".npz"]),
    ("distill-gail-too-few-steps", "distill --method gail --teacher {run} --expert {expert} "
     "--out {ws}/d --width 4 --steps 100", ["2048"]),
    ("tables-eval-missing", "tables table3 --scale x --out {ws}/t.csv --l-only {ws}/none.json",
     ["none.json", "does not exist"]),
    ("figures-trace-missing", "figures timeline --trace {ws}/none.csv --eval {eval} --run-seed 0 "
     "--scale x --out {ws}/f.png", ["--trace", "does not exist"]),
    ("estimate-throughput-missing", "estimate --scale smoke --throughput {ws}/none.json",
     ["none.json"]),
    ("estimate-unknown-scale", "estimate --scale huge", ["huge"]),
    # damaged checkpoints: refused before resuming
    ("resume-latest-points-nowhere", "train --task Pendulum --registry {reg} --method l_only "
     "--out {ck_missing}", ["step0000000010", "does not exist", "delete"]),
    ("resume-truncated-state", "train --task Pendulum --registry {reg} --method l_only "
     "--out {ck_trunc}", ["state.pkl", "truncated", "delete"]),
    ("resume-latest-not-object", "train --task Pendulum --registry {reg} --method l_only "
     "--out {ck_latest}", ["latest.json"]),
    ("resume-truncated-zip", "train --task Pendulum --registry {reg} --method l_only "
     "--out {ck_zip}", ["policy.zip", "damaged"]),
    ("resume-truncated-group", "train --task Pendulum --registry {reg} --method l_only "
     "--out {ck_pt}", ["group_checkpoint.pt", "damaged"]),
    # tasks and registries
    ("train-unknown-task", "train --task Hopper --method l_only --out {ws}/t", ["Hopper", "Swimmer"]),
    ("train-user-task-without-registry", "train --task Pendulum --method l_only --out {ws}/t",
     ["Pendulum", "--registry"]),
    ("flops-unknown-task", "flops --tasks Hopper", ["Hopper"]),
    ("registry-missing", REG + "{ws}/none.yaml", ["none.yaml", "does not exist"]),
    ("registry-is-dir", REG + "{dir}", ["folder", "YAML file"]),
    ("registry-syntax", REG + "{reg_syntax}", ["YAML syntax error", "line"]),
    ("registry-tabs", REG + "{reg_tabs}", ["YAML syntax error"]),
    ("registry-empty", REG + "{reg_empty}", ["tasks"]),
    ("registry-list", REG + "{reg_list}", ["mapping"]),
    ("registry-no-tasks", REG + "{reg_notasks}", ["'tasks'"]),
    ("registry-empty-tasks", REG + "{reg_emptytasks}", ["'tasks'"]),
    ("registry-misspelt-top-level", REG + "{reg_toplevel}", ["'task'", "did you mean 'tasks'"]),
    ("registry-task-at-top-level", REG + "{reg_dedent}", ["'Pendulum'", "top-level"]),
    ("registry-duplicate-task", REG + "{reg_duplicate}", ["duplicate key 'Pendulum'"]),
    ("registry-lambda-nan", REG + "{reg_lam_nan}", ["'Swimmer'", "lambda", "finite"]),
    ("registry-lambda-inf", REG + "{reg_lam_inf}", ["'Swimmer'", "lambda", "finite"]),
    ("registry-lambda-negative", REG + "{reg_lam_neg}", ["lambda", ">= 0"]),
    ("registry-lambda-as-text", REG + "{reg_lam_text}", ["lambda", "write 1.0e-4"]),
    ("registry-small-above-large", REG + "{reg_small_ge}", ["small (512)", "large (256)"]),
    ("registry-small-equals-large", REG + "{reg_small_eq}", ["small (256)", "less than"]),
    ("registry-env-missing", REG + "{reg_env_missing}", ["env_id", "Swimer-v5"]),
    ("registry-env-version", REG + "{reg_env_version}", ["env_id", "Swimmer-v99"]),
    ("registry-env-discrete", REG + "{reg_env_discrete}", ["CartPole-v1", "Box"]),
    ("registry-env-empty", REG + "{reg_env_empty}", ["env_id"]),
    ("registry-unknown-field", REG + "{reg_field}", ["widht", "allowed"]),
    ("registry-unknown-nested", REG + "{reg_nested}", ["sac.lr", "learning_rate"]),
    ("registry-missing-field", REG + "{reg_missing}", ["large", "missing"]),
    ("registry-no-defaults", REG + "{reg_nodefaults}", ["missing", "defaults"]),
    ("registry-defaults-unknown-key", REG + "{reg_defaults_key}", ["defaults", "macrolen",
                                                                  "macro_len"]),
    ("registry-defaults-list", REG + "{reg_defaults_list}", ["'defaults'", "mapping"]),
    ("registry-entry-list", REG + "{reg_entry_list}", ["'Swimmer'", "mapping"]),
    ("registry-task-name", REG + "{reg_name}", ["'my task'"]),
    ("registry-ent-coef", REG + "{reg_ent_coef}", ["ent_coef", "'auto'"]),
    ("registry-her-incomplete", REG + "{reg_her}", ["her", "n_sampled_goal"]),
    ("registry-timeouts", REG + "{reg_timeouts}", ["timeouts", "'bootstrap'"]),
    ("registry-gamma", REG + "{reg_gamma}", ["sac.gamma", "<= 1"]),
    ("registry-master-hidden", REG + "{reg_hidden}", ["master.hidden"]),
    ("registry-learning-rate-nan", REG + "{reg_lr_nan}", ["sac.learning_rate", "finite"]),
    ("train-bad-registry", "train --task Swimmer --method l_only --registry {reg_small_ge} "
     "--out {ws}/t", ["small (512)"]),
    ("flops-bad-registry", "flops --registry {reg_toplevel}", ["'task'"]),
    ("expert-bad-registry", X + " --registry {reg_toplevel}", ["'task'"]),
]
if "--seeds" in TRAIN_OPTIONS:
    CASES += [("train-seeds-neg", T + " --seeds 0 -1", ["--seeds", ">= 0"]),
              ("train-seeds-duplicate", T + " --seeds 1 1", ["--seeds", "distinct"])]
if "export" in COMMANDS:
    CASES += [("export-out-is-file", "export {run} --out {file}", ["--out", "existing file"]),
              ("export-run-missing", "export {ws}/none --out {ws}/x", ["does not exist"]),
              ("export-run-no-model", "export {no_model} --out {ws}/x", ["policy.zip"])]


def test_at_least_a_hundred_cli_cases():
    assert len(CASES) >= 100 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("argv, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_input_gives_one_clear_line(ws, capsys, argv, expected):
    before = {p: p.exists() for p in (Path(ws["ws"]) / n for n in ("t", "d", "e.json", "x.npz",
                                                                    "t.csv", "f.png", "x"))}
    code, _, err = run_cli(shlex.split(fill(argv, ws)), capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith("asymbench") and "error:" in lines[0], err
    assert "Traceback" not in err
    for fragment in expected:
        assert fragment in lines[0], f"{fragment!r} not in: {lines[0]}"
    for path, existed in before.items():  # refused before anything was written
        assert existed or not path.exists(), f"{path} was created"


def test_debug_shows_the_traceback(ws, capsys):
    for argv in (["--debug", "tasks", "--registry", ws["reg_syntax"]],
                 ["tasks", "--registry", ws["reg_syntax"], "--debug"]):
        code, _, err = run_cli(argv, capsys)
        assert code == 2 and "Traceback" in err and "YAML syntax error" in err.splitlines()[-1]


def test_a_failing_command_leaves_no_finished_looking_output(ws, capsys, monkeypatch):
    """An internal failure after the evaluation JSON was written removes it again (exit 1)."""
    import asymbench.evaluation as evaluation

    def broken(*args, out=None, **kwargs):
        write_json(out, {"half": True})
        raise RuntimeError("disk vanished")

    monkeypatch.setattr(evaluation, "evaluate_run", broken)
    out = Path(ws["ws"]) / "half.json"
    code, _, err = run_cli(["evaluate", ws["run"], "--out", str(out)], capsys)
    assert code == 1 and not out.exists()
    assert len(err.strip().splitlines()) == 1 and "--debug" in err and "disk vanished" in err


# ----------------------------------------------------------------------------- self-contained runs
def test_a_run_of_a_user_registry_task_is_self_contained(ws, capsys):
    """The run was trained from a user's registry; evaluate / expert / distill need none."""
    config = read_json(Path(ws["run"]) / "config.json")
    assert config["task_settings"]["env_id"] == "Pendulum-v1"
    task = task_from_config(config)
    assert task.name == "Pendulum" and task.large == 16
    with pytest.raises(RegistryError, match="unknown task 'Pendulum'"):
        get_task("Pendulum")  # not in the packaged registry
    assert read_json(ws["eval"])["task"] == "Pendulum"  # evaluated without --registry
    out = Path(ws["ws"]) / "bc"
    code, _, err = run_cli(["distill", "--method", "bc", "--teacher", ws["run"], "--expert",
                            ws["expert"], "--width", "4", "--epochs", "1", "--out", str(out),
                            "--quiet"], capsys)
    assert code == 0, err
    assert read_json(out / "config.json")["task_settings"]["env_id"] == "Pendulum-v1"
    code, _, err = run_cli(["tables", "table3", "--scale", "x", "--out", str(Path(ws["ws"]) / "tab.csv"),
                            "--registry", ws["reg"], "--l-only", ws["eval"],
                            "--s-only", ws["eval"], "--ours", ws["eval"]], capsys)
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 1


def test_result_files_respect_the_umask(ws):
    old = os.umask(0o022)
    try:
        path = Path(ws["ws"]) / "mode.json"
        write_json(path, {"a": 1})
        assert path.stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(old)
    assert Path(ws["eval"]).stat().st_mode & 0o044  # readable by others under a usual umask


def test_intact_checkpoints_pass_the_check(ws):
    check_checkpoint(Path(ws["ws"]) / "no-such-run")  # nothing to resume: nothing to check
    check_checkpoint(ws["run"])


def test_third_party_import_notices_are_filtered():
    """`asymbench tasks` builds every task's env (gymnasium-robotics, shimmy, pygame): clean."""
    result = subprocess.run([str(BIN / "asymbench"), "tasks"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Adroit" not in result.stderr and "pkg_resources" not in result.stderr, result.stderr
    assert result.stderr.strip() == ""


# ----------------------------------------------------------------------------- Snakemake config
COMMON = ROOT / "workflow" / "rules" / "common.smk"
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


def check_pipeline_config(entries: list[str]) -> dict:
    """What the Snakefile does before planning: config file, `--config` entries (parsed as
    snakemake parses them), common.smk included, numbers read, schema, check_config()."""
    from snakemake.cli import parse_config
    from snakemake.common.configfile import load_configfile
    from snakemake.utils import update_config, validate

    config = load_configfile(str(ROOT / "config" / "config.yaml"))
    update_config(config, parse_config(entries))
    namespace = {"config": config, "__file__": str(COMMON)}
    exec(compile(COMMON.read_text(), str(COMMON), "exec"), namespace)
    namespace["read_command_line_numbers"](config)
    validate(config, str(SCHEMA))
    namespace["check_config"]()
    return config


CONFIG_CASES = [
    ("seeds=[]", ["seeds"]),
    ("seeds=[0, -1]", ["seeds", "minimum"]),
    ("seeds=3", ["seeds", "array"]),
    ("seeds=[nan]", ["seeds"]),
    ("tasks=[Swimmer, Hopper]", ["tasks", "Hopper"]),
    ("tasks=[]", ["tasks"]),
    ("lambda={Swimmer: -1e-3}", ["lambda", "minimum"]),
    ("lambda={Swimmer: nan}", ["lambda.Swimmer", "finite"]),
    ("lambda={Swimmer: inf}", ["lambda.Swimmer", "finite"]),
    ("lambda={Swimmer: lots}", ["lambda", "lots"]),
    ("lambda={Walker: 1e-3}", ["lambda", "Walker"]),
    ("scale=huge", ["scale", "huge"]),
    ("scale=a/b", ["scale"]),
    ("scales={smoke: {steps: 0}}", ["steps", "minimum"]),
    ("scales={smoke: {steps: abc}}", ["steps", "abc"]),
    ("scales={smoke: {eval_episodes: nan}}", ["eval_episodes"]),
    ("scales={smoke: {learning_starts: -1}}", ["learning_starts"]),
    ("scales={smoke: {resources: {train: {mem_mb: 0}}}}", ["mem_mb"]),
    ("scales={smoke: {stepz: 5}}", ["stepz"]),
    ("scales={tiny: {steps: 5}}", ["tiny"]),
    ("colour=blue", ["colour"]),
    ("registry={ws}/none.yaml", ["registry", "does not exist"]),
    ("registry={dir}", ["registry", "folder"]),
    ("registry={reg_syntax}", ["registry", "YAML syntax error"]),
    ("registry={reg_small_ge}", ["registry", "small (512)"]),
    ("registry={reg_lam_nan}", ["registry", "finite"]),
    ("registry={reg_toplevel}", ["registry", "'task'"]),
    ("registry=[a, b]", ["registry"]),
]


@pytest.mark.parametrize("entry, expected", CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_bad_pipeline_config_is_rejected_naming_the_field(ws, entry, expected):
    from snakemake.exceptions import WorkflowError

    extra = ["scale=smoke"] if not entry.startswith("scale=") else []
    with pytest.raises(WorkflowError) as info:
        check_pipeline_config(extra + [fill(entry, ws)])
    message = str(info.value)
    for fragment in expected:
        assert fragment in message, message


def test_pipeline_config_overrides_and_registry_are_read(ws):
    config = check_pipeline_config(["scale=smoke", "scales={smoke: {steps: 500, gail_steps: null, "
                                    "resources: {train: {runtime: 20}}}}", "lambda={Swimmer: 1e-3}"])
    smoke = config["scales"]["smoke"]
    assert smoke["steps"] == 500 and smoke["gail_steps"] is None
    assert smoke["resources"]["train"]["runtime"] == 20  # merged into the scale, not replacing it
    assert set(smoke["resources"]["train"]) == {"mem_mb", "runtime"}
    assert config["lambda"] == {"Swimmer": 1e-3}
    config = check_pipeline_config(["scale=smoke", f"registry={ws['reg']}", "tasks=[Pendulum]",
                                    "lambda={Pendulum: 2.0e-4}"])
    assert config["registry"] == ws["reg"]


def test_pipeline_jobs_read_the_configured_registry(ws):
    target = "results/smoke/Pendulum/l_only/seed0/run.json"
    result = subprocess.run(
        [str(BIN / "snakemake"), target, "-n", "-p", "--cores", "1", "--config", "scale=smoke",
         f"registry={ws['reg']}", "tasks=[Pendulum]", "scales={smoke: {steps: 500}}"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    train = next(line for line in result.stdout.splitlines() if "asymbench train" in line)
    assert f"--registry {Path(ws['reg']).resolve()}" in train and "--steps 500" in train
