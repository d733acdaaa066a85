"""The batched engine: the K seeds of one (task, method) trained together in one process.

Why: one stable-baselines3 SAC gradient step costs 5-8 ms even at width 8, almost all of it
per-operator overhead (benchmarks/README.md). Stacking the K seeds' weights (``[K, in, out]``)
turns K small updates into one set of batched operator calls, so the overhead is paid once.

This is asymbench's one training loop (K >= 1); stable-baselines3 is its oracle:
- every member starts from the weights stable-baselines3 gives its seed (they are copied in);
- one ``StackedSAC.update`` (``asymbench.stacked``: the stacked networks, their update and the
  replay buffers) computes, for every member, exactly what ``SAC.train(1)`` computes
  from the same weights and batch (actor, both critics, entropy coefficient, Polyak targets;
  tested to 1e-5), because the losses are summed over members and Adam is elementwise;
- the master is the same ``asymbench.master.MasterGroup``, on the authors' env-step schedule;
- each member writes the same run folder (config.json, progress.csv, model/, run.json), which
  ``asymbench evaluate`` loads unchanged.

Members never mix: each has its own environment (own seed and episode boundaries), buffer
rows, random generators (actions, batch indices, exploration noise) and weights. Nothing a
member does depends on K (tested: a seed trained alone and in a group gives the same run).
Goal tasks relabel as SB3's HerReplayBuffer does (``stacked.StackedHerReplay``, tested against it).
The K environments step in the training process or, with ``env_workers``, in worker processes
(``asymbench.envpool``): the same transitions either way (tested).

Read ``train_group`` (at the end) top to bottom: it is the env-step cycle, every per-seed
quantity carrying a leading member axis; its parts are ``Group`` (acting, stepping, storing,
updating), ``MacroBookkeeping`` (episodes and macros in progress), ``ProgressLog`` (counters,
learning curves, logs) and ``GroupCheckpoint``.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import socket
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from tqdm import tqdm

from asymbench.acceleration import runtime_record, use_compiled
from asymbench.agents import SUB_POLICIES, make_sac
from asymbench.envpool import EnvPool
from asymbench.master import MasterGroup
from asymbench.networks import costs, sac_actor_flops
from asymbench.runs import (CONFIG_FILE, FINISHED_FILE, SNAPSHOT_FILE, Interrupted, RunError,
                            atomic_path, forget_finished_group, load_state, provenance, read_json,
                            record_finished_group, restore_finished_group, write_json)
from asymbench.seeding import run_streams
from asymbench.stacked import StackedHerReplay, StackedReplay, StackedSAC, to_device
from asymbench.tasks import env_dims, get_task, make_env, observation_flattener
from asymbench.train_config import (TrainRequest, checkpoint_line, resolve_config, same_config,
                                    save_model, write_progress)

GROUP_CHECKPOINT = "group_checkpoint.pt"
PREVIOUS_CHECKPOINT = "group_checkpoint.previous.pt"  # kept until a newer one is written and verified
LOCK_FILE = "train.lock"
CHECKPOINT_FORMAT = 2  # 2: environment states and episodes in progress, seed streams
MILESTONES_DIR = "milestones"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)


class OUNoise:
    """Ornstein-Uhlenbeck noise with stable-baselines3's defaults (theta 0.15, dt 0.01), one
    process per member, each drawing from its own generator (SB3's draws from numpy's global
    one, which would make a member's noise depend on the group)."""

    def __init__(self, sigma: float, act_dim: int):
        self.sigma, self.theta, self.dt = sigma, 0.15, 1e-2
        self.state = np.zeros(act_dim)

    def __call__(self, rng: np.random.Generator) -> np.ndarray:
        self.state = (self.state - self.theta * self.state * self.dt
                      + self.sigma * np.sqrt(self.dt) * rng.normal(size=self.state.shape))
        return self.state

    def reset(self) -> None:
        self.state = np.zeros_like(self.state)


def _make_noise(settings: dict | None, act_dim: int):
    if not settings:
        return None
    if settings["type"] == "ornstein_uhlenbeck":
        return OUNoise(settings["sigma"], act_dim)
    return lambda rng: settings["sigma"] * rng.normal(size=act_dim)


# --------------------------------------------------------------------------------------------
# The training loop for a group of seeds
# --------------------------------------------------------------------------------------------
def group_configs(request: TrainRequest, seeds: list[int]) -> list[dict]:
    """config.json of every member: the resolved settings of its seed, with the group named."""
    configs = []
    for seed in seeds:
        config = resolve_config(replace(request, seed=seed))
        config["group_seeds"] = list(seeds)
        configs.append(config)
    return configs


# Up to this width an eager SAC update costs per-operator overhead, not arithmetic
# (benchmarks/README.md), so the small sub-policy rides in the large one's stack, zero-padded:
# one update for both. Compiled, the overhead is gone and the padding's arithmetic is not (it
# doubles a walker-stand update), so each policy keeps its own stack.
MERGE_MAX_WIDTH = 128


def _stack_layout(widths: dict, members: int, obs_dim: int, act_dim: int, settings: dict, device: str,
                  compiled: bool = False):
    """The stacks to train and where each policy's K members sit in them: ``slots[name] =
    (stack name, first member index)``. A narrower policy merged into a wider stack is
    zero-padded; its padded units have zero weights, zero activations and zero gradients
    (ReLU'(0) = 0 in torch), so Adam never moves them and the policy computes what it would
    alone (tested against the separate stacks, to float rounding)."""
    names = list(widths)
    widest = max(widths.values())
    if len(names) > 1 and widest <= MERGE_MAX_WIDTH and not compiled:
        stack = StackedSAC(members * len(names), obs_dim, act_dim, widest, settings, device, compiled)
        return {"merged": stack}, {name: ("merged", i * members) for i, name in enumerate(names)}
    stacks = {name: StackedSAC(members, obs_dim, act_dim, widths[name], settings, device, compiled)
              for name in names}
    return stacks, {name: (name, 0) for name in names}


def _goal_layout(space: gym.spaces.Dict) -> tuple[int, slice]:
    """The goal's size and where ``desired_goal`` sits in the flattened observation."""
    sizes = {key: gym.spaces.flatdim(sub) for key, sub in space.spaces.items()}
    start = sum(sizes[key] for key in list(sizes)[:list(sizes).index("desired_goal")])
    return sizes["desired_goal"], slice(start, start + sizes["desired_goal"])


def member_dirs(out_root: str | Path, seeds: list[int]) -> list[Path]:
    """Where a group's runs go: one folder ``seed<s>`` per seed under ``out_root``."""
    return [Path(out_root) / f"seed{s}" for s in seeds]


def milestone_dirs(out_root: str | Path, seeds: list[int], step: int) -> list[Path]:
    """Where a group's snapshots at milestone ``step`` go: ``milestones/<step>/seed<s>``."""
    return [Path(out_root) / MILESTONES_DIR / str(step) / f"seed{s}" for s in seeds]


@contextmanager
def stop_signals():
    """SIGTERM (SLURM's time limit, preemption), SIGINT and SIGUSR1 set a flag that the loop
    reads after each env step; the previous handlers come back afterwards."""
    received: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, _frame: received.append(signum))
                for sig in STOP_SIGNALS}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _check_segment(checkpoint: Path, step: int, segment_start: int | None, until: int) -> None:
    """A segment starts where its predecessor's checkpoint stands and never runs past its end."""
    if segment_start and step < segment_start:
        raise RunError(f"{checkpoint} is missing or behind (step {step:,}): the segment from "
                       f"step {segment_start:,} resumes from the checkpoint its predecessor "
                       f"left there; rerun the predecessor, or delete {checkpoint.parent} to "
                       "restart from step 0")
    if step > until:
        raise RunError(f"{checkpoint} is at step {step:,}, past this segment's end {until:,}: "
                       "that milestone's snapshot can no longer be written from it")


