"""``asymbench train``: one training loop for every method, readable top to bottom.

S-only, L-only and fit are the loop with one SAC policy and no master; the asymmetric agent is
the same loop with two SAC sub-policies sharing ONE replay buffer and a DQN master that picks
one of them every ``macro_len`` steps. Because the baselines and the sub-policies go through
the same code (acting, storing, one SAC gradient step per env step), the comparison is fair.

This is the reference engine (``engine: sb3``, one seed per process). It calls
stable-baselines3's ``SAC.train`` for the gradient steps and does the acting itself, because
SB3's ``learn`` cannot interleave two policies over one env. The master is
``asymbench.master.MasterGroup`` with one member, on the authors' schedule
(stable_baselines/deepq/dqn.py), which counts ENVIRONMENT steps: epsilon, the random warm-up,
the master's learning start, its gradient steps and its target syncs.
"""

from __future__ import annotations

import os
import pickle
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd
import torch
from stable_baselines3.common.utils import set_random_seed
from tqdm import tqdm

from asymbench import envstate
from asymbench.agents import SUB_POLICIES, load_sac, make_action_noise, make_sac
from asymbench.master import MasterGroup
from asymbench.networks import costs, fit_width, sac_actor_flops
from asymbench.runs import (CONFIG_FILE, FINISHED_FILE, PROGRESS_FILE, RunError, atomic_path,
                            load_finished_run, provenance, read_json, write_json)
from asymbench.seeding import run_streams
from asymbench.tasks import env_dims, get_task, make_env, observation_flattener

METHODS = ("s_only", "l_only", "fit", "asym")
ENGINES = ("sb3", "batched")  # sb3: this module, one seed per process; batched: asymbench.engine
PROGRESS_COLUMNS = ["step", "episode", "episode_return", "episode_length", "large_share", "wall_s"]
MASTER_CHECKPOINT = "master.pt"


@dataclass
class TrainRequest:
    """What the user asked for; ``resolve_config`` turns it into the full recorded config."""

    task: str
    method: str
    seed: int
    out: str | Path
    steps: int | None = None
    cost_weight: float | None = None
    width: int | None = None
    width_from: str | list[str] | None = None
    learning_starts: int | None = None
    master_learning_starts: int | None = None
    max_episode_steps: int | None = None
    checkpoint_every: int = 50_000
    threads: int = 1
    progress: bool = True
    registry: str | None = None
    timeouts: str | None = None           # overrides the registry's `timeouts`
    asym_action_noise: str | None = None  # overrides the registry's `asym_action_noise`
    engine: str = "sb3"  # "sb3" (this module, the reference) or "batched" (asymbench.engine)


def _widths(request: TrainRequest, task) -> dict[str, int]:
    if request.method == "s_only":
        return {"policy": task.small}
    if request.method == "l_only":
        return {"policy": task.large}
    if request.method == "asym":
        return {"small": task.small, "large": task.large}
    # fit: an explicit width, or the one whose FLOPs/Inf is closest to Ours' measured average.
    if (request.width is None) == (request.width_from is None):
        raise ValueError("method 'fit' needs exactly one of --width or --width-from")
    if request.width is not None:
        if request.width < 1:
            raise ValueError(f"--width must be a positive integer, got {request.width}")
        return {"policy": request.width}
    # One fit width for a group of seeds: the one matching Ours' mean Avg-FLOPs/Inf over seeds.
    paths = [request.width_from] if isinstance(request.width_from, str) else list(request.width_from)
    flops = []
    for path in paths:
        evaluation = read_json(path)
        if evaluation.get("task") != task.name or evaluation.get("method") != "asym":
            raise RunError(f"--width-from {path} is not an evaluation of an asym run "
                           f"on task '{task.name}'")
        flops.append(evaluation["flops_per_inf"])
    obs_dim, act_dim = env_dims(task)
    return {"policy": fit_width(float(np.mean(flops)), obs_dim, act_dim)}


