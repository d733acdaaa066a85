"""How much torch threads shorten one stacked SAC update, per width, against the core's sgemm peak.

    .venv/bin/python benchmarks/thread_scaling.py                     # widths 8 64 256, T = 1..cores
    .venv/bin/python benchmarks/thread_scaling.py --widths 64 --threads 1 2 --updates 5 --chunks 2 \
        --out /tmp/thread_scaling_smoke.json                           # a few seconds

`asymbench estimate` plans threads per training job from this file
(benchmarks/results/thread_scaling.json): a training job is one process updating K stacked SACs
every env step, so its threads can only shorten the update. For every task (its observation and
action dims; default walker-stand and Ant) and width: ONE ``asymbench.engine.StackedSAC.update``
of K members (default 5, the paper's seeds) on a batch of ``--batch`` (default 256), at
``torch.set_num_threads(T)`` for each T, and a float32 sgemm (``--gemm`` square, default 2048) at
the same T: what the cores can do at best. Each figure is the best of ``--chunks`` timed chunks of
``--updates`` calls (noise on a shared machine only adds time), in WALL time: CPU time sums over
threads and would hide the gain.

FLOP count of an update (per member, batch B, obs o, act a, width w): forward multiply-adds of the
actor A = B (o w + w w + 2 w a) and of one critic Q = B ((o + a) w + w w + w); the update runs the
actor on next_obs without gradient (1 A) and on obs with its backward (3 A: backward ~ 2 forwards),
both critics' targets without gradient (2 Q), both critics with backward (6 Q) and both critics on
the policy's actions with the gradient to the actions only (4 Q): 2 x K x (4 A + 12 Q) FLOPs.
"""

from __future__ import annotations

import argparse
import os
import time

import _common  # noqa: F401  (one BLAS thread by default; torch's own threads are set per T)
from _common import load, print_table, random_replay_batch, runnable, write_results

import torch

from asymbench.stacked import StackedSAC
from asymbench.tasks import env_dims, get_task


def update_flops(members: int, batch: int, obs_dim: int, act_dim: int, width: int) -> float:
    """FLOPs of one stacked update by the rule in the module docstring."""
    actor = batch * (obs_dim * width + width * width + 2 * width * act_dim)
    critic = batch * ((obs_dim + act_dim) * width + width * width + width)
    return 2.0 * members * (4 * actor + 12 * critic)


def make_update(task, width: int, members: int, batch: int):
    """A StackedSAC of the task's dims and SAC settings, and a call of one update on a fixed batch."""
    obs_dim, act_dim = env_dims(task)
    settings = dict(task.sac, batch_size=batch)
    sac = StackedSAC(members, obs_dim, act_dim, width, settings)
    gen = torch.Generator().manual_seed(0)
    data = random_replay_batch(members, batch, obs_dim, act_dim, gen)
    noise = [torch.randn(members, batch, act_dim, generator=gen) for _ in range(2)]
    return (lambda: sac.update(data, noise[0], noise[1], 0.5)), (obs_dim, act_dim)


def best_ms(call, calls: int, chunks: int) -> tuple[float, float, int | None]:
    """(best wall ms per call over the chunks, load average and most runnable threads during
    them), after one warm-up chunk."""
    for _ in range(calls):
        call()
    best, loads, running = float("inf"), [load()], [runnable()]
    for _ in range(chunks):
        start = time.perf_counter()
        for _ in range(calls):
            call()
        best = min(best, (time.perf_counter() - start) / calls)
        loads.append(load())
        running.append(runnable())
    known = [r for r in running if r is not None]
    return 1e3 * best, max(loads), max(known) if known else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=["walker-stand", "Ant"])
    parser.add_argument("--widths", nargs="+", type=int, default=[8, 64, 256])
    parser.add_argument("--threads", nargs="+", type=int, default=None,
                        help="thread counts (default 1 .. the machine's cores)")
    parser.add_argument("--members", type=int, default=5, help="K stacked seeds")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--updates", type=int, default=50, help="calls per timed chunk")
    parser.add_argument("--chunks", type=int, default=5)
    parser.add_argument("--gemm", type=int, default=2048, help="size of the square sgemm")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    started = time.time()
    threads = args.threads or list(range(1, os.cpu_count() + 1))

    gemm = {}
    a, b = torch.randn(args.gemm, args.gemm), torch.randn(args.gemm, args.gemm)
    gemm_flops = 2.0 * args.gemm ** 3
    for t in threads:
        torch.set_num_threads(t)
        ms, peak, running = best_ms(lambda: a @ b, max(1, args.updates // 10), args.chunks)
        gemm[t] = {"kind": "sgemm", "size": args.gemm, "threads": t, "ms": ms,
                   "gflops": gemm_flops / ms / 1e6, "load": peak, "runnable": running}

    rows = []
    for name in args.tasks:
        task = get_task(name)
        for width in args.widths:
            update, (obs_dim, act_dim) = make_update(task, width, args.members, args.batch)
            flops = update_flops(args.members, args.batch, obs_dim, act_dim, width)
            base = None
            for t in threads:
                torch.set_num_threads(t)
                ms, peak, running = best_ms(update, args.updates, args.chunks)
                base = base or ms
                gflops = flops / ms / 1e6
                rows.append({"kind": "update", "task": name, "obs_dim": obs_dim, "act_dim": act_dim,
                             "width": width, "K": args.members, "batch": args.batch, "threads": t,
                             "ms_per_update": ms, "speedup": base / ms, "gflop": flops / 1e9,
                             "gflops": gflops, "sgemm_gflops": gemm[t]["gflops"],
                             "share_of_sgemm": gflops / gemm[t]["gflops"], "load": peak,
                             "runnable": running})
    rows += list(gemm.values())
    print_table([r for r in rows if r["kind"] == "update"],
                ["task", "width", "threads", "ms_per_update", "speedup", "gflops", "share_of_sgemm", "load",
                 "runnable"],
                {"ms_per_update": ".2f", "speedup": ".2f", "gflops": ".1f", "share_of_sgemm": ".3f"})
    print()
    print_table(list(gemm.values()), ["size", "threads", "ms", "gflops", "load", "runnable"],
                {"ms": ".2f", "gflops": ".1f"})
    write_results("thread_scaling", {
        "members": args.members, "batch": args.batch, "updates": args.updates, "chunks": args.chunks,
        "timing": "best wall ms per call over the chunks",
        "flop_rule": "2 x K x (4 A + 12 Q): A, Q = forward multiply-adds of the actor and one critic "
                     "on the batch; backward = 2 forwards",
        "rows": rows}, started, args.out)


if __name__ == "__main__":
    main()
