"""BC and GAIL students distilled from a trained L-only SAC teacher (the paper's BC / GAIL rows).

The paper's protocol: the teacher is the trained L-only SAC policy; the expert data are 25
trajectories of 50 state-action pairs each; the student has the width of the fit SAC baseline,
i.e. the width whose FLOPs/Inf is closest to the asymmetric agent's Avg-FLOPs/Inf.

Both students are the same network: a stable-baselines3 ``ActorCriticPolicy`` with a policy MLP
of two hidden layers of width W (what is deployed: ``mlp_extractor.policy_net`` + ``action_net``,
the Gaussian's mean) and a value MLP that is never deployed. BC trains it by maximum likelihood
on the expert pairs (``imitation.algorithms.bc.BC``); GAIL trains it as the policy of a PPO
generator against a ``BasicRewardNet`` discriminator (``imitation.algorithms.adversarial.gail``).

imitation 1.0.1 runs here on gymnasium 1.4 / stable-baselines3 2.9 (installed with --no-deps).
The gaps it has on that set, and how this module handles them, are listed at
``IMITATION_WORKAROUNDS`` below.
"""

from __future__ import annotations

import csv
import io
import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from stable_baselines3.common.vec_env import VecEnvWrapper
from torch import nn

from asymbench.runs import (CONFIG_FILE, FINISHED_FILE, PROGRESS_FILE, RunError, atomic_path,
                            load_finished_run, provenance, read_json, write_json)
from asymbench.seeding import check_episode_seeds
from asymbench.tasks import REGISTRY_VERSION, Task, make_env, task_from_config

METHODS = ("bc", "gail")
TEACHER_METHODS = ("l_only",)
EXPERT_FORMAT = 1
STUDENT_FILE = "student.zip"
TEACHER_FILE = "policy.zip"
PROGRESS_COLUMNS = ("step", "episode", "episode_return", "episode_length", "large_share", "wall_s")

# [ours] The student network. tanh is stable-baselines3's (and stable-baselines 2's, which the
# authors used for their BC / GAIL students) default for ActorCriticPolicy; FLOPs do not depend on
# it (the paper's convention counts weight multiply-accumulates only). The value MLP is PPO's
# default size; it is trained by GAIL's generator and unused by BC, and is never deployed.
VALUE_NET = [64, 64]
ACTIVATION = "tanh"

# [ours] imitation's BC defaults (Adam lr 1e-3, batch 32, entropy weight 1e-3, no L2).
BC_SETTINGS = {"batch_size": 32, "learning_rate": 1.0e-3, "ent_weight": 1.0e-3, "l2_weight": 0.0}

# [ours] The PPO generator: imitation's documented GAIL example (batch 64, lr 4e-4, 5 epochs,
# no entropy bonus) with the paper's gamma 0.99, and 8 envs x 256 steps = 2,048 env steps per
# round, so a 100k budget gives ~48 generator/discriminator rounds instead of 6.
PPO_SETTINGS = {"n_envs": 8, "n_steps": 256, "batch_size": 64, "n_epochs": 5,
                "learning_rate": 4.0e-4, "gamma": 0.99, "gae_lambda": 0.95, "ent_coef": 0.0,
                "clip_range": 0.2}
GAIL_ROUND_STEPS = PPO_SETTINGS["n_envs"] * PPO_SETTINGS["n_steps"]
# [ours] imitation's documented GAIL example: 8 discriminator updates per round on batches of
# (up to) 1,024 expert and 1,024 generator pairs, a 512-pair generator replay buffer, and a
# BasicRewardNet with a running normalisation of its inputs.
GAIL_SETTINGS = {"demo_batch_size": 1024, "n_disc_updates_per_round": 8,
                 "gen_replay_buffer_capacity": 512, "disc_learning_rate": 1.0e-3,
                 "reward_net": "BasicRewardNet(state, action), hidden [32, 32], RunningNorm inputs",
                 "allow_variable_horizon": True}