# --------------------------------------------------------------------------------------------
# The group's parts: what to train (GroupPlan), the trainable members (Group), the episodes and
# macros in progress (MacroBookkeeping), counters and logs (ProgressLog), the checkpoint
# (GroupCheckpoint). train_group, at the end, is the env-step cycle that uses them.
# --------------------------------------------------------------------------------------------
@dataclass
class GroupPlan:
    """Where a group's runs go and how far this call trains them."""

    out_root: Path
    seeds: list[int]
    dirs: list[Path]      # the members' run folders
    configs: list[dict]   # their config.json
    stop: int             # the env step this call ends at (the budget, or a milestone below it)
    targets: list[Path]   # where the models and summaries go: dirs, or a milestone's folders
    marker: str           # run.json at the budget, snapshot.json at a milestone

    @property
    def config(self) -> dict:
        return self.configs[0]

    @property
    def total_steps(self) -> int:
        return self.config["total_steps"]


def plan_group(request: TrainRequest, seeds: list[int], out_root: str | Path,
               dirs: list[Path] | None, until: int | None, segment_start: int | None):
    """Checks the request against the output folders (writing nothing). Returns the plan and,
    where every member already reached the segment's end, their summaries."""
    if len(set(seeds)) != len(seeds) or not seeds:
        raise ValueError(f"--seeds must list distinct seeds, got {seeds}")
    out_root = Path(out_root)
    dirs = [Path(d) for d in dirs] if dirs is not None else member_dirs(out_root, seeds)
    configs = group_configs(request, seeds)
    total_steps = configs[0]["total_steps"]
    stop = total_steps if until is None else until
    if not 0 < stop <= total_steps or (segment_start or 0) >= stop:
        raise ValueError(f"a segment from step {segment_start or 0:,} to {stop:,} does not lie "
                         f"within the run's budget of {total_steps:,} env steps")
    targets = dirs if stop == total_steps else milestone_dirs(out_root, seeds, stop)
    marker = FINISHED_FILE if stop == total_steps else SNAPSHOT_FILE
    plan = GroupPlan(out_root, list(seeds), dirs, configs, stop, targets, marker)
    if stop == total_steps:  # a finished group whose run.json files a workflow deleted
        restore_finished_group(out_root, dirs, configs, same_config,
                               checkpoint=GroupCheckpoint(out_root, "cpu").exists())
    finished = [(d / marker).exists() for d in targets]
    if all(finished):
        for d, c in zip(targets, configs):
            if not same_config(read_json(d / CONFIG_FILE), c):
                raise RunError(f"{d} holds a run with a different config; "
                               "choose another output folder or delete it")
        print(f"{out_root}: all {len(seeds)} seeds already reached step {stop:,}, nothing to do")
        return plan, [read_json(d / marker) for d in targets]
    if any(finished) and stop == total_steps:
        raise RunError(f"{out_root}: seeds {[s for s, f in zip(seeds, finished) if f]} are finished "
                       "but others are not; a group trains together: delete the finished ones "
                       "or train the others as their own group")
    _check_cost_weight(configs[0], request.registry)
    if GroupCheckpoint(out_root, "cpu").exists():
        for d, c in zip(dirs, configs):
            if not (d / CONFIG_FILE).exists() or not same_config(read_json(d / CONFIG_FILE), c):
                raise RunError(f"{out_root} holds a checkpoint of a different config; resume with "
                               "the same arguments, or choose another output folder")
    return plan, None


