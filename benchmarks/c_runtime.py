"""Time per decision of the exported C policy (`asymbench export`): does Ours' FLOPs reduction
become a time reduction there?

    .venv/bin/python benchmarks/c_runtime.py [--tasks Swimmer walker-stand] [--decisions 2000]

Per task (today's observation / action sizes, the registry's widths and master), random-weight
networks (the time of a dense forward pass does not depend on the weights) are exported with
``asymbench.export.export_c`` and compiled three ways (``BUILDS``): ``cc -O2`` (the reference
build, the top-level ``c_*`` fields of each row), ``-O2 -march=native`` (this CPU's vector
units: a desktop or server controller) and ``-Os`` (optimised for size, as microcontroller
firmware is usually built; under ``builds`` in each row): L-only, S-only and Ours. Ours replays
the paper's published large share (Table 3, asymbench/data/published_table3.csv) as a fixed
pattern of macros in random order (the harness's ``-c``): the master runs at every macro start
and the pattern picks the sub-policy, so the share is the paper's whatever the random master
would choose. "Ours (A)" is the same with ``master_streams="advantage"`` (the dueling master's
value stream dropped: the same argmax up to float ties). Next to C: PyTorch eager (the
deployed modules as ``asymbench evaluate`` runs them, log-std head included) and NumPy
(the exported ops, as the C code: no log-std head). One thread everywhere.

FLOPs, two conventions: the paper's (``sac_actor_flops``: 2 x MACs of the SAC actor with its
log-std head, + 3; the master counted as a 32-wide SAC actor, as the authors' perf_drop.py
does) and executed (2 x MACs of the Linear layers the C code runs: no log-std head, both
dueling streams of the master). Time reduction / FLOPs reduction = 1 means time follows FLOPs.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import _common  # noqa: F401  (sets the thread environment first)
from _common import load, print_table, write_results
from inference_latency import (deployed_actor, numpy_decider, published_large_share, time_per_decision,
                               torch_decider)

import numpy as np
import torch

from asymbench.evaluation import DeployedPolicy
from asymbench.export import build, export_c, master_spec, network_spec, replay
from asymbench.master import DeployedMaster, QNetwork
from asymbench.networks import sac_actor_flops
from asymbench.tasks import get_task, load_registry, make_env

ROUNDS = 5  # the C binaries take turns this many times; the best round counts
# name -> compiler flags; the first is the reference (top-level fields of each row)
BUILDS = {"O2": ["-O2"], "O2_native": ["-O2", "-march=native"], "Os": ["-Os"]}


def numpy_ops(ops):
    layers = [(op.kind, op.weight, op.bias) for op in ops]

    def run(h):
        for kind, w, b in layers:
            h = h @ w + b if kind == "linear" else (np.maximum(h, 0.0) if kind == "relu" else np.tanh(h))
        return h
    return run


def numpy_actor(spec):
    trunk, low, high = numpy_ops(spec.ops), spec.low, spec.high
    return lambda obs: low + 0.5 * (trunk(obs) + 1.0) * (high - low)


def numpy_master(spec):
    adv, val = numpy_ops(spec.advantage), numpy_ops(spec.value) if spec.value else None

    def choose(obs):
        a = adv(obs)
        return int(np.argmax(a if val is None else val(obs) + a - a.mean()))
    return choose


def c_times(binaries: dict, observations: np.ndarray, act_dim: int, choices: np.ndarray,
            repeats: int) -> dict:
    """Per binary: the best over ROUNDS turns of the harness's min CPU ns per decision (and the
    median of the rounds' medians), the binaries taking turns so load hits all alike."""
    best = {name: [] for name in binaries}
    for _ in range(ROUNDS):
        for name, (binary, forced) in binaries.items():
            _, _, timing = replay(binary, observations, act_dim, repeats=repeats,
                                  choices=choices if forced else None)
            best[name].append(timing)
    return {name: {"ns": min(t["cpu_ns_min"] for t in ts),
                   "wall_ns": min(t["wall_ns_min"] for t in ts),
                   "median_ns": float(np.median([t["cpu_ns_median"] for t in ts]))}
            for name, ts in best.items()}


def export_and_build(name: str, policies: dict, obs_dim: int, builds: dict, workdir: Path):
    """Exports every policy (Ours twice: both master streams, advantage only) and builds each
    export every way in ``builds``; returns ({(policy, build): (binary, forced)}, executed FLOPs)."""
    binaries, executed = {}, {}
    for which, policy in policies.items():
        for streams in (("all", "advantage") if which == "asym" else ("all",)):
            key = which if streams == "all" else "asym_adv"
            out = workdir / f"{name}_{key}"
            manifest = export_c(policy, out, obs_dim, master_streams=streams, source=f"{name} {key}")
            executed[key] = manifest["flops_executed"]
            for build_name, flags in builds.items():
                binaries[(key, build_name)] = (build(out, tuple(flags), output=f"bench_{build_name}"),
                                               which == "asym")
    return binaries, executed


