"""What ``asymbench train`` is asked for and what it records, for the one training loop
(``asymbench.engine.train_group``, K >= 1 seeds in one process).

``TrainRequest`` is the user's request, ``resolve_config`` the complete settings saved as each
run's config.json (methods: S-only, L-only and fit are one SAC policy and no master; the
asymmetric agent is two SAC sub-policies sharing ONE replay buffer and a DQN master that picks
one of them every ``macro_len`` steps); ``save_model``, ``write_progress`` and
``checkpoint_line`` write a run's model files, learning curve and log line.

Runs trained by the reference engine this package once had (``"engine": "sb3"`` in
config.json) are run folders of the same format: evaluate, export and distill read them as
they read the batched engine's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from asymbench.networks import fit_width
from asymbench.runs import PROGRESS_FILE, RunError, atomic_path, read_json
from asymbench.tasks import REGISTRY_VERSION, env_dims, get_task, packaged_defaults

METHODS = ("s_only", "l_only", "fit", "asym")
PROGRESS_COLUMNS = ["step", "episode", "episode_return", "episode_length", "large_share", "wall_s"]


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
    compile: str = "auto"                 # engine.compile: auto | on | off (acceleration.py)
    env_workers: int = 0                  # processes stepping the envs; 0: this one (envpool.py)


def widths(request: TrainRequest, task) -> dict[str, int]:
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
        "widths": widths(request, task),
        "sac": sac, "master": master if is_asym else None,
        "max_episode_steps": request.max_episode_steps or task.max_episode_steps,
        # Goal tasks relabel the sub-policies' shared buffer (HER); the master's is not relabelled.
        "her": task.her,
        "engine": "batched",  # the one loop (runs of the former "sb3" engine read the same)
        # A registry without these keys gets the authors' conventions (tasks.yaml's defaults).
        "timeouts": named["timeouts"],
        "asym_action_noise": named["asym_action_noise"] if is_asym else None,
        "overrides": overrides, "task_settings": task.settings,
        "registry_version": REGISTRY_VERSION,
    }


def same_config(recorded: dict, config: dict) -> bool:
    """Whether a run folder's recorded config.json is that of ``config``, so that a run started
    by an earlier asymbench resumes: a run recorded before configs named their registry version
    (no "registry_version") matches on everything else, and one recorded before a task setting
    existed matches where ``config`` holds that setting's packaged default (what
    ``task_from_config`` fills in for it, i.e. what the run ran with)."""
    # how this machine ran the update (acceleration.runtime_record) is no part of what was asked
    recorded, config = ({k: v for k, v in c.items() if k != "runtime"} for c in (recorded, config))
    if "registry_version" not in recorded:
        config = {k: v for k, v in config.items() if k != "registry_version"}
    if isinstance(recorded.get("task_settings"), dict) and isinstance(config.get("task_settings"), dict):
        config = {**config, "task_settings": _without_added_defaults(
            config["task_settings"], recorded["task_settings"], packaged_defaults())}
    return recorded == config


def _without_added_defaults(settings: dict, recorded: dict, defaults: dict) -> dict:
    """``settings`` less the keys (nested too) that ``recorded`` lacks and whose value is the
    packaged default."""
    kept = {}
    for key, value in settings.items():
        default = defaults.get(key) if isinstance(defaults, dict) else None
        if key not in recorded:
            if not (isinstance(defaults, dict) and key in defaults and value == default):
                kept[key] = value
        elif isinstance(value, dict) and isinstance(recorded[key], dict):
            kept[key] = _without_added_defaults(value, recorded[key], default if isinstance(default, dict) else {})
        else:
            kept[key] = value
    return kept


def save_model(model, path: Path) -> None:
    """SB3's save appends '.zip' to names without it, so stage as '<name>.partial.zip'."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(path.stem + ".partial.zip")
    model.save(staging)
    os.replace(staging, path)


def write_progress(out: Path, rows: list[dict]) -> None:
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