def resolve_config(request: TrainRequest) -> dict:
    """The complete, JSON-serialisable description of a run: saved as config.json."""
    if request.method not in METHODS:
        raise ValueError(f"unknown method '{request.method}'; choose one of {', '.join(METHODS)}")
    if request.engine not in ENGINES:
        raise ValueError(f"unknown engine '{request.engine}'; choose one of {', '.join(ENGINES)}")
    task = get_task(request.task, request.registry)
    for name in ("steps", "learning_starts", "master_learning_starts", "max_episode_steps",
                 "checkpoint_every"):
        value = getattr(request, name)
        if value is not None and value < (0 if "learning_starts" in name else 1):
            raise ValueError(f"--{name.replace('_', '-')} must be positive, got {value}")
    cost_weight = task.cost_weight if request.cost_weight is None else request.cost_weight
    if cost_weight < 0:
        raise ValueError(f"lambda (--lam) must be >= 0, got {cost_weight}")
    sac = dict(task.sac)
    master = dict(task.master)
    overrides = {}
    if request.learning_starts is not None:
        sac["learning_starts"] = overrides["learning_starts"] = request.learning_starts
    if request.master_learning_starts is not None:
        master["learning_starts"] = overrides["master_learning_starts"] = request.master_learning_starts
    if request.max_episode_steps is not None:
        overrides["max_episode_steps"] = request.max_episode_steps
    named = {"timeouts": task.settings.get("timeouts", "terminal"),
             "asym_action_noise": task.settings.get("asym_action_noise", "dropped")}
    for name, choices in (("timeouts", ("terminal", "bootstrap")), ("asym_action_noise", ("dropped", "as_sac"))):
        value = getattr(request, name)
        if value is not None:
            if value not in choices:
                raise ValueError(f"--{name.replace('_', '-')} must be one of {', '.join(choices)}, got {value!r}")
            named[name] = overrides[name] = value
    is_asym = request.method == "asym"
    return {
        "task": task.name, "env_id": task.env_id, "method": request.method, "seed": request.seed,
        "total_steps": request.steps or task.total_steps,
        "paper_total_steps": task.total_steps,
        "cost_weight": cost_weight if is_asym else None,
        "macro_len": task.macro_len if is_asym else None,
        "widths": _widths(request, task),
        "sac": sac, "master": master if is_asym else None,
        "max_episode_steps": request.max_episode_steps or task.max_episode_steps,
        # Goal tasks relabel the sub-policies' shared buffer (HER); the master's is not relabelled.
        "her": task.her,
        "engine": request.engine,
        # A registry without these keys gets the authors' conventions (tasks.yaml's defaults).
        "timeouts": named["timeouts"],
        "asym_action_noise": named["asym_action_noise"] if is_asym else None,
        "overrides": overrides, "task_settings": task.settings,
    }


@dataclass
class LoopState:
    """Everything besides networks and buffers that a resumed run needs."""

    step: int = 0
    master_steps: int = 0  # macros stored in the master's buffer
    episodes: int = 0
    large_steps: int = 0  # env steps driven by the large sub-policy, whole run
    wall_s: float = 0.0   # training time summed over all process lifetimes
    rows: list = field(default_factory=list)
    rng_states: dict = field(default_factory=dict)
    action_noise: object = None
    env_state: dict | None = None   # the env as it was (asymbench.envstate), and the episode in
    episode: tuple | None = None    # progress: (obs, return, length, large steps, macro)


def _capture_rngs() -> dict:
    """The global random streams SB3 draws from (the env's are in its state, the master's in
    the master's)."""
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def _restore_rngs(states: dict) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])


def _save_checkpoint(out: Path, policies: dict, master: MasterGroup | None, state: LoopState) -> None:
    """Writes checkpoint/stepN/ completely, then points checkpoint/latest.json at it."""
    root = out / "checkpoint"
    final = root / f"step{state.step:010d}"
    staging = root / f".staging-step{state.step:010d}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name, sac in policies.items():
        sac.save(staging / f"{name}.zip")
    # One buffer object is shared by all sub-policies: saving it once keeps it shared on reload.
    next(iter(policies.values())).save_replay_buffer(staging / "replay.pkl")
    if master is not None:  # weights, optimizer, replay with priorities, its generator
        torch.save(master.state(), staging / MASTER_CHECKPOINT)
    with open(staging / "state.pkl", "wb") as f:
        pickle.dump(state, f)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(staging, final)
    write_json(root / "latest.json", {"step": state.step, "dir": final.name})
    for old in root.glob("step*"):
        if old != final:
            shutil.rmtree(old, ignore_errors=True)