IMITATION_WORKAROUNDS = (
    "imitation 1.0.1 pins gymnasium~=0.29 / stable-baselines3~=2.2.1; it is installed with "
    "--no-deps on gymnasium 1.4 / stable-baselines3 2.9.2 and only its BC, GAIL, reward nets, "
    "Trajectory types and logger are used.",
    "imitation.data.serialize needs HuggingFace `datasets` (not installed): expert data are "
    "stored in asymbench's own .npz format (EXPERT_FORMAT) and rebuilt as imitation "
    "TrajectoryWithRew objects on load.",
    "GAIL refuses variable-length episodes unless allow_variable_horizon=True; the paper's tasks "
    "end early on success (MountainCarContinuous) or failure (Ant), so it is set, as imitation's "
    "own examples do.",
    "AdversarialTrainer.train() wraps its rounds in an unconditional tqdm bar and drops the "
    "discriminator statistics; asymbench runs the same round loop (train_gen, then "
    "n_disc_updates_per_round x train_disc under networks.training) to print one progress line "
    "per round with them.",
    "imitation's default logger writes to a temporary folder and to stdout; a csv-only logger "
    "writing into RUN/imitation_log/ is passed instead.",
    "imitation's BC logger calls float() on tensors that require grad, which torch 2.13 warns "
    "about on every batch: that one warning is filtered during BC training.",
)


class ExpertDataError(ValueError):
    """An expert data file is missing, empty, malformed, or of another task than asked for."""


# ----------------------------------------------------------------------------- teacher
def load_teacher(teacher_dir: str | Path, registry: str | Path | None = None):
    """(config, task, deployed actor) of a finished L-only run; RunError names what is wrong.

    The deployed actor is the teacher's deterministic action on the flat observation, also
    for a goal task whose SAC was trained on the goal dict with hindsight relabelling.
    """
    from asymbench.agents import DeployedActor, load_sac

    teacher_dir = Path(teacher_dir)
    config, _ = load_finished_run(teacher_dir, methods=TEACHER_METHODS)
    if "task" not in config:
        raise RunError(f"teacher run in {teacher_dir}: {CONFIG_FILE} names no task")
    # The run's own task settings (config.json), so a teacher of a user-registry task works too.
    task = task_from_config(config, registry, source=teacher_dir / CONFIG_FILE)
    path = teacher_dir / "model" / TEACHER_FILE
    if not path.exists():
        raise RunError(f"teacher run in {teacher_dir} has no deployed policy ({path} is missing)")
    try:
        # SB3 reloads a hindsight-relabelling SAC only with its goal env at hand.
        model = load_sac(path, make_env(task, flatten=False) if config.get("her") else None)
    except Exception as exc:  # a corrupt zip raises zipfile / pickle / torch errors
        raise RunError(f"cannot load the teacher policy {path}: {exc}") from exc
    return config, task, DeployedActor.from_sac(model)


def _teacher_max_episode_steps(config: dict) -> int | None:
    """The episode limit the teacher trained with: the resolved top-level value that
    ``asymbench train`` writes, else its override (None: the environment's own limit)."""
    return config.get("max_episode_steps") or (config.get("overrides") or {}).get("max_episode_steps")


def _env_dims(env) -> tuple[int, int]:
    return int(np.prod(env.observation_space.shape)), int(np.prod(env.action_space.shape))


# ----------------------------------------------------------------------------- expert data
@dataclass
class ExpertData:
    """Expert trajectories (imitation ``TrajectoryWithRew``) and what they were made from."""

    path: Path
    trajectories: list
    meta: dict = field(default_factory=dict)

    @property
    def task(self) -> str:
        return self.meta["task"]

    @property
    def obs_dim(self) -> int:
        return int(self.meta["obs_dim"])

    @property
    def act_dim(self) -> int:
        return int(self.meta["act_dim"])

    @property
    def n_pairs(self) -> int:
        return int(sum(len(t) for t in self.trajectories))

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """All (observation, action) pairs stacked: shapes (N, obs_dim), (N, act_dim)."""
        obs = np.concatenate([t.obs[:-1] for t in self.trajectories]).reshape(-1, self.obs_dim)
        acts = np.concatenate([t.acts for t in self.trajectories]).reshape(-1, self.act_dim)
        return obs, acts


EXPERT_PAIRS = ("first", "evenly")


def evenly_spaced_steps(episode_length: int, pairs: int) -> list[int]:
    """``pairs`` step indices evenly spaced over an episode of ``episode_length`` steps, first
    and last step included (every step when the episode is shorter)."""
    if episode_length <= pairs:
        return list(range(episode_length))
    return np.round(np.linspace(0, episode_length - 1, pairs)).astype(int).tolist()


def _teacher_episode(env, teacher, seed: int, length: int | None):
    """One deterministic episode of the teacher reset with ``seed``, cut after ``length`` steps
    (``None``: run to its end): observations (one more than actions), actions, rewards, and
    whether the env terminated it."""
    act_dim = _env_dims(env)[1]
    obs, _ = env.reset(seed=seed)
    observations, actions, rewards = [obs], [], []
    while length is None or len(actions) < length:
        with torch.no_grad():
            action = teacher(torch.as_tensor(obs, dtype=torch.float32)[None])[0].numpy()
        obs, reward, terminated, truncated, _ = env.step(action)
        observations.append(obs)
        actions.append(np.asarray(action, dtype=np.float32).reshape(act_dim))
        rewards.append(float(reward))
        if terminated or truncated:
            return observations, actions, rewards, bool(terminated)
    return observations, actions, rewards, False