def _check_cost_weight(config: dict, registry) -> None:
    """An asym run's lambda must keep lambda * c(large) * macro_len finite: the master's macro
    rewards would overflow otherwise."""
    if config["method"] != "asym":
        return
    obs_dim, act_dim = env_dims(get_task(config["task"], registry))
    with np.errstate(over="ignore", invalid="ignore"):
        per_macro = master_step_costs(config, obs_dim, act_dim)[1] * config["macro_len"]
    if not np.isfinite(per_macro):
        raise ValueError(f"lambda (--lam) {config['cost_weight']:g} is too large: lambda * c(large) * "
                         f"macro_len = {per_macro} is not a finite number")


def master_step_costs(config: dict, obs_dim: int, act_dim: int) -> np.ndarray:
    """lambda * c(w) per env step for (small, large), with c from the sub-policies' FLOPs.
    Counting FLOPs builds throw-away networks, so it runs on a forked torch RNG."""
    with torch.random.fork_rng():
        flops = {n: sac_actor_flops(obs_dim, act_dim, w) for n, w in config["widths"].items()}
    return config["cost_weight"] * np.array([costs(flops["small"], flops["large"])[n] for n in SUB_POLICIES])


@dataclass
class Transition:
    """What the K environments returned for one step, one row per member."""

    next_obs: np.ndarray
    reward: np.ndarray
    done: np.ndarray          # the episode ends (terminated or truncated)
    stored_done: np.ndarray   # what the buffers record as terminal (config "timeouts")
    next_achieved: np.ndarray | None  # goal tasks: the achieved goals, for relabelling


