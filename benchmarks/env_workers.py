"""Serial vs worker-process env stepping (``asymbench train --env-workers``), whole env steps in
turns in one process, wall time: which one the default should be on this machine.

    .venv/bin/python benchmarks/env_workers.py            # -> benchmarks/results/env_workers_cpu.json
    .venv/bin/python benchmarks/env_workers.py --cases mcc_ours --workers 0 2 --chunks 4 --out /tmp/w.json

Each case builds one group of the engine (``asymbench.engine.Group``, eager) per worker count
from the same seeds (0: the envs stepped in the training process), fills its buffer with
``--fill`` random env steps and runs it past every warm-up; then ``--chunks`` chunks of
``--steps`` whole env steps (act, environments, store, SAC update, master) alternate between
the groups, so the load of the shared machine hits them alike. WALL time, since the workers'
CPU time is not this process's: the rate is the best chunk's (the one least disturbed by other
work), the median chunk's is recorded beside it. The transitions are the same either way
(tests/test_engine.py), so only the time differs.
"""

from __future__ import annotations

import time

import _common  # noqa: F401  (one BLAS thread, as training jobs run)
from _common import load, print_table, write_results
from compile_speedup import CASES, case_parser, env_step, steady_group

import numpy as np
import torch


def measure(case: str, members: int, workers: list[int], steps: int, chunks: int, fill: int) -> list[dict]:
    task, method, width = CASES[case]
    runs = {}
    for w in workers:
        group, book, t = steady_group(task, method, width, members, False, fill, "cpu", w)
        env_step(group, book, t)  # the first update's one-time costs
        runs[w] = {"group": group, "book": book, "t": t + 1, "chunks_s": []}
    loads = [load()]
    for _ in range(chunks):
        for run in runs.values():
            wall = time.perf_counter()
            for _ in range(steps):
                env_step(run["group"], run["book"], run["t"])
                run["t"] += 1
            run["chunks_s"].append(time.perf_counter() - wall)
        loads.append(load())
    rows = []
    serial = min(runs[workers[0]]["chunks_s"]) / steps
    for w, run in runs.items():
        run["group"].close()
        best, median = min(run["chunks_s"]) / steps, float(np.median(run["chunks_s"])) / steps
        rows.append({"case": case, "task": task, "method": method, "members": members, "env_workers": w,
                     "steps_per_chunk": steps, "chunks": chunks,
                     "wall_ms_per_env_step": 1e3 * best, "median_wall_ms_per_env_step": 1e3 * median,
                     "seed_steps_per_wall_s": members / best,
                     f"speedup_vs_{workers[0]}_workers": serial / best, "load": max(loads)})
    return rows


def main() -> None:
    parser = case_parser(__doc__, ["mcc_ours", "walker_ours"], steps=100, chunks=8, device=False)
    parser.add_argument("--workers", nargs="+", type=int, default=[0, 2, 5],
                        help="env worker counts; the first is the reference of the speed-up")
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.time()
    rows = []
    for case in args.cases:
        rows += measure(case, args.members, args.workers, args.steps, args.chunks, args.fill)
        print_table([r for r in rows if r["case"] == case],
                    ["case", "members", "env_workers", "wall_ms_per_env_step", "median_wall_ms_per_env_step",
                     f"speedup_vs_{args.workers[0]}_workers", "load"],
                    {"wall_ms_per_env_step": ".2f", "median_wall_ms_per_env_step": ".2f",
                     f"speedup_vs_{args.workers[0]}_workers": ".2f"})
    write_results("env_workers_cpu", {
        "note": ("one group per env worker count (0: serial, in the training process), whole env "
                 "steps in turns in one process, one torch thread, WALL time (best chunk; median "
                 "beside it); the machine was shared with a training campaign and other work "
                 "(see loadavg_at_end, peak_load)"),
        "rows": rows}, started, args.out)


if __name__ == "__main__":
    main()