def make_expert_data(teacher_dir: str | Path, out_path: str | Path,
                     trajectories: int | None = 25, length: int | None = 50, seed: int = 0,
                     max_episode_steps: int | None = None,
                     registry: str | Path | None = None, pairs: str | None = None) -> ExpertData:
    """Rolls the teacher out deterministically (its mean action) over ``trajectories``
    episodes (episode i is reset with seed ``seed + i``) and saves ``length`` state-action
    pairs of each to ``out_path``.

    ``pairs`` (default: the registry's ``distill.expert_pairs``) says which:

    * ``first``: the episode's first ``length`` steps, one trajectory per episode. An episode
      that ends before ``length`` steps is kept whole (and marked terminal if the env
      terminated it). On a 1000-step task these are the first 50 steps only (the start, never
      the steady gait).
    * ``evenly``: the whole episode is run and ``length`` steps evenly spaced over it are kept
      (``evenly_spaced_steps``: the first and the last step included). Each kept pair is stored
      as a one-step trajectory (its observation, action, reward and true next observation), so
      the data hold true transitions; ``meta["kept_steps"]`` lists the steps per episode.

    ``None`` for ``trajectories`` / ``length`` takes the registry's ``distill`` setting (the
    paper's 25 x 50). ``max_episode_steps`` defaults to the teacher run's own override. Episode
    seeds must lie in [0, 2**31), as evaluation seeds do (training's are [2**31, 2**32)).
    """
    from imitation.data.types import TrajectoryWithRew

    config, task, teacher = load_teacher(teacher_dir, registry)
    if trajectories is None:
        trajectories = task.distill["expert_trajectories"]
    if length is None:
        length = task.distill["expert_length"]
    if pairs is None:
        pairs = task.distill.get("expert_pairs", "first")
    if pairs not in EXPERT_PAIRS:
        raise ValueError(f"--pairs: got {pairs!r}; expected one of {', '.join(EXPERT_PAIRS)}")
    if trajectories < 1 or length < 1:
        raise ValueError(f"need at least one trajectory of at least one step, got "
                         f"trajectories={trajectories}, length={length}")
    check_episode_seeds(seed, trajectories)
    limit = max_episode_steps or _teacher_max_episode_steps(config)
    env = make_env(task, seed=seed, max_episode_steps=limit)
    obs_dim, act_dim = _env_dims(env)

    def trajectory(observations, actions, rewards, terminal):
        return TrajectoryWithRew(
            obs=np.asarray(observations, dtype=np.float32).reshape(-1, obs_dim),
            acts=np.asarray(actions, dtype=np.float32).reshape(-1, act_dim), infos=None,
            terminal=terminal, rews=np.asarray(rewards, dtype=np.float32))

    trajs, returns, episode_returns, kept_steps = [], [], [], []
    for i in range(trajectories):
        observations, actions, rewards, terminal = _teacher_episode(
            env, teacher, seed + i, None if pairs == "evenly" else length)
        if pairs == "first":
            trajs.append(trajectory(observations, actions, rewards, terminal))
            returns.append(float(np.sum(rewards)))
            continue
        steps = evenly_spaced_steps(len(actions), length)
        for t in steps:
            last = t == len(actions) - 1
            trajs.append(trajectory(observations[t:t + 2], actions[t:t + 1], rewards[t:t + 1],
                                    terminal and last))
        kept_steps.append(steps)
        returns.append(float(np.sum([rewards[t] for t in steps])))
        episode_returns.append(float(np.sum(rewards)))
    env.close()
    meta = {"format": EXPERT_FORMAT, "task": task.name, "env_id": task.env_id,
            "obs_dim": obs_dim, "act_dim": act_dim, "teacher": str(Path(teacher_dir)),
            "teacher_seed": config.get("seed"), "seed": seed, "trajectories": trajectories,
            "length": length, "pairs": pairs, "max_episode_steps": limit,
            "mean_snippet_return": float(np.mean(returns))}
    if pairs == "evenly":
        meta.update(kept_steps=kept_steps, mean_episode_return=float(np.mean(episode_returns)))
    save_expert_data(out_path, trajs, meta)
    return ExpertData(Path(out_path), trajs, meta)