class Group:
    """The K members' environments, stacked SACs, replay, master, random streams and
    exploration noise: everything that acts and learns."""

    def __init__(self, request: TrainRequest, config: dict, seeds: list[int], device: str,
                 compiled: bool = False):
        torch.set_num_threads(request.threads)
        self.compiled = compiled  # the SAC update through torch.compile (engine.compile)
        self.t = 0  # env steps taken, for naming the step of a fault
        self.config, self.seeds, self.device = config, list(seeds), device
        self.K, self.is_asym, self.her = len(seeds), config["method"] == "asym", config["her"]
        self.sac_settings = config["sac"]
        self.streams = [run_streams(s) for s in seeds]
        self._build_envs(get_task(config["task"], request.registry), request.env_workers)
        self._build_learners()
        self._build_exploration()

    def _build_envs(self, task, workers: int = 0) -> None:
        # Goal tasks keep the env's goal dict (relabelling needs its goals); the networks and the
        # master see it flattened in the Dict's key order, as SB3's MultiInputPolicy concatenates it.
        make = functools.partial(make_env, task, max_episode_steps=self.config["max_episode_steps"],
                                 flatten=not self.her)
        self.envs = [make() for _ in self.seeds]
        # stepped here, or in worker processes that hold envs built alike (envpool)
        self.pool = EnvPool(self.envs, make, workers)
        self.observe = observation_flattener(self.envs[0].observation_space)
        space = self.envs[0].action_space
        self.obs_dim, self.act_dim = gym.spaces.flatdim(self.envs[0].observation_space), space.shape[0]
        self.low, self.high = space.low.astype(np.float64), space.high.astype(np.float64)

    def _build_learners(self) -> None:
        """Each member starts from the weights stable-baselines3 gives its seed and keeps those
        SAC objects to save its model at the end; the buffer; the master and its step costs."""
        config, settings, K, device = self.config, self.sac_settings, self.K, self.device
        self.names = list(config["widths"])
        self.sb3 = {name: [make_sac(settings, self.envs[k], config["widths"][name], s, buffer_size=1,
                                    her=self.her) for k, s in enumerate(self.seeds)] for name in self.names}
        self.stacks, self.slots = _stack_layout(config["widths"], K, self.obs_dim, self.act_dim,
                                                settings, device, self.compiled)
        for name in self.names:
            stack, offset = self.slots[name]
            for k in range(K):
                self.stacks[stack].load_member(offset + k, self.sb3[name][k])
        capacity = min(settings["buffer_size"], config["total_steps"])
        if self.her:
            goal_dim, desired_goal = _goal_layout(self.envs[0].observation_space)
            self.buffer = StackedHerReplay(K, capacity, self.obs_dim, self.act_dim, self.her, goal_dim,
                                           desired_goal, self.envs[0].get_wrapper_attr("compute_reward"),
                                           device)
        else:
            self.buffer = StackedReplay(K, capacity, self.obs_dim, self.act_dim, device)
        self.master = (MasterGroup(config["master"], self.obs_dim, self.seeds, config["total_steps"],
                                   [st.master for st in self.streams]) if self.is_asym else None)
        self.step_cost = master_step_costs(config, self.obs_dim, self.act_dim) if self.is_asym else np.zeros(2)

    def _build_exploration(self) -> None:
        """The warm-up, the exploration noise, each member's random streams and first episode."""
        config, settings = self.config, self.sac_settings
        # The authors' asymmetric agent acts at random until the MASTER's learning starts; a single
        # SAC until its own. The sub-policies' noise follows the registry's asym_action_noise.
        self.random_until = (config["master"]["learning_starts"] if self.is_asym
                             else settings["learning_starts"])
        use_noise = not self.is_asym or config["asym_action_noise"] == "as_sac"
        self.noises = [_make_noise(settings["action_noise"] if use_noise else None, self.act_dim)
                       for _ in self.seeds]
        self.action_rngs = [st.actions for st in self.streams]      # exploration noise
        self.batch_rngs = [st.batches for st in self.streams]       # replay indices
        # Policy-sampling noise is drawn on the host whatever the device, so a member draws the
        # same numbers on a GPU as on the CPU (and K draws cost no K kernel launches).
        self.torch_rngs = [st.policy_noise for st in self.streams]
        # Each training env is seeded once, from a range evaluation never uses, and then
        # continues its own generator from episode to episode (seeding.py).
        self.first_obs = [self.observe(obs) for obs in self.pool.first_reset(
            [st.env_seed for st in self.streams], [st.action_space_seed for st in self.streams])]
        for k, obs in enumerate(self.first_obs):
            self._check_env_output(k, obs, 0.0, "reset")

    # --- the env-step cycle's parts --------------------------------------------------------
    def draw_noise(self, shape) -> torch.Tensor:
        return to_device(torch.stack([torch.randn(shape, generator=g) for g in self.torch_rngs]),
                         self.device)

    def act(self, obs: np.ndarray, choice: np.ndarray, t: int) -> np.ndarray:
        """Every member's action in [-1, 1]: uniform random during warm-up, else its (chosen)
        SAC samples, plus the exploration noise where there is one."""
        if t < self.random_until:
            return np.stack([2.0 * (sample - self.low) / (self.high - self.low) - 1.0
                             for sample in self.pool.sample()])
        K = self.K
        obs_t = to_device(obs.astype(np.float32), self.device)[:, None]
        with torch.no_grad():
            noise = self.draw_noise((1, self.act_dim))
            sampled = {}
            for stack_name, stack in self.stacks.items():
                copies = stack.members // K
                out = stack.sample(obs_t.repeat(copies, 1, 1), noise.repeat(copies, 1, 1))[0][:, 0]
                sampled.update({name: out[offset:offset + K] for name, (sn, offset) in self.slots.items()
                                if sn == stack_name})
        if self.master is not None:
            pick = to_device(choice == 1, self.device)[:, None]
            scaled = torch.where(pick, sampled["large"], sampled["small"])
        else:
            scaled = sampled["policy"]
        scaled = scaled.cpu().numpy().astype(np.float64)
        for k, noise_k in enumerate(self.noises):
            if noise_k is not None:
                scaled[k] = np.clip(scaled[k] + noise_k(self.action_rngs[k]), -1.0, 1.0)
        return scaled

    def step(self, scaled: np.ndarray, t: int) -> Transition:
        """Env step ``t + 1`` of every member; a non-finite reward or observation stops the group."""
        self.t = t + 1
        actions = self.low + 0.5 * (scaled + 1.0) * (self.high - self.low)
        results = self.pool.step([a.astype(np.float32) for a in actions])
        terminated = np.array([bool(r[2]) for r in results])
        done = terminated | np.array([bool(r[3]) for r in results])
        next_obs, reward = np.stack([self.observe(r[0]) for r in results]), np.array([float(r[1]) for r in results])
        if not (np.isfinite(reward).all() and np.isfinite(next_obs).all()):
            for k in range(self.K):
                self._check_env_output(k, next_obs[k], reward[k], "step")
        return Transition(
            next_obs=next_obs, reward=reward, done=done,
            stored_done=done if self.config["timeouts"] == "terminal" else terminated,
            next_achieved=np.stack([r[0]["achieved_goal"] for r in results]) if self.her else None)

    def store(self, obs: np.ndarray, scaled: np.ndarray, tr: Transition) -> None:
        """One buffer row per member; all its policies learn from it (one shared buffer)."""
        episodes = dict(episode_end=tr.done, next_achieved=tr.next_achieved) if self.her else {}
        self.buffer.add(**episodes, **{name: to_device(value.astype(np.float32), self.device) for name, value in (
            ("obs", obs), ("next_obs", tr.next_obs), ("action", scaled), ("reward", tr.reward),
            ("done", tr.stored_done))})

    def update_sacs(self, step: int, progress_remaining: float) -> None:
        """One SAC gradient step per env step for every policy of every member."""
        settings = self.sac_settings
        if not (step > settings["learning_starts"] and self.buffer.size >= settings["batch_size"]):
            return
        shape = (settings["batch_size"], self.act_dim)
        for stack_name, stack in self.stacks.items():
            # Each policy draws its own batch and noise, in the order the policies are listed.
            parts = [(self.buffer.sample(self.batch_rngs, settings["batch_size"]), self.draw_noise(shape),
                      self.draw_noise(shape)) for name in self.names if self.slots[name][0] == stack_name]
            batch = {key: torch.cat([b[key] for b, _, _ in parts]) for key in parts[0][0]}
            stack.update(batch, torch.cat([p[1] for p in parts]), torch.cat([p[2] for p in parts]),
                         progress_remaining)

    def reset(self, members) -> list[np.ndarray]:
        """The next episode of each of ``members``: each env's own generator continues."""
        observations = [self.observe(obs) for obs in self.pool.reset(members)]
        for k, obs in zip(members, observations):
            if isinstance(self.noises[k], OUNoise):
                self.noises[k].reset()
            self._check_env_output(k, obs, 0.0, "reset")
        return observations

    def _check_env_output(self, k: int, obs: np.ndarray, reward: float, what: str) -> None:
        bad = [name for name, value in (("reward", reward), ("observation", obs)) if not np.isfinite(value).all()]
        if bad:
            raise RunError(f"task {self.config['task']}, seed {self.seeds[k]}: the environment returned a "
                           f"non-finite {' and '.join(bad)} at env step {self.t}"
                           + (" (reset)" if what == "reset" else ""))

    # --- checkpoint and final models -------------------------------------------------------
    def state(self) -> dict:
        return {"stacks": {n: stack.state() for n, stack in self.stacks.items()},
                "buffer": self.buffer.state(), "master": self.master.state() if self.master else None,
                "action_rngs": [r.bit_generator.state for r in self.action_rngs],
                "batch_rngs": [r.bit_generator.state for r in self.batch_rngs],
                "torch_rngs": [g.get_state() for g in self.torch_rngs],
                "noises": [n.state if isinstance(n, OUNoise) else None for n in self.noises],
                "envs": self.pool.capture()}

    def restore(self, saved: dict) -> None:
        if set(saved["stacks"]) != set(self.stacks):
            raise RunError(f"the checkpoint holds the stacks {sorted(saved['stacks'])}, this group "
                           f"{sorted(self.stacks)} (eager merges a narrow sub-policy into the wide "
                           "one's stack, compiled does not): resume with the --compile the run started with")
        for name, stack in self.stacks.items():
            stack.restore(saved["stacks"][name])
        self.buffer.restore(saved["buffer"])
        if self.master is not None:
            self.master.restore(saved["master"])
        for rng, s in zip(self.action_rngs + self.batch_rngs, saved["action_rngs"] + saved["batch_rngs"]):
            rng.bit_generator.state = s
        for gen, s in zip(self.torch_rngs, saved["torch_rngs"]):
            gen.set_state(s)
        for noise, s in zip(self.noises, saved["noises"]):
            if isinstance(noise, OUNoise):
                noise.state = s
        self.pool.restore(saved["envs"])

    def check_finite(self, step: int) -> None:
        """Stops the group, naming the seed, when any member's weights stopped being finite."""
        modules = [(f"{n}.{part}", getattr(stack, part)) for n, stack in self.stacks.items()
                   for part in ("trunk", "mu", "log_std", "critic")]
        if self.master is not None:
            modules.append(("master", self.master.q_net))
        for label, module in modules:
            for pname, param in module.named_parameters():
                bad = ~torch.isfinite(param.detach().flatten(1)).all(dim=1)
                if bad.any():
                    k = int(bad.nonzero()[0, 0]) % self.K
                    raise RunError(f"seed {self.seeds[k]}: training diverged: non-finite values in "
                                   f"{label}.{pname} at step {step}")

    def save_member(self, k: int, folder: Path) -> None:
        """Member k's deployed model: SB3 zips of its policies, and its master."""
        for name in self.sb3:
            stack, offset = self.slots[name]
            self.stacks[stack].store_member(offset + k, self.sb3[name][k])
            save_model(self.sb3[name][k], folder / "model" / f"{name}.zip")
        if self.master is not None:
            with atomic_path(folder / "model" / "master.pt") as tmp:
                self.master.save_member(k, tmp)

    def close(self) -> None:
        self.pool.close()
        for env in self.envs:
            env.close()


