"""Training throughput of every asymbench trainer next to plain stable-baselines3, one torch thread.

    .venv/bin/python benchmarks/train_throughput.py --tasks Swimmer walker-stand --steps 1000 --repeats 3

Trainers: s_only, l_only, fit (the task's paper_fit_width) and asym (asymbench's one training loop,
``asymbench.engine.train_group``, with one seed: what ``asymbench train --seed S`` runs),
bc (per expert sample) and gail (per generator env step) (asymbench.distillation.distill).
References, in the same process and interleaved with them: plain ``SAC.learn`` at the same
width and settings (net_arch [w, w], the task's batch size, lr, gamma, entropy coefficient,
buffer, learning_starts) and, for gail, plain ``PPO.learn`` with GAIL's generator settings.

Every figure is a DIFFERENCE of two runs with the same seed, budgets B and B + steps, where
B = learning_starts + 100: set-up, model saving, the random warm-up before learning starts and
the first (slow) gradient steps cancel, so what remains is ``steps`` steady-state env steps with
one gradient step each (asym: one for each sub-policy, plus the master's every 5 steps, as its
master_learning_starts is set to 0). All trainers and references are measured in turns,
``--repeats`` times, and the median is kept (cpu_spread_pct: (max - min) / median over the
repeats). Rates are given per wall second and per CPU second; ratios use CPU time, which other
processes on the machine disturb least.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time
from pathlib import Path

import _common
from _common import difference, print_table, timed, write_results

import numpy as np
import torch
from stable_baselines3 import PPO, SAC, HerReplayBuffer
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.utils import LinearSchedule
from stable_baselines3.common.vec_env import DummyVecEnv

from asymbench.agents import make_action_noise
from asymbench.tasks import get_task, make_env
from asymbench.engine import train_group
from asymbench.train_config import TrainRequest

TRAINERS = ("s_only", "l_only", "fit", "asym", "bc", "gail")
WARMUP = 100  # gradient steps inside the short budget, so that both budgets start warm
BC_EPOCHS = 10  # timed BC epochs over the paper's 25 x 50 expert pairs
UNITS = {"bc": "expert sample", "gail": "generator env step"}


def quiet(fn):
    """Runs fn with its stdout (progress lines) swallowed."""
    def run():
        with contextlib.redirect_stdout(io.StringIO()):
            return fn()
    return run


def twice(make_run, short: int, long: int) -> dict:
    """Times make_run(short) and make_run(long) (fresh objects each) and returns the difference."""
    return difference(timed(quiet(make_run(long))), timed(quiet(make_run(short))))


# --------------------------------------------------------------------------- SAC trainers
def train_one(request: TrainRequest) -> dict:
    """One seed in ``request.out``: the training loop as a group of one."""
    return train_group(request, [request.seed], request.out, [request.out])[0]


def asymbench_sac(task, method: str, width: int | None, ls: int, tmp: Path):
    def make_run(budget):
        request = TrainRequest(task=task.name, method=method, seed=0, steps=budget,
                               out=tempfile.mkdtemp(dir=tmp, prefix=f"{method}-"),
                               width=width if method == "fit" else None, learning_starts=ls,
                               master_learning_starts=0, checkpoint_every=10**9, progress=False)
        return lambda: train_one(request)
    return make_run


def quiet_logger() -> Logger:
    """What SB3's learn() sets up at verbose 0, minus the empty log folder it makes in /tmp
    for every call."""
    return Logger(folder=None, output_formats=[])


def plain_sb3_sac(task, width: int, ls: int):
    settings = task.sac

    her = task.settings.get("her")  # goal tasks: HER on the dict observation, as asymbench does

    def make_run(budget):
        env = make_env(task, seed=0, **({"flatten": False} if her else {}))
        lr = settings["learning_rate"]
        model = SAC("MultiInputPolicy" if her else "MlpPolicy", env, seed=0, device="cpu", verbose=0,
                    replay_buffer_class=HerReplayBuffer if her else None,
                    replay_buffer_kwargs=dict(her) if her else None,
                    learning_rate=LinearSchedule(lr, 0.0, 1.0) if settings["lr_schedule"] == "linear" else lr,
                    buffer_size=settings["buffer_size"], learning_starts=ls,
                    batch_size=settings["batch_size"], tau=settings["tau"], gamma=settings["gamma"],
                    ent_coef=settings["ent_coef"] if settings["ent_coef"] == "auto" else float(settings["ent_coef"]),
                    action_noise=make_action_noise(settings["action_noise"], env.action_space.shape[0]),
                    policy_kwargs={"net_arch": [width, width]})
        model.set_logger(quiet_logger())
        return lambda: model.learn(budget)
    return make_run


# --------------------------------------------------------------------------- BC / GAIL
def distill_fixture(task, tmp: Path) -> tuple[Path, Path]:
    """A tiny L-only teacher and its expert data (the paper's 25 x 50 pairs): only their
    shapes matter for timing the students."""
    from asymbench.distillation import make_expert_data

    teacher = tmp / f"{task.name}-teacher"
    with contextlib.redirect_stdout(io.StringIO()):
        train_one(TrainRequest(task=task.name, method="l_only", seed=0, out=teacher, steps=300,
                               learning_starts=100, checkpoint_every=10**9, progress=False))
    expert = tmp / f"{task.name}-expert.npz"
    make_expert_data(teacher, expert, trajectories=task.distill["expert_trajectories"],
                     length=task.distill["expert_length"])
    return teacher, expert


def asymbench_distill(method, task, width, teacher, expert, tmp):
    from asymbench.distillation import distill

    def make_run(amount):  # bc: epochs, gail: generator env steps
        out = Path(tempfile.mkdtemp(dir=tmp, prefix=f"{method}-")) / "run"
        kwargs = {"epochs": amount} if method == "bc" else {"steps": amount}
        return lambda: distill(method, teacher, expert, out, width=width, progress=False, **kwargs)
    return make_run


def plain_sb3_ppo(task, width):
    from asymbench.distillation import PPO_SETTINGS, student_policy_kwargs

    s = PPO_SETTINGS

    def make_run(budget):
        venv = DummyVecEnv([lambda i=i: make_env(task, seed=i) for i in range(s["n_envs"])])
        model = PPO("MlpPolicy", venv, n_steps=s["n_steps"], batch_size=s["batch_size"],
                    n_epochs=s["n_epochs"], learning_rate=s["learning_rate"], gamma=s["gamma"],
                    gae_lambda=s["gae_lambda"], ent_coef=s["ent_coef"], clip_range=s["clip_range"],
                    policy_kwargs=student_policy_kwargs(width), seed=0, device="cpu", verbose=0)
        model.set_logger(quiet_logger())
        return lambda: model.learn(budget)
    return make_run


# --------------------------------------------------------------------------- one task
def row(task, trainer, width, units, measured, reference=None, reference_name=None) -> dict:
    r = {"task": task.name, "trainer": trainer, "width": width, "unit": UNITS.get(trainer, "env step"),
         "steps": units, "wall_s": measured["wall_s"], "cpu_s": measured["cpu_s"],
         "steps_per_s": units / measured["wall_s"], "steps_per_cpu_s": units / measured["cpu_s"],
         "load": measured["load"], "repeats": measured["repeats"],
         "cpu_spread_pct": measured["cpu_spread_pct"], "reference": reference_name,
         "reference_steps_per_cpu_s": None, "cost_vs_reference": None}
    if reference is not None:
        r["reference_steps_per_s"] = units / reference["wall_s"]
        r["reference_steps_per_cpu_s"] = units / reference["cpu_s"]
        r["cost_vs_reference"] = measured["cpu_s"] / reference["cpu_s"]
        r["reference_cpu_spread_pct"] = reference["cpu_spread_pct"]
    return r


def median_of(samples: list[dict]) -> dict:
    cpu = [m["cpu_s"] for m in samples]
    return {"wall_s": float(np.median([m["wall_s"] for m in samples])), "cpu_s": float(np.median(cpu)),
            "load": max(m["load"] for m in samples), "repeats": len(samples),
            "cpu_spread_pct": 100 * (max(cpu) - min(cpu)) / float(np.median(cpu))}


def measure_task(name: str, trainers: list[str], steps: int, ls: int, repeats: int,
                 tmp: Path) -> list[dict]:
    task = get_task(name)
    widths = {"s_only": task.small, "l_only": task.large, "fit": task.paper_fit_width}
    short, long = ls + WARMUP, ls + WARMUP + steps
    # name -> (make_run, short budget, long budget, units timed); all are measured in turns,
    # `repeats` times, so that a burst of load from other processes hits every one alike.
    plan = {}
    for trainer in [t for t in trainers if t in ("s_only", "l_only", "fit", "asym")]:
        for w in [task.small, task.large] if trainer == "asym" else [widths[trainer]]:
            plan.setdefault(f"sb3_sac_{w}", (plain_sb3_sac(task, w, ls), short, long, steps))
        plan[trainer] = (asymbench_sac(task, trainer, widths.get(trainer), ls, tmp), short, long, steps)
    errors = {}
    if {"bc", "gail"} & set(trainers):
        from asymbench.distillation import PPO_SETTINGS

        try:
            teacher, expert = distill_fixture(task, tmp)
        except Exception as exc:  # recorded in the results, the other trainers still run
            errors["bc"] = errors["gail"] = f"teacher / expert data: {type(exc).__name__}: {exc}"
            teacher = expert = None
        w = task.paper_fit_width
        pairs = task.distill["expert_trajectories"] * task.distill["expert_length"]
        round_steps = PPO_SETTINGS["n_envs"] * PPO_SETTINGS["n_steps"]
        rounds = max(1, steps // 500)
        if "bc" in trainers:
            plan["bc"] = (asymbench_distill("bc", task, w, teacher, expert, tmp), 2, 2 + BC_EPOCHS,
                          BC_EPOCHS * pairs)
        if "gail" in trainers:
            plan["sb3_ppo"] = (plain_sb3_ppo(task, w), round_steps, round_steps * (1 + rounds),
                               rounds * round_steps)
            plan["gail"] = (asymbench_distill("gail", task, w, teacher, expert, tmp), round_steps,
                            round_steps * (1 + rounds), rounds * round_steps)
    samples = {key: [] for key in plan}
    for r in range(repeats):
        for key, (make_run, a, b, _) in plan.items():
            if key in errors:
                continue
            print(f"{name}: {key} (repeat {r + 1}/{repeats}) ...", flush=True)
            try:
                samples[key].append(twice(make_run, a, b))
            except Exception as exc:
                errors[key] = f"{type(exc).__name__}: {exc}"
                print(f"{name}: {key} FAILED: {errors[key]}", flush=True)
    m = {key: median_of(v) for key, v in samples.items() if v and key not in errors}

    rows = [{"task": name, "trainer": t, "error": errors[t]} for t in TRAINERS
            if t in errors and t in trainers]
    for trainer in [t for t in TRAINERS if t in m]:
        units = plan[trainer][3]
        if trainer == "asym":
            ref, label, width = f"sb3_sac_{task.large}", f"SB3 SAC [{task.large}] (= L-only)", \
                f"{task.small}+{task.large}"
        elif trainer == "gail":
            ref, label, width = "sb3_ppo", "SB3 PPO (GAIL's generator alone)", task.paper_fit_width
        elif trainer == "bc":
            ref, label, width = None, None, task.paper_fit_width
        else:
            ref, width = f"sb3_sac_{widths[trainer]}", widths[trainer]
            label = f"SB3 SAC [{width},{width}]"
        rows.append(row(task, trainer, width, units, m[trainer], m.get(ref), label if ref in m else None))
    # The asymmetric agent against its own L-only and against two plain SACs (S and L).
    by = {r["trainer"]: r for r in rows if "error" not in r}
    if "asym" in by:
        a = by["asym"]
        if "l_only" in by:
            a["cost_vs_l_only"] = a["cpu_s"] / by["l_only"]["cpu_s"]
        if f"sb3_sac_{task.small}" in m and f"sb3_sac_{task.large}" in m:
            a["cost_vs_two_sb3_sacs"] = a["cpu_s"] / (m[f"sb3_sac_{task.small}"]["cpu_s"]
                                                      + m[f"sb3_sac_{task.large}"]["cpu_s"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["Swimmer", "walker-stand"])
    parser.add_argument("--trainers", nargs="+", default=list(TRAINERS), choices=TRAINERS)
    parser.add_argument("--steps", type=int, default=1000, help="timed env steps per trainer and repeat")
    parser.add_argument("--repeats", type=int, default=3, help="medians over this many turns")
    parser.add_argument("--learning-starts", type=int, default=200)
    parser.add_argument("--out", default=None, help="default: benchmarks/results/train_throughput.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.time()
    rows = []
    settings = {**vars(args), "warmup_steps": WARMUP, "torch_threads": 1}
    with tempfile.TemporaryDirectory(prefix="asymbench-throughput-") as tmp:
        for name in args.tasks:
            rows += measure_task(name, args.trainers, args.steps, args.learning_starts, args.repeats,
                                 Path(tmp))
            write_results("train_throughput", {"settings": settings, "rows": rows}, started,
                          args.out, quiet=True)  # kept after every task, in case a later one fails
    print()
    print_table(rows, ["task", "trainer", "width", "steps_per_s", "steps_per_cpu_s",
                       "reference_steps_per_cpu_s", "cost_vs_reference", "cpu_spread_pct", "load"],
                {"steps_per_s": ",.1f", "steps_per_cpu_s": ",.1f",
                 "reference_steps_per_cpu_s": ",.1f", "cost_vs_reference": ".2f",
                 "cpu_spread_pct": ".0f"})
    for r in rows:
        if "error" in r:
            print(f"{r['task']}: {r['trainer']} FAILED: {r['error']}")
        elif r["trainer"] == "asym":
            print(f"{r['task']}: asym costs {r.get('cost_vs_l_only', float('nan')):.2f}x L-only per env "
                  f"step, {r.get('cost_vs_two_sb3_sacs', float('nan')):.2f}x two plain SB3 SACs (S + L)")
    print("cost_vs_reference: CPU time per unit relative to the plain SB3 reference "
          "(1.00 = same, 1.20 = 20% slower); bc has no plain-SB3 counterpart")
    write_results("train_throughput", {"settings": settings, "rows": rows}, started, args.out)


if __name__ == "__main__":
    main()
