"""Eager vs compiled SAC update (``--compile off`` vs ``on``), measured in turns in one process:
per-seed env steps per CPU-second of whole env steps (act, environments, store, SAC update,
master), K members per group. On a GPU (``--device cuda``) the CPU time is the host's: launches
and waits.

    .venv/bin/python benchmarks/compile_speedup.py                  # -> benchmarks/results/compile_speedup.json
    .venv/bin/python benchmarks/compile_speedup.py --cases mcc_ours --steps 50 --chunks 2 --out /tmp/c.json

Each case builds two groups of the engine (``asymbench.engine.Group``), one eager and one
compiled, from the same seeds: their buffers are filled by ``--fill`` random env steps, then
they run past every warm-up (``t`` beyond learning_starts), so every step acts with the policy
and updates. The compiled group's first update compiles (``warmup_s``: the wall and CPU
seconds of that first step beyond an eager step). Then ``--chunks`` chunks of ``--steps`` env
steps alternate eager / compiled, so the load of the shared machine hits both alike; the
rate is the best chunk's (CPU time, ``time.process_time``: the machine is shared with a
training campaign, so wall time says little). ``break_even_updates`` = warm-up CPU seconds /
CPU seconds saved per update: how many updates repay the compilation (none where compiled is
slower). The warm-up depends on Inductor's on-disk cache (/tmp/torchinductor_$USER): a shape
compiled before on the machine loads in seconds, a new one takes 40-70 s.
"""

from __future__ import annotations

import argparse
import time

import _common  # noqa: F401  (one BLAS thread, as training jobs run)
from _common import load, print_table, write_results

import torch

from asymbench.engine import Group, MacroBookkeeping
from asymbench.train_config import TrainRequest, resolve_config

# name -> (task, method, width for fit); K members each
CASES = {
    "walker_ours": ("walker-stand", "asym", None),
    "swimmer_l_only": ("Swimmer", "l_only", None),
    "swimmer_ours": ("Swimmer", "asym", None),
    "walker_l_only": ("walker-stand", "l_only", None),
    "mcc_ours": ("MountainCarContinuous", "asym", None),
    "walker_width256": ("walker-stand", "fit", 256),
}


def steady_group(task: str, method: str, width: int | None, members: int, compiled: bool,
                 fill: int, device: str = "cpu", env_workers: int = 0):
    """A group past every warm-up: its buffer holds ``fill`` random env steps; returns the
    group, its bookkeeping and the env step to continue from (beyond every learning start)."""
    request = TrainRequest(task=task, method=method, seed=0, out="unused", width=width,
                           steps=10_000_000, progress=False, env_workers=env_workers)
    config = resolve_config(request)
    group = Group(request, config, list(range(members)), device, compiled)
    book = MacroBookkeeping.start(group.first_obs)
    for t in range(fill):
        env_step(group, book, t, update=False)
    start = max(group.random_until, group.sac_settings["learning_starts"],
                config["master"]["learning_starts"] if group.master else 0) + 1
    return group, book, start


def env_step(group: Group, book: MacroBookkeeping, t: int, update: bool = True) -> None:
    """One env step of the group, as ``engine._train`` takes it (less the logging)."""
    master = group.master
    if master is not None:
        book.decide(master, t)
    scaled = group.act(book.obs, book.choice, t)
    tr = group.step(scaled, t)
    group.store(book.obs, scaled, tr)
    book.count(tr.reward, master is not None)
    if update:
        group.update_sacs(t + 1, 0.5)
    if master is not None:
        book.close_macros(master, tr, group.step_cost, group.config["macro_len"])
        if update:
            master.after_env_step(t)
    book.obs = tr.next_obs
    ended = tr.done.nonzero()[0]
    for k, obs in zip(ended, group.reset(ended)):
        book.new_episode(k, obs)


