"""``asymbench evaluate``: episodes of any finished run, measured one way.

Every table row (S-only, L-only, fit, Ours, BC, GAIL) comes from this module: the same
episodes, seeds, FLOPs counting and latency timing, whatever produced the run.

Two protocols, as the authors' rl-zoo/train_decision_net.py evaluates every agent twice
(``deterministic=True`` and ``False``): *deterministic* (the greedy master, argmax Q; the SAC's
mean action) and *stochastic* (stable-baselines 2's non-deterministic ``predict``: the master
samples its choice from softmax(Q), stable_baselines/deepq/policies.py, and the SAC samples its
squashed Gaussian, stable_baselines/sac/policies.py; a BC / GAIL student samples its Gaussian
and is clipped to the bounds, as stable-baselines3's ``predict`` does). Both run the same
episode seeds; the stochastic draws come from their own generator per episode, seeded from the
episode's seed, so they are reproducible and leave every other random stream alone. Traces,
frames, the latency replay (and the C export) use the greedy master.

Beside the published numbers, FLOPs follow the paper's convention (the master counted with the
SAC-actor formula at width 32, as the authors' perf_drop.py does); the true count of the
deployed master (2 x MACs of its dueling network) is reported under ``*_macs`` keys.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from asymbench.agents import SUB_POLICIES, DeployedActor, load_sac
from asymbench.distillation import load_student, student_deployed_module
from asymbench.master import load_master
from asymbench.networks import (TwoHeadActor, average_flops, deployed_flops, master_flops_paper,
                                sac_actor_flops)
from asymbench.runs import CONFIG_FILE, RunError, atomic_path, load_finished_run, write_json
from asymbench.seeding import check_episode_seeds
from asymbench.tasks import Task, make_env, task_from_config

MAX_FRAMES = 6
LATENCY_REPEATS = 5
PROTOCOLS = ("both", "deterministic", "stochastic")
# The stochastic protocol's generator for the episode reset with seed s:
# numpy Generator(PCG64(SeedSequence([s, STOCHASTIC_STREAM]))).
STOCHASTIC_STREAM = 0x5704
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # the SAC actor's log-std clip (SB2 sac/policies.py, SB3)
STOCHASTIC_SAMPLING = (
    "master: at each macro start, its choice sampled from softmax(Q) (stable-baselines 2 deepq "
    "predict(deterministic=False)); SAC: tanh(mu + exp(clip(log_std, -20, 2)) * N(0, 1)) "
    "rescaled to the bounds; BC / GAIL students: mean + exp(log_std) * N(0, 1) clipped to the "
    "bounds; draws from numpy's Generator(SeedSequence([episode seed, 0x5704])), one per episode")
# The metrics each protocol reports (top level, and under "stochastic" for protocol "both").
METRIC_KEYS = ("episodes", "seed", "returns", "mean_return", "std_return", "success_rate",
               "large_share", "large_share_per_episode", "flops_per_inf", "flops_reduction_pct",
               "flops_per_inf_macs", "flops_reduction_pct_macs")


def episode_generator(seed: int) -> np.random.Generator:
    """The stochastic protocol's random generator of the episode reset with ``seed``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), STOCHASTIC_STREAM]))


