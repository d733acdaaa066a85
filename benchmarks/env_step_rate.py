"""Raw env.step rate with random actions per task: the floor that no trainer beats.

    .venv/bin/python benchmarks/env_step_rate.py [--tasks Swimmer walker-stand] [--steps 5000]

The environment is built as the trainers build it (asymbench.tasks.make_env: flat float32
observations); actions are drawn beforehand so only step() and reset() are timed, in 5 chunks:
steps_per_cpu_s is over all of them, best_chunk_steps_per_cpu_s the fastest chunk's (noise on a
shared machine only ever adds time).
"""

from __future__ import annotations

import argparse
import time

import _common  # noqa: F401  (sets the thread environment first)
from _common import print_table, timed, write_results

from asymbench.tasks import get_task, load_registry, make_env

CHUNKS = 5


def measure(task_name: str, steps: int) -> dict:
    task = get_task(task_name)
    env = make_env(task, seed=0)
    env.reset(seed=0)
    episodes, chunks = 0, []
    for _ in range(CHUNKS):
        actions = [env.action_space.sample() for _ in range(steps // CHUNKS)]

        def run():
            nonlocal episodes
            for action in actions:
                _, _, terminated, truncated, _ = env.step(action)
                if terminated or truncated:
                    env.reset()
                    episodes += 1
        chunks.append(timed(run))
    env.close()
    n = steps // CHUNKS
    wall, cpu = sum(c["wall_s"] for c in chunks), sum(c["cpu_s"] for c in chunks)
    return {"task": task_name, "env_id": task.env_id, "steps": n * CHUNKS, "episodes_ended": episodes,
            "steps_per_s": n * CHUNKS / wall, "steps_per_cpu_s": n * CHUNKS / cpu,
            "best_chunk_steps_per_cpu_s": max(n / c["cpu_s"] for c in chunks),
            "wall_s": wall, "cpu_s": cpu,
            "load": max(max(c["load_before"], c["load_after"]) for c in chunks)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(load_registry()))
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--out", default=None, help="default: benchmarks/results/env_step_rate.json")
    args = parser.parse_args()
    started = time.time()
    rows = [measure(name, args.steps) for name in args.tasks]
    print_table(rows, ["task", "steps", "steps_per_s", "steps_per_cpu_s", "best_chunk_steps_per_cpu_s", "load"],
                {"steps_per_s": ",.0f", "steps_per_cpu_s": ",.0f", "best_chunk_steps_per_cpu_s": ",.0f"})
    write_results("env_step_rate", {"settings": vars(args), "rows": rows}, started, args.out)


if __name__ == "__main__":
    main()