def build_summary(times: dict, build_name: str, flags: list[str], flops_reduction: float) -> dict:
    """One build's times per policy (CPU us per decision) and Ours' time saving against FLOPs'."""
    row = {"cflags": " ".join(flags)}
    for key in ("large", "small", "asym", "asym_adv"):
        t = times[(key, build_name)]
        row[f"c_{key}_us"] = t["ns"] / 1e3
        row[f"c_{key}_wall_us"] = t["wall_ns"] / 1e3
        row[f"c_{key}_median_us"] = t["median_ns"] / 1e3
    row["c_reduction_pct"] = 100 * (1 - row["c_asym_us"] / row["c_large_us"])
    row["c_adv_reduction_pct"] = 100 * (1 - row["c_asym_adv_us"] / row["c_large_us"])
    row["time_vs_flops"] = row["c_reduction_pct"] / flops_reduction
    row["adv_time_vs_flops"] = row["c_adv_reduction_pct"] / flops_reduction
    return row


def measure(name: str, decisions: int, torch_decisions: int, share: float, repeats: int,
            builds: dict, rng: np.random.Generator, workdir: Path) -> dict:
    task = get_task(name)
    env = make_env(task, seed=0)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    macro = task.macro_len
    torch.manual_seed(0)
    actors = {size: deployed_actor(obs_dim, act_dim, w, env.action_space)
              for size, w in (("small", task.small), ("large", task.large))}
    master = DeployedMaster(QNetwork(obs_dim, list(task.master["hidden"]), task.master["dueling"]).eval())
    policies = {"large": DeployedPolicy({"policy": actors["large"]}, {}),
                "small": DeployedPolicy({"policy": actors["small"]}, {}),
                "asym": DeployedPolicy(dict(actors), {}, master, macro)}
    binaries, executed = export_and_build(name, policies, obs_dim, builds, workdir)
    reference = next(iter(builds))

    observations = rng.standard_normal((decisions, obs_dim)).astype(np.float32)
    macros = -(-decisions // macro)
    large = np.repeat(rng.permutation(np.arange(macros) < round(share * macros)), macro)[:decisions]
    realised = float(large.mean())

    # The C policies follow the PyTorch ones (forced pattern included) before being timed.
    with torch.inference_mode():
        x = torch.as_tensor(observations[:50])
        expected = torch.where(torch.as_tensor(large[:50, None]), actors["large"](x), actors["small"](x)).numpy()
    for build_name in builds:
        got, _, _ = replay(binaries[("asym", build_name)][0], observations[:50], act_dim,
                           choices=large[:50])
        assert np.allclose(got, expected, atol=1e-4), f"{name} ({build_name}): C and PyTorch differ"

    load_before = load()
    c = c_times(binaries, observations, act_dim, large.astype(np.uint8), repeats)

    np_nets = {size: numpy_actor(network_spec(size, net)) for size, net in actors.items()}
    np_master = numpy_master(master_spec(master))

    py = time_per_decision({f"{impl}_{which}": fn(which, nets, decide_master, large, macro)
                            for impl, fn, nets, decide_master in (
                                ("torch", torch_decider, actors, master),
                                ("numpy", numpy_decider, np_nets, np_master))
                            for which in ("large", "small", "asym")}, observations[:torch_decisions])

    paper = {"large": sac_actor_flops(obs_dim, act_dim, task.large),
             "small": sac_actor_flops(obs_dim, act_dim, task.small),
             "master": sac_actor_flops(obs_dim, act_dim, task.master["hidden"][0])}

    def average(f, master_flops):
        return realised * f["large"] + (1 - realised) * f["small"] + master_flops / macro

    flops_asym = average(paper, paper["master"])
    exe = {"large": executed["large"]["policy"], "small": executed["small"]["policy"],
           "master": executed["asym"]["master"], "master_adv": executed["asym_adv"]["master"]}
    exe_asym, exe_asym_adv = average(exe, exe["master"]), average(exe, exe["master_adv"])
    row = {"task": name, "obs_dim": obs_dim, "act_dim": act_dim, "small": task.small,
           "large": task.large, "published_large_share": share, "large_share": realised,
           "flops_large": paper["large"], "flops_small": paper["small"], "flops_master": paper["master"],
           "flops_asym": flops_asym, "flops_reduction_pct": 100 * (1 - flops_asym / paper["large"]),
           "exec_flops_large": exe["large"], "exec_flops_small": exe["small"],
           "exec_flops_master": exe["master"], "exec_flops_master_adv": exe["master_adv"],
           "exec_flops_asym": exe_asym, "exec_flops_asym_adv": exe_asym_adv,
           "exec_reduction_pct": 100 * (1 - exe_asym / exe["large"]),
           "exec_reduction_adv_pct": 100 * (1 - exe_asym_adv / exe["large"]),
           "load_before": load_before, "load": max(load_before, load())}
    builds_rows = {b: build_summary(c, b, flags, row["flops_reduction_pct"]) for b, flags in builds.items()}
    row.update(builds_rows[reference])  # the reference build's times at the top level
    row["builds"] = {b: r for b, r in builds_rows.items() if b != reference}
    for key, t in py.items():
        row[f"{key}_us"] = t["cpu_min_us"]
        row[f"{key}_cpu_median_us"] = t["cpu_us"]
    for impl in ("torch", "numpy"):
        row[f"{impl}_reduction_pct"] = 100 * (1 - row[f"{impl}_asym_us"] / row[f"{impl}_large_us"])
    row["time_vs_exec_flops"] = row["c_reduction_pct"] / row["exec_reduction_pct"]
    row["c_speedup_vs_torch_asym"] = row["torch_asym_us"] / row["c_asym_us"]
    env.close()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(load_registry()))
    parser.add_argument("--decisions", type=int, default=2000, help="decisions per C pass")
    parser.add_argument("--repeats", type=int, default=20, help="timed C passes per round")
    parser.add_argument("--torch-decisions", type=int, default=600,
                        help="decisions per PyTorch / NumPy pass (9 repeats, inference_latency's)")
    parser.add_argument("--builds", nargs="+", default=list(BUILDS), choices=list(BUILDS),
                        help="compiler flag sets (BUILDS); the first is the reference")
    parser.add_argument("--out", default=None, help="default: benchmarks/results/c_runtime.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    started, loadavg_before = time.time(), list(os.getloadavg())
    shares = published_large_share()
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.tasks:
            paper_name = get_task(name).settings.get("paper_name", name)
            rows.append(measure(name, args.decisions, args.torch_decisions, shares[paper_name],
                                args.repeats, {b: BUILDS[b] for b in args.builds}, rng, Path(tmp)))
    print_table(rows, ["task", "large_share", "flops_reduction_pct", "exec_reduction_pct",
                       "c_large_us", "c_small_us", "c_asym_us", "c_asym_adv_us", "c_reduction_pct",
                       "time_vs_flops", "adv_time_vs_flops", "torch_large_us", "torch_asym_us",
                       "numpy_large_us", "numpy_asym_us", "load"],
                {"large_share": ".3f", "flops_reduction_pct": ".1f", "exec_reduction_pct": ".1f",
                 **{f"c_{w}_us": ".3f" for w in ("large", "small", "asym", "asym_adv")},
                 "c_reduction_pct": ".1f", "time_vs_flops": ".2f", "adv_time_vs_flops": ".2f",
                 **{f"{i}_{w}_us": ".1f" for i in ("torch", "numpy") for w in ("large", "asym")}})
    print("us: CPU time per decision at batch 1 (C: best of rounds x repeats; PyTorch / NumPy: "
          "best of 9 repeats); reduction: Ours vs L-only; time_vs_flops: C time reduction / "
          "paper-convention FLOPs reduction (adv_: advantage-only master)")
    per_build = [{"task": row["task"], "build": b, **r} for row in rows
                 for b, r in [(args.builds[0], row)] + list(row["builds"].items())]
    print_table(per_build, ["task", "build", "c_large_us", "c_small_us", "c_asym_us", "c_asym_adv_us",
                            "c_reduction_pct", "time_vs_flops"],
                {**{f"c_{w}_us": ".3f" for w in ("large", "small", "asym", "asym_adv")},
                 "c_reduction_pct": ".1f", "time_vs_flops": ".2f"})
    write_results("c_runtime", {"settings": {
        "decisions": args.decisions, "repeats": args.repeats, "rounds": ROUNDS,
        "torch_decisions": args.torch_decisions, "reference_build": args.builds[0],
        "builds": {b: BUILDS[b] for b in args.builds}, "compiler": _compiler_version(),
        "loadavg_before": loadavg_before, "loadavg_after": list(os.getloadavg()),
        "note": "run on a shared 2-core machine while training jobs ran: absolute times are "
                "pessimistic; builds and policies take turns, so their ratios are comparable. "
                "No embedded target was measured."}, "rows": rows}, started, args.out)


def _compiler_version() -> str | None:
    import subprocess

    from asymbench.export import find_compiler

    cc = find_compiler()
    if cc is None:
        return None
    return subprocess.run([cc, "--version"], capture_output=True, text=True).stdout.splitlines()[0]


if __name__ == "__main__":
    main()
