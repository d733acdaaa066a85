"""The task registry (``data/tasks.yaml``) and environment construction.

Every per-task setting lives in the YAML file; this module only loads it, checks it against a
schema (so a typo fails before any training starts, naming the task and the field) and builds
environments with a flat Box observation, as every network in the paper takes a flat vector.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

# MuJoCo picks its GL backend at import time; there is no display on the machines we target.
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # pygame (classic-control rendering), headless

import gymnasium as gym
import jsonschema
import numpy as np
import yaml

REGISTRY_PATH = Path(str(resources.files("asymbench") / "data" / "tasks.yaml"))

_NUMBER = {"type": "number"}
_POSITIVE_INT = {"type": "integer", "minimum": 1}
_NON_NEGATIVE_INT = {"type": "integer", "minimum": 0}

SAC_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "learning_rate": {"type": "number", "exclusiveMinimum": 0},
        "lr_schedule": {"enum": ["constant", "linear"]},
        "buffer_size": _POSITIVE_INT,
        "batch_size": _POSITIVE_INT,
        "ent_coef": {"anyOf": [{"const": "auto"}, {"type": "number", "exclusiveMinimum": 0}]},
        "learning_starts": _NON_NEGATIVE_INT,
        "gamma": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "tau": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "action_noise": {
            "anyOf": [
                {"type": "null"},
                {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["type", "sigma"],
                    "properties": {
                        "type": {"enum": ["normal", "ornstein_uhlenbeck"]},
                        "sigma": {"type": "number", "exclusiveMinimum": 0},
                    },
                },
            ]
        },
    },
}

MASTER_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "hidden": {"type": "array", "items": _POSITIVE_INT, "minItems": 1},
        "learning_rate": {"type": "number", "exclusiveMinimum": 0},
        "buffer_size": _POSITIVE_INT,
        "batch_size": _POSITIVE_INT,
        "gamma": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "learning_starts": _NON_NEGATIVE_INT,
        "target_update_interval": _POSITIVE_INT,
        "exploration_fraction": {"type": "number", "minimum": 0, "maximum": 1},
        "exploration_final_eps": {"type": "number", "minimum": 0, "maximum": 1},
        "train_freq": _POSITIVE_INT,
        "dueling": {"type": "boolean"},
        "double_q": {"type": "boolean"},
        "grad_clip": {"anyOf": [{"type": "null"}, {"type": "number", "exclusiveMinimum": 0}]},
        "prioritized_replay": {"anyOf": [{"type": "null"}, {
            "type": "object", "additionalProperties": False, "required": ["alpha", "beta0", "eps"],
            "properties": {"alpha": {"type": "number", "minimum": 0},
                           "beta0": {"type": "number", "minimum": 0, "maximum": 1},
                           "eps": {"type": "number", "exclusiveMinimum": 0}}}]},
    },
}

DISTILL_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "expert_trajectories": _POSITIVE_INT,
        "expert_length": _POSITIVE_INT,
        "bc_epochs": _POSITIVE_INT,
        "gail_generator": {"enum": ["ppo"]},
        "gail_steps": _POSITIVE_INT,
    },
}

TASK_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["env_id", "small", "large", "lambda", "macro_len", "total_steps", "eval_episodes",
                 "sac", "master", "distill"],
    "properties": {
        "paper_name": {"type": "string"},
        "env_id": {"type": "string", "minLength": 1},
        "paper_obs_dim": _POSITIVE_INT,
        "paper_fit_width": _POSITIVE_INT,
        "small": _POSITIVE_INT,
        "large": _POSITIVE_INT,
        "lambda": {"type": "number", "minimum": 0},
        "macro_len": _POSITIVE_INT,
        "total_steps": _POSITIVE_INT,
        "eval_episodes": _POSITIVE_INT,
        "max_episode_steps": {"anyOf": [{"type": "null"}, _POSITIVE_INT]},
        "timeouts": {"enum": ["terminal", "bootstrap"]},
        "asym_action_noise": {"enum": ["dropped", "as_sac"]},
        "her": {"anyOf": [{"type": "null"}, {
            "type": "object", "additionalProperties": False,
            "required": ["goal_selection_strategy", "n_sampled_goal"],
            "properties": {"goal_selection_strategy": {"enum": ["future", "final", "episode"]},
                           "n_sampled_goal": _POSITIVE_INT}}]},
        "sac": SAC_SCHEMA,
        "master": MASTER_SCHEMA,
        "distill": DISTILL_SCHEMA,
    },
}


class RegistryError(ValueError):
    """A task registry entry is missing, malformed or names an environment that does not exist."""


@dataclass(frozen=True)
class Task:
    """One resolved registry entry (defaults merged in). ``settings`` holds the raw mapping."""

    name: str
    settings: dict[str, Any]

    def __getattr__(self, key: str) -> Any:
        # Lets `task.small`, `task.sac` etc. read the registry without a field list to keep in sync.
        try:
            return self.__dict__["settings"][key]
        except KeyError:
            raise AttributeError(key) from None

    @property
    def cost_weight(self) -> float:
        """The paper's lambda (``lambda`` is a Python keyword)."""
        return float(self.settings["lambda"])