def measure(case: str, members: int, steps: int, chunks: int, fill: int, device: str = "cpu") -> dict:
    task, method, width = CASES[case]
    runs = {}
    for compiled in (False, True):
        group, book, t = steady_group(task, method, width, members, compiled, fill, device)
        wall, cpu = time.perf_counter(), time.process_time()
        env_step(group, book, t)      # the compiled group compiles here
        runs[compiled] = {"group": group, "book": book, "t": t + 1,
                          "first_wall_s": time.perf_counter() - wall, "first_cpu_s": time.process_time() - cpu,
                          "best_cpu_s": float("inf")}
    loads = [load()]
    for _ in range(chunks):
        for compiled in (False, True):
            run = runs[compiled]
            cpu = time.process_time()
            for _ in range(steps):
                env_step(run["group"], run["book"], run["t"])
                run["t"] += 1
            run["best_cpu_s"] = min(run["best_cpu_s"], time.process_time() - cpu)
        loads.append(load())
    eager, comp = runs[False], runs[True]
    per_step = {c: runs[c]["best_cpu_s"] / steps for c in runs}
    saved = per_step[False] - per_step[True]
    warmup_cpu = comp["first_cpu_s"] - eager["first_cpu_s"]
    for run in runs.values():
        run["group"].close()
    return {"case": case, "task": task, "method": method,
            "widths": resolve_config(TrainRequest(task=task, method=method, seed=0, out="-", width=width))["widths"],
            "members": members, "device": device, "steps_per_chunk": steps, "chunks": chunks,
            "eager_seed_steps_per_cpu_s": members / per_step[False],
            "compiled_seed_steps_per_cpu_s": members / per_step[True],
            "speedup": per_step[False] / per_step[True],
            "eager_ms_per_env_step": 1e3 * per_step[False], "compiled_ms_per_env_step": 1e3 * per_step[True],
            "warmup_wall_s": comp["first_wall_s"] - eager["first_wall_s"], "warmup_cpu_s": warmup_cpu,
            "break_even_updates": warmup_cpu / saved if saved > 0 else None,
            "load": max(loads)}


def case_parser(doc: str, cases: list[str], steps: int, chunks: int | None = None,
                device: bool = True) -> argparse.ArgumentParser:
    """The options of a benchmark over CASES's training groups (this script's, step_profile's,
    env_workers'): --cases, --members, --steps, --chunks (where ``chunks``), --fill, --device
    (where ``device``), --out."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=cases)
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--steps", type=int, default=steps,
                        help="env steps per chunk" if chunks else "env steps measured")
    if chunks:
        parser.add_argument("--chunks", type=int, default=chunks)
    parser.add_argument("--fill", type=int, default=300, help="random env steps in the buffer first")
    if device:
        parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--out", default=None, help="the result JSON (default: benchmarks/results/)")
    return parser


def main() -> None:
    args = case_parser(__doc__, ["walker_ours", "walker_l_only", "mcc_ours", "walker_width256"],
                       steps=200, chunks=3).parse_args()
    torch.set_num_threads(1)
    started = time.time()
    rows = []
    for case in args.cases:
        rows.append(measure(case, args.members, args.steps, args.chunks, args.fill, args.device))
        print_table(rows[-1:], ["case", "members", "eager_seed_steps_per_cpu_s",
                                "compiled_seed_steps_per_cpu_s", "speedup", "warmup_cpu_s", "load"],
                    {"eager_seed_steps_per_cpu_s": ".1f", "compiled_seed_steps_per_cpu_s": ".1f",
                     "speedup": ".2f", "warmup_cpu_s": ".1f"})
    write_results("compile_speedup" if args.device == "cpu" else f"compile_speedup_{args.device}", {
        "note": ("eager (--compile off) and compiled (--compile on) groups measured in turns in one "
                 "process, one torch thread, CPU time; the machine was shared with a training "
                 "campaign and other work (see loadavg_at_end, peak_load)"),
        "rows": rows}, started, args.out)


if __name__ == "__main__":
    main()