class MacroBookkeeping:
    """Every member's episode and macro in progress (saved in the checkpoint as "live"): its
    observation, the sub-policy in use, the episode's return / length / large-policy steps,
    and the macro's first observation, reward so far and length (0: the master decides)."""

    FIELDS = ("obs", "episode_return", "episode_length", "episode_large", "choice", "macro_obs",
              "macro_reward", "macro_steps")

    def __init__(self, live: dict):
        for name in self.FIELDS:
            setattr(self, name, live[name])

    @classmethod
    def start(cls, first_obs: list[np.ndarray]) -> "MacroBookkeeping":
        K = len(first_obs)
        return cls({"obs": np.stack(first_obs), "episode_return": np.zeros(K),
                    "episode_length": np.zeros(K, np.int64), "episode_large": np.zeros(K, np.int64),
                    "choice": np.zeros(K, np.int64), "macro_obs": np.stack(first_obs),
                    "macro_reward": np.zeros(K), "macro_steps": np.zeros(K, np.int64)})

    def live(self) -> dict:
        return {name: getattr(self, name) for name in self.FIELDS}

    def decide(self, master: MasterGroup, t: int) -> None:
        """The masters pick a sub-policy where a macro starts (epsilon-greedy, per member)."""
        deciding = self.macro_steps == 0
        if deciding.any():
            picks = master.choose(self.obs, deciding, t)
            self.choice = np.where(deciding, picks, self.choice)
            self.macro_obs = np.where(deciding[:, None], self.obs, self.macro_obs)

    def count(self, reward: np.ndarray, asym: bool) -> None:
        self.episode_return += reward
        self.episode_length += 1
        if asym:
            self.episode_large += self.choice

    def close_macros(self, master: MasterGroup, tr: Transition, step_cost: np.ndarray,
                     macro_len: int) -> None:
        """The masters store whole macros (reward minus lambda * c(w) per step)."""
        self.macro_reward += tr.reward - step_cost[self.choice]
        self.macro_steps += 1
        for k in np.flatnonzero((self.macro_steps == macro_len) | tr.done):
            master.store(k, self.macro_obs[k], int(self.choice[k]), float(self.macro_reward[k]),
                         tr.next_obs[k], bool(tr.stored_done[k]))
            self.macro_reward[k], self.macro_steps[k] = 0.0, 0

    def new_episode(self, k: int, obs: np.ndarray) -> None:
        self.obs[k] = obs
        self.episode_return[k], self.episode_length[k], self.episode_large[k] = 0.0, 0, 0
        self.macro_reward[k], self.macro_steps[k] = 0.0, 0