def _merge(base: dict, override: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _validate(name: str, settings: dict) -> None:
    errors = sorted(jsonschema.Draft202012Validator(TASK_SCHEMA).iter_errors(settings),
                    key=lambda e: list(e.path))
    if errors:
        error = errors[0]
        field = ".".join(str(p) for p in error.path) or "(entry)"
        if error.validator == "required":
            field = error.message.split("'")[1]
        raise RegistryError(f"task registry: task '{name}', field '{field}': {error.message}")


def parse_registry(raw: dict) -> dict[str, Task]:
    """Validates a registry mapping (as loaded from YAML) and returns its tasks by name."""
    if not isinstance(raw, dict) or not isinstance(raw.get("tasks"), dict) or not raw["tasks"]:
        raise RegistryError("task registry: needs a non-empty 'tasks' mapping")
    defaults = raw.get("defaults") or {}
    tasks = {}
    for name, entry in raw["tasks"].items():
        if not isinstance(entry, dict):
            raise RegistryError(f"task registry: task '{name}' must be a mapping")
        settings = _merge(defaults, entry)
        _validate(name, settings)
        tasks[name] = Task(name=name, settings=settings)
    return tasks


@lru_cache(maxsize=None)
def _load(path: str) -> dict[str, Task]:
    with open(path) as f:
        return parse_registry(yaml.safe_load(f))


def load_registry(path: str | Path | None = None) -> dict[str, Task]:
    return _load(str(path or REGISTRY_PATH))


def get_task(name: str, registry: str | Path | None = None) -> Task:
    tasks = load_registry(registry)
    if name not in tasks:
        raise RegistryError(f"unknown task '{name}'; known tasks: {', '.join(tasks)}")
    return tasks[name]


def _register_optional_suites(env_id: str) -> None:
    # Importing these registers their ids with gymnasium; only pay for what the task needs.
    if env_id.startswith("dm_control/"):
        import shimmy

        gym.register_envs(shimmy)
    elif env_id.startswith("Fetch") or env_id.startswith("Hand"):
        import gymnasium_robotics

        gym.register_envs(gymnasium_robotics)


def make_env(task: Task, seed: int | None = None, render: bool = False,
             max_episode_steps: int | None = None, flatten: bool = True) -> gym.Env:
    """Builds ``task`` as a gymnasium env with a flat float32 Box observation.

    ``max_episode_steps`` caps the episode length (used by reduced-budget scales).
    Dict observations (Fetch, dm_control) are flattened key by key in the Dict space's order,
    the order stable-baselines3's CombinedExtractor concatenates them in. ``flatten=False``
    keeps a goal task's dict (hindsight relabelling needs its achieved and desired goals).
    """
    _register_optional_suites(task.env_id)
    # An override only shortens episodes (reduced-budget scales); it never lengthens a task's.
    limit = min(filter(None, (max_episode_steps, task.max_episode_steps)), default=None)
    kwargs = {"render_mode": "rgb_array"} if render else {}
    if limit:
        kwargs["max_episode_steps"] = limit
    try:
        env = gym.make(task.env_id, **kwargs)
    except gym.error.Error as exc:
        raise RegistryError(f"task '{task.name}', field 'env_id': cannot build "
                            f"'{task.env_id}': {exc}") from exc
    if not isinstance(env.action_space, gym.spaces.Box):
        raise RegistryError(f"task '{task.name}': SAC needs a continuous (Box) action space, "
                            f"'{task.env_id}' has {env.action_space}")
    if isinstance(env.observation_space, gym.spaces.Dict):
        if not flatten:
            return _seeded(env, seed)
        env = gym.wrappers.FlattenObservation(env)
    if env.observation_space.dtype != np.float32:
        env = gym.wrappers.TransformObservation(
            env, lambda obs: obs.astype(np.float32),
            gym.spaces.Box(-np.inf, np.inf, env.observation_space.shape, np.float32))
    return _seeded(env, seed)


def _seeded(env: gym.Env, seed: int | None) -> gym.Env:
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env


def env_dims(task: Task) -> tuple[int, int]:
    """(observation dim, action dim) of today's environment for ``task``."""
    env = make_env(task)
    dims = int(np.prod(env.observation_space.shape)), int(np.prod(env.action_space.shape))
    env.close()
    return dims
