"""The batched engine's training throughput per seed, next to plain stable-baselines3, one thread.

    .venv/bin/python benchmarks/engine_throughput.py --tasks MountainCarContinuous walker-stand \
        --members 5 10 --steps 300 --repeats 2
    .venv/bin/python benchmarks/engine_throughput.py --trainers s_only fit --members 5 \
        --out benchmarks/results/engine_throughput_s_fit.json

For every task, trainer and group size K: the batched engine (``asymbench.engine.train_group``)
training K seeds together, and plain ``SAC.learn`` with the same settings (one seed, CPU) at
the trainer's own width, measured in turns in this process. Trainers (``--trainers``, default
all): ``l_only`` (the large width), ``asym`` (Ours: small and large sub-policies and the master),
``s_only`` (the small width) and ``fit`` (the registry's ``paper_fit_width``). The reference of
l_only and asym is ``SAC.learn`` at the large width ("SAC.learn (large)"), of s_only at the small
width ("SAC.learn (small)"), of fit at the fit width ("SAC.learn (fit)"), so every row's
speed-up is like-for-like; each engine row names its reference and that reference's width.
Goal tasks (FetchPickAndPlace) are measured like any other: their reference uses SB3's
HerReplayBuffer on the goal dict, as train_throughput.py's does; a variant that fails (e.g. an
engine that refuses goal tasks) is recorded as an error row and the others still run.

As in train_throughput.py, every figure is the DIFFERENCE of two runs with budgets B and
B + steps (B = learning starts + 100), so set-up and warm-up cancel: what remains is ``steps``
steady-state env steps with a gradient step each (Ours: both sub-policies and the master, which
starts learning at once). The engine's rate is per seed: K x steps / CPU seconds. Ratios use
CPU time; wall time and load are recorded too, and every row the UTC time its task finished
(``measured_utc``: asymbench estimate keeps the later of two measurements of the same row).

``--device cuda`` runs the engine on a GPU (SAC.learn stays on the CPU, its reference): there the
ratios use WALL time, since the host process's CPU time no longer measures the work, e.g.

    python benchmarks/engine_throughput.py --device cuda --tasks MountainCarContinuous Swimmer \
        --members 10 50 --steps 300 --repeats 2 --out benchmarks/results/engine_throughput_cuda.json

``--concurrent 1 4`` measures each group alone (1) and four groups at once (4), each of the four
in its own process as pipeline jobs sharing a GPU (``gpu_slots: 4``) are: each group's long and
short runs start together, and every group gets its own row (``concurrent`` 4, ``group`` i), on
wall time. ``asymbench estimate --gpu-slots 4`` prices GPU jobs at the mean of those rows.
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import _common  # noqa: F401  (one BLAS thread, set before torch loads)
from _common import difference, print_table, timed, write_results
from train_throughput import plain_sb3_sac, quiet, twice

import numpy as np
import torch

from asymbench.engine import train_group
from asymbench.tasks import get_task
from asymbench.train_config import TrainRequest

DEFAULT_TASKS = ("MountainCarContinuous", "Swimmer", "Ant", "FetchPickAndPlace", "walker-stand",
                 "finger-spin")
TRAINERS = ("l_only", "asym", "s_only", "fit")


def trainer_width(task, method: str) -> int:
    """The width the trainer's policy has (asym: its large sub-policy's)."""
    return {"s_only": task.small, "fit": task.paper_fit_width}.get(method, task.large)


def reference_name(task, width: int) -> str:
    """The SAC.learn row at ``width``: "SAC.learn (large)" (l_only's and asym's reference, as in
    the earlier files), "(small)" (s_only's) or "(fit)" (fit's)."""
    role = "large" if width == task.large else "small" if width == task.small else "fit"
    return f"SAC.learn ({role})"


def engine_run(task, method: str, members: int, ls: int, tmp: Path, device: str = "cpu"):
    def make_run(budget):
        request = TrainRequest(task=task.name, method=method, seed=0, steps=budget, out="unused",
                               width=task.paper_fit_width if method == "fit" else None,
                               learning_starts=ls, master_learning_starts=0,
                               checkpoint_every=10**9, progress=False)
        out = tempfile.mkdtemp(dir=tmp, prefix=f"{method}-{members}-")
        return lambda: train_group(request, list(range(members)), out, device=device)
    return make_run


def _concurrent_member(queue, barrier, i: int, name: str, method: str, members: int, ls: int,
                       tmp: str, device: str, short: int, long: int) -> None:
    """One of N groups trained at once (its own process, as a pipeline job): its timing, the
    difference of its long and short runs, each started with the other groups' (a barrier)."""
    torch.set_num_threads(1)
    make_run = engine_run(get_task(name), method, members, ls, Path(tmp), device)
    quiet(make_run(short))()  # this fresh process's one-time costs, out of the timing
    runs = {}
    for budget in (long, short):
        run = quiet(make_run(budget))
        barrier.wait()
        runs[budget] = timed(run)
    queue.put((i, difference(runs[long], runs[short])))


