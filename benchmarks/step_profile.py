"""Where one env step of one group goes, on one device: environments, host<->device copies,
acting, replay sampling, each SAC update phase (entropy coefficient, critic, actor, target
update), the master, and what is left (Python, bookkeeping).

    .venv/bin/python benchmarks/step_profile.py                       # -> benchmarks/results/step_profile_cpu.json
    .venv/bin/python benchmarks/step_profile.py --device cuda         # -> step_profile_cuda.json
    .venv/bin/python benchmarks/step_profile.py --cases mcc_ours --steps 100 --out /tmp/p.json

A group of the engine (``asymbench.engine.Group``, eager) is brought past every warm-up as in
benchmarks/compile_speedup.py; then ``--steps`` env steps run with the engine's parts wrapped by
timers. Times are exclusive (a part's inner parts are subtracted: replay sampling is not in the
update, copies are not in acting) and CPU time (``time.process_time``; the machine is shared with
a training campaign). On a GPU a phase's CPU time is its launch cost, and the time the host
waits for the device shows up where it waits (the actions' copy back to the host, in "acting").
"policy forward in the update" is the update's policy sample and the copies into its inputs.
"""

from __future__ import annotations

import functools
import time

import _common  # noqa: F401  (one BLAS thread, as training jobs run)
from _common import load, write_results
from compile_speedup import CASES, case_parser, env_step, steady_group

import torch

import asymbench.engine as engine
import asymbench.stacked as stacked

PHASES = {  # label -> (object path relative to the group, attribute)
    "environments": ("group", "step"),
    "acting (policy forward, exploration noise)": ("group", "act"),
    "replay sampling": ("group.buffer", "sample"),
    "policy noise draws": ("group", "draw_noise"),
    "storing": ("group", "store"),
    "entropy coefficient": ("stack", "entropy_step"),
    "critic": ("stack", "critic_step"),
    "actor": ("stack", "actor_step"),
    "target update": ("stack", "target_update"),
    "policy forward in the update": ("stack", "update"),
    "master": ("group.master", "after_env_step"),
}


class PhaseTimer:
    """Exclusive CPU time per label: a nested timed call's time is not its caller's."""

    def __init__(self):
        self.seconds, self.stack = {}, []

    def wrap(self, label: str, fn):
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            self.stack.append(0.0)
            start = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.process_time() - start
                inner = self.stack.pop()
                self.seconds[label] = self.seconds.get(label, 0.0) + elapsed - inner
                if self.stack:
                    self.stack[-1] += elapsed
        return timed


def instrument(group, timer: PhaseTimer) -> None:
    owners = {"group": [group], "group.buffer": [group.buffer], "stack": list(group.stacks.values()),
              "group.master": [group.master] if group.master is not None else []}
    for label, (owner, attr) in PHASES.items():
        for obj in owners[owner]:
            setattr(obj, attr, timer.wrap(label, getattr(obj, attr)))
    copies = timer.wrap("host<->device copies", stacked.to_device)
    engine.to_device = stacked.to_device = copies


def profile(case: str, members: int, steps: int, fill: int, device: str) -> dict:
    task, method, width = CASES[case]
    group, book, t = steady_group(task, method, width, members, False, fill, device)
    timer = PhaseTimer()
    instrument(group, timer)
    for _ in range(5):   # warm-up: allocator, first master updates
        env_step(group, book, t)
        t += 1
    timer.seconds.clear()
    load_before, start = load(), time.process_time()
    for _ in range(steps):
        env_step(group, book, t)
        t += 1
    if device == "cuda":
        torch.cuda.synchronize()
    total = time.process_time() - start
    group.close()
    engine.to_device = stacked.to_device = stacked.to_device.__wrapped__
    ms = {label: 1e3 * s / steps for label, s in timer.seconds.items()}
    ms["rest (Python, bookkeeping)"] = 1e3 * total / steps - sum(ms.values())
    return {"case": case, "task": task, "method": method, "members": members, "device": device,
            "steps": steps, "ms_per_env_step": 1e3 * total / steps, "phases_ms": ms,
            "phases_share": {label: v / (1e3 * total / steps) for label, v in ms.items()},
            "load": max(load_before, load())}


def main() -> None:
    args = case_parser(__doc__, ["walker_ours", "walker_l_only", "mcc_ours"], steps=300).parse_args()
    torch.set_num_threads(1)
    started = time.time()
    rows = []
    for case in args.cases:
        rows.append(profile(case, args.members, args.steps, args.fill, args.device))
        print(f"\n{case}: {rows[-1]['ms_per_env_step']:.2f} ms per env step (CPU time), K={args.members}")
        for label, value in sorted(rows[-1]["phases_ms"].items(), key=lambda kv: -kv[1]):
            print(f"  {label:45s} {value:7.3f} ms  {100 * rows[-1]['phases_share'][label]:5.1f}%")
    write_results(f"step_profile_{args.device}", {
        "note": ("one env step of one group, split by part; exclusive CPU time per part "
                 "(time.process_time); the machine was shared with a training campaign and "
                 "other work (loadavg_at_end, peak_load)"),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(), "rows": rows}, started, args.out)


if __name__ == "__main__":
    main()