def _standard_normal(rng: np.random.Generator, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(rng.standard_normal(like.shape), dtype=like.dtype)


def sample_action(net: torch.nn.Module, x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """A stochastic action of a deployed network for observations ``x`` (batch 1): a SAC actor
    samples its squashed Gaussian, a student its Gaussian (clipped to the bounds)."""
    if isinstance(net, DeployedActor):
        latent = net.latent_pi(x)
        mean = net.mu(latent)
        log_std = torch.clamp(net.log_std(latent), LOG_STD_MIN, LOG_STD_MAX)
        squashed = torch.tanh(mean + log_std.exp() * _standard_normal(rng, mean))
        return net.low + 0.5 * (squashed + 1.0) * (net.high - net.low)
    if isinstance(net, _DeployedStudent):
        mean = net.module(x)
        return torch.clamp(mean + net.action_log_std.exp() * _standard_normal(rng, mean),
                           net.low, net.high)
    raise TypeError(f"no stochastic action for a {type(net).__name__}")


def sample_choice(master: torch.nn.Module, x: torch.Tensor, rng: np.random.Generator) -> int:
    """The master's choice sampled from softmax(Q) (stable-baselines 2 deepq, deterministic=False)."""
    q_values = master.q_net(x)[0].double()
    probabilities = torch.softmax(q_values, dim=-1).numpy()
    return int(rng.choice(len(probabilities), p=probabilities))


@dataclass
class DeployedPolicy:
    """What runs at deployment: one network, or a master choosing between two every macro."""

    networks: dict[str, torch.nn.Module]  # "policy", or "small" and "large"
    flops: dict[str, int]                 # paper-convention FLOPs/Inf of each network (and "master",
                                          # "master_macs": the deployed master's 2 x MACs)
    master: torch.nn.Module | None = None
    macro_len: int = 1

    @torch.inference_mode()
    def act(self, obs: np.ndarray, step_in_episode: int, current: str,
            rng: np.random.Generator | None = None) -> tuple[np.ndarray, str]:
        """The action for ``obs`` and which network produced it. ``current`` is the network in
        use; the master (if any) reconsiders it at the start of every macro. With ``rng`` the
        stochastic protocol: the master samples softmax(Q), the network samples its action."""
        x = torch.as_tensor(obs, dtype=torch.float32).unsqueeze(0)
        if self.master is not None and step_in_episode % self.macro_len == 0:
            current = SUB_POLICIES[int(self.master(x)[0]) if rng is None
                                   else sample_choice(self.master, x, rng)]
        net = self.networks[current]
        action = net(x) if rng is None else sample_action(net, x, rng)
        return action[0].numpy(), current


class _DeployedStudent(torch.nn.Module):
    """A BC / GAIL student (SB3 ActorCriticPolicy): the mean action, clipped to the bounds."""

    def __init__(self, module: torch.nn.Module, action_space, log_std: torch.Tensor | None = None):
        super().__init__()
        self.module = module
        self.register_buffer("low", torch.as_tensor(action_space.low, dtype=torch.float32))
        self.register_buffer("high", torch.as_tensor(action_space.high, dtype=torch.float32))
        # the Gaussian's state-independent log-std (stochastic protocol only; never deployed)
        self.register_buffer("action_log_std", torch.zeros_like(self.low) if log_std is None
                             else log_std.detach().clone().float())

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.clamp(self.module(obs), self.low, self.high)


def load_deployed(run_dir: str | Path, config: dict, obs_dim: int,
                  act_dim: int | None = None, task: Task | None = None) -> DeployedPolicy:
    """The deployed networks of a finished run; every one takes the flat observation.
    ``act_dim`` (default: the sub-policies' own) sizes the paper-convention master count;
    ``task`` (default: the run's own, ``task_from_config(config)``) builds a goal task's env."""
    model = Path(run_dir) / "model"
    method = config["method"]
    # SB3 reloads a hindsight-relabelling buffer only with its goal env at hand.
    if config.get("her"):
        task = task or task_from_config(config, source=Path(run_dir) / CONFIG_FILE)
    goal_env = make_env(task, flatten=False) if config.get("her") else None
    if method in ("s_only", "l_only", "fit"):
        actor = DeployedActor.from_sac(load_sac(model / "policy.zip", goal_env))
        return DeployedPolicy({"policy": actor}, {"policy": deployed_flops(actor, obs_dim)})
    if method == "asym":
        subs = {name: load_sac(model / f"{name}.zip", goal_env) for name in SUB_POLICIES}
        networks = {name: DeployedActor.from_sac(sac) for name, sac in subs.items()}
        master = load_master(model / "master.pt")
        flops = {name: deployed_flops(net, obs_dim) for name, net in networks.items()}
        act_dim = act_dim or networks["small"].mu.out_features
        with torch.random.fork_rng():  # counting builds a throw-away network
            flops["master"] = master_flops_paper(obs_dim, act_dim, config["master"]["hidden"][0])
        flops["master_macs"] = deployed_flops(master, obs_dim, two_head_actor=False)
        return DeployedPolicy(networks, flops, master, config["macro_len"])
    if method in ("bc", "gail"):
        student = load_student(run_dir)
        module = _DeployedStudent(student_deployed_module(student), student.action_space,
                                  student.log_std)
        return DeployedPolicy({"policy": module},
                              {"policy": deployed_flops(module, obs_dim, two_head_actor=False)})
    raise RunError(f"{run_dir}: unknown method '{method}' in config.json")


def _run_episode(env, policy: DeployedPolicy, seed: int, record: bool, stochastic: bool = False):
    obs, _ = env.reset(seed=seed)
    rng = episode_generator(seed) if stochastic else None
    current = "small" if policy.master is not None else "policy"
    total, steps, large, success, trace = 0.0, 0, 0, None, []
    while True:
        action, current = policy.act(obs, steps, current, rng)
        obs_before = obs
        obs, reward, terminated, truncated, info = env.step(action)
        total += float(reward)
        large += current == "large"
        if record:
            trace.append({"step": steps, "reward": float(reward), "sub_policy": current,
                          "obs": obs_before, **{f"action_{i}": float(a) for i, a in enumerate(action)}})
        steps += 1
        if terminated or truncated:
            if "is_success" in info:
                success = float(info["is_success"])
            return total, steps, large, success, trace


def _latency_us(networks_by_step, observations: list[np.ndarray]) -> float:
    """Median over repeats of the mean wall time of one batch-1 decision (including the
    numpy -> tensor conversion), replaying recorded observations through the given networks."""
    means = []
    with torch.inference_mode():
        for _ in range(LATENCY_REPEATS + 1):  # the first pass warms up and is discarded
            start = time.perf_counter_ns()
            for t, o in enumerate(observations):
                x = torch.as_tensor(o, dtype=torch.float32).unsqueeze(0)
                for net in networks_by_step(t):
                    net(x)
            means.append((time.perf_counter_ns() - start) / 1e3 / len(observations))
    return float(np.median(means[1:]))


def _render_frames(task, policy: DeployedPolicy, seed: int, trace: pd.DataFrame,
                   frames_dir: Path, max_episode_steps: int | None) -> None:
    """Replays the traced (deterministic) episode and saves frames at its start and switches."""
    from PIL import Image

    switches = trace.index[trace["sub_policy"] != trace["sub_policy"].shift()].tolist()
    candidates = switches if len(switches) > 1 else list(range(len(trace)))
    picks = sorted({candidates[int(i)] for i in np.linspace(0, len(candidates) - 1,
                                                            min(MAX_FRAMES, len(candidates)))})
    env = make_env(task, render=True, max_episode_steps=max_episode_steps)
    frames_dir.mkdir(parents=True, exist_ok=True)
    rows, obs = [], env.reset(seed=seed)[0]
    current = "small" if policy.master is not None else "policy"
    for step in range(len(trace)):
        action, current = policy.act(obs, step, current)
        if step in picks:
            name = f"step_{step:05d}.png"
            with atomic_path(frames_dir / name) as tmp:
                Image.fromarray(env.render()).save(tmp, format="PNG")
            rows.append({"step": step, "sub_policy": current, "file": name})
        obs, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            break
    env.close()
    with atomic_path(frames_dir / "index.csv") as tmp:
        pd.DataFrame(rows, columns=["step", "sub_policy", "file"]).to_csv(tmp, index=False)


def _play(env, policy: DeployedPolicy, seed: int, episodes: int, stochastic: bool) -> dict:
    """``episodes`` episodes reset with seeds ``seed, seed+1, ...``; the first is recorded."""
    out = {"returns": [], "successes": [], "steps": 0, "large_steps": 0, "shares": [],
           "trace": None}
    for episode in range(episodes):
        total, n, large, success, episode_trace = _run_episode(
            env, policy, seed + episode, episode == 0, stochastic=stochastic)
        out["returns"].append(total)
        out["successes"].append(success)
        out["steps"] += n
        out["large_steps"] += large
        out["shares"].append(large / n)
        if episode == 0:
            out["trace"] = pd.DataFrame(episode_trace)
    return out


def _metrics(played: dict, seed: int, method: str, policy: DeployedPolicy,
             flops_l_only: int) -> dict:
    """The METRIC_KEYS of one protocol's episodes."""
    returns, successes = played["returns"], played["successes"]
    if method == "asym":
        # Pooled over all steps, and the mean of per-episode shares (the authors' convention,
        # rl-zoo/train_decision_net.py:151,161); they differ when episode lengths differ.
        large_share = played["large_steps"] / played["steps"]
        large_share_per_episode = float(np.mean(played["shares"]))
        flops_per_inf = average_flops(large_share, policy.flops["small"], policy.flops["large"],
                                      policy.flops["master"], policy.macro_len)
        flops_per_inf_macs = average_flops(large_share, policy.flops["small"], policy.flops["large"],
                                           policy.flops["master_macs"], policy.macro_len)
    else:
        large_share = large_share_per_episode = {"l_only": 1.0, "s_only": 0.0}.get(method)
        flops_per_inf = flops_per_inf_macs = policy.flops["policy"]
    return {
        "episodes": len(returns), "seed": seed,
        "returns": returns, "mean_return": float(np.mean(returns)),
        "std_return": float(np.std(returns)),
        "success_rate": None if successes[0] is None else float(np.mean(successes)),
        "large_share": large_share, "large_share_per_episode": large_share_per_episode,
        "flops_per_inf": float(flops_per_inf),
        "flops_reduction_pct": 100.0 * (1.0 - flops_per_inf / flops_l_only),
        # The same with the deployed master's true count (2 x MACs of its dueling network).
        "flops_per_inf_macs": float(flops_per_inf_macs),
        "flops_reduction_pct_macs": 100.0 * (1.0 - flops_per_inf_macs / flops_l_only),
    }


def _latency(policy: DeployedPolicy, trace: pd.DataFrame, obs_dim: int, act_dim: int,
             large_width: int, action_space) -> dict:
    """Per-step latency (us) of the deployed policy and of an L-only actor, both replaying the
    same recorded observations of ``trace`` (a greedy episode)."""
    observations = list(trace["obs"])
    choices = list(trace["sub_policy"])

    def deployed_networks(t):
        nets = [policy.networks[choices[t]]]
        return ([policy.master] + nets) if policy.master is not None and t % policy.macro_len == 0 else nets

    reference = TwoHeadActor(obs_dim, act_dim, [large_width, large_width])
    large_actor = DeployedActor(reference.latent_pi, reference.mu, reference.log_std, action_space)
    return {"policy": _latency_us(deployed_networks, observations),
            "l_only": _latency_us(lambda t: [large_actor], observations)}


def evaluate_run(run_dir: str | Path, episodes: int | None = None, seed: int = 1000,
                 out: str | Path | None = None, trace: str | Path | None = None,
                 frames: str | Path | None = None, max_episode_steps: int | None = None,
                 threads: int = 1, protocol: str = "both", task: Task | None = None) -> dict:
    """Evaluates a finished run over episodes seeded ``seed, seed+1, ...`` (in [0, 2**31)).
    ``task``: the run's task (default: its own, from config.json's task_settings).

    ``protocol``: "deterministic" (greedy master, mean actions), "stochastic" (the master
    samples softmax(Q), the networks sample their actions) or "both" (the default): the top
    level holds the deterministic metrics and "stochastic" the same METRIC_KEYS for the
    stochastic episodes (same seeds); with "stochastic" alone the top level is stochastic.
    The trace, frames and latency replay always come from a deterministic (greedy) episode.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"--protocol: got {protocol!r}; expected one of {', '.join(PROTOCOLS)}")
    config, summary = load_finished_run(run_dir)
    torch.set_num_threads(threads)
    task = task or task_from_config(config, source=Path(run_dir) / CONFIG_FILE)
    episodes = episodes or task.eval_episodes
    if episodes < 1:
        raise ValueError(f"--episodes must be positive, got {episodes}")
    check_episode_seeds(seed, episodes)
    limit = max_episode_steps or config.get("max_episode_steps")
    env = make_env(task, max_episode_steps=limit)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    policy = load_deployed(run_dir, config, obs_dim, act_dim, task)

    deterministic = (_play(env, policy, seed, episodes, stochastic=False)
                     if protocol != "stochastic" else None)
    stochastic = (_play(env, policy, seed, episodes, stochastic=True)
                  if protocol != "deterministic" else None)
    # The greedy first episode: the trace, the frames and the latency replay.
    first_trace = (deterministic or _play(env, policy, seed, 1, stochastic=False))["trace"]
    env.close()

    # FLOPs: the paper's convention, counted by thop on the networks that actually run.
    with torch.random.fork_rng():
        flops_l_only = sac_actor_flops(obs_dim, act_dim, task.large)
    method = config["method"]
    top = _metrics(deterministic or stochastic, seed, method, policy, flops_l_only)

    latency = _latency(policy, first_trace, obs_dim, act_dim, task.large, env.action_space)

    result = {
        "task": config["task"], "method": method, "run": str(run_dir), "protocol": protocol,
        # the env steps this run was trained for (a snapshot: its milestone), and its budget
        "seed": seed, "episodes": episodes, "total_steps": summary.get("steps", config.get("total_steps")),
        "budget_steps": config.get("total_steps"),
        "paper_total_steps": task.total_steps, "max_episode_steps": limit,
        "returns": top["returns"], "mean_return": top["mean_return"],
        "std_return": top["std_return"], "success_rate": top["success_rate"],
        "large_share": top["large_share"], "large_share_per_episode": top["large_share_per_episode"],
        "flops_per_inf": top["flops_per_inf"],
        "flops_small": policy.flops.get("small"), "flops_large": policy.flops.get("large"),
        "flops_master": policy.flops.get("master"), "flops_l_only": flops_l_only,
        "flops_reduction_pct": top["flops_reduction_pct"],
        # The same with the deployed master's true count (2 x MACs of its dueling network).
        "flops_master_macs": policy.flops.get("master_macs"),
        "flops_per_inf_macs": top["flops_per_inf_macs"],
        "flops_reduction_pct_macs": top["flops_reduction_pct_macs"],
        "width": config["widths"].get("policy"), "widths": config["widths"],
        "cost_weight": config.get("cost_weight"), "latency_us": latency,
        "train_wall_time_s": summary.get("wall_time_s"),
    }
    if stochastic is not None:
        result["stochastic_sampling"] = STOCHASTIC_SAMPLING
    if protocol == "both":
        result["stochastic"] = _metrics(stochastic, seed, method, policy, flops_l_only)
    if out is not None:
        write_json(out, result)
    if trace is not None:
        with atomic_path(trace) as tmp:
            first_trace.drop(columns="obs").to_csv(tmp, index=False)
    if frames is not None:
        _render_frames(task, policy, seed, first_trace, Path(frames), limit)
    return result
