"""The batched engine's training throughput per seed, next to plain stable-baselines3, one thread.

    .venv/bin/python benchmarks/engine_throughput.py --tasks MountainCarContinuous walker-stand \
        --members 5 10 --steps 300 --repeats 2

For every task and group size K: the batched engine (``asymbench.engine.train_group``) training
K seeds of L-only and of Ours together, and plain ``SAC.learn`` at the large width with the same
settings (one seed, CPU), measured in turns in this process. As in train_throughput.py, every figure
is the DIFFERENCE of two runs with budgets B and B + steps (B = learning starts + 100), so
set-up and warm-up cancel: what remains is ``steps`` steady-state env steps with a gradient step
each (Ours: both sub-policies and the master, which starts learning at once). The engine's rate
is per seed: K x steps / CPU seconds. Ratios use CPU time; wall time and load are recorded too.

``--device cuda`` runs the engine on a GPU (SAC.learn stays on the CPU, its reference): there the
ratios use WALL time, since the host process's CPU time no longer measures the work, e.g.

    python benchmarks/engine_throughput.py --device cuda --tasks MountainCarContinuous Swimmer \
        --members 10 50 --steps 300 --repeats 2 --out benchmarks/results/engine_throughput_cuda.json
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


def engine_run(task, method: str, members: int, ls: int, tmp: Path, device: str = "cpu"):
    def make_run(budget):
        request = TrainRequest(task=task.name, method=method, seed=0, steps=budget, out="unused",
                               learning_starts=ls, master_learning_starts=0,
                               checkpoint_every=10**9, progress=False, engine="batched")
        out = tempfile.mkdtemp(dir=tmp, prefix=f"{method}-{members}-")
        return lambda: train_group(request, list(range(members)), out, device=device)
    return make_run


def median_of(runs: list[dict], key: str = "cpu_s") -> dict:
    """The run with the median time (``key``) and the spread of that time over the repeats."""
    times = [r[key] for r in runs]
    pick = runs[int(np.argsort(times)[len(times) // 2])]
    return {**pick, "repeats": len(runs),
            "cpu_spread_pct": 100 * (max(times) - min(times)) / float(np.median(times))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=list(DEFAULT_TASKS))
    parser.add_argument("--members", nargs="+", type=int, default=[5, 10])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where the engine runs; cuda: rates and ratios on wall time")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    basis = "cpu_s" if args.device == "cpu" else "wall_s"
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
                        measured[(method, k)].append(
                            twice(engine_run(task, method, k, ls, tmp, args.device), short, long))
            sb3 = median_of(measured["sb3"], basis)
            sb3_rate = args.steps / sb3[basis]
            rows.append({"task": name, "trainer": "SAC.learn (large)", "device": "cpu", "K": 1,
                         "width": task.large, "per_seed_steps_per_cpu_s": args.steps / sb3["cpu_s"],
                         "wall_steps_per_s": args.steps / sb3["wall_s"], "speedup_vs_sb3": 1.0,
                         "cpu_spread_pct": sb3["cpu_spread_pct"], "load": sb3["load"]})
            for k in args.members:
                l_only = median_of(measured[("l_only", k)], basis)
                l_rate = k * args.steps / l_only[basis]
                for method, m in (("l_only", l_only), ("asym", median_of(measured[("asym", k)], basis))):
                    rate = k * args.steps / m[basis]
                    rows.append({"task": name, "trainer": f"engine {method}", "device": args.device, "K": k,
                                 "width": task.large if method == "l_only" else f"{task.small}/{task.large}",
                                 "per_seed_steps_per_cpu_s": k * args.steps / m["cpu_s"],
                                 "wall_steps_per_s": k * args.steps / m["wall_s"],
                                 "speedup_vs_sb3": rate / sb3_rate, "cost_vs_l_only": l_rate / rate,
                                 "cpu_spread_pct": m["cpu_spread_pct"], "load": m["load"]})
            print_table([r for r in rows if r["task"] == name],
                        ["task", "trainer", "device", "K", "width", "per_seed_steps_per_cpu_s",
                         "wall_steps_per_s", "speedup_vs_sb3", "cost_vs_l_only", "cpu_spread_pct", "load"],
                        {"per_seed_steps_per_cpu_s": ".0f", "wall_steps_per_s": ".0f",
                         "speedup_vs_sb3": ".2f", "cost_vs_l_only": ".2f", "cpu_spread_pct": ".0f",
                         "load": ".1f"})
            # Written after every task, so an interrupted run keeps what it measured.
            write_results("engine_throughput", {"steps": args.steps, "repeats": args.repeats,
                                                "device": args.device, "ratio_basis": basis,
                                                "rows": rows}, started, args.out, quiet=True)
    print(f"-> {args.out or 'benchmarks/results/engine_throughput.json'}")


if __name__ == "__main__":
    main()