class ProgressLog:
    """The group's counters (saved in the checkpoint as "state": env steps, episodes and
    large-policy steps per member, learning-curve rows, training wall time), the progress bar,
    progress.csv and, for a quiet run, one line per checkpoint."""

    def __init__(self, request: TrainRequest, plan: GroupPlan, state: dict | None):
        K = len(plan.seeds)
        self.plan, self.is_asym, self.K = plan, plan.config["method"] == "asym", K
        self.state = state if state is not None else {
            "step": 0, "episodes": np.zeros(K, np.int64), "large_steps": np.zeros(K, np.int64),
            "rows": [[] for _ in plan.seeds], "wall_s": 0.0}
        self.clock = time.perf_counter()
        self.quiet = not request.progress
        self.bar = tqdm(total=plan.stop, initial=self.state["step"], disable=self.quiet,
                        desc=f"{plan.config['task']}/{plan.config['method']}/{K} seeds", unit="step",
                        mininterval=2.0, smoothing=0.05)

    @property
    def step(self) -> int:
        return self.state["step"]

    def count(self, choice: np.ndarray) -> None:
        self.state["step"] += 1
        if self.is_asym:
            self.state["large_steps"] += choice

    def episode_end(self, k: int, book: MacroBookkeeping) -> None:
        """Member k's learning-curve row; a non-finite return stops the group."""
        state = self.state
        if not np.isfinite(book.episode_return[k]):
            raise RunError(f"seed {self.plan.seeds[k]}: training diverged: non-finite episode return "
                           f"at step {state['step']}")
        state["episodes"][k] += 1
        state["rows"][k].append({
            "step": state["step"], "episode": int(state["episodes"][k]),
            "episode_return": float(book.episode_return[k]), "episode_length": int(book.episode_length[k]),
            "large_share": float(book.episode_large[k] / book.episode_length[k]) if self.is_asym else None,
            "wall_s": state["wall_s"] + time.perf_counter() - self.clock})

    def tick(self, any_done: bool) -> None:
        state = self.state
        if any_done:
            recent = [rows[-1]["episode_return"] for rows in state["rows"] if rows]
            postfix = {"return": f"{np.mean(recent):.1f}"}
            if self.is_asym:
                postfix["large"] = f"{state['large_steps'].sum() / (self.K * state['step']):.2f}"
            self.bar.set_postfix(postfix, refresh=False)
        self.bar.update(1)

    def stop_clock(self) -> None:
        """Adds the time since the last stop to the training wall time."""
        self.state["wall_s"] += time.perf_counter() - self.clock

    def write(self, folders: list[Path]) -> None:
        for d, rows in zip(folders, self.state["rows"]):
            write_progress(d, rows)

    def checkpoint_written(self) -> None:
        self.clock = time.perf_counter()
        if self.quiet:
            state = self.state
            recent = [row["episode_return"] for rows in state["rows"] for row in rows[-3:]]
            large = state["large_steps"].sum() / (self.K * state["step"]) if self.is_asym else None
            print(checkpoint_line(self.plan.out_root, state["step"], self.plan.total_steps,
                                  state["wall_s"], recent, large), flush=True)

    def summary(self, k: int, request: TrainRequest, device, master: MasterGroup | None) -> dict:
        state, wall, total = self.state, self.state["wall_s"], self.plan.total_steps
        return {
            "steps": state["step"], "episodes": int(state["episodes"][k]),
            "total_steps": total, "fraction_of_budget": state["step"] / total,
            "wall_time_s": wall, "group_size": self.K,
            "steps_per_s": state["step"] / wall if wall else None,
            "steps_per_s_per_seed_cpu": self.K * state["step"] / wall if wall else None,
            "large_share": float(state["large_steps"][k] / state["step"]) if self.is_asym else None,
            # the member's master, on the authors' env-step schedule from its own first batch
            "master_updates": int(master.updates[k]) if master is not None else None,
            "master_target_syncs": int(master.target_syncs[k]) if master is not None else None,
            "threads": request.threads, "engine": "batched", "device": str(device),
            "provenance": provenance()}

    def close(self) -> None:
        self.bar.close()


