"""The batched engine's training throughput per seed, next to plain stable-baselines3, one thread.

    .venv/bin/python benchmarks/engine_throughput.py --tasks MountainCarContinuous walker-stand \
        --members 5 10 --steps 300 --repeats 2

For every task and group size K: the batched engine (``asymbench.engine.train_group``) training
K seeds of L-only and of Ours together, and plain ``SAC.learn`` at the large width with the same
settings (one seed), measured in turns in this process. As in train_throughput.py, every figure
is the DIFFERENCE of two runs with budgets B and B + steps (B = learning starts + 100), so
set-up and warm-up cancel: what remains is ``steps`` steady-state env steps with a gradient step
each (Ours: both sub-policies and the master, which starts learning at once). The engine's rate
is per seed: K x steps / CPU seconds. Ratios use CPU time; wall time and load are recorded too.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import _common  # noqa: F401  (one BLAS thread, set before torch loads)
from _common import print_table, write_results
from train_throughput import plain_sb3_sac, twice

import numpy as np
import torch

from asymbench.engine import train_group
from asymbench.tasks import get_task
from asymbench.training import TrainRequest

DEFAULT_TASKS = ("MountainCarContinuous", "Swimmer", "Ant", "walker-stand", "finger-spin")


def engine_run(task, method: str, members: int, ls: int, tmp: Path):
    def make_run(budget):
        request = TrainRequest(task=task.name, method=method, seed=0, steps=budget, out="unused",
                               learning_starts=ls, master_learning_starts=0,
                               checkpoint_every=10**9, progress=False, engine="batched")
        out = tempfile.mkdtemp(dir=tmp, prefix=f"{method}-{members}-")
        return lambda: train_group(request, list(range(members)), out)
    return make_run


def median_of(runs: list[dict]) -> dict:
    cpu = [r["cpu_s"] for r in runs]
    pick = runs[int(np.argsort(cpu)[len(cpu) // 2])]
    return {**pick, "repeats": len(runs),
            "cpu_spread_pct": 100 * (max(cpu) - min(cpu)) / float(np.median(cpu))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=list(DEFAULT_TASKS))
    parser.add_argument("--members", nargs="+", type=int, default=[5, 10])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.time()
    rows = []
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        for name in args.tasks:
            task = get_task(name)
            ls = task.sac["batch_size"]
            short, long = ls + 100, ls + 100 + args.steps
            measured = {"sb3": [], **{(m, k): [] for m in ("l_only", "asym") for k in args.members}}
            for _ in range(args.repeats):  # in turns, so that load changes hit every variant alike
                measured["sb3"].append(twice(plain_sb3_sac(task, task.large, ls), short, long))
                for k in args.members:
                    for method in ("l_only", "asym"):
                        measured[(method, k)].append(twice(engine_run(task, method, k, ls, tmp), short, long))
            sb3 = median_of(measured["sb3"])
            sb3_rate = args.steps / sb3["cpu_s"]
            rows.append({"task": name, "trainer": "SAC.learn (large)", "K": 1, "width": task.large,
                         "per_seed_steps_per_cpu_s": sb3_rate, "speedup_vs_sb3": 1.0,
                         "cpu_spread_pct": sb3["cpu_spread_pct"], "load": sb3["load"]})
            for k in args.members:
                l_only = median_of(measured[("l_only", k)])
                l_rate = k * args.steps / l_only["cpu_s"]
                for method, m in (("l_only", l_only), ("asym", median_of(measured[("asym", k)]))):
                    rate = k * args.steps / m["cpu_s"]
                    rows.append({"task": name, "trainer": f"engine {method}", "K": k,
                                 "width": task.large if method == "l_only" else f"{task.small}/{task.large}",
                                 "per_seed_steps_per_cpu_s": rate, "speedup_vs_sb3": rate / sb3_rate,
                                 "cost_vs_l_only": l_rate / rate,
                                 "wall_steps_per_s": k * args.steps / m["wall_s"],
                                 "cpu_spread_pct": m["cpu_spread_pct"], "load": m["load"]})
            print_table([r for r in rows if r["task"] == name],
                        ["task", "trainer", "K", "width", "per_seed_steps_per_cpu_s", "speedup_vs_sb3",
                         "cost_vs_l_only", "cpu_spread_pct", "load"],
                        {"per_seed_steps_per_cpu_s": ".0f", "speedup_vs_sb3": ".2f",
                         "cost_vs_l_only": ".2f", "cpu_spread_pct": ".0f", "load": ".1f"})
            # Written after every task, so an interrupted run keeps what it measured.
            write_results("engine_throughput", {"steps": args.steps, "repeats": args.repeats,
                                                "rows": rows}, started, args.out, quiet=True)
    print(f"-> {args.out or 'benchmarks/results/engine_throughput.json'}")


if __name__ == "__main__":
    main()
