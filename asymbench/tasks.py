"""The task registry (``data/tasks.yaml``) and environment construction.

Every per-task setting lives in the YAML file; this module only loads it, checks it against a
schema (so a typo fails before any training starts, naming the task and the field) and builds
environments with a flat Box observation, as every network in the paper takes a flat vector.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import io
import json
import math
import os
import re
import sys
import warnings
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

# The task registry's format: raise it whenever a key is added to TASK_SCHEMA or to the packaged
# defaults, so a run recorded before (config.json's "registry_version") is told which of its
# settings task_from_config fills in with today's defaults.
REGISTRY_VERSION = 1
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
        "expert_pairs": {"enum": ["first", "evenly"]},
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
        # keyword arguments of gymnasium.make(env_id, ...) (e.g. Ant-v5's reward weights)
        "env_kwargs": {"anyOf": [{"type": "null"}, {"type": "object"}]},
        # zero-pad the flat observation to this many dims (the paper's input size)
        "pad_observation": {"anyOf": [{"type": "null"}, _POSITIVE_INT]},
        # a named variant of another task of the same registry: merges over that task's entry
        "variant_of": {"type": "string", "minLength": 1},
        "timeouts": {"enum": ["terminal", "bootstrap"]},
        "asym_action_noise": {"enum": ["dropped", "as_sac"]},
        "done_on_success": {"type": "boolean"},
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
    """One resolved registry entry (defaults merged in). ``settings`` holds the raw mapping; every
    key of TASK_SCHEMA is a property here (optional keys a registry leaves out read as None)."""

    name: str
    settings: dict[str, Any]

    def _get(self, key: str, required: bool = False) -> Any:
        return self.settings[key] if required else self.settings.get(key)

    # required (TASK_SCHEMA["required"]; the packaged defaults give every registry those it omits)
    env_id = property(lambda self: self._get("env_id", True), doc="gymnasium id")
    small = property(lambda self: self._get("small", True), doc="the small SAC's width")
    large = property(lambda self: self._get("large", True), doc="the large SAC's width")
    macro_len = property(lambda self: self._get("macro_len", True), doc="env steps per master decision")
    total_steps = property(lambda self: self._get("total_steps", True), doc="the paper's budget")
    eval_episodes = property(lambda self: self._get("eval_episodes", True))
    sac = property(lambda self: self._get("sac", True), doc="SAC settings (every SAC of the task)")
    master = property(lambda self: self._get("master", True), doc="the DQN master's settings")
    distill = property(lambda self: self._get("distill", True), doc="BC / GAIL settings")
    # optional
    paper_name = property(lambda self: self._get("paper_name"))
    paper_obs_dim = property(lambda self: self._get("paper_obs_dim"))
    paper_fit_width = property(lambda self: self._get("paper_fit_width"))
    max_episode_steps = property(lambda self: self._get("max_episode_steps"))
    env_kwargs = property(lambda self: self._get("env_kwargs"))
    pad_observation = property(lambda self: self._get("pad_observation"))
    variant_of = property(lambda self: self._get("variant_of"))
    timeouts = property(lambda self: self._get("timeouts"))
    asym_action_noise = property(lambda self: self._get("asym_action_noise"))
    done_on_success = property(lambda self: self._get("done_on_success"))
    her = property(lambda self: self._get("her"), doc="HER settings (goal tasks), else None")

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


TOP_LEVEL_KEYS = ("defaults", "tasks")
TASK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
DEFAULTS_SCHEMA = {**TASK_SCHEMA, "required": []}
# A task entry, defaults merged in, must give every setting the code reads (all but these).
OPTIONAL_TASK_KEYS = ("paper_name", "paper_obs_dim", "paper_fit_width", "env_kwargs",
                      "pad_observation", "variant_of")
ENTRY_SCHEMA = {
    **TASK_SCHEMA,
    "required": [k for k in TASK_SCHEMA["properties"] if k not in OPTIONAL_TASK_KEYS],
    "properties": {**TASK_SCHEMA["properties"],
                   **{k: {**TASK_SCHEMA["properties"][k],
                          "required": list(TASK_SCHEMA["properties"][k]["properties"])}
                      for k in ("sac", "master", "distill")}},
}


def _accepts(schema: dict) -> str:
    """What a (sub)schema accepts, in words, for error messages."""
    if "anyOf" in schema:
        return " or ".join(_accepts(s) for s in schema["anyOf"])
    if "const" in schema:
        return repr(schema["const"])
    if "enum" in schema:
        return "one of " + ", ".join(repr(v) for v in schema["enum"])
    kind = schema.get("type")
    if kind == "null":
        return "null"
    if kind == "boolean":
        return "true or false"
    if kind == "string":
        return "a non-empty string" if schema.get("minLength") else "a string"
    if kind == "object":
        keys = list(schema.get("properties", {}))
        return f"a mapping (keys: {', '.join(keys)})" if keys else "a mapping"
    if kind == "array":
        return f"a non-empty list, each {_accepts(schema.get('items', {}))}"
    if kind in ("integer", "number"):
        bounds = [f"{op} {schema[key]:g}" for key, op in (("minimum", ">="), ("exclusiveMinimum", ">"),
                                                          ("maximum", "<="), ("exclusiveMaximum", "<"))
                  if key in schema]
        noun = "an integer" if kind == "integer" else "a finite number"
        return " ".join([noun] + ([" and ".join(bounds)] if bounds else []))
    return "a value of another kind"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _number_text_hint(value: Any) -> str:
    """PyYAML (YAML 1.1) reads `1e-3` as text: only `1.0e-3` is a float to it."""
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return ""
        mantissa, _, exponent = value.strip().lower().partition("e")
        if exponent:
            mantissa += "" if "." in mantissa else ".0"
            exponent = exponent if exponent[:1] in "+-" else "+" + exponent
            suggestion = f"{mantissa}e{exponent}"
        else:
            suggestion = value.strip()
        return (f" ('{value}' is text to YAML: PyYAML reads a number with an exponent as a float "
                f"only with a dot and a signed exponent: write {suggestion}, not {value}"
                f"{'' if exponent else ', unquoted'})")
    return ""


def _schema_problem(error: jsonschema.ValidationError) -> tuple[str, str]:
    """(field, problem) of one schema error: the field's dotted path, what is wrong with it
    and what would be accepted."""
    path = [str(p) for p in error.path]
    if error.validator == "additionalProperties":
        allowed = list(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed), key=str)[0]
        close = difflib.get_close_matches(str(unknown), allowed, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        return ".".join(path + [str(unknown)]), f"unknown field; {hint}allowed: {', '.join(allowed)}"
    if error.validator == "required":
        missing = error.message.split("'")[1]
        expected = _accepts(error.schema.get("properties", {}).get(missing, {}))
        return ".".join(path + [missing]), f"missing; expected {expected}"
    return (".".join(path) or "(entry)",
            f"got {_short(error.instance)}, expected {_accepts(error.schema)}"
            f"{_number_text_hint(error.instance)}")


def _non_finite(value: Any, path: tuple = ()) -> tuple[str, float] | None:
    """The first NaN / infinite number in a nested mapping (schemas cannot reject NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return ".".join(map(str, path)), value
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = _non_finite(item, path + (key,))
        if found:
            return found
    return None


def _validate(name: str, settings: dict, where: str = "task registry", schema: dict = ENTRY_SCHEMA,
              label: str | None = None) -> None:
    label = label or f"task '{name}'"
    bad = _non_finite(settings)
    if bad:
        raise RegistryError(f"{where}: {label}, field '{bad[0]}': got {bad[1]}, "
                            "expected a finite number")
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(settings),
                    key=lambda e: [str(p) for p in e.path])
    if errors:
        field, problem = _schema_problem(errors[0])
        if errors[0].validator == "required":
            problem += (" (a task's settings merge over the registry's `defaults:`; start a "
                        "registry of your own from a copy of asymbench/data/tasks.yaml)")
        raise RegistryError(f"{where}: {label}, field '{field}': {problem}")
    if schema is ENTRY_SCHEMA and settings["small"] >= settings["large"]:
        raise RegistryError(f"{where}: {label}, fields 'small'/'large': small ({settings['small']}) "
                            f"must be less than large ({settings['large']})")