def concurrent_runs(name: str, method: str, members: int, ls: int, tmp: Path, device: str,
                    groups: int, short: int, long: int) -> list[dict]:
    """``groups`` processes, each training a group of ``members`` seeds on ``device``, started
    together: each group's timing (the difference of its short and long runs)."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    queue, barrier = context.Queue(), context.Barrier(groups)
    processes = [context.Process(target=_concurrent_member, args=(
        queue, barrier, i, name, method, members, ls, str(tmp), device, short, long)) for i in range(groups)]
    for process in processes:
        process.start()
    results = dict(queue.get() for _ in processes)
    for process in processes:
        process.join()
    return [results[i] for i in range(groups)]


def median_of(runs: list[dict], key: str = "cpu_s") -> dict:
    """The run with the median time (``key``) and the spread of that time over the repeats."""
    times = [r[key] for r in runs]
    pick = runs[int(np.argsort(times)[len(times) // 2])]
    return {**pick, "repeats": len(runs),
            "cpu_spread_pct": 100 * (max(times) - min(times)) / float(np.median(times))}


def _plan(task, trainers, members, concurrent, device, ls, short, long, tmp: Path) -> dict:
    """key -> a measurement (a timing, or a list of timings: one per concurrent group):
    references first, then the engine variants, all measured in turns, so that load changes
    hit every variant alike. Keys: ("sb3", width), (trainer, K, groups at once)."""
    plan = {("sb3", w): functools.partial(twice, plain_sb3_sac(task, w, ls), short, long)
            for w in dict.fromkeys(trainer_width(task, m) for m in trainers)}
    for k in members:
        for m in trainers:
            if 1 in concurrent:
                plan[(m, k, 1)] = functools.partial(twice, engine_run(task, m, k, ls, tmp, device), short, long)
            for n in (n for n in concurrent if n > 1):
                plan[(m, k, n)] = functools.partial(concurrent_runs, task.name, m, k, ls, tmp,
                                                       device, n, short, long)
    return plan


def _engine_row(task, name, method, k, n, run, steps, basis, sb3_rate, l_rate, when) -> dict:
    width = trainer_width(task, method)
    rate = k * steps / run[basis]
    return {"task": name, "trainer": f"engine {method}", "device": run["device"], "K": k,
            "width": f"{task.small}/{task.large}" if method == "asym" else width,
            "concurrent": n,
            "per_seed_steps_per_cpu_s": k * steps / run["cpu_s"],
            "wall_steps_per_s": k * steps / run["wall_s"],
            "speedup_vs_sb3": rate / sb3_rate[width] if width in sb3_rate else None,
            "reference": reference_name(task, width), "reference_width": width,
            "cost_vs_l_only": l_rate / rate if l_rate and n == 1 else None,
            "cpu_spread_pct": run["cpu_spread_pct"], "load": run["load"], "measured_utc": when}


def measure_task(name: str, trainers, members, steps: int, repeats: int, device: str,
                 tmp: Path, concurrent=(1,)) -> list[dict]:
    """The rows of one task: one SAC.learn row per reference width, one engine row per (trainer,
    K) and, for N > 1 in ``concurrent``, one row per group of N trained at once; a variant that
    raised gives an error row instead. With concurrent groups only the wall rate counts."""
    task = get_task(name)
    basis = "cpu_s" if device == "cpu" and concurrent == (1,) else "wall_s"
    ls = task.sac["batch_size"]
    short, long = ls + 100, ls + 100 + steps
    plan = _plan(task, trainers, members, concurrent, device, ls, short, long, tmp)
    measured, errors = {key: [] for key in plan}, {}
    for r in range(repeats):
        for key, measure in plan.items():
            if key in errors:
                continue
            what = (f"SAC.learn width {key[1]}" if key[0] == "sb3" else
                    f"engine {key[0]} K={key[1]}, {key[2]} at once")
            print(f"{name}: {what} (repeat {r + 1}/{repeats}) ...", flush=True)
            try:
                measured[key].append(measure())
            except Exception as exc:  # recorded in the results, the other variants still run
                errors[key] = f"{type(exc).__name__}: {exc}"
                print(f"{name}: {what} FAILED: {errors[key]}", flush=True)
    when = datetime.now(timezone.utc).isoformat(timespec="seconds")
    rows, sb3_rate = [], {}
    for key in [k for k in plan if k[0] == "sb3"]:
        w = key[1]
        if key in errors:
            rows.append({"task": name, "trainer": reference_name(task, w), "width": w, "error": errors[key]})
            continue
        sb3 = median_of(measured[key], basis)
        sb3_rate[w] = steps / sb3[basis]
        rows.append({"task": name, "trainer": reference_name(task, w), "device": "cpu", "K": 1,
                     "width": w, "per_seed_steps_per_cpu_s": steps / sb3["cpu_s"],
                     "wall_steps_per_s": steps / sb3["wall_s"], "speedup_vs_sb3": 1.0,
                     "cpu_spread_pct": sb3["cpu_spread_pct"], "load": sb3["load"], "measured_utc": when})
    for key in [k for k in plan if k[0] != "sb3"]:
        method, k, n = key
        if key in errors:
            rows.append({"task": name, "trainer": f"engine {method}", "device": device, "K": k,
                         "concurrent": n, "error": errors[key]})
            continue
        l_only = measured.get(("l_only", k, 1))
        l_rate = k * steps / median_of(l_only, basis)[basis] if l_only else None
        groups = [measured[key]] if n == 1 else [[runs[i] for runs in measured[key]] for i in range(n)]
        for i, runs in enumerate(groups):
            row = _engine_row(task, name, method, k, n, {**median_of(runs, basis), "device": device},
                              steps, basis, sb3_rate, l_rate, when)
            rows.append(row if n == 1 else {**row, "group": i})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=list(DEFAULT_TASKS))
    parser.add_argument("--trainers", nargs="+", choices=TRAINERS, default=list(TRAINERS),
                        help="engine trainers to measure (each next to SAC.learn at its own width)")
    parser.add_argument("--members", nargs="+", type=int, default=[5, 10])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where the engine runs; cuda: rates and ratios on wall time")
    parser.add_argument("--concurrent", nargs="+", type=int, default=[1],
                        help="groups trained at once on the device, each in its own process as "
                             "pipeline jobs sharing a GPU (gpu_slots); 1: alone, in this process; "
                             "N > 1: one row per group, with `concurrent` N; wall rates")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    basis = "cpu_s" if args.device == "cpu" and args.concurrent == [1] else "wall_s"
    trainers = list(dict.fromkeys(args.trainers))
    started = time.time()
    rows = []
    with tempfile.TemporaryDirectory() as tmp_dir:
        for name in args.tasks:
            task_rows = measure_task(name, trainers, args.members, args.steps, args.repeats,
                                     args.device, Path(tmp_dir), tuple(args.concurrent))
            rows += task_rows
            print_table([r for r in task_rows if "error" not in r],
                        ["task", "trainer", "device", "K", "concurrent", "group",
                         "width", "per_seed_steps_per_cpu_s",
                         "wall_steps_per_s", "speedup_vs_sb3", "reference_width", "cost_vs_l_only",
                         "cpu_spread_pct", "load"],
                        {"per_seed_steps_per_cpu_s": ".0f", "wall_steps_per_s": ".0f",
                         "speedup_vs_sb3": ".2f", "cost_vs_l_only": ".2f", "cpu_spread_pct": ".0f",
                         "load": ".1f"})
            for r in task_rows:
                if "error" in r:
                    print(f"{r['task']}: {r['trainer']} (K={r.get('K', 1)}) FAILED: {r['error']}")
            # Written after every task, so an interrupted run keeps what it measured.
            write_results("engine_throughput", {"steps": args.steps, "repeats": args.repeats,
                                                "device": args.device, "ratio_basis": basis,
                                                "trainers": trainers, "rows": rows},
                          started, args.out, quiet=True)
    print(f"-> {args.out or 'benchmarks/results/engine_throughput.json'}")


if __name__ == "__main__":
    main()
