"""Wall time per decision at batch 1: L-only, S-only and the asymmetric policy, next to FLOPs.

    .venv/bin/python benchmarks/inference_latency.py [--tasks Swimmer walker-stand] [--decisions 2000]

Does the asymmetric agent's FLOPs reduction turn into a time reduction? Each policy is timed in
PyTorch eager (as asymbench.evaluation deploys it: numpy -> tensor, DeployedActor, inference
mode) and in plain NumPy matmuls of the same exported Linear weights. The asymmetric policy runs
its master (32x32 DQN) every 5th decision and the large sub-policy for a share of macros equal
to the paper's published large-usage (asymbench/data/published_table3.csv). Weights are random:
the time of a dense forward pass does not depend on their values. One torch / BLAS thread.
"""

from __future__ import annotations

import argparse
import time
from importlib import resources

import _common  # noqa: F401  (sets the thread environment first)
from _common import load, print_table, write_results

import numpy as np
import pandas as pd
import torch
from torch import nn

from asymbench.agents import DeployedActor
from asymbench.networks import TwoHeadActor, average_flops, master_flops, mlp, sac_actor_flops
from asymbench.tasks import get_task, load_registry, make_env

REPEATS = 9


class Master(nn.Module):
    def __init__(self, q_net: nn.Module):
        super().__init__()
        self.q_net = q_net

    def forward(self, obs):
        return self.q_net(obs).argmax(dim=-1)


def linears(module: nn.Module) -> list[tuple[np.ndarray, np.ndarray]]:
    """(W^T, b) of every Linear layer, in call order (trunk, then mu, then log_std)."""
    return [(m.weight.detach().numpy().T.copy(), m.bias.detach().numpy().copy())
            for m in module.modules() if isinstance(m, nn.Linear)]


def numpy_actor(actor: DeployedActor):
    (w1, b1), (w2, b2), (wm, bm), (wl, bl) = linears(actor)
    low, high = actor.low.numpy(), actor.high.numpy()

    def act(obs):
        h = np.maximum(obs @ w1 + b1, 0.0)
        h = np.maximum(h @ w2 + b2, 0.0)
        h @ wl + bl  # the log-std head runs at deployment too, as in the FLOPs count
        return low + 0.5 * (np.tanh(h @ wm + bm) + 1.0) * (high - low)
    return act


def numpy_master(master: Master):
    (w1, b1), (w2, b2), (w3, b3) = linears(master)

    def choose(obs):
        h = np.maximum(obs @ w1 + b1, 0.0)
        h = np.maximum(h @ w2 + b2, 0.0)
        return int(np.argmax(h @ w3 + b3))
    return choose


def torch_decider(which: str, nets: dict, master, large, macro: int):
    """One decision in PyTorch eager, for ``time_per_decision``: the actor ``which`` alone, or
    (``"asym"``) the master at every macro start and the actor that ``large[t]`` names."""
    @torch.inference_mode()
    def decide(t, obs):
        x = torch.as_tensor(obs).unsqueeze(0)
        if which == "asym":
            if t % macro == 0:
                master(x)
            return nets["large" if large[t] else "small"](x)[0].numpy()
        return nets[which](x)[0].numpy()
    return decide


def numpy_decider(which: str, nets: dict, master, large, macro: int):
    """The same decision with the NumPy re-implementations of the networks."""
    def decide(t, obs):
        if which == "asym":
            if t % macro == 0:
                master(obs)
            return nets["large" if large[t] else "small"](obs)
        return nets[which](obs)
    return decide