class GroupCheckpoint:
    """The group's checkpoint: networks, optimizers, buffers, random streams, env states,
    counters and episodes in progress, in an explicit format number. Two files: the latest, and
    the previous one, kept until a newer one is written and verified (it loads); a damaged
    latest falls back to the previous one, and says so."""

    def __init__(self, folder: Path, device):
        self.path, self.previous = folder / GROUP_CHECKPOINT, folder / PREVIOUS_CHECKPOINT
        self.device = device
        self.step: int | None = None    # the step of the intact latest checkpoint, once known
        self.fell_back = False          # whether load() had to take the previous checkpoint

    def exists(self) -> bool:
        return self.path.exists() or self.previous.exists()

    def save(self, group: Group, book: MacroBookkeeping, log: ProgressLog) -> None:
        """Written whole to a temporary file and read back; only then does the latest become the
        previous one and the new file the latest (a kill at any point leaves one that loads).
        A failed write (a full disk) names the file and the intact checkpoint left."""
        payload = {"format": CHECKPOINT_FORMAT, **group.state(), "state": log.state, "live": book.live()}
        try:
            with atomic_path(self.path) as tmp:
                torch.save(payload, tmp)
                self._read(tmp)  # verified: a file that does not load never replaces a good one
                if self.path.exists():
                    os.replace(self.path, self.previous)
        except (OSError, RuntimeError) as exc:
            reason = getattr(exc, "strerror", None) or (
                "the file written is damaged: it does not load back" if isinstance(exc, RunError)
                else "it could not be written whole") + ": is the disk full?"
            kept = (f"the last intact checkpoint is {self.path} (step {self.step:,})"
                    if self.step is not None and self.path.exists() else "no checkpoint was written before")
            raise RunError(f"writing the checkpoint {self.path} at step {log.step:,} failed ({reason}); "
                           f"{kept}: free space and rerun the same command to resume") from None
        self.step = log.step

    def load(self) -> dict:
        try:
            saved = self._read(self.path)
        except RunError as latest:
            if not self.previous.exists() or (self.path.exists() and "earlier asymbench" in str(latest)):
                raise
            saved = self._read(self.previous)
            why = str(latest).split(": delete it")[0] if self.path.exists() else f"{self.path} is missing"
            print(f"asymbench: {why}: falling back to the previous checkpoint {self.previous} "
                  f"(step {saved['state']['step']:,})", file=sys.stderr, flush=True)
            self.fell_back = True
            return saved
        self.step = saved["state"]["step"]
        return saved

    def _read(self, path: Path) -> dict:
        try:
            saved = load_state(path, map_location=self.device)
        except Exception as exc:  # noqa: BLE001  (whatever a damaged file makes the unpickler raise)
            reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
            raise RunError(f"{path} is damaged ({reason}): delete it to restart from step 0") from None
        if not isinstance(saved, dict) or saved.get("format") != CHECKPOINT_FORMAT:
            raise RunError(f"{path} is a checkpoint of an earlier asymbench (format "
                           f"{saved.get('format', 1) if isinstance(saved, dict) else '?'}, this one "
                           f"reads {CHECKPOINT_FORMAT}): delete it to restart from step 0")
        return saved

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
        self.previous.unlink(missing_ok=True)


class GroupLock:
    """One writer per group folder: ``train.lock`` holds the pid, host and start time of the
    process training there. A second ``train`` refuses, naming the holder; a lock whose process
    is dead on this host is taken over, and that is said."""

    def __init__(self, folder: Path):
        self.path = folder / LOCK_FILE

    def __enter__(self) -> "GroupLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        mine = {"pid": os.getpid(), "host": socket.gethostname(),
                "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{LOCK_FILE}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(mine) + "\n")
            while True:
                try:
                    os.link(tmp, self.path)  # atomic, and fails where a lock exists
                    return self
                except FileExistsError:
                    pass
                holder = self._holder()
                if holder is None:
                    continue  # released meanwhile
                if holder.get("host") != mine["host"] or _alive(holder.get("pid")):
                    raise RunError(f"{self.path.parent} is being trained by pid {holder.get('pid')} on "
                                   f"{holder.get('host')} since {holder.get('started_utc')} ({self.path}); "
                                   "wait for it, or delete the lock if no such process runs")
                print(f"asymbench: {self.path}: taking over the lock of pid {holder.get('pid')} "
                      f"(started {holder.get('started_utc')}), which is no longer running on this host",
                      file=sys.stderr, flush=True)
                self.path.unlink(missing_ok=True)
        finally:
            os.remove(tmp)

    def _holder(self) -> dict | None:
        try:
            holder = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            holder = {}
        return holder if isinstance(holder, dict) else {}

    def __exit__(self, *exc) -> None:
        holder = self._holder()
        if holder is not None and holder.get("pid") == os.getpid():
            self.path.unlink(missing_ok=True)