# (env id, env kwargs) -> (problem or None, has a goal dict, flat observation dims); filled once
# per process per id and kwargs.
_ENV_PROBLEMS: dict[tuple[str, str], tuple[str | None, bool, int | None]] = {}
GOAL_KEYS = ("achieved_goal", "desired_goal")
# gymnasium.make arguments that asymbench sets itself (make_env): not accepted in `env_kwargs`.
RESERVED_ENV_KWARGS = ("render_mode", "max_episode_steps")


def _kwargs_key(env_kwargs: dict | None) -> str:
    return json.dumps(env_kwargs or {}, sort_keys=True, default=str)


def _env_facts(env_id: str, env_kwargs: dict | None = None) -> tuple[str | None, bool, int | None]:
    key = (env_id, _kwargs_key(env_kwargs))
    if key not in _ENV_PROBLEMS:
        problem, has_goals, obs_dim = None, False, None
        try:
            _register_optional_suites(env_id)
            gym.spec(env_id)
        except gym.error.Error as exc:
            problem = (f"no gymnasium environment '{env_id}' ({exc}); expected a registered id, "
                       "e.g. Swimmer-v5, FetchPickAndPlace-v4 or dm_control/<domain>-<task>-v0")
        except ImportError as exc:
            problem = f"cannot register '{env_id}': {exc}"
        if problem is None:
            try:
                with _quiet_imports():
                    env = gym.make(env_id, **(env_kwargs or {}))
            except Exception as exc:  # any failure of third-party construction code
                problem = f"cannot build '{env_id}': {type(exc).__name__}: {exc}"
            else:
                if not isinstance(env.action_space, gym.spaces.Box):
                    problem = (f"'{env_id}' has a {env.action_space} action space; SAC needs a "
                               "continuous (Box) one")
                elif not isinstance(env.observation_space, (gym.spaces.Box, gym.spaces.Dict)):
                    problem = (f"'{env_id}' has a {env.observation_space} observation space; "
                               "expected a Box or a Dict of Boxes")
                else:
                    obs_dim = int(gym.spaces.flatdim(env.observation_space))
                has_goals = (isinstance(env.observation_space, gym.spaces.Dict)
                             and all(key in env.observation_space.spaces for key in GOAL_KEYS))
                env.close()
        _ENV_PROBLEMS[key] = problem, has_goals, obs_dim
    return _ENV_PROBLEMS[key]