def _load_checkpoint(out: Path, env, config: dict, obs_dim: int):
    latest = read_json(out / "checkpoint" / "latest.json")
    folder = out / "checkpoint" / latest["dir"]
    names = list(config["widths"])
    policies = {name: load_sac(folder / f"{name}.zip", env) for name in names}
    first = policies[names[0]]
    first.load_replay_buffer(folder / "replay.pkl")
    for sac in policies.values():
        sac.replay_buffer = first.replay_buffer
    master = None
    if config["method"] == "asym":
        master = _make_master(config, obs_dim)
        master.restore(torch.load(folder / MASTER_CHECKPOINT, weights_only=False))
    with open(folder / "state.pkl", "rb") as f:
        state = pickle.load(f)
    return policies, master, state


def _make_master(config: dict, obs_dim: int) -> MasterGroup:
    """A group of one: this run's master (its initial weights do not touch torch's RNG)."""
    return MasterGroup(config["master"], obs_dim, [config["seed"]], config["total_steps"])


def _build(config: dict, env):
    """Fresh SAC policies sharing one replay buffer, and (asym) the master."""
    seed, sac_settings = config["seed"], config["sac"]
    policies = {}
    for name, width in config["widths"].items():
        # Only the first policy allocates a full buffer; the others are given that one.
        # (A buffer never holds more than the run's steps, so a shorter run allocates less.)
        size = min(sac_settings["buffer_size"], config["total_steps"]) if not policies else 1
        policies[name] = make_sac(sac_settings, env, width, seed, buffer_size=size, her=config["her"])
    shared = next(iter(policies.values())).replay_buffer
    for sac in policies.values():
        sac.replay_buffer = shared
    master = (_make_master(config, _flat_space(env).shape[0])
              if config["method"] == "asym" else None)
    return policies, master


def _flat_space(env) -> gym.spaces.Box:
    """The master sees the flat observation, also where the sub-policies get a goal dict."""
    space = env.observation_space
    if not isinstance(space, gym.spaces.Dict):
        return space
    flat = gym.spaces.flatten_space(space)
    return gym.spaces.Box(flat.low.astype(np.float32), flat.high.astype(np.float32), dtype=np.float32)


def _batched(obs):
    """A single observation (array or goal dict) as the batch of one env that SB3 buffers take."""
    return {key: value[None] for key, value in obs.items()} if isinstance(obs, dict) else obs[None]


def _check_finite(policies: dict, master: MasterGroup | None, step: int) -> None:
    modules = [sac.policy for sac in policies.values()] + ([master.q_net] if master else [])
    for module in modules:
        for name, param in module.named_parameters():
            if not torch.isfinite(param).all():
                raise RunError(f"training diverged: non-finite values in {name} at step {step}")


def _step_costs(config: dict, obs_dim: int, act_dim: int) -> dict[str, float]:
    """lambda * c(w) per env step, with c from the sub-policies' FLOPs. Counting FLOPs builds
    throw-away networks, so it runs on a forked torch RNG: a resumed run's stream is untouched."""
    with torch.random.fork_rng():
        flops = {name: sac_actor_flops(obs_dim, act_dim, width)
                 for name, width in config["widths"].items()}
    cost = costs(flops["small"], flops["large"])
    return {name: config["cost_weight"] * cost[name] for name in SUB_POLICIES}