def _alive(pid) -> bool:
    """Whether process ``pid`` runs on this host (one we may not signal runs too)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def train_group(request: TrainRequest, seeds: list[int], out_root: str | Path,
                dirs: list[Path] | None = None, device: str = "cpu", until: int | None = None,
                segment_start: int | None = None) -> list[dict]:
    """Trains (or resumes, or skips) every seed's run together: ``dirs`` (default
    ``out_root/seed<s>``); the group's checkpoint lives in ``out_root``.

    ``until``: end this segment at that env step, a milestone below the budget: every member's
    snapshot goes to ``out_root/milestones/<until>/seed<s>/`` and the checkpoint stays at that
    step for the next segment. Every schedule follows the full budget, so a snapshot is the
    full run observed at its milestone. ``segment_start``: the step the previous segment ended
    at; the checkpoint must stand there (or later, after a kill inside this segment)."""
    plan, reached = plan_group(request, seeds, out_root, dirs, until, segment_start)
    if reached is not None:
        return reached
    compiled = use_compiled(request.compile, device, plan.total_steps, _resumed_compiled(plan))
    runtime = {**runtime_record(request.compile, compiled, device, request.threads),
               "env_workers": min(request.env_workers, len(plan.seeds))}
    plan.configs = [{**c, "runtime": runtime} for c in plan.configs]
    with GroupLock(plan.out_root):
        if not GroupCheckpoint(plan.out_root, "cpu").exists():
            forget_finished_group(plan.out_root, plan.dirs)
        for d, c in zip(plan.dirs, plan.configs):
            write_json(d / CONFIG_FILE, c)
        return _train(request, plan, device, segment_start, compiled)


def _resumed_compiled(plan: GroupPlan) -> bool | None:
    """Whether the run resumed from the group's checkpoint ran compiled (config.json's runtime;
    a run recorded before the runtime was eager); None for a new run."""
    if not GroupCheckpoint(plan.out_root, "cpu").exists():
        return None
    return read_json(plan.dirs[0] / CONFIG_FILE).get("runtime", {}).get("compiled", False)


def _train(request: TrainRequest, plan: GroupPlan, device: str, segment_start: int | None,
           compiled: bool = False) -> list[dict]:
    """The group of ``train_group``, closed (its env workers ended) however training ends."""
    group = Group(request, plan.config, plan.seeds, device, compiled)
    try:
        return _cycle(request, plan, group, device, segment_start)
    finally:
        group.close()


def _cycle(request: TrainRequest, plan: GroupPlan, group: "Group", device: str,
           segment_start: int | None) -> list[dict]:
    """The env-step cycle of ``train_group``, from its set-up (or checkpoint) to its models."""
    checkpoint = GroupCheckpoint(plan.out_root, device)
    saved = checkpoint.load() if checkpoint.exists() else None
    if saved is not None:
        group.restore(saved)
        print(f"{plan.out_root}: resuming {group.K} seeds at step {saved['state']['step']:,} "
              f"of {plan.total_steps:,}")
    book = MacroBookkeeping(saved["live"]) if saved else MacroBookkeeping.start(group.first_obs)
    _check_segment(checkpoint.path, saved["state"]["step"] if saved else 0,
                   None if checkpoint.fell_back else segment_start, plan.stop)
    log = ProgressLog(request, plan, saved["state"] if saved else None)
    master, macro_len = group.master, plan.config["macro_len"]

    with stop_signals() as received:
        while log.step < plan.stop:
            t = log.step  # env steps taken so far (the authors' num_timesteps)
            # 1. Act: the masters pick a sub-policy where a macro starts; every member acts.
            if master is not None:
                book.decide(master, t)
            scaled = group.act(book.obs, book.choice, t)
            # 2. Step the K environments, and 3. store one buffer row per member.
            tr = group.step(scaled, t)
            group.store(book.obs, scaled, tr)
            log.count(book.choice)
            book.count(tr.reward, master is not None)
            # 4. Update: one SAC gradient step per policy; the masters store whole macros and
            #    learn on the env-step schedule.
            group.update_sacs(log.step, 1.0 - t / plan.total_steps)
            if master is not None:
                book.close_macros(master, tr, group.step_cost, macro_len)
                master.after_env_step(t)
            # 5. Episode ends: a learning-curve row, and the member's next episode.
            book.obs = tr.next_obs
            ended = np.flatnonzero(tr.done)
            for k, obs in zip(ended, group.reset(ended)):
                log.episode_end(k, book)
                book.new_episode(k, obs)
            log.tick(tr.done.any())
            # 6. Checkpoint: periodically, and on a stop signal (then exit).
            if log.step % 1000 == 0:
                group.check_finite(log.step)
            if received or (log.step % request.checkpoint_every == 0 and log.step < plan.total_steps):
                _save(checkpoint, group, book, log, plan)
                if received:
                    log.close()
                    raise Interrupted(plan.out_root, received[0], log.step)
                log.checkpoint_written()
    log.close()
    if plan.stop < plan.total_steps and log.step % request.checkpoint_every:
        _save(checkpoint, group, book, log, plan)   # the next segment starts from this step
    elif plan.stop == plan.total_steps:
        log.stop_clock()
    return _write_members(request, plan, group, log, checkpoint, device)


def _save(checkpoint: GroupCheckpoint, group: Group, book: MacroBookkeeping, log: ProgressLog,
          plan: GroupPlan) -> None:
    log.stop_clock()
    checkpoint.save(group, book, log)
    log.write(plan.dirs)


def _write_members(request: TrainRequest, plan: GroupPlan, group: Group, log: ProgressLog,
                   checkpoint: GroupCheckpoint, device) -> list[dict]:
    """Every member's deployed model, learning curve and summary (run.json at the budget,
    snapshot.json at a milestone below it), the summary written last."""
    summaries = []
    for k, (d, member_config) in enumerate(zip(plan.targets, plan.configs)):
        write_json(d / CONFIG_FILE, member_config)
        group.save_member(k, d)
        write_progress(d, log.state["rows"][k])
        summary = log.summary(k, request, device, group.master)
        write_json(d / plan.marker, summary)
        summaries.append(summary)
    K, step, wall = group.K, log.step, log.state["wall_s"]
    if plan.marker == FINISHED_FILE:
        record_finished_group(plan.out_root, plan.dirs, plan.configs, summaries)
        checkpoint.remove()
        print(f"{plan.out_root}: finished {K} seeds x {step} steps in {wall:.0f} s "
              f"({K * step / wall:.1f} env steps/s over the group)")
    else:
        print(f"{plan.out_root}: snapshot of {K} seeds at step {step:,} of {plan.total_steps:,} "
              f"in {plan.targets[0].parent}")
    return summaries
