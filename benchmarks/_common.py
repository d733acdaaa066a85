"""Shared by the benchmark scripts: the machine and its load, timing, a table, the JSON file.

Every measurement records the 1-minute load average around it: on a 2-core machine shared with
training jobs, a load above ``HIGH_LOAD`` means the process did not have a core to itself, so
wall-clock rates are pessimistic. CPU time (``time.process_time``) is recorded beside wall time;
it is much less sensitive to other processes and is what CPU-hour estimates should use.
"""

from __future__ import annotations

import json
import os
import platform
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

# One BLAS / OpenMP thread, as every training job runs (set before numpy / torch load).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("MUJOCO_GL", "egl")

RESULTS = Path(__file__).resolve().parent / "results"
HIGH_LOAD = 1.5


def machine() -> dict:
    versions = {}
    for name in ("torch", "numpy", "stable-baselines3", "gymnasium", "mujoco", "dm_control",
                 "imitation"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    import torch

    from asymbench.runs import cpu_model

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"platform": platform.platform(), "cpu": cpu_model(), "cpu_count": os.cpu_count(),
            "gpu": gpu, "python": platform.python_version(), "versions": versions}


def load() -> float:
    return round(os.getloadavg()[0], 2)


def runnable() -> int | None:
    """Threads running or ready to run right now, this one included (/proc/loadavg's 4th field):
    unlike the load average it drops at once when other work is paused."""
    try:
        return int(Path("/proc/loadavg").read_text().split()[3].split("/")[0])
    except (OSError, IndexError, ValueError):
        return None


def timed(fn) -> dict:
    """Runs ``fn()``; returns its wall and CPU seconds and the load average before and after."""
    load_before = load()
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    load_after = load()
    return {"wall_s": wall, "cpu_s": cpu, "load_before": load_before, "load_after": load_after}


def difference(long: dict, short: dict) -> dict:
    """Cost of the extra work of ``long`` over ``short`` (same seed, longer budget)."""
    return {"wall_s": long["wall_s"] - short["wall_s"], "cpu_s": long["cpu_s"] - short["cpu_s"],
            "load": max(long["load_before"], long["load_after"], short["load_before"])}


def print_table(rows: list[dict], columns: list[str], formats: dict | None = None) -> None:
    formats = formats or {}

    def cell(row, col):
        value = row.get(col)
        if value is None:
            return "-"
        return format(value, formats[col]) if col in formats else str(value)

    cells = [[cell(row, c) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.rjust(w) for c, w in zip(columns, widths)))
    for r in cells:
        print("  ".join(v.rjust(w) for v, w in zip(r, widths)))


def write_results(name: str, payload: dict, started: float, out: str | None = None,
                  quiet: bool = False) -> Path:
    """Writes ``payload`` with the machine, the time and the load to benchmarks/results/NAME.json."""
    loads = [row["load"] for row in payload.get("rows", []) if row.get("load") is not None]
    peak = max(loads + [load()])
    data = {"benchmark": name, "machine": machine(),
            "started_utc": datetime.fromtimestamp(started, timezone.utc).isoformat(timespec="seconds"),
            "finished_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "loadavg_at_end": list(os.getloadavg()), "peak_load": peak,
            "high_load": peak > HIGH_LOAD,
            "high_load_note": (f"1-minute load average reached {peak:.2f} (> {HIGH_LOAD}) on "
                               f"{os.cpu_count()} cores: wall-clock rates are pessimistic; "
                               "CPU-time rates are less affected") if peak > HIGH_LOAD else None,
            **payload}
    path = Path(out) if out else RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    if not quiet:
        if data["high_load"]:
            print(f"\nNOTE: {data['high_load_note']}")
        print(f"-> {path}")
    return path


def random_replay_batch(members: int, batch: int, obs_dim: int, act_dim: int, gen):
    """A fixed [K, B] replay batch for timing a StackedSAC update (draws in this order from ``gen``)."""
    import torch

    return {"obs": torch.randn(members, batch, obs_dim, generator=gen),
            "next_obs": torch.randn(members, batch, obs_dim, generator=gen),
            "action": torch.rand(members, batch, act_dim, generator=gen) * 2 - 1,
            "reward": torch.randn(members, batch, generator=gen),
            "done": (torch.rand(members, batch, generator=gen) < 0.1).float()}