def train(request: TrainRequest) -> dict:
    """Trains (or resumes, or skips if finished) one run; returns its run.json summary."""
    config = resolve_config(request)
    if config["engine"] != "sb3":
        raise ValueError("asymbench.training.train is the sb3 engine; the batched engine is "
                         "asymbench.engine.train_group")
    out = Path(request.out)
    if (out / FINISHED_FILE).exists():
        finished_config, summary = load_finished_run(out)
        if finished_config != config:
            raise RunError(f"{out} holds a finished run with a different config; "
                           "choose another --out or delete it")
        print(f"{out}: already finished ({summary['steps']} steps), nothing to do")
        return summary
    resuming = (out / "checkpoint" / "latest.json").exists()
    if resuming and read_json(out / CONFIG_FILE) != config:
        raise RunError(f"{out} holds a checkpoint of a different config; "
                       "resume with the same arguments, or choose another --out")
    write_json(out / CONFIG_FILE, config)

    torch.set_num_threads(request.threads)
    seed, total_steps = config["seed"], config["total_steps"]
    set_random_seed(seed)
    task = get_task(config["task"], request.registry)
    env = make_env(task, max_episode_steps=config["max_episode_steps"], flatten=not config["her"])
    act_dim = env.action_space.shape[0]
    obs_dim = _flat_space(env).shape[0]
    flat = observation_flattener(env.observation_space)
    is_asym = config["method"] == "asym"
    sac_settings, master_settings = config["sac"], config["master"]
    step_cost = _step_costs(config, obs_dim, act_dim) if is_asym else None
    # Exploration noise: always the SAC's for a single SAC; for the sub-policies as the registry's
    # asym_action_noise says (the authors' script dropped it).
    noise_settings = (sac_settings["action_noise"]
                      if not is_asym or config["asym_action_noise"] == "as_sac" else None)
    # Uniform random actions before learning starts: the authors' asymmetric agent gates them on
    # the MASTER's learning_starts (dqn.py), a single SAC on its own (as stable-baselines3 does).
    random_until = master_settings["learning_starts"] if is_asym else sac_settings["learning_starts"]
    terminal_timeouts = config["timeouts"] == "terminal"

    if resuming:  # the run continues the episode it was in
        policies, master, state = _load_checkpoint(out, env, config, obs_dim)
        env.reset()
        envstate.restore(env, state.env_state)
        _restore_rngs(state.rng_states)
        action_noise = state.action_noise
        print(f"{out}: resuming at step {state.step} of {total_steps}")
    else:
        policies, master = _build(config, env)
        state = LoopState()
        action_noise = make_action_noise(noise_settings, act_dim)
        # Seeded once, from a range evaluation never uses; then the env's own generator runs on.
        streams = run_streams(seed)
        obs, _ = env.reset(seed=streams.env_seed)
        env.action_space.seed(streams.action_space_seed)
    buffer = next(iter(policies.values())).replay_buffer

    episode_return, episode_length, episode_large = 0.0, 0, 0
    macro = None  # (observation at macro start, choice index, master reward so far, length)
    if resuming:
        obs, episode_return, episode_length, episode_large, macro = state.episode
    recent_returns = [row["episode_return"] for row in state.rows[-10:]]
    segment_start = time.perf_counter()
    bar = tqdm(total=total_steps, initial=state.step, disable=not request.progress,
               desc=f"{config['task']}/{config['method']}/seed{seed}", unit="step",
               mininterval=2.0, smoothing=0.05)

    while state.step < total_steps:
        progress_remaining = 1.0 - state.step / total_steps

        # 1. The master picks a sub-policy at the start of each macro (epsilon-greedy, epsilon
        #    at the env steps taken so far).
        if master is not None and macro is None:
            choice = int(master.choose(flat(obs)[None], np.array([True]), t=state.step)[0])
            macro = [flat(obs), choice, 0.0, 0]
        name = SUB_POLICIES[macro[1]] if master is not None else "policy"
        sac = policies[name]

        # 2. The chosen policy acts: uniform random during warm-up, else it samples (plus the
        #    exploration noise, where there is one: dqn.py adds it to the policy's action only).
        if state.step < random_until:
            buffer_action = sac.policy.scale_action(env.action_space.sample())
        else:
            buffer_action = sac.policy.scale_action(sac.predict(obs, deterministic=False)[0])
            if action_noise is not None:
                buffer_action = np.clip(buffer_action + action_noise(), -1.0, 1.0)
        action = sac.policy.unscale_action(buffer_action)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        done = terminated or truncated
        # Stored as terminal: every done (the authors' convention), or only true terminations.
        stored_done = done if terminal_timeouts else terminated
        timeout = [{"TimeLimit.truncated": (not terminal_timeouts) and truncated and not terminated}]

        # 3. One shared buffer: every transition serves both sub-policies (off-policy SAC).
        buffer.add(_batched(obs), _batched(next_obs), buffer_action[None], np.array([reward]),
                   np.array([done]), timeout)
        state.step += 1
        episode_return += reward
        episode_length += 1
        if name == "large":
            episode_large += 1
            state.large_steps += 1

        # 4. One SAC gradient step per env step for each policy, from the shared buffer.
        if state.step > sac_settings["learning_starts"] and buffer.size() >= sac_settings["batch_size"]:
            for policy in policies.values():
                policy._current_progress_remaining = progress_remaining
                policy.train(gradient_steps=1, batch_size=sac_settings["batch_size"])

        # 5. The master stores whole macros (reward sum minus lambda * n * c(w)) at a macro's
        #    or an episode's end, and learns on the env-step schedule: the step just taken was
        #    number state.step - 1 (the authors' num_timesteps).
        if master is not None:
            macro[2] += reward - step_cost[name]
            macro[3] += 1
            if macro[3] == config["macro_len"] or done:
                master.store(0, macro[0], macro[1], macro[2], flat(next_obs), stored_done)
                state.master_steps += 1
                macro = None
            master.after_env_step(state.step - 1)

        obs = next_obs
        if done:
            if not np.isfinite(episode_return):
                raise RunError(f"training diverged: non-finite episode return at step {state.step}")
            state.episodes += 1
            state.rows.append({
                "step": state.step, "episode": state.episodes, "episode_return": episode_return,
                "episode_length": episode_length,
                "large_share": episode_large / episode_length if master is not None else None,
                "wall_s": state.wall_s + time.perf_counter() - segment_start})
            recent_returns = (recent_returns + [episode_return])[-10:]
            obs, _ = env.reset()
            episode_return, episode_length, episode_large = 0.0, 0, 0
            macro = None
            if action_noise is not None:
                action_noise.reset()
            postfix = {"return": f"{np.mean(recent_returns):.1f}"}
            if master is not None:
                postfix["large"] = f"{state.large_steps / state.step:.2f}"
            bar.set_postfix(postfix, refresh=False)
        bar.update(1)

        if state.step % 1000 == 0:
            _check_finite(policies, master, state.step)
        if state.step % request.checkpoint_every == 0 and state.step < total_steps:
            state.wall_s += time.perf_counter() - segment_start
            segment_start = time.perf_counter()
            state.rng_states, state.action_noise = _capture_rngs(), action_noise
            state.env_state = envstate.capture(env)
            state.episode = (obs, episode_return, episode_length, episode_large, macro)
            _save_checkpoint(out, policies, master, state)
            _write_progress(out, state.rows)
            if not request.progress:
                print(checkpoint_line(out, state.step, total_steps, state.wall_s, recent_returns,
                                      state.large_steps / state.step if master is not None else None),
                      flush=True)
    bar.close()

    state.wall_s += time.perf_counter() - segment_start
    for name, model in policies.items():
        _save_model(model, out / "model" / f"{name}.zip")
    if master is not None:
        with atomic_path(out / "model" / "master.pt") as tmp:
            master.save_member(0, tmp)
    _write_progress(out, state.rows)
    summary = {
        "steps": state.step, "episodes": state.episodes, "wall_time_s": state.wall_s,
        "steps_per_s": state.step / state.wall_s if state.wall_s else None,
        "large_share": state.large_steps / state.step if master is not None else None,
        "master_updates": master.updates if master is not None else None,
        "master_target_syncs": master.target_syncs if master is not None else None,
        "threads": request.threads, "engine": "sb3", "provenance": provenance(),
    }
    write_json(out / FINISHED_FILE, summary)
    shutil.rmtree(out / "checkpoint", ignore_errors=True)
    env.close()
    print(f"{out}: finished {state.step} steps in {state.wall_s:.0f} s "
          f"({summary['steps_per_s']:.1f} steps/s)")
    return summary


def _save_model(model, path: Path) -> None:
    """SB3's save appends '.zip' to names without it, so stage as '<name>.partial.zip'."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(path.stem + ".partial.zip")
    model.save(staging)
    os.replace(staging, path)


def _write_progress(out: Path, rows: list[dict]) -> None:
    with atomic_path(out / PROGRESS_FILE) as tmp:
        pd.DataFrame(rows, columns=PROGRESS_COLUMNS).to_csv(tmp, index=False)


def checkpoint_line(where, step: int, total: int, wall_s: float, recent_returns: list[float],
                    large_share: float | None) -> str:
    """One log line per checkpoint, for runs without a progress bar (the pipeline's ``--quiet``
    jobs), so that a long job's log shows where it is."""
    parts = [f"{where}: checkpoint at step {step:,} of {total:,} ({100 * step / total:.0f}%)",
             f"{step / wall_s:.1f} env steps/s" if wall_s else None,
             f"mean return of recent episodes {np.mean(recent_returns):.1f}" if recent_returns else None,
             f"large share {large_share:.2f}" if large_share is not None else None]
    return ", ".join(part for part in parts if part)