def time_per_decision(policies: dict, observations) -> dict:
    """Per policy: median and minimum over repeats of the mean wall and CPU time of one decision,
    in microseconds. The policies take turns within each repeat, so that a burst of load from
    other processes hits all of them alike; the first round warms up and is discarded. The
    minimum is the figure reported: on this shared machine noise only ever adds time, and the
    minima agreed within ~10% across runs where the medians did not."""
    samples = {name: {"wall": [], "cpu": []} for name in policies}
    for repeat in range(REPEATS + 1):
        for name, decide in policies.items():
            wall, cpu = time.perf_counter_ns(), time.process_time_ns()
            for t, obs in enumerate(observations):
                decide(t, obs)
            if repeat:
                samples[name]["wall"].append((time.perf_counter_ns() - wall) / 1e3 / len(observations))
                samples[name]["cpu"].append((time.process_time_ns() - cpu) / 1e3 / len(observations))
    return {name: {"wall_us": float(np.median(s["wall"])), "wall_min_us": float(np.min(s["wall"])),
                   "cpu_us": float(np.median(s["cpu"])), "cpu_min_us": float(np.min(s["cpu"]))}
            for name, s in samples.items()}


def published_large_share() -> dict[str, float]:
    table = pd.read_csv(resources.files("asymbench") / "data" / "published_table3.csv")
    return dict(zip(table["task"], table["ours_large_usage_pct"] / 100.0))