def env_problem(env_id: str, env_kwargs: dict | None = None) -> str | None:
    """Why ``env_id`` (built with ``env_kwargs``) cannot be a task's environment (unknown id, bad
    keyword arguments, no Box action space, no Box or Dict observation space), or None. Builds
    the env once per process, id and kwargs."""
    return _env_facts(env_id, env_kwargs)[0]


def _check_task(name: str, settings: dict, where: str, check_env: bool) -> Task:
    _validate(name, settings, where)
    env_kwargs = settings.get("env_kwargs") or {}
    reserved = [k for k in RESERVED_ENV_KWARGS if k in env_kwargs]
    if reserved:
        raise RegistryError(f"{where}: task '{name}', field 'env_kwargs.{reserved[0]}': set by "
                            "asymbench itself (use the task's `max_episode_steps`; rendering is "
                            "asked for by `evaluate --frames`); remove it from env_kwargs")
    pad = settings.get("pad_observation")
    if pad is not None and settings.get("her"):
        raise RegistryError(f"{where}: task '{name}', field 'pad_observation': a goal task "
                            "(`her` set) keeps its goal dict for hindsight relabelling, which "
                            "cannot be padded; set `pad_observation: null` for this task")
    if check_env:
        env_id = settings["env_id"]
        problem, has_goals, obs_dim = _env_facts(env_id, env_kwargs)
        if problem:
            field = "env_kwargs" if env_kwargs and env_problem(env_id) is None else "env_id"
            raise RegistryError(f"{where}: task '{name}', field '{field}': {problem}")
        if settings.get("her") and not has_goals:
            raise RegistryError(f"{where}: task '{name}', field 'her': hindsight relabelling needs "
                                f"a goal dict observation (keys {', '.join(GOAL_KEYS)}), which "
                                f"'{env_id}' does not have; set `her: null` for this task")
        if pad is not None and pad < obs_dim:
            raise RegistryError(f"{where}: task '{name}', field 'pad_observation': got {pad}, but "
                                f"'{env_id}' observations have {obs_dim} dims already; expected "
                                f"an integer >= {obs_dim} (or null: no padding)")
    return Task(name=name, settings=settings)