def save_expert_data(path: str | Path, trajectories: list, meta: dict) -> None:
    """Writes trajectories as one .npz (concatenated arrays + per-trajectory lengths), atomically."""
    arrays = {
        "obs": np.concatenate([t.obs for t in trajectories]).astype(np.float32),
        "acts": np.concatenate([t.acts for t in trajectories]).astype(np.float32),
        "rews": np.concatenate([t.rews for t in trajectories]).astype(np.float32),
        "lengths": np.asarray([len(t) for t in trajectories], dtype=np.int64),
        "terminal": np.asarray([bool(t.terminal) for t in trajectories]),
        "meta": np.asarray(json.dumps(meta, sort_keys=True)),
    }
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)  # a file object: np.savez would append ".npz" to a name


def load_expert_data(path: str | Path, task: str | None = None, obs_dim: int | None = None,
                     act_dim: int | None = None) -> ExpertData:
    """Loads and checks an expert file; raises ExpertDataError naming the file and the problem."""
    from imitation.data.types import TrajectoryWithRew

    path = Path(path)

    def fail(problem: str) -> ExpertDataError:
        return ExpertDataError(f"expert data {path}: {problem}")

    if not path.is_file():
        raise fail("file does not exist (make it with `asymbench expert`)")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except Exception as exc:  # zipfile.BadZipFile, ValueError, OSError, EOFError ...
        raise fail(f"not a readable .npz file ({type(exc).__name__}: {exc})") from exc
    missing = [k for k in ("obs", "acts", "rews", "lengths", "terminal", "meta") if k not in arrays]
    if missing:
        raise fail(f"missing arrays {missing}; not written by `asymbench expert`")
    try:
        meta = json.loads(str(arrays["meta"]))
    except json.JSONDecodeError as exc:
        raise fail(f"corrupt metadata: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("format") != EXPERT_FORMAT:
        raise fail(f"unknown format {meta.get('format') if isinstance(meta, dict) else meta!r} "
                   f"(expected {EXPERT_FORMAT})")
    for key in ("task", "obs_dim", "act_dim"):
        if key not in meta:
            raise fail(f"metadata has no '{key}'")
    if task is not None and meta["task"] != task:
        raise fail(f"holds task '{meta['task']}' demonstrations, not '{task}'")
    d_obs, d_act = int(meta["obs_dim"]), int(meta["act_dim"])
    if obs_dim is not None and d_obs != obs_dim:
        raise fail(f"observations have {d_obs} dims, the environment has {obs_dim}")
    if act_dim is not None and d_act != act_dim:
        raise fail(f"actions have {d_act} dims, the environment has {act_dim}")
    obs, acts, rews = arrays["obs"], arrays["acts"], arrays["rews"]
    lengths, terminal = arrays["lengths"], arrays["terminal"]
    if lengths.ndim != 1 or lengths.size == 0 or np.any(lengths < 1):
        raise fail(f"empty: no trajectories, or a trajectory without steps (lengths {lengths})")
    n_pairs, n_traj = int(lengths.sum()), int(lengths.size)
    expected = {"obs": (n_pairs + n_traj, d_obs), "acts": (n_pairs, d_act), "rews": (n_pairs,),
                "terminal": (n_traj,)}
    for key, shape in expected.items():
        if arrays[key].shape != shape:
            raise fail(f"'{key}' has shape {arrays[key].shape}, expected {shape} "
                       f"({n_traj} trajectories, {n_pairs} pairs, obs {d_obs}, act {d_act})")
    if not (np.all(np.isfinite(obs)) and np.all(np.isfinite(acts))):
        raise fail("observations or actions hold NaN / inf")
    trajs, o, a = [], 0, 0
    for n, term in zip(lengths.tolist(), terminal.tolist()):
        trajs.append(TrajectoryWithRew(obs=obs[o:o + n + 1], acts=acts[a:a + n], infos=None,
                                       terminal=bool(term), rews=rews[a:a + n]))
        o, a = o + n + 1, a + n
    return ExpertData(path, trajs, meta)


# ----------------------------------------------------------------------------- student
def student_policy_kwargs(width: int) -> dict[str, Any]:
    """The student ActorCriticPolicy's architecture (BC's policy and GAIL's PPO generator)."""
    return {"net_arch": {"pi": [int(width)] * 2, "vf": list(VALUE_NET)},
            "activation_fn": {"tanh": nn.Tanh, "relu": nn.ReLU}[ACTIVATION]}


def make_student_policy(observation_space, action_space, width: int):
    from stable_baselines3.common.policies import ActorCriticPolicy
    from stable_baselines3.common.utils import ConstantSchedule

    # BC builds its own optimiser; the policy's (from lr_schedule) is never stepped.
    return ActorCriticPolicy(observation_space, action_space,
                             lr_schedule=ConstantSchedule(BC_SETTINGS["learning_rate"]),
                             **student_policy_kwargs(width))


def load_student(run_dir: str | Path):
    """The trained student ``ActorCriticPolicy`` of a finished bc / gail run (on CPU)."""
    from stable_baselines3.common.policies import ActorCriticPolicy

    run_dir = Path(run_dir)
    load_finished_run(run_dir, methods=METHODS)
    path = run_dir / "model" / STUDENT_FILE
    if not path.exists():
        raise RunError(f"student run in {run_dir} has no deployed policy ({path} is missing)")
    policy = ActorCriticPolicy.load(str(path), device="cpu")
    policy.set_training_mode(False)
    return policy


def student_deployed_module(policy) -> nn.Module:
    """What runs at deployment: the policy MLP and the mean head (obs -> deterministic action,
    before clipping to the action bounds). Count FLOPs with
    ``networks.deployed_flops(module, obs_dim, two_head_actor=False)``."""
    if not isinstance(policy.features_extractor, nn.Flatten) and \
            any(True for _ in policy.features_extractor.parameters()):
        raise ValueError("student has a learned features extractor; it would be deployed too")
    return nn.Sequential(policy.mlp_extractor.policy_net, policy.action_net)


def resolve_width(task: Task, obs_dim: int, act_dim: int, width: int | None = None,
                  width_from: str | Path | list | tuple | None = None) -> tuple[int, dict]:
    """The student width: ``width`` as given, or the fit width for the mean Avg-FLOPs/Inf of
    one or more asym evaluations (the pipeline passes every seed's, so fit, BC and GAIL share
    one width per task, the one ``asymbench train --method fit --width-from`` computes from
    the same files). Returns (width, how it was chosen)."""
    from asymbench.networks import fit_width

    if (width is None) == (width_from is None):
        raise ValueError("give exactly one of --width W and --width-from ASYM_EVAL.json")
    if width is not None:
        if int(width) < 1:
            raise ValueError(f"--width must be a positive integer, got {width}")
        return int(width), {"width_source": "given"}
    paths = [width_from] if isinstance(width_from, (str, Path)) else list(width_from)
    if not paths:
        raise ValueError("--width-from: no evaluation files")
    targets = []
    for path in paths:
        evaluation = read_json(path)
        if not isinstance(evaluation, dict):
            raise ValueError(f"{path}: not an evaluation JSON")
        if evaluation.get("method") != "asym":
            raise ValueError(f"{path}: an evaluation of a '{evaluation.get('method')}' run; "
                             "--width-from needs the asymmetric agent's (method asym)")
        if evaluation.get("task") != task.name:
            raise ValueError(f"{path}: evaluation of task '{evaluation.get('task')}', "
                             f"the teacher is of task '{task.name}'")
        target = evaluation.get("flops_per_inf")
        if (isinstance(target, bool) or not isinstance(target, (int, float))
                or not np.isfinite(target) or target <= 0):
            raise ValueError(f"{path}: 'flops_per_inf' must be a positive number, got {target!r}")
        targets.append(float(target))
    # The same arithmetic as the fit baseline's width (training.widths): the mean, then fit_width.
    mean = float(np.mean(targets))
    return fit_width(mean, obs_dim, act_dim), {
        "width_source": [str(p) for p in paths] if len(paths) > 1 else str(paths[0]),
        "target_flops_per_inf": mean, "target_flops_per_inf_each": targets}


# ----------------------------------------------------------------------------- training
def _imitation_logger(folder: Path):
    from imitation.util import logger as imit_logger

    return imit_logger.configure(folder=folder, format_strs=["csv"])


def _train_bc(expert: ExpertData, env, width: int, epochs: int, seed: int, out_dir: Path,
              log: Callable[[str], None]) -> tuple[Any, dict]:
    from imitation.algorithms import bc

    policy = make_student_policy(env.observation_space, env.action_space, width)
    batch_size = min(BC_SETTINGS["batch_size"], expert.n_pairs)
    trainer = bc.BC(observation_space=env.observation_space, action_space=env.action_space,
                    rng=np.random.default_rng(seed), policy=policy,
                    demonstrations=expert.trajectories, batch_size=batch_size,
                    optimizer_kwargs={"lr": BC_SETTINGS["learning_rate"]},
                    ent_weight=BC_SETTINGS["ent_weight"], l2_weight=BC_SETTINGS["l2_weight"],
                    device="cpu", custom_logger=_imitation_logger(out_dir / "imitation_log"))
    obs, acts = expert.arrays()
    obs_t, acts_t = torch.as_tensor(obs), torch.as_tensor(acts)
    curve: list[dict] = []

    def measure() -> dict:
        with torch.no_grad():
            metrics = trainer.loss_calculator(trainer.policy, obs_t, acts_t)
            mean = trainer.policy.get_distribution(obs_t).distribution.mean
            mse = float(torch.mean((mean - acts_t) ** 2))
        return {"epoch": len(curve), "loss": float(metrics.loss),
                "neglogp": float(metrics.neglogp), "action_mse": mse}

    curve.append(measure())
    report_every = max(1, epochs // 10)

    def on_epoch_end() -> None:
        curve.append(measure())
        if curve[-1]["epoch"] % report_every == 0 or curve[-1]["epoch"] == epochs:
            c = curve[-1]
            log(f"bc epoch {c['epoch']}/{epochs}: loss {c['loss']:.4f}, "
                f"action MSE on expert pairs {c['action_mse']:.5f}")

    with warnings.catch_warnings():
        # imitation 1.0.1's BCLogger calls float() on loss tensors that still require grad;
        # torch >= 2.x warns about it once per batch. Harmless (logging only): silenced here.
        warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad=True")
        trainer.train(n_epochs=epochs, on_epoch_end=on_epoch_end, progress_bar=False,
                      log_interval=10**9)
    n_batches = epochs * (expert.n_pairs // batch_size)
    return trainer.policy, {"epochs": epochs, "gradient_steps": n_batches,
                            "batch_size": batch_size, "curve": curve}


class _EpisodeRecorder(VecEnvWrapper):
    """A VecEnv wrapper (below GAIL's reward wrapper, so it sees the true env reward) that
    records finished episodes for progress.csv and adds Monitor-style ``info["episode"]``."""

    def __init__(self, venv, start: float):
        super().__init__(venv)
        self.start = start
        self.rows: list[dict] = []
        self.steps = 0
        self._returns = np.zeros(venv.num_envs)
        self._lengths = np.zeros(venv.num_envs, dtype=np.int64)

    def reset(self):
        self._returns[:] = 0
        self._lengths[:] = 0
        return self.venv.reset()

    def step_wait(self):
        obs, rewards, dones, infos = self.venv.step_wait()
        self.steps += self.num_envs
        self._returns += rewards
        self._lengths += 1
        for i in np.flatnonzero(dones):
            row = {"step": self.steps, "episode": len(self.rows) + 1,
                   "episode_return": float(self._returns[i]),
                   "episode_length": int(self._lengths[i]), "large_share": "",
                   "wall_s": round(time.perf_counter() - self.start, 3)}
            self.rows.append(row)
            infos[i] = dict(infos[i], episode={"r": row["episode_return"],
                                               "l": row["episode_length"], "t": row["wall_s"]})
            self._returns[i], self._lengths[i] = 0.0, 0
        return obs, rewards, dones, infos


def _write_progress(path: Path, rows: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=PROGRESS_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    with atomic_path(path) as tmp:
        tmp.write_text(buffer.getvalue())


def _train_gail(expert: ExpertData, task: Task, width: int, steps: int, seed: int,
                max_episode_steps: int | None, out_dir: Path, start: float,
                log: Callable[[str], None]) -> tuple[Any, dict]:
    from imitation.algorithms.adversarial.gail import GAIL
    from imitation.rewards.reward_nets import BasicRewardNet
    from imitation.util import networks as imit_networks
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    n_envs, n_steps = PPO_SETTINGS["n_envs"], PPO_SETTINGS["n_steps"]
    round_steps = GAIL_ROUND_STEPS
    n_rounds = steps // round_steps
    venv = DummyVecEnv([lambda i=i: make_env(task, seed=seed + i,
                                              max_episode_steps=max_episode_steps)
                        for i in range(n_envs)])
    recorder = _EpisodeRecorder(venv, start)
    generator = PPO("MlpPolicy", recorder, policy_kwargs=student_policy_kwargs(width),
                    n_steps=n_steps, batch_size=PPO_SETTINGS["batch_size"],
                    n_epochs=PPO_SETTINGS["n_epochs"],
                    learning_rate=PPO_SETTINGS["learning_rate"], gamma=PPO_SETTINGS["gamma"],
                    gae_lambda=PPO_SETTINGS["gae_lambda"], ent_coef=PPO_SETTINGS["ent_coef"],
                    clip_range=PPO_SETTINGS["clip_range"], seed=seed, device="cpu", verbose=0)
    reward_net = BasicRewardNet(recorder.observation_space, recorder.action_space,
                                normalize_input_layer=imit_networks.RunningNorm)
    demo_batch_size = min(GAIL_SETTINGS["demo_batch_size"], expert.n_pairs)
    trainer = GAIL(demonstrations=expert.trajectories, demo_batch_size=demo_batch_size,
                   venv=recorder, gen_algo=generator, reward_net=reward_net,
                   n_disc_updates_per_round=GAIL_SETTINGS["n_disc_updates_per_round"],
                   gen_replay_buffer_capacity=GAIL_SETTINGS["gen_replay_buffer_capacity"],
                   disc_opt_kwargs={"lr": GAIL_SETTINGS["disc_learning_rate"]},
                   gen_train_timesteps=round_steps,
                   allow_variable_horizon=GAIL_SETTINGS["allow_variable_horizon"],
                   custom_logger=_imitation_logger(out_dir / "imitation_log"),
                   log_dir=out_dir / "imitation_log")
    rounds: list[dict] = []
    log(f"gail: {n_rounds} rounds of {round_steps} env steps (PPO generator, width {width}), "
        f"{GAIL_SETTINGS['n_disc_updates_per_round']} discriminator updates per round")
    for r in range(n_rounds):
        # The body of AdversarialTrainer.train(), without its tqdm bar, keeping disc stats.
        trainer.train_gen(round_steps)
        stats = {}
        for _ in range(trainer.n_disc_updates_per_round):
            with imit_networks.training(trainer.reward_train):
                stats = trainer.train_disc()
        trainer.logger.dump(trainer._global_step)
        recent = [row["episode_return"] for row in recorder.rows[-20:]]
        entry = {"round": r + 1, "steps": recorder.steps,
                 "disc_loss": float(stats.get("disc_loss", np.nan)),
                 "disc_acc_expert": float(stats.get("disc_acc_expert", np.nan)),
                 "disc_acc_gen": float(stats.get("disc_acc_gen", np.nan)),
                 "episodes": len(recorder.rows),
                 "recent_return": float(np.mean(recent)) if recent else None}
        rounds.append(entry)
        _write_progress(out_dir / PROGRESS_FILE, recorder.rows)
        ret = f"{entry['recent_return']:.2f}" if recent else "n/a (no episode finished yet)"
        log(f"gail round {r + 1}/{n_rounds}: {recorder.steps} env steps, "
            f"{len(recorder.rows)} episodes, env return (last {len(recent)}) {ret}, "
            f"disc loss {entry['disc_loss']:.3f}, acc expert/gen {entry['disc_acc_expert']:.2f}/"
            f"{entry['disc_acc_gen']:.2f}, {time.perf_counter() - start:.0f}s")
    recorder.close()
    return generator.policy, {"rounds": n_rounds, "round_steps": round_steps,
                              "env_steps": recorder.steps, "demo_batch_size": demo_batch_size,
                              "episodes": len(recorder.rows), "round_log": rounds}


def _student_settings(method: str, width: int, width_info: dict, expert: ExpertData,
                      epochs: int, steps: int, gail_steps: int, gail_generator) -> dict:
    """config.json's ``settings`` of a student run: its network, the expert data it learned
    from, and the BC or GAIL settings."""
    settings = {"student": {"width": width, "policy_net": [width] * 2,
                            "value_net": list(VALUE_NET), "activation": ACTIVATION,
                            "class": "stable_baselines3 ActorCriticPolicy", **width_info},
                "expert_pairs": expert.n_pairs, "expert_trajectories": len(expert.trajectories),
                # teacher episodes the pairs come from, and which pairs (first | evenly)
                "expert_episodes": expert.meta.get("trajectories", len(expert.trajectories)),
                "expert_pairs_drawn": expert.meta.get("pairs", "first"),
                "imitation_workarounds": list(IMITATION_WORKAROUNDS)}
    if method == "bc":
        settings["bc"] = {**BC_SETTINGS, "epochs": epochs}
    else:
        settings["gail"] = {**GAIL_SETTINGS, "generator": gail_generator,
                            "steps_requested": steps, "steps": gail_steps,
                            "round_steps": GAIL_ROUND_STEPS, "ppo": dict(PPO_SETTINGS)}
    return settings


def distill(method: str, teacher_dir: str | Path, expert_path: str | Path, out_dir: str | Path,
            seed: int = 0, width: int | None = None, width_from: str | Path | None = None,
            steps: int | None = None, epochs: int | None = None, threads: int = 1,
            registry: str | Path | None = None, progress: bool = True) -> dict:
    """Distils the L-only teacher into a BC or GAIL student; writes the run folder and returns
    the run summary (run.json's content)."""
    from stable_baselines3.common.utils import set_random_seed

    if method not in METHODS:
        raise ValueError(f"unknown distillation method '{method}'; one of {', '.join(METHODS)}")
    out_dir = Path(out_dir)
    if (out_dir / FINISHED_FILE).exists():
        raise RunError(f"{out_dir} already holds a finished run ({FINISHED_FILE}); "
                       "remove the folder to redo it")
    teacher_config, _ = load_finished_run(teacher_dir, methods=TEACHER_METHODS)
    task = task_from_config(teacher_config, registry, source=Path(teacher_dir) / CONFIG_FILE)
    limit = _teacher_max_episode_steps(teacher_config)
    env = make_env(task, seed=seed, max_episode_steps=limit)
    obs_dim, act_dim = _env_dims(env)
    expert = load_expert_data(expert_path, task=task.name, obs_dim=obs_dim, act_dim=act_dim)
    student_width, width_info = resolve_width(task, obs_dim, act_dim, width, width_from)
    distill_settings = task.distill
    epochs = int(epochs if epochs is not None else distill_settings["bc_epochs"])
    steps = int(steps if steps is not None else distill_settings["gail_steps"])
    if (method == "bc" and epochs < 1) or (method == "gail" and steps < 1):
        raise ValueError(f"--epochs / --steps must be positive, got epochs={epochs}, steps={steps}")
    # GAIL alternates whole generator rounds; like imitation's train(), the budget is rounded
    # down to a whole number of rounds, and the env steps actually run are recorded.
    gail_steps = (steps // GAIL_ROUND_STEPS) * GAIL_ROUND_STEPS
    if method == "gail" and gail_steps < 1:
        raise ValueError(f"GAIL needs at least one generator round of {GAIL_ROUND_STEPS} env "
                         f"steps ({PPO_SETTINGS['n_envs']} envs x {PPO_SETTINGS['n_steps']}); "
                         f"got --steps {steps}")
    if expert.meta.get("teacher") and Path(expert.meta["teacher"]).resolve() != \
            Path(teacher_dir).resolve():
        print(f"note: {expert_path} was made from teacher {expert.meta['teacher']}, "
              f"not {teacher_dir}", flush=True)

    def log(message: str) -> None:
        if progress:
            print(message, flush=True)

    torch.set_num_threads(threads)
    set_random_seed(seed)
    settings = _student_settings(method, student_width, width_info, expert, epochs, steps,
                                 gail_steps, distill_settings["gail_generator"])
    config = {"task": task.name, "env_id": task.env_id, "method": method, "seed": seed,
              "total_steps": gail_steps if method == "gail" else 0, "cost_weight": None,
              "max_episode_steps": limit,  # the teacher's; `asymbench evaluate` reads it here
              "widths": {"policy": student_width}, "teacher": str(teacher_dir),
              "expert": str(expert_path), "settings": settings,
              "task_settings": task.settings, "registry_version": REGISTRY_VERSION,
              "overrides": {"max_episode_steps": limit, "steps": steps if method == "gail" else None,
                            "epochs": epochs if method == "bc" else None, "threads": threads}}
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / CONFIG_FILE, config)
    log(f"distill {method}: task {task.name}, teacher {teacher_dir}, {expert.n_pairs} expert "
        f"pairs, student width {student_width}")

    start = time.perf_counter()
    if method == "bc":
        policy, result = _train_bc(expert, env, student_width, epochs, seed, out_dir, log)
        env_steps = 0
    else:
        policy, result = _train_gail(expert, task, student_width, steps, seed, limit, out_dir,
                                     start, log)
        env_steps = result["env_steps"]
    wall = time.perf_counter() - start
    env.close()

    (out_dir / "model").mkdir(exist_ok=True)
    with atomic_path(out_dir / "model" / STUDENT_FILE) as tmp:
        policy.save(str(tmp))
    summary = {"steps": env_steps, "wall_time_s": round(wall, 3),
               "steps_per_s": round(env_steps / wall, 2) if env_steps and wall > 0 else None,
               method: result, "provenance": provenance()}
    write_json(out_dir / FINISHED_FILE, summary)
    log(f"distill {method}: done in {wall:.1f}s -> {out_dir}")
    return summary