def measure(name: str, decisions: int, share: float, rng: np.random.Generator) -> dict:
    task = get_task(name)
    env = make_env(task, seed=0)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    torch.manual_seed(0)
    nets = {size: deployed_actor(obs_dim, act_dim, w, env.action_space)
            for size, w in (("small", task.small), ("large", task.large))}
    master = Master(mlp(obs_dim, list(task.master["hidden"]), 2)).eval()
    macro = task.macro_len
    observations = rng.standard_normal((decisions, obs_dim)).astype(np.float32)
    # Which sub-policy drives each macro: the large one for a `share` of them, in random order.
    macros = -(-decisions // macro)
    large = np.repeat(rng.permutation(np.arange(macros) < round(share * macros)), macro)[:decisions]

    np_nets = {size: numpy_actor(net) for size, net in nets.items()}
    np_master = numpy_master(master)

    # The NumPy export computes the same actions as the torch modules.
    with torch.inference_mode():
        for size, net in nets.items():
            assert np.allclose(net(torch.as_tensor(observations[:8]))[0].numpy(),
                               np_nets[size](observations[0]), atol=1e-5)

    load_before = load()
    times = time_per_decision({f"{impl}_{which}": policy(which, actors, decide_master, large, macro)
                               for impl, policy, actors, decide_master in (
                                   ("torch", torch_decider, nets, master),
                                   ("numpy", numpy_decider, np_nets, np_master))
                               for which in ("large", "small", "asym")}, observations)
    flops = {"small": sac_actor_flops(obs_dim, act_dim, task.small),
             "large": sac_actor_flops(obs_dim, act_dim, task.large),
             "master": master_flops(obs_dim, list(task.master["hidden"]))}
    realised = float(large.mean())
    flops["asym"] = average_flops(realised, flops["small"], flops["large"], flops["master"], macro)
    row = {"task": name, "obs_dim": obs_dim, "act_dim": act_dim, "small": task.small,
           "large": task.large, "published_large_share": share, "large_share": realised,
           "flops_small": flops["small"], "flops_large": flops["large"],
           "flops_master": flops["master"], "flops_asym": flops["asym"],
           "flops_reduction_pct": 100 * (1 - flops["asym"] / flops["large"]),
           "load": max(load_before, load())}
    for key, t in times.items():  # "<impl>_<policy>_us": the minimum CPU time over repeats
        row[f"{key}_us"] = t["cpu_min_us"]
        row.update({f"{key}_{k}": v for k, v in t.items()})
    for impl in ("torch", "numpy"):
        row[f"{impl}_reduction_pct"] = 100 * (1 - row[f"{impl}_asym_us"] / row[f"{impl}_large_us"])
        row[f"{impl}_wall_reduction_pct"] = 100 * (1 - row[f"{impl}_asym_wall_min_us"] / row[f"{impl}_large_wall_min_us"])
    env.close()
    return row


def width_sweep(widths: list[int], obs_dim: int, act_dim: int, decisions: int, rng) -> list[dict]:
    """Time per decision of one actor against its width: where FLOPs start to cost time."""
    import gymnasium as gym

    space = gym.spaces.Box(-1.0, 1.0, (act_dim,), np.float32)
    observations = rng.standard_normal((decisions, obs_dim)).astype(np.float32)
    policies = {}
    for w in widths:
        net = deployed_actor(obs_dim, act_dim, w, space)
        np_net = numpy_actor(net)
        policies[f"torch_{w}"] = lambda t, obs, net=net: _torch_act(net, obs)
        policies[f"numpy_{w}"] = lambda t, obs, np_net=np_net: np_net(obs)
    times = time_per_decision(policies, observations)
    return [{"width": w, "flops": sac_actor_flops(obs_dim, act_dim, w),
             "torch_us": times[f"torch_{w}"]["cpu_min_us"], "numpy_us": times[f"numpy_{w}"]["cpu_min_us"],
             "torch_cpu_median_us": times[f"torch_{w}"]["cpu_us"],
             "numpy_cpu_median_us": times[f"numpy_{w}"]["cpu_us"], "load": load()} for w in widths]


@torch.inference_mode()
def _torch_act(net, obs):
    return net(torch.as_tensor(obs).unsqueeze(0))[0].numpy()


def deployed_actor(obs_dim: int, act_dim: int, width: int, action_space) -> DeployedActor:
    """A fresh width x width SAC actor as deployed (its weights do not matter for timing)."""
    actor = TwoHeadActor(obs_dim, act_dim, [width, width])
    return DeployedActor(actor.latent_pi, actor.mu, actor.log_std, action_space).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(load_registry()))
    parser.add_argument("--decisions", type=int, default=2000, help="decisions per timed pass")
    parser.add_argument("--sweep", nargs="*", type=int, default=[8, 64, 256, 1024, 2048],
                        help="also time one actor (Swimmer's 8 -> 2 dims) at these widths")
    parser.add_argument("--out", default=None, help="default: benchmarks/results/inference_latency.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.time()
    shares = published_large_share()
    rng = np.random.default_rng(0)
    rows = []
    for name in args.tasks:
        paper_name = get_task(name).settings.get("paper_name", name)
        rows.append(measure(name, args.decisions, shares[paper_name], rng))
    print_table(rows, ["task", "large_share", "flops_large", "flops_asym", "flops_reduction_pct",
                       "torch_large_us", "torch_small_us", "torch_asym_us", "torch_reduction_pct",
                       "numpy_large_us", "numpy_small_us", "numpy_asym_us", "numpy_reduction_pct",
                       "load"],
                {"large_share": ".3f", "flops_asym": ".0f", "flops_reduction_pct": ".1f",
                 **{f"{i}_{w}_us": ".1f" for i in ("torch", "numpy") for w in ("large", "small", "asym")},
                 "torch_reduction_pct": ".1f", "numpy_reduction_pct": ".1f"})
    print("us: CPU time per decision at batch 1, the best of the repeats' means (asym: master "
          "every 5th decision + the chosen sub-policy); reduction: vs L-only. Medians, wall: JSON")
    sweep = width_sweep(args.sweep, 8, 2, args.decisions, rng) if args.sweep else []
    if sweep:
        print("\nOne actor (8 -> 2 dims) against its hidden width:")
        print_table(sweep, ["width", "flops", "torch_us", "numpy_us", "load"],
                    {"flops": ",d", "torch_us": ".1f", "numpy_us": ".1f"})
    write_results("inference_latency", {"settings": {**vars(args), "repeats": REPEATS,
                                                     "torch_threads": 1}, "rows": rows,
                                        "width_sweep": sweep}, started, args.out)


if __name__ == "__main__":
    main()