def _resolve_variants(entries: dict, where: str) -> dict:
    """Each entry with ``variant_of: BASE`` merged over BASE's (resolved) entry, so a named
    variant states only what differs from its task. The key itself is kept (it is recorded in
    a run's config.json with the other settings)."""
    resolved: dict = {}

    def resolve(name: str, chain: tuple) -> dict:
        if name in resolved:
            return resolved[name]
        entry = entries[name]
        base = entry.get("variant_of") if isinstance(entry, dict) else None
        if base is None:
            resolved[name] = entry
            return entry
        if not isinstance(base, str) or base not in entries:
            known = ", ".join(n for n in entries if n != name)
            raise RegistryError(f"{where}: task '{name}', field 'variant_of': got {_short(base)}, "
                                f"expected the name of another task of this registry ({known})")
        if base in chain + (name,):
            raise RegistryError(f"{where}: task '{name}', field 'variant_of': a cycle "
                                f"({' -> '.join(chain + (name, base))})")
        if not isinstance(entries[base], dict):
            resolved[name] = entry  # the base's own check reports it
            return entry
        resolved[name] = _merge(resolve(base, chain + (name,)), entry)
        return resolved[name]

    for name in entries:
        resolve(name, ())
    return resolved


def parse_registry(raw: dict, source: str | Path | None = None,
                   check_envs: bool = True) -> dict[str, Task]:
    """Validates a whole registry mapping (as loaded from YAML) and returns its tasks by name.

    Checked: the top-level keys, ``defaults`` and every task against the schema, NaN / inf,
    small < large, and (``check_envs``) that every ``env_id`` builds with a Box action space.
    Raises RegistryError naming the file, the task and the field, and what would be accepted.
    """
    where = f"task registry {source}" if source else "task registry"
    if not isinstance(raw, dict):
        raise RegistryError(f"{where}: expected a mapping with keys {', '.join(TOP_LEVEL_KEYS)}, "
                            f"got {_short(raw)}")
    unknown = [str(k) for k in raw if k not in TOP_LEVEL_KEYS]
    if unknown:
        close = difflib.get_close_matches(unknown[0], TOP_LEVEL_KEYS, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise RegistryError(f"{where}: unknown top-level key '{unknown[0]}'{hint}; "
                            f"allowed: {', '.join(TOP_LEVEL_KEYS)}")
    if not isinstance(raw.get("tasks"), dict) or not raw["tasks"]:
        raise RegistryError(f"{where}: needs a non-empty 'tasks' mapping (task name -> settings), "
                            f"got {_short(raw.get('tasks'))}")
    defaults = raw.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise RegistryError(f"{where}: 'defaults' must be a mapping of task settings, "
                            f"got {_short(defaults)}")
    _validate("defaults", defaults, where, DEFAULTS_SCHEMA, label="defaults")
    tasks = {}
    entries = _resolve_variants(raw["tasks"], where)
    for name, entry in entries.items():
        if not isinstance(name, str) or not TASK_NAME.match(name):
            raise RegistryError(f"{where}: task name {_short(name)}: expected letters, digits, "
                                "'_', '-' or '.' (it names folders and Snakemake targets)")
        if not isinstance(entry, dict):
            raise RegistryError(f"{where}: task '{name}' must be a mapping of settings, "
                                f"got {_short(entry)}")
        tasks[name] = _check_task(name, _merge(defaults, entry), where, check_envs)
    return tasks


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (PyYAML keeps the last
    silently: a task entered twice would lose its first entry without a word)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: the base class reports it
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key '{key}' (each key may appear once per mapping)",
                    key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def _read_registry_file(path: str) -> Any:
    where = f"task registry {path}"
    if not os.path.exists(path):
        raise RegistryError(f"{where}: file does not exist; expected a YAML file "
                            "(leave the registry out for the packaged one)")
    if os.path.isdir(path):
        raise RegistryError(f"{where}: is a folder; expected a YAML file")
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.load(f, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        kind = "YAML error" if isinstance(exc, yaml.constructor.ConstructorError) else "YAML syntax error"
        raise RegistryError(f"{where}: {kind}{at}: {problem}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistryError(f"{where}: cannot read it ({exc.__class__.__name__}: "
                            f"{getattr(exc, 'strerror', None) or exc})") from exc


@lru_cache(maxsize=None)
def _load(path: str) -> dict[str, Task]:
    return parse_registry(_read_registry_file(path), source=path)


def load_registry(path: str | Path | None = None) -> dict[str, Task]:
    return _load(str(path or REGISTRY_PATH))


def get_task(name: str, registry: str | Path | None = None) -> Task:
    """The task ``name`` of the registry file ``registry`` (default: the packaged registry). A
    finished run's own task is ``task_from_config(config)``: pass it on explicitly."""
    tasks = load_registry(registry)
    if name not in tasks:
        raise RegistryError(f"unknown task '{name}'; known tasks: {', '.join(tasks)}"
                            + ("" if registry else " (a task of your own: give --registry FILE)"))
    return tasks[name]


def task_from_config(config: dict, registry: str | Path | None = None,
                     source: str | Path | None = None) -> Task:
    """The task a run was made for, from its config.json: ``task_settings`` (the resolved registry
    entry, recorded by train and distill), validated like a registry entry. A run is thereby
    self-contained: it needs no registry, also for a task from a user's registry file. Settings
    the run predates (keys added to the schema since) come from the packaged defaults, and where
    the run's ``registry_version`` is not this one's and that fills any key in, one line on
    stderr names them. Runs that recorded no ``task_settings`` fall back to
    ``get_task(config["task"], registry)``."""
    where = f"run config {source}" if source else "run config"
    name = config.get("task") if isinstance(config, dict) else None
    if not isinstance(name, str) or not name:
        raise RegistryError(f"{where}: names no task (field 'task')")
    settings = config.get("task_settings")
    if settings is None:
        return get_task(name, registry)
    if not isinstance(settings, dict):
        raise RegistryError(f"{where}: field 'task_settings' must be a mapping, got {_short(settings)}")
    key = json.dumps([name, settings], sort_keys=True, default=str)
    if key not in _CONFIG_TASKS:
        defaults = packaged_defaults()
        filled = _missing_keys(defaults, settings)
        recorded = config.get("registry_version")
        if recorded != REGISTRY_VERSION and (filled or recorded is not None):
            print(f"asymbench: warning: {where}: recorded with task registry version "
                  f"{recorded if recorded is not None else '(none)'}, this asymbench's is "
                  f"{REGISTRY_VERSION}; " + (f"settings it predates take today's defaults: "
                                              f"{', '.join(filled)}" if filled else "no setting is missing"),
                  file=sys.stderr)
        _CONFIG_TASKS[key] = _check_task(name, _merge(defaults, settings), where, check_env=True)
    return _CONFIG_TASKS[key]


_CONFIG_TASKS: dict[str, Task] = {}


def packaged_defaults() -> dict:
    """The packaged registry's ``defaults``: what task_from_config fills in for a setting a run
    predates."""
    return (_read_registry_file(str(REGISTRY_PATH)) or {}).get("defaults") or {}


def _missing_keys(defaults: dict, settings: dict, prefix: str = "") -> list[str]:
    """The keys (dotted, nested too) that ``defaults`` has and ``settings`` lacks."""
    missing = []
    for key, value in defaults.items():
        if key not in settings:
            missing.append(prefix + key)
        elif isinstance(value, dict) and isinstance(settings[key], dict):
            missing += _missing_keys(value, settings[key], f"{prefix}{key}.")
    return missing


# Known notices that third-party packages print when imported; filtered where we import them.
_KNOWN_NOTICES = (
    # gymnasium-robotics prints this (farama_notifications) to stderr at import; asymbench uses no
    # Adroit environment.
    "AdroitHandRelocateDense-v1, AdroitHandHammerDense-v1, AdroitHandDoorDense-v1 environment's "
    "reward functions were updated",
)


@contextlib.contextmanager
def _quiet_imports():
    """Drops the known import-time notices (above) and pygame's pkg_resources deprecation
    warning (pygame imports pkg_resources; shimmy and classic-control rendering import pygame);
    anything else printed to stderr is passed through."""
    captured = io.StringIO()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="pkg_resources is deprecated as an API",
                                    category=UserWarning)
            with contextlib.redirect_stderr(captured):
                yield
    finally:
        kept = [line for line in captured.getvalue().splitlines(keepends=True)
                if not line.startswith(_KNOWN_NOTICES)]
        if kept:
            sys.stderr.write("".join(kept))


def _register_optional_suites(env_id: str) -> None:
    # Importing these registers their ids with gymnasium; only pay for what the task needs.
    # (their import-time notices are filtered here: see _quiet_imports)
    if env_id.startswith("dm_control/"):
        with _quiet_imports():
            import shimmy

        gym.register_envs(shimmy)
    elif env_id.startswith("Fetch") or env_id.startswith("Hand"):
        with _quiet_imports():
            import gymnasium_robotics

        gym.register_envs(gymnasium_robotics)


def make_env(task: Task, seed: int | None = None, render: bool = False,
             max_episode_steps: int | None = None, flatten: bool = True) -> gym.Env:
    """Builds ``task`` as a gymnasium env with a flat float32 Box observation.

    ``max_episode_steps`` caps the episode length (used by reduced-budget scales).
    Dict observations (Fetch, dm_control) are flattened key by key in the Dict space's order,
    the order stable-baselines3's CombinedExtractor concatenates them in. ``flatten=False``
    keeps a goal task's dict (hindsight relabelling needs its achieved and desired goals).
    The registry's ``env_kwargs`` go to ``gymnasium.make``; ``pad_observation: N`` appends
    zeros to the flat observation up to N dims (Ant: the authors' Ant-v3, whose 84 contact
    dims were always zero under MuJoCo 2.0, see tasks.yaml).
    """
    _register_optional_suites(task.env_id)
    # An override only shortens episodes (reduced-budget scales); it never lengthens a task's.
    limit = min(filter(None, (max_episode_steps, task.max_episode_steps)), default=None)
    kwargs = dict(task.settings.get("env_kwargs") or {})
    if render:
        kwargs["render_mode"] = "rgb_array"
    if render:
        with _quiet_imports():  # classic-control rendering imports pygame on first render
            with contextlib.suppress(ImportError):
                import pygame  # noqa: F401
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
    if task.settings.get("done_on_success"):
        env = DoneOnSuccess(env)
    if isinstance(env.observation_space, gym.spaces.Dict):
        if not flatten:
            return _seeded(env, seed)
        env = gym.wrappers.FlattenObservation(env)
    if env.observation_space.dtype != np.float32:
        env = gym.wrappers.TransformObservation(
            env, lambda obs: obs.astype(np.float32),
            gym.spaces.Box(-np.inf, np.inf, env.observation_space.shape, np.float32))
    pad = task.settings.get("pad_observation")
    if pad is not None:
        env = _pad_observation(env, int(pad), task.name)
    return _seeded(env, seed)


def _pad_observation(env: gym.Env, dims: int, name: str) -> gym.Env:
    """Appends zeros to a flat float32 observation up to ``dims`` entries (the padded entries'
    bounds are [0, 0])."""
    space = env.observation_space
    have = int(np.prod(space.shape))
    if len(space.shape) != 1 or dims < have:
        raise RegistryError(f"task '{name}', field 'pad_observation': got {dims}, but the "
                            f"observation has shape {space.shape}; expected an integer >= {have}")
    if dims == have:
        return env
    zeros = np.zeros(dims - have, np.float32)
    padded = gym.spaces.Box(np.concatenate([space.low.astype(np.float32), zeros]),
                            np.concatenate([space.high.astype(np.float32), zeros]), (dims,), np.float32)
    return gym.wrappers.TransformObservation(
        env, lambda obs: np.concatenate([obs, zeros]), padded)


class DoneOnSuccess(gym.Wrapper):
    """The authors' goal-task wrapper (rl-zoo/wrappers.py, DoneOnSuccessWrapper): the episode
    ends at the first step the env reports ``is_success``, and every reward, relabelled ones
    included (``compute_reward``), is offset by +1, so a sparse -1/0 reward becomes 0/1."""

    REWARD_OFFSET = 1.0

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        terminated = bool(terminated) or bool(info.get("is_success", False))
        return obs, reward + self.REWARD_OFFSET, terminated, truncated, info

    def compute_reward(self, achieved_goal, desired_goal, info):
        return self.env.get_wrapper_attr("compute_reward")(achieved_goal, desired_goal, info) + self.REWARD_OFFSET


def observation_flattener(space: gym.spaces.Space):
    """The flat float32 observation of ``space``'s observations, in the order ``make_env``
    flattens them (the identity for an env that is flat already). For the goal dicts that
    ``make_env(..., flatten=False)`` keeps: the master and the deployed actors see them flat."""
    if not isinstance(space, gym.spaces.Dict):
        return lambda obs: obs
    return lambda obs: gym.spaces.flatten(space, obs).astype(np.float32)


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
